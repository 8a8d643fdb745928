"""Several hosts, one PostgreSQL store, one cron line: each client synced once per round.

Two `crmsync sync` processes — separate engines, as on two hosts — start together over the
same ten clients. Clients divide between them through the store's leases and run log; the
run log must then show exactly one sync of each client, and each process's output must
account for every client (synced, or skipped because the other host had it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import requests
from sqlalchemy import func, select

from crmsync.store import open_store
from crmsync.store.schema import sync_runs

if TYPE_CHECKING:
    from tests.e2e.conftest import World

CLIENTS = [f"client_{n:02d}" for n in range(10)]


@pytest.mark.postgres
def test_two_hosts_sync_each_of_ten_clients_exactly_once(world: World,
                                                         postgres_store: str) -> None:
    for client in CLIENTS:
        data = world.example("acme")
        data["client"] = client
        data["token_env"] = f"{client.upper()}_TOKEN"
        token = f"{world.token}-{client}"
        world.write(data, token=token)
        requests.post(f"{world.sandbox}/_sandbox/seed", timeout=60, json={
            "crm": world.crm, "token": token, "contacts": 40, "companies": 10, "deals": 20,
            "seed": 1}).raise_for_status()
    world.faults(latency_ms=5)
    command = [sys.executable, "-c", "from crmsync.cli import main; main()", "sync",
               str(world.configs), "--json", "--workers", "2", "--min-interval", "600"]
    hosts = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(2)]
    outputs = [host.communicate(timeout=300) for host in hosts]
    world.faults(latency_ms=0)
    for host, (_out, err) in zip(hosts, outputs, strict=True):
        assert host.returncode in (0, 4), err

    statuses: dict[str, list[str]] = {client: [] for client in CLIENTS}
    for out, _err in outputs:
        for entry in json.loads(out)["clients"]:
            statuses[entry["client"]].append(entry["status"])
    for client, seen in statuses.items():
        assert sorted(seen)[0] in ("done-elsewhere", "held", "ok"), (client, seen)
        assert seen.count("ok") == 1, (client, seen)

    with open_store(postgres_store) as store, store.engine.connect() as conn:
        runs = dict(conn.execute(select(sync_runs.c.client, func.count()).where(
            sync_runs.c.status == "ok").group_by(sync_runs.c.client)).all())
    assert runs == dict.fromkeys(CLIENTS, 1)
