"""The record interface: contacts, companies and deals, page by page, in domain terms.

Beside the pipeline interface (`base.CrmAdapter`), so pipeline fakes need not grow. Both CRM
adapters implement `RecordAdapter`; the sync engine speaks only these types.

Shapes, whatever the CRM:
- ids are strings; times are timezone-aware UTC `datetime`s;
- a record's `fields` hold the canonical fields of its object type (`CANONICAL_FIELDS`), the
  ones reports and matching need; `properties` hold every other property under its *name*
  (HubSpot's internal name; a Pipedrive custom field under the name derived from its label,
  never its 40-character hash key), option values as their labels;
- associations travel with the record that owns them (contact→company, deal→contact,
  deal→company), with HubSpot's primary flag;
- a `RecordPage` carries the `PullCursor` to resume from once the page is committed: the
  engine commits the page's rows and that cursor in one transaction, so a crash between pages
  re-reads at most one page.

What the adapters add (`hubspot_records.py`, `pipedrive_records.py`):
- `PullCursor.phase` is one of "full", "incremental" and, mid-way through a removal scan,
  "archived" (HubSpot) or "recents" (Pipedrive); `extra` holds the adapter's query state. An
  engine only stores cursors and hands them back.
- Pulls repeat a little at the edges, never miss: the first increment after a full pass
  re-reads what changed from shortly before the pass began, and removals may be reported
  again (a merge every time its survivor changes). The engine's writes must be idempotent,
  and a removal of an id it never stored is not an error.
- `TokenGuard`, `ensure_last_done` and `interleave` below are shared by both adapters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from crmsync.errors import RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping, Sequence

    from crmsync.names import ObjectType

T = TypeVar("T")

# The fields each object type carries as typed columns in the store.
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "first_name", "last_name", "phone", "owner_id"),
    "companies": ("name", "domain", "owner_id"),
    # pipeline_id / stage_id are the CRM's ids; the engine maps them to blueprint keys.
    "deals": ("name", "amount", "currency", "pipeline_id", "stage_id", "status", "close_date",
              "closed_at", "stage_changed_at", "owner_id", "created_at"),
}

RemovalReason = Literal["archived", "deleted", "merged"]
FieldType = Literal["text", "number", "date", "datetime", "enumeration", "bool", "monetary",
                    "other"]


@dataclass(frozen=True)
class FieldOption:
    value: str  # what the CRM stores (HubSpot option value; Pipedrive option id as text)
    label: str


@dataclass(frozen=True)
class FieldDefinition:
    """One property of an object type, as the CRM defines it."""

    name: str  # the name records carry it under (see the module docstring)
    label: str
    type: FieldType
    remote_key: str  # how the CRM keys it (HubSpot: the name; Pipedrive: the field key/hash)
    custom: bool = False
    options: tuple[FieldOption, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "type": self.type,
                "remote_key": self.remote_key, "custom": self.custom,
                "options": [[o.value, o.label] for o in self.options]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldDefinition:
        return cls(name=data["name"], label=data["label"], type=data["type"],
                   remote_key=data["remote_key"], custom=bool(data.get("custom")),
                   options=tuple(FieldOption(str(v), str(lbl))
                                 for v, lbl in data.get("options", ())))


@dataclass(frozen=True)
class Association:
    to_type: ObjectType
    to_id: str
    primary: bool = False


@dataclass(frozen=True)
class RemoteRecord:
    object_type: ObjectType
    id: str
    modified_at: dt.datetime
    fields: Mapping[str, Any]
    properties: Mapping[str, Any]
    # None: this page did not read the record's associations (keep what the store has);
    # a tuple (possibly empty): its associations of the owning side, complete.
    associations: tuple[Association, ...] | None = None


@dataclass(frozen=True)
class RemoteRemoval:
    """A record gone from the CRM: archived or deleted, or merged into another record."""

    object_type: ObjectType
    id: str
    reason: RemovalReason
    removed_at: dt.datetime | None = None
    merged_into: str | None = None


@dataclass(frozen=True)
class Partition:
    """One slice of a full pass read concurrently with others: `token` is the page token to
    read next, `end` the first id past the slice (None: no end). The adapter defines both."""

    token: str
    end: str | None = None


@dataclass(frozen=True)
class PullCursor:
    """Where one object type's pull stands. JSON-serialisable (`to_json` / `from_json`).

    `phase` and `token` belong to the adapter (which listing it is in, the CRM's own page
    token). `high_water` / `high_water_id` are the newest (modified time, id) committed so far:
    the next increment starts there. `pass_started_at` is when the current full pass began: a
    full pass that ends hands over to increments from that moment (minus the adapter's
    overlap), so nothing changed during a long first load is missed. `partitions`: the slices
    of a full pass read concurrently that are not finished yet, each where it stands (empty
    when the pass is read as one sequence); cursors written before partitions existed have
    none and resume as they were.
    """

    phase: str = "full"
    token: str | None = None
    high_water: dt.datetime | None = None
    high_water_id: str | None = None
    pass_started_at: dt.datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    partitions: tuple[Partition, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "phase": self.phase, "token": self.token,
            "high_water": self.high_water.isoformat() if self.high_water else None,
            "high_water_id": self.high_water_id,
            "pass_started_at": self.pass_started_at.isoformat() if self.pass_started_at
            else None,
            "extra": dict(self.extra),
        }
        if self.partitions:
            data["partitions"] = [[p.token, p.end] for p in self.partitions]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullCursor:
        def when(value: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None

        return cls(phase=data.get("phase", "full"), token=data.get("token"),
                   high_water=when(data.get("high_water")),
                   high_water_id=data.get("high_water_id"),
                   pass_started_at=when(data.get("pass_started_at")),
                   extra=data.get("extra") or {},
                   partitions=tuple(Partition(str(token), None if end is None else str(end))
                                    for token, end in data.get("partitions") or ()))


@dataclass(frozen=True)
class RecordPage:
    object_type: ObjectType
    records: tuple[RemoteRecord, ...]
    removals: tuple[RemoteRemoval, ...]
    cursor: PullCursor  # resume from here once this page is committed
    done: bool = False  # the pull has caught up: `cursor` is where the next run starts
    calls: int = 0  # API requests this page cost (for the run summary and the bench)
    # What the engine's `page_preparer` made of the records, where the adapter ran it (in a
    # worker process, beside the parsing); `records` is then empty.
    prepared: Any = None
    count: int | None = None  # records on the page when they travel only as `prepared`

    @property
    def size(self) -> int:
        """How many records the page holds."""
        return len(self.records) if self.count is None else self.count


@runtime_checkable
class RecordAdapter(Protocol):
    """Contacts, companies and deals of one CRM account."""

    crm: str

    def field_definitions(self, object_type: ObjectType) -> list[FieldDefinition]:
        """Every property of the object type (one or two calls; the engine caches them)."""
        ...

    def pull(
        self,
        object_type: ObjectType,
        cursor: PullCursor | None,
        fields: Sequence[FieldDefinition],
        *,
        scan_removals: bool = False,
    ) -> Iterator[RecordPage]:
        """Pages of records changed since `cursor` (everything when None), oldest first.

        A generator: nothing is collected. `fields` are the definitions the engine holds
        (what to request, how to name custom fields). With `scan_removals` an increment also
        reports records archived or deleted since the last scan where the CRM can only tell
        by a listing that costs calls (HubSpot's archived list, Pipedrive's recents and
        archived deals); a full pass (cursor None or phase "full") never scans — the engine
        tombstones what it did not list — and the first scan after it covers the time since
        it began. Removals the CRM reports for free (merged ids on a survivor, Pipedrive's
        deleted status) always come. The last page has `done` set. A paginator that sees the
        same page token twice raises `RemoteError`.

        The engine may set `page_preparer` on the adapter first: a picklable function of a
        page that makes its store rows. An adapter that parses pages in a worker process (a
        HubSpot export file) runs it there and yields its answer as `RecordPage.prepared`.
        It may also set `stored_versions(object_type, remote_ids)`: remote id → the
        modification time of the version the store holds. An adapter that would spend calls
        on a record it reads again (HubSpot's association reads for a search's records) may
        leave out those whose time is the stored one: the store has them as they are.
        """
        ...


class TokenGuard:
    """Remembers the page tokens one listing has followed; a token seen twice is an error.

    A CRM that hands back a token it gave before would otherwise page forever
    (singer-sdk's paginator stops the same way).
    """

    def __init__(self, crm: str, what: str) -> None:
        self._crm = crm
        self._what = what
        self._seen: set[str] = set()

    def check(self, token: str | None) -> None:
        if token is None:
            return
        if token in self._seen:
            raise RemoteError(
                self._crm, f"{self._what}: the CRM returned the page token {token[:60]!r} a "
                "second time; stopped instead of reading the same pages again")
        self._seen.add(token)

    def reset(self) -> None:
        """A new listing (another query) starts: its tokens are its own."""
        self._seen.clear()


def ensure_last_done(pages: Iterator[RecordPage]) -> Iterator[RecordPage]:
    """Yield `pages` with `done` set on the last one (one page of look-ahead)."""
    pending: RecordPage | None = None
    try:
        for page in pages:
            if pending is not None:
                yield pending
            pending = page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:  # stopped early: a listing reading on threads stops them
            close()
    if pending is not None:
        yield dataclasses.replace(pending, done=True)


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items` in order, drawn one ahead on a thread of its own: the next one is made while
    the consumer works on this one. Stopping early (closing this generator) stops the
    thread after the item it is on."""
    ahead = interleave([lambda: items], 1, buffer=1)
    try:
        for _, item in ahead:
            yield item
    finally:
        ahead.close()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_FINISHED = object()
_PUT_POLL_SECONDS = 0.1  # how soon a reader blocked on a full buffer notices a stop


def interleave(sources: Sequence[Callable[[], Iterator[T]]], workers: int, *,
               buffer: int | None = None) -> Generator[tuple[int, T], None, None]:
    """The items of several sources, read on up to `workers` threads, as they come.

    Yields `(index of the source, item)` in the order items are ready; a source's own items
    keep their order. At most `buffer` items (default `2 * workers`) wait to be taken, so the
    readers never run far ahead of the consumer (memory stays flat). The first error a source
    raises is raised here, after the items it yielded before; then, as when the consumer
    stops early (closing this generator), the readers stop at their next item and are joined.
    """
    count = min(max(1, workers), len(sources))
    ready: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=buffer or 2 * count)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(sources)):
        todo.put(index)
    stop = threading.Event()

    def put(entry: tuple[int, object]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=_PUT_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        while not stop.is_set():
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            items: Iterator[T] | None = None
            try:
                items = sources[index]()
                for item in items:
                    if not put((index, item)):
                        return
            except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, raised there
                put((index, _Failed(exc)))
                return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            if not put((index, _FINISHED)):
                return

    threads = [threading.Thread(target=read, name=f"crmsync-read-{n}", daemon=True)
               for n in range(count)]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(sources):
            index, entry = ready.get()
            if entry is _FINISHED:
                finished += 1
            elif isinstance(entry, _Failed):
                raise entry.error
            else:
                yield index, entry  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join()


# --- the write side (two-way sync) --------------------------------------------------------------

WriteOp = Literal["create", "update", "archive"]


@dataclass(frozen=True)
class RecordWrite:
    """One record to write to the CRM, in the same terms a pull returns.

    `key` is the caller's own identity for the record (the store's id, as text): results come
    back keyed by it. `fields` are canonical fields (`CANONICAL_FIELDS`; deals' `pipeline_id`
    and `stage_id` already the CRM's ids, `status` open/won/lost) and `properties` other
    properties by name (custom ones by the name a pull gives them; option values as labels) —
    only what should change, for an update. `associations`: the owning side's complete set
    after the write, or None to leave them alone.
    """

    object_type: ObjectType
    op: WriteOp
    key: str
    remote_id: str | None = None  # None only for create
    fields: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    associations: tuple[Association, ...] | None = None


@dataclass(frozen=True)
class WriteResult:
    """What became of one `RecordWrite`: the CRM's id and modification time, or its error."""

    key: str
    ok: bool
    remote_id: str | None = None
    modified_at: dt.datetime | None = None
    error: str | None = None  # the CRM's own message, for the failure list
    # The record as the CRM holds it after the write, when the answer carried it (becomes the
    # new merge base); None when the caller must read it back.
    record: RemoteRecord | None = None


@runtime_checkable
class RecordWriter(Protocol):
    """Writes records to one CRM account; both CRM adapters implement it."""

    crm: str

    def write(self, object_type: ObjectType, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Apply the writes, batched as the CRM allows (HubSpot batch endpoints of 100 with
        per-record results from a 207; Pipedrive one request per record, paced); one result
        per write, in order. A failure of one record is its result, never an exception; only
        a failure of the whole call (auth, unreachable after retries) raises `RemoteError`.

        Creating is idempotent where the CRM lets us make it so: contacts are upserted by
        email on HubSpot (batch upsert, `idProperty=email`); elsewhere the writer looks for
        the record (contact by email, company by domain) before creating, so a create whose
        answer was lost is not repeated.
        """
        ...

    def read(self, object_type: ObjectType, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        """The records as the CRM holds them now (batch read where the CRM has one)."""
        ...


@runtime_checkable
class PullAwareWriter(Protocol):
    """A writer whose creates get cheaper when it knows how far the store's pull reaches.

    Pipedrive has no upsert: a create must first look for the record it would make. What the
    pull read up to its cursor is in the store already (and pulled contacts and companies are
    linked to local records that match them, creates whose answer was lost included), so only
    what changed in the CRM since needs looking at — one listing instead of a search per
    record.
    """

    def after_pull(self, pulled: Mapping[ObjectType, PullCursor | None], *,
                   seeding: bool = False) -> RecordWriter:
        """The writer for one push that follows the pull that left `pulled` (the store's
        cursor per object type; None: never pulled). `seeding`: the push also creates
        records the store never queued (`sync --to`), whose creates are not marked in
        flight, so the next pull cannot link them by name."""
        ...
