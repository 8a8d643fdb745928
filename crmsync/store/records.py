"""One client's synced records: pages of rows in, in one transaction each; live rows out.

The store speaks plain data (`RecordRow`, `RemovalRow`, JSON cursors), not the adapters'
types: the sync engine maps a CRM page onto these rows. `commit_page` writes a page's records,
their links to the CRM, their associations, its removals *and the cursor that follows it* in
one transaction, in a handful of set-based statements whatever the page size — so a crash
between pages re-reads at most one page, and a re-read page changes nothing.

Identity: a record is the store's own row (`id`); `record_links` says which remote record of
which CRM it is, and keeps the fields as last agreed with that CRM (`base`, the merge base).
An association to a record not pulled yet creates a *stub* row (hidden from live queries)
that the record's own page later fills in, so object types can be pulled in any order.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, tuple_, update

from crmsync.store.dialects import dialect_insert, upsert
from crmsync.store.schema import (
    RECORD_TABLES,
    associations,
    field_definitions,
    record_links,
    sync_cursors,
    sync_failures,
    sync_runs,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from crmsync.store.store import Store

# Which object types own which associations (the side whose page carries them).
OWNED_ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    "companies": (),
    "contacts": ("companies",),
    "deals": ("contacts", "companies"),
}


@dataclass(frozen=True)
class AssociationRow:
    to_type: str
    to_remote_id: str
    primary: bool = False


@dataclass(frozen=True)
class RecordRow:
    """One remote record as the store keeps it."""

    remote_id: str
    remote_modified_at: dt.datetime | None
    columns: Mapping[str, Any]  # the object type's typed columns
    properties: Mapping[str, Any]  # every other property, by name
    base: Mapping[str, Any]  # what the CRM said, JSON-ready: the merge base
    associations: tuple[AssociationRow, ...] | None = None  # None: not read on this page


@dataclass(frozen=True)
class RemovalRow:
    remote_id: str
    reason: str  # archived | deleted | merged
    removed_at: dt.datetime | None = None
    merged_into: str | None = None  # the survivor's remote id


@dataclass
class PageOutcome:
    """What committing one page did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    restored: int = 0
    associations: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (remote id, reason)


@dataclass(frozen=True)
class StoredCursor:
    cursor: dict[str, Any]
    removals_scanned_at: dt.datetime | None


def _chunks(items: Sequence[Any], size: int = 900) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; everything here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class RecordStore:
    """Read and write one client's records (all CRMs)."""

    def __init__(self, store: Store, client: str) -> None:
        self.store = store
        self.client = client

    # --- cursors and field definitions --------------------------------------------------------

    def cursor(self, crm: str, object_type: str) -> StoredCursor | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(sync_cursors.c.cursor, sync_cursors.c.removals_scanned_at)
                               .where(self._scope(sync_cursors, crm, object_type))).first()
        if row is None:
            return None
        return StoredCursor(dict(row.cursor), _aware(row.removals_scanned_at))

    def forget_cursors(self, crm: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(delete(sync_cursors).where(and_(
                sync_cursors.c.client == self.client, sync_cursors.c.crm == crm)))

    def field_definitions(self, crm: str, object_type: str
                          ) -> tuple[list[dict[str, Any]], dt.datetime] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(field_definitions.c.definitions, field_definitions.c.fetched_at)
                .where(self._scope(field_definitions, crm, object_type))).first()
        if row is None:
            return None
        fetched = _aware(row.fetched_at)
        assert fetched is not None
        return list(row.definitions), fetched

    def save_field_definitions(self, crm: str, object_type: str,
                               definitions: Sequence[Mapping[str, Any]]) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(upsert(conn, field_definitions, {
                "client": self.client, "crm": crm, "object_type": object_type,
                "definitions": [dict(d) for d in definitions], "fetched_at": self.store.clock(),
            }, ["client", "crm", "object_type"]))

    # --- the page commit ------------------------------------------------------------------------

    def commit_page(
        self,
        crm: str,
        object_type: str,
        rows: Sequence[RecordRow],
        removals: Sequence[RemovalRow],
        cursor: Mapping[str, Any] | None,
        *,
        pass_id: str | None = None,
        removals_scanned: bool = False,
        failures: Sequence[tuple[str, str]] = (),
    ) -> PageOutcome:
        """Write one page and the cursor that follows it, atomically.

        `rows` later in the page win over earlier ones with the same remote id. `failures`
        are (remote id, reason) of records the engine could not map: recorded in
        `sync_failures` to be retried (their raw data is not lost: the CRM still has it and
        the cursor is held back by the engine). A record that comes through clears its
        failure. `cursor` None leaves the stored cursor as it is (a dry run never commits).
        """
        outcome = PageOutcome()
        now = self.store.clock()
        unique = list({row.remote_id: row for row in rows}.values())
        with self.store.engine.begin() as conn:
            ids = self._write_records(conn, crm, object_type, rows=unique, now=now,
                                      pass_id=pass_id, outcome=outcome)
            self._write_associations(conn, crm, object_type, rows=unique, ids=ids, now=now,
                                     outcome=outcome)
            self._write_removals(conn, crm, object_type, removals=removals, now=now,
                                 outcome=outcome)
            self._write_failures(conn, crm, object_type, rows=unique, failures=failures,
                                 now=now)
            if cursor is not None:
                values: dict[str, Any] = {
                    "client": self.client, "crm": crm, "object_type": object_type,
                    "cursor": dict(cursor), "updated_at": now,
                }
                if removals_scanned:
                    values["removals_scanned_at"] = now
                conn.execute(upsert(conn, sync_cursors, values, ["client", "crm", "object_type"]))
        return outcome

    def preview_page(self, crm: str, object_type: str, rows: Sequence[RecordRow],
                     removals: Sequence[RemovalRow]) -> PageOutcome:
        """What `commit_page` would do with the page, writing nothing (a dry run)."""
        outcome = PageOutcome()
        unique = list({row.remote_id: row for row in rows}.values())
        with self.store.engine.connect() as conn:
            existing = self._links(conn, crm, object_type, [r.remote_id for r in unique])
            gone = self._links(conn, crm, object_type, [r.remote_id for r in removals])
        for row in unique:
            link = existing.get(row.remote_id)
            if link is None:
                outcome.created += 1
            elif link[2]:
                outcome.restored += 1
            elif link[1] != _jsonable(row.base):
                outcome.updated += 1
            else:
                outcome.unchanged += 1
        outcome.tombstoned = sum(1 for r in removals if r.remote_id in gone
                                 and not gone[r.remote_id][2])
        return outcome

    def _write_records(self, conn: Connection, crm: str, object_type: str, *,
                       rows: Sequence[RecordRow], now: dt.datetime, pass_id: str | None,
                       outcome: PageOutcome) -> dict[str, int]:
        table = RECORD_TABLES[object_type]
        existing = self._links(conn, crm, object_type, [r.remote_id for r in rows])
        fresh = [r for r in rows if r.remote_id not in existing]
        known = [r for r in rows if r.remote_id in existing]
        ids = {remote_id: link[0] for remote_id, link in existing.items()}
        if fresh:
            new_ids = self._insert_records(conn, table, [
                {**r.columns, "properties": dict(r.properties), "stub": False} for r in fresh
            ], now)
            conn.execute(insert(record_links), [
                self._link_values(crm, object_type, r, record_id=record_id, now=now,
                                  pass_id=pass_id)
                for r, record_id in zip(fresh, new_ids, strict=True)
            ])
            ids.update({r.remote_id: record_id for r, record_id in zip(fresh, new_ids,
                                                                        strict=True)})
            outcome.created += len(fresh)
        if known:
            changed = [r for r in known if existing[r.remote_id][1] != _jsonable(r.base)
                       or existing[r.remote_id][2]]
            outcome.unchanged += len(known) - len(changed)
            if changed:
                restored = sum(1 for r in changed if existing[r.remote_id][2])
                outcome.restored += restored
                outcome.updated += len(changed) - restored
                columns = sorted({c for r in changed for c in r.columns})
                stmt = (update(table).where(table.c.id == bindparam("_id"))
                        .values({c: bindparam(c) for c in
                                 [*columns, "properties", "stub", "updated_at", "deleted_at",
                                  "deleted_reason", "merged_into"]}))
                conn.execute(stmt, [{
                    "_id": ids[r.remote_id], **{c: r.columns.get(c) for c in columns},
                    "properties": dict(r.properties), "stub": False, "updated_at": now,
                    "deleted_at": None, "deleted_reason": None, "merged_into": None,
                } for r in changed])
            link_update = (update(record_links).where(record_links.c.id == bindparam("_link"))
                           .values(remote_modified_at=bindparam("remote_modified_at"),
                                   base=bindparam("base"), seen_pass=bindparam("seen_pass"),
                                   pulled_at=bindparam("pulled_at"), removed_at=None))
            conn.execute(link_update, [{
                "_link": existing[r.remote_id][3], "remote_modified_at": r.remote_modified_at,
                "base": _jsonable(r.base), "seen_pass": pass_id, "pulled_at": now,
            } for r in known])
        return ids

    def _insert_records(self, conn: Connection, table: Table, values: list[dict[str, Any]],
                        now: dt.datetime) -> list[int]:
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        result = conn.execute(stmt, [{"client": self.client, "created_at": now,
                                      "updated_at": now, **v} for v in values])
        return list(result.scalars())

    def _link_values(self, crm: str, object_type: str, row: RecordRow | None, *,
                     record_id: int, now: dt.datetime, pass_id: str | None,
                     remote_id: str | None = None) -> dict[str, Any]:
        return {
            "client": self.client, "crm": crm, "object_type": object_type,
            "remote_id": row.remote_id if row is not None else remote_id,
            "record_id": record_id,
            "remote_modified_at": row.remote_modified_at if row is not None else None,
            "base": _jsonable(row.base) if row is not None else None,
            "seen_pass": pass_id if row is not None else None,
            "pulled_at": now,
        }

    def _links(self, conn: Connection, crm: str, object_type: str, remote_ids: Sequence[str]
               ) -> dict[str, tuple[int, Any, bool, int]]:
        """remote id → (record id, base, removed or stub, link id) for the ids that exist."""
        table = RECORD_TABLES[object_type]
        found: dict[str, tuple[int, Any, bool, int]] = {}
        for chunk in _chunks(list(dict.fromkeys(remote_ids))):
            query = (select(record_links.c.remote_id, record_links.c.record_id,
                            record_links.c.base, record_links.c.id,
                            table.c.stub, table.c.deleted_at)
                     .join(table, table.c.id == record_links.c.record_id)
                     .where(self._scope(record_links, crm, object_type),
                            record_links.c.remote_id.in_(chunk)))
            for row in conn.execute(query):
                gone = bool(row.stub) or row.deleted_at is not None
                found[row.remote_id] = (row.record_id, row.base, gone, row.id)
        return found

    def _resolve(self, conn: Connection, crm: str, object_type: str, remote_ids: Iterable[str],
                 now: dt.datetime) -> dict[str, int]:
        """Store ids for remote ids of `object_type`, creating stubs for those not seen yet."""
        wanted = list(dict.fromkeys(remote_ids))
        resolved = {rid: link[0] for rid, link in
                    self._links(conn, crm, object_type, wanted).items()}
        missing = [rid for rid in wanted if rid not in resolved]
        if missing:
            table = RECORD_TABLES[object_type]
            new_ids = self._insert_records(conn, table, [
                {"properties": {}, "stub": True} for _ in missing], now)
            conn.execute(insert(record_links), [
                self._link_values(crm, object_type, None, record_id=record_id, now=now,
                                  pass_id=None, remote_id=rid)
                for rid, record_id in zip(missing, new_ids, strict=True)
            ])
            resolved.update(zip(missing, new_ids, strict=True))
        return resolved

    def _write_associations(self, conn: Connection, crm: str, object_type: str, *,
                            rows: Sequence[RecordRow], ids: Mapping[str, int],
                            now: dt.datetime, outcome: PageOutcome) -> None:
        owners = [r for r in rows if r.associations is not None]
        if not owners:
            return
        targets: dict[str, dict[str, int]] = {}
        for to_type in OWNED_ASSOCIATIONS[object_type]:
            remote = [a.to_remote_id for r in owners for a in r.associations or ()
                      if a.to_type == to_type]
            targets[to_type] = self._resolve(conn, crm, to_type, remote, now) if remote else {}
        owner_ids = [ids[r.remote_id] for r in owners]
        for chunk in _chunks(owner_ids):
            conn.execute(delete(associations).where(
                associations.c.client == self.client,
                associations.c.from_type == object_type,
                associations.c.from_id.in_(chunk)))
        values: dict[tuple[int, str, int], dict[str, Any]] = {}
        for row in owners:
            for assoc in row.associations or ():
                if assoc.to_type not in targets:
                    continue  # not an association this side owns
                to_id = targets[assoc.to_type][assoc.to_remote_id]
                key = (ids[row.remote_id], assoc.to_type, to_id)
                previous = values.get(key)
                values[key] = {
                    "client": self.client, "from_type": object_type, "from_id": key[0],
                    "to_type": key[1], "to_id": key[2], "crm": crm, "updated_at": now,
                    "is_primary": assoc.primary or bool(previous and previous["is_primary"]),
                }
        if values:
            conn.execute(insert(associations), list(values.values()))
        outcome.associations += len(values)

    def _write_removals(self, conn: Connection, crm: str, object_type: str, *,
                        removals: Sequence[RemovalRow], now: dt.datetime,
                        outcome: PageOutcome) -> None:
        if not removals:
            return
        table = RECORD_TABLES[object_type]
        existing = self._links(conn, crm, object_type, [r.remote_id for r in removals])
        survivors = self._resolve(conn, crm, object_type,
                                  [r.merged_into for r in removals if r.merged_into], now)
        todo = [r for r in removals if r.remote_id in existing and not existing[r.remote_id][2]]
        if not todo:
            return
        conn.execute(
            update(table).where(table.c.id == bindparam("_id")).values(
                deleted_at=bindparam("deleted_at"), deleted_reason=bindparam("reason"),
                merged_into=bindparam("merged"), updated_at=now),
            [{"_id": existing[r.remote_id][0], "deleted_at": r.removed_at or now,
              "reason": r.reason,
              "merged": survivors.get(r.merged_into) if r.merged_into else None}
             for r in todo])
        conn.execute(
            update(record_links).where(record_links.c.id == bindparam("_link"))
            .values(removed_at=bindparam("removed_at")),
            [{"_link": existing[r.remote_id][3], "removed_at": r.removed_at or now}
             for r in todo])
        for removal in todo:
            if removal.merged_into and removal.merged_into in survivors:
                self._follow_merge(conn, object_type, existing[removal.remote_id][0],
                                   survivors[removal.merged_into])
        outcome.tombstoned += len(todo)

    def _follow_merge(self, conn: Connection, object_type: str, loser: int, survivor: int
                      ) -> None:
        """Point associations to a merged-away record at its survivor, as the CRM does (the
        survivor's own associations come with its page)."""
        scope = and_(associations.c.client == self.client, associations.c.to_type == object_type)
        already = select(associations.c.from_type, associations.c.from_id).where(
            scope, associations.c.to_id == survivor)
        conn.execute(delete(associations).where(
            scope, associations.c.to_id == loser,
            tuple_(associations.c.from_type, associations.c.from_id).in_(already)))
        conn.execute(update(associations).where(scope, associations.c.to_id == loser)
                     .values(to_id=survivor))
        conn.execute(delete(associations).where(
            associations.c.client == self.client, associations.c.from_type == object_type,
            associations.c.from_id == loser))

    def _write_failures(self, conn: Connection, crm: str, object_type: str, *,
                        rows: Sequence[RecordRow], failures: Sequence[tuple[str, str]],
                        now: dt.datetime) -> None:
        scope = and_(sync_failures.c.client == self.client, sync_failures.c.crm == crm,
                     sync_failures.c.object_type == object_type,
                     sync_failures.c.direction == "pull")
        done = [r.remote_id for r in rows]
        for chunk in _chunks(done):
            conn.execute(delete(sync_failures).where(scope,
                                                     sync_failures.c.record_key.in_(chunk)))
        for remote_id, reason in failures:
            conn.execute(dialect_insert(conn, sync_failures).values(
                client=self.client, crm=crm, object_type=object_type, direction="pull",
                record_key=remote_id, error=reason, first_seen=now, last_seen=now, attempts=1,
            ).on_conflict_do_update(
                index_elements=["client", "crm", "object_type", "direction", "record_key"],
                set_={"error": reason, "last_seen": now,
                      "attempts": sync_failures.c.attempts + 1}))

    def tombstone_unseen(self, crm: str, object_type: str, pass_id: str) -> int:
        """After a complete full pass: records the pass did not list are gone from the CRM
        (deleted and purged, so no listing reports them): tombstone them as `missing`."""
        table = RECORD_TABLES[object_type]
        now = self.store.clock()
        with self.store.engine.begin() as conn:
            unseen = select(record_links.c.record_id).where(
                self._scope(record_links, crm, object_type),
                record_links.c.removed_at.is_(None),
                (record_links.c.seen_pass.is_(None)) | (record_links.c.seen_pass != pass_id))
            ids = list(conn.scalars(
                select(table.c.id).where(table.c.id.in_(unseen), table.c.deleted_at.is_(None),
                                         table.c.stub.is_(False))))
            for chunk in _chunks(ids):
                conn.execute(update(table).where(table.c.id.in_(chunk)).values(
                    deleted_at=now, deleted_reason="missing", updated_at=now))
                conn.execute(update(record_links).where(
                    self._scope(record_links, crm, object_type),
                    record_links.c.record_id.in_(chunk)).values(removed_at=now))
        return len(ids)

    # --- runs and failures ----------------------------------------------------------------------

    def start_run(self, crm: str) -> int:
        with self.store.engine.begin() as conn:
            run_id = conn.scalar(insert(sync_runs).values(
                client=self.client, crm=crm, host=socket.gethostname(), pid=os.getpid(),
                started_at=self.store.clock(), status="running").returning(sync_runs.c.id))
        return int(run_id)

    def finish_run(self, run_id: int, status: str, counts: Mapping[str, Any],
                   error: str | None = None) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(
                finished_at=self.store.clock(), status=status, counts=dict(counts), error=error))

    def last_finished(self, crm: str) -> dt.datetime | None:
        """When the newest successful (or partial) run of this client's CRM finished."""
        with self.store.engine.connect() as conn:
            value = conn.scalar(select(func.max(sync_runs.c.finished_at)).where(
                sync_runs.c.client == self.client, sync_runs.c.crm == crm,
                sync_runs.c.status.in_(("ok", "partial"))))
        return _aware(value)

    def failures(self, crm: str | None = None) -> list[dict[str, Any]]:
        """Records that failed and wait to be retried, oldest first."""
        query = select(sync_failures).where(sync_failures.c.client == self.client)
        if crm is not None:
            query = query.where(sync_failures.c.crm == crm)
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in
                    conn.execute(query.order_by(sync_failures.c.first_seen, sync_failures.c.id))]

    # --- reading --------------------------------------------------------------------------------

    def live(self, object_type: str, *, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every live record of the type (not deleted, merged or a stub), by store id, in
        batches: memory stays flat whatever the count."""
        table = RECORD_TABLES[object_type]
        last = 0
        while True:
            with self.store.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(
                    select(table).where(table.c.client == self.client,
                                        table.c.deleted_at.is_(None), table.c.stub.is_(False),
                                        table.c.id > last)
                    .order_by(table.c.id).limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["id"]

    def remote_ids(self, crm: str, object_type: str, *, live_only: bool = True) -> dict[str, int]:
        """remote id → store id of this CRM's records of the type."""
        table = RECORD_TABLES[object_type]
        query = (select(record_links.c.remote_id, record_links.c.record_id)
                 .join(table, table.c.id == record_links.c.record_id)
                 .where(self._scope(record_links, crm, object_type)))
        if live_only:
            query = query.where(table.c.deleted_at.is_(None), table.c.stub.is_(False))
        with self.store.engine.connect() as conn:
            return {r.remote_id: r.record_id for r in conn.execute(query)}

    def association_pairs(self, from_type: str, to_type: str) -> set[tuple[int, int, bool]]:
        """(from id, to id, primary) of live records' associations."""
        src, dst = RECORD_TABLES[from_type], RECORD_TABLES[to_type]
        query = (select(associations.c.from_id, associations.c.to_id, associations.c.is_primary)
                 .join(src, src.c.id == associations.c.from_id)
                 .join(dst, dst.c.id == associations.c.to_id)
                 .where(associations.c.client == self.client,
                        associations.c.from_type == from_type,
                        associations.c.to_type == to_type,
                        src.c.deleted_at.is_(None), dst.c.deleted_at.is_(None),
                        src.c.stub.is_(False), dst.c.stub.is_(False)))
        with self.store.engine.connect() as conn:
            return {(r.from_id, r.to_id, bool(r.is_primary)) for r in conn.execute(query)}

    def _scope(self, table: Table, crm: str, object_type: str) -> Any:
        return and_(table.c.client == self.client, table.c.crm == crm,
                    table.c.object_type == object_type)


def _jsonable(value: Any) -> Any:
    """`value` as JSON would round-trip it (dates as ISO text), so a stored base compares
    equal to a freshly mapped one."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
