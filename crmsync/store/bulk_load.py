"""Indexes a first load builds once, at its end, instead of row by row.

A page's associations point at their targets (companies, contacts) in random order, and
inserting a million of them one by one into the B-tree by target cost a tenth to a fifth of
the store's part of a first load. That index serves queries only (no constraint), so while a load
fills an empty associations table it is dropped, and it is built again in one sort when
the store's last load in this process ends — or, if the process was killed first, when the
store is next opened (`restore_indexes`, called by `open_store`): a store without it is
slower, never wrong.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select, text
from sqlalchemy.schema import CreateIndex, DropIndex

from crmsync.store.migrations import MIGRATION_LOCK_ID
from crmsync.store.schema import associations

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection, Engine

    from crmsync.store.store import Store

DEFERRED_INDEXES = tuple(i for i in associations.indexes if i.name == "ix_associations_to")
# Arbitrary constant: the PostgreSQL advisory lock a load takes to drop them (see
# `defer_indexes`).
DEFER_LOCK_ID = 0x63726D74
SORT_CACHE_KIB = 4096  # SQLite's page cache while it builds a deferred index


class _Loads:
    """The loads under way in this process on one store, and whether one dropped the
    deferred indexes (or found the table already filled, so none may)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.decided = False


_LOADS: weakref.WeakKeyDictionary[Store, _Loads] = weakref.WeakKeyDictionary()
_LOADS_GUARD = threading.Lock()


def _loads(store: Store) -> _Loads:
    with _LOADS_GUARD:
        loads = _LOADS.get(store)
        if loads is None:
            loads = _LOADS[store] = _Loads()
        return loads


@contextlib.contextmanager
def bulk_load(store: Store, store_lock: contextlib.AbstractContextManager[Any]
              ) -> Iterator[None]:
    """One object type's load runs in the block; the last to end on `store` builds the
    indexes a load dropped (holding `store_lock`, the engine's lock on the store)."""
    loads = _loads(store)
    with loads.lock:
        loads.running += 1
    try:
        yield
    finally:
        with loads.lock:
            loads.running -= 1
            last, decided = loads.running == 0, loads.decided
            if last:
                loads.decided = False
        if last and decided:
            with store_lock:
                restore_indexes(store.engine)


def defer_indexes(store: Store, conn: Connection) -> None:
    """Inside a group of bulk pages' transaction, before its pages: drop the deferred
    indexes if a load is under way and the associations table is empty. Decided once per
    run of loads. On PostgreSQL the drop commits or rolls back with the group, and a load
    that finds another process dropping them at the same moment leaves them be (two
    drops, each waiting for the other's lock on the table, would deadlock); SQLite's
    driver runs the drop on its own, so a group rolled back leaves them dropped until the
    load ends."""
    loads = _loads(store)
    with loads.lock:
        if loads.running == 0 or loads.decided:
            return
        loads.decided = True
    if conn.dialect.name == "postgresql" and not conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": DEFER_LOCK_ID}).scalar():
        return
    if conn.execute(select(exists().select_from(associations))).scalar():
        return
    for index in DEFERRED_INDEXES:
        conn.execute(DropIndex(index, if_exists=True))


def restore_indexes(engine: Engine) -> None:
    """Build any deferred index the store lacks (a read when none is missing). On
    PostgreSQL under the migration lock, so two openers do not build it at once."""
    with engine.begin() as conn:
        missing = [index for index in DEFERRED_INDEXES if not conn.dialect.has_index(
            conn, index.table.name, str(index.name),  # type: ignore[union-attr]
            schema=conn.schema_for_object(index.table))]  # type: ignore[arg-type]
        if not missing:
            return
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite sorts the keys in memory up to the page cache's size; a smaller cache
            # for the build (spilling sorted runs to temporary files) keeps the load's peak
            # memory where its pages left it.
            cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
            conn.exec_driver_sql(f"PRAGMA cache_size={-SORT_CACHE_KIB}")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            for index in missing:
                conn.execute(CreateIndex(index, if_not_exists=True))
        finally:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
