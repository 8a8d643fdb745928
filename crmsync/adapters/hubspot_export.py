"""A HubSpot full pass through the Exports API: past the list API's floor for big first loads.

The list API needs 10 calls per 1,000 records; an export needs a handful for any size:

    POST /crm/v3/exports/export/async          every property by internal name and value,
                                               the owned association's ids (1 call)
    GET  …/tasks/{taskId}/status               polled, spaced out more and more (a few calls)
    GET  <result URL>                          the file: CSV, or a zip of CSV partitions
                                               above a million rows (1 call)

The file is streamed to a temporary file, then read partition by partition through a `csv`
reader over a text wrapper, `PAGE_SIZE` records a page — memory stays flat whatever its size.
Each page's cursor carries the export's id, partition and next row, so a run killed mid-file
asks for the task's status again (a fresh result URL) and resumes at that row without a new
export while HubSpot still has the file. When the file is read, increments take over from
the export's request time (HubSpot's clock) less the overlap, so records changed while the
export ran are read again by search. Every owned association type rides in the file
(`associatedObjectType` is an array in the current spec); a type missing from the file's
columns is read by v4 `batch/read`, 1,000 ids a call.

Strategy (`initial_load`, from `--initial-load` / `CRMSYNC_SYNC_INITIAL_LOAD`): `list` never
exports; `export` always tries; `auto` exports when a one-result search says the type has
more than `EXPORT_MIN_RECORDS` records. Without the `crm.export` scope HubSpot answers 403:
the adapter remembers it and falls back to the list API, saying so in `pull_notes` (the run
summary). Unconfirmed: the export's column names for associations (see the sandbox's
`hubspot_exports.py`); how long HubSpot keeps the file (a resume that finds the task gone
starts a new export).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import io
import logging
import operator
import queue
import tempfile
import threading
import time
import zipfile
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from crmsync.adapters.http_policy import Reply, parse_body
from crmsync.adapters.hubspot_records import (
    _NOT_PROPERTIES,
    MERGED,
    MODIFIED,
    OVERLAP,
    OWNED_ASSOCIATIONS,
    SOURCES,
    _after_full,
    _merged,
    _time,
)
from crmsync.adapters.records import Association, PullCursor, RecordPage, RemoteRecord
from crmsync.errors import FatalRemoteError, RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from crmsync.adapters.hubspot_records import HubSpotRecords
    from crmsync.names import ObjectType

log = logging.getLogger(__name__)

PAGE_SIZE = 2_500  # records per page committed from the file (one transaction each)
READ_AHEAD = 1  # pages parsed ahead of the one being committed
# The collector's thresholds while a file loads (`gc.set_threshold`): the young generation
# every 100,000 allocations instead of 700, and the older ones after 2 runs of the one below
# instead of 10, so cyclic garbage still reaches a full collection every few pages.
GC_THRESHOLDS = (100_000, 2, 2)
EXPORT_MIN_RECORDS = 20_000  # `auto`: below this the list API's few calls cost less
POLL_FIRST, POLL_GROWTH, POLL_MAX = 2.0, 1.5, 30.0  # seconds between status polls
POLL_MAX_SECONDS = 6 * 3600.0  # give up waiting for one export after this long
CHUNK = 1 << 20  # download chunk
_TYPE_BY_LABEL = {"Contact": "contacts", "Company": "companies", "Deal": "deals"}
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)  # `hubspot_records._modified` without a time

STRATEGIES = ("export", "list", "auto")


def full_by_export(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor,
                   names: list[str]) -> Generator[RecordPage, None, bool]:
    """Pages of a full pass read from an export; returns False (nothing yielded) when the
    list API should read this pass instead (strategy, size, or a token without the scope)."""
    state = cursor.extra.get("export")
    if state is None and not _wants_export(adapter, object_type, cursor):
        return False
    started = cursor.pass_started_at or dt.datetime.now(dt.UTC)
    task = None
    if state is not None:
        task = _status(adapter, str(state["id"]), object_type, missing_ok=True)
        if task is None:
            _note(adapter, f"{object_type}: export {state['id']} is no longer available; "
                           "exporting again")
            state = None
    if state is None:
        task_id = _start(adapter, object_type, names)
        if task_id is None:
            return False
        state = {"id": task_id, "partition": 0, "row": 0}
        # Saved at once: a run killed while HubSpot prepares the file resumes with this task.
        yield RecordPage(object_type, (), (), _cursor(cursor, started, state), calls=1)
    task_id = str(state["id"])
    if task is None or task.get("status") != "COMPLETE":
        task = _wait(adapter, task_id, object_type)
    requested = _time(task.get("requestedAt")) or started
    state = dict(state, requested_at=requested.isoformat())
    with _loading(adapter), _download(adapter, str(task["result"]), object_type) as file, \
            _fewer_collections():
        for page in _read_ahead(_pages(adapter, object_type, cursor, started=started,
                                       state=state, file=file)):
            yield page
            gc.collect()  # each page leaves some cycles (see `_fewer_collections`)
    # Increments start from the export's request (HubSpot's clock) less the overlap: what
    # changed while it ran is read again. pass_started_at stays the pass's own marker.
    base = PullCursor(phase="full", pass_started_at=started,
                      extra={k: v for k, v in cursor.extra.items() if k != "export"})
    after = _after_full(base, None, started, "export")
    handover = min(started, requested) - OVERLAP
    extra = dict(after.extra, archived_since=handover.isoformat())
    yield RecordPage(object_type, (), (), PullCursor(
        phase=after.phase, high_water=handover, pass_started_at=started, extra=extra))
    _note(adapter, f"{object_type}: initial load via a HubSpot export ({task_id})")
    return True


# -- choosing -------------------------------------------------------------------------------

def _wants_export(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor) -> bool:
    strategy = getattr(adapter, "initial_load", "list")
    if strategy == "list" or cursor.token:  # a list pass under way carries on as it began
        return False
    if getattr(adapter, "_export_scope_missing", False):
        if strategy == "export":
            _note(adapter, f"{object_type}: initial load via the list API: the token lacks "
                           "the crm.export scope")
        return False
    if strategy == "export":
        return True
    total = _total(adapter, object_type)
    threshold = getattr(adapter, "export_min_records", EXPORT_MIN_RECORDS)
    return total > threshold


def _total(adapter: HubSpotRecords, object_type: ObjectType) -> int:
    """How many records the type has: one search for a single result (its `total`)."""
    from crmsync.adapters.hubspot import SEARCH_BUCKET

    body, _ = adapter._records_request(
        "POST", f"/crm/v3/objects/{object_type}/search",
        json={"limit": 1, "properties": ["hs_object_id"]},
        what=f"count {object_type}", bucket=SEARCH_BUCKET)
    return int(body.get("total") or 0)


# -- the export task ----------------------------------------------------------------------

def _start(adapter: HubSpotRecords, object_type: ObjectType, names: list[str]) -> str | None:
    """Request the export; None (and a note) when the token may not export."""
    owned = OWNED_ASSOCIATIONS[object_type]
    request: dict[str, Any] = {
        "exportType": "VIEW", "format": "CSV", "language": "EN",
        "exportName": f"crmsync-{object_type}", "objectType": object_type,
        "objectProperties": names, "exportInternalValuesOptions": ["NAMES", "VALUES"],
        # More than 1,000 associated records of one type per row would be cut without it.
        "overrideAssociatedObjectsPerDefinitionPerRowLimit": True,
    }
    if owned:
        request["associatedObjectType"] = list(owned)
    try:
        body, _ = adapter._records_request("POST", "/crm/v3/exports/export/async",
                                           json=request, what=f"export {object_type}")
    except FatalRemoteError as exc:
        if exc.status != 403:
            raise
        adapter._export_scope_missing = True  # type: ignore[attr-defined]
        _note(adapter, f"{object_type}: initial load via the list API: the token lacks the "
                       "crm.export scope (HubSpot answered 403)")
        return None
    return str(body["id"])


def _status(adapter: HubSpotRecords, task_id: str, object_type: ObjectType, *,
            missing_ok: bool = False) -> dict[str, Any] | None:
    try:
        body, _ = adapter._records_request(
            "GET", f"/crm/v3/exports/export/async/tasks/{task_id}/status",
            what=f"export {object_type} status")
    except FatalRemoteError as exc:
        if missing_ok and exc.status == 404:
            return None
        raise
    return body


def _wait(adapter: HubSpotRecords, task_id: str, object_type: ObjectType) -> dict[str, Any]:
    """Poll the task until COMPLETE, further apart each time, with the policy's sleeper."""
    delay, waited = POLL_FIRST, 0.0
    while True:
        task = _status(adapter, task_id, object_type)
        assert task is not None
        status = task.get("status")
        if status == "COMPLETE" and task.get("result"):
            return task
        if status == "CANCELED" or waited > POLL_MAX_SECONDS:
            raise RemoteError(adapter.crm, f"export {task_id} of {object_type} "
                              f"{'was canceled' if status == 'CANCELED' else 'did not finish'}",
                              hint="Run the sync again, or use --initial-load list")
        adapter.policy.sleep(delay)
        waited += delay
        delay = min(delay * POLL_GROWTH, POLL_MAX)


@contextlib.contextmanager
def _download(adapter: HubSpotRecords, url: str, object_type: ObjectType) -> Iterator[IO[bytes]]:
    """The result file, streamed to a temporary file (one request through the policy)."""
    session = adapter._records_session()
    # The token travels only to the configured base URL's origin: a result URL on another
    # host (a signed file link) gets no Authorization header.
    same_origin = urlsplit(url)[:2] == urlsplit(adapter._base_url)[:2]
    headers = None if same_origin else {"Authorization": None}
    timeouts = getattr(adapter, "_timeouts", None)
    with tempfile.TemporaryFile(prefix="crmsync-export-") as file:

        def send() -> Reply[bool]:
            file.seek(0)
            file.truncate()
            with session.get(url, headers=headers, stream=True, timeout=timeouts) as response:
                if response.status_code >= 400:
                    return Reply(response.status_code, response.headers,
                                 body=parse_body(response.content))
                for chunk in response.iter_content(CHUNK):
                    file.write(chunk)
                return Reply(response.status_code, response.headers, value=True)

        adapter.policy.call(send, what=f"download the {object_type} export")
        file.seek(0)
        yield cast("IO[bytes]", file)


# -- reading the file -----------------------------------------------------------------------

_Item = TypeVar("_Item")


def _read_ahead(items: Iterator[_Item], depth: int = READ_AHEAD) -> Iterator[_Item]:
    """`items` in order, drawn by a thread up to `depth` ahead of the consumer: the next page
    is parsed while the caller commits this one (the database drivers release the GIL while
    the database works). Memory stays flat: at most `depth` pages wait. An error in `items`
    is raised here, in order; stopping early (an error downstream, a SIGKILL aside) stops the
    thread after the page it is on."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ready.put((True, item))
                if stop.is_set():
                    return
            ready.put((True, end))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            ready.put((False, exc))

    thread = threading.Thread(target=produce, name="crmsync-export-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            if item is end:
                return
            yield item
    finally:
        stop.set()
        # Unblock a producer waiting to put: after this it puts at most once more, into the
        # room this made, and sees `stop`.
        with contextlib.suppress(queue.Empty):
            while True:
                ready.get_nowait()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


# One export file is downloaded and loaded at a time in a process: loading is CPU-bound
# (one core under the GIL), so object types loading side by side gain nothing and would each
# hold pages in memory at once.
_load_lock = threading.Lock()


@contextlib.contextmanager
def _loading(adapter: HubSpotRecords) -> Iterator[None]:
    """Holds the load lock; adds the time held (download, parse, store: the local part of a
    first load by export) to `adapter.export_load_seconds`."""
    with _load_lock:
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = getattr(adapter, "export_load_seconds", 0.0)
            adapter.export_load_seconds = (  # type: ignore[attr-defined]
                spent + time.perf_counter() - started)


_gc_lock = threading.Lock()
_gc_users = 0
_gc_threshold: tuple[int, ...] = ()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector run far less often while a file is loaded.

    A page is tens of thousands of fresh containers (rows, dicts, tuples) freed by reference
    counting, none in a cycle; at Python's default threshold (700 allocations) the collector
    kept walking them and took a fifth of the load's CPU. Committing a page leaves some
    cyclic garbage, so the loader collects once a page instead. Process-wide: the first of
    concurrent loads sets it and the last one restores it."""
    global _gc_users, _gc_threshold  # noqa: PLW0603 - one process-wide setting
    with _gc_lock:
        if _gc_users == 0:
            _gc_threshold = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_threshold)


# -- parsing the file -----------------------------------------------------------------------

def _partitions(file: IO[bytes]) -> Iterator[IO[bytes]]:
    """The file's CSV partitions in order: the members of a zip, or the file itself."""
    if file.read(4) != b"PK\x03\x04":
        file.seek(0)
        yield file
        return
    file.seek(0)
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                yield member


def _pages(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor, *,
           started: dt.datetime, state: dict[str, Any], file: IO[bytes]
           ) -> Iterator[RecordPage]:
    first_partition, first_row = int(state["partition"]), int(state["row"])
    for number, part in enumerate(_partitions(file)):
        if number < first_partition:
            continue
        reader = csv.reader(io.TextIOWrapper(part, encoding="utf-8", newline=""))
        header = next(reader, None)
        if header is None:
            continue
        layout = _Layout(object_type, header)
        batch: list[list[str]] = []
        row = first_row if number == first_partition else 0
        for index, values in enumerate(reader):
            if index < row or not values:  # before the resume point, or a blank line
                continue
            batch.append(values)
            if len(batch) == PAGE_SIZE:
                row = index + 1
                yield _page(adapter, object_type, cursor, started=started,
                            state=dict(state, partition=number, row=row), layout=layout,
                            rows=batch)
                batch = []
        if batch:
            yield _page(adapter, object_type, cursor, started=started,
                        state=dict(state, partition=number, row=row + len(batch)),
                        layout=layout, rows=batch)
        # The next partition from its first row (saved with the next page).
        state = dict(state, partition=number + 1, row=0)


class _Layout:
    """Where each column of one partition's header goes, worked out once per partition so a
    row becomes a record by a few C-level picks instead of a dictionary lookup per cell.

    A row's `cells` are its values with "" as None, padded or cut to the header's width,
    plus one None at index `width` that stands for a column the file does not have.
    """

    def __init__(self, object_type: ObjectType, header: list[str]) -> None:
        self.width = width = len(header)
        props: dict[str, int] = {}
        self.links: list[tuple[int, str, bool]] = []
        for index, name in enumerate(header):
            if index == 0:
                continue  # hs_object_id / Record ID
            if name.startswith("Associated ") and " IDs" in name:
                label = name.removeprefix("Associated ").split(" IDs")[0]
                to_type = _TYPE_BY_LABEL.get(label)
                if to_type is not None:
                    self.links.append((index, to_type, name.endswith("(Primary)")))
                continue
            props.pop(name, None)  # a repeated name: its last column, as a dict would keep
            props[name] = index
        self.exported = {to_type for _, to_type, _ in self.links}
        # Every property (what `HubSpotRecords._record` reads from a raw record) ...
        self.all_names = list(props)
        self.pick_all = _picker(list(props.values()))
        # ... and, split as `_record` splits it, the canonical fields and the other properties.
        sources = SOURCES[object_type]
        used = set(sources.values())
        self.field_names = list(sources)
        self.pick_fields = _picker([props.get(source, width) for source in sources.values()])
        others = {n: i for n, i in props.items() if n not in used and n not in _NOT_PROPERTIES}
        self.property_names = list(others)
        self.pick_properties = _picker(list(others.values()))
        self.modified = props.get(MODIFIED[object_type], width)
        self.merged = props.get(MERGED, width)

    def cells(self, values: list[str]) -> list[str | None]:
        cells: list[str | None] = [v or None for v in values]
        if len(cells) != self.width:
            cells = (cells + [None] * self.width)[:self.width]
        cells.append(None)
        return cells


def _picker(indexes: list[int]) -> Callable[[list[str | None]], tuple[str | None, ...]]:
    """`operator.itemgetter` that always returns a tuple."""
    if len(indexes) > 1:
        return operator.itemgetter(*indexes)
    if len(indexes) == 1:
        only = indexes[0]
        return lambda cells: (cells[only],)
    return lambda _cells: ()


def _page(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor, *,
          started: dt.datetime, state: dict[str, Any], layout: _Layout,
          rows: list[list[str]]) -> RecordPage:
    found: dict[str, dict[tuple[str, str], bool]] = {}
    merged: list[dict[str, Any]] = []
    records: list[tuple[str, list[str | None]]] = []
    for values in rows:
        record_id = values[0]
        cells = layout.cells(values)
        records.append((record_id, cells))
        links = found[record_id] = {}
        for i, to_type, primary in layout.links:
            if i < len(values) and values[i]:
                for to_id in values[i].split(";"):
                    if to_id.strip():
                        key = (to_type, to_id.strip())
                        links[key] = links.get(key, False) or primary
        if cells[layout.merged] is not None:
            merged.append({"id": record_id, "properties": {
                MERGED: cells[layout.merged], MODIFIED[object_type]: cells[layout.modified]}})
    calls = _read_other_associations(adapter, object_type, found, layout.exported)
    out = [_record(adapter, object_type, layout, record_id=record_id, cells=cells,
                   associations=tuple(Association(cast("ObjectType", t), i, p)
                                      for (t, i), p in sorted(found[record_id].items())))
           for record_id, cells in records]
    calls += adapter._deal_status(object_type, out)
    return RecordPage(object_type, tuple(out), _merged(object_type, merged),
                      _cursor(cursor, started, state), calls=calls)


def _record(adapter: HubSpotRecords, object_type: ObjectType, layout: _Layout, *,
            record_id: str, cells: list[str | None],
            associations: tuple[Association, ...]) -> RemoteRecord:
    """The record `HubSpotRecords._record` makes of this row (deals, whose fields it
    converts, go through it)."""
    if object_type == "deals":
        return adapter._record(object_type, {"id": record_id, "properties": dict(
            zip(layout.all_names, layout.pick_all(cells), strict=True))}, associations)
    return RemoteRecord(
        object_type, record_id, _time(cells[layout.modified]) or _EPOCH,
        dict(zip(layout.field_names, layout.pick_fields(cells), strict=True)),
        dict(zip(layout.property_names, layout.pick_properties(cells), strict=True)),
        associations)


def _read_other_associations(adapter: HubSpotRecords, object_type: ObjectType,
                             found: dict[str, dict[tuple[str, str], bool]],
                             exported: set[str]) -> int:
    """Owned associations the file did not carry, by v4 batch/read; returns the calls."""
    others = [t for t in OWNED_ASSOCIATIONS[object_type] if t not in exported]
    return adapter._add_associations(object_type, others, found)


def _cursor(cursor: PullCursor, started: dt.datetime, state: dict[str, Any]) -> PullCursor:
    return PullCursor(phase="full", pass_started_at=started,
                      extra=dict(cursor.extra, export=dict(state)))


def _note(adapter: HubSpotRecords, text: str) -> None:
    """A line for the run summary (`pull_notes`, read and cleared by the sync run)."""
    notes: list[str] | None = getattr(adapter, "pull_notes", None)
    if notes is None:
        notes = []
        adapter.pull_notes = notes  # type: ignore[attr-defined]
    log.info("%s", text)
    notes.append(text)


__all__ = ["EXPORT_MIN_RECORDS", "PAGE_SIZE", "STRATEGIES", "full_by_export"]
