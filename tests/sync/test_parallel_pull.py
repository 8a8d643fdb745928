"""Object types pulled in parallel (and HubSpot's first load in slices) land exactly what a
sequential pull lands, on SQLite and PostgreSQL; one type's failure keeps what the others
committed and is the error raised.

Stores are compared record by record (every column but store ids and store clocks) and
association by association, keyed on the CRM's ids.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.registry import create_adapter
from crmsync.errors import BudgetExhaustedError, FatalRemoteError
from crmsync.settings import Settings
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules
from tests.conftest import SANDBOX_TOKEN
from tests.sync.fake_records import FakeCrm
from tests.sync.test_pull_engine import RULES, _account, _assert_store_matches

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from crmsync.adapters.records import PullCursor, RecordPage
    from crmsync.store import Store

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


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_types_in_parallel_land_the_same_store_as_one_after_another(
        store: Store, sandbox: str, seed_sandbox: Callable[..., Any], crm: str) -> None:
    seed_sandbox(crm, contacts=1100, companies=300, deals=700)
    one, four = _adapter(sandbox, crm, 1), _adapter(sandbox, crm, 4)
    try:
        pull_client("seq", crm, one, store, MappingRules(), concurrency=1)
        parallel = pull_client("par", crm, four, store, MappingRules(), concurrency=4)
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
