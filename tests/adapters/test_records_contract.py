"""One record contract, both CRMs: `RecordAdapter.pull` against the sandbox over real HTTP.

The sandbox runs on a manual clock, so many writes can share one timestamp (ties) and edits
land after the previous pull by advancing it, never by sleeping. What a pull returns is
compared with the sandbox's own state (`dump_state` of the account).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters import hubspot_records
from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.records import (
    CANONICAL_FIELDS,
    FieldDefinition,
    PullCursor,
    RecordAdapter,
    RecordPage,
)
from crmsync.errors import FatalRemoteError, RemoteError
from crmsync.store import open_store
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules

from .record_sandbox import LAG, TOKEN, Sandbox, truth

if TYPE_CHECKING:
    from pathlib import Path

    from crmsync.names import ObjectType

    from .conftest import FakeTime

TYPES: tuple[ObjectType, ...] = ("contacts", "companies", "deals")


def pull_all(adapter: Any, object_type: ObjectType, cursor: PullCursor | None = None,
             **kwargs: Any) -> list[RecordPage]:
    return list(adapter.pull(object_type, cursor, [], **kwargs))


def ids(pages: list[RecordPage]) -> list[str]:
    return [r.id for page in pages for r in page.records]



def seen(pages: list[RecordPage], object_type: ObjectType) -> dict[str, dict[str, Any]]:
    field = {"contacts": "email", "companies": "name", "deals": "name"}[object_type]
    return {r.id: {"key": r.fields[field],
                   "links": {(a.to_type, a.to_id, a.primary) for a in r.associations or ()}}
            for page in pages for r in page.records}


def test_both_adapters_are_record_adapters(adapter: Any) -> None:
    assert isinstance(adapter, RecordAdapter)


@pytest.mark.parametrize("object_type", TYPES)
def test_full_pull_returns_every_record_once_as_the_sandbox_has_it(
        adapter: Any, box: Sandbox, crm: str, object_type: ObjectType) -> None:
    box.seed(crm, contacts=1200, companies=400, deals=1000)
    pages = pull_all(adapter, object_type)
    got = ids(pages)
    assert len(got) == len(set(got))
    assert seen(pages, object_type) == truth(box, crm, object_type)
    assert {frozenset(r.fields) for p in pages for r in p.records} == {
        frozenset(CANONICAL_FIELDS[object_type])}
    assert pages[-1].done
    assert not any(p.done for p in pages[:-1])
    assert pages[-1].cursor.phase == "incremental"
    # Fewest calls: HubSpot lists 100 a page with associations inline (+1 for the deal
    # pipelines), Pipedrive 500 a page.
    # Pipedrive reads its field definitions once, as none were passed (custom fields' names).
    per_page = 100 if crm == "hubspot" else 500
    extra = 1 if (crm == "pipedrive" or object_type == "deals") else 0
    assert sum(p.calls for p in pages) == -(-len(got) // per_page) + extra


def test_canonical_fields_are_typed(adapter: Any, box: Sandbox, crm: str) -> None:
    box.seed(crm, contacts=20, companies=10, deals=40)
    deals = [r for p in pull_all(adapter, "deals") for r in p.records]
    assert {r.fields["status"] for r in deals} <= {"open", "won", "lost"}
    assert {"won", "lost", "open"} & {r.fields["status"] for r in deals}
    assert all(isinstance(r.fields["amount"], Decimal) for r in deals if r.fields["amount"])
    assert all(r.modified_at.tzinfo is not None for r in deals)
    closed = [r for r in deals if r.fields["status"] != "open"]
    assert closed
    assert all(r.fields["closed_at"] is not None for r in closed)


def test_unchanged_increment_costs_one_call_per_type(adapter: Any, box: Sandbox,
                                                     crm: str) -> None:
    box.seed(crm, contacts=300, companies=100, deals=200)
    for object_type in TYPES:
        cursor = pull_all(adapter, object_type)[-1].cursor
        again = pull_all(adapter, object_type, PullCursor.from_json(cursor.to_json()))
        assert [len(p.records) for p in again] == [0] * len(again)
        assert sum(p.calls for p in again) == 1
        assert again[-1].done


def edit_contacts(box: Sandbox, crm: str, record_ids: list[str], label: str) -> None:
    for record_id in record_ids:
        if crm == "hubspot":
            box.hubspot("PATCH", f"/crm/v3/objects/contacts/{record_id}",
                        {"properties": {"firstname": label}})
        else:
            box.pipedrive("PATCH", f"/persons/{record_id}", {"name": f"{label} Person"})


def settle(adapter: Any, object_type: ObjectType, cursor: PullCursor | None) -> PullCursor:
    """Pull until an increment returns nothing (clears a full pass's overlap window)."""
    for _ in range(5):
        pages = pull_all(adapter, object_type, cursor)
        cursor = pages[-1].cursor
        if not ids(pages):
            return cursor
    raise AssertionError("increments never settled")


def test_increment_returns_exactly_the_edited_records(adapter: Any, box: Sandbox,
                                                      crm: str) -> None:
    box.seed(crm, contacts=700)
    cursor = settle(adapter, "contacts", None)
    everyone = sorted(truth(box, crm, "contacts"), key=int)
    edited = everyone[::50]
    box.clock.advance(600)  # past the full pass's overlap
    edit_contacts(box, crm, edited, "Edited")
    box.clock.advance(LAG)
    pages = pull_all(adapter, "contacts", cursor)
    assert sorted(ids(pages), key=int) == edited
    assert {r.fields["first_name"] for p in pages for r in p.records} == {"Edited"}
    assert ids(pull_all(adapter, "contacts", pages[-1].cursor)) == []


def create_contacts(box: Sandbox, crm: str, count: int, label: str) -> list[str]:
    made: list[str] = []
    if crm == "hubspot":
        for start in range(0, count, 100):
            inputs = [{"properties": {"firstname": label, "email": f"{label}{i}@example.com"}}
                      for i in range(start, min(count, start + 100))]
            body = box.hubspot("POST", "/crm/v3/objects/contacts/batch/create",
                               {"inputs": inputs})
            made += [str(r["id"]) for r in body["results"]]
    else:
        for i in range(count):
            row = box.pipedrive("POST", "/persons", {"name": f"{label} {i}"})
            made.append(str(row["id"]))
    return sorted(made, key=int)


def test_ties_on_one_timestamp_are_neither_lost_nor_repeated(adapter: Any, box: Sandbox,
                                                             crm: str) -> None:
    cursor = settle(adapter, "contacts", None)
    box.clock.advance(600)
    first = create_contacts(box, crm, 620, "tie")  # one timestamp: the clock stands still
    written = box.clock()
    box.clock.advance(LAG)
    pages = pull_all(adapter, "contacts", cursor)
    assert sorted(ids(pages), key=int) == first
    # More writes in the very same second as the high-water mark (Pipedrive). HubSpot's
    # sandbox never stamps a write earlier than its last request and its increments stay
    # SEARCH_LAG behind, so there these land later, all on one millisecond again.
    box.clock.set(written)
    second = create_contacts(box, crm, 30, "again")
    edit_contacts(box, crm, first[:5], "changed")
    box.clock.set(written + 2 * LAG)
    pages = pull_all(adapter, "contacts", pages[-1].cursor)
    assert sorted(ids(pages), key=int) == sorted(second + first[:5], key=int)
    assert ids(pull_all(adapter, "contacts", pages[-1].cursor)) == []


@pytest.mark.parametrize(("search_limit", "tied_count"), [(200, 2_500), (60, 1_150)])
def test_hubspot_search_cap_restarts_without_loss_or_repeat(
        box: Sandbox, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch,
        search_limit: int, tied_count: int) -> None:
    monkeypatch.setattr(hubspot_records, "SEARCH_CAP", 1_000)
    monkeypatch.setattr(hubspot_records, "SEARCH_LIMIT", search_limit)
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    adapter.records_clock = box.clock
    cursor = settle(adapter, "contacts", None)
    box.clock.advance(600)
    spread = []
    for _ in range(3):  # some distinct timestamps, then more than the cap on one millisecond
        spread += create_contacts(box, "hubspot", 300, f"s{len(spread)}")
        box.clock.advance(0.001)
    tied = create_contacts(box, "hubspot", tied_count, "tied")
    box.clock.advance(0.001)
    later = create_contacts(box, "hubspot", 150, "later")
    box.clock.advance(LAG)
    pages = pull_all(adapter, "contacts", cursor)
    got = ids(pages)
    assert len(got) == len(set(got))
    assert sorted(got, key=int) == sorted(spread + tied + later, key=int)
    # Resuming from a page's cursor, in a tie or across a restart, yields the rest exactly.
    for index in range(0, len(pages) - 1, max(1, len(pages) // 5)):
        resumed = pull_all(adapter, "contacts",
                           PullCursor.from_json(pages[index].cursor.to_json()))
        assert ids(resumed) == ids(pages[index + 1:])
    adapter.close()


def test_resuming_from_any_page_yields_the_rest_exactly(adapter: Any, box: Sandbox,
                                                        crm: str) -> None:
    box.seed(crm, contacts=1100, deals=600, companies=200)
    for object_type in ("contacts", "deals"):
        pages = pull_all(adapter, object_type)
        for index in range(len(pages) - 1):
            resumed = pull_all(adapter, object_type,
                               PullCursor.from_json(pages[index].cursor.to_json()))
            assert ids(resumed) == ids(pages[index + 1:])


def test_a_repeated_page_token_raises(adapter: Any, box: Sandbox, crm: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    box.seed(crm, contacts=1200)
    if crm == "hubspot":
        real = adapter._records_request

        def same_token(*args: Any, **kwargs: Any) -> Any:
            body, calls = real(*args, **kwargs)
            body["paging"] = {"next": {"after": "1001"}}
            return body, calls

        monkeypatch.setattr(adapter, "_records_request", same_token)
    else:
        real_get = adapter._pd_get
        first: list[str] = []

        def same_cursor(url: str, **kwargs: Any) -> Any:
            body = real_get(url, **kwargs)
            if not url.endswith("/persons"):
                return body  # the field definitions
            if not first:
                first.append((body.get("additional_data") or {}).get("next_cursor"))
            body["additional_data"] = {"next_cursor": first[0]}  # a valid one, again
            return body

        monkeypatch.setattr(adapter, "_pd_get", same_cursor)
    with pytest.raises(RemoteError, match="second time"):
        pull_all(adapter, "contacts")


def test_faults_change_nothing_in_the_result(adapter: Any, box: Sandbox, crm: str) -> None:
    box.seed(crm, contacts=900, companies=200, deals=500)
    clean = {t: seen(pull_all(adapter, t), t) for t in TYPES}
    box.faults(rate_429=0.1, rate_5xx=0.1, rate_drop=0.1, seed=3)
    faulted = {t: seen(pull_all(adapter, t), t) for t in TYPES}
    box.faults(rate_429=0.0, rate_5xx=0.0, rate_drop=0.0)
    assert faulted == clean


def test_deleted_deals_come_as_removals(adapter: Any, box: Sandbox, crm: str) -> None:
    box.seed(crm, deals=50, contacts=10, companies=5)
    cursor = settle(adapter, "deals", None)
    box.clock.advance(600)
    victim = sorted(truth(box, crm, "deals"), key=int)[3]
    if crm == "hubspot":
        box.hubspot("DELETE", f"/crm/v3/objects/deals/{victim}")
        pages = pull_all(adapter, "deals", cursor, scan_removals=True)
        assert [(r.id, r.reason) for p in pages for r in p.removals] == [(victim, "archived")]
        # Scanned once: the next scan reports nothing new.
        again = pull_all(adapter, "deals", pages[-1].cursor, scan_removals=True)
        assert [r.id for p in again for r in p.removals] == []
    else:
        box.pipedrive("DELETE", f"/deals/{victim}")
        pages = pull_all(adapter, "deals", cursor)
        assert [(r.id, r.reason) for p in pages for r in p.removals] == [(victim, "deleted")]
        assert sum(p.calls for p in pages) == 1
        # Archived deals leave /deals; the removal scan reads them from /deals/archived (the
        # first scan what was archived since the first pass began; later ones since the last).
        pages = pull_all(adapter, "deals", pages[-1].cursor, scan_removals=True)
        shelved = sorted(truth(box, crm, "deals"), key=int)[5]
        box.pipedrive("PATCH", f"/deals/{shelved}", {"is_archived": True})
        box.clock.advance(LAG)
        pages = pull_all(adapter, "deals", pages[-1].cursor, scan_removals=True)
        assert [(r.id, r.reason) for p in pages for r in p.removals] == [(shelved, "archived")]
    assert victim not in ids(pages)


def test_field_definitions(adapter: Any, box: Sandbox, crm: str) -> None:
    try:
        definitions = adapter.field_definitions("deals")
    except FatalRemoteError as exc:
        if exc.status == 404:
            pytest.skip("the sandbox does not serve /crm/v3/properties yet (sandbox branch)")
        raise
    names = [d.name for d in definitions]
    assert len(names) == len(set(names))
    if crm == "pipedrive":
        assert {"monthly_fee", "lead_source"} <= set(names)
        assert not any(len(n) == 40 for n in names)  # never a hash key


def test_pipedrive_custom_fields_land_under_their_names(box: Sandbox,
                                                        fake_time: FakeTime) -> None:
    box.seed("pipedrive", deals=60, contacts=10, companies=5)
    adapter = PipedriveAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    definitions = adapter.field_definitions("deals")
    deals = [r for p in adapter.pull("deals", None, definitions) for r in p.records]
    sources = {r.properties.get("lead_source") for r in deals} - {None}
    assert sources
    assert sources <= {"Website", "Referral", "Event", "Outbound", "Partner"}
    fees = [r.properties["monthly_fee"] for r in deals if r.properties.get("monthly_fee")]
    assert fees
    assert all(set(f) == {"value", "currency"} for f in fees)
    assert not any(len(k) == 40 for r in deals for k in r.properties)
    adapter.close()


def test_pipedrive_removals_scan_uses_recents(box: Sandbox, fake_time: FakeTime) -> None:
    box.seed("pipedrive", contacts=20)
    adapter = PipedriveAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    cursor = settle(adapter, "contacts", None)
    box.clock.advance(600)
    victim = sorted(truth(box, "pipedrive", "contacts"), key=int)[0]
    box.pipedrive("DELETE", f"/persons/{victim}")
    try:
        pages = pull_all(adapter, "contacts", cursor, scan_removals=True)
    except FatalRemoteError as exc:
        if exc.status == 404:
            pytest.skip("the sandbox does not serve /v1/recents yet (sandbox branch)")
        raise
    assert victim in [r.id for p in pages for r in p.removals]
    adapter.close()


@pytest.mark.parametrize(("search_limit", "calls"), [(200, 3 + 1), (50, 10 + 1)])
def test_hubspot_long_property_lists_read_by_search_not_a_long_url(
        box: Sandbox, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch,
        search_limit: int, calls: int) -> None:
    # With smaller searches than an association batch, a page gathers several searches and
    # reads the associations of all of them at once.
    monkeypatch.setattr(hubspot_records, "SEARCH_LIMIT", search_limit)
    box.seed("hubspot", contacts=450, companies=60)
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    # 400 custom properties of 30 characters: far past MAX_URL as a CSV.
    many = [FieldDefinition(name=f"custom_property_number_{i:08d}", label=str(i), type="text",
                            remote_key=f"custom_property_number_{i:08d}", custom=True)
            for i in range(400)]
    pages = list(adapter.pull("contacts", None, many))
    assert seen(pages, "contacts") == truth(box, "hubspot", "contacts")
    assert pages[-1].cursor.phase == "incremental"
    # 450 records: the searches, and one association read (up to 1,000 ids).
    assert sum(p.calls for p in pages) == calls
    adapter.close()


def test_hubspot_pass_started_by_list_and_resumed_with_long_properties_starts_over(
        box: Sandbox, fake_time: FakeTime) -> None:
    box.seed("hubspot", contacts=350)
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    first = next(iter(adapter.pull("contacts", None, [])))
    assert first.cursor.extra["full_by"] == "list"
    many = [FieldDefinition(name=f"custom_property_number_{i:08d}", label=str(i), type="text",
                            remote_key=f"custom_property_number_{i:08d}", custom=True)
            for i in range(400)]
    rest = list(adapter.pull("contacts", first.cursor, many))
    assert sorted(ids(rest), key=int) == sorted(truth(box, "hubspot", "contacts"), key=int)
    assert rest[-1].cursor.pass_started_at == first.cursor.pass_started_at
    adapter.close()


def test_hubspot_merged_ids_on_a_survivor_are_removals() -> None:
    raw = {"id": "7", "properties": {"hs_merged_object_ids": "3;5",
                                     "lastmodifieddate": "2026-05-01T10:00:00.000Z"}}
    removals = hubspot_records._merged("contacts", [raw])
    assert [(r.id, r.reason, r.merged_into) for r in removals] == [
        ("3", "merged", "7"), ("5", "merged", "7")]


def test_hubspot_inline_associations_cut_short_are_read_in_bulk() -> None:
    full = {"id": "1", "associations": {"companies": {"results": [
        {"id": "9", "type": "contact_to_company"},
        {"id": "9", "type": "contact_to_company_unlabeled"},
        {"id": "4", "type": "contact_to_company_unlabeled"}]}}}
    cut = {"id": "2", "associations": {"companies": {
        "results": [{"id": "9", "type": "contact_to_company"}],
        "paging": {"next": {"after": "9"}}}}}
    links = hubspot_records._inline_associations(full, ("companies",))
    assert links is not None
    assert [(a.to_id, a.primary) for a in links] == [("4", False), ("9", True)]
    assert hubspot_records._inline_associations(cut, ("companies",)) is None


def test_increments_carry_complete_associations(adapter: Any, box: Sandbox, crm: str) -> None:
    box.seed(crm, contacts=200, companies=50, deals=300)
    cursor = settle(adapter, "deals", None)
    box.clock.advance(600)
    edited = sorted(truth(box, crm, "deals"), key=int)[::30]
    for deal_id in edited:
        if crm == "hubspot":
            box.hubspot("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                        {"properties": {"dealname": f"Renamed {deal_id}"}})
        else:
            box.pipedrive("PATCH", f"/deals/{deal_id}", {"title": f"Renamed {deal_id}"})
    box.clock.advance(LAG)
    pages = pull_all(adapter, "deals", cursor)
    expected = {k: v for k, v in truth(box, crm, "deals").items() if k in edited}
    assert seen(pages, "deals") == expected
    assert any(v["links"] for v in expected.values())


def test_hubspot_increment_leaves_the_last_moments_to_the_search_index(
        adapter: Any, box: Sandbox, crm: str) -> None:
    if crm != "hubspot":
        pytest.skip("Pipedrive lists are not read from a search index")
    cursor = settle(adapter, "contacts", None)
    box.clock.advance(600)
    made = create_contacts(box, crm, 3, "fresh")
    box.clock.advance(5)  # written 5 s ago: maybe not indexed yet
    pages = pull_all(adapter, "contacts", cursor)
    assert ids(pages) == []
    box.clock.advance(LAG)
    pages = pull_all(adapter, "contacts", pages[-1].cursor)
    assert sorted(ids(pages), key=int) == made


def test_hubspot_archived_scan_pages_and_resumes(box: Sandbox, fake_time: FakeTime) -> None:
    box.seed("hubspot", deals=400)
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    adapter.records_clock = box.clock
    cursor = settle(adapter, "deals", None)
    box.clock.advance(600)
    victims = sorted(truth(box, "hubspot", "deals"), key=int)[:150]
    for start in (0, 100):
        box.hubspot("POST", "/crm/v3/objects/deals/batch/archive",
                    {"inputs": [{"id": v} for v in victims[start:start + 100]]})
    box.clock.advance(LAG)
    pages = pull_all(adapter, "deals", cursor, scan_removals=True)
    assert sorted((r.id for p in pages for r in p.removals), key=int) == victims
    scan = [i for i, p in enumerate(pages) if p.cursor.phase == "archived"]
    assert scan  # 150 archived records: two list pages
    resumed = pull_all(adapter, "deals", PullCursor.from_json(pages[scan[0]].cursor.to_json()),
                       scan_removals=True)
    assert [r.id for p in resumed for r in p.removals] == [
        r.id for p in pages[scan[0] + 1:] for r in p.removals]
    # Without scan_removals nothing archived is listed: one call.
    quiet = pull_all(adapter, "deals", pages[-1].cursor)
    assert sum(p.calls for p in quiet) == 1
    adapter.close()


@pytest.mark.parametrize("object_type", TYPES)
def test_full_pull_with_the_crm_field_definitions(adapter: Any, box: Sandbox, crm: str,
                                                  object_type: ObjectType) -> None:
    box.seed(crm, contacts=400, companies=100, deals=300)
    definitions = adapter.field_definitions(object_type)
    custom = {d.name for d in definitions if d.custom}
    assert custom  # both sandboxes define custom fields on every type
    assert not any(len(name) == 40 for name in custom)  # never Pipedrive's hash keys
    pages = list(adapter.pull(object_type, None, definitions))
    live = truth(box, crm, object_type)
    assert seen(pages, object_type) == live
    records = [r for p in pages for r in p.records]
    assert custom & {name for r in records for name, value in r.properties.items() if value}
    for removal in (r for p in pages for r in p.removals):
        # merged duplicates (HubSpot) and deleted deals (Pipedrive): never live ones
        assert removal.id not in live
        assert removal.merged_into is None or removal.merged_into in live


def test_hubspot_merge_reports_the_merged_id_with_its_survivor(
        box: Sandbox, fake_time: FakeTime) -> None:
    box.seed("hubspot", contacts=30)
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    adapter.records_clock = box.clock
    cursor = settle(adapter, "contacts", None)
    box.clock.advance(600)
    survivor, merged = sorted(truth(box, "hubspot", "contacts"), key=int)[:2]
    box.hubspot("POST", "/crm/v3/objects/contacts/merge",
                {"primaryObjectId": survivor, "objectIdToMerge": merged})
    box.clock.advance(LAG)
    pages = pull_all(adapter, "contacts", cursor)
    assert ids(pages) == [survivor]
    assert [(r.id, r.reason, r.merged_into) for p in pages for r in p.removals] == [
        (merged, "merged", survivor)]
    adapter.close()


def test_hubspot_records_read_again_unchanged_cost_no_association_read(
        adapter: Any, box: Sandbox, crm: str) -> None:
    """The first increment after a full pass reads again what changed from just before the
    pass began; records the store holds at that very modification time (the engine's
    `stored_versions`) are left out, so that run costs its search alone."""
    if crm != "hubspot":
        pytest.skip("HubSpot reads a search's associations in a call of their own")
    box.seed(crm, contacts=30, companies=10, deals=40)
    for deal_id in truth(box, crm, "deals"):  # modified as the pass begins
        box.hubspot("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                    {"properties": {"description": "touched"}})
    full = pull_all(adapter, "deals")
    held = {r.id: r.modified_at for page in full for r in page.records}
    box.clock.advance(LAG)
    again = pull_all(adapter, "deals", PullCursor.from_json(full[-1].cursor.to_json()))
    assert sorted(ids(again), key=int) == sorted(held, key=int)  # without the store's word
    assert sum(p.calls for p in again) > 1  # its search and the deals' association reads
    edited = sorted(held, key=int)[::8]
    for deal_id in edited:
        box.hubspot("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                    {"properties": {"dealname": f"Renamed {deal_id}"}})
    box.clock.advance(LAG)
    asked: list[list[str]] = []

    def stored_versions(object_type: str, remote_ids: list[str]) -> dict[str, Any]:
        asked.append(remote_ids)
        return {i: held[i] for i in remote_ids if i in held}

    adapter.stored_versions = stored_versions
    cursor = PullCursor.from_json(full[-1].cursor.to_json())
    pages = pull_all(adapter, "deals", cursor)
    assert sorted(ids(pages), key=int) == edited  # changed since: read, with associations
    expected = {k: v for k, v in truth(box, crm, "deals").items() if k in edited}
    assert seen(pages, "deals") == expected
    assert asked
    for deal_id in edited:
        held[deal_id] = next(r.modified_at for p in pages for r in p.records if r.id == deal_id)
    box.clock.advance(LAG)
    quiet = pull_all(adapter, "deals", cursor)  # the same handover, nothing new since
    assert ids(quiet) == []
    assert sum(p.calls for p in quiet) == 1


def test_hubspot_first_sync_increment_costs_one_search_per_type(
        adapter: Any, box: Sandbox, crm: str, tmp_path: Path) -> None:
    """Through the engine: records touched just before the first pull are in the next
    run's search again, and the store's versions keep that run to its searches."""
    if crm != "hubspot":
        pytest.skip("HubSpot reads a search's associations in a call of their own")
    box.seed(crm, contacts=30, companies=10, deals=40)
    for object_type, prop in (("contacts", "jobtitle"), ("deals", "description")):
        for record_id in truth(box, crm, object_type):
            box.hubspot("PATCH", f"/crm/v3/objects/{object_type}/{record_id}",
                        {"properties": {prop: "touched"}})
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        first = pull_client("acme", crm, adapter, store, MappingRules(),
                            conflict_policy="remote_wins", concurrency=3)
        assert first.total("pulled") == 80
        assert adapter.stored_versions is None  # the adapter keeps no store between runs
        box.clock.advance(LAG)
        before = requests.get(f"{box.url}/_sandbox/stats", timeout=10).json()["by_route"]
        again = pull_client("acme", crm, adapter, store, MappingRules(),
                            conflict_policy="remote_wins", concurrency=3)
        after = requests.get(f"{box.url}/_sandbox/stats", timeout=10).json()["by_route"]
    spent = {route: n - before.get(route, 0) for route, n in after.items()
             if n != before.get(route, 0)}
    assert spent == {"POST /crm/v3/objects/{objectType}/search": 3}
    assert again.total("pulled") == 0
