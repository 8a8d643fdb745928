"""Figures of `crmsync sync` (pull) against the sandbox: calls per 1,000 records, speed, memory.

    .venv/bin/python bench/sync_pull.py [--sizes 10000 100000] [--crm hubspot pipedrive]
                                        [--latency-ms 0] [--store sqlite|postgres] [--json OUT]

The sandbox runs in its own process (so this process's CPU time and peak RSS are crmsync's
alone). For each CRM and size it seeds one fresh account with SIZE contacts, companies and
deals, then runs in a fresh child process: the initial pull, an increment with 1% of the
contacts changed, and an increment with nothing changed — each through the real adapter over
HTTP into a fresh SQLite file (or PostgreSQL schema). It prints, per run: API calls (the
sandbox's own count) and calls per 1,000 records, records per second, the share of wall time
the process spent on CPU (the rest is waiting on the network / the sandbox), and peak RSS —
which must not grow with the account's size.
"""

from __future__ import annotations

import argparse
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
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
# As `crmsync sync` pulls: two-way, local records matched and local edits merged, with the
# blueprint's default conflict policy.
CONFLICT_POLICY: Final = "remote_wins"


def _calls(base: str) -> int:
    return int(requests.get(f"{base}/_sandbox/stats", timeout=30).json()["total"])


def _touch_contacts(base: str, crm: str, token: str, share: float) -> tuple[int, int]:
    """Change `share` of the account's contacts through the CRM's own API: (contacts
    changed, list pages read to find them)."""
    if crm == "hubspot":
        headers = {"Authorization": f"Bearer {token}"}
        ids, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = requests.get(f"{base}/crm/v3/objects/contacts", params=params,
                                headers=headers, timeout=60).json()
            ids += [r["id"] for r in page["results"]]
            after = (page.get("paging") or {}).get("next", {}).get("after")
            if not after:
                break
        chosen = ids[:: max(1, round(1 / share))]
        for start in range(0, len(chosen), 100):
            inputs = [{"id": i, "properties": {"jobtitle": "Changed"}}
                      for i in chosen[start:start + 100]]
            requests.post(f"{base}/crm/v3/objects/contacts/batch/update",
                          json={"inputs": inputs}, headers=headers,
                          timeout=60).raise_for_status()
        return len(chosen), -(-len(ids) // 100)
    headers = {"x-api-token": token}
    ids, cursor = [], None
    pages = 0
    while True:
        pages += 1
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{base}/api/v2/persons", params=params, headers=headers,
                            timeout=60).json()
        ids += [r["id"] for r in page["data"]]
        cursor = (page.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            break
    chosen = ids[:: max(1, round(1 / share))]
    for person_id in chosen:
        requests.patch(f"{base}/api/v2/persons/{person_id}", json={"name": "Changed Person"},
                       headers=headers, timeout=60).raise_for_status()
    return len(chosen), pages


def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def child(args: argparse.Namespace) -> None:
    """One account's runs, in this fresh process; prints one JSON line per run."""
    from crmsync.adapters.registry import create_adapter
    from crmsync.settings import Settings
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules

    crm = args.crm[0]
    settings = Settings(**{f"{crm}_base_url": args.base, f"{crm}_token": args.token,
                           "store_url": args.store_url,
                           "hubspot_search_lag_seconds": 0})  # type: ignore[arg-type]
    adapter = create_adapter(crm, settings)
    store = open_store(args.store_url, schema=args.schema)
    for run in ("initial", "incremental-1%", "no-change"):
        if run == "incremental-1%":
            _touch_contacts(args.base, crm, args.token, 0.01)
        before_calls = _calls(args.base)
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        result = pull_client("bench", crm, adapter, store, MappingRules(),  # type: ignore[arg-type]
                             conflict_policy=CONFLICT_POLICY)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        calls = _calls(args.base) - before_calls
        pulled = result.total("pulled")
        print(json.dumps({
            "run": run, "pulled": pulled, "calls": calls,
            "calls_per_1000": round(calls / max(pulled, 1) * 1000, 2) if pulled else None,
            "records_per_s": round(pulled / wall) if wall else None,
            "wall_s": round(wall, 2), "cpu_share": round(cpu / wall, 2) if wall else None,
            "cpu_ms_per_record": round(cpu * 1000 / pulled, 3) if pulled else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)
    adapter.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--crm", nargs="+", default=["hubspot", "pipedrive"])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    rows: list[dict[str, Any]] = []
    with sandbox_process() as base:
        requests.post(f"{base}/_sandbox/faults", json={"latency_ms": args.latency_ms},
                      timeout=10).raise_for_status()
        print(f"{'crm':<10}{'records/type':>13}  {'run':<15}{'pulled':>8}{'calls':>7}"
              f"{'calls/1k':>9}{'rec/s':>8}{'cpu share':>10}{'ms cpu/rec':>11}{'peak RSS':>9}")
        for crm in args.crm:
            for size in args.sizes:
                requests.post(f"{base}/_sandbox/reset", timeout=60).raise_for_status()
                requests.post(f"{base}/_sandbox/faults", json={"latency_ms": args.latency_ms},
                              timeout=10).raise_for_status()
                token = f"bench-{crm}-{size}"
                requests.post(f"{base}/_sandbox/seed", timeout=600, json={
                    "crm": crm, "token": token, "contacts": size, "companies": size,
                    "deals": size, "seed": 1}).raise_for_status()
                with tempfile.TemporaryDirectory() as tmp:
                    store_url, schema = f"sqlite:///{tmp}/bench.db", None
                    if args.store == "postgres":
                        store_url = os.environ.get(
                            "CRMSYNC_TEST_POSTGRES_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/test")
                        schema = f"bench_{uuid.uuid4().hex[:10]}"
                    command = [sys.executable, __file__, "--child", "--crm", crm, "--base", base,
                               "--token", token, "--store-url", store_url]
                    if schema:
                        command += ["--schema", schema]
                    out = subprocess.run(command, capture_output=True, text=True, check=True,
                                         cwd=ROOT).stdout
                    if schema:
                        _drop_schema(store_url, schema)
                for line in out.splitlines():
                    row = {"crm": crm, "size": size, **json.loads(line)}
                    rows.append(row)
                    print(f"{crm:<10}{size:>13,}  {row['run']:<15}{row['pulled']:>8,}"
                          f"{row['calls']:>7}{row['calls_per_1000'] or '-':>9}"
                          f"{row['records_per_s'] or '-':>8}{row['cpu_share'] or '-':>10}"
                          f"{row['cpu_ms_per_record'] or '-':>11}{row['peak_rss_mb']:>6} MB",
                          flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
