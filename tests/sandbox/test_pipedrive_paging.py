"""Cursor paging, time windows, sorting, state and seeding of the Pipedrive emulator.

Records are created through the emulator's internal API (same validation as POST, no HTTP)
with a manual clock; every page is then fetched over HTTP and validated against the spec.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pipedrive_support import PipedriveSandbox, SpecValidator, stamp

from crmsync.sandbox.pipedrive import PipedriveEmulator

V2 = "/api/v2"
PAGE = 500


@pytest.fixture
def fresh(pd: PipedriveSandbox) -> PipedriveSandbox:
    pd.reset()
    return pd


def _stages(pd: PipedriveSandbox) -> list[int]:
    pipeline = pd.emulator.create_pipeline({"name": "Sales"})
    return [pd.emulator.create_stage({"name": f"S{i}", "pipeline_id": pipeline["id"]})["id"]
            for i in range(3)]


def _create(pd: PipedriveSandbox, name: str, count: int, *, per_second: int = 7) -> list[int]:
    """`count` records, `per_second` of them sharing each second (ties on purpose)."""
    ids = []
    for i in range(count):
        body: dict[str, Any] = {"title" if name == "deals" else "name": f"{name} {i}"}
        ids.append(pd.emulator.create(name, body)["id"])
        if (i + 1) % per_second == 0:
            pd.tick()
    return ids


def _walk(pd: PipedriveSandbox, spec: SpecValidator, path: str, *, limit: int = PAGE,
          **params: Any) -> tuple[list[dict[str, Any]], int]:
    """All rows of a listing, page by page over HTTP; (rows, pages)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = pd.session.get(pd.url(path), params=query, timeout=60)
        assert response.status_code == 200, response.text[:300]
        spec.check(response)
        body = response.json()
        pages += 1
        assert len(body["data"]) <= limit
        rows.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return rows, pages
        assert pages < 10_000, "cursor never ended"


# ---- every record exactly once ---------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, PAGE, PAGE + 1, 10_001])
def test_paging_walks_every_person_exactly_once(fresh: PipedriveSandbox, spec: SpecValidator,
                                                size: int) -> None:
    ids = _create(fresh, "persons", size)
    rows, pages = _walk(fresh, spec, f"{V2}/persons")
    assert [r["id"] for r in rows] == ids
    assert pages == max(1, math.ceil(size / PAGE))


@pytest.mark.parametrize("name", ["organizations", "deals"])
@pytest.mark.parametrize("size", [0, 1, PAGE, PAGE + 1])
def test_paging_other_entities(fresh: PipedriveSandbox, spec: SpecValidator, name: str,
                               size: int) -> None:
    if name == "deals":
        _stages(fresh)
    ids = _create(fresh, name, size)
    rows, _ = _walk(fresh, spec, f"{V2}/{name}", sort_by="update_time")
    assert sorted(r["id"] for r in rows) == ids
    assert len(rows) == len(ids)


def test_paging_10001_deals_by_update_time_desc(fresh: PipedriveSandbox,
                                                spec: SpecValidator) -> None:
    _stages(fresh)
    ids = _create(fresh, "deals", 10_001, per_second=50)
    rows, pages = _walk(fresh, spec, f"{V2}/deals", sort_by="update_time",
                        sort_direction="desc")
    assert pages == 21
    assert [r["id"] for r in rows] == ids[::-1]  # ties broken by id, descending too


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 7, 500])
def test_same_second_ties_are_neither_skipped_nor_repeated(
        fresh: PipedriveSandbox, spec: SpecValidator, direction: str, limit: int) -> None:
    ids = _create(fresh, "organizations", 60, per_second=1000)  # all in one second
    fresh.tick()
    later = _create(fresh, "organizations", 5, per_second=1000)
    rows, _ = _walk(fresh, spec, f"{V2}/organizations", limit=limit, sort_by="update_time",
                    sort_direction=direction)
    expected = ids + later
    assert [r["id"] for r in rows] == (expected if direction == "asc" else expected[::-1])


def test_updates_during_a_walk_lose_nothing(fresh: PipedriveSandbox,
                                            spec: SpecValidator) -> None:
    """Sorted by update_time, a row updated mid-walk moves to the end: seen again, not lost."""
    ids = _create(fresh, "persons", 30, per_second=3)
    first = fresh.session.get(fresh.url(f"{V2}/persons"),
                              params={"sort_by": "update_time", "limit": 10}).json()
    fresh.tick()
    seen_id, unseen_id = first["data"][0]["id"], ids[20]
    fresh.emulator.update("persons", seen_id, {"name": "moved"})
    fresh.emulator.update("persons", unseen_id, {"name": "moved too"})
    rest, _ = _walk(fresh, spec, f"{V2}/persons", limit=10, sort_by="update_time",
                    cursor=first["additional_data"]["next_cursor"])
    seen = [r["id"] for r in first["data"]] + [r["id"] for r in rest]
    assert set(seen) == set(ids)
    assert seen.count(seen_id) == 2
    assert seen.count(unseen_id) == 1
    assert seen[-2:] == [seen_id, unseen_id]


def test_deleted_deals_page_only_under_status_deleted(fresh: PipedriveSandbox,
                                                      spec: SpecValidator) -> None:
    _stages(fresh)
    ids = _create(fresh, "deals", 1_203)
    deleted = ids[::3]
    for deal_id in deleted:
        fresh.emulator.delete("deals", deal_id)
    kept, _ = _walk(fresh, spec, f"{V2}/deals")
    gone, _ = _walk(fresh, spec, f"{V2}/deals", status="deleted")
    assert [r["id"] for r in gone] == deleted
    assert all(r["is_deleted"] for r in gone)
    assert [r["id"] for r in kept] == [i for i in ids if i not in set(deleted)]


# ---- updated_since / updated_until -----------------------------------------------------

@pytest.mark.parametrize("sort_by", ["id", "update_time", "add_time"])
def test_updated_since_is_inclusive_and_until_exclusive(
        fresh: PipedriveSandbox, spec: SpecValidator, sort_by: str) -> None:
    by_second: dict[int, list[int]] = {}
    for second in range(5):
        by_second[second] = _create(fresh, "persons", 3, per_second=1000)
        fresh.tick()

    def window(**params: str) -> list[int]:
        rows, _ = _walk(fresh, spec, f"{V2}/persons", sort_by=sort_by, **params)
        return sorted(r["id"] for r in rows)

    def seconds(*which: int) -> list[int]:
        return sorted(i for s in which for i in by_second[s])

    assert window(updated_since=stamp(2)) == seconds(2, 3, 4)
    assert window(updated_until=stamp(2)) == seconds(0, 1)
    assert window(updated_since=stamp(1), updated_until=stamp(3)) == seconds(1, 2)
    assert window(updated_since=stamp(2), updated_until=stamp(2)) == []
    assert window(updated_since="2026-01-01T02:00:03+02:00") == seconds(3, 4)  # an offset
    assert window(updated_since=stamp(99)) == []


def test_incremental_pull_from_the_last_seen_second_misses_nothing(
        fresh: PipedriveSandbox, spec: SpecValidator) -> None:
    """The pattern sync uses: next pull from the max update_time seen (inclusive)."""
    _create(fresh, "organizations", 10, per_second=1000)
    rows, _ = _walk(fresh, spec, f"{V2}/organizations", sort_by="update_time")
    mark = max(r["update_time"] for r in rows)
    late = fresh.emulator.create("organizations", {"name": "same second, after the pull"})
    fresh.tick()
    updated = fresh.emulator.update("organizations", rows[0]["id"], {"name": "changed"})
    again, _ = _walk(fresh, spec, f"{V2}/organizations", sort_by="update_time",
                     updated_since=mark)
    assert {late["id"], updated["id"]} <= {r["id"] for r in again}


# ---- sorting -----------------------------------------------------------------------------

def test_sort_fields_and_directions(fresh: PipedriveSandbox, spec: SpecValidator) -> None:
    _stages(fresh)
    ids = _create(fresh, "deals", 20, per_second=2)
    fresh.tick()
    for deal_id in (ids[3], ids[0]):  # now the most recently updated, in that order
        fresh.emulator.update("deals", deal_id, {"value": 10})
        fresh.tick()

    def order(**params: str) -> list[int]:
        rows, _ = _walk(fresh, spec, f"{V2}/deals", limit=6, **params)
        return [r["id"] for r in rows]

    assert order() == ids
    assert order(sort_direction="desc") == ids[::-1]
    assert order(sort_by="add_time") == ids
    by_update = order(sort_by="update_time")
    assert by_update[-2:] == [ids[3], ids[0]]
    assert order(sort_by="update_time", sort_direction="desc")[:2] == [ids[0], ids[3]]


# ---- state and seeding -------------------------------------------------------------------

def test_dump_and_load_state_round_trip(fresh: PipedriveSandbox, spec: SpecValidator) -> None:
    fresh.emulator.seed(contacts=50, companies=20, deals=40, seed=7)
    deal = fresh.emulator.create("deals", {"title": "extra", "status": "won"})
    fresh.emulator.delete("deals", deal["id"])
    before = {name: _walk(fresh, spec, f"{V2}/{name}")[0]
              for name in ("persons", "organizations", "deals", "pipelines", "stages")}
    before_gone, _ = _walk(fresh, spec, f"{V2}/deals", status="deleted")
    state = json.loads(json.dumps(fresh.emulator.dump_state()))  # JSON-serialisable
    fresh.emulator.reset()
    assert _walk(fresh, spec, f"{V2}/deals")[0] == []
    fresh.emulator.load_state(state)
    after = {name: _walk(fresh, spec, f"{V2}/{name}")[0] for name in before}
    assert after == before
    gone, _ = _walk(fresh, spec, f"{V2}/deals", status="deleted")
    assert deal["id"] in [r["id"] for r in gone]
    assert [r["id"] for r in gone] == [r["id"] for r in before_gone]
    fresh_id = fresh.emulator.create("deals", {"title": "next"})["id"]
    assert fresh_id == deal["id"] + 1  # id counters survive


def test_seed_links_records_and_is_deterministic(fresh: PipedriveSandbox,
                                                 spec: SpecValidator) -> None:
    counts = fresh.emulator.seed(contacts=300, companies=80, deals=200, seed=42)
    assert counts == {"contacts": 300, "companies": 80, "deals": 200}
    persons, _ = _walk(fresh, spec, f"{V2}/persons")
    orgs, _ = _walk(fresh, spec, f"{V2}/organizations")
    deals, _ = _walk(fresh, spec, f"{V2}/deals")
    stages, _ = _walk(fresh, spec, f"{V2}/stages")
    org_ids, person_ids = {o["id"] for o in orgs}, {p["id"] for p in persons}
    assert {p["org_id"] for p in persons} - {None} <= org_ids
    assert {d["org_id"] for d in deals} - {None} <= org_ids
    assert {d["person_id"] for d in deals} - {None} <= person_ids
    assert {d["stage_id"] for d in deals} <= {s["id"] for s in stages}
    assert {d["status"] for d in deals} == {"open", "won", "lost"}
    assert all((d["won_time"] is not None) == (d["status"] == "won") for d in deals)
    assert all((d["lost_reason"] is not None) == (d["status"] == "lost") for d in deals)
    assert any(not p["emails"] for p in persons)  # some people have no email
    fee = fresh.emulator.fields.key_of("deal", "Monthly fee")
    assert all(d["custom_fields"][fee]["currency"] == d["currency"] for d in deals)
    assert {d["currency"] for d in deals} >= {"EUR", "USD", "GBP"}
    first_dump = fresh.emulator.dump_state()
    fresh.reset()
    fresh.emulator.seed(contacts=300, companies=80, deals=200, seed=42)
    assert fresh.emulator.dump_state() == first_dump


def test_seeding_100k_records(fresh: PipedriveSandbox, spec: SpecValidator) -> None:
    counts = fresh.emulator.seed(contacts=40_000, companies=20_000, deals=40_000, seed=1)
    assert sum(counts.values()) == 100_000
    page = fresh.session.get(fresh.url(f"{V2}/deals"),
                             params={"limit": 500, "sort_by": "update_time",
                                     "updated_since": stamp(-86_400 * 30)})
    spec.check(page)
    assert len(page.json()["data"]) == 500
    assert page.json()["additional_data"]["next_cursor"] is not None


def test_clock_may_return_datetimes() -> None:
    """The constructor takes a datetime clock or the sandbox's POSIX-seconds clock."""
    moment = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    emulator = PipedriveEmulator(clock=lambda: moment)
    assert emulator.create_pipeline({"name": "P"})["add_time"] == "2026-03-04T05:06:07Z"


def _fields(pd: PipedriveSandbox, spec: SpecValidator, path: str) -> dict[str, Any]:
    response = pd.session.get(pd.url(f"/api/v1/{path}"), params={"limit": 500}, timeout=30)
    spec.check(response)
    return {f["name"]: f for f in response.json()["data"]}


def test_seeded_custom_fields_of_every_kind(fresh: PipedriveSandbox,
                                            spec: SpecValidator) -> None:
    """Field definitions of each type exist in `…Fields` (40-char keys) and are set on the
    seeded records; every value passes the emulator's own validation of that type."""
    fresh.emulator.seed(contacts=200, companies=60, deals=150, seed=5)
    types: set[str] = set()
    for path, entity, name in (("dealFields", "deal", "deals"),
                               ("personFields", "person", "persons"),
                               ("organizationFields", "organization", "organizations")):
        custom = {f["key"]: f for f in _fields(fresh, spec, path).values() if f["edit_flag"]}
        assert all(len(key) == 40 for key in custom)
        types |= {f["field_type"] for f in custom.values()}
        rows, _ = _walk(fresh, spec, f"{V2}/{name}")
        used = {key for row in rows for key in row["custom_fields"]}
        assert used == set(custom), (entity, set(custom) - used)
        for row in rows[:50]:  # values are valid input for their field (a PATCH round trip)
            fresh.emulator.update(name, row["id"], {"custom_fields": row["custom_fields"]})
    assert types >= {"varchar", "text", "double", "date", "enum", "set", "monetary"}
    consent = _fields(fresh, spec, "personFields")["Marketing consent"]
    assert [o["label"] for o in consent["options"]] == ["Yes", "No"]


def test_seed_fills_the_applied_pipelines(fresh: PipedriveSandbox, spec: SpecValidator) -> None:
    """Deals spread over every live pipeline with stages, by stage, so seeding after `apply`
    fills the pipelines it made."""
    default = fresh.emulator.default_pipeline()
    assert default is not None
    applied = _stages(fresh)
    fresh.emulator.seed(contacts=100, companies=30, deals=300, seed=9)
    deals, _ = _walk(fresh, spec, f"{V2}/deals")
    archived, _ = _walk(fresh, spec, f"{V2}/deals/archived")
    everything = deals + archived
    by_stage = {stage: sum(d["stage_id"] == stage for d in everything) for stage in applied}
    assert all(count > 0 for count in by_stage.values()), by_stage
    assert {d["pipeline_id"] for d in everything} == {default["id"],
                                                      fresh.emulator.stages.rows[applied[0]]
                                                      ["pipeline_id"]}
    assert all(d["expected_close_date"] for d in everything)
    assert archived
    assert all(d["status"] != "open" and d["archive_time"] for d in archived)
    won = [d for d in everything if d["status"] == "won"]
    lost = [d for d in everything if d["status"] == "lost"]
    assert won
    assert lost
    assert all(d["won_time"] and d["lost_time"] is None for d in won)
    assert all(d["lost_time"] and d["won_time"] is None for d in lost)


def test_seed_deletes_some_and_ties_many_on_one_second(fresh: PipedriveSandbox,
                                                       spec: SpecValidator) -> None:
    fresh.emulator.seed(contacts=500, companies=120, deals=400, seed=3)
    emulator = fresh.emulator
    for name in ("persons", "organizations", "deals"):
        deleted = [r for r in emulator.tables[name].rows.values() if r["is_deleted"]]
        assert deleted, name
        live_ids = {r["id"] for r in emulator.tables[name].rows.values() if not r["is_deleted"]}
        assert {r["id"] for r in _walk(fresh, spec, f"{V2}/{name}")[0]} <= live_ids
        for row in deleted[:3]:  # readable by id within the 30 days
            response = fresh.session.get(fresh.url(f"{V2}/{name}/{row['id']}"), timeout=30)
            spec.check(response)
            assert response.json()["data"]["is_deleted"] is True
        seconds = [r["update_time"] for r in emulator.tables[name].rows.values()]
        assert max(seconds.count(s) for s in set(seconds)) >= len(seconds) // 12
    # nothing live links to a deleted record
    gone = {name: {r["id"] for r in emulator.tables[name].rows.values() if r["is_deleted"]}
            for name in ("persons", "organizations")}
    live_deals = [d for d in emulator.deals.rows.values() if not d["is_deleted"]]
    assert not {d["person_id"] for d in live_deals} & gone["persons"]
    assert not {d["org_id"] for d in live_deals} & gone["organizations"]
    deleted_deals, _ = _walk(fresh, spec, f"{V2}/deals", status="deleted")
    assert {d["id"] for d in deleted_deals} == {
        r["id"] for r in emulator.deals.rows.values() if r["is_deleted"] and not r["is_archived"]}
    since = (stamp(-31 * 86_400)).replace("T", " ").rstrip("Z")
    recent = fresh.session.get(fresh.url("/v1/recents"), timeout=30, params={
        "since_timestamp": since, "items": "person,organization", "limit": 500})
    spec.check(recent)
    inactive = {(i["item"], i["id"]) for i in recent.json()["data"]
                if not i["data"]["active_flag"]}
    assert inactive == {("person", i) for i in gone["persons"]} | {
        ("organization", i) for i in gone["organizations"]}


@pytest.mark.parametrize("path", ["persons", "organizations", "deals", "deals/archived"])
def test_an_incremental_sync_query_per_the_spec(fresh: PipedriveSandbox, spec: SpecValidator,
                                                path: str) -> None:
    """What sync sends: a window `updated_since` (≥) … `updated_until` (<), sorted by
    `update_time` either way, 500 a page, cursor to a null `next_cursor`; deleted deals too."""
    fresh.emulator.seed(contacts=1_500, companies=800, deals=2_600, seed=11)
    name = path.split("/", maxsplit=1)[0]
    archived = path.endswith("archived")
    rows = [r for r in fresh.emulator.tables[name].rows.values()
            if r.get("is_archived", False) == archived]
    times = sorted({r["update_time"] for r in rows})
    since, until = times[len(times) // 10], times[-2]  # the newest second is left out
    extra = {"status": "open,won,lost,deleted"} if name == "deals" else {}
    expected = {r["id"] for r in rows if since <= r["update_time"] < until
                and (name == "deals" or not r["is_deleted"])}
    page = 7 if archived else PAGE  # few deals are archived
    assert len(expected) > page  # more than one page
    for direction in ("asc", "desc"):
        got, pages = _walk(fresh, spec, f"{V2}/{path}", limit=page, updated_since=since,
                           updated_until=until, sort_by="update_time",
                           sort_direction=direction, **extra)
        assert pages == math.ceil(len(expected) / page)
        assert [r["id"] for r in got if r["id"] in expected] == [r["id"] for r in got]
        assert {r["id"] for r in got} == expected
        assert len(got) == len(expected)  # none twice
        keys = [(r["update_time"], r["id"]) for r in got]
        assert keys == sorted(keys, reverse=direction == "desc")
    if name == "deals":
        assert any(r["is_deleted"] for r in got)
