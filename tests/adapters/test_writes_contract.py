"""One write contract, both CRMs: `RecordWriter.write` / `.read` against the sandbox over real
HTTP. Every outcome is checked against the sandbox's own state (`dump_state`), not only
against what the adapter says it did."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.base import StageSpec
from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.records import Association, RecordWrite, RecordWriter, WriteResult
from crmsync.errors import RemoteError, TokenRefusedError

from .record_sandbox import PD_ENTITY, TOKEN, Sandbox

if TYPE_CHECKING:

    from crmsync.names import ObjectType

    from .conftest import FakeTime

def live(box: Sandbox, crm: str, object_type: ObjectType) -> dict[str, dict[str, Any]]:
    """Live records of the account: id -> {email|name|title: …, plus raw props or row}."""
    state = box.account(crm).dump_state()
    if crm == "hubspot":
        return {str(rid): props for rid, props, _c, _u, archived, _a
                in state["objects"][object_type] if not archived}
    return {str(row["id"]): row for row in state["tables"][PD_ENTITY[object_type]]["rows"]
            if not row["is_deleted"]}


def links(box: Sandbox, crm: str, object_type: ObjectType,
          record_id: str) -> set[tuple[str, str, bool]]:
    """(to type, to id, primary) the sandbox holds for one record's owning side."""
    if crm == "hubspot":
        state = box.account(crm).dump_state()
        return {(to_type, str(to_id), bool(set(type_ids) & {1, 5}))
                for from_type, from_id, to_type, to_id, type_ids in state["associations"]
                if from_type == object_type and str(from_id) == record_id
                and to_type in ("companies", "contacts") and type_ids}
    row = live(box, crm, object_type)[record_id]
    found = set()
    if row.get("org_id"):
        found.add(("companies", str(row["org_id"]), True))
    if object_type == "deals" and row.get("person_id"):
        found.add(("contacts", str(row["person_id"]), True))
    return found


def email_of(crm: str, record: dict[str, Any]) -> str | None:
    if crm == "hubspot":
        return record.get("email")
    return next((e["value"] for e in record.get("emails") or [] if e.get("primary")), None)


def first_name_of(crm: str, record: dict[str, Any]) -> str | None:
    return record.get("firstname") if crm == "hubspot" else record.get("first_name")


def contact(key: str, email: str, first: str = "Ada", **extra: Any) -> RecordWrite:
    return RecordWrite("contacts", "create", key,
                       fields={"email": email, "first_name": first, "last_name": "Byron"},
                       **extra)


def ok(results: list[WriteResult]) -> list[str]:
    assert [r.error for r in results if not r.ok] == []
    return [str(r.remote_id) for r in results]


def a_stage(adapter: Any) -> tuple[str, str]:
    """A pipeline id and an open stage id of the account (made when there is none)."""
    pipelines = adapter.list_pipelines()
    if not pipelines:
        made = adapter.create_pipeline("Sales", 0, [StageSpec("Meeting booked", 0, 0.2),
                                                    StageSpec("Proposal sent", 1, 0.6)])
        pipelines = [made]
    pipeline = pipelines[0]
    stage = next(s for s in pipeline.stages if s.outcome is None)
    return pipeline.id, stage.id


def calls(adapter: Any) -> int:
    return int(adapter.policy.requests_sent)


# -- the contract --------------------------------------------------------------------------------


def test_both_adapters_are_record_writers(adapter: Any) -> None:
    assert isinstance(adapter, RecordWriter)


def test_contacts_round_trip_create_update_archive(adapter: Any, box: Sandbox,
                                                   crm: str) -> None:
    made = ok(adapter.write("contacts", [contact("k1", "ada@example.com"),
                                         contact("k2", "grace@example.com", "Grace")]))
    state = live(box, crm, "contacts")
    assert {email_of(crm, state[i]) for i in made} == {"ada@example.com", "grace@example.com"}
    results = adapter.write("contacts", [RecordWrite(
        "contacts", "update", "k1", remote_id=made[0], fields={"first_name": "Augusta"})])
    ok(results)
    assert first_name_of(crm, live(box, crm, "contacts")[made[0]]) == "Augusta"
    record = results[0].record
    assert record is not None
    assert record.id == made[0]
    assert record.fields["first_name"] == "Augusta"
    assert results[0].modified_at is not None
    assert [r.key for r in results] == ["k1"]
    ok(adapter.write("contacts", [RecordWrite("contacts", "archive", "k2",
                                              remote_id=made[1])]))
    assert set(live(box, crm, "contacts")) == {made[0]}
    # Archiving what is gone already is done, not an error.
    ok(adapter.write("contacts", [RecordWrite("contacts", "archive", "k2",
                                              remote_id=made[1])]))


def test_companies_and_deals_round_trip(adapter: Any, box: Sandbox, crm: str) -> None:
    [company] = ok(adapter.write("companies", [RecordWrite(
        "companies", "create", "c1", fields={"name": "Northwind", "domain": "northwind.example"})]))
    pipeline_id, stage_id = a_stage(adapter)
    results = adapter.write("deals", [RecordWrite(
        "deals", "create", "d1",
        fields={"name": "Retainer", "amount": Decimal("1200.50"), "currency": "EUR",
                "pipeline_id": pipeline_id, "stage_id": stage_id,
                "close_date": dt.date(2027, 3, 31)},
        associations=(Association("companies", company, primary=True),))])
    [deal] = ok(results)
    record = results[0].record
    assert record is not None
    assert record.fields["name"] == "Retainer"
    assert record.fields["amount"] == Decimal("1200.50")
    assert record.fields["stage_id"] == stage_id
    assert record.fields["close_date"] == dt.date(2027, 3, 31)
    assert record.fields["status"] == "open"
    row = live(box, crm, "deals")[deal]
    title = row["dealname"] if crm == "hubspot" else row["title"]
    assert title == "Retainer"
    assert links(box, crm, "deals", deal) == {("companies", company, True)}
    read = adapter.read("companies", [company, "999999"])
    assert [r.id for r in read] == [company]
    assert read[0].fields["name"] == "Northwind"
    assert read[0].fields["domain"] == "northwind.example"
    ok(adapter.write("deals", [RecordWrite("deals", "update", "d1", remote_id=deal,
                                           fields={"name": "Retainer 2027"})]))
    row = live(box, crm, "deals")[deal]
    assert (row["dealname"] if crm == "hubspot" else row["title"]) == "Retainer 2027"
    ok(adapter.write("deals", [RecordWrite("deals", "archive", "d1", remote_id=deal)]))
    assert deal not in live(box, crm, "deals")


def test_one_bad_record_fails_alone_with_the_crms_message(adapter: Any, box: Sandbox,
                                                          crm: str) -> None:
    if crm == "hubspot":
        # The sandbox refuses an invalid email per input (INVALID_EMAIL): a 207.
        bad = contact("bad", "not-an-email")
        expected = "not-an-email"
    else:
        # A person linked to an organization that does not exist.
        bad = contact("bad", "lost@example.com",
                      associations=(Association("companies", "987654", True),))
        expected = "org_id"
    writes = [contact("a", "a@example.com"), bad, contact("b", "b@example.com")]
    results = adapter.write("contacts", writes)
    assert [r.key for r in results] == ["a", "bad", "b"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error
    assert expected in results[1].error
    emails = {email_of(crm, r) for r in live(box, crm, "contacts").values()}
    assert {"a@example.com", "b@example.com"} <= emails
    if crm == "hubspot":
        assert "not-an-email" not in emails


def test_creating_an_existing_email_updates_that_contact(adapter: Any, box: Sandbox,
                                                         crm: str) -> None:
    if crm == "hubspot":
        existing = str(box.hubspot("POST", "/crm/v3/objects/contacts", {
            "properties": {"email": "known@example.com", "firstname": "Old"}})["id"])
    else:
        existing = str(box.pipedrive("POST", "/persons", {
            "name": "Old Name", "emails": [{"value": "known@example.com", "primary": True}]})["id"])
    before = len(live(box, crm, "contacts"))
    results = adapter.write("contacts", [contact("k", "known@example.com", "New")])
    assert ok(results) == [existing]
    state = live(box, crm, "contacts")
    assert len(state) == before
    assert first_name_of(crm, state[existing]) == "New"


def test_a_create_retried_after_dropped_connections_is_not_duplicated(
        adapter: Any, box: Sandbox, crm: str) -> None:
    box.faults(rate_drop=0.3, seed=5, fault_crm=crm)
    try:
        results = adapter.write("contacts", [contact(f"k{i}", f"p{i}@example.com")
                                             for i in range(30)])
        companies = adapter.write("companies", [RecordWrite(
            "companies", "create", f"c{i}", fields={"name": f"Firm {i}",
                                                   "domain": f"firm{i}.example"})
            for i in range(10)])
    finally:
        box.faults(rate_drop=0.0)
    made = ok(results)
    assert len(set(made)) == 30
    state = live(box, crm, "contacts")
    emails = [str(email_of(crm, r)) for r in state.values()]
    assert sorted(emails) == sorted(f"p{i}@example.com" for i in range(30))
    ok(companies)
    assert len(live(box, crm, "companies")) == 10


def test_associations_are_written_and_removed(adapter: Any, box: Sandbox, crm: str) -> None:
    first, second = ok(adapter.write("companies", [
        RecordWrite("companies", "create", "c1", fields={"name": "First"}),
        RecordWrite("companies", "create", "c2", fields={"name": "Second"})]))
    [person] = ok(adapter.write("contacts", [contact(
        "p", "linked@example.com", associations=(Association("companies", first, True),))]))
    assert links(box, crm, "contacts", person) == {("companies", first, True)}
    results = adapter.write("contacts", [RecordWrite(
        "contacts", "update", "p", remote_id=person,
        associations=(Association("companies", second, True),))])
    ok(results)
    assert links(box, crm, "contacts", person) == {("companies", second, True)}
    record = results[0].record
    assert record is not None
    assert {(a.to_type, a.to_id) for a in record.associations or ()} == {("companies", second)}
    # None leaves them alone; () removes them.
    ok(adapter.write("contacts", [RecordWrite("contacts", "update", "p", remote_id=person,
                                              fields={"last_name": "Lovelace"})]))
    assert links(box, crm, "contacts", person) == {("companies", second, True)}
    ok(adapter.write("contacts", [RecordWrite("contacts", "update", "p", remote_id=person,
                                              associations=())]))
    assert links(box, crm, "contacts", person) == set()
    pipeline_id, stage_id = a_stage(adapter)
    [deal] = ok(adapter.write("deals", [RecordWrite(
        "deals", "create", "d", fields={"name": "Deal", "pipeline_id": pipeline_id,
                                        "stage_id": stage_id},
        associations=(Association("contacts", person), Association("companies", first, True)))]))
    expected = {("contacts", person), ("companies", first)}
    assert {(t, i) for t, i, _ in links(box, crm, "deals", deal)} == expected
    read = adapter.read("deals", [deal])
    assert {(a.to_type, a.to_id) for a in read[0].associations or ()} == expected
    ok(adapter.write("deals", [RecordWrite(
        "deals", "update", "d", remote_id=deal,
        associations=(Association("companies", second, True),))]))
    assert {(t, i) for t, i, _ in links(box, crm, "deals", deal)} == {("companies", second)}


def test_custom_fields_and_options_by_name(adapter: Any, box: Sandbox, crm: str) -> None:
    if crm == "hubspot":
        box.hubspot("POST", "/crm/v3/properties/contacts", {
            "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select",
            "groupName": "contactinformation",
            "options": [{"label": "Gold", "value": "gold"},
                        {"label": "Silver", "value": "silver"}]})
        value, stored, wrong = "gold", "gold", "platinum"
    else:
        response = requests.post(f"{box.url}/api/v1/personFields", headers={"x-api-token": TOKEN},
                                 json={"name": "Tier", "field_type": "enum",
                                       "options": [{"label": "Gold"}, {"label": "Silver"}]},
                                 timeout=10)
        response.raise_for_status()
        field = response.json()["data"]
        stored = next(o["id"] for o in field["options"] if o["label"] == "Gold")
        value, wrong = "Gold", "Platinum"
    results = adapter.write("contacts", [
        contact("k", "tiered@example.com", properties={"tier": value}),
        contact("w", "wrong@example.com", properties={"tier": wrong}),
    ])
    assert [r.ok for r in results] == [True, False]
    assert wrong in (results[1].error or "")
    record = live(box, crm, "contacts")[str(results[0].remote_id)]
    if crm == "hubspot":
        assert record["tier"] == stored
    else:
        assert list(record["custom_fields"].values()) == [stored]
        assert all(len(k) == 40 for k in record["custom_fields"])
    [read] = adapter.read("contacts", [str(results[0].remote_id)])
    assert read.properties["tier"] == value
    assert adapter.write("contacts", [contact("u", "odd@example.com",
                                              properties={"no_such_field": "x"})])[0].ok is False


def test_hubspot_calls_per_thousand_changed_records(box: Sandbox, fake_time: FakeTime) -> None:
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    [company] = ok(adapter.write("companies", [RecordWrite("companies", "create", "c",
                                                           fields={"name": "Hub"})]))
    link = (Association("companies", company, True),)
    made = ok(adapter.write("contacts", [contact(f"k{i}", f"u{i}@example.com", associations=link)
                                         for i in range(1000)]))
    assert len(set(made)) == 1000
    before = calls(adapter)
    updates = [RecordWrite("contacts", "update", f"k{i}", remote_id=rid,
                           fields={"first_name": f"N{i}"}, associations=link)
               for i, rid in enumerate(made)]
    ok(adapter.write("contacts", updates))
    # 10 batch updates + 1 association read of 1,000; nothing else to write.
    assert calls(adapter) - before <= 11
    before = calls(adapter)
    deals = ok(adapter.write("deals", [RecordWrite(
        "deals", "create", f"d{i}", fields={"name": f"Deal {i}", "pipeline_id": "default",
                                            "stage_id": "appointmentscheduled"},
        associations=(Association("contacts", made[i]), *link)) for i in range(1000)]))
    # 10 batch creates with associations inline + 1 read of the deal pipelines.
    assert calls(adapter) - before <= 11
    assert len(set(deals)) == 1000
    assert links(box, "hubspot", "deals", deals[7]) == {("contacts", made[7], False),
                                                        ("companies", company, True)}
    adapter.close()


def test_pipedrive_one_call_per_record(box: Sandbox, fake_time: FakeTime) -> None:
    adapter = PipedriveAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    made = ok(adapter.write("contacts", [contact(f"k{i}", f"u{i}@example.com")
                                         for i in range(40)]))
    # The field definitions once, then a look (search by email) and a create per person.
    assert calls(adapter) == 1 + 2 * 40
    before = calls(adapter)
    ok(adapter.write("contacts", [RecordWrite("contacts", "update", f"k{i}", remote_id=rid,
                                              fields={"phone": f"+49 30 {i:04d}"})
                                  for i, rid in enumerate(made)]))
    assert calls(adapter) - before == 40
    before = calls(adapter)
    ok(adapter.write("contacts", [RecordWrite("contacts", "archive", f"k{i}", remote_id=rid)
                                  for i, rid in enumerate(made)]))
    assert calls(adapter) - before == 40
    assert live(box, "pipedrive", "contacts") == {}
    adapter.close()


def test_pipedrive_deal_status_is_written_as_status(box: Sandbox, fake_time: FakeTime) -> None:
    adapter = PipedriveAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    pipeline_id, stage_id = a_stage(adapter)
    [deal] = ok(adapter.write("deals", [RecordWrite(
        "deals", "create", "d", fields={"name": "Won one", "pipeline_id": pipeline_id,
                                        "stage_id": stage_id, "status": "won"})]))
    row = live(box, "pipedrive", "deals")[deal]
    assert row["status"] == "won"
    results = adapter.write("deals", [RecordWrite("deals", "update", "d", remote_id=deal,
                                                  fields={"status": "lost"})])
    ok(results)
    assert live(box, "pipedrive", "deals")[deal]["status"] == "lost"
    assert results[0].record is not None
    assert results[0].record.fields["status"] == "lost"
    adapter.close()


def test_hubspot_a_batch_refused_whole_is_split_to_the_records_at_fault(
        box: Sandbox, fake_time: FakeTime) -> None:
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    made = ok(adapter.write("contacts", [contact(f"k{i}", f"s{i}@example.com")
                                         for i in range(4)]))
    # The same id twice in one batch update: HubSpot refuses the whole batch (400), so the
    # writer splits it until each update stands alone, and every one lands.
    writes = [RecordWrite("contacts", "update", f"k{i}", remote_id=rid,
                          fields={"first_name": f"Split{i}"}) for i, rid in enumerate(made)]
    writes.append(RecordWrite("contacts", "update", "again", remote_id=made[0],
                              fields={"last_name": "Twice"}))
    results = adapter.write("contacts", writes)
    assert [r.ok for r in results] == [True] * 5
    state = live(box, "hubspot", "contacts")
    assert [state[rid]["firstname"] for rid in made] == [f"Split{i}" for i in range(4)]
    assert state[made[0]]["lastname"] == "Twice"
    adapter.close()


def test_a_refused_token_raises(box: Sandbox, crm: str, fake_time: FakeTime) -> None:
    cls = HubSpotAdapter if crm == "hubspot" else PipedriveAdapter
    # No token at all: the CRM answers 401 for the whole call, which raises.
    adapter: Any = cls(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    session = adapter._session if crm == "pipedrive" else adapter._records_session()
    session.headers.pop("x-api-token", None)
    session.headers.pop("Authorization", None)
    with pytest.raises(TokenRefusedError):
        adapter.write("contacts", [contact("k", "nobody@example.com")])
    adapter.close()


def test_hubspot_primary_flag_and_a_missing_company(box: Sandbox, fake_time: FakeTime) -> None:
    adapter = HubSpotAdapter(box.url, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock)
    [company] = ok(adapter.write("companies", [RecordWrite("companies", "create", "c",
                                                           fields={"name": "Prime"})]))
    [person] = ok(adapter.write("contacts", [contact(
        "p", "prime@example.com", associations=(Association("companies", company, True),))]))
    assert links(box, "hubspot", "contacts", person) == {("companies", company, True)}
    ok(adapter.write("contacts", [RecordWrite(
        "contacts", "update", "p", remote_id=person,
        associations=(Association("companies", company, False),))]))
    assert links(box, "hubspot", "contacts", person) == {("companies", company, False)}
    # A company HubSpot does not have: the contact is written, its association is not, and
    # the result says so with HubSpot's message.
    results = adapter.write("contacts", [RecordWrite(
        "contacts", "update", "p", remote_id=person, fields={"first_name": "Still"},
        associations=(Association("companies", "424242", True),))])
    assert results[0].ok is False
    assert results[0].remote_id == person
    assert "424242" in (results[0].error or "")
    assert first_name_of("hubspot", live(box, "hubspot", "contacts")[person]) == "Still"
    adapter.close()


def test_creating_a_known_company_domain_updates_that_company(adapter: Any, box: Sandbox,
                                                              crm: str) -> None:
    [first] = ok(adapter.write("companies", [RecordWrite(
        "companies", "create", "c", fields={"name": "Contoso", "domain": "contoso.example"})]))
    before = len(live(box, crm, "companies"))
    results = adapter.write("companies", [
        RecordWrite("companies", "create", "again", fields={"name": "Contoso Ltd",
                                                            "domain": "Contoso.example"}),
        RecordWrite("companies", "create", "new", fields={"name": "Fabrikam",
                                                          "domain": "fabrikam.example"})])
    made = ok(results)
    assert made[0] == first
    assert made[1] != first
    state = live(box, crm, "companies")
    assert len(state) == before + 1
    assert state[first]["name"] == "Contoso Ltd"


def test_giving_up_midway_loses_no_written_result(adapter: Any, box: Sandbox,
                                                  crm: str) -> None:
    made = ok(adapter.write("contacts", [contact("a", "first@example.com"),
                                         contact("b", "second@example.com")]))
    if crm == "hubspot":
        # Creates go by upsert, updates by batch update: only the updates fail.
        prefix = "/crm/v3/objects/contacts/batch/update"
        writes = [contact("new", "third@example.com"),
                  RecordWrite("contacts", "update", "b", remote_id=made[1],
                              fields={"first_name": "Never"})]
    else:
        prefix = f"/api/v2/persons/{made[1]}"
        writes = [RecordWrite("contacts", "update", "a", remote_id=made[0],
                              fields={"first_name": "Landed"}),
                  RecordWrite("contacts", "update", "b", remote_id=made[1],
                              fields={"first_name": "Never"})]
    box.faults(rate_5xx=1.0, fault_crm=crm, fault_path_prefix=prefix)
    try:
        results = adapter.write("contacts", writes)
        # Nothing of a call written: the whole call failed, and that raises.
        with pytest.raises(RemoteError):
            adapter.write("contacts", writes[1:])
    finally:
        box.faults(rate_5xx=0.0, fault_path_prefix=None)
    assert [r.ok for r in results] == [True, False]
    assert results[0].remote_id
    assert "not sent" in (results[1].error or "")
    state = live(box, crm, "contacts")
    assert first_name_of(crm, state[made[1]]) != "Never"
    assert str(results[0].remote_id) in state
