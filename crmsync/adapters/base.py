"""The one interface every CRM adapter implements, in domain terms only.

Adapters know nothing of YAML, click or the store: they read and write pipelines and stages
(and, for sync, pages of records) and raise `RemoteError`s. Probabilities are 0–1 floats here
whatever the CRM stores; ids are strings whatever the CRM uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

# CRM_TITLES and crm_title live in names.py; re-exported for callers that import them here.
from crmsync.names import CRM_TITLES, crm_title  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crmsync.names import StageOutcome


@dataclass(frozen=True)
class RemoteStage:
    id: str
    label: str
    order: int  # the CRM's own sort key (HubSpot displayOrder, Pipedrive order_nr)
    probability: float | None  # 0–1; None when the CRM has none for the stage
    outcome: StageOutcome | None = None  # HubSpot closed stages; always None on Pipedrive
    rot_after_days: int | None = None  # None: rotting off, or the CRM has no rotting


@dataclass(frozen=True)
class RemotePipeline:
    id: str
    label: str
    order: int
    stages: tuple[RemoteStage, ...]

    def stage_by_id(self, stage_id: str) -> RemoteStage | None:
        return next((s for s in self.stages if s.id == stage_id), None)


@dataclass(frozen=True)
class StageSpec:
    """A stage as it should be in the CRM; adapters write all of it (idempotent)."""

    label: str
    order: int
    probability: float
    outcome: StageOutcome | None = None
    rot_after_days: int | None = None


@dataclass(frozen=True)
class AdapterCapabilities:
    """What a CRM's API lets us do, so the planner can block what it cannot (and say why)."""

    pipeline_order_writable: bool
    stage_order_writable: bool
    outcome_stages: bool  # won/lost are stages (HubSpot) rather than deal statuses (Pipedrive)
    rotting: bool
    probability_step: float  # HubSpot 0.1, Pipedrive whole percent 0.01
    max_stages_per_pipeline: int | None
    order_note: str = ""  # why stage order is not writable, shown in plans
    # The CRM refuses two stages with one label in a pipeline, and two pipelines with one
    # label (HubSpot: 400 / 409): `diff` and `apply` then hand labels over in a safe order.
    unique_labels: bool = False


@runtime_checkable
class CrmAdapter(Protocol):
    """Pipelines and stages of deals in one CRM account."""

    crm: str
    capabilities: AdapterCapabilities

    def account_id(self) -> str:
        """The CRM account the token reaches (HubSpot portal id, Pipedrive company id); asked
        once per adapter, then remembered."""
        ...

    def list_pipelines(self) -> list[RemotePipeline]:
        """Every live (not archived/deleted) deal pipeline with its live stages, in CRM order."""
        ...

    def create_pipeline(
        self, label: str, order: int, stages: Sequence[StageSpec]
    ) -> RemotePipeline:
        """Create a pipeline with its stages (outcome stages skipped where not stages)."""
        ...

    def update_pipeline(self, pipeline_id: str, *, label: str, order: int) -> None: ...

    def archive_pipeline(self, pipeline_id: str) -> None: ...

    def create_stage(self, pipeline_id: str, stage: StageSpec) -> RemoteStage | None:
        """Add one stage; None when the CRM has no such stage (an outcome on Pipedrive)."""
        ...

    def update_stage(self, pipeline_id: str, stage_id: str, stage: StageSpec) -> RemoteStage: ...

    def archive_stage(self, pipeline_id: str, stage_id: str) -> None: ...

    def count_deals(self, pipeline_id: str, stage_id: str) -> int:
        """How many live deals sit in the stage (a stage holding deals is not removed)."""
        ...

    def move_deals(self, pipeline_id: str, from_stage_id: str, to_stage_id: str) -> int:
        """Move every deal of one stage to another; returns how many moved."""
        ...

    def close(self) -> None: ...
