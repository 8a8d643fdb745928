"""What the planner knows of earlier applies: which remote id each blueprint key became.

`diff` reads a `KnownIds` snapshot (defined in `crmsync.known_ids`, beneath the store and
the planner alike); `apply` writes through a `StateRecorder` (the store's
`ProvisioningState`, or `MemoryState` in tests and notebooks).
"""

from __future__ import annotations

from typing import Protocol

from crmsync.known_ids import KnownIds

__all__ = ["KnownIds", "MemoryState", "StateRecorder"]


class StateRecorder(Protocol):
    """Where `apply` records each step as soon as it succeeds."""

    def known_ids(self) -> KnownIds: ...

    def record_pipeline(self, key: str, remote_id: str, label: str) -> None: ...

    def record_stage(self, pipeline_key: str, key: str, remote_id: str, label: str) -> None: ...

    def forget_pipeline(self, key: str) -> None:
        """Drop a pipeline and every stage recorded under it."""
        ...

    def forget_stage(self, pipeline_key: str, key: str) -> None: ...


class MemoryState:
    """A `StateRecorder` in a dict, for tests and one-off runs without a store."""

    def __init__(self, known: KnownIds | None = None) -> None:
        known = known or KnownIds()
        self.pipelines: dict[str, tuple[str, str]] = {
            k: (v, known.pipeline_labels.get(k, "")) for k, v in known.pipelines.items()
        }
        self.stages: dict[tuple[str, str], tuple[str, str]] = {
            k: (v, known.stage_labels.get(k, "")) for k, v in known.stages.items()
        }

    def known_ids(self) -> KnownIds:
        return KnownIds(
            {k: v[0] for k, v in self.pipelines.items()},
            {k: v[0] for k, v in self.stages.items()},
            {k: v[1] for k, v in self.pipelines.items() if v[1]},
            {k: v[1] for k, v in self.stages.items() if v[1]},
        )

    def record_pipeline(self, key: str, remote_id: str, label: str) -> None:
        for other in [k for k, v in self.pipelines.items() if v[0] == remote_id and k != key]:
            del self.pipelines[other]
        self.pipelines[key] = (remote_id, label)

    def record_stage(self, pipeline_key: str, key: str, remote_id: str, label: str) -> None:
        for other in [k for k, v in self.stages.items()
                      if v[0] == remote_id and k != (pipeline_key, key)]:
            del self.stages[other]
        self.stages[(pipeline_key, key)] = (remote_id, label)

    def forget_pipeline(self, key: str) -> None:
        self.pipelines.pop(key, None)
        for stage in [k for k in self.stages if k[0] == key]:
            del self.stages[stage]

    def forget_stage(self, pipeline_key: str, key: str) -> None:
        self.stages.pop((pipeline_key, key), None)
