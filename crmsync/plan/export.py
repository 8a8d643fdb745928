"""Turn a CRM's live pipelines into blueprint data (the pure half of `crmsync export`).

Keys come from the store when an id was applied before (so an export after an apply keeps the
keys), otherwise from labels: ASCII slugs with Ukrainian and German transliteration.
The result diffs clean against the same CRM: labels, probabilities, outcomes, rotting and
order are taken as they are.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from crmsync.names import crm_title
from crmsync.plan.diff import normalize_label

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from crmsync.adapters.base import AdapterCapabilities, RemotePipeline
    from crmsync.plan.state import KnownIds

MAX_KEY = 64
MAX_LABEL = 255
MAX_ROT_DAYS = 3650

# Ukrainian national transliteration (Cabinet of Ministers resolution 55, 2010): some letters
# are written differently at the start of a word. Russian-only letters are added for mixed text.
_UK_INITIAL = {"є": "ye", "ї": "yi", "й": "y", "ю": "yu", "я": "ya"}
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "h", "ґ": "g", "д": "d", "е": "e", "є": "ie",
    "ж": "zh", "з": "z", "и": "y", "і": "i", "ї": "i", "й": "i", "к": "k", "л": "l",
    "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
    "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ь": "", "ю": "iu",
    "я": "ia", "ё": "e", "ы": "y", "э": "e", "ъ": "",
}
_GERMAN = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
_APOSTROPHES = "'’ʼ`´"


def transliterate(text: str) -> str:
    """Lower-case ASCII for `text`: Ukrainian and German letters spelled out, accents dropped."""
    lowered = text.lower()
    out: list[str] = []
    for i, char in enumerate(lowered):
        if char in _APOSTROPHES:
            continue
        # An apostrophe inside a word is no word boundary: Знам'янка -> Znamianka (the
        # resolution's own example), so з'ясовано -> ziasovano, not zyasovano.
        before = i - 1
        while before >= 0 and lowered[before] in _APOSTROPHES:
            before -= 1
        at_word_start = before < 0 or not lowered[before].isalpha()
        if char == "г" and i > 0 and lowered[i - 1] == "з":
            out.append("gh")  # зг -> zgh, to tell it from ж (zh)
        elif at_word_start and char in _UK_INITIAL:
            out.append(_UK_INITIAL[char])
        elif char in _CYRILLIC:
            out.append(_CYRILLIC[char])
        elif char in _GERMAN:
            out.append(_GERMAN[char])
        else:
            out.append(char)
    decomposed = unicodedata.normalize("NFKD", "".join(out))
    return decomposed.encode("ascii", "ignore").decode()


def slug_key(label: str, *, prefix: str, taken: Collection[str], position: int) -> str:
    """A key for `label` not in `taken`: `proposal_sent`, `proposal_sent_2`, or `stage_3`."""
    base = re.sub(r"[^a-z0-9]+", "_", transliterate(label)).strip("_")
    if not base:
        base = f"{prefix}_{position}"
    elif not base[0].isalpha():
        base = f"{prefix}_{base}"
    base = base[:MAX_KEY].rstrip("_")
    key, n = base, 1
    while key in taken:
        n += 1
        suffix = f"_{n}"
        key = base[: MAX_KEY - len(suffix)].rstrip("_") + suffix
    return key


@dataclass
class Export:
    """Blueprint data, plus the ids to record under its keys."""

    data: dict[str, Any]
    pipelines: list[tuple[str, str, str]] = field(default_factory=list)  # key, id, label
    stages: list[tuple[str, str, str, str]] = field(default_factory=list)  # pkey, key, id, label


def _label(text: str, fallback: str) -> str:
    cleaned = " ".join(text.split())[:MAX_LABEL].strip()
    return cleaned or fallback


def _probability(value: float | None) -> float:
    if value is None:
        return 0.0
    return min(1.0, max(0.0, round(value, 4)))


def blueprint_from_remote(
    client: str,
    crm: str,
    remote: Sequence[RemotePipeline],
    known: KnownIds,
    capabilities: AdapterCapabilities,
    *,
    token_env: str | None = None,
) -> Export:
    """Blueprint data describing `remote` as it is, keyed by the store's keys where known.

    `token_env` (the variable the export read its token from) is written into the file, so
    the blueprint diffs against the same account it was exported from.
    """
    head: dict[str, Any] = {"client": client, "crm": crm}
    if token_env:
        head["token_env"] = token_env
    export = Export({**head, "pipelines": []})
    pipeline_keys = {rid: key for key, rid in sorted(known.pipelines.items())}
    taken_pipelines: set[str] = set()
    for index, rp in enumerate(remote, start=1):
        key = pipeline_keys.get(rp.id)
        if key is None or key in taken_pipelines:
            key = slug_key(rp.label, prefix="pipeline", taken=taken_pipelines
                           | set(pipeline_keys.values()), position=index)
        taken_pipelines.add(key)
        label = _label(rp.label, f"Pipeline {index}")
        export.pipelines.append((key, rp.id, label))
        stage_keys = {sid: skey for (pkey, skey), sid in sorted(known.stages.items())
                      if pkey == key}
        taken: set[str] = set()
        stages: list[dict[str, Any]] = []
        for position, rs in enumerate(rp.stages, start=1):
            skey = stage_keys.get(rs.id)
            if skey is None or skey in taken:
                skey = slug_key(rs.label, prefix="stage", taken=taken | set(stage_keys.values()),
                                position=position)
            taken.add(skey)
            slabel = _label(rs.label, f"Stage {position}")
            stage: dict[str, Any] = {"key": skey, "label": slabel,
                                     "probability": _probability(rs.probability)}
            if rs.outcome:
                stage["outcome"] = rs.outcome
            if capabilities.rotting and rs.rot_after_days and (
                1 <= rs.rot_after_days <= MAX_ROT_DAYS
            ):
                stage["rot_after_days"] = rs.rot_after_days
            stages.append(stage)
            export.stages.append((key, skey, rs.id, slabel))
        if not capabilities.outcome_stages:
            stages.extend(_outcome_stages(stages))
        pipeline: dict[str, Any] = {"key": key, "label": label, "stages": stages}
        export.data["pipelines"].append(pipeline)
    return export


def _outcome_stages(stages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Won and lost stages for a CRM where they are deal statuses.

    `diff` skips outcome stages there (with a note), so they round-trip clean, and they keep
    the blueprint complete: the same file can target HubSpot, where they are stages.
    """
    keys = {s["key"] for s in stages}
    labels = {normalize_label(s["label"]) for s in stages}
    added: list[dict[str, Any]] = []
    for outcome, label, alternative, probability in (("won", "Won", "Deal won", 1.0),
                                                     ("lost", "Lost", "Deal lost", 0.0)):
        chosen = label if normalize_label(label) not in labels else alternative
        key = slug_key(outcome, prefix="stage", taken=keys, position=0)
        keys.add(key)
        added.append({"key": key, "label": chosen, "probability": probability,
                      "outcome": outcome})
    return added


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: object) -> bool:
        # Never `&id001` / `*id001`: the loader refuses aliases in blueprints.
        return True


def to_yaml(data: dict[str, Any], *, crm: str, exported_at: dt.date | None = None) -> str:
    """Blueprint data as YAML text with a short header; non-ASCII labels stay readable."""
    day = (exported_at or dt.datetime.now(dt.UTC).date()).isoformat()
    header = [
        f"# {data['client']}: exported from {crm_title(crm)} by `crmsync export` on {day}.",
        "# Keys are the identity crmsync remembers: to rename a stage, change its label and keep",
        "# its key. Review the stages against the method (past tense, buyer's side, active steps).",
    ]
    if crm == "pipedrive":
        header.append("# Pipedrive keeps won/lost as deal statuses: the outcome stages below are "
                      "not created there.")
    body = yaml.dump(data, Dumper=_IndentedDumper, allow_unicode=True, sort_keys=False,
                     default_flow_style=False, width=100)
    return "\n".join(header) + "\n" + body
