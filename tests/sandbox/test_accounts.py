"""One account per token: each client's CRM is its own portal or company, in the sandbox too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import requests
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.sandbox import DEFAULT_TOKEN, ManualClock, build_sandbox
from crmsync.sandbox.accounts import account_key
from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.state import load_sandbox, load_state, save_state

if TYPE_CHECKING:
    from pathlib import Path

    from crmsync.sandbox import Sandbox

ACME, BRIGHTWAVE = "sandbox-acme", "sandbox-brightwave"
NEW_BUSINESS = {"label": "New business", "displayOrder": 1, "stages": [
    {"label": "Lead in", "displayOrder": 0, "metadata": {"probability": "0.1"}}]}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-api-token": token}


def _call(app: Sandbox, method: str, path: str, token: str | None,
          body: Any = None) -> Response:
    headers = _auth(token) if token is not None else {}
    payload = json.dumps(body).encode() if body is not None else b""
    return app.handle(Request.build(method, path, headers, payload))


def _control(app: Sandbox, method: str, path: str, body: Any = None) -> Response:
    return _call(app, method, f"/_sandbox/{path}", None, body)


def _hubspot_pipelines(app: Sandbox, token: str) -> list[str]:
    return [p["label"] for p in _call(app, "GET", "/crm/v3/pipelines/deals", token).body["results"]]


def _pipedrive_pipelines(app: Sandbox, token: str) -> list[str]:
    return [p["name"] for p in _call(app, "GET", "/api/v2/pipelines", token).body["data"]]


# ---- independence ------------------------------------------------------------------------

def test_two_hubspot_tokens_are_two_portals(sandbox: str) -> None:
    """Two clients' blueprints with the same pipeline label no longer collide."""
    url = f"{sandbox}/crm/v3/pipelines/deals"
    acme = requests.post(url, json=NEW_BUSINESS, headers=_auth(ACME), timeout=10)
    assert acme.status_code == 201
    listed = requests.get(url, headers=_auth(BRIGHTWAVE), timeout=10).json()["results"]
    assert [p["id"] for p in listed] == ["default"]  # a fresh portal: only the default pipeline
    assert len(listed[0]["stages"]) == 7
    # the same label is free in the other portal (labels are unique per portal)
    brightwave = requests.post(url, json=NEW_BUSINESS, headers=_auth(BRIGHTWAVE), timeout=10)
    assert brightwave.status_code == 201
    renamed = requests.patch(f"{url}/{brightwave.json()['id']}", json={"label": "Renewals"},
                             headers=_auth(BRIGHTWAVE), timeout=10)
    assert renamed.status_code == 200
    # each token sees its own writes and only those
    mine = requests.get(url, headers=_auth(ACME), timeout=10).json()["results"]
    assert sorted(p["label"] for p in mine) == ["New business", "Sales Pipeline"]
    contacts = f"{sandbox}/crm/v3/objects/contacts"
    requests.post(contacts, json={"properties": {"email": "ada@acme.example"}},
                  headers=_auth(ACME), timeout=10).raise_for_status()
    # unique emails are per portal too
    requests.post(contacts, json={"properties": {"email": "ada@acme.example"}},
                  headers=_auth(BRIGHTWAVE), timeout=10).raise_for_status()
    assert len(requests.get(contacts, headers=_auth(ACME), timeout=10).json()["results"]) == 1
    other = requests.get(f"{contacts}?limit=100", headers=_auth("sandbox-third"), timeout=10)
    assert other.json() == {"results": []}


def test_two_pipedrive_tokens_are_two_companies(sandbox: str) -> None:
    base = f"{sandbox}/api/v2"
    created = requests.post(f"{base}/pipelines", json={"name": "New business"},
                            headers={"x-api-token": ACME}, timeout=10).json()["data"]
    requests.post(f"{base}/stages", json={"name": "Lead in", "pipeline_id": created["id"]},
                  headers={"x-api-token": ACME}, timeout=10).raise_for_status()
    requests.post(f"{base}/persons", json={"name": "Ada"}, headers={"x-api-token": ACME},
                  timeout=10).raise_for_status()
    # the same token by each of Pipedrive's schemes reaches the same company
    for reach in ({"headers": {"Authorization": f"Bearer {ACME}"}},
                  {"params": {"api_token": ACME}}):
        names = [p["name"] for p in requests.get(f"{base}/pipelines", timeout=10,
                                                 **reach).json()["data"]]  # type: ignore[arg-type]
        assert names == ["Pipeline", "New business"]
    other = {"x-api-token": BRIGHTWAVE}
    # a fresh company: only Pipedrive's default pipeline and its five stages
    assert [p["name"] for p in requests.get(f"{base}/pipelines", headers=other,
                                            timeout=10).json()["data"]] == ["Pipeline"]
    assert len(requests.get(f"{base}/stages", headers=other, timeout=10).json()["data"]) == 5
    assert requests.get(f"{base}/persons", headers=other, timeout=10).json()["data"] == []
    # a fresh company has the standard and seeded custom field definitions
    fields = [requests.get(f"{sandbox}/api/v1/dealFields", headers={"x-api-token": t},
                           timeout=10).json()["data"] for t in (ACME, BRIGHTWAVE)]
    assert fields[0] == fields[1]
    assert any(len(f["key"]) == 40 for f in fields[0])  # custom fields have hash keys
    # ids are per company, as in the real CRM: both start from the same counter
    mine = requests.post(f"{base}/pipelines", json={"name": "New business"}, headers=other,
                         timeout=10).json()["data"]
    assert mine["id"] == created["id"]


def test_ids_are_per_account() -> None:
    app = build_sandbox(clock=ManualClock())
    ids = [_call(app, "POST", "/crm/v3/objects/contacts", token,
                 {"properties": {"email": "same@example.com"}}).body["id"]
           for token in (ACME, BRIGHTWAVE)]
    assert ids[0] == ids[1]


# ---- auth and --token --------------------------------------------------------------------

def test_refused_requests_create_no_account() -> None:
    app = build_sandbox(clock=ManualClock())
    assert _call(app, "GET", "/crm/v3/pipelines/deals", None).status == 401
    assert _call(app, "GET", "/api/v2/deals", "").status == 401
    assert _control(app, "GET", "stats").body["accounts"] == {"hubspot": 0, "pipedrive": 0}


def test_a_restricted_sandbox_has_one_account_per_crm() -> None:
    app = build_sandbox(token="secret", clock=ManualClock())
    assert _call(app, "POST", "/crm/v3/pipelines/deals", "secret", NEW_BUSINESS).status == 201
    refused = _call(app, "GET", "/crm/v3/pipelines/deals", ACME)
    assert refused.status == 401
    assert refused.body["category"] == "INVALID_AUTHENTICATION"
    assert _call(app, "GET", "/api/v2/pipelines", ACME).body["error"] == "unauthorized access"
    # seeding defaults to the one accepted token; another token's account could not be reached
    assert _control(app, "POST", "seed", {"crm": "pipedrive", "contacts": 2}).status == 200
    assert len(_call(app, "GET", "/api/v2/persons", "secret").body["data"]) == 2
    wrong = _control(app, "POST", "seed", {"crm": "pipedrive", "contacts": 2, "token": ACME})
    assert wrong.status == 400
    assert ACME not in json.dumps(wrong.body)
    assert _control(app, "GET", "stats").body["accounts"] == {"hubspot": 1, "pipedrive": 1}


# ---- control API -------------------------------------------------------------------------

def test_seed_targets_one_account(sandbox: str) -> None:
    seed = f"{sandbox}/_sandbox/seed"
    requests.post(seed, json={"crm": "hubspot", "contacts": 5, "token": ACME},
                  timeout=10).raise_for_status()
    requests.post(seed, json={"crm": "hubspot", "contacts": 3}, timeout=10).raise_for_status()
    contacts = f"{sandbox}/crm/v3/objects/contacts?limit=100"

    def count(token: str) -> int:
        return len(requests.get(contacts, headers=_auth(token), timeout=10).json()["results"])

    assert count(ACME) == 5
    assert count(DEFAULT_TOKEN) == 3  # no token: the token `crmsync sandbox` prints
    assert count(BRIGHTWAVE) == 0
    empty = requests.post(seed, json={"crm": "hubspot", "contacts": 1, "token": ""}, timeout=10)
    assert empty.status_code == 400


def test_stats_count_accounts_without_naming_tokens(sandbox: str) -> None:
    stats = f"{sandbox}/_sandbox/stats"
    assert requests.get(stats, timeout=10).json()["accounts"] == {"hubspot": 0, "pipedrive": 0}
    for token in (ACME, BRIGHTWAVE, ACME):
        requests.get(f"{sandbox}/crm/v3/objects/deals", headers=_auth(token), timeout=10)
    requests.get(f"{sandbox}/api/v2/deals", headers={"x-api-token": ACME}, timeout=10)
    body = requests.get(stats, timeout=10).json()
    assert body["accounts"] == {"hubspot": 2, "pipedrive": 1}
    assert body["total"] == 4  # the existing fields are unchanged
    assert ACME not in json.dumps(body)
    assert BRIGHTWAVE not in json.dumps(body)


def test_reset_drops_every_account(sandbox: str) -> None:
    for token in (ACME, BRIGHTWAVE):
        requests.post(f"{sandbox}/crm/v3/pipelines/deals", json=NEW_BUSINESS,
                      headers=_auth(token), timeout=10).raise_for_status()
        requests.post(f"{sandbox}/api/v2/pipelines", json={"name": "New business"},
                      headers={"x-api-token": token}, timeout=10).raise_for_status()
    requests.post(f"{sandbox}/_sandbox/reset", timeout=10).raise_for_status()
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()
    assert stats["accounts"] == {"hubspot": 0, "pipedrive": 0}
    for token in (ACME, BRIGHTWAVE):
        hubspot = requests.get(f"{sandbox}/crm/v3/pipelines/deals", headers=_auth(token),
                               timeout=10).json()["results"]
        assert [p["id"] for p in hubspot] == ["default"]
        pipedrive = requests.get(f"{sandbox}/api/v2/pipelines",
                                 headers={"x-api-token": token}, timeout=10).json()["data"]
        assert [p["name"] for p in pipedrive] == ["Pipeline"]  # only the default pipeline


# ---- rate limits -------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "config"), [
    ("/crm/v3/objects/contacts", {"hubspot_limit_per_10s": 3}),
    ("/api/v2/persons", {"pipedrive_burst_per_2s": 3}),
])
def test_rate_limits_are_per_token(path: str, config: dict[str, Any]) -> None:
    app = build_sandbox(clock=ManualClock(), config={"rate_limits_enabled": True, **config})
    assert [_call(app, "GET", path, ACME).status for _ in range(4)] == [200, 200, 200, 429]
    assert [_call(app, "GET", path, BRIGHTWAVE).status for _ in range(3)] == [200, 200, 200]
    assert app.stats.snapshot()["rate_limited"] == 1


# ---- the state file ----------------------------------------------------------------------

def test_state_file_keeps_every_account_and_no_token(tmp_path: Path) -> None:
    app = build_sandbox(clock=ManualClock())
    _call(app, "POST", "/crm/v3/pipelines/deals", ACME, NEW_BUSINESS)
    _call(app, "POST", "/crm/v3/pipelines/deals", BRIGHTWAVE, {**NEW_BUSINESS, "label": "Other"})
    _call(app, "POST", "/api/v2/pipelines", BRIGHTWAVE, {"name": "Pipedrive side"})
    _control(app, "POST", "seed", {"crm": "hubspot", "contacts": 4, "token": ACME})
    before = {t: _call(app, "GET", "/crm/v3/objects/contacts", t).body for t in (ACME, BRIGHTWAVE)}
    path = tmp_path / "sandbox.json"
    save_state(app, path)
    text = path.read_text(encoding="utf-8")
    assert ACME not in text
    assert BRIGHTWAVE not in text
    saved = json.loads(text)
    assert saved["format"] == 2
    assert set(saved["crms"]["hubspot"]) == {account_key(ACME), account_key(BRIGHTWAVE)}

    again = build_sandbox(clock=ManualClock())
    assert load_state(again, path)
    assert _control(again, "GET", "stats").body["accounts"] == {"hubspot": 2, "pipedrive": 1}
    assert _hubspot_pipelines(again, ACME) == ["Sales Pipeline", "New business"]
    assert _hubspot_pipelines(again, BRIGHTWAVE) == ["Sales Pipeline", "Other"]
    assert _pipedrive_pipelines(again, BRIGHTWAVE) == ["Pipeline", "Pipedrive side"]
    assert _pipedrive_pipelines(again, ACME) == ["Pipeline"]  # a new account, as before
    for token, body in before.items():
        assert _call(again, "GET", "/crm/v3/objects/contacts", token).body == body


def test_a_single_account_state_file_loads_as_the_default_token() -> None:
    old = build_sandbox(clock=ManualClock())
    _call(old, "POST", "/crm/v3/pipelines/deals", DEFAULT_TOKEN, NEW_BUSINESS)
    emulator = old.account("hubspot")
    legacy = {"format": 1, "crms": {"hubspot": emulator.dump_state()}}
    app = build_sandbox(clock=ManualClock())
    load_sandbox(app, legacy)
    assert _hubspot_pipelines(app, DEFAULT_TOKEN) == ["Sales Pipeline", "New business"]
    assert _hubspot_pipelines(app, ACME) == ["Sales Pipeline"]
    with pytest.raises(ValueError, match="format"):
        load_sandbox(app, {"format": 99, "crms": {}})


# ---- `crmsync sandbox` ---------------------------------------------------------------------

def test_cli_says_tokens_are_accounts_and_seeds_the_printed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("crmsync.cli.sandbox_command._wait_for_stop", lambda: None)
    state = tmp_path / "sandbox.json"
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--state", str(state),
                                      "--seed-contacts", "3"])
    assert result.exit_code == 0, result.output
    assert "Each token is its own CRM account" in result.output
    assert f"CRMSYNC_HUBSPOT_TOKEN={DEFAULT_TOKEN}" in result.output
    app = build_sandbox(clock=ManualClock())
    load_state(app, state)
    assert len(_call(app, "GET", "/crm/v3/objects/contacts", DEFAULT_TOKEN).body["results"]) == 3
    assert len(_call(app, "GET", "/api/v2/persons", DEFAULT_TOKEN).body["data"]) == 3
    assert _call(app, "GET", "/crm/v3/objects/contacts", ACME).body == {"results": []}
