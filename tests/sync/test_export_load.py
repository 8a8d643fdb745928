"""A HubSpot first load through the Exports API stores exactly what the list API's does, on
SQLite and PostgreSQL, and a SIGKILL mid-file resumes without loss or duplicates.

Proven by comparing the stores' rows record by record (typed columns, every property, the
merge base, tombstones, associations with their primary flag), not by counts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import requests
from sqlalchemy import create_engine, select, text

from crmsync.adapters import hubspot_export
from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.sandbox import ManualClock, start_sandbox
from crmsync.store import open_store
from crmsync.store.schema import RECORD_TABLES, associations, record_links
from crmsync.sync import engine
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules
from tests.adapters.record_sandbox import truth
from tests.conftest import POSTGRES_URL, postgres_problem

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.sandbox import SandboxServer
    from crmsync.store import Store

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "export-load-token"
TYPES = ("companies", "contacts", "deals")
RULES = MappingRules(consent_field="marketing_consent")
# What differs between two loads of the same data: store ids, when, and which pass.
UNCOMPARED = {"id", "client", "created_at", "updated_at", "merged_into"}


@pytest.fixture
def box() -> Iterator[tuple[SandboxServer, ManualClock]]:
    clock = ManualClock()
    # Small partitions: the bigger types arrive as a zip of several CSV files.
    server = start_sandbox(clock=clock, config={"hubspot_export_partition_rows": 150})
    server.app.seed("hubspot", token=TOKEN, contacts=420, companies=70, deals=160, seed=9)
    try:
        yield server, clock
    finally:
        server.stop()


def _pull(server: SandboxServer, clock: ManualClock, store: Store, client: str,
          strategy: str, *, worker: bool = False) -> None:
    adapter = HubSpotAdapter(server.base_url, TOKEN, sleep=clock.advance, clock=clock,
                             max_retries=0)
    adapter.initial_load = strategy  # type: ignore[attr-defined]
    # Every file parsed by a worker process, or every one in this process.
    adapter.export_worker_min_bytes = 0 if worker else 1 << 62  # type: ignore[attr-defined]
    pull_client(client, "hubspot", adapter, store, RULES)  # type: ignore[arg-type]
    adapter.close()


def stored(store: Store, client: str) -> dict[str, Any]:
    """Everything a pull stored for `client`, keyed by remote ids (store ids differ)."""
    out: dict[str, Any] = {}
    remote: dict[tuple[str, int], str] = {}
    with store.engine.connect() as conn:
        for object_type in TYPES:
            table = RECORD_TABLES[object_type]
            rows = conn.execute(
                select(table, record_links.c.remote_id, record_links.c.base,
                       record_links.c.remote_modified_at.label("link_modified"),
                       record_links.c.removed_at.label("link_removed"))
                .join(record_links, record_links.c.record_id == table.c.id)
                .where(table.c.client == client, record_links.c.client == client,
                       record_links.c.object_type == object_type))
            records: dict[str, dict[str, Any]] = {}
            for row in rows:
                data = dict(row._mapping)
                remote[(object_type, data["id"])] = data["remote_id"]
                records[data.pop("remote_id")] = data
            for data in records.values():
                merged = data["merged_into"]
                data["merged_into_remote"] = (remote[(object_type, merged)]
                                              if merged is not None else None)
                for name in UNCOMPARED:
                    data.pop(name)
            out[object_type] = records
        out["associations"] = sorted(
            (r.from_type, remote[(r.from_type, r.from_id)], r.to_type,
             remote[(r.to_type, r.to_id)], bool(r.is_primary), r.crm)
            for r in conn.execute(select(associations).where(associations.c.client == client)))
    return out


@pytest.mark.parametrize(("worker", "grouped"), [(False, False), (True, False), (True, True)],
                         ids=["in-process", "worker-process", "worker-group-commits"])
def test_an_export_stores_exactly_what_the_list_api_stores(
        box: tuple[SandboxServer, ManualClock], store: Store,
        monkeypatch: pytest.MonkeyPatch, worker: bool, grouped: bool) -> None:
    server, clock = box
    monkeypatch.setattr(hubspot_export, "PAGE_SIZE", 90)  # several pages per partition
    if grouped:  # the export's pages committed three at a time (`engine._CommitGroup`)
        monkeypatch.setattr(engine, "GROUP_MIN_PAGE", 90)
        monkeypatch.setattr(engine, "GROUP_RECORDS", 270)
    _pull(server, clock, store, "by_list", "list")
    _pull(server, clock, store, "by_export", "export", worker=worker)
    assert len(server.app.account("hubspot", TOKEN)._exports) == 3  # type: ignore[attr-defined]

    by_list, by_export = stored(store, "by_list"), stored(store, "by_export")
    for object_type in TYPES:
        assert by_export[object_type].keys() == by_list[object_type].keys(), object_type
        for remote_id, row in by_list[object_type].items():
            assert by_export[object_type][remote_id] == row, (object_type, remote_id)
    assert by_export["associations"] == by_list["associations"]
    # The comparison covered real data: custom properties, links, typed columns.
    contacts = by_list["contacts"].values()
    assert sum(1 for c in contacts if c["properties"].get("customer_tier")) > 20
    assert sum(1 for c in contacts if c["consent"] is True) > 20
    assert {a[0] for a in by_list["associations"]} == {"contacts", "deals"}
    assert sum(1 for a in by_list["associations"] if a[4]) > 100  # primary companies
    assert all(d["status"] in ("open", "won", "lost") for d in by_list["deals"].values())
    live = truth(SimpleNamespace(account=lambda crm: server.app.account(crm, TOKEN)),  # type: ignore[arg-type]
                 "hubspot", "contacts")
    assert {rid for rid, c in by_export["contacts"].items()
            if not c["stub"] and c["deleted_at"] is None} == set(live)


# --- SIGKILL mid-file ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""\
    import sys
    from crmsync.adapters import hubspot_export
    from crmsync.adapters.hubspot import HubSpotAdapter
    from crmsync.store import open_store, records
    from crmsync.sync import engine
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules

    base, token, url, schema, stop_at, worker = sys.argv[1:7]
    hubspot_export.PAGE_SIZE = 60
    if worker == "worker-grouped":  # pages committed three at a time
        engine.GROUP_MIN_PAGE, engine.GROUP_RECORDS = 60, 180
    real_insert, inserts = records.bulk_insert, 0

    def bulk_insert(*args, **kwargs):
        global inserts
        inserts += 1
        result = real_insert(*args, **kwargs)
        if inserts == int(stop_at):  # rows written, the page's transaction still open
            print("inside a page", flush=True)
            sys.stdin.readline()  # killed here
        return result

    records.bulk_insert = bulk_insert
    adapter = HubSpotAdapter(base, token, max_retries=0)
    adapter.initial_load = "export"
    adapter.export_worker_min_bytes = 1 << 62 if worker == "in-process" else 0
    with open_store(url, schema=schema or None) as store:
        pull_client("acme", "hubspot", adapter, store, MappingRules(),
                    object_types=("contacts",))
    print("finished", flush=True)
    """)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, PostgreSQL schema or "") of a fresh store a child process can open."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crmsync.db'}", ""
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(f"!!! POSTGRESQL UNREACHABLE at {POSTGRES_URL}: {problem} !!!")
    schema = f"crmsync_test_{uuid.uuid4().hex[:12]}"
    yield POSTGRES_URL, schema
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _child(base: str, url: str, schema: str, stop_at: int, worker: str
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, base, TOKEN, url, schema, str(stop_at), worker],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    """The processes `pid` started that are running (Linux's /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _gone(pid: int, timeout: float) -> bool:
    """Whether `pid` has exited within `timeout` seconds (it is not ours to wait for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)  # polling for an exit, not timing anything
    return False


@pytest.mark.parametrize("worker", ["in-process", "worker", "worker-grouped"])
def test_an_export_killed_mid_file_resumes_without_loss_or_duplicates(
        sandbox: str, sandbox_server: Any, store_location: tuple[str, str], worker: str) -> None:
    url, schema = store_location
    requests.post(f"{sandbox}/_sandbox/faults", timeout=10, json={
        "hubspot_export_base_seconds": 0, "hubspot_export_seconds_per_1000": 0,
        "hubspot_export_partition_rows": 200}).raise_for_status()
    requests.post(f"{sandbox}/_sandbox/seed", timeout=60, json={
        "crm": "hubspot", "token": TOKEN, "contacts": 500, "companies": 60, "deals": 0,
        "seed": 4}).raise_for_status()
    # A page's bulk inserts: records, links, (company stubs and their links,) associations.
    # Grouped: inside the second group (a page makes three to five).
    process = _child(sandbox, url, schema, stop_at=12 if worker != "worker-grouped" else 20,
                     worker=worker)
    assert process.stdout is not None
    assert process.stdin is not None
    assert process.stdout.readline().strip() == "inside a page"
    helpers = _children(process.pid)
    assert bool(helpers) == (worker != "in-process")  # the worker (and its resource tracker)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    process.stdin.close()
    assert process.returncode == -signal.SIGKILL
    # A worker left behind by the killed process stops on its own (its pipe is broken).
    assert all(_gone(pid, timeout=30) for pid in helpers)

    with open_store(url, schema=schema or None) as store:
        records = store.records("acme")
        cursor = records.cursor("hubspot", "contacts")
        assert cursor is not None
        export = cursor.cursor["extra"]["export"]
        assert (export["partition"], export["row"]) > (0, 0)  # pages committed before the kill
        before = len(records.remote_ids("hubspot", "contacts"))
        assert 0 < before < 500

    rerun = _child(sandbox, url, schema, stop_at=0, worker=worker)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0
    assert out.strip() == "finished"

    account = sandbox_server.app.account("hubspot", TOKEN)
    assert len(account._exports) == 1  # the rerun read the same export from where it was
    expected = truth(SimpleNamespace(account=lambda crm: account), "hubspot", "contacts")  # type: ignore[arg-type]
    with open_store(url, schema=schema or None) as store:
        records = store.records("acme")
        ids = records.remote_ids("hubspot", "contacts")
        companies = {v: k for k, v in records.remote_ids("hubspot", "companies",
                                                         live_only=False).items()}
        remote_of = {v: k for k, v in ids.items()}
        rows = list(records.live("contacts"))
        assert len(rows) == len(ids) == len(expected)  # nothing twice
        owned = records.owned_associations("contacts", [r["id"] for r in rows])
        got = {remote_of[r["id"]]: {
            "key": r["email"],
            "links": {(to_type, companies[to_id], primary)
                      for to_type, to_id, primary in owned[r["id"]]}} for r in rows}
    assert got == expected
