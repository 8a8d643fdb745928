"""Removal scans around full passes: the engine with both real adapters against the sandbox
(over HTTP, on a manual clock set to the real time), on a SQLite file and on PostgreSQL.

A full pass scans for nothing (it tombstones what it did not list when it completes) and
counts as a scan made when it began; deletions during it, or after it, are the scans' of
later increments. Proven by the sandbox's own request counts and by the store's tombstones.
"""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.sandbox import ManualClock, start_sandbox
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules
from tests.adapters.record_sandbox import truth
from tests.sync.fake_records import CrashError, FakeCrm

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.adapters.records import PullCursor, RecordPage
    from crmsync.names import ObjectType
    from crmsync.sandbox import SandboxServer
    from crmsync.store import Store

TOKEN = "removal-scan-token"
TYPES: tuple[ObjectType, ...] = ("companies", "contacts", "deals")
RULES = MappingRules()
HOUR = dt.timedelta(hours=1)
# Routes only Pipedrive's removal scans request (HubSpot's archived list shares its route
# with the listing: `Recorder` counts the scans themselves).
SCAN_ROUTES = ("GET /api/v1/recents", "GET /v1/recents", "GET /api/v2/deals/archived")
# The adapters' removal scans, one call each per object type scanned.
SCANS = {"hubspot": ("_archived",), "pipedrive": ("_pd_recents", "_pd_archived_deals")}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SandboxServer, ManualClock]]:
    clock = ManualClock(time.time())
    box = start_sandbox(host="127.0.0.1", port=0, clock=clock)
    yield box, clock
    box.stop()


@pytest.fixture
def sandbox(server: tuple[SandboxServer, ManualClock]) -> SandboxServer:
    box, clock = server
    requests.post(f"{box.base_url}/_sandbox/reset", timeout=10).raise_for_status()
    # Pipedrive's pass start is the adapter's wall clock: the sandbox's runs with it.
    clock.set(time.time())
    return box


class Recorder:
    """Wraps an adapter: what `scan_removals` each pull asked for, and the removal scans the
    adapter made (its scan methods, wrapped on the instance)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.crm = adapter.crm
        self.asked: list[bool] = []
        self.scans = 0
        for name in SCANS[adapter.crm]:
            setattr(adapter, name, self._counted(getattr(adapter, name)))

    def _counted(self, scan: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.scans += 1
            return scan(*args, **kwargs)

        return counted

    def field_definitions(self, object_type: ObjectType) -> Any:
        return self.adapter.field_definitions(object_type)

    def pull(self, object_type: ObjectType, cursor: PullCursor | None, fields: Any, *,
             scan_removals: bool = False) -> Iterator[RecordPage]:
        self.asked.append(scan_removals)
        return self.adapter.pull(object_type, cursor, fields, scan_removals=scan_removals)

    def clear(self) -> None:
        self.asked, self.scans = [], 0


def _adapter(box: SandboxServer, crm: str) -> Recorder:
    if crm == "hubspot":
        made: Any = HubSpotAdapter(box.base_url, TOKEN, max_retries=0)
        made.records_clock = time.time  # its pass start and search lag: the sandbox's time
        made.search_lag = dt.timedelta(0)
    else:
        made = PipedriveAdapter(box.base_url, TOKEN, max_retries=0)
    return Recorder(made)


def _stats(box: SandboxServer) -> dict[str, int]:
    stats = requests.get(f"{box.base_url}/_sandbox/stats", timeout=10).json()
    return dict(stats["by_route"], total=stats["total"])


def _calls_since(box: SandboxServer, before: dict[str, int]) -> dict[str, int]:
    after = _stats(box)
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _seed(box: SandboxServer, crm: str) -> None:
    box.app.seed(crm, token=TOKEN, contacts=600, companies=60, deals=120, seed=4)


def _delete(box: SandboxServer, crm: str, object_type: ObjectType, remote_id: str) -> None:
    if crm == "hubspot":
        url, headers = (f"{box.base_url}/crm/v3/objects/{object_type}/{remote_id}",
                        {"Authorization": f"Bearer {TOKEN}"})
    else:
        entity = {"contacts": "persons", "companies": "organizations", "deals": "deals"}
        url, headers = (f"{box.base_url}/api/v2/{entity[object_type]}/{remote_id}",
                        {"x-api-token": TOKEN})
    requests.delete(url, headers=headers, timeout=10).raise_for_status()


def _archive_deal(box: SandboxServer, deal_id: str) -> None:
    requests.patch(f"{box.base_url}/api/v2/deals/{deal_id}", json={"is_archived": True},
                   headers={"x-api-token": TOKEN}, timeout=10).raise_for_status()


def _live_remote_ids(store: Store, crm: str, object_type: ObjectType) -> set[str]:
    records = store.records("acme")
    live = {row["id"] for row in records.live(object_type)}
    return {rid for rid, sid in records.remote_ids(crm, object_type).items() if sid in live}


def _crm_ids(box: SandboxServer, crm: str, object_type: ObjectType) -> set[str]:
    """The ids the sandbox account holds live (the truth the store is compared with)."""
    return set(truth(SimpleNamespace(account=lambda name: box.app.account(name, TOKEN)),
                     crm, object_type))


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_a_first_full_pull_makes_no_removal_scan_and_counts_as_one(
        sandbox: SandboxServer, store: Store, crm: str) -> None:
    _seed(sandbox, crm)
    adapter = _adapter(sandbox, crm)
    began = dt.datetime.now(dt.UTC)
    before = _stats(sandbox)
    pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                clock=lambda: began)
    calls = _calls_since(sandbox, before)
    assert adapter.asked == [False, False, False]
    assert adapter.scans == 0
    assert not set(calls) & set(SCAN_ROUTES)
    for object_type in TYPES:
        assert _live_remote_ids(store, crm, object_type) == _crm_ids(sandbox, crm, object_type)
        cursor = store.records("acme").cursor(crm, object_type)
        assert cursor is not None
        assert cursor.removals_scanned_at == began  # the pass's start stands for a scan

    # Within the interval the next run scans nothing: one call per type.
    adapter.clear()
    before = _stats(sandbox)
    pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                clock=lambda: began + HOUR - dt.timedelta(minutes=1))
    assert adapter.asked == [False, False, False]
    assert _calls_since(sandbox, before)["total"] == 3

    # An interval after the pass began, it scans.
    adapter.clear()
    before = _stats(sandbox)
    pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                clock=lambda: began + HOUR)
    assert adapter.asked == [True, True, True]
    assert adapter.scans == 3
    if crm == "pipedrive":
        calls = _calls_since(sandbox, before)
        assert sum(calls.get(route, 0) for route in SCAN_ROUTES) == 3
    cursor = store.records("acme").cursor(crm, "contacts")
    assert cursor is not None
    assert cursor.removals_scanned_at == began + HOUR
    adapter.adapter.close()


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_deletions_during_the_first_pass_are_the_next_scans(
        sandbox: SandboxServer, store: Store, crm: str) -> None:
    _seed(sandbox, crm)
    adapter = _adapter(sandbox, crm)
    gone: dict[str, str] = {}

    def delete_one_already_listed(object_type: str, counts: Any) -> None:
        # After the pass's first page of contacts (and of deals, on Pipedrive archived
        # rather than deleted: it leaves the listing without a deleted status).
        if counts.pages != 1 or object_type == "companies" or object_type in gone:
            return
        victim = min(_live_remote_ids(store, crm, object_type), key=int)  # type: ignore[arg-type]
        gone[object_type] = victim
        if crm == "pipedrive" and object_type == "deals":
            _archive_deal(sandbox, victim)
        else:
            _delete(sandbox, crm, object_type, victim)  # type: ignore[arg-type]

    pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                on_page=delete_one_already_listed)
    assert set(gone) == {"contacts", "deals"}
    assert adapter.scans == 0
    for object_type, victim in gone.items():
        # Listed before it went, so the pass's end could not tombstone it.
        assert victim in _live_remote_ids(store, crm, object_type)  # type: ignore[arg-type]

    result = pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                         removal_scan_interval=dt.timedelta(0))
    assert adapter.scans == 3
    assert result.counts["contacts"].tombstoned == 1
    assert result.counts["deals"].tombstoned == 1
    for object_type in TYPES:
        assert _live_remote_ids(store, crm, object_type) == _crm_ids(sandbox, crm, object_type)
    adapter.adapter.close()


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_a_full_pass_tombstones_what_it_no_longer_lists_without_a_scan(
        sandbox: SandboxServer, store: Store, crm: str) -> None:
    _seed(sandbox, crm)
    adapter = _adapter(sandbox, crm)
    pull_client("acme", crm, adapter, store, RULES)  # type: ignore[arg-type]
    victim = min(_live_remote_ids(store, crm, "contacts"), key=int)
    _delete(sandbox, crm, "contacts", victim)
    adapter.clear()
    before = _stats(sandbox)
    result = pull_client("acme", crm, adapter, store, RULES,  # type: ignore[arg-type]
                         full=True)
    assert adapter.scans == 0
    assert not set(_calls_since(sandbox, before)) & set(SCAN_ROUTES)
    assert result.counts["contacts"].tombstoned == 1
    for object_type in TYPES:
        assert _live_remote_ids(store, crm, object_type) == _crm_ids(sandbox, crm, object_type)
    adapter.adapter.close()


class _AskedFake(FakeCrm):
    """The in-memory CRM, remembering what `scan_removals` each pull asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[bool] = []

    def pull(self, object_type: str, cursor: PullCursor | None, fields: Any, *,
             scan_removals: bool = False) -> Iterator[RecordPage]:
        self.asked.append(scan_removals)
        return super().pull(object_type, cursor, fields, scan_removals=scan_removals)


def test_a_resumed_full_pass_counts_as_a_scan_from_when_it_began(store: Store) -> None:
    crm = _AskedFake()
    for n in range(1, 8):
        crm.put("contacts", str(n), fields={"email": f"p{n}@example.com"})
    crm.fail_after_pages = 1
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    with pytest.raises(CrashError):
        pull_client("acme", crm.crm, crm, store, RULES,  # type: ignore[arg-type]
                    object_types=("contacts",), clock=lambda: now)
    crm.fail_after_pages = None
    stored = store.records("acme").cursor(crm.crm, "contacts")
    assert stored is not None
    assert stored.removals_scanned_at is None  # a pass under way is no scan yet
    began = stored.cursor["pass_started_at"]
    pull_client("acme", crm.crm, crm, store, RULES,  # type: ignore[arg-type]
                object_types=("contacts",), clock=lambda: now)
    stored = store.records("acme").cursor(crm.crm, "contacts")
    assert stored is not None
    assert stored.removals_scanned_at == dt.datetime.fromisoformat(began)
    assert crm.asked == [False, False]
