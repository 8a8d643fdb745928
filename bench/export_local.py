"""The local part of a HubSpot first load by export: download, parse, map, store.

    .venv/bin/python bench/export_local.py [--sizes 100000 1000000] [--store sqlite postgres]
                                           [--types contacts] [--profile OUT.prof] [--json OUT]
                                           [--concurrency 4]

HubSpot's own time to build the file is not ours, so it is left out: the sandbox runs in its
own process with an export processing time of 0, and for each size the export is requested
and waited for until COMPLETE *before* the clock starts. Each measured run is then a fresh
child process over a fresh store (a SQLite file, or a PostgreSQL schema dropped afterwards)
whose cursor already names that export task, as a run resumed after the export finished
would hold it: `pull_client` asks the task's status once (a fresh result URL), downloads the
file and streams it into the store, as `crmsync sync` would (two-way, `--concurrency` 4 by
default, so the next page is received while one is stored). Printed per run: records,
seconds, records per second, CPU seconds of the loading process, of its parsing worker (a
file above `WORKER_MIN_BYTES` is parsed by a worker process) and, on PostgreSQL, of the
server's processes on this machine, and the loading process's peak RSS.
Seeded contacts carry company associations (and deals contacts and companies), so
association rows and stubs are part of the work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
# As `crmsync sync` pulls: two-way, local records matched and local edits merged, with the
# blueprint's default conflict policy.
CONFLICT_POLICY: Final = "remote_wins"
POSTGRES_URL = os.environ.get("CRMSYNC_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLIENT = "bench"


def _adapter(base: str, token: str) -> Any:
    from crmsync.adapters.hubspot import HubSpotAdapter

    adapter = HubSpotAdapter(base, token, max_retries=2)
    adapter.initial_load = "export"  # type: ignore[attr-defined]
    return adapter


def start_export(base: str, token: str, object_type: str) -> str:
    """Request the export the adapter would request and wait until it is COMPLETE."""
    from crmsync.adapters import hubspot_export
    from crmsync.adapters.hubspot_records import _property_names

    adapter = _adapter(base, token)
    names = _property_names(object_type, adapter.field_definitions(object_type))
    task_id = hubspot_export._start(adapter, object_type, names)  # type: ignore[arg-type]
    assert task_id is not None
    while True:
        task = hubspot_export._status(adapter, task_id, object_type)  # type: ignore[arg-type]
        if task is not None and task.get("status") == "COMPLETE":
            adapter.close()
            return task_id
        time.sleep(0.2)  # the sandbox's PENDING second; not part of the figures


def child(args: argparse.Namespace) -> None:
    """One measured run in this fresh process; prints one JSON line."""
    from crmsync.adapters.records import PullCursor
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules

    adapter = _adapter(args.base, args.token)
    store = open_store(args.store_url, schema=args.schema)
    records = store.records(CLIENT)
    object_type = args.types
    definitions = adapter.field_definitions(object_type)
    records.save_field_definitions("hubspot", object_type, [d.to_json() for d in definitions])
    started = dt.datetime.now(dt.UTC)
    cursor = PullCursor(phase="full", pass_started_at=started,
                        extra={"export": {"id": args.task, "partition": 0, "row": 0}})
    records.commit_page("hubspot", object_type, [], [], cursor.to_json())
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    server0 = _postgres_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = pull_client(CLIENT, "hubspot", adapter, store, MappingRules(),
                         object_types=(object_type,),  # type: ignore[arg-type]
                         conflict_policy=CONFLICT_POLICY, concurrency=int(args.concurrency))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the parsing worker, joined
    worker_cpu = (children.ru_utime + children.ru_stime
                  - children0.ru_utime - children0.ru_stime)
    server_cpu = _postgres_cpu() - server0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    pulled = result.total("pulled")
    print(json.dumps({
        "records": pulled, "associations": result.total("associations"),
        "pages": result.total("pages"), "seconds": round(wall, 2),
        "records_per_s": round(pulled / wall) if wall else None,
        "cpu_s": round(cpu, 2), "worker_cpu_s": round(worker_cpu, 2),
        "server_cpu_s": round(server_cpu, 2) if args.schema else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "stored": len(records.remote_ids("hubspot", object_type)),
    }), flush=True)
    adapter.close()
    store.close()


def _postgres_cpu() -> float:
    """CPU seconds the PostgreSQL server's processes on this machine have used (Linux; 0
    elsewhere): the server shares the machine's cores with the load."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8", errors="replace").rsplit(")", 1)
        except OSError:
            continue  # the process ended meanwhile
        if "(postgres" in fields[0]:
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime
    return total / ticks


def _drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def measure(base: str, token: str, task: str, *, object_type: str, store: str,
            profile: Path | None, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store_url, schema = f"sqlite:///{tmp}/bench.db", None
        if store == "postgres":
            store_url, schema = POSTGRES_URL, f"bench_{uuid.uuid4().hex[:10]}"
        command = [sys.executable, __file__, "--child", "--base", base, "--token", token,
                   "--task", task, "--types", object_type, "--store-url", store_url,
                   "--concurrency", str(concurrency)]
        if schema:
            command += ["--schema", schema]
        if profile:
            command += ["--profile", str(profile)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  cwd=ROOT)
        finally:
            if schema:
                _drop_schema(schema)
    if done.returncode != 0:
        raise SystemExit(f"{store} run failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return figures


HEADER = (f"{'store':<10}{'type':<10}{'records':>10}{'assocs':>10}{'seconds':>9}"
          f"{'records/s':>11}{'CPU s':>8}{'worker':>8}{'server':>8}{'peak RSS':>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--store", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])
    parser.add_argument("--types", default="contacts", choices=["contacts", "companies", "deals"])
    parser.add_argument("--profile", type=Path, help="cProfile the runs into OUT-STORE-SIZE")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="CRMSYNC_SYNC_CONCURRENCY (default 4, as crmsync sync's; above 1 "
                             "the next page is received while this one is stored)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--base", "--token", "--task", "--store-url", "--schema"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows: list[dict[str, Any]] = []
    with sandbox_process() as base:
        print(HEADER, flush=True)
        for size in args.sizes:
            requests.post(f"{base}/_sandbox/reset", timeout=60).raise_for_status()
            requests.post(f"{base}/_sandbox/faults", timeout=10, json={
                "hubspot_export_base_seconds": 0, "hubspot_export_seconds_per_1000": 0,
            }).raise_for_status()
            token = f"bench-export-{size}"
            counts = {"contacts": 0, "companies": max(1, size // 10), "deals": 0}
            counts[args.types] = size
            if args.types == "deals":
                counts["contacts"] = max(1, size // 10)
            requests.post(f"{base}/_sandbox/seed", timeout=7200, json={
                "crm": "hubspot", "token": token, "seed": 1, **counts}).raise_for_status()
            task = start_export(base, token, args.types)
            for store in args.store:
                profile = (args.profile.with_name(f"{args.profile.stem}-{store}-{size}.prof")
                           if args.profile else None)
                figures = measure(base, token, task, object_type=args.types, store=store,
                                  profile=profile, concurrency=args.concurrency)
                row = {"store": store, "type": args.types, "size": size, **figures}
                rows.append(row)
                print(f"{store:<10}{args.types:<10}{row['records']:>10,}"
                      f"{row['associations']:>10,}{row['seconds']:>9}"
                      f"{row['records_per_s']:>11,}{row['cpu_s']:>8}{row['worker_cpu_s']:>8}"
                      f"{row['server_cpu_s'] if row['server_cpu_s'] is not None else '-':>8}"
                      f"{row['peak_rss_mb']:>7} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
