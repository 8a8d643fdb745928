"""Pacing end to end: a sandbox enforcing the real rate limits on a manual clock that only our
injected sleeper moves. A run that paces well never sees a 429 and still finishes close to
the fastest time the limit allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from crmsync.adapters.registry import create_adapter
from crmsync.sandbox import ManualClock, start_sandbox

from .sandbox_helpers import set_faults, settings_for, stats

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class SharedTime:
    """The sandbox's clock and ours are one: sleeping advances both."""

    clock: ManualClock = field(default_factory=ManualClock)
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def limited() -> Iterator[tuple[str, SharedTime]]:
    time = SharedTime()
    server = start_sandbox(port=0, clock=time.clock)
    try:
        yield server.base_url, time
    finally:
        server.stop()


def test_hubspot_stays_under_its_rolling_limit_without_a_429(
    limited: tuple[str, SharedTime],
) -> None:
    sandbox, time = limited
    set_faults(sandbox, rate_limits_enabled=True, hubspot_limit_per_10s=20)
    adapter = create_adapter("hubspot", settings_for(sandbox), sleep=time.sleep,
                             clock=time.clock)
    start = time.clock()

    for _ in range(70):
        adapter.list_pipelines()

    seen = stats(sandbox)
    assert seen["by_status"].get("429", 0) == 0
    assert seen["by_crm"]["hubspot"] == 70
    # 20 per rolling 10 s: requests 61-70 cannot go before t = 30 s; we should not dawdle.
    elapsed = time.clock() - start
    assert 30.0 <= elapsed <= 36.0


def test_pipedrive_stays_under_its_burst_limit_without_a_429(
    limited: tuple[str, SharedTime],
) -> None:
    sandbox, time = limited
    set_faults(sandbox, rate_limits_enabled=True, pipedrive_burst_per_2s=20)
    adapter = create_adapter("pipedrive", settings_for(sandbox), sleep=time.sleep,
                             clock=time.clock)
    start = time.clock()

    for _ in range(35):  # two requests each: stages, then pipelines
        adapter.list_pipelines()

    seen = stats(sandbox)
    assert seen["by_status"].get("429", 0) == 0
    assert seen["by_crm"]["pipedrive"] == 70
    elapsed = time.clock() - start
    assert 6.0 <= elapsed <= 10.0  # 20 per rolling 2 s: at best 6 s for 70
