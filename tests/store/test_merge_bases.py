"""A record created by a pull keeps its pulled properties once: its link's merge base holds
only the fields and stands for the record's own properties. Whatever later changes those
properties — a local edit, another CRM's pull — first gives the base its own copy, so every
merge still sees what this CRM last said. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, delete, inspect, select
from sqlalchemy.schema import CreateIndex, DropIndex

from crmsync.adapters.records import RecordPage, RemoteRecord
from crmsync.store.records import RECORD_TABLES, PageOutcome
from crmsync.store.schema import record_links, schema_version
from crmsync.sync.mapping import MappingRules, pack_page, prepare_page
from crmsync.sync.reconcile import resolver

if TYPE_CHECKING:
    from crmsync.store import Store
    from tests.conftest import StoreFactory

RULES = MappingRules()
WHEN = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)


def _contact(remote_id: str, *, email: str = "ada@example.com", jobtitle: str = "CEO",
             when: dt.datetime = WHEN) -> RemoteRecord:
    return RemoteRecord("contacts", remote_id, when,
                        {"email": email, "first_name": "Ada", "last_name": None,
                         "phone": None, "owner_id": None},
                        {"jobtitle": jobtitle, "city": "Paris"})


def _commit(store: Store, crm: str, records: list[RemoteRecord], *, packed: bool = False,
            two_way: bool = True) -> PageOutcome:
    page = RecordPage("contacts", tuple(records), (), cursor=None)  # type: ignore[arg-type]
    rows = (pack_page if packed else prepare_page)(RULES, page).rows
    return store.records("acme").commit_page(
        crm, "contacts", rows, [], {"phase": "full"},
        resolve=resolver("contacts", RULES, "remote_wins") if two_way else None)


def _stored_bases(store: Store) -> dict[tuple[str, str], Any]:
    with store.engine.connect() as conn:
        return {(r.crm, r.remote_id): r.base for r in conn.execute(
            select(record_links.c.crm, record_links.c.remote_id, record_links.c.base))}


def _properties(store: Store, remote_id: str, crm: str = "hubspot") -> dict[str, Any]:
    table = RECORD_TABLES["contacts"]
    with store.engine.connect() as conn:
        return dict(conn.execute(
            select(table.c.properties).join(record_links, record_links.c.record_id == table.c.id)
            .where(record_links.c.crm == crm, record_links.c.remote_id == remote_id)).scalar_one())


def test_a_first_load_stores_the_properties_once_and_reads_the_base_whole(store: Store) -> None:
    _commit(store, "hubspot", [_contact("1")], packed=True)
    _commit(store, "hubspot", [_contact("2", email="bob@example.com")], packed=False)
    bases = _stored_bases(store)
    for remote_id in ("1", "2"):
        assert set(bases[("hubspot", remote_id)]) == {"fields"}  # no second copy
    # Read again unchanged: the base, made whole from the record, equals what is pulled.
    again = _commit(store, "hubspot", [_contact("1"), _contact("2", email="bob@example.com")],
                    packed=True, two_way=False)
    assert (again.unchanged, again.updated) == (2, 0)
    changed = _commit(store, "hubspot", [_contact("1", jobtitle="CTO")], two_way=False)
    assert changed.updated == 1
    assert bases != _stored_bases(store)
    assert _stored_bases(store)[("hubspot", "1")]["properties"] == {"jobtitle": "CTO",
                                                                    "city": "Paris"}


def test_a_local_edit_keeps_the_pulled_base(store: Store) -> None:
    _commit(store, "hubspot", [_contact("1")], packed=True)
    record_id = store.records("acme").remote_ids("hubspot", "contacts")["1"]
    store.local("acme").update("contacts", record_id, {}, {"jobtitle": "CTO"})
    assert _stored_bases(store)[("hubspot", "1")]["properties"] == {"jobtitle": "CEO",
                                                                    "city": "Paris"}
    # The CRM still says CEO, as the base does: unchanged, so the edit stays (a base read
    # as the edited record would have seen CEO as the CRM's change, and let it win).
    outcome = _commit(store, "hubspot", [_contact("1")])
    assert outcome.unchanged == 1
    assert _properties(store, "1")["jobtitle"] == "CTO"
    assert store.local("acme").pending()[0]["fields"] == ["jobtitle"]


def test_another_crms_pull_keeps_this_crms_base(store: Store) -> None:
    _commit(store, "hubspot", [_contact("1")], packed=True)
    # Pipedrive holds the same person (same email) with another title: linked, and its
    # pull writes its properties over the record.
    outcome = _commit(store, "pipedrive", [_contact("p7", jobtitle="Founder")])
    assert outcome.linked == 1
    assert _properties(store, "1")["jobtitle"] == "Founder"
    bases = _stored_bases(store)
    assert bases[("hubspot", "1")]["properties"] == {"jobtitle": "CEO", "city": "Paris"}
    assert bases[("pipedrive", "p7")]["properties"]["jobtitle"] == "Founder"
    # HubSpot unchanged since: still unchanged against its own base.
    assert _commit(store, "hubspot", [_contact("1")], two_way=False).unchanged == 1


def test_migration_5_moves_the_links_index_to_the_record(open_test_store: StoreFactory
                                                         ) -> None:
    store = open_test_store()
    with store.engine.begin() as conn:  # the store as migration 4 left it
        conn.execute(DropIndex(Index("ix_record_links_by_record", record_links.c.client)))
        conn.execute(CreateIndex(Index(
            "ix_record_links_record", record_links.c.client, record_links.c.crm,
            record_links.c.object_type, record_links.c.record_id)))
        conn.execute(delete(schema_version).where(schema_version.c.version == 5))
    store = open_test_store()
    with store.engine.connect() as conn:
        schema = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
        indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes(
            "record_links", schema=schema)}
    assert "ix_record_links_record" not in indexes
    assert indexes["ix_record_links_by_record"] == ["client", "object_type", "record_id"]
    assert store.schema_version() == 5
