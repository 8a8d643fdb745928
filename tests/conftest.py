"""Shared fixtures: one sandbox server per test session, reset before each test that uses it;
stores on a SQLite file and on PostgreSQL.

PostgreSQL stores use a fresh schema per test (dropped afterwards), so runs never collide.
Those tests are skipped, loudly, only when the server cannot be reached at all.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from crmsync.store import Store, open_store

if TYPE_CHECKING:
    from pathlib import Path


# The token `crmsync sandbox` prints and `POST /_sandbox/seed` seeds by default: each token
# is its own CRM account, so tests that seed and then read use this one.
SANDBOX_TOKEN = "sandbox-token"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    from crmsync.sandbox import start_sandbox

    server = start_sandbox(host="127.0.0.1", port=0)
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: object) -> str:
    """Base URL of a freshly reset sandbox (no data, no faults, no rate limits, zeroed stats)."""
    base_url: str = sandbox_server.base_url  # type: ignore[attr-defined]
    response = requests.post(f"{base_url}/_sandbox/reset", timeout=10)
    response.raise_for_status()
    return base_url


@pytest.fixture
def hs(sandbox: str) -> Any:
    """`hubspot.Client` (hubspot-api-client 12) talking to a freshly reset sandbox, on the
    account `seed_sandbox` seeds."""
    import hubspot

    return hubspot.Client.create(access_token=SANDBOX_TOKEN, host=sandbox)


@pytest.fixture
def seed_sandbox(sandbox: str) -> Callable[..., dict[str, Any]]:
    """Seed the reset sandbox through `POST /_sandbox/seed` (the account of `token`, default
    SANDBOX_TOKEN); returns the created counts."""

    def seed(crm: str = "hubspot", *, seed: int = 7, token: str = SANDBOX_TOKEN,
             **counts: int) -> dict[str, Any]:
        body = {"crm": crm, "contacts": 0, "companies": 0, "deals": 0, "seed": seed,
                "token": token, **counts}
        response = requests.post(f"{sandbox}/_sandbox/seed", json=body, timeout=60)
        response.raise_for_status()
        created: dict[str, Any] = response.json()["created"]
        return created

    return seed


# --- stores ---------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get(
    "CRMSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

StoreFactory = Callable[[], Store]


def postgres_problem() -> str | None:
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
        problem = postgres_problem()
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
