"""How many simple requests per second the sandbox serves (latency, faults and limits off),
and how long seeding 100,000 synthetic records takes in each CRM.

    .venv/bin/python bench/sandbox_throughput.py [--requests 3000] [--url URL]

Starts the sandbox in a child process (so the client threads do not share its GIL) on a
free loopback port, unless --url points at a running one. Each level runs a fixed number of
requests from N threads, each with its own keep-alive connection, and prints the rate.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN = "bench"  # each token is its own sandbox account: seed the one the requests use
HEADERS = {"Authorization": f"Bearer {TOKEN}", "x-api-token": TOKEN}
ROUTES = {
    "hubspot pipelines": "/crm/v3/pipelines/deals",
    "hubspot contacts page": "/crm/v3/objects/contacts?limit=10",
    "pipedrive pipelines": "/api/v2/pipelines",
}


def _serve(queue: mp.Queue[str], stop: mp.Event) -> None:  # type: ignore[type-arg]
    from crmsync.sandbox import start_sandbox

    server = start_sandbox("127.0.0.1", 0)
    queue.put(server.base_url)
    stop.wait()
    server.stop()


def measure(url: str, threads: int, total: int) -> tuple[float, int]:
    """(requests per second, errors) for `total` GETs of `url` from `threads` threads."""
    per_thread = total // threads
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path

    def get(connection: http.client.HTTPConnection) -> int:
        connection.request("GET", target, headers=HEADERS)
        response = connection.getresponse()
        response.read()
        return response.status

    def work() -> None:
        # http.client rather than requests: requests costs ~1 ms of client CPU per call,
        # which would measure the client, not the server.
        nonlocal errors
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=10)
        get(connection)  # open the keep-alive connection
        barrier.wait()
        bad = sum(1 for _ in range(per_thread) if get(connection) != 200)
        connection.close()
        with lock:
            errors += bad

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return per_thread * threads / elapsed, errors


def _client_process(url: str, threads: int, total: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(measure(url, threads, total))


def measure_processes(url: str, processes: int, threads: int, total: int) -> tuple[float, int]:
    """Like `measure`, from several client processes, so client CPU is not the ceiling."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    children = [ctx.Process(target=_client_process,
                            args=(url, threads, total // processes, barrier, out))
                for _ in range(processes)]
    for child in children:
        child.start()
    results = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join()
    return sum(rate for rate, _ in results), sum(errors for _, errors in results)


def measure_seeding(base_url: str, records: int, echo: Callable[[str], None]) -> None:
    """Seconds to seed `records` synthetic records (split 60/15/25 over contacts, companies
    and deals) into a fresh account of each CRM, through POST /_sandbox/seed."""
    split = {"contacts": records * 60 // 100, "companies": records * 15 // 100}
    split["deals"] = records - split["contacts"] - split["companies"]
    for crm in ("hubspot", "pipedrive"):
        started = time.perf_counter()
        response = requests.post(f"{base_url}/_sandbox/seed", timeout=300, json={
            "crm": crm, **split, "seed": 7, "token": f"seed-bench-{crm}"})
        response.raise_for_status()
        echo(f"seeded {records:,} {crm} records in {time.perf_counter() - started:.2f} s")


def run(base_url: str, total: int, echo: Callable[[str], None] = print) -> None:
    requests.post(f"{base_url}/_sandbox/reset", timeout=10).raise_for_status()
    requests.post(f"{base_url}/_sandbox/seed", timeout=60, json={
        "crm": "hubspot", "contacts": 100, "companies": 20, "deals": 50, "seed": 1,
        "token": TOKEN,
    }).raise_for_status()
    echo(f"sandbox at {base_url}; {total} requests per level, keep-alive connections")
    echo(f"{'route':<24}{'threads':>8}{'req/s':>10}{'errors':>8}  (PxT = processes x threads)")
    for name, path in ROUTES.items():
        for threads in (1, 4, 16):
            rate, errors = measure(base_url + path, threads, total)
            echo(f"{name:<24}{threads:>8}{rate:>10.0f}{errors:>8}")
    for processes in (2, 4):
        rate, errors = measure_processes(base_url + ROUTES["hubspot pipelines"], processes, 4,
                                         total)
        label = f"{processes}x4"
        echo(f"{'hubspot pipelines':<24}{label:>8}{rate:>10.0f}{errors:>8}")
    measure_seeding(base_url, 100_000, echo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per level")
    parser.add_argument("--url", default=None, help="a running sandbox (default: start one)")
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args.requests)
        return
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(queue, stop), daemon=True)
    child.start()
    try:
        run(queue.get(timeout=30), args.requests)
    finally:
        stop.set()
        child.join(timeout=10)


if __name__ == "__main__":
    main()
