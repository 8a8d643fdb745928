"""The order `apply` runs a plan's changes in. Pure: the plan's own data decides it.

By phase first — adopt → park → create pipelines → create stages → update pipelines → update
stages → move deals → archive stages → archive pipelines → forget — with two kinds of
dependency that may pull a change earlier:

- deals: a stage is created before deals move into it, deals move before their stage goes;
- labels, where the CRM refuses two objects with one label (`Plan.unique_labels`; HubSpot:
  stage labels within a pipeline, pipeline labels within the account): whatever gives a
  label up (a rename away, an archive, a park) runs before whatever takes it (a create, a
  rename to it). So an archive can run before a create, a rename before another rename.

Every object's updates run together (the adapters write the whole object in one call). If
the label hand-overs form a cycle — two stages swapping labels — no order works: `diff`
breaks every cycle with a `ParkStage`/`ParkPipeline` (a temporary label first), using
`Schedule.cycle` to find them. A plan built by hand with a cycle left in runs the rest by
phase, and the CRM's own error says what went wrong.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, assert_never

from crmsync.plan.changes import (
    AdoptPipeline,
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    CreatePipeline,
    CreateStage,
    ForgetPipeline,
    ForgetStage,
    MoveDeals,
    ParkPipeline,
    ParkStage,
    UpdatePipeline,
    UpdateStage,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crmsync.plan.changes import Change

PHASES: tuple[type, ...] = (  # every change type; one missing fails `_phase`
    AdoptPipeline, AdoptStage, ParkPipeline, ParkStage, CreatePipeline, CreateStage,
    UpdatePipeline, UpdateStage, MoveDeals, ArchiveStage, ArchivePipeline, ForgetStage,
    ForgetPipeline,
)

PIPELINES = ""  # the scope of pipeline labels: the whole account
Slot = tuple[str, str]  # (scope: a pipeline id for stage labels, or PIPELINES; label key)


def label_key(label: str) -> str:
    """Two labels the CRM counts as the same: HubSpot ignores case and surrounding blanks
    (as the sandbox's emulator, crmsync/sandbox/hubspot.py `_check_unique_labels`, does)."""
    return label.strip().lower()


@dataclass
class Unit:
    """Changes that run as one step: all updates of one object (one write), else one change."""

    changes: list[Change]
    phase: int
    index: int
    takes: set[Slot] = field(default_factory=set)
    releases: set[Slot] = field(default_factory=set)

    @property
    def first(self) -> Change:
        return self.changes[0]


def _object_id(change: Change) -> tuple[str, str] | None:
    """The remote object a write touches, for changes that may share one write."""
    match change:
        case UpdateStage() | ParkStage() | ArchiveStage():
            return ("stage", change.stage_id)
        case UpdatePipeline() | ParkPipeline() | ArchivePipeline():
            return ("pipeline", change.pipeline_id)
        case (CreatePipeline() | CreateStage() | MoveDeals() | AdoptPipeline() | AdoptStage()
              | ForgetPipeline() | ForgetStage()):
            return None
        case _:
            assert_never(change)


class Schedule:
    """The dependency graph of a list of changes, and the order it allows."""

    def __init__(self, changes: Sequence[Change], *, unique_labels: bool) -> None:
        self.units = _units(changes)
        self.unique_labels = unique_labels
        self.after: dict[int, set[int]] = {u.index: set() for u in self.units}  # preds
        self.slot_edges: set[tuple[int, int]] = set()
        self._link()

    def _link(self) -> None:
        self._deal_edges()
        parked = self._park_edges()
        if self.unique_labels:
            self._label_edges(parked)

    def _deal_edges(self) -> None:
        """A stage is created before deals move into it; deals move before it is archived."""
        created = {(u.first.pipeline, u.first.stage): u for u in self.units
                   if isinstance(u.first, CreateStage)}
        moves = {u.first.from_stage_id: u for u in self.units if isinstance(u.first, MoveDeals)}
        for unit in self.units:
            change = unit.first
            if isinstance(change, MoveDeals) and change.to_stage_id is None:
                target = created.get((change.pipeline, change.to_stage))
                if target is not None:
                    self._edge(target, unit)
            if isinstance(change, ArchiveStage) and change.stage_id in moves:
                self._edge(moves[change.stage_id], unit)

    def _park_edges(self) -> set[tuple[str, str] | None]:
        """An object's park runs before its other writes; returns the parked objects."""
        by_object: dict[tuple[str, str] | None, list[Unit]] = {}
        for unit in self.units:
            by_object.setdefault(_object_id(unit.first), []).append(unit)
        parked = {_object_id(u.first) for u in self.units
                  if isinstance(u.first, ParkStage | ParkPipeline)}
        for unit in self.units:
            if isinstance(unit.first, ParkStage | ParkPipeline):
                for other in by_object[_object_id(unit.first)]:
                    if other is not unit:
                        self._edge(unit, other)
        return parked

    def _label_edges(self, parked: set[tuple[str, str] | None]) -> None:
        """Whatever gives a label up runs before whatever takes it."""
        releasers: dict[Slot, list[Unit]] = {}
        for unit in self.units:
            if _object_id(unit.first) in parked and not isinstance(
                unit.first, ParkStage | ParkPipeline
            ):
                continue  # its park gave the label up already
            for slot in unit.releases:
                releasers.setdefault(slot, []).append(unit)
        for unit in self.units:
            for slot in unit.takes:
                for releaser in releasers.get(slot, []):
                    if releaser is not unit:
                        self._edge(releaser, unit)
                        self.slot_edges.add((releaser.index, unit.index))

    def _edge(self, before: Unit, after: Unit) -> None:
        self.after[after.index].add(before.index)

    def order(self) -> tuple[list[Unit], list[Unit]]:
        """(units in a safe order, units caught in a cycle or behind one)."""
        waiting = {i: set(preds) for i, preds in self.after.items()}
        followers: dict[int, list[int]] = {u.index: [] for u in self.units}
        for i, preds in self.after.items():
            for p in preds:
                followers[p].append(i)
        by_index = {u.index: u for u in self.units}
        ready = [(u.phase, u.index) for u in self.units if not waiting[u.index]]
        heapq.heapify(ready)
        done: list[Unit] = []
        while ready:
            _, i = heapq.heappop(ready)
            done.append(by_index[i])
            for f in followers[i]:
                waiting[f].discard(i)
                if not waiting[f]:
                    heapq.heappush(ready, (by_index[f].phase, f))
        finished = {u.index for u in done}
        stuck = sorted((u for u in self.units if u.index not in finished),
                       key=lambda u: (u.phase, u.index))
        return done, stuck

    def cycle(self, stuck: Sequence[Unit]) -> list[Unit]:
        """One cycle among `stuck` units, each unit followed by one that waits for it."""
        left = {u.index for u in stuck}
        by_index = {u.index: u for u in self.units}
        path: list[int] = []
        seen: dict[int, int] = {}
        current = min(left)
        while current not in seen:  # every stuck unit waits for another stuck unit
            seen[current] = len(path)
            path.append(current)
            current = min(p for p in self.after[current] if p in left)
        loop = path[seen[current]:]
        return [by_index[i] for i in reversed(loop)]  # reversed: predecessors first

    def gives_up_label_to(self, unit: Unit, taker: Unit) -> bool:
        return (unit.index, taker.index) in self.slot_edges


def _units(changes: Sequence[Change]) -> list[Unit]:
    units: list[Unit] = []
    writes: dict[tuple[str, str], Unit] = {}
    for index, change in enumerate(changes):
        phase = _phase(change)
        obj = _object_id(change)
        if isinstance(change, UpdateStage | UpdatePipeline) and obj is not None:
            if obj in writes:
                writes[obj].changes.append(change)
                _label_slots(writes[obj], change)
                continue
            unit = Unit([change], phase, index)
            writes[obj] = unit
        else:
            unit = Unit([change], phase, index)
        _label_slots(unit, change)
        units.append(unit)
    return units


def _phase(change: Change) -> int:
    if type(change) not in PHASES:
        raise TypeError(f"{type(change).__name__} has no phase in the apply order (PHASES)")
    return PHASES.index(type(change))


def _label_slots(unit: Unit, change: Change) -> None:
    """The labels a change takes and gives up (whatever the CRM: only used if unique)."""
    match change:
        case CreatePipeline():
            unit.takes.add((PIPELINES, label_key(change.label)))
        case UpdatePipeline():
            unit.takes.add((PIPELINES, label_key(change.label)))
            if change.field == "label":
                unit.releases.add((PIPELINES, label_key(str(change.old))))
        case ArchivePipeline():
            unit.releases.add((PIPELINES, label_key(change.label)))
        case ParkPipeline():
            unit.releases.add((PIPELINES, label_key(change.label)))
            unit.takes.add((PIPELINES, label_key(change.temporary)))
        case CreateStage():
            unit.takes.add((change.pipeline_id, label_key(change.spec.label)))
        case UpdateStage():
            unit.takes.add((change.pipeline_id, label_key(change.spec.label)))
            if change.field == "label":
                unit.releases.add((change.pipeline_id, label_key(str(change.old))))
        case ArchiveStage():
            unit.releases.add((change.pipeline_id, label_key(change.label)))
        case ParkStage():
            unit.releases.add((change.pipeline_id, label_key(change.label)))
            unit.takes.add((change.pipeline_id, label_key(change.temporary)))
        case MoveDeals() | AdoptPipeline() | AdoptStage() | ForgetPipeline() | ForgetStage():
            pass  # no label taken or given up
        case _:
            assert_never(change)


def apply_order(changes: Sequence[Change], *, unique_labels: bool) -> list[Change]:
    """`changes` in the order `apply` runs them (anything left in a cycle last, by phase)."""
    done, stuck = Schedule(changes, unique_labels=unique_labels).order()
    return [c for unit in (*done, *stuck) for c in unit.changes]
