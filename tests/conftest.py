"""Shared fixtures: one sandbox server per test session, reset before each test that uses it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


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
