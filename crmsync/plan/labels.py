"""Labels that change hands inside one apply, where the CRM allows each label only once.

HubSpot refuses a second stage with the same label in a pipeline (400) and a second pipeline
with the same label in the account (409); Pipedrive allows both, so nothing here runs for it.
`diff` calls these after planning a pipeline's changes (pure, no I/O):

- a label wanted by a create or a rename, but held by an object the plan keeps (a stage
  still holding deals, a pipeline the blueprint does not manage), is a *blocked* change;
- a label given up in the plan (renamed away, archived) is handed over by order alone:
  `crmsync.plan.order` runs the giving-up before the taking (an archive before a create);
- hand-overs that go round in a cycle (two stages swapping labels; a retired stage whose
  deals move into a new stage that takes its label) get a park: one object of the cycle
  steps aside under a temporary label ("Proposal sent (renaming)") first. The same happens
  where archiving first would leave a pipeline without stages (HubSpot refuses that).

The temporary label is deterministic and collides with no label the pipeline has or gets.
A kill after the park leaves it on a known id: the next `diff` plans a plain rename.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, assert_never

from crmsync.adapters.base import StageSpec
from crmsync.plan.changes import (
    AdoptPipeline,
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    Blocked,
    CreatePipeline,
    CreateStage,
    ForgetPipeline,
    ForgetStage,
    MoveDeals,
    Note,
    ParkPipeline,
    ParkStage,
    PipelinePlan,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.order import Schedule, Unit, label_key

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from crmsync.adapters.base import RemotePipeline, RemoteStage
    from crmsync.plan.changes import Change, Item

SUFFIXES = {"rename": "renaming", "archive": "archiving"}
MAX_LABEL = 255  # the blueprint's limit for a label
_PARKED = re.compile(r"^(?P<base>.*\S)\s+\((?:renaming|archiving)(?: \d+)?\)$")


def unparked(label: str) -> str:
    """The label a temporary one was made from ("Won (renaming)" -> "Won"), else `label`."""
    found = _PARKED.match(label.strip())
    return found.group("base") if found else label


def temporary_label(label: str, then: str, taken: Iterable[str]) -> str:
    """`<label> (renaming)`, or `(renaming 2)`… if that is taken too (never a label in use),
    shortened to fit the 255 characters a label may have."""
    used = {label_key(t) for t in taken}
    base = unparked(label).strip()
    n = 1
    while True:
        suffix = f" ({SUFFIXES[then]})" if n == 1 else f" ({SUFFIXES[then]} {n})"
        candidate = base[:MAX_LABEL - len(suffix)].rstrip() + suffix
        if label_key(candidate) not in used:
            return candidate
        n += 1


def _changes(items: Iterable[Item]) -> list[Change]:
    return [i for i in items if not isinstance(i, Blocked | Note)]


def _victim(schedule: Schedule, stuck: Sequence[Unit]) -> Unit:
    """Which object of a label cycle steps aside: a renamed one if any, else an archived one
    (then the first in plan order)."""
    cycle = schedule.cycle(stuck)
    givers = [u for u, nxt in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
              if schedule.gives_up_label_to(u, nxt)]
    return min(givers, key=lambda u: (not isinstance(u.first, UpdateStage | UpdatePipeline),
                                      u.index))


# --- stages ----------------------------------------------------------------------------------


def settle_stage_labels(items: list[Item], remote: RemotePipeline, crm: str) -> list[Item]:
    """The items of one existing pipeline, made safe for unique stage labels."""
    items = _block_kept_stage_labels(items, remote, crm)
    parked: set[str] = set()
    while True:
        schedule = Schedule(_changes(items), unique_labels=True)
        done, stuck = schedule.order()
        if stuck:
            victim: str | None = _stage_id(_victim(schedule, stuck).first)
        else:
            victim = _emptying_archive(done, remote)
        if victim is None or victim in parked:
            return items
        parked.add(victim)
        items = _park_stage(items, remote, victim)


def _stage_id(change: Change) -> str | None:
    return change.stage_id if isinstance(change, UpdateStage | ArchiveStage) else None


def _emptying_archive(done: Sequence[Unit], remote: RemotePipeline) -> str | None:
    """An archive pulled before a create that would leave the pipeline with no stage."""
    live = len(remote.stages)
    changes = [c for unit in done for c in unit.changes]
    for i, change in enumerate(changes):
        if isinstance(change, CreateStage):
            live += 1
        elif isinstance(change, ArchiveStage):
            live -= 1
            if live <= 0 and any(isinstance(c, CreateStage) for c in changes[i:]):
                return change.stage_id
    return None


def _park_stage(items: list[Item], remote: RemotePipeline, stage_id: str) -> list[Item]:
    rs = remote.stage_by_id(stage_id)
    if rs is None:  # pragma: no cover - every planned stage id comes from `remote`
        return items
    mine = [c for c in _changes(items) if _about_stage(c, stage_id)]
    rename = next((c for c in mine if isinstance(c, UpdateStage) and c.field == "label"), None)
    taken = [s.label for s in remote.stages]
    taken += [c.spec.label for c in _changes(items) if isinstance(c, CreateStage | UpdateStage)]
    taken += [c.temporary for c in _changes(items) if isinstance(c, ParkStage)]
    if rename is not None:
        temporary = temporary_label(rs.label, "rename", taken)
        park = ParkStage(rename.pipeline, rename.pipeline_id, rename.stage, stage_id, rs.label,
                         temporary, replace(rename.spec, label=temporary))
    else:
        archive = next(c for c in mine if isinstance(c, ArchiveStage))
        temporary = temporary_label(rs.label, "archive", taken)
        park = ParkStage(archive.pipeline, archive.pipeline_id, archive.stage, stage_id,
                         rs.label, temporary, _as_it_is(rs, temporary), "archive")
    at = next(i for i, item in enumerate(items) if _about_stage(item, stage_id))
    return [*items[:at], park, *items[at:]]


def _about_stage(item: Item, stage_id: str) -> bool:
    match item:
        case UpdateStage() | ArchiveStage() | ParkStage():
            return item.stage_id == stage_id
        case MoveDeals():
            return item.from_stage_id == stage_id
        case (CreatePipeline() | UpdatePipeline() | ArchivePipeline() | ParkPipeline()
              | CreateStage() | AdoptPipeline() | AdoptStage() | ForgetPipeline() | ForgetStage()
              | Blocked() | Note()):
            return False
        case _:
            assert_never(item)


def _as_it_is(rs: RemoteStage, label: str) -> StageSpec:
    """A stage as the CRM has it, under another label (written whole, like every update)."""
    return StageSpec(label, rs.order, rs.probability if rs.probability is not None else 0.0,
                     rs.outcome, rs.rot_after_days)


def _block_kept_stage_labels(items: list[Item], remote: RemotePipeline, crm: str
                             ) -> list[Item]:
    """A create or rename to a label that a stage the plan keeps still holds is blocked."""
    gives_up = {c.stage_id for c in _changes(items)
                if isinstance(c, ArchiveStage) or (isinstance(c, UpdateStage)
                                                   and c.field == "label")}

    def keeper(label: str, itself: str | None) -> RemoteStage | None:
        return next((rs for rs in remote.stages if rs.id != itself and rs.id not in gives_up
                     and label_key(rs.label) == label_key(label)), None)

    out: list[Item] = []
    kept_label: dict[str, str] = {}  # stage id -> its label, where its rename is blocked
    blocked_creates: set[str] = set()
    for item in items:
        if isinstance(item, CreateStage) and (holder := keeper(item.spec.label, None)):
            blocked_creates.add(item.stage)
            out.append(Blocked(item.pipeline, f"stage '{item.spec.label}' ({item.stage})",
                               "label-taken", {"kind": "stage", "action": "create",
                                               "new": item.spec.label, "holder": holder.label,
                                               "crm": crm}, item))
        elif (isinstance(item, UpdateStage) and item.field == "label"
              and (holder := keeper(str(item.new), item.stage_id))):
            kept_label[item.stage_id] = str(item.old)
            out.append(Blocked(item.pipeline, f"stage '{item.old}' ({item.stage})",
                               "label-taken", {"kind": "stage", "action": "rename",
                                               "new": str(item.new), "holder": holder.label,
                                               "crm": crm}, item))
        else:
            out.append(item)
    if not kept_label and not blocked_creates:
        return items
    return list(_follow_blocks(out, kept_label, blocked_creates))


def _follow_blocks(items: list[Item], kept_label: dict[str, str], blocked_creates: set[str]
                   ) -> Iterable[Item]:
    """A stage whose rename is blocked keeps its label in its other updates; deals that were
    to move into a stage that cannot be created stay, and so does their stage."""
    stranded: set[str] = set()
    for item in items:
        if isinstance(item, UpdateStage) and item.stage_id in kept_label:
            yield replace(item, spec=replace(item.spec, label=kept_label[item.stage_id]))
        elif isinstance(item, MoveDeals) and item.to_stage_id is None and (
            item.to_stage in blocked_creates
        ):
            stranded.add(item.from_stage_id)
            yield Blocked(item.pipeline, f"stage '{item.from_label}'", "move-target-blocked",
                          {"target": item.to_stage}, item)
        elif isinstance(item, ArchiveStage) and item.stage_id in stranded:
            yield Blocked(item.pipeline, f"stage '{item.label}'", "deals-stranded", {}, item)
        else:
            yield item


# --- pipelines -------------------------------------------------------------------------------


def settle_pipeline_labels(plans: list[PipelinePlan], remote: Sequence[RemotePipeline],
                           crm: str) -> list[PipelinePlan]:
    """Every pipeline plan of one account, made safe for unique pipeline labels."""
    plans = [_block_kept_pipeline_labels(p, plans, remote, crm) for p in plans]
    parked: set[str] = set()
    while True:
        changes = [c for p in plans for c in _changes(p.items)
                   if isinstance(c, CreatePipeline | UpdatePipeline | ArchivePipeline
                                 | ParkPipeline)]
        schedule = Schedule(changes, unique_labels=True)
        _, stuck = schedule.order()
        if not stuck:
            return plans
        victim = _victim(schedule, stuck).first
        if not isinstance(victim, UpdatePipeline) or victim.pipeline_id in parked:
            return plans  # pragma: no cover - only renames can close a cycle of pipelines
        parked.add(victim.pipeline_id)
        plans = [_park_pipeline(p, victim, remote, plans) if p.key == victim.pipeline else p
                 for p in plans]


def _park_pipeline(plan: PipelinePlan, rename: UpdatePipeline,
                   remote: Sequence[RemotePipeline], plans: Sequence[PipelinePlan]
                   ) -> PipelinePlan:
    taken = [rp.label for rp in remote] + [p.label for p in plans]
    taken += [c.temporary for p in plans for c in p.items if isinstance(c, ParkPipeline)]
    current = next(rp.label for rp in remote if rp.id == rename.pipeline_id)
    park = ParkPipeline(rename.pipeline, rename.pipeline_id, current,
                        temporary_label(current, "rename", taken), rename.order)
    at = next(i for i, item in enumerate(plan.items) if isinstance(item, UpdatePipeline))
    return replace(plan, items=(*plan.items[:at], park, *plan.items[at:]))


def _block_kept_pipeline_labels(plan: PipelinePlan, plans: Sequence[PipelinePlan],
                                remote: Sequence[RemotePipeline], crm: str) -> PipelinePlan:
    gives_up = {c.pipeline_id for p in plans for c in _changes(p.items)
                if isinstance(c, ArchivePipeline) or (isinstance(c, UpdatePipeline)
                                                      and c.field == "label")}

    def keeper(label: str, itself: str | None) -> RemotePipeline | None:
        return next((rp for rp in remote if rp.id != itself and rp.id not in gives_up
                     and label_key(rp.label) == label_key(label)), None)

    items: list[Item] = []
    kept: str | None = None
    for item in plan.items:
        if isinstance(item, CreatePipeline) and (holder := keeper(item.label, None)):
            items.append(Blocked(item.pipeline, f"pipeline '{item.label}'", "label-taken",
                                 {"kind": "pipeline", "action": "create", "new": item.label,
                                  "holder": holder.label, "crm": crm}, item))
        elif (isinstance(item, UpdatePipeline) and item.field == "label"
              and (holder := keeper(str(item.new), item.pipeline_id))):
            kept = str(item.old)
            items.append(Blocked(item.pipeline, f"pipeline '{item.old}' ({item.pipeline})",
                                 "label-taken", {"kind": "pipeline", "action": "rename",
                                                 "new": str(item.new), "holder": holder.label,
                                                 "crm": crm}, item))
        else:
            items.append(item)
    if kept is not None:
        items = [replace(i, label=kept) if isinstance(i, UpdatePipeline) else i for i in items]
    return replace(plan, items=tuple(items))
