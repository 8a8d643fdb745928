"""`crmsync demo`, the quick start's first command, end to end: every step as expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.store import open_store

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_the_demo_runs_every_step_and_writes_the_board(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env; configs come from --configs-dir
    from tests.e2e.conftest import EXAMPLES

    result = CliRunner().invoke(
        cli, ["demo", "--configs-dir", str(EXAMPLES), "--workdir", str(tmp_path / "demo")],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Demo complete" in result.output
    # The records arrived, the second sync was one call per object type, the board was drawn.
    assert "acme (hubspot): pulled 1" in result.output
    assert "acme (hubspot): pulled 0, created 0, updated 0, tombstoned 0; 3 API calls" in (
        result.output)
    # Both sides edited: two contacts pulled, one pushed, one conflict (acme: remote_wins).
    assert ("acme (hubspot): pulled 2, created 0, updated 2, tombstoned 0; 4 API calls"
            in result.output)
    assert ("pushed to hubspot: created 0, updated 1, archived 0; 1 conflict resolved "
            "(remote_wins)" in result.output)
    assert "(remote_wins: the CRM's value wins)" in result.output
    with open_store(f"sqlite:///{tmp_path / 'demo' / 'demo-store.db'}") as store:
        contacts = list(store.records("acme").live("contacts"))
        last_names = {r["last_name"] for r in contacts}
        first_names = {r["first_name"] for r in contacts}
        phones = {r["phone"] for r in contacts}
        assert "CRM-Edit" in last_names  # the conflict: the CRM's value won
        assert "Local-Edit" not in last_names
        assert "Renamed-in-CRM" in first_names  # pulled
        assert "+49 30 1234567" in phones  # kept, and pushed (the queue is empty)
        assert store.local("acme").pending() == []
    board = (tmp_path / "demo" / "board.html").read_text(encoding="utf-8")
    assert "Proposal sent" in board
    assert "http://" not in board
    assert "https://" not in board
