"""Object types pulled in parallel (and HubSpot's first load in slices) land exactly what a
sequential pull lands, on SQLite and PostgreSQL; one type's failure keeps what the others
committed and is the error raised.

Stores are compared record by record (every column but store ids and store clocks) and
association by association, keyed on the CRM's ids.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.registry import create_adapter
from crmsync.errors import BudgetExhaustedError, FatalRemoteError
from crmsync.settings import Settings
from crmsync.store import open_store
from crmsync.sync import engine
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules
from tests.adapters.record_sandbox import truth
from tests.conftest import SANDBOX_TOKEN
from tests.sync.fake_records import FakeCrm
from tests.sync.test_pull_engine import RULES, _account, _assert_store_matches

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from crmsync.adapters.records import PullCursor, RecordPage
    from crmsync.store import Store

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("companies", "contacts", "deals")
STORE_ONLY = {"id", "client", "created_at", "updated_at", "merged_into"}


def _adapter(sandbox: str, crm: str, concurrency: int) -> Any:
    settings = Settings(**{f"{crm}_base_url": sandbox, f"{crm}_token": SANDBOX_TOKEN,
                           "sync_concurrency": concurrency,
                           "hubspot_search_lag_seconds": 0})  # type: ignore[arg-type]
    adapter: Any = create_adapter(crm, settings)
    if crm == "hubspot":
        adapter.initial_load = "list"
        adapter.partition_min_records = 150  # slices even at this size
    return adapter


def _calls(sandbox: str) -> int:
    return int(requests.get(f"{sandbox}/_sandbox/stats", timeout=10).json()["total"])


def store_image(store: Store, client: str, crm: str) -> dict[str, Any]:
    """Every live record (by remote id, store-only columns left out) and every association
    (by remote ids) of one client."""
    records = store.records(client)
    remote = {t: {v: k for k, v in records.remote_ids(crm, t).items()} for t in TYPES}
    image: dict[str, Any] = {}
    for object_type in TYPES:
        image[object_type] = {
            remote[object_type][row["id"]]: {k: v for k, v in row.items() if k not in STORE_ONLY}
            for row in records.live(object_type)}
    for from_type, to_type in (("contacts", "companies"), ("deals", "contacts"),
                               ("deals", "companies")):
        image[f"{from_type}->{to_type}"] = {
            (remote[from_type][a], remote[to_type][b], primary)
            for a, b, primary in records.association_pairs(from_type, to_type)}
    return image


@pytest.mark.parametrize(("crm", "grouped"), [("hubspot", False), ("pipedrive", False),
                                             ("hubspot", True)])
def test_types_in_parallel_land_the_same_store_as_one_after_another(
        store: Store, sandbox: str, seed_sandbox: Callable[..., Any], crm: str, grouped: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if grouped:  # each type's pages committed several at a time, the store lock held
        monkeypatch.setattr(engine, "GROUP_MIN_PAGE", 1)
        monkeypatch.setattr(engine, "GROUP_RECORDS", 250)
    seed_sandbox(crm, contacts=1100, companies=300, deals=700)
    one, four = _adapter(sandbox, crm, 1), _adapter(sandbox, crm, 4)
    try:
        sequential = pull_client("seq", crm, one, store, MappingRules(), concurrency=1)
        parallel = pull_client("par", crm, four, store, MappingRules(), concurrency=4)
        # A record first stored as a stub (an association's target, its own type not pulled
        # yet) and then pulled is created, as one pulled first: the counts agree.
        assert parallel.total("created") == sequential.total("created")
        assert parallel.total("restored") == 0
        sequential_image = store_image(store, "seq", crm)
        assert store_image(store, "par", crm) == sequential_image
        assert len(sequential_image["contacts"]) > 1000  # (Pipedrive seeds a few deleted)
        assert len(sequential_image["contacts->companies"]) > 500
        assert len(sequential_image["deals->contacts"]) > 300
        assert parallel.total("pulled") >= sum(len(sequential_image[t]) for t in TYPES)
        if crm == "hubspot":  # HubSpot's first load was read in slices
            cursor = store.records("par").cursor(crm, "contacts")
            assert cursor is not None
            assert cursor.cursor["phase"] == "incremental"

        before = _calls(sandbox)
        again = pull_client("par", crm, four, store, MappingRules(), concurrency=4)
        assert _calls(sandbox) - before == 3  # nothing changed: one call per object type
        assert again.total("created") + again.total("updated") == 0
        assert store_image(store, "par", crm) == sequential_image
    finally:
        one.close()
        four.close()


# --- failures, with the in-memory CRM ------------------------------------------------------------

class FailingCrm(FakeCrm):
    """Types named in `fail` raise their error after their first page, once the types they
    wait for have ended (finished or failed); the fake's own state is guarded for threads."""

    def __init__(self, fail: dict[str, tuple[BaseException, tuple[str, ...]]]) -> None:
        super().__init__()
        self.fail = fail
        self.ended = {t: threading.Event() for t in TYPES}
        self.guard = threading.Lock()

    def field_definitions(self, object_type: str) -> Any:
        with self.guard:
            return super().field_definitions(object_type)

    def pull(self, object_type: str, cursor: PullCursor | None, fields: Any, *,
             scan_removals: bool = False) -> Iterator[RecordPage]:
        with self.guard:
            pages = list(super().pull(object_type, cursor, fields,
                                      scan_removals=scan_removals))
        if object_type not in self.fail:
            try:
                yield from pages
            finally:  # the engine stops at the page marked done: the generator is closed
                self.ended[object_type].set()
            return
        error, after = self.fail[object_type]
        yield pages[0]
        for other in after:
            assert self.ended[other].wait(30), f"{other} never ended"
        self.ended[object_type].set()
        raise error


def test_one_type_failing_keeps_what_the_others_committed_and_is_raised(store: Store) -> None:
    crm = FailingCrm({"contacts": (FatalRemoteError("hubspot", "scope missing"),
                                   ("companies", "deals"))})
    _account(crm, people=10)
    with pytest.raises(FatalRemoteError, match="scope missing"):
        pull_client("acme", crm.crm, crm, store, RULES, concurrency=3)  # type: ignore[arg-type]
    records = store.records("acme")
    assert sorted(records.remote_ids(crm.crm, "companies")) == sorted(crm.records["companies"])
    assert sorted(records.remote_ids(crm.crm, "deals")) == sorted(crm.records["deals"])
    assert sorted(records.remote_ids(crm.crm, "contacts"), key=int) == ["1", "2", "3"]
    # The next run picks contacts up after their committed page.
    crm.fail = {}
    pull_client("acme", crm.crm, crm, store, RULES, concurrency=3)  # type: ignore[arg-type]
    _assert_store_matches(store, crm)


def test_the_budget_running_out_in_one_type_stops_the_pull_with_that_error(
        store: Store) -> None:
    budget = BudgetExhaustedError("hubspot", "stopped at the daily budget")
    crm = FailingCrm({"contacts": (budget, ("companies", "deals"))})
    _account(crm, people=7)
    with pytest.raises(BudgetExhaustedError):  # the run reports it as partial (exit 3)
        pull_client("acme", crm.crm, crm, store, RULES, concurrency=3)  # type: ignore[arg-type]
    records = store.records("acme")
    assert sorted(records.remote_ids(crm.crm, "deals")) == sorted(crm.records["deals"])
    assert sorted(records.remote_ids(crm.crm, "contacts"), key=int) == ["1", "2", "3"]
    stored = records.cursor(crm.crm, "contacts")  # the next run resumes after page one
    assert stored is not None
    assert stored.cursor["token"] == "3"


# --- a partitioned first load killed by SIGKILL ---------------------------------------------------

CHILD = textwrap.dedent("""\
    import sys
    from crmsync.adapters.registry import create_adapter
    from crmsync.settings import Settings
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules

    base, token, url = sys.argv[1:4]
    settings = Settings(hubspot_base_url=base, hubspot_token=token, sync_concurrency=4,
                        hubspot_search_lag_seconds=0)
    adapter = create_adapter("hubspot", settings)
    adapter.initial_load = "list"
    adapter.partition_min_records = 100

    def page(object_type, counts):
        print("page", object_type, counts.pulled, flush=True)

    with open_store(url) as store:
        pull_client("acme", "hubspot", adapter, store, MappingRules(), on_page=page,
                    concurrency=4)
    print("finished", flush=True)
    """)


def test_a_sliced_first_load_killed_by_sigkill_resumes_without_loss_or_duplicates(
        tmp_path: Path, sandbox: str, sandbox_server: Any,
        seed_sandbox: Callable[..., Any]) -> None:
    seed_sandbox("hubspot", contacts=3000, companies=400, deals=1500)
    requests.post(f"{sandbox}/_sandbox/faults", json={"latency_ms": 10},
                  timeout=10).raise_for_status()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, sandbox, SANDBOX_TOKEN, url],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    killed_at = None
    with open_store(url) as store:
        for line in child.stdout:
            if not line.startswith("page contacts"):
                continue
            stored = store.records("acme").cursor("hubspot", "contacts")
            if stored is not None and len(stored.cursor.get("partitions") or ()) >= 3:
                child.send_signal(signal.SIGKILL)
                killed_at = stored.cursor
                break
    child.wait(timeout=120)
    child.stdout.close()
    requests.post(f"{sandbox}/_sandbox/faults", json={"latency_ms": 0},
                  timeout=10).raise_for_status()
    assert killed_at is not None, "the pull finished before it was killed"
    assert child.returncode == -signal.SIGKILL

    with open_store(url) as store:
        resumed = store.records("acme").cursor("hubspot", "contacts")
        assert resumed is not None
        assert resumed.cursor["phase"] == "full"  # killed mid-pass, slices under way
        assert resumed.cursor.get("partitions")
        adapter = _adapter(sandbox, "hubspot", 4)
        adapter.partition_min_records = 100
        try:
            pull_client("acme", "hubspot", adapter, store, MappingRules(), concurrency=4)
        finally:
            adapter.close()
        box = SimpleNamespace(account=lambda crm: sandbox_server.app.account(crm, SANDBOX_TOKEN))
        records = store.records("acme")
        for object_type in TYPES:
            expected = truth(box, "hubspot", object_type)  # type: ignore[arg-type]
            live = list(records.live(object_type))
            remote = records.remote_ids("hubspot", object_type)
            assert sorted(remote) == sorted(expected), object_type
            assert len(live) == len(expected), f"{object_type}: a record twice"
        image = store_image(store, "acme", "hubspot")
        expected_links = {(from_id, to_id, primary)
                          for from_id, data in truth(box, "hubspot", "contacts").items()
                          for _t, to_id, primary in data["links"]}
        assert image["contacts->companies"] == expected_links
