"""Which remote id each blueprint key was applied as: the data the store records and the
planner reads. Here, at the bottom of the house, so that the store does not import the planner.

Nothing here imports anything from crmsync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class KnownIds:
    """Remote ids by key: pipelines by pipeline key, stages by (pipeline key, stage key).

    The labels are those the objects had when they were recorded (the last apply); `diff`
    compares them with the CRM to tell a hand edit (drift) from a blueprint change. They are
    not part of the identity: two snapshots with the same ids are equal.
    """

    pipelines: Mapping[str, str] = field(default_factory=dict)
    stages: Mapping[tuple[str, str], str] = field(default_factory=dict)
    pipeline_labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    stage_labels: Mapping[tuple[str, str], str] = field(default_factory=dict, compare=False)

    def stage_key_for(self, pipeline_key: str, stage_id: str) -> str | None:
        """The key a remote stage was applied as, if any."""
        return next(
            (key for (pkey, key), sid in sorted(self.stages.items())
             if pkey == pipeline_key and sid == stage_id),
            None,
        )
