"""End to end through the CLI against the sandbox over real HTTP, for both CRMs:
diff (2) → apply --yes (0) → diff (0) → edit → diff (2) → apply → diff (0) → export → diff (0).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.store import open_store

if TYPE_CHECKING:
    from pathlib import Path

BLUEPRINT = {
    "client": "kyivsoft",
    "pipelines": [{
        "key": "prodazhi",
        "label": "Продажі",
        "stages": [
            {"key": "meeting_booked", "label": "Зустріч призначено", "probability": 0.1},
            {"key": "needs_assessed", "label": "Потреби з'ясовано", "probability": 0.3},
            {"key": "offer_sent", "label": "Angebot übermittelt", "probability": 0.6},
            {"key": "signed", "label": "Договір підписано", "probability": 1.0,
             "outcome": "won"},
            {"key": "lost", "label": "Втрачено", "probability": 0.0, "outcome": "lost"},
        ],
    }],
}


@pytest.fixture
def env(sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return {
        "CRMSYNC_HUBSPOT_BASE_URL": sandbox,
        "CRMSYNC_PIPEDRIVE_BASE_URL": sandbox,
        "CRMSYNC_HUBSPOT_TOKEN": "sandbox-token",
        "CRMSYNC_PIPEDRIVE_TOKEN": "sandbox-token",
        "CRMSYNC_STORE_URL": f"sqlite:///{tmp_path / 'state' / 'crmsync.db'}",
        "CRMSYNC_CONFIGS_DIR": str(tmp_path / "configs"),
        "CRMSYNC_MAX_RETRIES": "2",
    }


def write(path: Path, data: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_diff_apply_diff_export_round_trip(crm: str, env: dict[str, str],
                                           tmp_path: Path) -> None:
    config = write(tmp_path / "configs" / "kyivsoft.yaml", {**BLUEPRINT, "crm": crm})

    code, out = run(env, "diff")
    assert code == 2, out
    assert "+ pipeline 'Продажі' (prodazhi)" in out
    if crm == "pipedrive":
        assert out.count("won/lost are deal statuses") == 1

    code, out = run(env, "apply")  # no terminal, no --yes
    assert code == 1
    assert "pass --yes" in out

    code, out = run(env, "apply", "--yes")
    assert code == 0, out
    assert "the CRM matches its blueprint" in out
    code, out = run(env, "diff", str(config))
    assert code == 0, out
    assert out.startswith(f"No changes. kyivsoft ({crm}) matches its blueprint.")

    store = open_store(env["CRMSYNC_STORE_URL"])
    ids = store.provisioning("kyivsoft", crm).known_ids()

    # Rename a stage, change a probability, remove an (empty) stage, add one at the end.
    edited = json.loads(json.dumps({**BLUEPRINT, "crm": crm}))
    stages = edited["pipelines"][0]["stages"]
    stages[0]["label"] = "Зустріч відбулася"
    stages[2]["probability"] = 0.7
    del stages[1]
    stages.insert(2, {"key": "contract_sent", "label": "Vertrag verschickt",
                      "probability": 0.8})
    write(config, edited)
    code, out = run(env, "diff", "--json")
    assert code == 2, out
    [client] = json.loads(out)["clients"]
    changes = {(c["action"], c["field"], (c["target"] or {}).get("label")) for c in
               client["changes"]}
    assert changes == {
        ("update", "label", "Зустріч відбулася"),
        ("update", "probability", "Angebot übermittelt"),
        ("archive", None, "Потреби з'ясовано"),
        ("create", None, "Vertrag verschickt"),
    } | ({("update", "order", "Angebot übermittelt")} if crm == "hubspot" else set())

    code, out = run(env, "apply", "--yes")
    assert code == 0, out
    code, out = run(env, "diff")
    assert code == 0, out
    after = store.provisioning("kyivsoft", crm).known_ids()
    renamed = ("prodazhi", "meeting_booked")
    assert after.stages[renamed] == ids.stages[renamed]  # renamed, not recreated

    exported = tmp_path / "exported" / "kyivsoft.yaml"
    code, out = run(env, "export", "--client", "kyivsoft", "--crm", crm, "-o", str(exported))
    assert code == 0, out
    text = exported.read_text(encoding="utf-8")
    assert "Зустріч відбулася" in text
    code, out = run(env, "diff", str(exported))
    assert code == 0, out
    code, out = run(env, "export", "--client", "kyivsoft", "--crm", crm, "-o", str(exported))
    assert code == 1
    assert "already exists" in out
    store.close()


def test_many_clients_one_failure_does_not_stop_the_others(env: dict[str, str],
                                                           tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write(configs / "a_good.yaml", {**BLUEPRINT, "crm": "pipedrive"})
    write(configs / "b_token.yaml", {**BLUEPRINT, "client": "other", "crm": "hubspot",
                                     "token_env": "NOT_SET_ANYWHERE_TOKEN"})
    (configs / "c_broken.yaml").write_text("client: broken\ncrm: zoho\n", encoding="utf-8")

    code, out = run(env, "diff")
    assert code == 1
    assert "+ pipeline 'Продажі' (prodazhi)" in out
    assert "Summary:" in out
    assert "kyivsoft (pipedrive): 1 change pending" in out
    assert "other (hubspot): error" in out
    assert "NOT_SET_ANYWHERE_TOKEN" in out
    assert "c_broken.yaml: error" in out

    code, out = run(env, "apply", "--yes")
    assert code == 1
    assert "kyivsoft (pipedrive): 1 change applied; the CRM matches its blueprint" in out
    code, out = run(env, "diff", str(configs / "a_good.yaml"))
    assert code == 0, out


def test_missing_path_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    code, out = run(env, "diff", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "no such file or folder" in out


def test_apply_json_is_one_document(env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "configs" / "kyivsoft.yaml", {**BLUEPRINT, "crm": "hubspot"})
    result = CliRunner().invoke(cli, ["apply", "--yes", "--json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [client] = json.loads(result.stdout)["clients"]
    assert client["status"] == "clean"
    assert [c["action"] for c in client["applied"]] == ["create"]
    assert client["after"]["status"] == "clean"
    assert client["after"]["notes"][0]["text"].startswith("1 pipeline in HubSpot")


def test_apply_reports_a_client_error_once_plus_its_summary(env: dict[str, str],
                                                            tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write(configs / "a_good.yaml", {**BLUEPRINT, "crm": "hubspot"})
    write(configs / "b_token.yaml", {**BLUEPRINT, "client": "other", "crm": "hubspot",
                                     "token_env": "NOT_SET_ANYWHERE_TOKEN"})
    code, out = run(env, "apply", "--yes")
    assert code == 1
    assert out.count("NOT_SET_ANYWHERE_TOKEN") == 2, out
    assert "error: other (hubspot): the blueprint asks for the hubspot token" in out
    assert "other (hubspot): not applied; error: the blueprint asks" in out


def test_adopt_only_apply_says_ids_recorded(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "configs" / "kyivsoft.yaml", {**BLUEPRINT, "crm": "pipedrive"})
    assert run(env, "apply", "--yes")[0] == 0
    fresh = {**env, "CRMSYNC_STORE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    code, out = run(fresh, "diff", str(config))
    assert code == 2
    assert "Nothing changes in Pipedrive: apply only records the ids of 4 matched objects" in out
    code, out = run(fresh, "apply", "--yes", str(config))
    assert code == 0, out
    assert "kyivsoft (pipedrive): 4 ids recorded; the CRM matches its blueprint" in out
    assert run(fresh, "diff", str(config))[0] == 0


@pytest.mark.parametrize("command", ["diff", "apply", "export"])
def test_help_shows_examples_and_exit_codes(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0
    text = result.output
    assert "Examples:\n    crmsync " in text  # \b keeps the example lines as written
    assert "Exit codes:\n    0  " in text
    if command != "export":
        assert "without PATHS, every *.yaml/*.yml in CRMSYNC_CONFIGS_DIR" in " ".join(
            text.split())
