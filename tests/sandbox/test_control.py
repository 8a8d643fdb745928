"""The /_sandbox/ control API: stats, reset, seed, faults (contract in crmsync.sandbox.control)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.sandbox import ManualClock, build_sandbox
from crmsync.sandbox.http import Request

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN = "sandbox-token"  # the account `POST /_sandbox/seed` seeds by default
AUTH = {"Authorization": f"Bearer {TOKEN}", "x-api-token": TOKEN}


def test_stats_count_routes_crms_statuses(sandbox: str) -> None:
    for _ in range(3):
        requests.get(f"{sandbox}/crm/v3/objects/contacts", headers=AUTH, timeout=10)
    requests.post(f"{sandbox}/crm/v3/objects/contacts", headers=AUTH, timeout=10,
                  json={"properties": {"email": "x@example.com"}})
    requests.get(f"{sandbox}/crm/v3/objects/contacts/999", headers=AUTH, timeout=10)
    requests.get(f"{sandbox}/crm/v3/objects/contacts", timeout=10)  # no token: 401
    requests.get(f"{sandbox}/api/v2/pipelines", headers=AUTH, timeout=10)
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()
    assert stats["total"] == 7  # control requests are not counted
    assert stats["by_route"] == {
        "GET /crm/v3/objects/{objectType}": 4,
        "POST /crm/v3/objects/{objectType}": 1,
        "GET /crm/v3/objects/{objectType}/{objectId}": 1,
        "GET /api/v2/pipelines": 1,
    }
    assert stats["by_crm"] == {"hubspot": 6, "pipedrive": 1}
    assert stats["by_status"] == {"200": 4, "201": 1, "401": 1, "404": 1}
    assert stats["rate_limited"] == 0
    assert stats["faults_injected"]["total"] == 0


def test_reset_clears_data_faults_limits_and_stats(sandbox: str) -> None:
    requests.post(f"{sandbox}/crm/v3/objects/contacts", headers=AUTH, timeout=10,
                  json={"properties": {"email": "x@example.com"}})
    requests.post(f"{sandbox}/crm/v3/pipelines/deals", headers=AUTH, timeout=10, json={
        "label": "Other", "displayOrder": 1,
        "stages": [{"label": "A", "displayOrder": 0, "metadata": {"probability": "0.5"}}]})
    requests.post(f"{sandbox}/_sandbox/seed", json={"crm": "pipedrive", "contacts": 3},
                  timeout=10)
    requests.post(f"{sandbox}/_sandbox/faults", json={"rate_limits_enabled": True,
                                                      "latency_ms": 5}, timeout=10)
    assert requests.post(f"{sandbox}/_sandbox/reset", timeout=10).json() == {"ok": True}
    faults = requests.get(f"{sandbox}/_sandbox/faults", timeout=10).json()
    assert faults["rate_limits_enabled"] is False
    assert faults["latency_ms"] == 0
    assert requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()["total"] == 0
    contacts = requests.get(f"{sandbox}/crm/v3/objects/contacts", headers=AUTH, timeout=10)
    assert contacts.json() == {"results": []}
    pipelines = requests.get(f"{sandbox}/crm/v3/pipelines/deals", headers=AUTH, timeout=10)
    assert [p["id"] for p in pipelines.json()["results"]] == ["default"]
    persons = requests.get(f"{sandbox}/api/v2/persons", headers=AUTH, timeout=10).json()
    assert persons["data"] == []


def test_seed_creates_associated_records(sandbox: str,
                                         seed_sandbox: Callable[..., dict[str, Any]]) -> None:
    created = seed_sandbox(contacts=40, companies=8, deals=25, seed=3)
    assert created["contacts"] == 40
    assert created["companies"] == 8
    assert created["deals"] == 25
    assert created["associations"] > 25
    deals = requests.get(f"{sandbox}/crm/v3/objects/deals?limit=100&associations=companies",
                         headers=AUTH, timeout=10).json()["results"]
    assert len(deals) == 25
    assert any("associations" in d for d in deals)
    stages = {d["properties"]["dealstage"] for d in deals}
    assert stages <= {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                      "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"}


@pytest.mark.parametrize("body", [
    {"crm": "salesforce", "contacts": 1},
    {"crm": "hubspot", "contacts": -1},
    {"crm": "hubspot", "people": 3},
    {"contacts": 3},
])
def test_seed_validation(sandbox: str, body: dict[str, Any]) -> None:
    response = requests.post(f"{sandbox}/_sandbox/seed", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]


def test_faults_get_and_partial_update(sandbox: str) -> None:
    url = f"{sandbox}/_sandbox/faults"
    updated = requests.post(url, json={"rate_5xx": 0.25, "seed": 9}, timeout=10).json()
    assert updated["rate_5xx"] == 0.25
    again = requests.post(url, json={"latency_ms": 1}, timeout=10).json()
    assert again["rate_5xx"] == 0.25  # earlier settings kept
    assert requests.get(url, timeout=10).json() == again
    for bad in ({"bogus": 1}, {"rate_429": 2}, {"rate_429": 0.6, "rate_5xx": 0.6},
                {"pipedrive_plan": "mega"}):
        response = requests.post(url, json=bad, timeout=10)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    assert requests.get(url, timeout=10).json() == again  # refused updates change nothing


def _statuses(seed: int, n: int = 200) -> list[int]:
    app = build_sandbox(clock=ManualClock(), config={
        "seed": seed, "rate_429": 0.1, "rate_5xx": 0.2, "rate_drop": 0.1, "rate_slow": 0.1,
        "slow_ms": 2000})
    out = []
    for _ in range(n):
        response = app.handle(Request.build("GET", "/crm/v3/objects/contacts", AUTH, b""))
        out.append(-1 if response.drop else response.status)
    return out


def test_faults_are_reproducible_from_the_seed() -> None:
    first, second = _statuses(42), _statuses(42)
    assert first == second
    assert first != _statuses(43)
    counts = {s: first.count(s) for s in set(first)}
    assert set(counts) == {200, 429, 500, 502, 503, -1}
    assert 10 <= counts[429] <= 35
    assert 10 <= counts[-1] <= 35


def test_injected_faults_have_no_effect_and_are_counted() -> None:
    app = build_sandbox(clock=ManualClock(), config={"rate_5xx": 1.0})
    body = b'{"properties": {"email": "a@example.com"}}'
    response = app.handle(Request.build("POST", "/crm/v3/objects/contacts", AUTH, body))
    assert response.status in (500, 502, 503)
    assert response.body["status"] == "error"  # HubSpot's error shape
    assert app.account("hubspot", TOKEN).objects["contacts"].records == {}  # type: ignore[attr-defined]
    stats = app.stats.snapshot()
    assert stats["faults_injected"]["total"] == 1
    assert stats["rate_limited"] == 0


def test_latency_and_slow_responses_are_delays_not_sleeps() -> None:
    app = build_sandbox(clock=ManualClock(), config={"latency_ms": 50, "jitter_ms": 10})
    delays = [app.handle(Request.build("GET", "/crm/v3/pipelines/deals", AUTH, b"")).delay
              for _ in range(20)]
    assert all(0.05 <= d <= 0.06 for d in delays)
    assert len(set(delays)) > 1
    slow = build_sandbox(clock=ManualClock(), config={"rate_slow": 1.0, "slow_ms": 3000})
    response = slow.handle(Request.build("GET", "/crm/v3/pipelines/deals", AUTH, b""))
    assert response.status == 200
    assert response.delay == 3.0
    assert slow.stats.snapshot()["faults_injected"]["slow"] == 1


def test_faults_can_target_one_crm_and_path() -> None:
    app = build_sandbox(clock=ManualClock(), config={
        "rate_5xx": 1.0, "fault_crm": "pipedrive", "fault_path_prefix": "/api/v2/deals"})
    def status(path: str) -> int:
        return app.handle(Request.build("GET", path, AUTH, b"")).status
    assert status("/crm/v3/pipelines/deals") == 200
    assert status("/api/v2/pipelines") == 200
    faulted = app.handle(Request.build("GET", "/api/v2/deals", AUTH, b""))
    assert faulted.status >= 500
    assert faulted.body["success"] is False  # Pipedrive's error shape


def test_dropped_connection_over_http(sandbox: str) -> None:
    requests.post(f"{sandbox}/_sandbox/faults", json={"rate_drop": 1.0}, timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox}/crm/v3/pipelines/deals", headers=AUTH, timeout=10)
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()
    assert stats["by_status"] == {"dropped": 1}
    assert stats["faults_injected"]["drop"] == 1


def test_stats_count_every_request_unknown_paths_by_method_and_path(sandbox: str) -> None:
    """A benchmark reading the stats misses nothing: unknown paths (under a CRM or under
    none) and wrong methods are counted, each by method and path."""
    requests.get(f"{sandbox}/api/v2/leads?limit=5", headers=AUTH, timeout=10)  # unknown route
    requests.get(f"{sandbox}/api/v2/leads", headers=AUTH, timeout=10)
    requests.put(f"{sandbox}/api/v2/deals/1", headers=AUTH, json={}, timeout=10)  # 405
    requests.get(f"{sandbox}/nowhere/at/all", timeout=10)  # no CRM's path
    requests.get(f"{sandbox}/api/v2/pipelines", headers=AUTH, timeout=10)
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()
    assert stats["total"] == 5
    assert stats["unmatched"] == {"GET /api/v2/leads": 2, "GET /nowhere/at/all": 1,
                                  "PUT /api/v2/deals/1": 1}
    assert stats["by_route"] == {"GET <unmatched>": 3, "PUT <unmatched>": 1,
                                 "GET /api/v2/pipelines": 1}
    assert stats["by_crm"] == {"pipedrive": 4}
    assert stats["by_status"] == {"200": 1, "404": 3, "405": 1}
    requests.post(f"{sandbox}/_sandbox/stats/reset", timeout=10)
    assert requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()["unmatched"] == {}


def test_unmatched_paths_are_bounded() -> None:
    from crmsync.sandbox.control import MAX_UNMATCHED_PATHS

    app = build_sandbox(clock=ManualClock())
    for n in range(MAX_UNMATCHED_PATHS + 5):
        app.handle(Request.build("GET", f"/scan/{n}", {}, b""))
    unmatched = app.stats.snapshot()["unmatched"]
    assert len(unmatched) == MAX_UNMATCHED_PATHS + 1
    assert unmatched["GET <other>"] == 5
    assert app.stats.snapshot()["total"] == MAX_UNMATCHED_PATHS + 5
