"""Shared fixtures: one sandbox server per test session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests


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
