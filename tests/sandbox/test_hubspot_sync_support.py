"""What record sync needs of the HubSpot sandbox beyond single endpoints: paging links a plain
HTTP client can follow, search index lag on an injected clock, rate-limit headers a pacing
client reads, and a seeded account as realistic (and deterministic) as a sync must handle."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.http_policy import HUBSPOT, Pacer, lower_headers
from crmsync.sandbox import ManualClock, build_sandbox, start_sandbox
from crmsync.sandbox.http import Request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from crmsync.sandbox import SandboxServer

TOKEN = "sync-support"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clocked() -> Iterator[tuple[SandboxServer, ManualClock]]:
    """A sandbox of its own on a manual clock."""
    clock = ManualClock()
    server = start_sandbox(port=0, clock=clock)
    yield server, clock
    server.stop()


def _post(base: str, path: str, body: Any) -> requests.Response:
    return requests.post(f"{base}{path}", json=body, headers=AUTH, timeout=10)


def _seed(base: str, **counts: int) -> dict[str, Any]:
    body = {"crm": "hubspot", "contacts": 0, "companies": 0, "deals": 0, "seed": 3,
            "token": TOKEN, **counts}
    response = requests.post(f"{base}/_sandbox/seed", json=body, timeout=60)
    response.raise_for_status()
    created: dict[str, Any] = response.json()["created"]
    return created


# --------------------------------------------------------------------------- paging links
def test_next_link_alone_walks_every_contact_once(sandbox: str) -> None:
    _seed(sandbox, contacts=230, companies=10)
    url: str | None = (f"{sandbox}/crm/v3/objects/contacts?limit=100&properties=email,jobtitle"
                       "&associations=companies")
    seen: list[str] = []
    while url:
        page = requests.get(url, headers=AUTH, timeout=10).json()
        for record in page["results"]:
            seen.append(record["id"])
            assert {"email", "jobtitle"} <= set(record["properties"])
        link = page.get("paging", {}).get("next", {}).get("link")
        assert link is None or link.startswith(sandbox)  # absolute, on the sandbox's base
        assert link is None or ("limit=100" in link and "associations=companies" in link)
        url = link
    assert len(seen) == 230
    assert len(set(seen)) == 230


def test_next_link_keeps_archived(sandbox: str) -> None:
    created = _seed(sandbox, contacts=400)
    page = requests.get(f"{sandbox}/crm/v3/objects/contacts?archived=true&limit=1",
                        headers=AUTH, timeout=10).json()
    assert created["archived"] >= 2
    following = requests.get(page["paging"]["next"]["link"], headers=AUTH, timeout=10).json()
    assert following["results"][0]["archived"] is True
    assert following["results"][0]["archivedAt"]


# --------------------------------------------------------------------------- search lag
def _search_ids(base: str, value: str) -> list[str]:
    body = {"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ",
                                           "value": value}]}]}
    return [r["id"] for r in _post(base, "/crm/v3/objects/contacts/search", body).json()[
        "results"]]


def test_search_sees_writes_only_after_the_lag(
        clocked: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = clocked
    base = server.base_url
    requests.post(f"{base}/_sandbox/faults", json={"search_lag_seconds": 5},
                  timeout=10).raise_for_status()
    created = _post(base, "/crm/v3/objects/contacts", {"properties": {"firstname": "Lag"}})
    record_id = created.json()["id"]
    assert _search_ids(base, "Lag") == []
    got = requests.get(f"{base}/crm/v3/objects/contacts/{record_id}", headers=AUTH, timeout=10)
    assert got.status_code == 200  # gets and lists see it at once
    clock.advance(5)
    assert _search_ids(base, "Lag") == [record_id]

    requests.patch(f"{base}/crm/v3/objects/contacts/{record_id}",
                   json={"properties": {"firstname": "Later"}}, headers=AUTH, timeout=10)
    assert _search_ids(base, "Lag") == [record_id]  # the old version, until indexed
    assert _search_ids(base, "Later") == []
    clock.advance(5)
    assert _search_ids(base, "Lag") == []
    assert _search_ids(base, "Later") == [record_id]


def test_search_lag_is_off_by_default() -> None:
    app = build_sandbox(clock=ManualClock())
    assert app.config.search_lag_seconds == 0
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    app.handle(Request.build("POST", "/crm/v3/objects/contacts", headers,
                             b'{"properties": {"firstname": "Now"}}'))
    found = app.handle(Request.build("POST", "/crm/v3/objects/contacts/search", headers,
                                     b'{"query": "Now"}'))
    assert found.body["total"] == 1


# --------------------------------------------------------------------------- rate limits
def _paced_walk(base: str, clock: ManualClock) -> tuple[list[str], Counter[int]]:
    """List contacts page by page as a header-pacing client does (sleeping on the clock)."""
    pacer = Pacer(clock=clock, sleep=clock.advance)
    seen: list[str] = []
    statuses: Counter[int] = Counter()
    after = None
    while True:
        pacer.before_request("hubspot")
        response = requests.get(f"{base}/crm/v3/objects/contacts", params={
            "limit": 5, **({"after": after} if after else {})}, headers=AUTH, timeout=10)
        pacer.after_response("hubspot", HUBSPOT.read_rate_limit(lower_headers(
            response.headers)))
        statuses[response.status_code] += 1
        body = response.json()
        seen.extend(r["id"] for r in body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return seen, statuses


def test_a_header_pacing_client_behaves_the_same_with_limits_on(
        clocked: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = clocked
    base = server.base_url
    _seed(base, contacts=120)
    off = requests.get(f"{base}/crm/v3/objects/contacts", headers=AUTH, timeout=10)
    # Limits off (the default): no rate-limit headers at all (README, "Sandbox").
    assert not [h for h in off.headers if h.lower().startswith("x-hubspot-ratelimit")]
    unlimited, _ = _paced_walk(base, clock)
    requests.post(f"{base}/_sandbox/faults", json={
        "rate_limits_enabled": True, "hubspot_limit_per_10s": 10}, timeout=10).raise_for_status()
    started = clock()
    limited, statuses = _paced_walk(base, clock)
    assert limited == unlimited
    assert statuses == Counter({200: 24})  # 120 contacts in pages of 5, paced: never a 429
    assert clock() - started >= 10  # 24 requests at 10 per 10 s took the pacer's waits


# --------------------------------------------------------------------------- seeding
def test_seeded_account_is_realistic(sandbox: str) -> None:
    pipeline = _post(sandbox, "/crm/v3/pipelines/deals", {
        "label": "Renewals", "displayOrder": 1, "stages": [
            {"label": "Open", "displayOrder": 0, "metadata": {"probability": "0.5"}},
            {"label": "Renewed", "displayOrder": 1,
             "metadata": {"probability": "1.0", "isClosed": "true"}},
            {"label": "Churned", "displayOrder": 2,
             "metadata": {"probability": "0.0", "isClosed": "true"}}]}).json()
    created = _seed(sandbox, contacts=400, companies=60, deals=400)
    assert created["merged"] > 0
    assert created["archived"] > 0

    names = {p["name"]: p for p in requests.get(
        f"{sandbox}/crm/v3/properties/contacts", headers=AUTH, timeout=10).json()["results"]}
    kinds = {n: names[n]["type"] for n in ("customer_tier", "seats", "renewal_date",
                                            "lead_source_detail", "marketing_consent")}
    assert kinds == {"customer_tier": "enumeration", "seats": "number", "renewal_date": "date",
                     "lead_source_detail": "string", "marketing_consent": "bool"}

    deals = _all(sandbox, "deals", "pipeline,dealstage,amount,closedate,hs_is_closed_won,"
                 "hs_is_closed")
    by_pipeline = Counter(d["properties"]["pipeline"] for d in deals)
    assert set(by_pipeline) == {"default", pipeline["id"]}
    won = [d for d in deals if d["properties"]["hs_is_closed_won"] == "true"]
    assert won
    assert {d["properties"]["dealstage"] for d in won} <= {"closedwon",
                                                           pipeline["stages"][1]["id"]}
    assert any(d["properties"]["hs_is_closed"] == "true"
               and d["properties"]["hs_is_closed_won"] == "false" for d in deals)
    assert all(d["properties"]["amount"] and d["properties"]["closedate"] for d in deals)

    contacts = _all(sandbox, "contacts", "lastmodifieddate,hs_merged_object_ids")
    assert len(contacts) == 400  # archived and merged records come beside the requested ones
    ties = Counter(c["properties"]["lastmodifieddate"] for c in contacts).most_common(1)[0]
    assert ties[1] >= 5  # many records share one modification instant, to the millisecond
    assert any(c["properties"].get("hs_merged_object_ids") for c in contacts)

    read = _post(sandbox, "/crm/v4/associations/contacts/companies/batch/read",
                 {"inputs": [{"id": c["id"]} for c in contacts[:100]]}).json()
    labels = Counter(t["typeId"] for r in read["results"] for to in r["to"]
                     for t in to["associationTypes"])
    assert labels[1] > 0
    assert labels[279] > labels[1]  # every primary has its unlabeled pair, and some extra


def _all(base: str, object_type: str, properties: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"limit": 100, "properties": properties, **({"after": after} if after else {})}
        body = requests.get(f"{base}/crm/v3/objects/{object_type}", params=params,
                            headers=AUTH, timeout=10).json()
        out.extend(body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return out


def test_seeding_is_deterministic_per_seed() -> None:
    def dump(seed: int) -> Callable[[], Any]:
        app = build_sandbox(clock=ManualClock())
        app.seed("hubspot", token="t", contacts=300, companies=40, deals=200, seed=seed)
        state = app.account("hubspot", "t").dump_state()
        return state["objects"], state["associations"], state["merged_into"]

    assert dump(5) == dump(5)
    assert dump(5) != dump(6)


def test_cli_sets_the_search_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from crmsync.cli import cli, sandbox_command

    seen: dict[str, Any] = {}
    monkeypatch.setattr(sandbox_command, "_serve",
                        lambda *args, **kwargs: seen.update(config=kwargs["config"]))
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--search-lag-seconds", "2.5"])
    assert result.exit_code == 0, result.output
    assert seen["config"].search_lag_seconds == 2.5


def test_properties_owners_and_merges_survive_a_state_round_trip() -> None:
    app = build_sandbox(clock=ManualClock())
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}

    def call(method: str, path: str, body: bytes = b"") -> Any:
        return app.handle(Request.build(method, path, headers, body)).body

    call("POST", "/crm/v3/properties/deals", b'{"name": "region", "label": "Region", '
         b'"type": "string", "fieldType": "text", "groupName": "dealinformation"}')
    one = call("POST", "/crm/v3/objects/deals", b'{"properties": {"dealname": "a"}}')["id"]
    two = call("POST", "/crm/v3/objects/deals", b'{"properties": {"region": "EU"}}')["id"]
    call("POST", "/crm/v3/objects/deals/merge",
         f'{{"primaryObjectId": "{one}", "objectIdToMerge": "{two}"}}'.encode())
    state = app.account("hubspot", "t").dump_state()

    restored = build_sandbox(clock=ManualClock())
    restored.account("hubspot", "t").load_state(state)
    again = restored.handle(Request.build("GET", f"/crm/v3/objects/deals/{two}?properties=region",
                                          headers, b"")).body
    assert again["id"] == one
    assert again["properties"]["region"] == "EU"
    owners = restored.handle(Request.build("GET", "/crm/v3/owners/", headers, b"")).body
    assert len(owners["results"]) == 3
