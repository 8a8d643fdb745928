"""Opening the store: an engine for the configured URL, migrated to the current schema."""

from __future__ import annotations

import datetime as dt
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from crmsync.errors import StoreError
from crmsync.store.bulk_load import restore_indexes
from crmsync.store.migrations import MIGRATIONS, applied_versions, migrate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

    from crmsync.names import WallClock
    from crmsync.store.accounts import AccountRecord
    from crmsync.store.lease import Lease, Sleep
    from crmsync.store.local import LocalRecords
    from crmsync.store.provisioning import ProvisioningState
    from crmsync.store.records import RecordStore

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """The local database: provisioning state now, sync tables later (see migrations)."""

    def __init__(self, engine: Engine, *, clock: WallClock = _utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def provisioning(self, client: str, crm: str) -> ProvisioningState:
        """The ids recorded for one client's CRM."""
        from crmsync.store.provisioning import ProvisioningState

        return ProvisioningState(self, client, crm)

    def records(self, client: str) -> RecordStore:
        """One client's synced records: pages in, live rows out."""
        from crmsync.store.records import RecordStore

        return RecordStore(self, client)

    def local(self, client: str) -> LocalRecords:
        """Validated local changes to one client's records, queued for sync (`store/local.py`)."""
        from crmsync.store.local import LocalRecords

        return LocalRecords(self, client)

    def accounts(self, client: str, crm: str) -> AccountRecord:
        """The CRM account one client's recorded ids belong to."""
        from crmsync.store.accounts import AccountRecord

        return AccountRecord(self, client, crm)

    @contextmanager
    def lease(self, client: str, crm: str, *, purpose: str, wait_seconds: float = 0.0,
              sleep: Sleep | None = None) -> Iterator[Lease]:
        """Hold the lease of one client's CRM for the `with` block (see `store/lease.py`).

        Raises `LeaseHeldError` (naming the holder) if another run still holds it after
        `wait_seconds`; `sleep` (default `time.sleep`) is how the waiting is done.
        """
        from crmsync.store.lease import lease

        with lease(self, client, crm, purpose=purpose, wait_seconds=wait_seconds,
                   sleep=sleep or time.sleep) as held:
            yield held

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            versions = applied_versions(conn)
        return versions[-1] if versions else 0

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_url(url: str | URL) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable store URL>"


def _engine(url: URL, schema: str | None) -> Engine:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            # One shared connection, or every connection would see its own empty database.
            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # Overlapping runs (cron) wait for the write lock rather than fail at once.
            engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            if database not in ("", ":memory:"):
                # Readers (report, a second cron run checking its lease) never wait for the
                # writer, and a page commit is one fsync.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                # A big load inserts into indexes at random places (emails, associations'
                # targets): every page commit rewrites thousands of their B-tree pages. So:
                # a 32 MB page cache per connection (filled only as pages are read; the
                # default 2 MB re-read and spilled them mid-transaction) but 32 MB for all of
                # the process's connections together (`soft_heap_limit` is process-wide:
                # object types pulled at once each hold a pooled connection; 48 MB each put
                # three types at 214 MB of RSS), and the WAL checkpointed every ~400 MB
                # rather than every ~40 MB (a page rewritten by many commits reaches the
                # database file once per checkpoint), truncated back to 64 MB after. (A
                # million contacts, the store's part alone: 71–80 s before, 48–56 s after,
                # with a 64 MB cache; 32 MB loads as fast within this machine's noise.)
                cursor.execute("PRAGMA cache_size=-32768")
                cursor.execute("PRAGMA soft_heap_limit=33554432")
                cursor.execute("PRAGMA wal_autocheckpoint=100000")
                cursor.execute("PRAGMA journal_size_limit=67108864")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    return engine


_STORE_HINT = ("Check CRMSYNC_STORE_URL (environment or .env): e.g. sqlite:///crmsync.db, or "
               "postgresql+psycopg://user@host/db for a shared store")


def open_store(url: str, *, schema: str | None = None, clock: WallClock = _utcnow) -> Store:
    """Open (creating and migrating as needed) the store at `url`.

    SQLite by file path (`sqlite:///crmsync.db`; the folder is created) or PostgreSQL
    (`postgresql+psycopg://user@host/db`). `schema` puts the tables in a PostgreSQL schema
    (created if missing); tests use it to stay apart.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("invalid store URL (not a database URL)", hint=_STORE_HINT) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported store database '{parsed.get_backend_name()}' in {describe_url(parsed)}:"
            " crmsync keeps its store in SQLite or PostgreSQL", hint=_STORE_HINT,
        )
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise StoreError(f"invalid schema name {schema!r}")
    shown = describe_url(parsed)
    try:
        engine = _engine(parsed, schema)
        if schema is not None and engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        _migrate(engine)
    except SQLAlchemyError as exc:
        hint = _STORE_HINT
        if parsed.get_backend_name() == "postgresql":
            hint = ("Is the PostgreSQL server running, and do the host, port, user and database "
                    "in CRMSYNC_STORE_URL (environment or .env) match it?")
        raise StoreError(f"cannot open the store at {shown}: {_reason(exc)}", hint=hint) from None
    except ImportError as exc:
        raise StoreError(
            f"cannot open the store at {shown}: its database driver is not installed "
            f"({exc.name or exc})",
            hint="For PostgreSQL install the extra: pip install -e '.[postgres]'",
        ) from None
    except OSError as exc:  # creating the SQLite file's folder
        reason = (f"{exc.filename} is a file, not a folder"
                  if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename
                  else f"cannot create {exc.filename}: {exc.strerror}" if exc.filename
                  else str(exc))
        raise StoreError(f"cannot open the store at {shown}: {reason}", hint=_STORE_HINT) from None
    return Store(engine, clock=clock)


SQLITE_OPEN_ATTEMPTS = 8  # a store another process is creating this very moment


def _migrate(engine: Engine) -> None:
    """`migrate`, tried again (after 0.05 s, then twice as long, up to ~6 s in all) when SQLite
    says the database is locked: a process that opens a new store while another creates it
    can be refused at once (switching the file to WAL, a read that must become a write)
    instead of waiting out the busy timeout. Every migration step is idempotent."""
    for attempt in range(SQLITE_OPEN_ATTEMPTS):
        try:
            migrate(engine, MIGRATIONS)
            restore_indexes(engine)  # a first load killed before it built them
            return
        except OperationalError as exc:
            locked = "locked" in str(exc.orig) or "busy" in str(exc.orig)
            if engine.dialect.name != "sqlite" or not locked \
                    or attempt == SQLITE_OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2 ** attempt)


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]
