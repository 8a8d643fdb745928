"""What the planner knows of earlier applies: which remote id each blueprint key became.

`diff` reads a `KnownIds` snapshot; `apply` writes through a `StateRecorder` (the store's
`ProvisioningState`, or `MemoryState` in tests and notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class KnownIds:
    """Remote ids by key: pipelines by pipeline key, stages by (pipeline key, stage key)."""

    pipelines: Mapping[str, str] = field(default_factory=dict)
    stages: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def stage_key_for(self, pipeline_key: str, stage_id: str) -> str | None:
        """The key a remote stage was applied as, if any."""
        return next(
            (key for (pkey, key), sid in sorted(self.stages.items())
             if pkey == pipeline_key and sid == stage_id),
            None,
        )


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
        self.pipelines: dict[str, tuple[str, str]] = {
            k: (v, "") for k, v in (known.pipelines if known else {}).items()
        }
        self.stages: dict[tuple[str, str], tuple[str, str]] = {
            k: (v, "") for k, v in (known.stages if known else {}).items()
        }

    def known_ids(self) -> KnownIds:
        return KnownIds(
            {k: v[0] for k, v in self.pipelines.items()},
            {k: v[0] for k, v in self.stages.items()},
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
