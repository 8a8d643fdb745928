"""Every dispatch over merge decisions is exhaustive: a decision nobody handles fails, loudly.

Each `match` over decisions ends in `merge.assert_never`: mypy flags a missing case of the
`FieldDecision` / `PushDecision` unions, and at run time the unknown decision raises instead
of being skipped (a skipped push would be a local edit silently lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from crmsync.store.records import QueuedChange
from crmsync.sync.merge import FieldDecision, PushDecision, TakeRemote, apply_decisions
from crmsync.sync.push import PushCounts, PushResult, PushRules, _Batch
from tests.mypy_dispatch import mypy_on_a_dispatch_missing_one
from tests.sync.fake_records import FakeCrm

if TYPE_CHECKING:
    from pathlib import Path

    from crmsync.store import Store


@dataclass(frozen=True)
class MergeRemote:
    """A decision type added to the merge but forgotten by its consumers."""

    record_id: int


def test_apply_decisions_refuses_a_decision_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="MergeRemote"):
        apply_decisions({}, (TakeRemote("a", 1), MergeRemote(1)))  # type: ignore[arg-type]


def test_push_refuses_a_decision_it_does_not_know(store: Store) -> None:
    crm = FakeCrm()
    result = PushResult("hubspot")
    batch = _Batch(store.records("acme"), crm, PushRules("hubspot"), "contacts", PushCounts(),
                   result)
    change = QueuedChange(1, "upsert", frozenset(), None, 0, {}, None)
    with pytest.raises(AssertionError, match="MergeRemote"):
        batch.dispatch(change, MergeRemote(1), [], {})  # type: ignore[arg-type]
    assert crm.writes == []
    assert batch.writes == []
    assert batch.answers == []


@pytest.mark.parametrize(("name", "union"), [("FieldDecision", FieldDecision),
                                             ("PushDecision", PushDecision)])
def test_mypy_flags_a_dispatch_that_misses_a_decision(tmp_path: Path, name: str,
                                                      union: object) -> None:
    out, status, missing = mypy_on_a_dispatch_missing_one(tmp_path, "crmsync.sync.merge",
                                                          name, union)
    assert status == 1, out
    assert f'"{missing}"' in out
    assert "assert_never" in out or "Never" in out
