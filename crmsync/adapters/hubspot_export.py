"""A HubSpot full pass through the Exports API: past the list API's floor for big first loads.

The list API needs 10 calls per 1,000 records; an export needs a handful for any size:

    POST /crm/v3/exports/export/async          every property by internal name and value,
                                               the owned association's ids (1 call)
    GET  …/tasks/{taskId}/status               polled, spaced out more and more (a few calls)
    GET  <result URL>                          the file: CSV, or a zip of CSV partitions
                                               above a million rows (1 call)

The file is streamed to a temporary file, then read partition by partition through a `csv`
reader over a text wrapper, `PAGE_SIZE` records a page — memory stays flat whatever its size.
Loading is CPU-bound and Python runs one thread at a time, so a big file (`WORKER_MIN_BYTES`)
is parsed, made into records and prepared for the store by a worker process, one page ahead,
while this process commits: a load uses two cores.
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
import multiprocessing
import multiprocessing.reduction
import operator
import tempfile
import threading
import time
import zipfile
from typing import IO, TYPE_CHECKING, Any, cast
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
    record_from_raw,
    set_deal_status,
)
from crmsync.adapters.records import (
    Association,
    PullCursor,
    RecordPage,
    RemoteRecord,
    read_ahead,
)
from crmsync.errors import CrmsyncError, FatalRemoteError, RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from crmsync.adapters.hubspot_records import HubSpotRecords
    from crmsync.names import ObjectType

log = logging.getLogger(__name__)

PAGE_SIZE = 5_000  # records per page committed from the file (one transaction each)
# A file parsed in this process (smaller than `WORKER_MIN_BYTES`) goes in smaller pages: its
# record objects live here until stored, several types' at once (three 10k-record types
# loaded at once peaked at 176–200 MB of RSS with 5,000 a page, 130 MB with 1,000).
IN_PROCESS_PAGE_SIZE = 1_000
# The collector's thresholds while a file loads (`gc.set_threshold`): the young generation
# every 100,000 allocations instead of 700, and the older ones after 2 runs of the one below
# instead of 10, so cyclic garbage still reaches a full collection every few pages.
GC_THRESHOLDS = (100_000, 2, 2)
COLLECT_EVERY = 8  # pages committed between two full collections
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
        pages: Iterator[RecordPage] | None = None
        if _in_worker(adapter, object_type, file):
            pages = _pages_from_worker(adapter, object_type, cursor, started=started,
                                       state=state, file=file)
        if pages is None:
            pages = read_ahead(_pages(adapter, object_type, cursor, started=started,
                                      state=state, file=file))
        try:
            for number, page in enumerate(pages, 1):
                yield page
                if number % COLLECT_EVERY == 0:  # the cycles commits leave (`_fewer_collections`)
                    gc.collect()
        finally:
            cast("Generator[RecordPage, None, None]", pages).close()
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
    kept walking them and took a fifth of the load's CPU. A page's commit leaves some cyclic
    garbage (the database driver's), which the loader collects every `COLLECT_EVERY` pages:
    without that RSS grew with the load (~250 MB at a million rows on PostgreSQL), and a
    collection every page walked the pages in flight each time (a tenth of the CPU). What the
    process holds when the load starts is frozen (`gc.freeze`), so collections walk only what
    the load made. Process-wide: the first of concurrent loads sets it and the last one
    restores it."""
    global _gc_users, _gc_threshold  # noqa: PLW0603 - one process-wide setting
    with _gc_lock:
        if _gc_users == 0:
            _gc_threshold = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
            gc.freeze()  # what exists now is never garbage of the load: not walked again
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_threshold)
                gc.unfreeze()


# -- parsing the file -----------------------------------------------------------------------

def _partitions(file: IO[bytes]) -> Generator[IO[bytes], None, None]:
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


def _parsed(object_type: ObjectType, file: IO[bytes], state: dict[str, Any], page_size: int
            ) -> Iterator[tuple[dict[str, Any], _Layout, list[list[str]]]]:
    """The file's rows from `state`'s partition and row on, `page_size` a page, each page
    with the state a cursor saved after it resumes from, and its partition's layout."""
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
            if len(batch) == page_size:
                row = index + 1
                yield dict(state, partition=number, row=row), layout, batch
                batch = []
        if batch:
            yield dict(state, partition=number, row=row + len(batch)), layout, batch
        # The next partition from its first row (saved with the next page).
        state = dict(state, partition=number + 1, row=0)


def _pages(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor, *,
           started: dt.datetime, state: dict[str, Any], file: IO[bytes]
           ) -> Iterator[RecordPage]:
    page_size = min(PAGE_SIZE, IN_PROCESS_PAGE_SIZE)
    for page_state, layout, rows in _parsed(object_type, file, state, page_size):
        found, merged = _links_and_merges(object_type, layout, rows)
        calls = _read_other_associations(adapter, object_type, found, layout.exported)
        records = _records(object_type, layout, rows, found)
        calls += adapter._deal_status(object_type, records)
        yield RecordPage(object_type, tuple(records), _merged(object_type, merged),
                         _cursor(cursor, started, page_state), calls=calls)


# -- parsing in a worker process ------------------------------------------------------------
# Loading is CPU-bound and Python runs one thread at a time: a big file is parsed, made into
# records and prepared for the store (`RecordAdapter.pull`'s `page_preparer`) by a worker
# process while this one commits, so a load uses two cores. Only what needs this process
# stays here: API calls (deals' pipelines are read before the worker starts; a file that
# lacks an owned association's column is loaded here, which reads them by batch/read).

WORKER_MIN_BYTES = 4 << 20  # smaller files load in this process (a worker takes ~0.3 s to start)


def _in_worker(adapter: HubSpotRecords, object_type: ObjectType, file: IO[bytes]) -> bool:
    if getattr(adapter, "page_preparer", None) is None:
        return False
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if size < getattr(adapter, "export_worker_min_bytes", WORKER_MIN_BYTES):
        return False
    header = _header(file)
    file.seek(0)
    if header is None:
        return False
    missing = set(OWNED_ASSOCIATIONS[object_type]) - _Layout(object_type, header).exported
    return not missing


def _header(file: IO[bytes]) -> list[str] | None:
    """The first partition's header row (then the file is read from its start again)."""
    with contextlib.closing(_partitions(file)) as parts:
        for part in parts:
            text = io.TextIOWrapper(part, encoding="utf-8", newline="")
            try:
                return next(csv.reader(text), None)
            finally:
                text.detach()  # the file stays open
    return None


def _pages_from_worker(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor,
                       *, started: dt.datetime, state: dict[str, Any], file: IO[bytes]
                       ) -> Generator[RecordPage, None, None] | None:
    """The pages of `file` parsed and prepared by a worker process, one page ahead (its
    pipe holds at most the page being sent): memory stays flat. An error in the worker is
    raised here; stopping early, or this process dying, stops the worker. None when no
    worker process can be started here (the file is then loaded in this process)."""
    outcomes, calls = ({}, 0) if object_type != "deals" else adapter._stage_outcomes_for(None)
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(
        target=_work, name=f"crmsync-export-{object_type}", daemon=True, args=(sender,),
        kwargs={"file": _InheritedFile(file.fileno()), "object_type": object_type,
                "state": state, "page_size": PAGE_SIZE, "outcomes": outcomes,
                "prepare": adapter.page_preparer})  # type: ignore[attr-defined]
    try:
        worker.start()
    except (OSError, RuntimeError) as exc:  # no processes (a sandboxed or frozen runtime)
        receiver.close()
        sender.close()
        log.warning("%s export loaded in this process: no worker process (%s)",
                    object_type, exc)
        return None
    sender.close()  # the worker's end: a worker that dies shows as EOF here
    return _received(adapter, object_type, cursor, started=started, worker=worker,
                     receiver=receiver, calls=calls)


def _received(adapter: HubSpotRecords, object_type: ObjectType, cursor: PullCursor, *,
              started: dt.datetime, worker: Any, receiver: Any, calls: int
              ) -> Generator[RecordPage, None, None]:
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                worker.join(timeout=5)
                raise CrmsyncError(
                    f"the process reading the {object_type} export stopped (exit code "
                    f"{worker.exitcode})", hint="Run the sync again: it resumes after the "
                    "last page stored (out of memory? see the system log)") from None
            if message is None:
                return
            if isinstance(message, BaseException):
                raise message
            page_state, count, prepared = message
            yield RecordPage(object_type, (), (), _cursor(cursor, started, page_state),
                             calls=calls, prepared=prepared, count=count)
            calls = 0
    finally:
        receiver.close()
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()
            worker.join()


class _InheritedFile:
    """An open file handed to a worker process as a file descriptor of its own: the file
    has no name (a process killed mid-load leaves nothing behind). The two descriptors share
    one read position, so this process leaves the file alone while the worker reads it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return _inherited_fd, (multiprocessing.reduction.DupFd(self.fd),)


def _inherited_fd(duplicate: Any) -> int:
    return int(duplicate.detach())


def _work(sender: Any, *, file: int, object_type: ObjectType, state: dict[str, Any],
          page_size: int, outcomes: dict[str, str | None],
          prepare: Callable[[RecordPage], Any]) -> None:
    """The worker process: each page of `file` (a descriptor), prepared, to `sender`."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    try:
        with open(file, "rb") as export:
            export.seek(0)
            for page_state, layout, rows in _parsed(object_type, export, state, page_size):
                found, merged = _links_and_merges(object_type, layout, rows)
                records = _records(object_type, layout, rows, found)
                if object_type == "deals":
                    set_deal_status(records, outcomes)
                page = RecordPage(object_type, tuple(records), _merged(object_type, merged),
                                  PullCursor())
                sender.send((page_state, len(records), prepare(page)))
        sender.send(None)
    except BrokenPipeError:
        return  # the loading process stopped (or died): nothing to tell
    except BaseException as exc:  # noqa: BLE001 - raised in the loading process
        with contextlib.suppress(Exception):
            try:
                sender.send(exc)
            except Exception:  # noqa: BLE001 - an error that does not pickle: its words
                sender.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


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


def _links_and_merges(object_type: ObjectType, layout: _Layout, rows: list[list[str]]
                      ) -> tuple[dict[str, dict[tuple[str, str], bool]], list[dict[str, Any]]]:
    """Each row's associations in the file (record id → {(type, id): primary}), and the
    rows that name records merged into them (as `_merged` reads them)."""
    found: dict[str, dict[tuple[str, str], bool]] = {}
    merged: list[dict[str, Any]] = []
    width, at, modified = layout.width, layout.merged, layout.modified
    for values in rows:
        record_id = values[0]
        links = found[record_id] = {}
        for i, to_type, primary in layout.links:
            if i < len(values) and values[i]:
                for to_id in values[i].split(";"):
                    if to_id.strip():
                        key = (to_type, to_id.strip())
                        links[key] = links.get(key, False) or primary
        if at < width and at < len(values) and values[at]:
            merged.append({"id": record_id, "properties": {
                MERGED: values[at],
                MODIFIED[object_type]: (values[modified] or None)
                if modified < width and modified < len(values) else None}})
    return found, merged


def _records(object_type: ObjectType, layout: _Layout, rows: list[list[str]],
             found: dict[str, dict[tuple[str, str], bool]]) -> list[RemoteRecord]:
    """The rows as records, with the associations in `found`; deals as
    `hubspot_records.record_from_raw` makes them (their fields are converted)."""
    out = []
    for values in rows:
        record_id = values[0]
        cells = layout.cells(values)
        associations = tuple(Association(cast("ObjectType", t), i, p)
                             for (t, i), p in sorted(found[record_id].items()))
        if object_type == "deals":
            out.append(record_from_raw(object_type, {"id": record_id, "properties": dict(
                zip(layout.all_names, layout.pick_all(cells), strict=True))}, associations))
            continue
        out.append(RemoteRecord(
            object_type, record_id, _time(cells[layout.modified]) or _EPOCH,
            dict(zip(layout.field_names, layout.pick_fields(cells), strict=True)),
            dict(zip(layout.property_names, layout.pick_properties(cells), strict=True)),
            associations))
    return out


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
