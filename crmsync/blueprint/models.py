"""Pydantic models of a blueprint: one client, one CRM, its pipelines and their stages.

Models are frozen and forbid unknown keys, so a typo in a config is an error that points at
its line (see `loader.py`), not a silently ignored field.

Besides field validation, a blueprint must be internally consistent (`reference_problems`):
keys are the identity the store remembers, so they must be unique, and a retired stage must
say which live stage takes over its deals.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from crmsync.names import CrmName, StageOutcome  # noqa: TC001 -- pydantic reads them at runtime

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
LANGUAGE_PATTERN = r"^[a-z]{2}$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"

Key = Annotated[
    str,
    StringConstraints(pattern=KEY_PATTERN, max_length=64),
    Field(description="stable identifier: lowercase letters, digits and underscores"),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ConflictPolicy = Literal["remote_wins", "local_wins", "newest_wins"]

# Validation context flag: the loader runs `reference_problems` itself so that each problem
# points at its own line, instead of one model-level error for the whole file.
SKIP_REFERENCE_CHECKS = "crmsync_skip_reference_checks"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Silence(_Frozen):
    """Turns one lint rule off where it does not fit, with the reason written down."""

    rule: str
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Stage(_Frozen):
    """A deal stage: a step the sales team can act on, named in the past tense."""

    key: Key
    label: Label
    probability: float = Field(ge=0.0, le=1.0)
    outcome: StageOutcome | None = None
    rot_after_days: int | None = Field(default=None, ge=1, le=3650)
    previous_labels: tuple[Label, ...] = ()
    description: str | None = None
    silence: tuple[Silence, ...] = ()


class RetiredStage(_Frozen):
    """A stage removed from the design, and the stage (by key) that takes over its deals."""

    key: Key | None = None
    label: Label | None = None
    move_deals_to: Key


class Pipeline(_Frozen):
    key: Key
    label: Label
    previous_labels: tuple[Label, ...] = ()
    stages: tuple[Stage, ...] = Field(min_length=1)
    retired_stages: tuple[RetiredStage, ...] = ()
    silence: tuple[Silence, ...] = ()

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.outcome is None)

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)


class SyncOptions(_Frozen):
    """How `crmsync sync` treats the client's records."""

    # The property (HubSpot) or custom field (Pipedrive, by the name crmsync gives it: its
    # label in snake_case) that holds a contact's marketing consent. Unset: consent unknown.
    consent_field: Annotated[str, StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100)] | None = None
    # What a record deleted locally does to the CRM: `keep_remote` (default) leaves it there
    # and notes it in the summary; `propagate` archives it remotely.
    delete_policy: Literal["keep_remote", "propagate"] = "keep_remote"


FieldName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class SalesQualified(_Frozen):
    """Which contacts marketing has handed to sales: `field` holds one of `values`.

    `field` is a contact property by the name records carry it under (HubSpot's internal
    name; a Pipedrive custom field's label in snake_case); values match case-insensitively,
    and a multi-option field matches when any option does. `since_field` holds when the
    contact qualified; without it the contact's creation time is used.
    """

    field: FieldName
    values: tuple[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)], ...] = (
        Field(min_length=1))
    since_field: FieldName | None = None


# HubSpot's lifecycle stage and the date property it sets on entering it
# (https://knowledge.hubspot.com/records/use-lifecycle-stages). Pipedrive has no lifecycle
# stage: a person custom field "Lifecycle stage" is the convention assumed by default.
DEFAULT_SALES_QUALIFIED: dict[str, SalesQualified] = {
    "hubspot": SalesQualified(field="lifecyclestage", values=("salesqualifiedlead",),
                              since_field="hs_lifecyclestage_salesqualifiedlead_date"),
    "pipedrive": SalesQualified(field="lifecycle_stage",
                                values=("Sales qualified lead", "SQL")),
}


class ReportOptions(_Frozen):
    """How `crmsync report` reads the client's records."""

    sales_qualified: SalesQualified | None = None  # None: the CRM's default above
    handoff_days: int = Field(default=14, ge=1, le=3650)

    def sales_qualified_for(self, crm: str) -> SalesQualified:
        return self.sales_qualified or DEFAULT_SALES_QUALIFIED[crm]


class Blueprint(_Frozen):
    """One client's designed sales process, targeting one CRM."""

    client: Key
    crm: CrmName
    currency: Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)] = "EUR"
    language: Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN)] | None = None
    token_env: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)] | None = None
    conflict_policy: ConflictPolicy = "remote_wins"
    sync: SyncOptions = SyncOptions()
    report: ReportOptions = ReportOptions()
    silence: tuple[Silence, ...] = ()
    pipelines: tuple[Pipeline, ...] = Field(min_length=1)

    def pipeline(self, key: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.key == key), None)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Self:
        if info.context and info.context.get(SKIP_REFERENCE_CHECKS):
            return self
        problems = reference_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(f"{format_loc(p.loc)}: {p.message}" for p in problems))
        return self


Loc = tuple[str | int, ...]


class Problem(NamedTuple):
    """A consistency problem in blueprint data, located by its field path."""

    loc: Loc
    message: str
    rule: str | None = None


def format_loc(loc: Loc) -> str:
    """`('pipelines', 0, 'stages', 2, 'key')` -> `pipelines[0].stages[2].key`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate most like `word` (for "did you mean …?"), or None if none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def to_key(text: str) -> str | None:
    """A valid key made from free text ("Needs Assessed" -> "needs_assessed"), if possible."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    key = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:64]
    return key if re.match(KEY_PATTERN, key) else None


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    if not isinstance(value, list | tuple):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Consistency problems in (possibly partly invalid) blueprint data.

    Works on plain dicts so that the loader can report these together with field errors.
    Duplicate keys are errors, not lint: the key is the identity a stage is applied under.
    """
    problems: list[Problem] = []
    seen_pipelines: dict[str, int] = {}
    for p, pipeline in _items(data.get("pipelines")):
        key = pipeline.get("key")
        if isinstance(key, str):
            if key in seen_pipelines:
                problems.append(Problem(
                    ("pipelines", p, "key"),
                    f"pipeline key '{key}' is already used by pipelines[{seen_pipelines[key]}]; "
                    "keys must be unique",
                    "duplicate-key",
                ))
            seen_pipelines.setdefault(key, p)
        stage_keys: dict[str, int] = {}
        for s, stage in _items(pipeline.get("stages")):
            skey = stage.get("key")
            if not isinstance(skey, str):
                continue
            if skey in stage_keys:
                problems.append(Problem(
                    ("pipelines", p, "stages", s, "key"),
                    f"stage key '{skey}' is already used by stages[{stage_keys[skey]}] of this "
                    "pipeline; keys must be unique within a pipeline",
                    "duplicate-key",
                ))
            stage_keys.setdefault(skey, s)
        problems.extend(_retired_problems(p, pipeline, stage_keys))
    return problems


def _retired_problems(p: int, pipeline: Mapping[str, Any], stage_keys: Mapping[str, int]
                      ) -> list[Problem]:
    problems: list[Problem] = []
    for r, retired in _items(pipeline.get("retired_stages")):
        loc: Loc = ("pipelines", p, "retired_stages", r)
        if retired.get("key") is None and retired.get("label") is None:
            problems.append(Problem(
                loc, "a retired stage needs a key or a label, so its deals can be found",
            ))
        rkey = retired.get("key")
        if isinstance(rkey, str) and rkey in stage_keys:
            problems.append(Problem(
                (*loc, "key"),
                f"stage '{rkey}' is retired but still listed under stages; remove it from one",
            ))
        target = retired.get("move_deals_to")
        if isinstance(target, str) and target not in stage_keys:
            message = f"must name a stage key of this pipeline ('{target}' is not one)"
            suggestion = closest(target, list(stage_keys))
            if suggestion:
                message += f"; did you mean '{suggestion}'?"
            problems.append(Problem((*loc, "move_deals_to"), message))
    return problems
