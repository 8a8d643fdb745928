"""Store fixtures: every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL tests use a fresh schema per test (dropped afterwards), so runs never collide.
They are skipped, loudly, only when the server cannot be reached at all.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from crmsync.store import Store, open_store

if TYPE_CHECKING:
    from pathlib import Path

POSTGRES_URL = os.environ.get(
    "CRMSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

StoreFactory = Callable[[], Store]


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_test_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A function opening (again and again) the same empty store of the parametrized kind."""
    opened: list[Store] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nested' / 'crmsync.db'}"

        def factory() -> Store:
            opened.append(open_store(url))
            return opened[-1]

        yield factory
    else:
        problem = _postgres_reachable()
        if problem:
            pytest.skip(f"!!! POSTGRESQL UNREACHABLE at {POSTGRES_URL}: {problem} — "
                        "store tests ran on SQLite only !!!")
        schema = f"crmsync_test_{uuid.uuid4().hex[:12]}"

        def factory() -> Store:
            opened.append(open_store(POSTGRES_URL, schema=schema))
            return opened[-1]

        yield factory
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    for store in opened:
        store.close()


@pytest.fixture
def store(open_test_store: StoreFactory) -> Store:
    return open_test_store()
