"""API calls, wall time and 429s of `apply` and a no-op `diff`, against a realistic sandbox.

    .venv/bin/python bench/provision_calls.py [--latency-ms 40] [--jitter-ms 20] [--stages 60]

The sandbox (in this process, on a free loopback port) adds latency and enforces each CRM's
real rate limits (HubSpot 100 requests per rolling 10 s, Pipedrive Lite 20 per 2 s). For each
CRM it applies the example blueprints (configs/*.yaml, `crm:` switched as needed, each client
in its own account), then diffs again, then applies one pipeline of `--stages` stages — enough
to run into the rate limit, so the figures show whether pacing keeps clear of 429s.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from crmsync.provision import apply_clients, diff_clients
from crmsync.sandbox import start_sandbox
from crmsync.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "configs"


def _stats(base_url: str) -> dict[str, Any]:
    return requests.get(f"{base_url}/_sandbox/stats", timeout=10).json()


def _write_blueprints(folder: Path, crm: str, stages: int) -> list[Path]:
    paths = []
    for example in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(example.read_text(encoding="utf-8"))
        data.update(crm=crm, token_env=f"BENCH_{data['client'].upper()}_TOKEN")
        paths.append(folder / example.name)
        paths[-1].write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    open_stages = [
        {"key": f"step_{i}", "label": f"Step {i} completed",
         "probability": round(0.1 + 0.8 * i / stages, 1 if crm == "hubspot" else 2)}
        for i in range(stages)
    ]
    big = {"client": "bigco", "crm": crm, "token_env": "BENCH_BIGCO_TOKEN", "pipelines": [{
        "key": "long_process", "label": "Long process", "stages": [
            *open_stages,
            {"key": "won", "label": "Won", "probability": 1.0, "outcome": "won"},
            {"key": "lost", "label": "Lost", "probability": 0.0, "outcome": "lost"},
        ]}]}
    big_path = folder / "big" / "bigco.yaml"
    big_path.parent.mkdir(exist_ok=True)
    big_path.write_text(yaml.safe_dump(big), encoding="utf-8")
    return [*paths, big_path]


def _measure(label: str, base_url: str, action: Any) -> None:
    before = _stats(base_url)
    started = time.perf_counter()
    outcome = action()
    elapsed = time.perf_counter() - started
    after = _stats(base_url)
    calls = after["total"] - before["total"]
    limited = after["rate_limited"] - before["rate_limited"]
    print(f"  {label:<44} {calls:>5} calls  {elapsed:>6.2f} s  {limited:>3} x 429  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--stages", type=int, default=60)
    args = parser.parse_args()

    server = start_sandbox(port=0)
    base_url = server.base_url
    requests.post(f"{base_url}/_sandbox/faults", json={
        "latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms, "seed": 1,
        "rate_limits_enabled": True, "hubspot_limit_per_10s": 100, "pipedrive_plan": "lite",
    }, timeout=10).raise_for_status()
    print(f"sandbox {base_url}: latency {args.latency_ms:.0f}±{args.jitter_ms:.0f} ms, "
          "HubSpot 100/10 s, Pipedrive Lite 20/2 s")
    try:
        for crm in ("hubspot", "pipedrive"):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                paths = _write_blueprints(folder, crm, args.stages)
                for path in paths:
                    client = yaml.safe_load(path.read_text(encoding="utf-8"))["client"]
                    os.environ[f"BENCH_{client.upper()}_TOKEN"] = f"bench-{crm}-{client}"
                settings = Settings(
                    store_url=f"sqlite:///{folder / 'store.db'}",
                    hubspot_base_url=base_url, pipedrive_base_url=base_url,
                )
                examples, big = paths[:-1], paths[-1:]
                print(f"{crm}:")

                def apply(selected: list[Path], settings: Settings = settings) -> str:
                    outcomes = apply_clients(diff_clients(selected, settings), settings)
                    return ", ".join(f"{o.name.split()[0]}={o.status}" for o in outcomes)

                def diff(selected: list[Path], settings: Settings = settings) -> str:
                    return ", ".join(f"{c.name.split()[0]}={c.status}"
                                     for c in diff_clients(selected, settings))

                _measure(f"apply {len(examples)} example clients (plan+apply+check)",
                         base_url, functools.partial(apply, examples))
                _measure("diff them again (no changes)", base_url,
                         functools.partial(diff, examples))
                _measure(f"apply one pipeline of {args.stages} stages", base_url,
                         functools.partial(apply, big))
                _measure("diff it again (no changes)", base_url, functools.partial(diff, big))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
