"""An in-memory CRM implementing the `CrmAdapter` protocol, HubSpot- or Pipedrive-flavoured.

It keeps the API differences that matter to planning: Pipedrive has no outcome stages, no
writable order (new stages go last) and whole-percent probabilities; HubSpot has no rotting,
refuses a second stage with one label in a pipeline (400) or a second pipeline with one label
(409), and a pipeline without stages (400) — as the sandbox does. Pipedrive allows duplicates.
`crash_at` makes the n-th write fail — before or after it took effect — to simulate a kill.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from crmsync.adapters.base import AdapterCapabilities, RemotePipeline, RemoteStage, StageSpec
from crmsync.blueprint.models import Blueprint
from crmsync.errors import FatalRemoteError, RetriableRemoteError

if TYPE_CHECKING:
    from collections.abc import Sequence

HUBSPOT = AdapterCapabilities(
    pipeline_order_writable=True, stage_order_writable=True, outcome_stages=True,
    rotting=False, probability_step=0.1, max_stages_per_pipeline=100, unique_labels=True,
)
PIPEDRIVE = AdapterCapabilities(
    pipeline_order_writable=False, stage_order_writable=False, outcome_stages=False,
    rotting=True, probability_step=0.01, max_stages_per_pipeline=None,
    order_note="Pipedrive API v2 has no writable stage order; reorder the stages in Pipedrive.",
)


class CrashError(RetriableRemoteError):
    def __init__(self) -> None:
        super().__init__("fake", "connection dropped (simulated kill)")


@dataclass
class _Pipeline:
    id: str
    label: str
    order: int
    stages: list[RemoteStage] = field(default_factory=list)


class FakeCrm:
    """A CRM account in memory; `calls` lists every write for assertions."""

    def __init__(self, crm: str = "hubspot", *, crash_at: int | None = None,
                 crash_after_effect: bool = False) -> None:
        self.crm = crm
        self.capabilities = HUBSPOT if crm == "hubspot" else PIPEDRIVE
        self._pipelines: list[_Pipeline] = []
        self.deals: dict[str, int] = {}
        self.calls: list[tuple[str, ...]] = []
        self.crash_at = crash_at
        self.crash_after_effect = crash_after_effect
        self._writes = 0
        self._next_id = 100

    def account_id(self) -> str:
        return f"fake-{self.crm}-account"

    # --- helpers for tests ------------------------------------------------------------------

    def _id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _write(self, *call: str) -> bool:
        """Count a write; raise before it takes effect, or say it must raise after."""
        self._writes += 1
        crash = self.crash_at is not None and self._writes == self.crash_at
        if crash and not self.crash_after_effect:
            raise CrashError
        self.calls.append(call)
        return crash

    def _unique_stage(self, p: _Pipeline, label: str, stage_id: str | None = None) -> None:
        if self.crm == "hubspot" and any(
            s.label.strip().lower() == label.strip().lower() and s.id != stage_id
            for s in p.stages
        ):
            raise FatalRemoteError(self.crm, f"duplicate stage label {label!r}", status=400)

    def _unique_pipeline(self, label: str, pipeline_id: str | None = None) -> None:
        if self.crm == "hubspot" and any(
            p.label.strip().lower() == label.strip().lower() and p.id != pipeline_id
            for p in self._pipelines
        ):
            raise FatalRemoteError(self.crm, f"pipeline label {label!r} exists", status=409)

    def _pipeline(self, pipeline_id: str) -> _Pipeline:
        for p in self._pipelines:
            if p.id == pipeline_id:
                return p
        raise FatalRemoteError(self.crm, f"pipeline {pipeline_id} not found", status=404)

    def _stage(self, spec: StageSpec, stage_id: str, order: int) -> RemoteStage:
        if self.crm == "hubspot":
            return RemoteStage(stage_id, spec.label, order, round(spec.probability, 1),
                               spec.outcome, None)
        return RemoteStage(stage_id, spec.label, order, round(spec.probability * 100) / 100,
                           None, spec.rot_after_days)

    def seed(self, label: str, stages: Sequence[tuple[str, float]],
             order: int | None = None) -> RemotePipeline:
        """Add a pipeline directly (no call recorded), e.g. what a user made by hand.

        On HubSpot, stages labelled Won/Lost are closed stages.
        """
        pipeline = _Pipeline(self._id(), label, len(self._pipelines) if order is None else order)
        for i, (name, prob) in enumerate(stages):
            outcome = None
            if self.crm == "hubspot" and name in ("Won", "Lost"):
                outcome = name.lower()
            pipeline.stages.append(RemoteStage(self._id(), name, i, prob, outcome))
        self._pipelines.append(pipeline)
        return self.snapshot(pipeline)

    def snapshot(self, p: _Pipeline) -> RemotePipeline:
        stages = sorted(p.stages, key=lambda s: (s.order, s.label))
        return RemotePipeline(p.id, p.label, p.order, tuple(stages))

    def stage_ids(self) -> set[str]:
        return {s.id for p in self._pipelines for s in p.stages}

    # --- the CrmAdapter protocol --------------------------------------------------------------

    def list_pipelines(self) -> list[RemotePipeline]:
        return [self.snapshot(p) for p in sorted(self._pipelines, key=lambda p: (p.order,
                                                                                   p.label))]

    def create_pipeline(self, label: str, order: int, stages: Sequence[StageSpec]
                        ) -> RemotePipeline:
        self._unique_pipeline(label)
        crash = self._write("create_pipeline", label)
        if self.crm == "pipedrive":
            order = max((p.order for p in self._pipelines), default=-1) + 1
        pipeline = _Pipeline(self._id(), label, order)
        for i, spec in enumerate(s for s in stages
                                 if self.crm == "hubspot" or s.outcome is None):
            pipeline.stages.append(self._stage(spec, self._id(),
                                               spec.order if self.crm == "hubspot" else i))
        self._pipelines.append(pipeline)
        if crash:
            raise CrashError
        return self.snapshot(pipeline)

    def update_pipeline(self, pipeline_id: str, *, label: str, order: int) -> None:
        self._unique_pipeline(label, pipeline_id)
        crash = self._write("update_pipeline", pipeline_id, label)
        p = self._pipeline(pipeline_id)
        p.label = label
        if self.crm == "hubspot":
            p.order = order
        if crash:
            raise CrashError

    def archive_pipeline(self, pipeline_id: str) -> None:
        crash = self._write("archive_pipeline", pipeline_id)
        self._pipelines.remove(self._pipeline(pipeline_id))
        if crash:
            raise CrashError

    def create_stage(self, pipeline_id: str, stage: StageSpec) -> RemoteStage:
        self._unique_stage(self._pipeline(pipeline_id), stage.label)
        crash = self._write("create_stage", pipeline_id, stage.label)
        p = self._pipeline(pipeline_id)
        if self.crm == "pipedrive":
            order = max((s.order for s in p.stages), default=-1) + 1
        else:
            order = stage.order
        created = self._stage(stage, self._id(), order)
        p.stages.append(created)
        if crash:
            raise CrashError
        return created

    def update_stage(self, pipeline_id: str, stage_id: str, stage: StageSpec) -> RemoteStage:
        self._unique_stage(self._pipeline(pipeline_id), stage.label, stage_id)
        crash = self._write("update_stage", stage_id, stage.label)
        p = self._pipeline(pipeline_id)
        index = next(i for i, s in enumerate(p.stages) if s.id == stage_id)
        old = p.stages[index]
        updated = self._stage(stage, stage_id, stage.order if self.crm == "hubspot" else old.order)
        p.stages[index] = updated
        if crash:
            raise CrashError
        return updated

    def archive_stage(self, pipeline_id: str, stage_id: str) -> None:
        if self.crm == "hubspot" and len(self._pipeline(pipeline_id).stages) == 1:
            raise FatalRemoteError(self.crm, "a pipeline must keep one stage", status=400)
        crash = self._write("archive_stage", stage_id)
        p = self._pipeline(pipeline_id)
        p.stages = [s for s in p.stages if s.id != stage_id]
        if crash:
            raise CrashError

    def count_deals(self, pipeline_id: str, stage_id: str) -> int:
        return self.deals.get(stage_id, 0)

    def move_deals(self, pipeline_id: str, from_stage_id: str, to_stage_id: str) -> int:
        crash = self._write("move_deals", from_stage_id, to_stage_id)
        moved = self.deals.pop(from_stage_id, 0)
        self.deals[to_stage_id] = self.deals.get(to_stage_id, 0) + moved
        if crash:
            raise CrashError
        return moved

    def close(self) -> None:
        pass


def blueprint(crm: str = "hubspot", *pipelines: dict[str, object]) -> Blueprint:
    """A blueprint from plain dicts (defaults: one 'sales' pipeline of four stages)."""
    return Blueprint.model_validate({
        "client": "acme",
        "crm": crm,
        "pipelines": list(pipelines) or [sales()],
    })


def sales(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "key": "sales",
        "label": "Sales",
        "stages": [
            {"key": "meeting_booked", "label": "Meeting booked", "probability": 0.2},
            {"key": "proposal_sent", "label": "Proposal sent", "probability": 0.6},
            {"key": "won", "label": "Won", "probability": 1.0, "outcome": "won"},
            {"key": "lost", "label": "Lost", "probability": 0.0, "outcome": "lost"},
        ],
    }
    data.update(overrides)
    return data


def with_stage(data: dict[str, object], index: int, **changes: object) -> dict[str, object]:
    stages = [dict(s) for s in data["stages"]]  # type: ignore[attr-defined]
    stages[index].update(changes)
    return {**data, "stages": stages}


__all__ = ["HUBSPOT", "PIPEDRIVE", "FakeCrm", "blueprint", "replace", "sales", "with_stage"]
