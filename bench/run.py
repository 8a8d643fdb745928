"""The one-command bench: crmsync's pull against a realistic sandbox, one table per CRM.

    .venv/bin/python bench/run.py                      # 10k per type, both CRMs (minutes)
    .venv/bin/python bench/run.py --sizes 10000 100000 # add 100k
    .venv/bin/python bench/run.py --million            # + HubSpot contacts at 1M (long)
    .venv/bin/python bench/run.py --json out.json      # keep the figures to compare runs
    .venv/bin/python bench/run.py --compare out.json   # ... and print the change against them
    .venv/bin/python bench/run.py --store postgresql   # the store on PostgreSQL (default SQLite)
    .venv/bin/python bench/run.py --initial-only       # the initial pulls alone (no push)

The sandbox runs in its own process with realistic settings: 100 ms ± 30 ms latency;
HubSpot Professional (190 requests per 10 s, search 4 per second, 650k a day); Pipedrive's
`--plan` (burst per 2 s and daily token budget). Each run is a fresh child process over a
fresh SQLite store (so CPU time and peak RSS are crmsync's alone): the initial pull (HubSpot:
via export and via the list API), an increment with 1% of the contacts changed, and a run
with nothing changed. Per run: API calls (the sandbox's count) and calls per 1,000 records,
Pipedrive tokens per 1,000 (from `x-daily-requests-left`), the achieved request rate as a
share of the allowed one, 429s drawn, wall time against the floor (calls ÷ allowed rate),
CPU time per record and peak RSS. An export's own processing time (HubSpot's, emulated as
`--export-seconds-per-1000`) is in the wall time and reported beside it; the local part
(download, parse, store) is `local rec/s`, the records over the wall time without that wait.

Push figures: `PUSH_HOOK` names a callable `(base, crm, token, size) -> list[dict]` that the
two-way work can fill in; its rows join the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sandbox_process import sandbox_process
from sync_pull import _calls, _touch_contacts

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
# As `crmsync sync` pulls: two-way, local records matched and local edits merged, with the
# blueprint's default conflict policy.
CONFLICT_POLICY: Final = "remote_wins"
HUBSPOT_PER_10S = 190
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BURST = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
PUSH_HOOK: str | None = "push_rows:push_rows"  # "module:function" for push figures (two-way sync)


def allowed_rate(crm: str, plan: str) -> float:
    """Requests per second the CRM allows this account (search aside)."""
    return HUBSPOT_PER_10S / 10 if crm == "hubspot" else BURST[plan] / 2


def _per_1000(count: float, pulled: int) -> float | None:
    return round(count / pulled * 1000, 2) if pulled else None


def child(args: argparse.Namespace) -> None:
    """One account's runs in this fresh process; one JSON line per run."""
    from crmsync.adapters.registry import create_adapter
    from crmsync.settings import Settings
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules

    settings = Settings(**{f"{args.crm}_base_url": args.base, f"{args.crm}_token": args.token,
                           "store_url": args.store_url,
                           "sync_concurrency": int(args.concurrency),
                           "hubspot_tier": "professional",
                           "pipedrive_plan": args.plan,
                           # the sandbox has no search lag: increments read up to now
                           "hubspot_search_lag_seconds": 0})  # type: ignore[arg-type]
    adapter: Any = create_adapter(args.crm, settings)
    if args.crm == "hubspot":
        adapter.initial_load = args.initial_load
    store = open_store(args.store_url, schema=args.schema or None)
    types = tuple(args.types.split(","))
    runs = ["initial", "incremental-1%", "no-change"] if not args.initial_only else ["initial"]
    for run in runs:
        # The bench's own edits spend the same daily budget (a v2 list page costs 10 tokens,
        # an update 5): the adapter sees that drop in its first answer, so it is taken out.
        touch_tokens = 0
        if run == "incremental-1%":
            touched, listed = _touch_contacts(args.base, args.crm, args.token, 0.01)
            touch_tokens = 10 * listed + 5 * touched if args.crm == "pipedrive" else 0
        calls0, spent0, throttled0 = (_calls(args.base), adapter.policy.budget.spent,
                                      adapter.policy.throttled)
        loaded0 = getattr(adapter, "export_load_seconds", 0.0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = pull_client("bench", args.crm, adapter, store, MappingRules(),
                             object_types=types,  # type: ignore[arg-type]
                             concurrency=settings.sync_concurrency,
                             conflict_policy=CONFLICT_POLICY)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        calls = _calls(args.base) - calls0
        pulled = result.total("pulled")
        rate = allowed_rate(args.crm, args.plan)
        floor = calls / rate
        # The local part of an export load (download, parse, store) is timed by the adapter
        # (one file loads at a time); the rest of the wall time is HubSpot's side.
        local = (getattr(adapter, "export_load_seconds", 0.0) - loaded0
                 if args.initial_load == "export" else None)
        export_wait = wall - local if local is not None else None
        print(json.dumps({
            "run": run, "pulled": pulled, "calls": calls,
            "calls_per_1000": _per_1000(calls, pulled),
            "tokens_per_1000": _per_1000(
                adapter.policy.budget.spent - spent0 - touch_tokens, pulled)
            if args.crm == "pipedrive" else None,
            "rate_share": round(calls / wall / rate, 2) if wall else None,
            "throttled": adapter.policy.throttled - throttled0,
            "wall_s": round(wall, 2), "floor_s": round(floor, 2),
            "export_wait_s": round(export_wait, 1) if export_wait is not None else None,
            "local_records_per_s": round(pulled / local) if local and pulled else None,
            "local_s": round(local, 1) if local else None,
            "cpu_ms_per_record": round(cpu * 1000 / pulled, 3) if pulled else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)
    adapter.close()
    store.close()


def _row_text(row: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    return (f"{row['label']:<33}{row['size']:>10,}  {row['run']:<15}{row['pulled']:>9,}"
            f"{row['calls']:>7}{show(row['calls_per_1000']):>9}"
            f"{show(row['tokens_per_1000']):>9}{show(row['rate_share']):>7}"
            f"{row['throttled']:>5}{row['wall_s']:>9}{row['floor_s']:>9}"
            f"{show(row['export_wait_s']):>8}{show(row.get('local_records_per_s')):>10}"
            f"{show(row['cpu_ms_per_record']):>9}"
            f"{row['peak_rss_mb']:>6} MB")


HEADER = (f"{'crm / initial load / store':<33}{'per type':>10}  {'run':<15}{'pulled':>9}"
          f"{'calls':>7}"
          f"{'calls/1k':>9}{'tok/1k':>9}{'rate':>7}{'429':>5}{'wall s':>9}{'floor s':>9}"
          f"{'export':>8}{'local r/s':>10}{'ms cpu':>9}{'peak RSS':>9}")


def _realism(plan: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms,
            "rate_limits_enabled": True, "hubspot_limit_per_10s": HUBSPOT_PER_10S,
            "hubspot_search_per_s": 4, "pipedrive_plan": plan,
            "hubspot_export_seconds_per_1000": args.export_seconds_per_1000,
            "hubspot_export_base_seconds": 5.0}


def _cases(args: argparse.Namespace) -> list[tuple[str, str, int, str]]:
    """(crm, initial load, size per type, object types)."""
    cases = []
    for crm in args.crm:
        for size in args.sizes:
            if crm == "hubspot":
                cases += [(crm, load, size, "companies,contacts,deals") for load in args.loads]
            else:
                cases.append((crm, "list", size, "companies,contacts,deals"))
    if args.million and "hubspot" in args.crm:
        if "export" in args.loads:
            cases.append(("hubspot", "export", 1_000_000, "contacts"))
        if args.million_list:
            cases.append(("hubspot", "list", 1_000_000, "contacts"))
    return cases


EMPTY_ROW: dict[str, Any] = {
    "run": "?", "pulled": 0, "calls": 0, "calls_per_1000": None, "tokens_per_1000": None,
    "rate_share": None, "throttled": 0, "wall_s": 0.0, "floor_s": 0.0, "export_wait_s": None,
    "local_records_per_s": None, "cpu_ms_per_record": None, "peak_rss_mb": 0}

COMPARED = ("calls", "calls_per_1000", "tokens_per_1000", "rate_share", "throttled", "wall_s",
            "local_records_per_s", "cpu_ms_per_record", "peak_rss_mb")


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["crm"], row.get("initial_load"), row["size"], row.get("types"), row["run"])


def compare(old_rows: list[dict[str, Any]], new_rows: list[dict[str, Any]]) -> list[str]:
    """One line per row both runs have: each figure that changed, old → new."""
    old = {_row_key(r): r for r in old_rows}
    lines = []
    for row in new_rows:
        before = old.get(_row_key(row))
        if before is None:
            continue
        changes = [f"{name} {before.get(name)} → {row.get(name)}" for name in COMPARED
                   if before.get(name) != row.get(name)]
        lines.append(f"{row['label']} {row['size']:,} {row['run']}: "
                     + ("; ".join(changes) if changes else "unchanged"))
    return lines


@contextmanager
def _store_url(kind: str, postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh, empty store for one case: (URL, PostgreSQL schema or "")."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db", ""
        return
    from sqlalchemy import create_engine, text

    schema = f"crmsync_bench_{uuid.uuid4().hex[:10]}"
    try:
        yield postgres_url, schema
    finally:
        engine = create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _push_rows(base: str, crm: str, token: str, size: int) -> list[dict[str, Any]]:
    """Rows of the push side, from `PUSH_HOOK` (same keys as a pull row; `pulled` = pushed)."""
    if not PUSH_HOOK:
        return []
    import importlib

    module, _, name = PUSH_HOOK.partition(":")
    push = getattr(importlib.import_module(module), name)
    return list(push(base, crm, token, size))


def _print_row(rows: list[dict[str, Any]], figures: dict[str, Any],
               case: tuple[str, str, int, str], store: str) -> None:
    crm, load, size, types = case
    row = {**EMPTY_ROW, "crm": crm, "label": f"{crm} / {load} / {store}",
           "initial_load": load, "size": size, "types": types, **figures}
    rows.append(row)
    print(_row_text(row), flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000])
    parser.add_argument("--crm", nargs="+", default=["hubspot", "pipedrive"])
    parser.add_argument("--loads", nargs="+", default=["export", "list"],
                        help="HubSpot's initial-load cases to run (default both)")
    parser.add_argument("--million", action="store_true",
                        help="also HubSpot contacts at 1M via export (seeding takes minutes)")
    parser.add_argument("--million-list", action="store_true",
                        help="with --million, also via the list API (about 15 minutes)")
    parser.add_argument("--plan", default="growth", choices=sorted(BURST))
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=30.0)
    parser.add_argument("--export-seconds-per-1000", type=float, default=0.02)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--compare", type=Path,
                        help="a file an earlier --json wrote: print what changed against it")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help="with --store postgresql (each case gets a fresh schema)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="CRMSYNC_SYNC_CONCURRENCY for the runs (1: one request at a time)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--base", "--token", "--store-url", "--schema", "--initial-load",
                   "--types"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--initial-only", action="store_true",
                        help="only the initial pull of each case (no increments, no push)")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.child:
        args.crm = args.crm[0]
        child(args)
        return
    rows: list[dict[str, Any]] = []
    with sandbox_process() as base:
        print(HEADER)
        for crm, load, size, types in _cases(args):
            requests.post(f"{base}/_sandbox/reset", timeout=60).raise_for_status()
            requests.post(f"{base}/_sandbox/faults", json=_realism(args.plan, args),
                          timeout=10).raise_for_status()
            token = f"bench-{crm}-{load}-{size}"
            counts = {t: (size if t in types else 0) for t in ("contacts", "companies", "deals")}
            if types == "contacts":  # the 1M case: contacts with their company associations
                counts["companies"] = size // 10
            requests.post(f"{base}/_sandbox/seed", timeout=3600, json={
                "crm": crm, "token": token, "seed": 1, **counts}).raise_for_status()
            with _store_url(args.store, args.postgres_url) as (url, schema):
                command = [sys.executable, __file__, "--child", "--crm", crm, "--base", base,
                           "--token", token, "--store-url", url, "--schema", schema,
                           "--initial-load", load, "--types", types, "--plan", args.plan,
                           "--concurrency", str(args.concurrency)]
                if size >= 1_000_000 or args.initial_only:
                    command.append("--initial-only")
                done = subprocess.run(command, capture_output=True, text=True, check=False,
                                      cwd=ROOT)
                if done.returncode != 0:
                    raise SystemExit(f"{crm} / {load} at {size:,} failed:\n{done.stderr}")
                out = done.stdout
            found = [json.loads(line) for line in out.splitlines()]
            for figures in found:  # printed before the push rows, which take a while
                _print_row(rows, figures, (crm, load, size, types), args.store)
            # One push per CRM and size (HubSpot has two pull cases), not at 1M (a pull case).
            if load == "list" and size < 1_000_000 and not args.initial_only:
                for figures in _push_rows(base, crm, token, size):
                    _print_row(rows, figures, (crm, load, size, types), args.store)
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=2, default=str),
                             encoding="utf-8")
    if args.compare:
        old_rows = json.loads(args.compare.read_text(encoding="utf-8"))["rows"]
        print(f"\nagainst {args.compare}:")
        for line in compare(old_rows, rows):
            print("  " + line)


if __name__ == "__main__":
    main()
