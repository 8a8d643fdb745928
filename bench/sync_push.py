"""Figures of `crmsync sync` pushing local changes, against the sandbox: calls per change.

    .venv/bin/python bench/sync_push.py [--changed 1000] [--crm hubspot pipedrive]
                                        [--latency-ms 0] [--json OUT]

For each CRM it seeds one fresh sandbox account (the `acme` example blueprint applied to it,
`--changed` contacts and a few companies and deals), syncs it into a fresh SQLite store, then
measures three two-way runs through the real CLI (`crmsync sync`), counting the sandbox's own
API calls:

- **update**: `--changed` contacts edited locally (`Store.local`): push calls per 1,000
  changed records (HubSpot batch update of 100: target ≤ 11) and per record (Pipedrive: 1);
- **create**: `--changed` new contacts created locally (HubSpot batch upsert by email;
  Pipedrive looks for the person by email before it creates, in one listing of the persons
  changed since the run's pull: 1 call a record, plus that listing);
- **echo**: the run after each push pulls back the records the push changed (their
  modification time moved), finds them equal to the base, and pushes nothing;
- **no change**: a two-way run with nothing changed anywhere: at most one call per object
  type (the pull's three list calls, and no push call).

Push calls are the run's calls less its pull's (the pull reports its own) and less the one
per-run calls (the account check, `/account-info/v3/details` or Pipedrive's `/users/me`, and
Pipedrive's field definitions), which do not grow with the records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-push"  # the sandbox's fake token
# Calls a run makes once whatever it writes: the account check, and Pipedrive's field
# definitions (read once per run and type, to write custom fields under their keys).
PER_RUN_ROUTES = ("/account-info/", "/users/me", "Fields")
TARGETS = {"hubspot": ("push calls per 1,000 updates", 11.0),
           "pipedrive": ("push calls per updated record", 1.0)}


def _stats(base: str) -> dict[str, Any]:
    return requests.get(f"{base}/_sandbox/stats", timeout=30).json()  # type: ignore[no-any-return]


def _calls(base: str) -> int:
    return int(_stats(base)["total"])


def _cli(*args: str) -> dict[str, Any]:
    """One `crmsync … --json` command in this process; its single client's JSON."""
    from click.testing import CliRunner

    from crmsync.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"crmsync {' '.join(args)} exited {result.exit_code}:\n"
                         f"{result.output}")
    if "--json" not in args:
        return {}
    [client] = json.loads(result.stdout)["clients"]
    return client  # type: ignore[no-any-return]


def _measured(base: str, path: Path) -> dict[str, Any]:
    before = _stats(base)
    client = _cli("sync", "--json", str(path))
    after = _stats(base)
    calls = int(after["total"]) - int(before["total"])
    routes = {route: count - before["by_route"].get(route, 0)
              for route, count in after["by_route"].items()
              if count != before["by_route"].get(route, 0)}
    pull = int(client["totals"]["calls"])
    # Not a call of any object type, nor per record: counted apart.
    account = sum(n for route, n in routes.items() if any(a in route for a in PER_RUN_ROUTES))
    pushed = client["pushed"][0]["totals"]
    return {"calls": calls, "pull_calls": pull, "per_run_calls": account,
            "push_calls": calls - pull - account,
            "created": pushed["created"], "updated": pushed["updated"],
            "failed": pushed["failed"], "by_route": routes}


def bench_crm(crm: str, changed: int, latency_ms: float, base: str, workdir: Path
              ) -> list[dict[str, Any]]:
    """The three runs for one CRM (see the module docstring)."""
    from crmsync.store import open_store

    requests.post(f"{base}/_sandbox/reset", timeout=60).raise_for_status()
    requests.post(f"{base}/_sandbox/seed", timeout=600, json={
        "crm": crm, "token": TOKEN, "contacts": changed, "companies": 50, "deals": 50,
        "seed": 1}).raise_for_status()
    data = yaml.safe_load((ROOT / "configs" / "acme.yaml").read_text(encoding="utf-8"))
    data.update(crm=crm, conflict_policy="remote_wins")
    data.pop("token_env", None)  # CRMSYNC_<CRM>_TOKEN
    configs = workdir / crm
    configs.mkdir()
    path = configs / "acme.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    os.environ["CRMSYNC_STORE_URL"] = f"sqlite:///{workdir / f'{crm}.db'}"
    _cli("apply", "--yes", str(path))
    _cli("sync", "--json", str(path))
    requests.post(f"{base}/_sandbox/faults", json={"latency_ms": latency_ms},
                  timeout=10).raise_for_status()
    rows = []
    with open_store(os.environ["CRMSYNC_STORE_URL"]) as store:
        local = store.local("acme")
        ids = [r["id"] for r in store.records("acme").live("contacts")][:changed]
        for record_id in ids:
            local.update("contacts", record_id, {"last_name": "Changed-locally"})
    started = time.perf_counter()
    rows.append({"crm": crm, "run": "update", "changed": len(ids), **_measured(base, path),
                 "seconds": round(time.perf_counter() - started, 2)})
    rows.append({"crm": crm, "run": "echo", "changed": 0, **_measured(base, path),
                 "seconds": None})  # the next run pulls back what the push changed
    with open_store(os.environ["CRMSYNC_STORE_URL"]) as store:
        local = store.local("acme")
        for n in range(changed):
            local.create("contacts", {"email": f"new{n}@bench.example", "consent": True,
                                      "first_name": "New"}, {"marketing_consent": "true"})
    started = time.perf_counter()
    rows.append({"crm": crm, "run": "create", "changed": changed, **_measured(base, path),
                 "seconds": round(time.perf_counter() - started, 2)})
    rows.append({"crm": crm, "run": "echo", "changed": 0, **_measured(base, path),
                 "seconds": None})
    started = time.perf_counter()
    rows.append({"crm": crm, "run": "no change", "changed": 0, **_measured(base, path),
                 "seconds": round(time.perf_counter() - started, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changed", type=int, default=1000)
    parser.add_argument("--crm", nargs="+", default=["hubspot", "pipedrive"])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--routes", action="store_true", help="calls per API route too")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from crmsync.demo import patched_environ
    from crmsync.sandbox import start_sandbox

    server = start_sandbox(host="127.0.0.1", port=0)
    base = server.base_url
    env = {"CRMSYNC_HUBSPOT_BASE_URL": base, "CRMSYNC_PIPEDRIVE_BASE_URL": base,
           "CRMSYNC_HUBSPOT_TOKEN": TOKEN, "CRMSYNC_PIPEDRIVE_TOKEN": TOKEN,
           "CRMSYNC_HUBSPOT_SEARCH_LAG_SECONDS": "0", "CRMSYNC_STORE_URL": "sqlite://"}
    rows: list[dict[str, Any]] = []
    print(f"{'crm':<10}{'run':<11}{'changed':>8}{'calls':>7}{'pull':>6}{'push':>6}"
          f"{'push/1k':>9}{'push/rec':>9}{'created':>8}{'updated':>8}{'failed':>7}{'s':>7}")
    with tempfile.TemporaryDirectory() as tmp, patched_environ(env):
        try:
            for crm in args.crm:
                for row in bench_crm(crm, args.changed, args.latency_ms, base, Path(tmp)):
                    changed = row["changed"]
                    row["push_per_1000"] = (round(row["push_calls"] / changed * 1000, 2)
                                            if changed else None)
                    row["push_per_record"] = (round(row["push_calls"] / changed, 3)
                                              if changed else None)
                    rows.append(row)
                    print(f"{crm:<10}{row['run']:<11}{changed:>8,}{row['calls']:>7}"
                          f"{row['pull_calls']:>6}{row['push_calls']:>6}"
                          f"{row['push_per_1000'] or '-':>9}{row['push_per_record'] or '-':>9}"
                          f"{row['created']:>8}{row['updated']:>8}{row['failed']:>7}"
                          f"{row['seconds'] or '-':>7}", flush=True)
                    if args.routes:
                        for route, count in sorted(row["by_route"].items()):
                            print(f"{'':<10}{count:>7}  {route}")
        finally:
            server.stop()
    print()
    for crm in args.crm:
        name, target = TARGETS[crm]
        update = next(r for r in rows if r["crm"] == crm and r["run"] == "update")
        figure = update["push_per_1000"] if crm == "hubspot" else update["push_per_record"]
        idle = next(r for r in rows if r["crm"] == crm and r["run"] == "no change")
        idle_calls = idle["pull_calls"] + idle["push_calls"]
        print(f"{crm}: {name} {figure} (target ≤ {target:g}: "
              f"{'ok' if figure <= target else 'MISSED'}); no-change two-way run "
              f"{idle_calls} calls for 3 object types "
              f"({'ok' if idle_calls <= 3 else 'MISSED'}; + {idle['per_run_calls']} account "
              "check)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
