"""What the CLI prints when things go wrong or labels are hostile: `--json` always prints a
JSON document (even when the run fails before any client), and text output never passes a
terminal control sequence through (JSON keeps the data as it is)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import requests
import yaml
from click.testing import CliRunner, Result

from crmsync.adapters.base import StageSpec
from crmsync.cli import cli
from crmsync.plan.changes import ArchiveStage, CreateStage, Note, PipelinePlan, Plan
from crmsync.plan.render import describe_item, plan_to_dict, render_text
from crmsync.safe_text import printable

if TYPE_CHECKING:
    from pathlib import Path

EVIL = "Evil\x1b[2J\x1b]0;owned\x07\rfake\n+ stage 'x'\u202etxt"
BLUEPRINT = {"client": "acme", "crm": "hubspot", "pipelines": [{
    "key": "sales", "label": "Sales", "stages": [
        {"key": "meeting_booked", "label": "Meeting booked", "probability": 0.2},
        {"key": "won", "label": "Won", "probability": 1.0, "outcome": "won"},
        {"key": "lost", "label": "Lost", "probability": 0.0, "outcome": "lost"},
    ]}]}


@pytest.fixture
def env(sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    config = tmp_path / "configs" / "acme.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(BLUEPRINT), encoding="utf-8")
    return {
        "CRMSYNC_HUBSPOT_BASE_URL": sandbox,
        "CRMSYNC_PIPEDRIVE_BASE_URL": sandbox,
        "CRMSYNC_HUBSPOT_TOKEN": "sandbox-token",
        "CRMSYNC_PIPEDRIVE_TOKEN": "sandbox-token",
        "CRMSYNC_STORE_URL": f"sqlite:///{tmp_path / 'state' / 'crmsync.db'}",
        "CRMSYNC_CONFIGS_DIR": str(config.parent),
        "CRMSYNC_MAX_RETRIES": "1",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# --- --json when the run fails early ---------------------------------------------------------


@pytest.mark.parametrize("command", [["diff"], ["apply", "--yes"]])
def test_json_reports_a_missing_path_as_json(env: dict[str, str], tmp_path: Path,
                                             command: list[str]) -> None:
    result = run(env, *command, "--json", str(tmp_path / "nowhere.yaml"))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["clients"] == []
    assert data["error"]["type"] == "ConfigError"
    assert "no such file" in data["error"]["message"]
    assert data["error"]["findings"][0]["path"].endswith("nowhere.yaml")
    assert "error:" in result.stderr  # people still get the message


@pytest.mark.parametrize("command", [["diff"], ["apply", "--yes"]])
def test_json_reports_a_store_that_cannot_open_as_json(env: dict[str, str], tmp_path: Path,
                                                       command: list[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")  # a file where the store's folder should be
    env = {**env, "CRMSYNC_STORE_URL": f"sqlite:///{blocker / 'sub' / 'crmsync.db'}"}
    result = run(env, *command, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["error"]["type"] == "StoreError"
    assert "CRMSYNC_STORE_URL" in data["error"]["message"]


def test_json_apply_without_a_terminal_says_why_as_json(env: dict[str, str]) -> None:
    result = run(env, "apply", "--json")  # changes pending, no --yes, no terminal
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert "pass --yes" in data["error"]["message"]


def test_json_validate_with_broken_settings_prints_json(env: dict[str, str]) -> None:
    result = run({**env, "CRMSYNC_LOG_LEVEL": "bogus"}, "validate", "--json")
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)
    assert finding["severity"] == "error"
    assert "CRMSYNC_LOG_LEVEL" in finding["message"]


# --- control characters ------------------------------------------------------------------------


def test_printable_escapes_control_characters_and_keeps_letters() -> None:
    assert printable("Зустріч über\tx") == "Зустріч über\\x09x"
    assert printable("a\x1b[31mb\r\n\x9b\u202e") == "a\\x1b[31mb\\x0d\\x0a\\x9b\\u202e"
    assert printable("plain 'label' → 0.5") == "plain 'label' → 0.5"


def test_text_plans_escape_hostile_labels_and_json_keeps_them() -> None:
    plan = Plan("acme", "hubspot", (PipelinePlan("sales", EVIL, "p1", (
        CreateStage("sales", "p1", "x", StageSpec(EVIL, 0, 0.5)),
        ArchiveStage("sales", "p1", "s9", EVIL),
    )),), (Note(None, "unmanaged-pipelines", {"crm": "hubspot", "labels": [EVIL]}),))
    text = render_text(plan)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\u202e" not in text
    assert "\\x1b[2J" in text
    assert len(text.splitlines()) == 6  # header, pipeline, 2 changes, note, counts
    assert "\n" not in describe_item(plan.pipelines[0].items[0])
    data = plan_to_dict(plan)
    assert data["changes"][0]["new"]["label"] == EVIL
    assert data["notes"][0]["params"]["labels"] == [EVIL]


def test_diff_escapes_a_crm_label_on_the_terminal(env: dict[str, str], sandbox: str) -> None:
    created = requests.post(
        f"{sandbox}/crm/v3/pipelines/deals", timeout=10,
        headers={"Authorization": "Bearer sandbox-token"},
        json={"label": EVIL, "displayOrder": 5, "stages": [
            {"label": "Open", "displayOrder": 0, "metadata": {"probability": "0.5"}}]},
    )
    assert created.status_code in (200, 201), created.text
    result = run(env, "diff")
    assert result.exit_code == 2, result.output
    assert "\x1b" not in result.stdout
    assert "\\x1b[2J" in result.stdout
    data = json.loads(run(env, "diff", "--json").stdout)
    assert EVIL in data["clients"][0]["notes"][0]["params"]["labels"]
