"""`apply`: carry out a `Plan` through a `CrmAdapter`, recording state after every step.

Order is chosen for safety (`crmsync.plan.order`): by phase — adopt (state only) → park →
create pipelines → create stages → updates → move deals → archive stages → archive pipelines
→ forget stale ids (state only) — except that deals move before their stage goes (into a
stage created first), and, where the CRM allows each label once, a label is given up (renamed
away, archived, parked under a temporary label) before another object takes it. Every archive
re-counts deals first (the plan may be minutes old). Each step's ids are recorded as soon as
it succeeds, so an apply killed half-way resumes on re-run without duplicates:
`diff` then finds what was made by state (or, if the kill came between the CRM's answer and the
record, by label) and plans only the rest — a stage left under its temporary label is a plain
rename then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never

from crmsync.errors import CrmsyncError
from crmsync.plan.changes import (
    AdoptPipeline,
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    Blocked,
    Change,
    CreatePipeline,
    CreateStage,
    ForgetPipeline,
    ForgetStage,
    MoveDeals,
    ParkPipeline,
    ParkStage,
    Plan,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.diff import normalize_label
from crmsync.plan.order import apply_order
from crmsync.plan.render import describe_item

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from crmsync.adapters.base import CrmAdapter, RemoteStage
    from crmsync.plan.changes import NewStage
    from crmsync.plan.state import StateRecorder

class ApplyStepError(CrmsyncError):
    """A step that cannot be carried out safely (e.g. a stage gained deals since the plan)."""


@dataclass(frozen=True)
class ApplyResult:
    """What one apply did: the steps that succeeded, those skipped as blocked, the error."""

    applied: tuple[Change, ...]
    blocked: tuple[Blocked, ...]
    error: str | None = None
    failed: Change | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def ordered_changes(plan: Plan) -> list[Change]:
    """The plan's changes in the order `apply` runs them (stable within a phase)."""
    return apply_order(plan.changes, unique_labels=plan.unique_labels)


def apply(
    plan: Plan,
    adapter: CrmAdapter,
    state: StateRecorder,
    *,
    on_step: Callable[[Change], None] | None = None,
) -> ApplyResult:
    """Run every change of `plan` that is not blocked; stop at the first failing step."""
    runner = _Runner(adapter, state)
    applied: list[Change] = []
    for change in ordered_changes(plan):
        try:
            runner.run(change)
        except CrmsyncError as exc:
            return ApplyResult(tuple(applied), plan.blocked,
                               f"{describe_item(change)}: {exc}", change)
        applied.append(change)
        if on_step is not None:
            on_step(change)
    return ApplyResult(tuple(applied), plan.blocked)


class _Runner:
    def __init__(self, adapter: CrmAdapter, state: StateRecorder) -> None:
        self.adapter = adapter
        self.state = state
        self.written: set[tuple[str, str]] = set()  # objects already written in this run

    def run(self, change: Change) -> None:  # noqa: PLR0912 -- one branch per change type
        match change:
            case AdoptPipeline() | AdoptStage() | ForgetStage() | ForgetPipeline():
                self._state_only(change)
            case CreatePipeline():
                self._create_pipeline(change)
            case CreateStage():
                self._create_stage(change)
            case UpdatePipeline():
                # Adapters write label and order together: one call covers every field.
                if ("pipeline", change.pipeline_id) not in self.written:
                    self.adapter.update_pipeline(change.pipeline_id, label=change.label,
                                                 order=change.order)
                    self.written.add(("pipeline", change.pipeline_id))
                    self.state.record_pipeline(change.pipeline, change.pipeline_id, change.label)
            case UpdateStage():
                if ("stage", change.stage_id) not in self.written:
                    self.adapter.update_stage(change.pipeline_id, change.stage_id, change.spec)
                    self.written.add(("stage", change.stage_id))
                    self.state.record_stage(change.pipeline, change.stage, change.stage_id,
                                            change.spec.label)
            case ParkStage() | ParkPipeline():
                self._park(change)
            case MoveDeals():
                self._move_deals(change)
            case ArchiveStage():
                self._ensure_empty(change.pipeline_id, (change.stage_id,),
                                   f"stage '{change.label}'")
                self.adapter.archive_stage(change.pipeline_id, change.stage_id)
                if change.stage:
                    self.state.forget_stage(change.pipeline, change.stage)
            case ArchivePipeline():
                self._ensure_empty(change.pipeline_id, change.stage_ids,
                                   f"pipeline '{change.label}'")
                self.adapter.archive_pipeline(change.pipeline_id)
                self.state.forget_pipeline(change.pipeline)
            case _:
                # A change type without a case here must fail, never count as applied: mypy
                # flags the missing case (the `Change` union), and at run time this raises.
                assert_never(change)

    def _state_only(self, change: AdoptPipeline | AdoptStage | ForgetStage | ForgetPipeline
                    ) -> None:
        """Steps that only bring the store in line with a CRM that already matches."""
        match change:
            case AdoptPipeline():
                self.state.record_pipeline(change.pipeline, change.pipeline_id, change.label)
            case AdoptStage():
                self.state.record_stage(change.pipeline, change.stage, change.stage_id,
                                        change.label)
            case ForgetStage():
                self.state.forget_stage(change.pipeline, change.stage)
            case ForgetPipeline():
                self.state.forget_pipeline(change.pipeline)
            case _:
                assert_never(change)

    def _park(self, change: ParkStage | ParkPipeline) -> None:
        """A temporary label only: the object's real write (rename or archive) follows, so
        it is not marked as written."""
        if isinstance(change, ParkStage):
            self.adapter.update_stage(change.pipeline_id, change.stage_id, change.spec)
            if change.stage:
                self.state.record_stage(change.pipeline, change.stage, change.stage_id,
                                        change.temporary)
        else:
            self.adapter.update_pipeline(change.pipeline_id, label=change.temporary,
                                         order=change.order)
            self.state.record_pipeline(change.pipeline, change.pipeline_id, change.temporary)

    def _create_pipeline(self, change: CreatePipeline) -> None:
        created = self.adapter.create_pipeline(
            change.label, change.order, [s.spec for s in change.stages]
        )
        self.state.record_pipeline(change.pipeline, created.id, change.label)
        for new, remote in _pair_stages(change.stages, created.stages):
            self.state.record_stage(change.pipeline, new.key, remote.id, new.spec.label)

    def _create_stage(self, change: CreateStage) -> None:
        created = self.adapter.create_stage(change.pipeline_id, change.spec)
        if created is None:  # an outcome the CRM keeps as a deal status, not a stage
            raise ApplyStepError(f"{self.adapter.crm} did not create stage "
                                 f"'{change.spec.label}' (outcome stages are statuses there)")
        self.state.record_stage(change.pipeline, change.stage, created.id, change.spec.label)

    def _move_deals(self, change: MoveDeals) -> None:
        target = change.to_stage_id or self.state.known_ids().stages.get(
            (change.pipeline, change.to_stage)
        )
        if target is None:
            raise ApplyStepError(f"stage {change.to_stage} does not exist yet; deals not moved")
        self.adapter.move_deals(change.pipeline_id, change.from_stage_id, target)

    def _ensure_empty(self, pipeline_id: str, stage_ids: Sequence[str], what: str) -> None:
        held = sum(self.adapter.count_deals(pipeline_id, sid) for sid in stage_ids)
        if held:
            raise ApplyStepError(
                f"{what} holds {held} deal{'' if held == 1 else 's'} now; not archived "
                "(run diff again: deals were added since the plan was made)"
            )


def _pair_stages(
    wanted: Sequence[NewStage], created: Sequence[RemoteStage]
) -> list[tuple[NewStage, RemoteStage]]:
    """Which created stage is which: by label, else by position among the rest."""
    left = list(created)
    pairs: list[tuple[NewStage, RemoteStage]] = []
    unpaired: list[NewStage] = []
    for new in wanted:
        norm = normalize_label(new.spec.label)
        found = next((r for r in left if normalize_label(r.label) == norm), None)
        if found is None:
            unpaired.append(new)
        else:
            left.remove(found)
            pairs.append((new, found))
    pairs.extend(zip(unpaired, left, strict=False))
    return pairs
