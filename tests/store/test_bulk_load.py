"""A first load into an empty associations table builds the index by target once, at its
end, instead of row by row; whatever happens, the store ends up with it and the same rows.
On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from crmsync.adapters.records import Association, RecordPage, RemoteRecord
from crmsync.store.bulk_load import DEFERRED_INDEXES, bulk_load
from crmsync.store.schema import associations
from crmsync.sync.mapping import MappingRules, pack_page

if TYPE_CHECKING:
    from crmsync.store import Store
    from crmsync.store.records import RecordStore
    from tests.conftest import StoreFactory

WHEN = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)


def _has_index(store: Store) -> bool:
    (index,) = DEFERRED_INDEXES
    with store.engine.connect() as conn:
        return bool(conn.dialect.has_index(conn, "associations", str(index.name),
                                           schema=conn.schema_for_object(associations)))


def _commit(records: RecordStore, first: int, count: int) -> None:
    """Contacts `first`… each associated with company c<n % 7>."""
    page = RecordPage("contacts", tuple(
        RemoteRecord("contacts", str(n), WHEN, {"email": f"p{n}@example.com"}, {},
                     associations=(Association("companies", f"c{n % 7}", True),))
        for n in range(first, first + count)), (), cursor=None)  # type: ignore[arg-type]
    records.commit_page("hubspot", "contacts", pack_page(MappingRules(), page).rows, [],
                        {"phase": "full"})


def _pairs(store: Store) -> set[tuple[int, int]]:
    with store.engine.connect() as conn:
        return {(r.from_id, r.to_id) for r in conn.execute(
            select(associations.c.from_id, associations.c.to_id))}


def test_a_first_load_builds_the_index_at_its_end(store: Store) -> None:
    records = store.records("acme")
    with bulk_load(store, threading.RLock()):
        with records.one_transaction(bulk=True):
            _commit(records, 0, 30)
        assert not _has_index(store)  # dropped with the first group
        with records.one_transaction(bulk=True):
            _commit(records, 30, 30)
    assert _has_index(store)
    pairs = _pairs(store)
    assert len(pairs) == 60
    assert len({to_id for _, to_id in pairs}) == 7


def test_a_store_that_has_associations_keeps_the_index(store: Store) -> None:
    records = store.records("acme")
    _commit(records, 0, 5)  # an earlier run's
    with bulk_load(store, threading.RLock()), records.one_transaction(bulk=True):
        _commit(records, 5, 30)
        assert _has_index(store)
    assert len(_pairs(store)) == 35


def test_a_group_rolled_back_leaves_the_index(store: Store) -> None:
    records = store.records("acme")

    def cut_short() -> None:
        with records.one_transaction(bulk=True):
            _commit(records, 0, 30)
            raise RuntimeError("the CRM's file was cut short")

    with bulk_load(store, threading.RLock()), pytest.raises(RuntimeError):
        cut_short()
    assert _has_index(store)
    assert not _pairs(store)


def test_the_last_of_concurrent_loads_builds_it(store: Store) -> None:
    lock = threading.RLock()
    contacts, deals = bulk_load(store, lock), bulk_load(store, lock)
    contacts.__enter__()
    deals.__enter__()
    records = store.records("acme")
    with records.one_transaction(bulk=True):
        _commit(records, 0, 30)
    contacts.__exit__(None, None, None)
    assert not _has_index(store)  # the other load still inserts
    deals.__exit__(None, None, None)
    assert _has_index(store)


def test_a_load_killed_before_its_end_leaves_it_to_the_next_opening(
        open_test_store: StoreFactory) -> None:
    store = open_test_store()
    load = bulk_load(store, threading.RLock())
    load.__enter__()  # never left: the process dies after a committed group
    records = store.records("acme")
    with records.one_transaction(bulk=True):
        _commit(records, 0, 30)
    assert not _has_index(store)
    again = open_test_store()
    assert _has_index(again)
    assert len(_pairs(again)) == 30
