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

import contextlib
import datetime as dt
import decimal
import functools
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)

from crmsync.errors import StoreError
from crmsync.store.bulk_load import defer_indexes
from crmsync.store.dialects import (
    any_of,
    bulk_insert,
    dialect_insert,
    in_chunk_size,
    refresh_statistics,
    relaxed_commit,
    upsert,
)
from crmsync.store.schema import (
    RECORD_TABLES,
    associations,
    conflicts,
    field_definitions,
    local_changes,
    metadata,
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


class AssociationRow(NamedTuple):
    """One association the owning record has (a tuple: a page makes one per link)."""

    to_type: str
    to_remote_id: str
    primary: bool = False


# An association as a pulled row carries it: (to type, to remote id, primary). A plain
# tuple pickles in a fraction of a named one's time, and a page holds one per link.
AssociationTuple = tuple[str, str, bool]


@dataclass(frozen=True)
class RecordRow:
    """One remote record as the store keeps it."""

    remote_id: str
    remote_modified_at: dt.datetime | None
    columns: Mapping[str, Any]  # the object type's typed columns
    properties: Mapping[str, Any]  # every other property, by name
    base: Mapping[str, Any]  # what the CRM said, JSON-ready: the merge base
    associations: tuple[AssociationTuple, ...] | None = None  # None: not read on this page

    @functools.cached_property
    def json_texts(self) -> tuple[str, str]:
        """The properties and the merge base as the store writes them (JSON text); worked
        out once, so a thread that reads pages ahead can do it while a commit runs."""
        return _json_texts(self)


class JSONText(Mapping[str, Any]):
    """A JSON object kept as its text, decoded the first time it is read."""

    __slots__ = ("_decoded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoded: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._decoded is None:
            self._decoded = json.loads(self.text)
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


class PackedRows(Sequence[RecordRow]):
    """A page's rows as parallel lists, as a worker process sends them
    (`mapping.pack_page`): the records a page creates are inserted straight from these
    lists, with no `RecordRow` apiece (a first load is nothing else); a row the store must
    compare or merge is read as a `RecordRow`, made on demand."""

    __slots__ = ("associations", "fields", "modified", "names", "properties", "remote_ids",
                 "values")

    def __init__(self, names: Sequence[str], *, remote_ids: list[str],
                 modified: list[dt.datetime | None], values: list[tuple[Any, ...]],
                 properties: list[str], fields: list[str],
                 associations: list[tuple[AssociationTuple, ...] | None]) -> None:
        self.names = names  # the typed columns each of `values` holds, in order
        self.remote_ids = remote_ids
        self.modified = modified
        self.values = values
        self.properties = properties  # JSON text
        self.fields = fields  # JSON text: the merge base's fields (its properties are these)
        self.associations = associations

    def __len__(self) -> int:
        return len(self.remote_ids)

    @overload
    def __getitem__(self, index: int) -> RecordRow: ...
    @overload
    def __getitem__(self, index: slice) -> PackedRows: ...
    def __getitem__(self, index: int | slice) -> RecordRow | PackedRows:
        if isinstance(index, slice):
            return self.take(range(len(self))[index])
        properties = JSONText(self.properties[index])
        row = RecordRow(self.remote_ids[index], self.modified[index],
                        dict(zip(self.names, self.values[index], strict=True)), properties,
                        {"fields": JSONText(self.fields[index]), "properties": properties},
                        self.associations[index])
        row.__dict__["json_texts"] = (self.properties[index], own_base_text(self.fields[index]))
        return row

    def take(self, indexes: Sequence[int]) -> PackedRows:
        """These rows at `indexes`, in that order."""
        def pick(items: list[Any]) -> list[Any]:
            return [items[i] for i in indexes]
        return PackedRows(self.names, remote_ids=pick(self.remote_ids),
                          modified=pick(self.modified), values=pick(self.values),
                          properties=pick(self.properties), fields=pick(self.fields),
                          associations=pick(self.associations))

    def column(self, name: str) -> list[Any]:
        """Every row's value of the typed column `name` (None where it has none)."""
        if name not in self.names:
            return [None] * len(self)
        at = list(self.names).index(name)
        return [values[at] for values in self.values]


def _remote_ids(rows: Sequence[RecordRow]) -> list[str]:
    return rows.remote_ids if isinstance(rows, PackedRows) else [r.remote_id for r in rows]


def _take(rows: Sequence[RecordRow], indexes: Sequence[int]) -> Sequence[RecordRow]:
    """The rows at `indexes`, which pick some of them in their order (so all of them are
    `rows` itself)."""
    if len(indexes) == len(rows):
        return rows
    return rows.take(indexes) if isinstance(rows, PackedRows) else [rows[i] for i in indexes]


def _column(rows: Sequence[RecordRow], name: str) -> list[Any]:
    return rows.column(name) if isinstance(rows, PackedRows) else [r.columns.get(name)
                                                                   for r in rows]


def _owned_associations(rows: Sequence[RecordRow]
                        ) -> list[tuple[str, tuple[AssociationTuple, ...]]]:
    """(remote id, associations) of the rows that carry theirs."""
    if isinstance(rows, PackedRows):
        return [(rid, a) for rid, a in zip(rows.remote_ids, rows.associations, strict=True)
                if a is not None]
    return [(r.remote_id, r.associations) for r in rows if r.associations is not None]


def _unique(rows: Sequence[RecordRow]) -> Sequence[RecordRow]:
    """The rows with one per remote id: the last, where the first was."""
    last = {remote_id: i for i, remote_id in enumerate(_remote_ids(rows))}
    return _take(rows, list(last.values()))


@dataclass(frozen=True)
class RemovalRow:
    remote_id: str
    reason: str  # archived | deleted | merged
    removed_at: dt.datetime | None = None
    merged_into: str | None = None  # the survivor's remote id


@dataclass(frozen=True)
class LocalEdit:
    """A record changed locally and not pushed yet, as a pulled page meets it."""

    record_id: int
    op: str  # upsert | delete
    fields: frozenset[str]  # changed since the base (local_changes.fields)
    queued_at: dt.datetime
    columns: Mapping[str, Any]  # the store's typed columns now
    properties: Mapping[str, Any]
    # None: never agreed with this CRM (a record created on both sides).
    base: Mapping[str, Any] | None


@dataclass(frozen=True)
class ConflictRow:
    field: str
    base: Any
    local: Any
    remote: Any
    policy: str
    winner: str  # local | remote


@dataclass(frozen=True)
class Resolution:
    """How a pulled record and its local edit merge (computed by the sync engine)."""

    columns: Mapping[str, Any]
    properties: Mapping[str, Any]
    pending: frozenset[str]  # fields still to push; empty: the queue row goes
    conflicts: tuple[ConflictRow, ...] = ()


# The engine's pure merge, called inside the page transaction for every pulled record that
# has a local edit (the store imports nothing above it, so it is handed in).
Resolver = Callable[["RecordRow", LocalEdit], Resolution]

# Which column identifies a record created on both sides (deals never match by name).
MATCH_KEYS: dict[str, str] = {"contacts": "email_key", "companies": "domain_key"}
# Rows a bulk load inserts into a table before its planner statistics are first refreshed,
# and how much it must grow before the next refresh.
ANALYZE_AFTER = 2_000
ANALYZE_GROWTH = 4
# The `policy` of a conflict recorded for a local edit to a record the CRM removed.
REMOVED_POLICY = "removed_remotely"
# A queue row whose create was sent and whose answer is not recorded yet (`mark_in_flight`).
IN_FLIGHT = "create sent; the CRM's answer was not recorded (the run stopped)"


@dataclass(frozen=True)
class QueuedChange:
    """A record waiting to be pushed: its queue row and its row in the store."""

    record_id: int
    op: str  # upsert | delete
    fields: frozenset[str]
    queued_at: Any  # as the store holds it (compared back when the push lands)
    attempts: int
    row: Mapping[str, Any]  # the record's columns, properties and tombstone
    remote_id: str | None  # its id in the CRM pushed to; None: not there yet


@dataclass(frozen=True)
class PushedRecord:
    """The CRM's answer for one pushed record, as `commit_push` records it."""

    record_id: int
    queued_at: Any  # the queue row this answers (`QueuedChange.queued_at`)
    ok: bool
    remote_id: str | None = None
    remote_modified_at: dt.datetime | None = None
    base: Mapping[str, Any] | None = None  # what the CRM now holds: the new merge base
    error: str | None = None
    archived: bool = False
    dequeue: bool = True  # False: nothing was queued for it (`sync --to`)
    # The owning side's associations as the CRM now holds them, when the write set them
    # (they replace the store's, as a pull's would: a Pipedrive deal's one person is primary).
    associations: tuple[AssociationTuple, ...] | None = None


@dataclass
class PageOutcome:
    """What committing one page did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    restored: int = 0
    associations: int = 0
    linked: int = 0  # pulled records matched to local-only ones (created on both sides)
    merged: int = 0  # pulled records merged with a local edit
    conflicts: int = 0
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
        # Rows this object bulk-inserted per table since its statistics were last refreshed,
        # and how many it had inserted then (`_refresh_statistics`).
        self._inserted: dict[str, int] = {}
        self._sampled: dict[str, int] = {}
        self._held = threading.local()  # this thread's `one_transaction`, while open

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

    @contextlib.contextmanager
    def one_transaction(self, *, bulk: bool = False) -> Iterator[None]:
        """The pages this thread commits inside (`commit_page`) share one transaction,
        committed when the block ends and rolled back if it raises. `bulk`: a group of a
        first load's pages, which may drop indexes built again when it ends (`bulk_load`).

        For a bulk load: each page inserts into indexes at random places (emails, association
        targets), and a commit writes every B-tree page it dirtied; committing a group of
        pages at once writes each of those pages once for the group. Every page still writes
        its cursor with its records, so a crash re-reads the group, no more."""
        if getattr(self._held, "conn", None) is not None:
            yield
            return
        with self.store.engine.begin() as conn:
            if bulk:
                defer_indexes(self.store, conn)
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None
        self._refresh_statistics()

    def commit_page(
        self,
        crm: str,
        object_type: str,
        rows: Sequence[RecordRow],
        removals: Sequence[RemovalRow],
        cursor: Mapping[str, Any] | None,
        *,
        pass_id: str | None = None,
        pass_complete: bool = False,
        removals_scanned_at: dt.datetime | None = None,
        failures: Sequence[tuple[str, str]] = (),
        resolve: Resolver | None = None,
    ) -> PageOutcome:
        """Write one page and the cursor that follows it, atomically.

        `rows` later in the page win over earlier ones with the same remote id. `failures`
        are (remote id, reason) of records the engine could not map: recorded in
        `sync_failures` to be retried (their raw data is not lost: the CRM still has it and
        the cursor is held back by the engine). A record that comes through clears its
        failure. `cursor` None leaves the stored cursor as it is (a dry run never commits).

        `pass_id` marks the rows as seen by that full pass; with `pass_complete` (the page
        that ends the pass) the records the pass did not list are tombstoned in the same
        transaction (`_tombstone_unseen`), so a crash cannot leave the cursor past the pass
        with them still live. `removals_scanned_at` records when the type's removals were
        last scanned (the engine spaces its scans by it).

        With `resolve` (two-way sync), a record with a queued local edit is merged instead of
        overwritten: `resolve` says which values the store keeps, what stays queued and which
        conflicts to record. A record deleted locally and not pushed stays deleted. A pulled
        contact or company that matches a record this CRM has no link for (by `MATCH_KEYS`)
        is linked to it instead of creating a twin.
        """
        outcome = PageOutcome()
        now = self.store.clock()
        unique = _unique(rows)
        held: Connection | None = getattr(self._held, "conn", None)
        with (self.store.engine.begin() if held is None
              else contextlib.nullcontext(held)) as conn:
            relaxed_commit(conn)
            ids, created = self._write_records(conn, crm, object_type, rows=unique, now=now,
                                      pass_id=pass_id, outcome=outcome, resolve=resolve)
            keep: dict[int, set[str]] = {}
            if resolve is not None:
                # Associations changed locally and not pushed yet are not overwritten (a
                # record this page created has none).
                for record_id, edit in self._local_edits(
                        conn, object_type,
                        [i for i in ids.values() if i not in created]).items():
                    names = {f.split(":", 1)[1] for f in edit["fields"] or ()
                             if f.startswith("associations:")}
                    if names:
                        keep[record_id] = names
            self._write_associations(conn, crm, object_type, rows=unique, ids=ids, now=now,
                                     outcome=outcome, keep=keep, created=created)
            self._write_removals(conn, crm, object_type, removals=removals, now=now,
                                 outcome=outcome)
            self._write_failures(conn, crm, object_type, rows=unique, failures=failures,
                                 now=now)
            if pass_complete and pass_id is not None:
                outcome.tombstoned += self._tombstone_unseen(conn, crm, object_type, pass_id,
                                                             now=now, outcome=outcome)
            if cursor is not None:
                values: dict[str, Any] = {
                    "client": self.client, "crm": crm, "object_type": object_type,
                    "cursor": dict(cursor), "updated_at": now,
                }
                if removals_scanned_at is not None:
                    values["removals_scanned_at"] = removals_scanned_at
                conn.execute(upsert(conn, sync_cursors, values, ["client", "crm", "object_type"]))
        if held is None:
            self._refresh_statistics()
        return outcome

    def _count_inserted(self, table: Table, rows: int) -> None:
        if table.name != associations.name:  # a load never looks associations up
            self._inserted[table.name] = self._inserted.get(table.name, 0) + rows

    def _refresh_statistics(self) -> None:
        """During a bulk load, each time a table the load looks records up in (links by
        remote id, joined to their records) has grown `ANALYZE_GROWTH` times (from
        `ANALYZE_AFTER` rows on): a few ANALYZEs for a million rows, so those lookups stay
        index lookups."""
        grown = [name for name, count in self._inserted.items()
                 if count >= max(ANALYZE_AFTER,
                                 (ANALYZE_GROWTH - 1) * self._sampled.get(name, 0))]
        if not grown:
            return
        with self.store.engine.begin() as conn:
            refresh_statistics(conn, [metadata.tables[name] for name in sorted(grown)])
        for name in grown:
            self._sampled[name] = self._sampled.get(name, 0) + self._inserted.pop(name)

    def preview_page(self, crm: str, object_type: str, rows: Sequence[RecordRow],
                     removals: Sequence[RemovalRow]) -> PageOutcome:
        """What `commit_page` would do with the page, writing nothing (a dry run)."""
        outcome = PageOutcome()
        unique = _unique(rows)
        with self.store.engine.connect() as conn:
            existing = self._links(conn, crm, object_type, [r.remote_id for r in unique])
            gone = self._links(conn, crm, object_type, [r.remote_id for r in removals])
        for row in unique:
            link = existing.get(row.remote_id)
            if link is None or link[2] == "stub":  # a stub: first seen as a link's target
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
                       outcome: PageOutcome, resolve: Resolver | None = None
                       ) -> tuple[dict[str, int], frozenset[int]]:
        """Store ids by remote id of the rows, and those of the records created here."""
        table = RECORD_TABLES[object_type]
        new_ids: list[int] = []
        remote_ids = _remote_ids(rows)
        existing = self._links(conn, crm, object_type, remote_ids)
        fresh = _take(rows, [i for i, rid in enumerate(remote_ids) if rid not in existing])
        ids = {remote_id: link[0] for remote_id, link in existing.items()}
        edits: dict[int, dict[str, Any]] = {}
        if resolve is not None:
            matched = self._match_local(conn, crm, object_type, fresh)
            if matched:
                # A create whose answer was lost: the CRM holds what we sent, so that is the
                # base (local edits since then go out). Otherwise the two sides never
                # agreed: no base, and the merge treats differing fields as conflicts.
                echoed = self._in_flight(conn, object_type, list(matched.values()))
                fresh_ids = _remote_ids(fresh)
                conn.execute(insert(record_links), [
                    {**self._link_values(crm, object_type, r, record_id=matched[r.remote_id],
                                         now=now, pass_id=pass_id),
                     **({} if matched[r.remote_id] in echoed else {"base": None})}
                    for r in (fresh[i] for i, rid in enumerate(fresh_ids) if rid in matched)])
                existing.update(self._links(conn, crm, object_type, list(matched)))
                ids.update(matched)
                outcome.linked += len(matched)
                fresh = _take(fresh, [i for i, rid in enumerate(fresh_ids)
                                      if rid not in matched])
            edits = self._local_edits(conn, object_type, [link[0] for link in existing.values()])
        known = [rows[i] for i, rid in enumerate(remote_ids) if rid in existing]
        if fresh:
            new_ids = self._insert_fresh(conn, crm, object_type, fresh, now=now,
                                         pass_id=pass_id)
            ids.update(zip(_remote_ids(fresh), new_ids, strict=True))
            outcome.created += len(fresh)
        if known:
            changed = [r for r in known if existing[r.remote_id][1] != _jsonable(r.base)
                       or existing[r.remote_id][2]]
            outcome.unchanged += len(known) - len(changed)
            plain = [r for r in changed if existing[r.remote_id][0] not in edits]
            edited = [r for r in changed if existing[r.remote_id][0] in edits]
            # Their properties change: the record's other bases (another CRM's) keep theirs.
            keep_merge_bases(conn, self.client, object_type,
                             [ids[r.remote_id] for r in changed], except_crm=crm)
            if plain:
                # A stub filled in (a record first seen as an association's target, its
                # own type pulled later or concurrently) is created; a deleted one restored.
                filled = sum(1 for r in plain if existing[r.remote_id][2] == "stub")
                restored = sum(1 for r in plain if existing[r.remote_id][2] == "deleted")
                outcome.created += filled
                outcome.restored += restored
                outcome.updated += len(plain) - restored - filled
                self._overwrite(conn, table, plain, ids, now)
            if edited:
                assert resolve is not None
                self._merge_edited(conn, crm, object_type, rows=edited, existing=existing,
                                   edits=edits, resolve=resolve, now=now, outcome=outcome)
            link_update = (update(record_links).where(record_links.c.id == bindparam("_link"))
                           .values(remote_modified_at=bindparam("remote_modified_at"),
                                   base=bindparam("base"), seen_pass=bindparam("seen_pass"),
                                   pulled_at=bindparam("pulled_at"), removed_at=None))
            conn.execute(link_update, [{
                "_link": existing[r.remote_id][3], "remote_modified_at": r.remote_modified_at,
                "base": _jsonable(r.base), "seen_pass": pass_id, "pulled_at": now,
            } for r in known])
        return ids, frozenset(new_ids)

    def _overwrite(self, conn: Connection, table: Table, rows: Sequence[RecordRow],
                   ids: Mapping[str, int], now: dt.datetime) -> None:
        columns = sorted({c for r in rows for c in r.columns})
        stmt = (update(table).where(table.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in
                         [*columns, "properties", "stub", "updated_at", "deleted_at",
                          "deleted_reason", "merged_into"]}))
        conn.execute(stmt, [{
            "_id": ids[r.remote_id], **{c: r.columns.get(c) for c in columns},
            "properties": dict(r.properties), "stub": False, "updated_at": now,
            "deleted_at": None, "deleted_reason": None, "merged_into": None,
        } for r in rows])

    def _merge_edited(self, conn: Connection, crm: str, object_type: str, *,
                      rows: Sequence[RecordRow],
                      existing: Mapping[str, tuple[int, Any, str, int]],
                      edits: Mapping[int, dict[str, Any]], resolve: Resolver,
                      now: dt.datetime, outcome: PageOutcome) -> None:
        """Pulled records with a queued local edit: merged, in this page's transaction."""
        table = RECORD_TABLES[object_type]
        for row in rows:
            record_id, base = existing[row.remote_id][0], existing[row.remote_id][1]
            edit = edits[record_id]
            outcome.merged += 1
            if edit["op"] == "delete":
                continue  # deleted locally, not pushed yet: stays deleted; the base moves
            local = LocalEdit(
                record_id=record_id, op=edit["op"], fields=frozenset(edit["fields"] or ()),
                queued_at=_aware(edit["queued_at"]) or now,
                columns={c: _aware(v) if isinstance(v, dt.datetime) else v
                         for c, v in edit["row"].items()
                         if c in row.columns},
                properties=dict(edit["row"].get("properties") or {}), base=base)
            resolution = resolve(row, local)
            conn.execute(update(table).where(table.c.id == record_id).values(
                **{c: v for c, v in resolution.columns.items() if c in table.c},
                properties=dict(resolution.properties), stub=False, updated_at=now,
                deleted_at=None, deleted_reason=None, merged_into=None))
            scope = and_(local_changes.c.client == self.client,
                         local_changes.c.object_type == object_type,
                         local_changes.c.record_id == record_id)
            if resolution.pending:
                conn.execute(update(local_changes).where(scope).values(
                    fields=sorted(resolution.pending)))
            else:
                conn.execute(delete(local_changes).where(scope))
            if resolution.conflicts:
                conn.execute(insert(conflicts), [{
                    "client": self.client, "crm": crm, "object_type": object_type,
                    "record_id": record_id, "field": c.field,
                    "base_value": _jsonable(c.base), "local_value": _jsonable(c.local),
                    "remote_value": _jsonable(c.remote), "policy": c.policy,
                    "winner": c.winner, "resolved_at": now} for c in resolution.conflicts])
                outcome.conflicts += len(resolution.conflicts)
            outcome.updated += 1

    def _match_local(self, conn: Connection, crm: str, object_type: str,
                     rows: Sequence[RecordRow]) -> dict[str, int]:
        """remote id → store id of live records this CRM has no link for that the pulled
        rows are: same match key (created on both sides), or — for a create whose answer was
        lost (`IN_FLIGHT`), deals included — the same name."""
        if not rows:
            return {}
        table = RECORD_TABLES[object_type]
        # Per candidate found by its key, an index lookup of its links: a `NOT IN` of every
        # record the CRM has a link for made each query read them all (a million-record
        # first load: quadratic).
        unlinked = ~exists().where(
            record_links.c.client == self.client, record_links.c.object_type == object_type,
            record_links.c.record_id == table.c.id, record_links.c.crm == crm)
        in_flight = select(local_changes.c.record_id).where(
            local_changes.c.client == self.client, local_changes.c.object_type == object_type,
            local_changes.c.last_error == IN_FLIGHT)
        matched: dict[str, int] = {}
        taken: set[int] = set()
        searches = [(MATCH_KEYS[object_type], False)] if object_type in MATCH_KEYS else []
        searches.append(("name" if object_type != "contacts" else "email_key", True))
        remote_ids = _remote_ids(rows)
        for key, only_in_flight in searches:
            wanted: dict[str, str] = {}
            for remote_id, value in zip(remote_ids, _column(rows, key), strict=True):
                if value and remote_id not in matched:
                    wanted.setdefault(value, remote_id)
            for chunk in _chunks(list(wanted), in_chunk_size(conn)):
                # Live and not a stub is checked here: in the query, SQLite chose the index
                # on (client, deleted_at) over the key's and read every live record.
                query = select(table.c.id, table.c[key], table.c.deleted_at, table.c.stub).where(
                    table.c.client == self.client, any_of(conn, table.c[key], chunk),
                    unlinked).order_by(table.c.id)
                if only_in_flight:
                    query = query.where(table.c.id.in_(in_flight))
                for found in conn.execute(query):
                    if found.deleted_at is not None or found.stub:
                        continue
                    remote_id = wanted[found[1]]
                    if remote_id not in matched and found[0] not in taken:
                        matched[remote_id] = found[0]
                        taken.add(found[0])
        return matched

    def _in_flight(self, conn: Connection, object_type: str, record_ids: Sequence[int]
                   ) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(list(record_ids), in_chunk_size(conn)):
            found.update(conn.scalars(select(local_changes.c.record_id).where(
                local_changes.c.client == self.client,
                local_changes.c.object_type == object_type,
                local_changes.c.last_error == IN_FLIGHT,
                any_of(conn, local_changes.c.record_id, chunk))))
        return found

    def mark_in_flight(self, object_type: str, record_ids: Sequence[int]) -> None:
        """Before sending creates: if the answer is lost (the process dies before
        `commit_push`), the next pull links the record the CRM made instead of a twin."""
        with self.store.engine.begin() as conn:
            for chunk in _chunks(list(record_ids)):
                conn.execute(update(local_changes).where(
                    local_changes.c.client == self.client,
                    local_changes.c.object_type == object_type,
                    local_changes.c.record_id.in_(chunk)).values(last_error=IN_FLIGHT))

    def _local_edits(self, conn: Connection, object_type: str, record_ids: Sequence[int]
                     ) -> dict[int, dict[str, Any]]:
        """record id → its queued local change and current row, for those that have one."""
        table = RECORD_TABLES[object_type]
        found: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(record_ids)), in_chunk_size(conn)):
            query = (select(local_changes.c.record_id, local_changes.c.op,
                            local_changes.c.fields, local_changes.c.queued_at, table)
                     .join(table, table.c.id == local_changes.c.record_id)
                     .where(local_changes.c.client == self.client,
                            local_changes.c.object_type == object_type,
                            any_of(conn, local_changes.c.record_id, chunk)))
            for row in conn.execute(query):
                data = dict(row._mapping)
                found[row.record_id] = {"op": data["op"], "fields": data["fields"],
                                        "queued_at": data["queued_at"], "row": data}
        return found

    def _insert_fresh(self, conn: Connection, crm: str, object_type: str,
                      rows: Sequence[RecordRow], *, now: dt.datetime, pass_id: str | None
                      ) -> list[int]:
        """New records and their links, in two bulk inserts; their store ids in order."""
        table = RECORD_TABLES[object_type]
        if isinstance(rows, PackedRows):
            columns = list(rows.names)
            values = [(*row, text) for row, text in zip(rows.values, rows.properties,
                                                        strict=True)]
            links = list(zip(rows.remote_ids, rows.modified,
                             [own_base_text(fields) for fields in rows.fields], strict=True))
        else:
            columns = sorted({c for r in rows for c in r.columns})
            texts = [r.json_texts for r in rows]
            values = [(*[r.columns.get(c) for c in columns], text[0])
                      for r, text in zip(rows, texts, strict=True)]
            links = [(r.remote_id, r.remote_modified_at, text[1])
                     for r, text in zip(rows, texts, strict=True)]
        unknown = [c for c in columns if c not in table.c]
        if unknown:
            raise StoreError(f"{object_type} has no column {unknown[0]!r}")
        record_ids = bulk_insert(
            conn, table, {"client": self.client, "stub": False, "created_at": now,
                          "updated_at": now},
            [*columns, "properties"], values, json_columns=_PROPERTIES, ids=True)
        self._count_inserted(table, len(rows))
        self._count_inserted(record_links, len(rows))
        bulk_insert(
            conn, record_links, {"client": self.client, "crm": crm, "object_type": object_type,
                                 "seen_pass": pass_id, "pulled_at": now},
            ["remote_id", "remote_modified_at", "base", "record_id"],
            [(*link, record_id) for link, record_id in zip(links, record_ids, strict=True)],
            json_columns=_BASE)
        return record_ids

    def _insert_stubs(self, conn: Connection, crm: str, object_type: str,
                      remote_ids: Sequence[str], now: dt.datetime) -> list[int]:
        """Stub records (known only as an association's target) and their links."""
        record_ids = bulk_insert(
            conn, RECORD_TABLES[object_type], {"client": self.client, "stub": True,
                                               "created_at": now, "updated_at": now},
            ["properties"], [("{}",) for _ in remote_ids], json_columns=_PROPERTIES, ids=True)
        self._count_inserted(RECORD_TABLES[object_type], len(remote_ids))
        self._count_inserted(record_links, len(remote_ids))
        bulk_insert(
            conn, record_links, {"client": self.client, "crm": crm, "object_type": object_type,
                                 "remote_modified_at": None, "base": "null", "seen_pass": None,
                                 "pulled_at": now},
            ["remote_id", "record_id"], list(zip(remote_ids, record_ids, strict=True)),
            json_columns=_BASE)
        return record_ids

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
               ) -> dict[str, tuple[int, Any, str, int]]:
        """remote id → (record id, base, gone, link id) for the ids that exist; gone is
        "stub", "deleted" or "" (live), so true when the record is not live."""
        table = RECORD_TABLES[object_type]
        found: dict[str, tuple[int, Any, str, int]] = {}
        for chunk in _chunks(list(dict.fromkeys(remote_ids)), in_chunk_size(conn)):
            query = (select(record_links.c.remote_id, record_links.c.record_id,
                            record_links.c.base, record_links.c.id,
                            table.c.stub, table.c.deleted_at, table.c.properties)
                     .join(table, table.c.id == record_links.c.record_id)
                     .where(self._scope(record_links, crm, object_type),
                            any_of(conn, record_links.c.remote_id, chunk)))
            for row in conn.execute(query).all():
                gone = "stub" if row.stub else "deleted" if row.deleted_at is not None else ""
                found[row.remote_id] = (row.record_id, _full_base(row.base, row.properties),
                                        gone, row.id)
        return found

    def _record_ids(self, conn: Connection, crm: str, object_type: str,
                    remote_ids: Sequence[str]) -> dict[str, int]:
        """remote id → store id (stubs included) for the ids that have a link."""
        found: dict[str, int] = {}
        for chunk in _chunks(remote_ids, in_chunk_size(conn)):
            for remote_id, record_id in conn.execute(
                    select(record_links.c.remote_id, record_links.c.record_id)
                    .where(self._scope(record_links, crm, object_type),
                           any_of(conn, record_links.c.remote_id, chunk))).all():
                found[remote_id] = record_id
        return found

    def _resolve(self, conn: Connection, crm: str, object_type: str, remote_ids: Iterable[str],
                 now: dt.datetime) -> dict[str, int]:
        """Store ids for remote ids of `object_type`, creating stubs for those not seen yet."""
        wanted = list(dict.fromkeys(remote_ids))
        resolved = self._record_ids(conn, crm, object_type, wanted)
        missing = [rid for rid in wanted if rid not in resolved]
        if missing:
            new_ids = self._insert_stubs(conn, crm, object_type, missing, now)
            resolved.update(zip(missing, new_ids, strict=True))
        return resolved

    def _write_associations(self, conn: Connection, crm: str, object_type: str, *,
                            rows: Sequence[RecordRow], ids: Mapping[str, int],
                            now: dt.datetime, outcome: PageOutcome,
                            keep: Mapping[int, set[str]] | None = None,
                            created: frozenset[int] = frozenset()) -> None:
        """Replace the owners' associations with the rows'. `created`: store ids inserted
        by this transaction, which cannot have any yet (nothing to delete)."""
        owners = _owned_associations(rows)
        if not owners:
            return
        keep = keep or {}
        targets: dict[str, dict[str, int]] = {}
        for to_type in OWNED_ASSOCIATIONS[object_type]:
            remote = [to_id for _, links in owners for (t, to_id, _) in links if t == to_type]
            targets[to_type] = self._resolve(conn, crm, to_type, remote, now) if remote else {}
        owner_ids = [ids[remote_id] for remote_id, _ in owners]
        kept = {(owner, to_type) for owner, names in keep.items() for to_type in names}
        for chunk in _chunks([o for o in owner_ids if o not in keep and o not in created],
                             in_chunk_size(conn)):
            conn.execute(delete(associations).where(
                associations.c.client == self.client,
                associations.c.from_type == object_type,
                any_of(conn, associations.c.from_id, chunk)))
        for owner in (o for o in owner_ids if o in keep):
            conn.execute(delete(associations).where(
                associations.c.client == self.client,
                associations.c.from_type == object_type, associations.c.from_id == owner,
                associations.c.to_type.not_in(sorted(keep[owner]))))
        primary: dict[tuple[int, str, int], bool] = {}  # (from id, to type, to id)
        for remote_id, links in owners:
            owner = ids[remote_id]
            for to_type, to_id, is_primary in links:
                if to_type not in targets:
                    continue  # not an association this side owns
                if kept and (owner, to_type) in kept:
                    continue  # changed locally: the push sends the local set
                key = (owner, to_type, targets[to_type][to_id])
                primary[key] = is_primary or primary.get(key, False)
        bulk_insert(conn, associations, {"client": self.client, "from_type": object_type,
                                         "crm": crm, "updated_at": now},
                    ["from_id", "to_type", "to_id", "is_primary"],
                    [(*key, is_primary) for key, is_primary in primary.items()])
        self._count_inserted(associations, len(primary))
        outcome.associations += len(primary)

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
        outcome.conflicts += self._note_lost_edits(
            conn, crm, object_type, [existing[r.remote_id][0] for r in todo], now,
            bases={existing[r.remote_id][0]: existing[r.remote_id][1] for r in todo})
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

    def _note_lost_edits(self, conn: Connection, crm: str, object_type: str,
                         record_ids: Sequence[int], now: dt.datetime, *,
                         bases: Mapping[int, Any] | None = None) -> int:
        """Records the CRM removed (by store id) whose local edit is still queued: the
        removal wins (the record is tombstoned and the edit is not pushed), so each edited
        field is recorded as a conflict the CRM won, with the local value that is not sent
        (`crmsync sync` counts them). `bases`: their merge bases where the caller has them
        (else read, for the edited ones only). How many were recorded."""
        edits = {record_id: edit for record_id, edit in
                 self._local_edits(conn, object_type, record_ids).items()
                 if edit["op"] == "upsert" and edit["fields"]}
        if not edits:
            return 0
        if bases is None:
            bases = self._bases(conn, crm, object_type, list(edits))
        noted = []
        for record_id, edit in edits.items():
            row, base = edit["row"], bases.get(record_id) or {}
            for name in sorted(edit["fields"]):
                if name in row and name not in ("properties", "id"):
                    local, was = row[name], (base.get("fields") or {}).get(name)
                elif name.startswith("associations:"):
                    local = was = None
                else:
                    local = (row.get("properties") or {}).get(name)
                    was = (base.get("properties") or {}).get(name)
                noted.append({
                    "client": self.client, "crm": crm, "object_type": object_type,
                    "record_id": record_id, "field": name, "base_value": _jsonable(was),
                    "local_value": _jsonable(local), "remote_value": None,
                    "policy": REMOVED_POLICY, "winner": "remote", "resolved_at": now})
        if noted:
            conn.execute(insert(conflicts), noted)
        return len(noted)

    def _bases(self, conn: Connection, crm: str, object_type: str, record_ids: Sequence[int]
               ) -> dict[int, Any]:
        """store id → this CRM's merge base, for those linked to it."""
        table = RECORD_TABLES[object_type]
        found: dict[int, Any] = {}
        for chunk in _chunks(list(record_ids), in_chunk_size(conn)):
            for row in conn.execute(
                    select(record_links.c.record_id, record_links.c.base, table.c.properties)
                    .join(table, table.c.id == record_links.c.record_id)
                    .where(self._scope(record_links, crm, object_type),
                           any_of(conn, record_links.c.record_id, chunk))):
                found[row.record_id] = _full_base(row.base, row.properties)
        return found

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
        # Mostly there are none to clear: one probe instead of a delete per chunk of ids.
        recorded = conn.execute(select(sync_failures.c.id).where(scope).limit(1)).first()
        done = _remote_ids(rows) if recorded is not None else []
        for chunk in _chunks(done, in_chunk_size(conn)):
            conn.execute(delete(sync_failures).where(
                scope, any_of(conn, sync_failures.c.record_key, chunk)))
        for remote_id, reason in failures:
            conn.execute(dialect_insert(conn, sync_failures).values(
                client=self.client, crm=crm, object_type=object_type, direction="pull",
                record_key=remote_id, error=reason, first_seen=now, last_seen=now, attempts=1,
            ).on_conflict_do_update(
                index_elements=["client", "crm", "object_type", "direction", "record_key"],
                set_={"error": reason, "last_seen": now,
                      "attempts": sync_failures.c.attempts + 1}))

    def _tombstone_unseen(self, conn: Connection, crm: str, object_type: str, pass_id: str,
                          *, now: dt.datetime, outcome: PageOutcome) -> int:
        """After a complete full pass: records the pass did not list are gone from the CRM
        (deleted and purged, so no listing reports them): tombstone them as `missing`."""
        table = RECORD_TABLES[object_type]
        unseen = select(record_links.c.record_id).where(
            self._scope(record_links, crm, object_type),
            record_links.c.removed_at.is_(None),
            (record_links.c.seen_pass.is_(None)) | (record_links.c.seen_pass != pass_id))
        ids = list(conn.scalars(
            select(table.c.id).where(table.c.id.in_(unseen), table.c.deleted_at.is_(None),
                                     table.c.stub.is_(False))))
        for chunk in _chunks(ids):
            outcome.conflicts += self._note_lost_edits(conn, crm, object_type, chunk, now)
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

    # --- the push queue (two-way sync) -------------------------------------------------------

    def queued(self, crm: str, object_type: str, *, batch: int = 500
               ) -> Iterator[list[QueuedChange]]:
        """Queued local changes of the type, oldest first, in batches, each with the record's
        row and its remote id in `crm` (None: not linked there yet)."""
        table = RECORD_TABLES[object_type]
        last = 0
        while True:
            with self.store.engine.connect() as conn:
                rows = list(conn.execute(
                    select(local_changes.c.id.label("_change"), local_changes.c.op,
                           local_changes.c.fields, local_changes.c.queued_at,
                           local_changes.c.attempts, table)
                    .join(table, table.c.id == local_changes.c.record_id)
                    .where(local_changes.c.client == self.client,
                           local_changes.c.object_type == object_type,
                           local_changes.c.id > last)
                    .order_by(local_changes.c.id).limit(batch)))
                links = self._links_by_record(conn, crm, object_type,
                                              [r.id for r in rows])
            if rows:
                yield [self._queued(dict(r._mapping), links.get(r.id)) for r in rows]
            if len(rows) < batch:
                return
            last = rows[-1]._change

    def unlinked(self, crm: str, object_type: str, *, batch: int = 500
                 ) -> Iterator[list[QueuedChange]]:
        """Live records with no link to `crm` and nothing queued (`sync --to`: each becomes a
        create there), as unqueued changes naming every field."""
        table = RECORD_TABLES[object_type]
        last = 0
        # Index lookups per record (`NOT EXISTS`): a `NOT IN` of every linked record was
        # read again for each batch.
        linked = exists().where(
            record_links.c.client == self.client, record_links.c.object_type == object_type,
            record_links.c.record_id == table.c.id, record_links.c.crm == crm)
        queued = exists().where(
            local_changes.c.client == self.client, local_changes.c.object_type == object_type,
            local_changes.c.record_id == table.c.id)
        while True:
            with self.store.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(
                    select(table).where(table.c.client == self.client,
                                        table.c.deleted_at.is_(None), table.c.stub.is_(False),
                                        table.c.id > last, ~linked, ~queued)
                    .order_by(table.c.id).limit(batch))]
            if rows:
                yield [QueuedChange(record_id=r["id"], op="upsert", fields=frozenset(),
                                    queued_at=None, attempts=0, row=r, remote_id=None)
                       for r in rows]
            if len(rows) < batch:
                return
            last = rows[-1]["id"]

    @staticmethod
    def _queued(data: Mapping[str, Any], remote_id: str | None) -> QueuedChange:
        row = {k: v for k, v in data.items()
               if k not in {"_change", "op", "fields", "queued_at", "attempts"}}
        return QueuedChange(record_id=data["id"], op=data["op"],
                            fields=frozenset(data["fields"] or ()), queued_at=data["queued_at"],
                            attempts=data["attempts"] or 0, row=row, remote_id=remote_id)

    def _links_by_record(self, conn: Connection, crm: str, object_type: str,
                         record_ids: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in _chunks(list(dict.fromkeys(record_ids))):
            for row in conn.execute(select(record_links.c.record_id, record_links.c.remote_id)
                                    .where(self._scope(record_links, crm, object_type),
                                           record_links.c.removed_at.is_(None),
                                           record_links.c.record_id.in_(chunk))):
                found[row.record_id] = row.remote_id
        return found

    def remote_ids_for(self, crm: str, object_type: str, record_ids: Sequence[int]
                       ) -> dict[int, str]:
        """store id → remote id in `crm` for those of `record_ids` linked there."""
        with self.store.engine.connect() as conn:
            return self._links_by_record(conn, crm, object_type, record_ids)

    def contacts_linked_by_email(self, crm: str, email_keys: Sequence[str]) -> dict[str, int]:
        """email key → store id of the live contacts with that key already linked to `crm`."""
        table = RECORD_TABLES["contacts"]
        found: dict[str, int] = {}
        with self.store.engine.connect() as conn:
            for chunk in _chunks(sorted(set(email_keys))):
                for row in conn.execute(
                        select(table.c.email_key, table.c.id)
                        .join(record_links, record_links.c.record_id == table.c.id)
                        .where(self._scope(record_links, crm, "contacts"),
                               record_links.c.removed_at.is_(None),
                               table.c.client == self.client, table.c.deleted_at.is_(None),
                               table.c.email_key.in_(chunk))
                        .order_by(table.c.id)):
                    found.setdefault(row.email_key, row.id)
        return found

    def owned_associations(self, object_type: str, record_ids: Sequence[int]
                           ) -> dict[int, list[tuple[str, int, bool]]]:
        """store id → (to type, to store id, primary) of the associations it owns."""
        found: dict[int, list[tuple[str, int, bool]]] = {rid: [] for rid in record_ids}
        with self.store.engine.connect() as conn:
            for chunk in _chunks(list(record_ids)):
                for row in conn.execute(
                        select(associations.c.from_id, associations.c.to_type,
                               associations.c.to_id, associations.c.is_primary)
                        .where(associations.c.client == self.client,
                               associations.c.from_type == object_type,
                               associations.c.from_id.in_(chunk))
                        .order_by(associations.c.id)):
                    found[row.from_id].append((row.to_type, row.to_id, bool(row.is_primary)))
        return found

    def commit_push(self, crm: str, object_type: str, pushed: Sequence[PushedRecord]) -> None:
        """Record what the CRM answered for a batch of pushed records, in one transaction:
        a landed write moves the link's base to what the CRM holds (a create gains its
        link) and clears the queue row — unless the record was edited again meanwhile; a
        failed one keeps its queue row (attempts + 1, last error) and gets a push failure."""
        now = self.store.clock()
        failures_scope = and_(sync_failures.c.client == self.client, sync_failures.c.crm == crm,
                              sync_failures.c.object_type == object_type,
                              sync_failures.c.direction == "push")
        table = RECORD_TABLES[object_type]
        with self.store.engine.begin() as conn:
            for item in pushed:
                queue = and_(local_changes.c.client == self.client,
                             local_changes.c.object_type == object_type,
                             local_changes.c.record_id == item.record_id)
                key = str(item.record_id)
                if not item.ok:
                    error = item.error or "failed"
                    conn.execute(update(local_changes).where(queue).values(
                        attempts=local_changes.c.attempts + 1, last_error=error[:2000]))
                    conn.execute(dialect_insert(conn, sync_failures).values(
                        client=self.client, crm=crm, object_type=object_type,
                        direction="push", record_key=key, error=error, first_seen=now,
                        last_seen=now, attempts=1,
                    ).on_conflict_do_update(
                        index_elements=["client", "crm", "object_type", "direction",
                                        "record_key"],
                        set_={"error": error, "last_seen": now,
                              "attempts": sync_failures.c.attempts + 1}))
                    continue
                if item.archived:
                    conn.execute(update(record_links).where(
                        self._scope(record_links, crm, object_type),
                        record_links.c.record_id == item.record_id).values(removed_at=now))
                elif item.remote_id is not None:
                    base = item.base
                    if base is not None:
                        # A HubSpot answer carries only the properties it was sent: merged
                        # onto the base, so the fields it did not name keep their base.
                        old = conn.execute(
                            select(record_links.c.base, table.c.properties)
                            .join(table, table.c.id == record_links.c.record_id)
                            .where(self._scope(record_links, crm, object_type),
                                   record_links.c.remote_id == item.remote_id)).first()
                        base = _merged_base(_full_base(*old) if old is not None else None,
                                            base)
                    conn.execute(upsert(conn, record_links, {
                        "client": self.client, "crm": crm, "object_type": object_type,
                        "remote_id": item.remote_id, "record_id": item.record_id,
                        "remote_modified_at": item.remote_modified_at,
                        "base": _jsonable(base) if base is not None else None,
                        "pulled_at": now, "removed_at": None,
                    }, ["client", "crm", "object_type", "remote_id"]))
                if item.dequeue:
                    # Only the change that was pushed: a newer local edit stays queued.
                    condition = (local_changes.c.queued_at == item.queued_at
                                 if item.queued_at is not None else local_changes.c.id.is_(None))
                    conn.execute(delete(local_changes).where(queue, condition))
                    conn.execute(update(local_changes).where(queue).values(last_error=None))
                if item.associations is not None and item.remote_id is not None:
                    newer = conn.execute(select(local_changes.c.fields).where(queue)).first()
                    changed = {n.removeprefix("associations:") for n in
                               (newer.fields if newer is not None else ())
                               if n.startswith("associations:")}
                    self._write_associations(
                        conn, crm, object_type, now=now, outcome=PageOutcome(),
                        rows=[RecordRow(item.remote_id, item.remote_modified_at, {}, {}, {},
                                        item.associations)],
                        ids={item.remote_id: item.record_id},
                        keep={item.record_id: changed} if changed else None)
                conn.execute(delete(sync_failures).where(
                    failures_scope, sync_failures.c.record_key == key))

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

    def remote_versions(self, crm: str, object_type: str, remote_ids: Sequence[str]
                        ) -> dict[str, dt.datetime]:
        """remote id → the CRM's modification time of the version the store holds, for
        those of `remote_ids` it holds live (not stubs, not removed)."""
        table = RECORD_TABLES[object_type]
        found: dict[str, dt.datetime] = {}
        held: Connection | None = getattr(self._held, "conn", None)  # this thread's group
        with (self.store.engine.connect() if held is None
              else contextlib.nullcontext(held)) as conn:
            for chunk in _chunks(list(dict.fromkeys(remote_ids)), in_chunk_size(conn)):
                for row in conn.execute(
                        select(record_links.c.remote_id, record_links.c.remote_modified_at)
                        .join(table, table.c.id == record_links.c.record_id)
                        .where(self._scope(record_links, crm, object_type),
                               any_of(conn, record_links.c.remote_id, chunk),
                               record_links.c.removed_at.is_(None),
                               table.c.deleted_at.is_(None), table.c.stub.is_(False))):
                    when = _aware(row.remote_modified_at)
                    if when is not None:
                        found[row.remote_id] = when
        return found

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


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# What SQLAlchemy's JSON type writes (`json.dumps`), with `_jsonable`'s dates and decimals,
# without the blanks after separators: bytes a bulk load need not write. Read back the same.
json_text = json.JSONEncoder(default=_json_default, separators=(",", ":")).encode
_PROPERTIES = frozenset({"properties"})
_BASE = frozenset({"base"})


def own_base_text(fields_text: str) -> str:
    """The JSON text of a merge base made of these fields (JSON text) and the properties its
    record holds: see `_full_base`."""
    return f'{{"fields":{fields_text}}}'


def _json_texts(row: RecordRow) -> tuple[str, str]:
    """The row's properties and merge base as JSON text; a base that holds the row's own
    properties (as `mapping.record_row` makes it) is written without them (`own_base_text`)."""
    properties = json_text(row.properties)
    base = row.base
    if len(base) == 2 and "fields" in base and base.get("properties") is row.properties:
        return properties, own_base_text(json_text(base["fields"]))
    return properties, json_text(base)


# A merge base is {"fields": …, "properties": …}. A record created by a pull has, in its one
# link, a base without "properties" (`own_base_text`): they are the record's own `properties`,
# as pulled, so a first load writes them once, not twice. Whatever changes a record's
# properties keeps the other bases it has first (`keep_merge_bases`), and every base read
# goes through `_full_base`.


def _full_base(base: Any, record_properties: Any) -> Any:
    """The stored `base` with its properties: the record's own where it does not hold them."""
    if isinstance(base, dict) and "properties" not in base:
        return {**base, "properties": record_properties or {}}
    return base


def keep_merge_bases(conn: Connection, client: str, object_type: str,
                     record_ids: Iterable[int], *, except_crm: str | None = None) -> None:
    """Before these records' properties change: the links whose base holds no properties of
    its own (see `_full_base`) are given the record's current ones, so they keep the base
    they stand for. `except_crm`: the link the caller rewrites with its new base anyway."""
    table = RECORD_TABLES[object_type]
    for chunk in _chunks(sorted(set(record_ids)), in_chunk_size(conn)):
        query = (select(record_links.c.id, record_links.c.base, table.c.properties)
                 .join(table, table.c.id == record_links.c.record_id)
                 .where(record_links.c.client == client,
                        record_links.c.object_type == object_type,
                        any_of(conn, record_links.c.record_id, chunk)))
        if except_crm is not None:
            query = query.where(record_links.c.crm != except_crm)
        kept = [{"_link": link_id, "base": _full_base(base, properties)}
                for link_id, base, properties in conn.execute(query)
                if isinstance(base, dict) and "properties" not in base]
        if kept:
            conn.execute(update(record_links).where(record_links.c.id == bindparam("_link"))
                         .values(base=bindparam("base")), kept)


def _merged_base(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """`new` (fields and properties the CRM answered) laid over the stored base `old`."""
    old = old or {}
    return {part: {**(old.get(part) or {}), **(new.get(part) or {})}
            for part in ("fields", "properties")}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """`value` as JSON would round-trip it (dates as ISO text), so a stored base compares
    equal to a freshly mapped one."""
    if isinstance(value, Mapping):
        # Most values are text: no call for them (a base has dozens per record).
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else _jsonable(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
