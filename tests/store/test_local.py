"""The store's change API (`crmsync.store.local`), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update

from crmsync.errors import CrmsyncError, RecordError
from crmsync.store.local import LocalRecords, LocalRow
from crmsync.store.schema import associations, local_changes

if TYPE_CHECKING:
    from crmsync.store import Store

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, minutes: int = 1) -> None:
        self.now += dt.timedelta(minutes=minutes)


@pytest.fixture
def clock(store: Store) -> Clock:
    fake = Clock()
    store.clock = fake
    return fake


@pytest.fixture
def local(store: Store, clock: Clock) -> LocalRecords:
    return store.local("acme")


def queue(local: LocalRecords) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["object_type"], r["record_id"]): r for r in local.pending()}


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("object_type", "fields", "field", "message"), [
    ("contacts", {"email": "ada.example.com"}, "email", "'ada.example.com' is not an email"),
    ("contacts", {"email": "ada@example"}, "email", "is not an email address"),
    ("contacts", {"email": 42}, "email", "must be text, not int"),
    ("contacts", {"consent": "yes"}, "consent", "must be true or false, not 'yes'"),
    ("contacts", {"consent": 1}, "consent", "must be true or false"),
    ("contacts", {"owner_id": 1.5}, "owner_id", "must be text"),
    ("contacts", {"owner_id": True}, "owner_id", "must be text"),
    ("contacts", {"first_name": "x" * 256}, "first_name", "longer than 255 characters"),
    ("contacts", {"name": "Ada"}, "name", "unknown field; contacts have email, first_name"),
    ("contacts", {"email_key": "a@b.c"}, "email_key", "unknown field"),
    ("companies", {"domain": "not a domain"}, "domain", "is not a domain"),
    ("companies", {"email": "a@b.co"}, "email", "companies have name, domain, owner_id"),
    ("deals", {"amount": "12"}, "amount", "must be a number, not '12'"),
    ("deals", {"amount": float("inf")}, "amount", "must be a finite number"),
    ("deals", {"amount": float("nan")}, "amount", "must be a finite number"),
    ("deals", {"amount": True}, "amount", "must be a number"),
    ("deals", {"close_date": "01.02.2026"}, "close_date", "must be a date (YYYY-MM-DD)"),
    ("deals", {"close_date": 20260102}, "close_date", "must be a date"),
    ("deals", {"status": "closed"}, "status", "must be one of open, won, lost, not 'closed'"),
    ("deals", {"currency": "EURO"}, "currency", "3-letter currency code"),
    ("deals", {"currency": "E1R"}, "currency", "3-letter currency code"),
    ("deals", {"pipeline_key": "Sales Pipeline"}, "pipeline_key", "is not a blueprint key"),
    ("deals", {"stage_key": "1st"}, "stage_key", "is not a blueprint key"),
    ("deals", {"pipeline_id": "123"}, "pipeline_id", "unknown field"),
])
def test_each_invalid_value_is_refused_naming_record_and_field(
        local: LocalRecords, object_type: str, fields: dict[str, Any], field: str,
        message: str) -> None:
    with pytest.raises(RecordError) as caught:
        local.create(object_type, fields)
    singular = {"contacts": "contact", "companies": "company", "deals": "deal"}[object_type]
    assert (caught.value.record, caught.value.field) == (f"new {singular}", field)
    assert message in caught.value.reason
    assert str(caught.value).startswith(f"new {singular}: {field}: ")
    assert isinstance(caught.value, CrmsyncError)
    assert local.pending() == []


@pytest.mark.parametrize(("properties", "field", "message"), [
    ({"email": "a@b.co"}, "email", "set it as a field"),
    ({"email_key": "x"}, "email_key", "reserved by the store"),
    ({"associations:companies": "1"}, "associations:companies", "reserved by the store"),
    ({"score": [1, 2]}, "score", "must be text, a number, true/false or None, not list"),
    ({"score": float("nan")}, "score", "must be a finite number"),
])
def test_invalid_properties_are_refused(local: LocalRecords, properties: dict[str, Any],
                                        field: str, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        local.create("contacts", {"email": "a@b.co"}, properties)
    assert caught.value.field == field
    assert message in caught.value.reason


def test_an_update_names_the_record_by_id(local: LocalRecords) -> None:
    deal = local.create("deals", {"name": "D"})
    with pytest.raises(RecordError) as caught:
        local.update("deals", deal, {"status": "done"})
    assert (caught.value.record, caught.value.field) == (f"deals #{deal}", "status")


def test_values_are_normalised(local: LocalRecords) -> None:
    deal = local.create("deals", {"name": "  Retainer ", "amount": 1200, "currency": "eur",
                                  "status": "Won", "close_date": "2026-04-30",
                                  "owner_id": 77, "pipeline_key": "sales",
                                  "stage_key": "proposal_received"})
    row = local.get("deals", deal)
    assert row is not None
    assert (row["name"], row["amount"], row["currency"], row["status"], row["close_date"],
            row["owner_id"]) == ("Retainer", 1200.0, "EUR", "won", dt.date(2026, 4, 30), "77")
    assert (row["pipeline_key"], row["stage_key"]) == ("sales", "proposal_received")


def test_unknown_record_and_object_type(local: LocalRecords, store: Store) -> None:
    with pytest.raises(RecordError, match="no live contact #999 for client acme"):
        local.update("contacts", 999, {"first_name": "X"})
    with pytest.raises(CrmsyncError, match="unknown object type 'people'"):
        local.create("people", {})
    other = store.local("other").create("contacts", {"email": "x@other.example"})
    with pytest.raises(RecordError, match="no live contact"):
        local.update("contacts", other, {"first_name": "X"})
    assert local.get("contacts", other) is None


# --- identity -------------------------------------------------------------------------------------

def test_a_contact_with_the_same_email_is_the_same_record(local: LocalRecords) -> None:
    ada = local.create("contacts", {"email": "ada@example.com", "first_name": "Ada"})
    again = local.create("contacts", {"email": "  ADA@Example.COM ", "last_name": "Lovelace"})
    assert again == ada
    row = local.get("contacts", ada)
    assert row is not None
    assert (row["first_name"], row["last_name"], row["email_key"]) == (
        "Ada", "Lovelace", "ada@example.com")
    found = local.find_contact("Ada@example.com ")
    assert found is not None
    assert found["id"] == ada
    assert local.find_contact("nobody@example.com") is None


def test_a_company_with_the_same_domain_is_the_same_record(local: LocalRecords) -> None:
    firm = local.create("companies", {"name": "Example", "domain": "example.com"})
    assert local.create("companies", {"domain": "https://www.Example.com/about"}) == firm
    assert local.create("companies", {"domain": "WWW.EXAMPLE.COM"}) == firm
    assert local.create("companies", {"domain": "other.example.com"}) != firm


def test_deals_never_match_and_deleted_contacts_do_not_either(local: LocalRecords) -> None:
    first = local.create("deals", {"name": "Same"})
    assert local.create("deals", {"name": "Same"}) != first
    ada = local.create("contacts", {"email": "ada@example.com"})
    local.delete("contacts", ada)
    assert local.create("contacts", {"email": "ada@example.com"}) != ada


def test_identity_is_per_client(store: Store, local: LocalRecords) -> None:
    mine = local.create("contacts", {"email": "ada@example.com"})
    theirs = store.local("other").create("contacts", {"email": "ada@example.com"})
    assert mine != theirs


# --- the queue ------------------------------------------------------------------------------------

def test_create_queues_the_fields_and_properties_it_set(local: LocalRecords) -> None:
    ada = local.create("contacts", {"email": "ada@example.com", "phone": None},
                       {"lead_source": "fair"})
    entry = queue(local)[("contacts", ada)]
    assert (entry["op"], entry["fields"], aware(entry["queued_at"]), entry["attempts"]) == (
        "upsert", ["email", "lead_source"], T0, 0)


def test_edits_coalesce_into_one_queue_row(local: LocalRecords, store: Store,
                                           clock: Clock) -> None:
    ada = local.create("contacts", {"email": "ada@example.com"})
    with store.engine.begin() as conn:  # as a failed push leaves it
        conn.execute(update(local_changes).values(attempts=2, last_error="boom"))
    clock.tick()
    local.update("contacts", ada, {"first_name": "Ada"}, {"score": 5})
    local.create("contacts", {"email": "ADA@example.com", "consent": False})
    entries = local.pending()
    assert len(entries) == 1
    entry = entries[0]
    assert entry["fields"] == ["consent", "email", "first_name", "score"]
    assert aware(entry["queued_at"]) == T0 + dt.timedelta(minutes=1)
    assert (entry["op"], entry["attempts"], entry["last_error"]) == ("upsert", 2, "boom")


def test_a_write_that_changes_nothing_queues_nothing(local: LocalRecords, store: Store) -> None:
    ada = local.create("contacts", {"email": "ada@example.com", "first_name": "Ada"},
                       {"score": 5})
    with store.engine.begin() as conn:  # as a push that landed leaves it
        conn.execute(local_changes.delete())
    local.update("contacts", ada, {"first_name": " Ada "}, {"score": 5})
    local.update("contacts", ada, properties={"missing": None})
    assert local.pending() == []
    local.update("contacts", ada, {"first_name": None})
    assert queue(local)[("contacts", ada)]["fields"] == ["first_name"]


def test_delete_tombstones_and_queues_a_delete(local: LocalRecords, clock: Clock) -> None:
    ada = local.create("contacts", {"email": "ada@example.com"})
    clock.tick()
    local.delete("contacts", ada)
    row = local.get("contacts", ada)
    assert row is not None
    assert (aware(row["deleted_at"]), row["deleted_reason"]) == (
        T0 + dt.timedelta(minutes=1), "local")
    entry = queue(local)[("contacts", ada)]
    assert (entry["op"], entry["fields"]) == ("delete", ["email"])
    local.delete("contacts", ada)  # already deleted: nothing changes
    assert len(local.pending()) == 1
    assert local.find_contact("ada@example.com") is None
    with pytest.raises(RecordError, match="no live contact"):
        local.update("contacts", ada, {"first_name": "A"})
    with pytest.raises(RecordError, match="no such record"):
        local.delete("contacts", 12345)


# --- associations ---------------------------------------------------------------------------------

def test_associations_are_queued_on_the_owning_side(local: LocalRecords, store: Store) -> None:
    ada = local.create("contacts", {"email": "ada@example.com"})
    firm = local.create("companies", {"domain": "example.com"})
    other = local.create("companies", {"domain": "other.example"})
    deal = local.create("deals", {"name": "D"})
    with store.engine.begin() as conn:
        conn.execute(local_changes.delete())
    local.associate("companies", firm, "contacts", ada, primary=True)  # either order
    local.associate("deals", deal, "contacts", ada)
    assert {k: v["fields"] for k, v in queue(local).items()} == {
        ("contacts", ada): ["associations:companies"],
        ("deals", deal): ["associations:contacts"]}
    local.associate("contacts", ada, "companies", other, primary=True)
    with store.engine.connect() as conn:
        rows = {(r.from_type, r.from_id, r.to_type, r.to_id): r.is_primary
                for r in conn.execute(select(associations))}
    assert rows == {("contacts", ada, "companies", firm): False,
                    ("contacts", ada, "companies", other): True,
                    ("deals", deal, "contacts", ada): False}
    with store.engine.begin() as conn:
        conn.execute(local_changes.delete())
    local.associate("contacts", ada, "companies", other, primary=True)  # no change
    assert local.pending() == []
    local.dissociate("contacts", ada, "companies", firm)
    local.dissociate("contacts", ada, "companies", firm)
    assert {k: v["fields"] for k, v in queue(local).items()} == {
        ("contacts", ada): ["associations:companies"]}
    assert store.records("acme").association_pairs("contacts", "companies") == {
        (ada, other, True)}


def test_association_errors(local: LocalRecords) -> None:
    ada = local.create("contacts", {"email": "ada@example.com"})
    bob = local.create("contacts", {"email": "bob@example.com"})
    with pytest.raises(RecordError) as caught:
        local.associate("contacts", ada, "contacts", bob)
    assert caught.value.field == "associations:contacts"
    with pytest.raises(RecordError, match="no live company #404"):
        local.associate("contacts", ada, "companies", 404)
    assert local.pending()[0]["fields"] == ["email"]


# --- the batch ------------------------------------------------------------------------------------

def test_apply_rows_collects_errors_per_row(local: LocalRecords) -> None:
    existing = local.create("contacts", {"email": "old@example.com"})
    result = local.apply_rows("contacts", [
        LocalRow({"email": "new@example.com"}, label="row 2"),
        LocalRow({"email": "broken", "consent": "maybe"}, label="row 3"),
        LocalRow({"email": "OLD@example.com", "first_name": "Old"}, label="row 4"),
        LocalRow({"email": "new@example.com", "last_name": "New"}, label="row 5"),
        LocalRow({"email": "OLD@example.com"}, label="row 6"),
        LocalRow({"first_name": "X"}, record_id=9999, label="row 7"),
    ])
    statuses = [(o.status, o.same_as) for o in result.outcomes]
    assert statuses == [("new", None), ("rejected", None), ("updated", None),
                        ("updated", 0), ("unchanged", None), ("rejected", None)]
    assert [(e.record, e.field) for e in result.outcomes[1].errors] == [
        ("row 3", "email"), ("row 3", "consent")]
    assert result.outcomes[5].errors[0].record == "row 7"
    assert result.outcomes[2].record_id == existing
    created = result.outcomes[0].record_id
    assert created is not None
    assert result.outcomes[3].record_id == created
    row = local.get("contacts", created)
    assert row is not None
    assert row["last_name"] == "New"
    assert (result.count("new"), result.count("rejected"), len(result.errors)) == (1, 2, 3)
    assert result.outcomes[0].values == {"email": "new@example.com"}
    assert queue(local)[("contacts", created)]["fields"] == ["email", "last_name"]


def test_apply_rows_dry_run_writes_nothing(local: LocalRecords, store: Store) -> None:
    existing = local.create("companies", {"domain": "example.com"})
    with store.engine.begin() as conn:
        conn.execute(local_changes.delete())
    result = local.apply_rows("companies", [
        LocalRow({"domain": "www.example.com", "name": "Example"}, {"tier": "a"}),
        LocalRow({"domain": "fresh.example", "name": "Fresh"})], dry_run=True)
    assert [(o.status, o.record_id) for o in result.outcomes] == [
        ("updated", existing), ("new", None)]
    assert result.outcomes[0].values == {"domain": "www.example.com", "name": "Example",
                                         "properties.tier": "a"}
    assert local.pending() == []
    assert [r["id"] for r in store.records("acme").live("companies")] == [existing]
