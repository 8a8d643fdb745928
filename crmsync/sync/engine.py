"""The pull side of `crmsync sync`: one client's CRM into the store, page by page.

For each object type (companies, contacts, deals — any order works: associations to records
not pulled yet become stubs), the loop is:

    cursor ← store            (None on the first run or with --full)
    for page in adapter.pull(type, cursor, field definitions):
        store.commit_page(rows, removals, page.cursor)   # one transaction

so the cursor never runs ahead of the data it covers, and a run killed anywhere resumes from
the last committed page; re-reading a page is harmless (upserts keyed on the CRM's id). Bulk
pages (an export file's, `GROUP_MIN_PAGE` records and more) commit a few at a time in one
transaction (`_CommitGroup`): still each with its cursor, so a crash re-reads the group.

With `concurrency` above 1 the object types are pulled at once, one thread each, sharing the
adapter (and its one rate limiter). Every store access goes through one lock per store, so
page commits never interleave (a contact page's company stubs and the company page that
fills them in cannot race, on SQLite or PostgreSQL) and each page still commits with its
cursor. Each type's next page is fetched while its current one is committed (`read_ahead`).
The first error stops the other types after the page they are committing; what they
committed stays, and that first error is raised.

Field definitions are cached in the store and re-read when older than a day (or with --full),
so a run with nothing changed costs one call per object type. Removals the CRM can only show
through a listing that costs calls (HubSpot's archived records, Pipedrive's recents and
archived deals) are scanned after increments, at most every `removal_scan_interval` (the
setting CRMSYNC_SYNC_REMOVAL_SCAN_MINUTES, default an hour; 0: every run). A full pass (the
first run, --full) scans nothing: the commit that completes it tombstones the records it did
not list (deleted, archived or purged) as `missing`, and it counts as a scan made when it
began — removals during the pass are the next scan's, due an interval after that start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from crmsync.adapters.records import FieldDefinition, PullCursor, read_ahead
from crmsync.names import OBJECT_TYPES, ObjectType
from crmsync.store.bulk_load import bulk_load
from crmsync.store.records import PageOutcome, RecordRow, RemovalRow
from crmsync.sync.mapping import MappingRules, pack_page, prepare_page
from crmsync.sync.reconcile import resolver

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from crmsync.adapters.records import RecordAdapter, RecordPage
    from crmsync.store import Store
    from crmsync.store.records import RecordStore, Resolver, StoredCursor
    from crmsync.sync.merge import ConflictPolicy

log = logging.getLogger(__name__)

FIELD_DEFINITIONS_MAX_AGE = dt.timedelta(hours=24)
# Bulk pages (an export file's) commit a group at a time (`_CommitGroup`).
GROUP_MIN_PAGE = 2_000  # records on a page that make it a bulk page
GROUP_RECORDS = 20_000
GROUP_SECONDS = 5.0
STORED_VERSIONS_WAIT = 1.0  # seconds an adapter's thread waits for the store (`_stored_versions`)
REMOVAL_SCAN_INTERVAL = dt.timedelta(hours=1)
FULL_PHASE = "full"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class TypeCounts:
    """What a pull did to one object type."""

    pulled: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    restored: int = 0
    associations: int = 0
    linked: int = 0  # matched to a local-only record (created on both sides)
    merged: int = 0  # merged with a local edit
    conflicts: int = 0
    pages: int = 0
    calls: int = 0

    def add(self, outcome: PageOutcome, page: RecordPage) -> None:
        self.pulled += page.size
        self.pages += 1
        self.calls += page.calls
        for name in PAGE_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(outcome, name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class PullResult:
    """One client's pull: counts per object type."""

    client: str
    crm: str
    full: bool = False
    dry_run: bool = False
    counts: dict[str, TypeCounts] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.counts.values())


# Every count a page commit reports is summed per object type (a new one is one field in
# `PageOutcome` and one here).
PAGE_COUNTERS = tuple(f.name for f in fields(PageOutcome) if f.name != "failed")
assert set(PAGE_COUNTERS) <= {f.name for f in fields(TypeCounts)}

OnPage = Callable[[str, "TypeCounts"], None]


def pull_client(
    client: str,
    crm: str,
    adapter: RecordAdapter,
    store: Store,
    rules: MappingRules,
    *,
    full: bool = False,
    dry_run: bool = False,
    object_types: Sequence[ObjectType] = OBJECT_TYPES,
    on_page: OnPage | None = None,
    removal_scan_interval: dt.timedelta = REMOVAL_SCAN_INTERVAL,
    clock: Callable[[], dt.datetime] = _utcnow,
    conflict_policy: ConflictPolicy | None = None,
    concurrency: int = 1,
) -> PullResult:
    """Pull every object type of one client's CRM into the store (see the module docstring).

    `dry_run` reads everything the same way and reports what would change, writing nothing
    (no records, no cursors). Raises `RemoteError` / `StoreError`; what was committed before
    stays committed and the next run resumes after it.

    With `conflict_policy` (two-way sync) records with a queued local edit are merged with
    what the CRM sent instead of overwritten (`reconcile.resolve`), and pulled contacts and
    companies that match a local-only record are linked to it.

    `concurrency` (CRMSYNC_SYNC_CONCURRENCY): object types pulled at once; `on_page` is then
    called from their threads, one call at a time.
    """
    result = PullResult(client, crm, full=full, dry_run=dry_run)
    records = store.records(client)
    for object_type in object_types:
        result.counts[object_type] = TypeCounts()
    progress = threading.Lock()
    stop = threading.Event()

    def report(object_type: str, counts: TypeCounts) -> None:
        if on_page is not None:
            with progress:
                on_page(object_type, counts)

    def pull(object_type: ObjectType) -> None:
        _pull_type(records, adapter, crm=crm, object_type=object_type, rules=rules,
                   counts=result.counts[object_type], full=full, dry_run=dry_run,
                   on_page=report, now=clock(), removal_scan_interval=removal_scan_interval,
                   resolve=(resolver(object_type, rules, conflict_policy)
                            if conflict_policy is not None else None),
                   store_lock=store_lock(store), stop=stop, overlap=concurrency > 1)

    # What the store holds, for the adapter to skip reading it again (`RecordAdapter.pull`);
    # taken off again after, so the adapter holds no store between runs.
    adapter.stored_versions = functools.partial(  # type: ignore[attr-defined]
        _stored_versions, records, crm, store_lock(store))
    try:
        _pull_types(pull, object_types, concurrency, progress, stop)
    finally:
        adapter.stored_versions = None  # type: ignore[attr-defined]
    return result


def _pull_types(pull: Callable[[ObjectType], None], object_types: Sequence[ObjectType],
                concurrency: int, progress: threading.Lock, stop: threading.Event) -> None:
    """Each type's pull, `concurrency` at a time; the first error is raised once every type
    has stopped."""
    workers = min(max(1, concurrency), len(object_types))
    if workers <= 1:
        for object_type in object_types:
            pull(object_type)
        return
    errors: list[BaseException] = []

    def guarded(object_type: ObjectType) -> None:
        try:
            pull(object_type)
        except BaseException as exc:
            with progress:
                errors.append(exc)  # in the order they happened: the first is raised
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crmsync-pull") as pool:
        for future in [pool.submit(guarded, t) for t in object_types]:
            future.exception()  # wait for every type: none is left writing when we return
    if errors:
        raise errors[0]


_STORE_LOCKS: weakref.WeakKeyDictionary[Store, threading.RLock] = weakref.WeakKeyDictionary()
_STORE_LOCKS_GUARD = threading.Lock()


def store_lock(store: Store) -> threading.RLock:
    """The lock every pull thread takes to use `store` (one per store, in this process)."""
    with _STORE_LOCKS_GUARD:
        lock = _STORE_LOCKS.get(store)
        if lock is None:
            lock = _STORE_LOCKS[store] = threading.RLock()
        return lock


def _pull_type(records: RecordStore, adapter: RecordAdapter, *, crm: str,
               object_type: ObjectType, rules: MappingRules, counts: TypeCounts, full: bool,
               dry_run: bool, on_page: OnPage | None, now: dt.datetime,
               removal_scan_interval: dt.timedelta, resolve: Resolver | None = None,
               store_lock: AbstractContextManager[Any], stop: threading.Event,
               overlap: bool = False) -> None:
    definitions = _field_definitions(records, adapter, crm, object_type, counts,
                                     refresh=full, dry_run=dry_run, now=now,
                                     store_lock=store_lock)
    with store_lock:
        stored = None if full else records.cursor(crm, object_type)
    cursor = PullCursor.from_json(stored.cursor) if stored is not None else None
    phase = cursor.phase if cursor is not None else FULL_PHASE
    scan = _removal_scan_due(stored, phase, now, removal_scan_interval)
    # A full pass that completes stands for a removal scan made when it began (this run's
    # start, for a pass beginning now; a resumed one's start as its cursor recorded it).
    pass_began = now if cursor is None else cursor.pass_started_at
    adapter.page_preparer = functools.partial(pack_page, rules)  # type: ignore[attr-defined]
    pages: Iterator[RecordPage] = adapter.pull(object_type, cursor, definitions,
                                               scan_removals=scan)
    mapped: Iterator[_MappedPage] = _mapped(pages, rules)
    if overlap:  # the next page is read and mapped while this one commits
        mapped = read_ahead(mapped)
    group = _CommitGroup(records, store_lock, counts, crm=crm, dry_run=dry_run)
    with bulk_load(records.store, store_lock):  # indexes a first load defers: built at its end
        try:
            for page, rows, removals in mapped:
                in_full_pass = phase == FULL_PHASE
                pass_id = (page.cursor.pass_started_at.isoformat()
                           if in_full_pass and page.cursor.pass_started_at else None)
                pass_complete = in_full_pass and page.cursor.phase != FULL_PHASE
                scanned_at = (now if scan and page.done
                              else min(now, pass_began) if pass_complete and pass_began else None)
                if not dry_run and page.size >= GROUP_MIN_PAGE:
                    group.join()
                with store_lock:
                    if dry_run:
                        outcome = records.preview_page(crm, object_type, rows, removals)
                    else:
                        # The pass listed everything the CRM has: what it did not list is gone
                        # (tombstoned in the commit that ends the pass).
                        outcome = records.commit_page(
                            crm, object_type, rows, removals, page.cursor.to_json(),
                            pass_id=pass_id, pass_complete=pass_complete and pass_id is not None,
                            removals_scanned_at=scanned_at, resolve=resolve)
                    group.add(outcome, page)
                phase = page.cursor.phase
                if page.done or stop.is_set() or group.due():
                    group.commit()
                if on_page is not None:
                    on_page(object_type, counts)
                if page.done or stop.is_set():  # another type failed: stop after this page
                    break
            group.commit()
        except BaseException:
            group.abandon()
            raise
        finally:
            for closable in (mapped, pages):
                close = getattr(closable, "close", None)
                if close is not None:  # a generator reading on threads stops them
                    close()


def _stored_versions(records: RecordStore, crm: str, lock: threading.RLock,
                     object_type: str, remote_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """The adapter's `stored_versions` (`RecordAdapter.pull`), called from its thread. If
    the store stays locked (a group of bulk pages holds it from its first page to its
    commit, and may be waiting for the very page this thread is reading), it answers
    nothing: the adapter then reads those records whole, as without it."""
    if not lock.acquire(timeout=STORED_VERSIONS_WAIT):
        return {}
    try:
        return records.remote_versions(crm, object_type, remote_ids)
    finally:
        lock.release()


class _CommitGroup:
    """Pages committed to the store, one at a time or — bulk pages (`GROUP_MIN_PAGE` records
    and more: an export file's) — a group at a time in one transaction
    (`RecordStore.one_transaction`), up to `GROUP_RECORDS` records or `GROUP_SECONDS`. The
    store lock is held from a group's first page to its commit: no other thread's page can
    wait on the group's write locks while the group waits for the lock. A page counts (in
    the type's counts and the log) once it is committed; an error rolls the group back, and
    the next run reads its pages again."""

    def __init__(self, records: RecordStore, store_lock: AbstractContextManager[Any],
                 counts: TypeCounts, *, crm: str, dry_run: bool) -> None:
        self._records = records
        self._crm = crm
        self._done = "read" if dry_run else "committed"
        self._store_lock = store_lock
        self._counts = counts
        self._held: contextlib.ExitStack | None = None
        self._pending: list[tuple[PageOutcome, RecordPage]] = []
        self._records_held = 0
        self._opened = 0.0

    def join(self) -> None:
        """The next pages go into the open group, or a new one."""
        if self._held is None:
            with contextlib.ExitStack() as opening:  # nothing stays held if opening fails
                opening.enter_context(self._store_lock)
                opening.enter_context(self._records.one_transaction(bulk=True))
                self._held = opening.pop_all()
            self._records_held, self._opened = 0, time.monotonic()

    def add(self, outcome: PageOutcome, page: RecordPage) -> None:
        self._pending.append((outcome, page))
        self._records_held += page.size
        if self._held is None:
            self._counted()

    def due(self) -> bool:
        return self._held is not None and (
            self._records_held >= GROUP_RECORDS
            or time.monotonic() - self._opened >= GROUP_SECONDS)

    def commit(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.close()
            self._counted()

    def abandon(self) -> None:
        """Roll the open group back (an error is on its way up)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._pending.clear()
            held.__exit__(*sys.exc_info())

    def _counted(self) -> None:
        for outcome, page in self._pending:
            self._counts.add(outcome, page)
            log.info("%s %s: page %d %s (%d records, %d tombstoned); %d pulled so far",
                     self._crm, page.object_type, self._counts.pages, self._done, page.size,
                     outcome.tombstoned, self._counts.pulled)
        self._pending.clear()


_MappedPage = tuple["RecordPage", Sequence[RecordRow], list[RemovalRow]]


def _mapped(pages: Iterator[RecordPage], rules: MappingRules) -> Iterator[_MappedPage]:
    """Each page with its store rows and removals: prepared by the adapter where it made
    the page (`RecordPage.prepared`), or here."""
    for page in pages:
        prepared = page.prepared if page.prepared is not None else prepare_page(rules, page)
        yield page, prepared.rows, prepared.removals


def _removal_scan_due(stored: StoredCursor | None, phase: str, now: dt.datetime,
                     interval: dt.timedelta) -> bool:
    """Whether this run's pull of a type also scans for removals (`scan_removals`).

    Never during a full pass: the commit that completes it tombstones what it did not list
    (`RecordStore.commit_page` with `pass_complete`), and on a first load the store has
    nothing to tombstone. After it, a scan is due `interval` after the last one (or after
    the full pass began).
    """
    if phase == FULL_PHASE or stored is None:
        return False
    scanned = stored.removals_scanned_at
    return scanned is None or now - scanned >= interval


def _field_definitions(records: RecordStore, adapter: RecordAdapter, crm: str,
                       object_type: ObjectType, counts: TypeCounts, *, refresh: bool,
                       dry_run: bool, now: dt.datetime,
                       store_lock: AbstractContextManager[Any]) -> list[FieldDefinition]:
    with store_lock:
        cached = None if refresh else records.field_definitions(crm, object_type)
    if cached is not None and now - cached[1] < FIELD_DEFINITIONS_MAX_AGE:
        return [FieldDefinition.from_json(d) for d in cached[0]]
    definitions = adapter.field_definitions(object_type)
    counts.calls += 1
    if not dry_run:
        with store_lock:
            records.save_field_definitions(crm, object_type,
                                           [d.to_json() for d in definitions])
    return definitions


def summary_counts(result: PullResult) -> dict[str, Any]:
    """Totals and per-type counts, JSON-ready."""
    names = [f.name for f in fields(TypeCounts)]
    return {
        "totals": {name: result.total(name) for name in names},
        "by_type": {t: c.as_dict() for t, c in result.counts.items()},
    }
