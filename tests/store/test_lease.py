"""The lease per (client, CRM): one holder at a time, across engines, threads and processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert, select

from crmsync.errors import LeaseHeldError
from crmsync.store.lease import advisory_key
from crmsync.store.schema import leases

if TYPE_CHECKING:
    from crmsync.store import Store
    from tests.store.conftest import StoreFactory


def test_a_held_lease_refuses_a_second_holder_and_names_the_first(store: Store) -> None:
    with store.lease("acme", "hubspot", purpose="apply") as held:
        assert held.client == "acme"
        assert "apply by pid" in held.holder
        with pytest.raises(LeaseHeldError) as caught, \
                store.lease("acme", "hubspot", purpose="sync"):
            pass  # pragma: no cover - never reached
        error = caught.value
        assert (error.client, error.crm, error.purpose) == ("acme", "hubspot", "sync")
        assert error.holder == held.holder
        assert error.exit_code == 4
        assert "another run holds its lease (apply by pid" in str(error)
        # Another client, or the same client's other CRM, is not affected.
        with store.lease("acme", "pipedrive", purpose="apply"), \
                store.lease("globex", "hubspot", purpose="apply"):
            pass
    with store.lease("acme", "hubspot", purpose="apply"):  # released on exit
        pass


def test_released_when_the_block_raises(store: Store) -> None:
    with pytest.raises(RuntimeError), store.lease("acme", "hubspot", purpose="apply"):
        raise RuntimeError("boom")
    with store.lease("acme", "hubspot", purpose="apply"):
        pass


def test_waiting_polls_with_the_sleeper_then_gives_up(store: Store) -> None:
    sleeps: list[float] = []
    with store.lease("acme", "hubspot", purpose="apply"), pytest.raises(LeaseHeldError), \
            store.lease("acme", "hubspot", purpose="apply", wait_seconds=1.2,
                        sleep=sleeps.append):
        pass  # pragma: no cover
    assert sleeps == [0.5, 0.5, pytest.approx(0.2)]


def test_waiting_gets_the_lease_once_the_holder_releases(open_test_store: StoreFactory) -> None:
    first, second = open_test_store(), open_test_store()  # two engines: two "hosts"
    holding = first.lease("acme", "hubspot", purpose="apply")
    holding.__enter__()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        holding.__exit__(None, None, None)  # the other run finishes while this one waits

    with second.lease("acme", "hubspot", purpose="apply", wait_seconds=5, sleep=sleep):
        assert sleeps == [0.5]


def test_threads_with_their_own_engines_never_hold_it_together(
        open_test_store: StoreFactory) -> None:
    stores = [open_test_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    inside: list[int] = []
    overlaps: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        for _ in range(5):
            try:
                with stores[index].lease("acme", "pipedrive", purpose="apply"):
                    with lock:
                        inside.append(index)
                        if len(inside) > 1:
                            overlaps.append(index)
                    with lock:
                        inside.remove(index)
            except LeaseHeldError as exc:
                refused.append(exc.holder)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert all("apply by pid" in holder or "not described" in holder for holder in refused)


def test_sqlite_takes_over_an_expired_lease(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL the advisory lock, not the row, is the lease")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with store.engine.begin() as conn:
        conn.execute(insert(leases).values(
            client="acme", crm="hubspot", token="x" * 32, purpose="apply", host="elsewhere",
            pid=1, acquired_at=past, expires_at=past + dt.timedelta(seconds=60)))
    with store.lease("acme", "hubspot", purpose="apply") as held, \
            store.engine.connect() as conn:
        assert conn.scalar(select(leases.c.token)) == held.token
    with store.engine.connect() as conn:
        assert conn.scalar(select(leases.c.token)) is None  # released


def test_a_lease_left_by_a_killed_process_is_recovered(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    schema = (store.engine.get_execution_options().get("schema_translate_map") or {}).get(None)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from crmsync.store import open_store\n"
         f"store = open_store({url!r}, schema={schema!r})\n"
         "with store.lease('acme', 'hubspot', purpose='apply'):\n"
         "    print('held', flush=True)\n"
         "    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeldError, match=f"pid {holder.pid}"), \
                store.lease("acme", "hubspot", purpose="apply"):
            pass  # pragma: no cover
    finally:
        holder.kill()  # SIGKILL: no `finally` of its own runs
        holder.wait()
    # PostgreSQL notices the dead connection within moments; poll for up to 10 s.
    with store.lease("acme", "hubspot", purpose="apply", wait_seconds=10) as held:
        assert f"pid {holder.pid} " not in held.holder


def test_advisory_keys_are_stable_and_distinct() -> None:
    assert advisory_key("acme", "hubspot") == advisory_key("acme", "hubspot")
    keys = {advisory_key("acme", "hubspot"), advisory_key("acme", "pipedrive"),
            advisory_key("acme", "hubspot", schema="s1"), advisory_key("acme2", "hubspot")}
    assert len(keys) == 4
    assert all(-(2**63) <= key < 2**63 for key in keys)
