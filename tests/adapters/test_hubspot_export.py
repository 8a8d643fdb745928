"""The HubSpot full pass through the Exports API, end to end against the sandbox.

The sandbox runs on a manual clock that only the adapter's sleeper moves, so an export's
processing time passes without any real waiting; partitions are small so one file is a zip
of several.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters import hubspot_export
from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.hubspot_records import OVERLAP
from crmsync.adapters.records import PullCursor, RecordPage, read_ahead
from crmsync.errors import CrmsyncError
from crmsync.sandbox import ManualClock, start_sandbox
from crmsync.sandbox.clock import to_datetime
from tests.adapters.record_sandbox import truth

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.sandbox import SandboxServer

TOKEN = "export-test-token"
DENIED = "export-denied-token"


@pytest.fixture
def box() -> Iterator[tuple[SandboxServer, ManualClock]]:
    clock = ManualClock()
    server = start_sandbox(clock=clock, config={
        "hubspot_export_partition_rows": 70, "hubspot_export_base_seconds": 30,
        "hubspot_export_seconds_per_1000": 100, "hubspot_export_denied_tokens": [DENIED]})
    server.app.seed("hubspot", token=TOKEN, contacts=230, companies=40, deals=60, seed=3)
    server.app.seed("hubspot", token=DENIED, contacts=30, companies=5, deals=5, seed=4)
    try:
        yield server, clock
    finally:
        server.stop()


def adapter_for(server: SandboxServer, clock: ManualClock, token: str = TOKEN,
                strategy: str = "export") -> HubSpotAdapter:
    adapter = HubSpotAdapter(server.base_url, token, sleep=clock.advance, clock=clock,
                             max_retries=0)
    adapter.initial_load = strategy
    return adapter


def pull(adapter: HubSpotAdapter, object_type: Any,
         cursor: PullCursor | None = None) -> list[RecordPage]:
    fields = adapter.field_definitions(object_type)
    return list(adapter.pull(object_type, cursor, fields))


def pulled(pages: list[RecordPage]) -> dict[str, dict[str, Any]]:
    """id -> what `truth` compares; fails on a record read twice."""
    out: dict[str, dict[str, Any]] = {}
    key = {"contacts": "email", "companies": "name", "deals": "name"}
    for page in pages:
        for record in page.records:
            assert record.id not in out, f"{record.id} read twice"
            out[record.id] = {"key": record.fields[key[record.object_type]],
                              "links": {(a.to_type, a.to_id, a.primary)
                                        for a in record.associations or ()}}
    return out


def sandbox_records(server: SandboxServer, token: str, object_type: Any
                    ) -> dict[str, dict[str, Any]]:
    class Box:
        @staticmethod
        def account(crm: str) -> Any:
            return server.app.account(crm, token)

    return truth(Box(), "hubspot", object_type)  # type: ignore[arg-type]


def exports_started(server: SandboxServer, token: str = TOKEN) -> int:
    return len(getattr(server.app.account("hubspot", token), "_exports", {}))


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_export_reads_every_record_exactly_once(box: tuple[SandboxServer, ManualClock],
                                                object_type: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    server, clock = box
    monkeypatch.setattr(hubspot_export, "PAGE_SIZE", 25)
    adapter = adapter_for(server, clock)
    before = adapter.policy.requests_sent
    pages = pull(adapter, object_type)
    assert pulled(pages) == sandbox_records(server, TOKEN, object_type)
    assert exports_started(server) == 1
    final = pages[-1].cursor
    assert pages[-1].done
    assert final.phase == "incremental"
    job = next(iter(server.app.account("hubspot", TOKEN)._exports.values()))  # type: ignore[attr-defined]
    # a zip of partitions when there are more rows than one holds (70 here), else a CSV
    assert job.zipped == (job.rows > 70)
    assert final.high_water == to_datetime(job.requested_ms / 1000) - OVERLAP
    # start + a few polls + download (+ deal pipelines, deals' contacts by batch read)
    assert adapter.policy.requests_sent - before < 20
    assert any("export" in note for note in adapter.pull_notes)  # type: ignore[attr-defined]


def test_a_crash_mid_file_resumes_without_a_new_export(
        box: tuple[SandboxServer, ManualClock], monkeypatch: pytest.MonkeyPatch) -> None:
    server, clock = box
    monkeypatch.setattr(hubspot_export, "PAGE_SIZE", 30)
    adapter = adapter_for(server, clock)
    fields = adapter.field_definitions("contacts")
    seen: list[RecordPage] = []
    for page in adapter.pull("contacts", None, fields):
        seen.append(page)
        if sum(len(p.records) for p in seen) >= 100:
            break  # the process dies here; `page.cursor` was the last one committed
    committed = seen[-1].cursor
    assert committed.extra["export"]["partition"] >= 1  # past the first partition
    rest = list(adapter_for(server, clock).pull("contacts", committed, fields))
    assert exports_started(server) == 1  # the same task's file, read again from its row
    assert pulled(seen + rest) == sandbox_records(server, TOKEN, "contacts")


def test_a_token_without_the_export_scope_falls_back_to_the_list_api(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    adapter = adapter_for(server, clock, token=DENIED, strategy="auto")
    adapter.export_min_records = 10  # type: ignore[attr-defined]
    pages = pull(adapter, "contacts")
    assert pulled(pages) == sandbox_records(server, DENIED, "contacts")
    assert exports_started(server, DENIED) == 0
    assert any("crm.export scope" in n for n in adapter.pull_notes)  # type: ignore[attr-defined]
    # Learned once: the next full pass does not ask again (no 403, no size search).
    fields = adapter.field_definitions("companies")
    before = adapter.policy.requests_sent
    list(adapter.pull("companies", None, fields))
    assert adapter.policy.requests_sent - before == 1  # one list page of 5 companies


def test_auto_exports_only_big_enough_types(box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    adapter = adapter_for(server, clock, strategy="auto")
    adapter.export_min_records = 100  # type: ignore[attr-defined]
    pull(adapter, "companies")  # 40 records: the list API is cheaper
    assert exports_started(server) == 0
    pages = pull(adapter, "contacts")  # 230 records: exported
    assert exports_started(server) == 1
    assert pulled(pages) == sandbox_records(server, TOKEN, "contacts")


def test_the_increment_after_an_export_reads_what_changed_while_it_ran(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    adapter = adapter_for(server, clock)
    fields = adapter.field_definitions("contacts")
    victim = next(iter(sandbox_records(server, TOKEN, "contacts")))
    pages: list[RecordPage] = []
    for page in adapter.pull("contacts", None, fields):
        if not pages:  # the export was requested; HubSpot is still preparing the file
            clock.advance(5)
            requests.patch(f"{server.base_url}/crm/v3/objects/contacts/{victim}",
                           json={"properties": {"firstname": "ChangedDuringExport"}},
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=10).raise_for_status()
        pages.append(page)
    exported = {r.id: r for p in pages for r in p.records}
    assert exported[victim].fields["first_name"] != "ChangedDuringExport"  # as requested
    clock.advance(60)
    increment = list(adapter.pull("contacts", pages[-1].cursor, fields))
    changed = {r.id: r for p in increment for r in p.records}
    assert changed[victim].fields["first_name"] == "ChangedDuringExport"


def test_export_cursor_survives_json(box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    adapter = adapter_for(server, clock)
    fields = adapter.field_definitions("companies")
    first = next(iter(adapter.pull("companies", None, fields)))
    restored = PullCursor.from_json(first.cursor.to_json())
    assert restored.extra["export"]["id"] == first.cursor.extra["export"]["id"]
    assert restored.pass_started_at is not None
    assert restored.pass_started_at <= dt.datetime.now(dt.UTC)


# -- the loader's plumbing (pure, no sandbox) -------------------------------------------------

def test_read_ahead_yields_in_order_and_raises_the_error_after_what_came_before() -> None:
    def pages() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("file cut short")

    got: list[int] = []
    with pytest.raises(RuntimeError, match="file cut short"):
        got.extend(read_ahead(pages()))
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stopped_early_stops_reading_and_closes_the_source() -> None:
    drawn: list[int] = []
    closed: list[bool] = []

    def pages() -> Iterator[int]:
        try:
            for number in range(1_000):
                drawn.append(number)
                yield number
        finally:
            closed.append(True)

    ahead = read_ahead(pages())
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()
    # At most the page waiting in the queue and the one being made were drawn past the two.
    assert len(drawn) <= 4
    assert closed == [True]


def test_fewer_collections_restores_the_threshold_when_the_last_load_ends() -> None:
    import gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with hubspot_export._fewer_collections():
        assert gc.get_threshold() == hubspot_export.GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen  # what existed before the load is not walked
        with hubspot_export._fewer_collections():  # a second type loading at once
            pass
        assert gc.get_threshold() == hubspot_export.GC_THRESHOLDS  # still loading
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


# -- the parsing worker process ---------------------------------------------------------------

def _die(page: RecordPage) -> None:
    """A page preparer that kills the worker process (as the system's OOM killer would)."""
    os._exit(3)


def _refuse(page: RecordPage) -> None:
    raise ValueError(f"a page of {page.size} records refused")


def _count(page: RecordPage) -> int:
    return page.size


def _worker_adapter(server: SandboxServer, clock: ManualClock, preparer: Any) -> HubSpotAdapter:
    adapter = adapter_for(server, clock)
    adapter.export_worker_min_bytes = 0  # type: ignore[attr-defined]
    adapter.page_preparer = preparer  # type: ignore[attr-defined]
    return adapter


def test_the_worker_prepares_every_page_and_the_cursors_follow_the_file(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    pages = pull(_worker_adapter(server, clock, _count), "contacts")
    loaded = [p for p in pages if p.prepared is not None]
    assert len(loaded) > 1  # several partitions of 70 rows
    assert all(p.records == () and p.prepared == p.size for p in loaded)
    assert sum(p.size for p in loaded) == len(sandbox_records(server, TOKEN, "contacts"))
    rows = [(p.cursor.extra["export"]["partition"], p.cursor.extra["export"]["row"])
            for p in loaded]
    assert rows == sorted(rows)


def test_a_worker_that_dies_stops_the_load_with_a_clear_error(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    with pytest.raises(CrmsyncError, match=r"stopped \(exit code 3\).*Run the sync again"):
        pull(_worker_adapter(server, clock, _die), "contacts")


def test_an_error_in_the_worker_is_raised_in_the_loading_process(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    with pytest.raises(ValueError, match="records refused"):
        pull(_worker_adapter(server, clock, _refuse), "contacts")


def test_a_file_parsed_in_this_process_comes_in_smaller_pages(
        box: tuple[SandboxServer, ManualClock], monkeypatch: pytest.MonkeyPatch) -> None:
    """Its record objects live in the loading process until stored (several types' at
    once), so its pages are `IN_PROCESS_PAGE_SIZE`, not the worker's `PAGE_SIZE`."""
    server, clock = box
    monkeypatch.setattr(hubspot_export, "PAGE_SIZE", 90)
    monkeypatch.setattr(hubspot_export, "IN_PROCESS_PAGE_SIZE", 20)
    adapter = adapter_for(server, clock)
    pages = pull(adapter, "contacts")
    assert pulled(pages) == sandbox_records(server, TOKEN, "contacts")
    sizes = [len(p.records) for p in pages if p.cursor.phase == "full"]
    assert max(sizes) == 20
    assert len(sizes) > 3
