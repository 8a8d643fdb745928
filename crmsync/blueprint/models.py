"""Pydantic models of a blueprint: one client, one CRM, its pipelines and their stages.

Models are frozen and forbid unknown keys, so a typo in a config is an error that points at
its line (see `loader.py`), not a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64),
    Field(description="stable identifier: lowercase letters, digits and underscores"),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Outcome = Literal["won", "lost"]
CrmName = Literal["hubspot", "pipedrive"]
ConflictPolicy = Literal["remote_wins", "local_wins", "newest_wins"]


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
    outcome: Outcome | None = None
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

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.outcome is None)

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)


class Blueprint(_Frozen):
    """One client's designed sales process, targeting one CRM."""

    client: Key
    crm: CrmName
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] | None = None
    token_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    conflict_policy: ConflictPolicy = "remote_wins"
    silence: tuple[Silence, ...] = ()
    pipelines: tuple[Pipeline, ...] = Field(min_length=1)

    def pipeline(self, key: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.key == key), None)
