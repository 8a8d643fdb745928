"""`crmsync report` end to end over a seeded SQLite store: terminal, JSON, HTML files."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.report import board_for
from crmsync.report.render import board_to_json
from crmsync.store import open_store
from tests.report.seeding import AS_OF, BLUEPRINT, blueprint, generate, seed

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    url = f"sqlite:///{tmp_path / 'state' / 'crmsync.db'}"
    with open_store(url) as store:
        seed(store, "acme", generate("hubspot"))
        seed(store, "nordwind", generate("pipedrive", seed=3))
    configs = tmp_path / "configs"
    configs.mkdir()
    for client, crm, language in (("acme", "hubspot", "en"), ("nordwind", "pipedrive", "de")):
        data = {**BLUEPRINT, "client": client, "crm": crm, "language": language}
        (configs / f"{client}.yaml").write_text(
            yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    # No CRM is reachable: the report must not need one.
    return {"CRMSYNC_STORE_URL": url, "CRMSYNC_CONFIGS_DIR": str(configs),
            "CRMSYNC_HUBSPOT_BASE_URL": "http://127.0.0.1:9",
            "CRMSYNC_PIPEDRIVE_BASE_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_terminal_board_for_every_client(env: dict[str, str]) -> None:
    code, out, err = run(env, "report", "--as-of", AS_OF.isoformat())
    assert code == 0, err
    assert "acme (hubspot) — Pipeline board, as of 2026-03-01" in out
    assert "nordwind (pipedrive) — Pipeline-Übersicht, Stand 2026-03-01" in out
    for stage in ("Meeting booked", "Needs assessed", "Proposal <sent> & co", "Contract sent",
                  "Renewal due", "Renewal agreed"):
        assert stage in out
    assert "Contract signed" not in out  # outcome stages are not columns
    assert "█" in out  # the funnel's bars
    with open_store(env["CRMSYNC_STORE_URL"]) as store:
        board = board_for(blueprint("hubspot"), store, AS_OF)
    assert f"Weighted forecast: {board.money(board.weighted_value)}" in out
    assert re.search(r"Total\s+│\s+│\s+" + str(board.pipelines[0].open_deals) + r"\s", out)
    assert re.search(r"│ Needs assessed\s+│\s+30%\s+│", out)
    assert "Who to call:" in out
    assert "Gewichtete Prognose:" in out  # German for the German client


def test_json_has_the_boards_figures(env: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = run(env, "report", "--json", "--as-of", "2026-03-01",
                       str(tmp_path / "configs" / "acme.yaml"))
    assert code == 0
    data = json.loads(out)
    with open_store(env["CRMSYNC_STORE_URL"]) as store:
        expected = board_to_json(board_for(blueprint("hubspot"), store, AS_OF))
    assert data == {"boards": [expected]}
    first = data["boards"][0]["pipelines"][0]["stages"][0]
    assert set(first) >= {"key", "label", "open_deals", "total_value", "weighted_value",
                          "avg_days_in_stage", "stuck"}
    assert data["boards"][0]["handoff"]["no_email"] > 0


def test_html_one_file_per_client(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out" / "board.html"
    target.parent.mkdir()
    code, out, _ = run(env, "report", "--html", str(target), "--as-of", "2026-03-01")
    assert code == 0
    acme = target.with_name("board-acme.html")
    nordwind = target.with_name("board-nordwind.html")
    assert f"Wrote {acme} (acme)" in out
    assert not target.exists()
    page = acme.read_text(encoding="utf-8")
    assert "Proposal &lt;sent&gt; &amp; co" in page  # labels are escaped
    assert "Proposal <sent>" not in page
    assert "nordwind" not in page  # a client's file holds only its own board
    assert not re.search(r"https?://|<script|<link|@import|url\(|src=", page)
    assert '<meta name="viewport"' in page
    assert "<svg" in page
    assert 'lang="de"' in nordwind.read_text(encoding="utf-8")

    code, out, _ = run(env, "report", "--json", "--html", str(tmp_path / "{client}.html"))
    assert code == 0
    assert json.loads(out)["boards"]  # stdout stays JSON; the "Wrote" lines go to stderr
    assert (tmp_path / "acme.html").exists()


def test_bad_date_and_bad_blueprint(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = run(env, "report", "--as-of", "01.03.2026")
    assert code == 1
    assert "'01.03.2026' is not a date; write it as YYYY-MM-DD" in err
    (tmp_path / "configs" / "broken.yaml").write_text("client: broken\ncrm: hubspot\n",
                                                      encoding="utf-8")
    code, out, err = run(env, "report", "--as-of", "2026-03-01")
    assert code == 1
    assert "acme (hubspot)" in out  # the others still get their board
    assert "broken.yaml" in err
    assert "Traceback" not in err


def test_unwritable_html_is_one_message(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = run(env, "report", str(tmp_path / "configs" / "acme.yaml"),
                       "--html", str(tmp_path / "missing" / "dir" / "b.html"))
    assert code == 1
    assert "cannot write the HTML report to" in err
    assert "Traceback" not in err


def test_report_never_builds_a_crm_adapter(env: dict[str, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync.report import report_clients
    from crmsync.session import Session
    from crmsync.settings import load_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    built: list[str] = []

    def factory(crm: str, token_env: str | None) -> object:
        built.append(crm)
        raise AssertionError("the report called a CRM")

    with Session(settings, adapter_factory=factory) as session:  # type: ignore[arg-type]
        reports = report_clients([], settings, as_of=AS_OF, session=session)
    assert [r.board.client for r in reports if r.board] == ["acme", "nordwind"]
    assert built == []
