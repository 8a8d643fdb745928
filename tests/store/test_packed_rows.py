"""Rows packed for the trip from a worker process (`PackedRows`, `mapping.pack_page`) store
exactly what the same rows store as `RecordRow`s: created, re-read and changed, repeated in
one page, filling stubs, linked to a local record — on SQLite and PostgreSQL, compared
record by record."""

from __future__ import annotations

import datetime as dt
import pickle
from typing import TYPE_CHECKING

from crmsync.adapters.records import Association, RecordPage, RemoteRecord
from crmsync.store.records import PackedRows, RecordRow
from crmsync.sync.mapping import MappingRules, StageKeys, pack_page, prepare_page
from crmsync.sync.reconcile import resolver
from tests.sync.test_export_load import stored

if TYPE_CHECKING:
    from crmsync.store import Store

RULES = MappingRules(StageKeys.from_known({"sales": "p1"}, {("sales", "won"): "s9"}),
                     consent_field="marketing_consent")
WHEN = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)


def _contact(n: int, *, name: str = "", company: str | None = None) -> RemoteRecord:
    return RemoteRecord(
        "contacts", str(n), WHEN + dt.timedelta(minutes=n),
        {"email": f" Person{n}@Example.com ", "first_name": name or f"P{n}", "last_name": None,
         "phone": "+49 1", "owner_id": None},
        {"marketing_consent": "true" if n % 2 else "no", "jobtitle": "CEO" if n % 3 else None,
         "notes": "naïve ✓ \"quoted\""},
        None if company is None else (Association("companies", company, primary=True),
                                      Association("companies", "c-other")))


def _deal(n: int) -> RemoteRecord:
    return RemoteRecord(
        "deals", f"d{n}", WHEN,
        {"name": f"Deal {n}", "amount": 1200.5 * n, "currency": "EUR", "pipeline_id": "p1",
         "stage_id": "s9", "status": "won", "close_date": dt.date(2026, 3, n),
         "closed_at": WHEN, "created_at": "2026-01-02T03:04:05Z"},
        {"dealtype": "newbusiness", "empty": None},
        (Association("contacts", "1"), Association("companies", "c1", primary=True)))


def _page(records: list[RemoteRecord]) -> RecordPage:
    return RecordPage(records[0].object_type, tuple(records), (), cursor=None)  # type: ignore[arg-type]


def _same_row(packed: RecordRow, plain: RecordRow) -> None:
    assert packed.remote_id == plain.remote_id
    assert packed.remote_modified_at == plain.remote_modified_at
    assert dict(packed.columns) == dict(plain.columns)
    assert dict(packed.properties) == dict(plain.properties)
    assert dict(packed.base) == {"fields": {k: v if not isinstance(v, dt.date) else v.isoformat()
                                            for k, v in plain.base["fields"].items()},
                                 "properties": dict(plain.base["properties"])}
    assert packed.associations == plain.associations
    assert packed.json_texts == plain.json_texts


def test_pack_page_makes_the_rows_prepare_page_makes_and_they_survive_pickling() -> None:
    for records in ([_contact(n, company="c1") for n in range(1, 6)],
                    [_deal(n) for n in range(1, 4)]):
        plain = prepare_page(RULES, _page(records)).rows
        packed = pickle.loads(pickle.dumps(pack_page(RULES, _page(records)))).rows
        assert isinstance(packed, PackedRows)
        assert len(packed) == len(plain)
        for packed_row, plain_row in zip(packed, plain, strict=True):
            _same_row(packed_row, plain_row)
    contacts = pack_page(RULES, _page([_contact(n) for n in range(1, 6)])).rows
    assert isinstance(contacts, PackedRows)
    assert contacts.column("email_key") == [f"person{n}@example.com" for n in range(1, 6)]
    assert contacts.column("no_such_column") == [None] * 5
    assert [r.remote_id for r in contacts[1:4:2]] == ["2", "4"]
    assert contacts.take([4, 0]).remote_ids == ["5", "1"]


def _commit_both_ways(store: Store, pages: list[list[RemoteRecord]], *,
                      two_way: bool = False) -> None:
    for client, make in (("plain", prepare_page), ("packed", pack_page)):
        records = store.records(client)
        for records_of_page in pages:
            object_type = records_of_page[0].object_type
            rows = make(RULES, _page(records_of_page)).rows
            assert isinstance(rows, PackedRows) == (make is pack_page)
            records.commit_page(
                "hubspot", object_type, rows, [], {"phase": "full"},
                resolve=resolver(object_type, RULES, "remote_wins") if two_way else None)


def test_packed_pages_store_what_record_rows_store(store: Store) -> None:
    pages = [
        # Contacts first: their companies become stubs; "3" twice (the later one wins).
        [_contact(1, company="c1"), _contact(2, company="c2"), _contact(3, company="c1"),
         _contact(3, name="Third, again", company="c2"), _contact(4)],
        # Companies fill the stubs in, one new.
        [RemoteRecord("companies", cid, WHEN, {"name": f"Co {cid}", "domain": f"{cid}.example"},
                      {"industry": "tools"}) for cid in ("c1", "c2", "c3")],
        # A re-read page: one changed, one the same, one new; deals after.
        [_contact(1, name="Renamed", company="c3"), _contact(2, company="c2"), _contact(5)],
        [_deal(1), _deal(2)],
    ]
    _commit_both_ways(store, pages)
    plain, packed = stored(store, "plain"), stored(store, "packed")
    assert plain == packed
    assert plain["contacts"]["1"]["first_name"] == "Renamed"
    assert plain["contacts"]["3"]["first_name"] == "Third, again"
    assert plain["companies"]["c-other"]["stub"] is True  # known only as a target
    assert not plain["companies"]["c1"]["stub"]
    deal = plain["deals"]["d1"]
    assert (deal["pipeline_key"], deal["stage_key"]) == ("sales", "won")
    assert ("contacts", "1", "companies", "c3", True, "hubspot") in plain["associations"]


def test_a_packed_page_links_a_local_contact_with_the_same_email(store: Store) -> None:
    for client in ("plain", "packed"):
        store.local(client).create("contacts", {"email": "person2@example.com",
                                                "first_name": "Local"})
    _commit_both_ways(store, [[_contact(1), _contact(2), _contact(3)]], two_way=True)
    plain, packed = stored(store, "plain"), stored(store, "packed")
    assert plain == packed
    assert len(plain["contacts"]) == 3  # the local contact linked, not a twin
