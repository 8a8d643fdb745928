"""Local edits written straight into the store, as the store API will write them.

The contract (migration 4): the record's row changes, and its `local_changes` row (one per
record) names every field changed since the merge base — canonical columns, property names,
`associations:<to_type>` — with the op (upsert | delete) and when it was queued.

They go through the store's change API (`Store.local`, validated, matched by email/domain)
unless a test needs a given queue time (`when=`): then the row is written directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from crmsync.store.local import WRITABLE_FIELDS
from crmsync.store.records import RECORD_TABLES, keep_merge_bases
from crmsync.store.schema import local_changes
from crmsync.sync.mapping import domain_key, email_key

if TYPE_CHECKING:
    import datetime as dt

    from crmsync.store import Store

CLIENT = "acme"


def _queue(conn: Any, object_type: str, record_id: int, op: str, names: set[str],
           when: dt.datetime) -> None:
    scope = (local_changes.c.client == CLIENT, local_changes.c.object_type == object_type,
             local_changes.c.record_id == record_id)
    old = conn.execute(select(local_changes.c.fields).where(*scope)).first()
    if old is None:
        conn.execute(insert(local_changes).values(
            client=CLIENT, object_type=object_type, record_id=record_id, op=op,
            fields=sorted(names), queued_at=when, attempts=0))
    else:
        conn.execute(update(local_changes).where(*scope).values(
            op=op, fields=sorted(set(old.fields) | names), queued_at=when))


def _split(object_type: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    table = RECORD_TABLES[object_type]
    columns = {k: v for k, v in values.items() if k in table.c}
    properties = {k: v for k, v in values.items() if k not in table.c}
    if "email" in columns:
        columns["email_key"] = email_key(columns["email"])
    if "domain" in columns:
        columns["domain_key"] = domain_key(columns["domain"])
    return columns, properties


def _local(object_type: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    writable = WRITABLE_FIELDS[object_type]
    return ({k: v for k, v in values.items() if k in writable},
            {k: v for k, v in values.items() if k not in writable})


def edit(store: Store, object_type: str, record_id: int, *, when: dt.datetime | None = None,
         **values: Any) -> None:
    """Change a record locally and queue the change."""
    if when is None:
        store.local(CLIENT).update(object_type, record_id, *_local(object_type, values))
        return
    table = RECORD_TABLES[object_type]
    columns, properties = _split(object_type, values)
    with store.engine.begin() as conn:
        current = conn.execute(select(table.c.properties).where(table.c.id == record_id)).one()
        keep_merge_bases(conn, CLIENT, object_type, [record_id])
        conn.execute(update(table).where(table.c.id == record_id).values(
            **columns, properties={**current.properties, **properties},
            updated_at=when or store.clock()))
        _queue(conn, object_type, record_id, "upsert", set(values), when or store.clock())


def create(store: Store, object_type: str, *, when: dt.datetime | None = None,
           **values: Any) -> int:
    """A new local record, queued; returns its store id."""
    if when is None:
        return store.local(CLIENT).create(object_type, *_local(object_type, values))
    table = RECORD_TABLES[object_type]
    columns, properties = _split(object_type, values)
    now = when or store.clock()
    with store.engine.begin() as conn:
        record_id = int(conn.scalar(insert(table).values(
            client=CLIENT, **columns, properties=properties, stub=False, created_at=now,
            updated_at=now).returning(table.c.id)))
        _queue(conn, object_type, record_id, "upsert", set(values), now)
    return record_id


def remove(store: Store, object_type: str, record_id: int) -> None:
    """A local delete, queued."""
    store.local(CLIENT).delete(object_type, record_id)


def associate(store: Store, from_type: str, from_id: int, to_type: str, to_id: int, *,
              primary: bool = False) -> None:
    """Add an association the record owns, queued as `associations:<to_type>`."""
    store.local(CLIENT).associate(from_type, from_id, to_type, to_id, primary=primary)


def queue(store: Store) -> dict[tuple[str, int], dict[str, Any]]:
    """(object type, record id) → the queue row."""
    with store.engine.connect() as conn:
        return {(r.object_type, r.record_id): dict(r._mapping)
                for r in conn.execute(select(local_changes))}
