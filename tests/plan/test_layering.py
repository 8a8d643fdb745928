"""Imports point inward: the store knows nothing of the planner that reads it."""

from __future__ import annotations

import subprocess
import sys

from crmsync.known_ids import KnownIds
from crmsync.plan.state import MemoryState


def test_the_store_does_not_import_the_planner() -> None:
    code = ("import sys, crmsync.store, crmsync.store.provisioning; "
            "print(sorted(m for m in sys.modules if m.startswith('crmsync.plan')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_recorded_labels_travel_with_the_ids_but_are_not_identity() -> None:
    state = MemoryState()
    state.record_pipeline("sales", "p1", "Sales")
    state.record_stage("sales", "won", "s1", "Won")
    known = state.known_ids()
    assert known.pipeline_labels == {"sales": "Sales"}
    assert known.stage_labels == {("sales", "won"): "Won"}
    assert known == KnownIds({"sales": "p1"}, {("sales", "won"): "s1"})
    assert MemoryState(known).known_ids().stage_labels == {("sales", "won"): "Won"}
