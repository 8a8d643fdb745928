"""`crmsync sync` pushing with several requests in flight (`CRMSYNC_SYNC_CONCURRENCY`) ends
exactly where a sequential push ends: the CLI against the sandbox over real HTTP, two
accounts given the same records and the same local changes, one pushed with one request at a
time and one with four. Checks compare records: each account's store with its sandbox
account, and the two accounts with each other (records by key, associations by key).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.store import open_store
from tests.e2e.conftest import World
from tests.e2e.test_sync import assert_store_equals_sandbox, sandbox_truth, seed
from tests.e2e.test_sync_two_way import blueprint, run
from tests.sync import local_edits as local

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True, params=["sqlite", pytest.param("postgresql",
                                                              marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("postgres_store")
    return str(request.param)


def by_key(server: Any, world: World) -> dict[str, list[tuple[Any, ...]]]:
    """The sandbox account's live records as (key, associations by their targets' keys),
    sorted: what two accounts written alike hold alike, whatever ids they gave."""
    truth = sandbox_truth(server, world)
    key_of = {(t, rid): rec["key"] for t, records in truth.items()
              for rid, rec in records.items()}
    return {t: sorted((str(rec["key"]), tuple(sorted(
        (to_type, str(key_of.get((to_type, to_id))), primary)
        for to_type, to_id, primary in rec["links"]))) for rec in records.values())
            for t, records in truth.items()}


def pushed_account(world: World, server: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Seed, sync, change the store locally (creates that depend on creates of the same
    push, updates, a delete), sync again; returns the account's records by key."""
    path, data = blueprint(world, delete_policy="propagate")
    pipeline = data["pipelines"][0]
    seed(world, contacts=40, companies=10, deals=20)
    run(world, str(path))
    with open_store(world.store_url) as store:
        records = store.records("acme")
        for contact in [r["id"] for r in records.live("contacts")][:30]:
            local.edit(store, "contacts", contact, last_name=f"Local {contact}")
        companies = [local.create(store, "companies", name=f"New {n}",
                                  domain=f"new{n}.example") for n in range(12)]
        contacts = []
        for n in range(130):  # more than a HubSpot batch: batches in flight together
            contact = local.create(store, "contacts", email=f"new{n}@example.org",
                                   first_name=f"New {n}", consent=True,
                                   marketing_consent="true")
            local.associate(store, "contacts", contact, "companies", companies[n % 12],
                            primary=True)
            contacts.append(contact)
        for n in range(15):
            deal = local.create(store, "deals", name=f"New deal {n}",
                                pipeline_key=pipeline["key"],
                                stage_key=pipeline["stages"][1]["key"], status="open")
            local.associate(store, "deals", deal, "contacts", contacts[n])
            local.associate(store, "deals", deal, "companies", companies[n % 12],
                            primary=True)
        local.remove(store, "deals", next(iter(records.live("deals")))["id"])
    client = run(world, str(path))
    [push] = client["pushed"]
    assert (push["totals"]["created"], push["totals"]["failed"]) == (12 + 130 + 15, 0)
    assert push["totals"]["updated"] >= 30
    assert push["totals"]["archived"] == 1
    assert_store_equals_sandbox(server, world)
    return by_key(server, world)


def test_a_concurrent_push_ends_where_a_sequential_one_does(
        world: World, sandbox_server: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_SYNC_CONCURRENCY", "4")
    concurrent = pushed_account(world, sandbox_server)

    # A second account with its own store, configs and token, pushed one request at a time.
    token = f"e2e-{world.crm}-seq-{uuid.uuid4().hex}"
    sequential_world = World(world.crm, world.sandbox, token, tmp_path / "sequential",
                             monkeypatch)
    for name in ("CRMSYNC_HUBSPOT_TOKEN", "CRMSYNC_PIPEDRIVE_TOKEN"):
        monkeypatch.setenv(name, token)
    monkeypatch.setenv("CRMSYNC_CONFIGS_DIR", str(sequential_world.configs))
    monkeypatch.setenv("CRMSYNC_SYNC_CONCURRENCY", "1")
    # (SQLite whatever the first store: the comparison is of the two CRM accounts.)
    (tmp_path / "sequential").mkdir()
    monkeypatch.setenv("CRMSYNC_STORE_URL", f"sqlite:///{tmp_path / 'sequential' / 'crmsync.db'}")
    sequential = pushed_account(sequential_world, sandbox_server)

    assert concurrent == sequential
    new = [key for key, _links in concurrent["contacts"] if key.startswith("new")]
    assert len(new) == len(set(new)) == 130
