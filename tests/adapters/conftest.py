"""Fixtures for adapter tests: a fake clock/sleeper pair so no test ever really sleeps, and
the sandbox the record contract suites share (`record_sandbox.py`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.sandbox import start_sandbox
from crmsync.sandbox.clock import ManualClock

from .record_sandbox import TOKEN, Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class FakeTime:
    """`clock()` and `sleep()` for the policy: sleeping only moves the clock and is recorded."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[Sandbox]:
    clock = ManualClock(time.time())
    server = start_sandbox(host="127.0.0.1", port=0, clock=clock)
    yield Sandbox(server, clock)
    server.stop()


@pytest.fixture
def box(sandbox_app: Sandbox) -> Sandbox:
    requests.post(f"{sandbox_app.url}/_sandbox/reset", timeout=10).raise_for_status()
    sandbox_app.clock.set(time.time())
    return sandbox_app


@pytest.fixture(params=["hubspot", "pipedrive"])
def crm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter(crm: str, box: Sandbox, fake_time: FakeTime) -> Iterator[Any]:
    cls = HubSpotAdapter if crm == "hubspot" else PipedriveAdapter
    made = cls(box.url, TOKEN, timeout=10, max_retries=8, sleep=fake_time.sleep,
               clock=fake_time.clock)
    made.records_clock = box.clock  # HubSpot's pass start and search lag: the sandbox's time
    yield made
    made.close()
