"""Push rows for `bench/run.py` (its `PUSH_HOOK`): crmsync pushing local changes at the rate
limit, against the account the pull rows just measured.

    PUSH_HOOK = "push_rows:push_rows"   # in bench/run.py
    .venv/bin/python bench/push_rows.py --crm pipedrive --size 1000   # alone, own sandbox

For one (CRM, size) a fresh child process (so CPU time and peak RSS are crmsync's alone):
pulls the account's contacts into a fresh SQLite store (setup, not measured), then measures
two pushes through `push_client`, with `CRMSYNC_SYNC_CONCURRENCY` requests in flight:

- **push-update**: `size` contacts edited locally (their last name): HubSpot batch updates
  of 100, Pipedrive one PATCH per record;
- **push-create**: `size` new contacts created locally: HubSpot batch upserts by email of
  100, Pipedrive a POST per record, each looked for first in one listing of the persons
  changed since the pull (the push-update's among them; read again every 10 s).

Each row has the pull rows' columns: calls (the sandbox's count), calls and Pipedrive tokens
per 1,000 pushed records, the achieved rate as a share of the allowed rate, 429s, wall time
against the floor (calls ÷ allowed rate), CPU per record, peak RSS. Pipedrive's person search
has its own window (10 per 2 s): a create that searches (no finished pull to go by) is also
bound by it, and `search_floor_s` (searches ÷ 5 per s) says how far; the slower of the two
floors is the real one.

`BENCH_PUSH_MAX` (or `BENCH_PUSH_MAX_PIPEDRIVE`, `_HUBSPOT`) caps the records pushed per run
(Pipedrive at 10k takes many minutes per run: one request per record at 20 per second). The
growth plan's daily token budget (60,000 a seat) would not cover 10k creates (5 tokens each,
25 with a search), so the hook gives the account the seats the push needs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
CONSENT_FIELD = "marketing_consent"  # the consent field the sandbox seeds
HUBSPOT_PER_10S = 190
PIPEDRIVE_BURST = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
PIPEDRIVE_TOKENS = {"update": 5, "create": 25}  # a PATCH; a POST (5), at most a search (20)
TOKENS_PER_SEAT = 30_000


def _config(base: str) -> dict[str, Any]:
    return requests.get(f"{base}/_sandbox/faults", timeout=10).json()  # type: ignore[no-any-return]


def _calls(base: str) -> tuple[int, int]:
    """(requests, person searches) the sandbox has served so far."""
    stats = requests.get(f"{base}/_sandbox/stats", timeout=30).json()
    searches = sum(n for route, n in stats["by_route"].items() if route.endswith("/search"))
    return int(stats["total"]), searches


def _tokens_left(base: str, token: str) -> int:
    """Pipedrive's daily token budget left for `token`, as its `x-daily-requests-left` says
    (the adapter's own count cannot be used: concurrent answers arrive out of order)."""
    response = requests.get(f"{base}/api/v1/users/me", headers={"x-api-token": token},
                            timeout=30)
    response.raise_for_status()
    return int(response.headers["x-daily-requests-left"])


def _tokens_spent(base: str, token: str, since: int) -> int:
    """Tokens spent since `since` was read, less the two reads' own cost."""
    left = _tokens_left(base, token)
    probe = left - _tokens_left(base, token)
    return since - left - probe


def allowed(crm: str, config: dict[str, Any]) -> tuple[float, float | None]:
    """(requests per second, searches per second or None) the account allows."""
    if crm == "hubspot":
        return float(config.get("hubspot_limit_per_10s") or HUBSPOT_PER_10S) / 10, None
    burst = config.get("pipedrive_burst_per_2s") or PIPEDRIVE_BURST[config["pipedrive_plan"]]
    return float(burst) / 2, float(config.get("pipedrive_search_per_2s") or 10) / 2


def push_rows(base: str, crm: str, token: str, size: int) -> list[dict[str, Any]]:
    """The hook: push-update and push-create rows for `crm`'s account of `token`."""
    cap = os.environ.get(f"BENCH_PUSH_MAX_{crm.upper()}") or os.environ.get("BENCH_PUSH_MAX")
    count = min(size, int(cap or size))
    config = _config(base)
    if crm == "pipedrive":
        plan_tokens = TOKENS_PER_SEAT * {"lite": 1, "growth": 2, "premium": 5,
                                         "ultimate": 7}[config["pipedrive_plan"]]
        need = count * sum(PIPEDRIVE_TOKENS.values()) + 50 * size  # + the setup's pull
        seats = max(int(config.get("pipedrive_seats") or 1), math.ceil(need / plan_tokens) + 1)
        requests.post(f"{base}/_sandbox/faults", json={"pipedrive_seats": seats},
                      timeout=10).raise_for_status()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--child", "--crm", crm, "--base", base,
                   "--token", token, "--store-url", f"sqlite:///{tmp}/push.db",
                   "--count", str(count)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{crm} push at {count:,} failed:\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _edit(store: Any, count: int) -> int:
    from crmsync.store.local import LocalRow

    local = store.local("bench")
    ids = [r["id"] for r in store.records("bench").live("contacts")][:count]
    for start in range(0, len(ids), 1000):
        local.apply_rows("contacts", [LocalRow({"last_name": "Changed-locally"}, record_id=i)
                                      for i in ids[start:start + 1000]])
    return len(ids)


def _create(store: Any, count: int) -> int:
    from crmsync.store.local import LocalRow

    local = store.local("bench")
    for start in range(0, count, 1000):
        local.apply_rows("contacts", [
            LocalRow({"email": f"pushed{n}@bench-push.example", "first_name": "Pushed",
                      "consent": True}, {CONSENT_FIELD: "true"})
            for n in range(start, min(count, start + 1000))])
    return count


def child(args: argparse.Namespace) -> None:
    """Setup, then one JSON line per measured push (see the module docstring)."""
    from crmsync.adapters.registry import create_adapter
    from crmsync.settings import Settings
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.mapping import MappingRules
    from crmsync.sync.push import PushRules, push_client

    settings = Settings(**{f"{args.crm}_base_url": args.base, f"{args.crm}_token": args.token,
                           "store_url": args.store_url})  # type: ignore[arg-type]
    adapter: Any = create_adapter(args.crm, settings)
    if args.crm == "hubspot":
        adapter.initial_load = "list"
    store = open_store(args.store_url)
    mapping = MappingRules(consent_field=CONSENT_FIELD)
    pull_client("bench", args.crm, adapter, store, mapping, object_types=("contacts",))
    rules = PushRules(crm=args.crm, mapping=mapping, concurrency=settings.sync_concurrency)
    rate, search_rate = allowed(args.crm, _config(args.base))
    for run, prepare in (("push-update", _edit), ("push-create", _create)):
        changed = prepare(store, args.count)
        left0 = _tokens_left(args.base, args.token) if args.crm == "pipedrive" else 0
        calls0, searches0 = _calls(args.base)
        throttled0 = adapter.policy.throttled
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = push_client("bench", adapter, store, rules, object_types=("contacts",))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        calls, searches = (n - n0 for n, n0 in zip(_calls(args.base), (calls0, searches0),
                                                   strict=True))
        pushed = result.total("created") + result.total("updated")
        if pushed != changed or result.total("failed"):
            raise SystemExit(f"{run}: pushed {pushed} of {changed}, "
                             f"{result.total('failed')} failed: {result.failures[:3]}")
        floor = calls / rate
        print(json.dumps({
            "run": run, "pulled": pushed, "calls": calls,
            "calls_per_1000": round(calls / pushed * 1000, 2),
            "tokens_per_1000": round(_tokens_spent(args.base, args.token, left0) / pushed
                                     * 1000, 1) if args.crm == "pipedrive" else None,
            "rate_share": round(calls / wall / rate, 2) if wall else None,
            "throttled": adapter.policy.throttled - throttled0,
            "wall_s": round(wall, 2), "floor_s": round(floor, 2),
            "wall_over_floor": round(wall / floor, 3) if floor else None,
            "search_floor_s": round(searches / search_rate, 2) if search_rate else None,
            "concurrency": rules.concurrency,
            "cpu_ms_per_record": round(cpu * 1000 / pushed, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)
    adapter.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", default="pipedrive", choices=["hubspot", "pipedrive"])
    parser.add_argument("--size", type=int, default=1000, help="records seeded and pushed")
    parser.add_argument("--plan", default="growth", choices=sorted(PIPEDRIVE_BURST))
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=30.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--base", "--token", "--store-url", "--count"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.count = int(args.count)
        child(args)
        return
    sys.path.insert(0, str(BENCH))
    from sandbox_process import sandbox_process

    with sandbox_process() as base:
        token = f"bench-push-{args.crm}"
        requests.post(f"{base}/_sandbox/faults", timeout=10, json={
            "latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms,
            "rate_limits_enabled": True, "hubspot_limit_per_10s": HUBSPOT_PER_10S,
            "hubspot_search_per_s": 4, "pipedrive_plan": args.plan}).raise_for_status()
        requests.post(f"{base}/_sandbox/seed", timeout=3600, json={
            "crm": args.crm, "token": token, "seed": 1, "contacts": args.size,
            "companies": 0, "deals": 0}).raise_for_status()
        for row in push_rows(base, args.crm, token, args.size):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
