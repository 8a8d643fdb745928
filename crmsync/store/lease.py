"""Leases: at most one writing run per (client, CRM) at a time, on every host sharing a store.

`apply` holds one while it writes a client's pipelines; `sync` holds one while it syncs a
client. A second run asking for a held lease waits up to `wait_seconds`, then gets
`LeaseHeldError` naming the holder.

- PostgreSQL: a session-level `pg_try_advisory_lock` on a connection kept for the lease's
  life. A killed process's connection dies with it, and the server frees the lock. A `leases`
  row describes the holder for the other run's message (it is not the lock).
- SQLite: the `leases` row is the lease. It is taken when absent, expired, or left by a
  process on this host that is gone; a daemon thread renews it while it is held, so only a
  dead holder's lease expires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, text, update

from crmsync.errors import LeaseHeldError
from crmsync.store.dialects import insert_ignore, upsert
from crmsync.store.schema import leases

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

    from crmsync.store.store import Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]

LEASE_TTL_SECONDS = 60.0  # a SQLite lease not renewed for this long is free to take
POLL_SECONDS = 0.5  # how often a waiting run asks again


@dataclass(frozen=True)
class Lease:
    """A held lease: who holds it (this run) and the token that identifies the holder."""

    client: str
    crm: str
    purpose: str
    holder: str
    token: str


@contextmanager
def lease(store: Store, client: str, crm: str, *, purpose: str, wait_seconds: float = 0.0,
          sleep: Sleep = time.sleep, poll_seconds: float = POLL_SECONDS,
          ttl_seconds: float = LEASE_TTL_SECONDS) -> Iterator[Lease]:
    """Hold the lease of (client, crm) for the `with` block; see the module docstring.

    Raises `LeaseHeldError` when another run still holds it after `wait_seconds` (asked again
    every `poll_seconds`, sleeping with `sleep`).
    """
    backend: _Backend = (_PostgresBackend(store, client, crm, ttl_seconds)
                         if store.engine.dialect.name == "postgresql"
                         else _SqliteBackend(store, client, crm, ttl_seconds))
    waited = 0.0
    while True:
        held = backend.acquire(purpose)
        if held is None:
            break
        if waited >= wait_seconds:
            raise LeaseHeldError(client, crm, purpose, held)
        pause = min(poll_seconds, wait_seconds - waited)
        sleep(pause)
        waited += pause
    try:
        yield backend.lease
    finally:
        backend.release()


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns the stored UTC times without their zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def describe_holder(purpose: str, pid: int, host: str, since: dt.datetime) -> str:
    """ "apply by pid 123 on host h since 10:02:03 UTC" """
    return f"{purpose} by pid {pid} on host {host} since {_aware(since):%H:%M:%S} UTC"


def _describe_row(row: Row[Any] | None) -> str:
    if row is None:
        return "another run, which has not described itself yet"
    return describe_holder(row.purpose, row.pid, row.host, row.acquired_at)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class _Backend:
    def __init__(self, store: Store, client: str, crm: str, ttl_seconds: float) -> None:
        self.store = store
        self.client = client
        self.crm = crm
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lease = Lease(client, crm, "", "", self.token)

    def _mine(self) -> Any:
        return (leases.c.client == self.client) & (leases.c.crm == self.crm)

    def _values(self, purpose: str, now: dt.datetime) -> dict[str, Any]:
        self.lease = Lease(self.client, self.crm, purpose,
                           describe_holder(purpose, self.pid, self.host, now), self.token)
        return {"client": self.client, "crm": self.crm, "token": self.token,
                "purpose": purpose, "host": self.host, "pid": self.pid,
                "acquired_at": now, "expires_at": now + self.ttl}

    def _row(self, conn: Connection) -> Row[Any] | None:
        return conn.execute(select(leases).where(self._mine())).first()

    def acquire(self, purpose: str) -> str | None:
        """None once acquired; else the description of the holder."""
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class _SqliteBackend(_Backend):
    def __init__(self, store: Store, client: str, crm: str, ttl_seconds: float) -> None:
        super().__init__(store, client, crm, ttl_seconds)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _takeable(self, row: Row[Any], now: dt.datetime) -> bool:
        if _aware(row.expires_at) <= now:
            return True
        # A holder on this host that no longer runs (killed) will never release it.
        return row.host == self.host and row.pid != self.pid and not _pid_alive(row.pid)

    def acquire(self, purpose: str) -> str | None:
        now = self.store.clock()
        values = self._values(purpose, now)
        with self.store.engine.begin() as conn:
            row = self._row(conn)
            if row is None:
                inserted = conn.execute(
                    insert_ignore(conn, leases, ["client", "crm"]).values(**values))
                if inserted.rowcount == 1:
                    self._start_heartbeat()
                    return None
                row = self._row(conn)
            if row is not None and self._takeable(row, now):
                # Only if nobody took it over since we read it: the old token must still be there.
                taken = conn.execute(update(leases).where(
                    self._mine(), leases.c.token == row.token).values(**values))
                if taken.rowcount == 1:
                    log.warning("took over the lease of %s (%s) left by %s", self.client,
                                self.crm, _describe_row(row))
                    self._start_heartbeat()
                    return None
                row = self._row(conn)
            return _describe_row(row)

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(target=self._renew_until_stopped, daemon=True,
                                           name=f"lease-{self.client}-{self.crm}")
        self._heartbeat.start()

    def _renew_until_stopped(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with self.store.engine.begin() as conn:
                    renewed = conn.execute(update(leases).where(
                        self._mine(), leases.c.token == self.token,
                    ).values(expires_at=self.store.clock() + self.ttl))
                if renewed.rowcount != 1:
                    log.warning("the lease of %s (%s) was taken over by another run",
                                self.client, self.crm)
                    return
            except Exception:  # a busy database: try again at the next beat
                log.debug("renewing the lease of %s (%s) failed", self.client, self.crm,
                          exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.store.engine.begin() as conn:
            conn.execute(delete(leases).where(self._mine(), leases.c.token == self.token))


class _PostgresBackend(_Backend):
    def __init__(self, store: Store, client: str, crm: str, ttl_seconds: float) -> None:
        super().__init__(store, client, crm, ttl_seconds)
        self._schema = (store.engine.get_execution_options().get("schema_translate_map")
                        or {}).get(None)
        self._conn: Connection | None = None
        self.key = 0  # set once the database and schema are known (acquire)

    def acquire(self, purpose: str) -> str | None:
        conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        held: str | None = None
        try:
            # Advisory locks are per database server: the key names where the tables live, so
            # stores in other databases or schemas of one server never block each other.
            where = conn.scalar(text("SELECT current_database() || '.' || current_schema()"))
            self.key = advisory_key(self.client, self.crm,
                                    schema=f"{where}:{self._schema or ''}")
            if conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}):
                conn.execute(upsert(conn, leases, self._values(purpose, self.store.clock()),
                                    ["client", "crm"]))
                self._conn = conn
                return None
            held = _describe_row(self._row(conn))
        finally:
            if self._conn is not conn:
                conn.close()  # a lock taken on it is freed with the session
        return held

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(delete(leases).where(self._mine(), leases.c.token == self.token))
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            # The pooled connection may still hold the lock: never hand it out again.
            conn.invalidate()
            log.debug("releasing the lease of %s (%s) failed", self.client, self.crm,
                      exc_info=True)
        finally:
            conn.close()


def advisory_key(client: str, crm: str, *, schema: str | None = None) -> int:
    """A stable signed 64-bit PostgreSQL advisory lock key for (schema, client, crm)."""
    digest = hashlib.sha256(f"crmsync-lease\0{schema or ''}\0{client}\0{crm}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
