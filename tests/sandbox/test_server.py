"""The sandbox server: auth, routing errors, clocks, state files, synthetic data, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import hubspot
import pytest
import requests
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.sandbox import ManualClock, build_sandbox, start_sandbox
from crmsync.sandbox.http import Request
from crmsync.sandbox.synthetic import generate, stage_index

if TYPE_CHECKING:
    from pathlib import Path


def test_token_restricted_server_answers_each_crms_401() -> None:
    server = start_sandbox(token="secret")
    try:
        url = server.base_url
        wrong = requests.get(f"{url}/crm/v3/objects/contacts", timeout=10,
                             headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        body = wrong.json()
        assert body["status"] == "error"
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["correlationId"]
        assert requests.get(f"{url}/crm/v3/objects/contacts", timeout=10).status_code == 401
        pipedrive = requests.get(f"{url}/api/v2/deals", headers={"x-api-token": "nope"},
                                 timeout=10)
        assert pipedrive.status_code == 401
        assert pipedrive.json()["success"] is False
        client = hubspot.Client.create(access_token="nope", host=url)
        with pytest.raises(Exception) as err:  # noqa: PT011 - the SDK's UnauthorizedException
            client.crm.contacts.basic_api.get_page()
        assert getattr(err.value, "status", None) == 401
        good = hubspot.Client.create(access_token="secret", host=url)
        assert good.crm.contacts.basic_api.get_page().results == []
    finally:
        server.stop()


def test_any_non_empty_token_is_accepted_by_default(sandbox: str) -> None:
    ok = requests.get(f"{sandbox}/crm/v3/pipelines/deals", timeout=10,
                      headers={"Authorization": "Bearer whatever"})
    assert ok.status_code == 200
    empty = requests.get(f"{sandbox}/crm/v3/pipelines/deals", timeout=10,
                         headers={"Authorization": "Bearer "})
    assert empty.status_code == 401


def test_unknown_paths_and_methods_use_the_crms_error_shape(sandbox: str) -> None:
    auth = {"Authorization": "Bearer t"}
    missing = requests.get(f"{sandbox}/crm/v3/nothing/here", headers=auth, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["status"] == "error"
    wrong_method = requests.put(f"{sandbox}/crm/v3/objects/contacts", headers=auth, timeout=10)
    assert wrong_method.status_code == 405
    assert requests.get(f"{sandbox}/elsewhere", timeout=10).status_code == 404
    bad_json = requests.post(f"{sandbox}/crm/v3/objects/contacts", data=b"{not json",
                             headers=auth, timeout=10)
    assert bad_json.status_code == 400
    assert bad_json.json()["category"] == "VALIDATION_ERROR"


def test_modified_dates_follow_the_injected_clock_and_never_go_back() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = build_sandbox(clock=clock)
    auth = {"Authorization": "Bearer t"}

    def create(email: str) -> dict[str, str]:
        body = f'{{"properties": {{"email": "{email}"}}}}'.encode()
        response = app.handle(Request.build("POST", "/crm/v3/objects/contacts", auth, body))
        props: dict[str, str] = response.body["properties"]
        return props

    first = create("a@example.com")
    assert first["createdate"] == "2026-01-01T00:00:00.000Z"
    assert first["lastmodifieddate"] == "2026-01-01T00:00:00.000Z"
    clock.advance(0.0015)
    assert create("b@example.com")["lastmodifieddate"] == "2026-01-01T00:00:00.001Z"
    clock.advance(-60)  # a clock stepping back must not make writes older
    assert create("c@example.com")["lastmodifieddate"] == "2026-01-01T00:00:00.001Z"


def test_state_file_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    server = start_sandbox(state_file=state)
    auth = {"Authorization": "Bearer sandbox-token", "x-api-token": "sandbox-token"}
    url = server.base_url
    requests.post(f"{url}/_sandbox/seed", json={"crm": "hubspot", "contacts": 20,
                                                "companies": 4, "deals": 6}, timeout=10)
    requests.post(f"{url}/_sandbox/seed", json={"crm": "pipedrive", "contacts": 5}, timeout=10)
    created = requests.post(f"{url}/crm/v3/pipelines/deals", headers=auth, timeout=10, json={
        "label": "Renewals", "displayOrder": 1,
        "stages": [{"label": "Renewal due", "displayOrder": 0,
                    "metadata": {"probability": "0.5"}}]}).json()
    before = requests.get(f"{url}/crm/v3/objects/deals?limit=100&associations=contacts",
                          headers=auth, timeout=10).json()
    persons = requests.get(f"{url}/api/v2/persons", headers=auth, timeout=10).json()["data"]
    server.stop()
    assert state.is_file()

    again = start_sandbox(state_file=state)
    try:
        url = again.base_url
        after = requests.get(f"{url}/crm/v3/objects/deals?limit=100&associations=contacts",
                             headers=auth, timeout=10).json()
        assert after == before
        pipeline = requests.get(f"{url}/crm/v3/pipelines/deals/{created['id']}",
                                headers=auth, timeout=10).json()
        assert pipeline == created
        assert requests.get(f"{url}/api/v2/persons", headers=auth,
                            timeout=10).json()["data"] == persons
        # new ids continue after the loaded ones
        new = requests.post(f"{url}/crm/v3/objects/deals", headers=auth, timeout=10,
                            json={"properties": {"dealname": "next"}}).json()
        assert int(new["id"]) > max(int(d["id"]) for d in before["results"])
    finally:
        again.stop()


def test_synthetic_accounts_are_deterministic_and_realistic() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    account = generate(seed=5, contacts=2000, companies=200, deals=1000, now=now)
    assert account == generate(seed=5, contacts=2000, companies=200, deals=1000, now=now)
    assert account != generate(seed=6, contacts=2000, companies=200, deals=1000, now=now)
    emails = [p.email for p in account.people]
    assert any(e is None for e in emails)
    present = [e for e in emails if e]
    assert len({e.lower() for e in present}) < len(set(present))  # duplicates by case only
    assert any(not p.marketing_consent for p in account.people)
    names = " ".join(f"{p.first_name} {p.last_name}" for p in account.people)
    assert any(ord(ch) > 127 for ch in names)
    assert {d.status for d in account.deals} == {"open", "won", "lost"}
    assert all(0 <= d.stage_fraction < 1 for d in account.deals)
    ages = [(now - r.modified_at).days for r in (*account.people, *account.deals)]
    assert min(ages) >= 0
    assert max(ages) <= 2 * 366
    assert all(r.created_at <= r.modified_at <= now for r in account.companies)
    assert stage_index(0.99, 5) == 4
    assert stage_index(0.0, 5) == 0


def test_cli_help() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--token", "--state", "--seed-contacts",
                   "--latency-ms", "--rate-limits"):
        assert option in result.output
