"""`crmsync demo`, the quick start's first command, end to end: every step as expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from crmsync.cli import cli

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
    board = (tmp_path / "demo" / "board.html").read_text(encoding="utf-8")
    assert "Proposal sent" in board
    assert "http://" not in board
    assert "https://" not in board
