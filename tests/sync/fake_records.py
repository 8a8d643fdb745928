"""An in-memory CRM behind the record interface, for testing the engine and store alone.

Pages are small so a few records make many pages; `fail_after_pages` raises part-way through
a pull as a crash would; every call is counted. The write side keeps the writer's contract:
one result per write, a rejected record is its result (`reject`), creates look before they
create (contacts by email, companies by domain), batches of `batch_size`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crmsync.adapters.records import (
    Association,
    FieldDefinition,
    PullCursor,
    RecordPage,
    RecordWrite,
    RemoteRecord,
    RemoteRemoval,
    WriteResult,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class CrashError(Exception):
    """Stands in for the process dying between two pages."""


@dataclass
class FakeCrm:
    crm: str = "hubspot"
    page_size: int = 3
    now: dt.datetime = T0
    records: dict[str, dict[str, RemoteRecord]] = field(
        default_factory=lambda: {"companies": {}, "contacts": {}, "deals": {}})
    removals: list[RemoteRemoval] = field(default_factory=list)
    fail_after_pages: int | None = None
    calls: int = 0
    field_calls: int = 0
    pages_served: int = 0
    batch_size: int = 100
    next_id: int = 1000
    write_calls: int = 0
    # (object type, store key) → the CRM's message: that record's write fails (a 207 entry).
    reject: dict[tuple[str, str], str] = field(default_factory=dict)
    writes: list[RecordWrite] = field(default_factory=list)

    def tick(self, seconds: int = 1) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now

    def put(self, object_type: str, record_id: str, *, fields: dict[str, Any] | None = None,
            properties: dict[str, Any] | None = None,
            associations: tuple[Association, ...] | None = (),
            modified_at: dt.datetime | None = None) -> RemoteRecord:
        record = RemoteRecord(object_type, record_id, modified_at or self.tick(),  # type: ignore[arg-type]
                              fields or {}, properties or {}, associations)
        self.records[object_type][record_id] = record
        return record

    def edit(self, object_type: str, record_id: str, **fields: Any) -> None:
        old = self.records[object_type][record_id]
        self.records[object_type][record_id] = replace(
            old, fields={**old.fields, **fields}, modified_at=self.tick())

    def remove(self, object_type: str, record_id: str, *, merged_into: str | None = None
               ) -> None:
        del self.records[object_type][record_id]
        if merged_into:  # the CRM moves the loser's associations to the survivor
            for _kind, records in self.records.items():
                for rid, record in records.items():
                    moved = tuple(replace(a, to_id=merged_into)
                                  if (a.to_type, a.to_id) == (object_type, record_id) else a
                                  for a in record.associations or ())
                    records[rid] = replace(record, associations=moved)
        self.removals.append(RemoteRemoval(
            object_type, record_id, "merged" if merged_into else "archived",  # type: ignore[arg-type]
            removed_at=self.tick(), merged_into=merged_into))

    # --- RecordAdapter ------------------------------------------------------------------------

    def field_definitions(self, object_type: str) -> list[FieldDefinition]:
        self.calls += 1
        self.field_calls += 1
        return [FieldDefinition("favourite_colour", "Favourite colour", "enumeration",
                                "favourite_colour", custom=True)]

    def pull(self, object_type: str, cursor: PullCursor | None,
             fields: Sequence[FieldDefinition], *, scan_removals: bool = False
             ) -> Iterator[RecordPage]:
        if cursor is None or cursor.phase == "full":
            yield from self._full(object_type, cursor)
        else:
            yield from self._increment(object_type, cursor, scan_removals=scan_removals)

    def _serve(self) -> None:
        self.calls += 1
        if self.fail_after_pages is not None and self.pages_served >= self.fail_after_pages:
            raise CrashError
        self.pages_served += 1

    def _full(self, object_type: str, cursor: PullCursor | None) -> Iterator[RecordPage]:
        started = cursor.pass_started_at if cursor and cursor.pass_started_at else self.tick()
        position = int(cursor.token) if cursor and cursor.token else 0
        ordered = sorted(self.records[object_type].values(), key=lambda r: int(r.id))
        while True:
            self._serve()
            chunk = tuple(ordered[position:position + self.page_size])
            position += len(chunk)
            if position >= len(ordered):
                yield RecordPage(object_type, chunk, (),  # type: ignore[arg-type]
                                 PullCursor("incremental", None, started, None, started),
                                 done=True, calls=1)
                return
            yield RecordPage(object_type, chunk, (),  # type: ignore[arg-type]
                             PullCursor("full", str(position), None, None, started), calls=1)

    def _increment(self, object_type: str, cursor: PullCursor, *, scan_removals: bool
                   ) -> Iterator[RecordPage]:
        mark = (cursor.high_water or T0, cursor.high_water_id or "")
        changed = sorted((r for r in self.records[object_type].values()
                          if (r.modified_at, r.id) > mark), key=lambda r: (r.modified_at, r.id))
        removed = tuple(r for r in self.removals if r.object_type == object_type
                        and r.removed_at and r.removed_at > mark[0])
        position = 0
        while True:
            self._serve()
            chunk = tuple(changed[position:position + self.page_size])
            position += len(chunk)
            last = chunk[-1] if chunk else None
            if last is not None:
                mark = (last.modified_at, last.id)
            done = position >= len(changed)
            next_cursor = PullCursor("incremental", None, mark[0], mark[1] or None,
                                     cursor.pass_started_at)
            yield RecordPage(object_type, chunk,  # type: ignore[arg-type]
                             removed if position <= self.page_size else (), next_cursor,
                             done=done, calls=1)
            if done:
                return

    # --- RecordWriter -------------------------------------------------------------------------

    def write(self, object_type: str, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for start in range(0, len(writes), self.batch_size):
            self.calls += 1
            self.write_calls += 1
            results.extend(self._write_one(object_type, w)
                           for w in writes[start:start + self.batch_size])
        return results

    def _write_one(self, object_type: str, write: RecordWrite) -> WriteResult:
        self.writes.append(write)
        error = self.reject.get((object_type, write.key))
        if error is not None:
            return WriteResult(write.key, ok=False, error=error)
        records = self.records[object_type]
        if write.op == "archive":
            assert write.remote_id is not None
            if write.remote_id in records:
                self.remove(object_type, write.remote_id)
            return WriteResult(write.key, ok=True, remote_id=write.remote_id)
        remote_id = write.remote_id
        if write.op == "create":
            remote_id = self._find(object_type, write.fields)
            if remote_id is None:
                self.next_id += 1
                remote_id = str(self.next_id)
                self.put(object_type, remote_id, fields={}, properties={})
        assert remote_id is not None
        old = records.get(remote_id)
        if old is None:
            return WriteResult(write.key, ok=False, error=f"{object_type} {remote_id} not found")
        associations = old.associations if write.associations is None else write.associations
        record = replace(old, fields={**old.fields, **write.fields},
                         properties={**old.properties, **write.properties},
                         associations=associations, modified_at=self.tick())
        records[remote_id] = record
        return WriteResult(write.key, ok=True, remote_id=remote_id,
                           modified_at=record.modified_at, record=record)

    def _find(self, object_type: str, fields: Any) -> str | None:
        key = {"contacts": "email", "companies": "domain"}.get(object_type)
        if key is None or not fields.get(key):
            return None
        wanted = str(fields[key]).strip().lower()
        return next((rid for rid, r in self.records[object_type].items()
                     if str(r.fields.get(key) or "").strip().lower() == wanted), None)

    def read(self, object_type: str, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        self.calls += 1
        return [self.records[object_type][rid] for rid in remote_ids
                if rid in self.records[object_type]]
