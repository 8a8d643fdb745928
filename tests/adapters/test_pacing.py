"""Pacing end to end: a sandbox enforcing the real rate limits on a manual clock that only our
injected sleeper moves. A run that paces well never sees a 429 and still finishes close to
the fastest time the limit allows."""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from crmsync.adapters.http_policy import Pacer, RateLimit
from crmsync.adapters.registry import create_adapter
from crmsync.sandbox import ManualClock, start_sandbox

from .sandbox_helpers import set_faults, settings_for, stats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


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


# --------------------------------------------------------------------------------------------
# Many threads sharing one pacer (one limiter per CRM account, as concurrent syncs will)
# --------------------------------------------------------------------------------------------


class VirtualTime:
    """A clock shared by `threads` workers that moves only when every one of them sleeps.

    `sleep(s)` blocks until the clock reaches now + s; once all live workers are asleep, the
    clock jumps to the earliest wake-up. Work between sleeps (HTTP to the sandbox included)
    takes no virtual time, so what is measured is the pacing alone, free of machine load.
    """

    def __init__(self, threads: int, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._live = threads
        self._wakeups: list[float] = []
        self._cond = threading.Condition()

    def __call__(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            wake = self._now + seconds
            self._wakeups.append(wake)
            self._advance()
            while self._now < wake:
                self._cond.wait()

    def finished(self) -> None:
        """A worker is done: the others no longer wait for it to sleep."""
        with self._cond:
            self._live -= 1
            self._advance()

    def _advance(self) -> None:
        if self._wakeups and len(self._wakeups) >= self._live:
            self._now = max(self._now, min(self._wakeups))
            self._wakeups = [w for w in self._wakeups if w > self._now]
            self._cond.notify_all()


def run_threads(time: VirtualTime, count: int, work: Callable[[int], None]) -> None:
    """Run `work(i)` in `count` threads at once; re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def worker(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread
            errors.append(exc)
        finally:
            time.finished()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    if errors:
        raise errors[0]


THREADS = 8


def test_threads_sharing_a_min_interval_bucket_are_spaced_apart() -> None:
    time = VirtualTime(THREADS)
    pacer = Pacer(clock=time, sleep=time.sleep, min_intervals={"search": 0.25})
    sent: list[float] = []
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(5):
            pacer.before_request("search")
            with lock:
                sent.append(time())
            pacer.after_response("search", None)

    run_threads(time, THREADS, work)

    sent.sort()
    assert len(sent) == 5 * THREADS
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(0.25)  # never two at once, however many threads ask
    assert sent[-1] - sent[0] == pytest.approx(0.25 * (len(sent) - 1))  # and no dawdling


def most_in_any_window(times: list[float], window: float) -> int:
    """The most requests that fell within any half-open `window` (t - window, t]."""
    times = sorted(times)
    return max(sum(1 for u in times if t - window < u <= t) for t in times)


@pytest.mark.parametrize("rolling", [True, False], ids=["hubspot-rolling", "pipedrive-burst"])
def test_threads_sharing_a_reported_window_stay_within_it(rolling: bool) -> None:
    """A toy CRM counts requests in a rolling window and reports what is left; 8 threads
    sending through one pacer must never exceed it, nor crawl."""
    limit, window = (20, 10.0) if rolling else (20, 2.0)
    time = VirtualTime(THREADS)
    pacer = Pacer(clock=time, sleep=time.sleep)
    arrivals: list[float] = []
    refused: list[float] = []
    lock = threading.Lock()

    def crm() -> RateLimit:
        with lock:
            now = time()
            recent = [t for t in arrivals if t > now - window]
            if len(recent) >= limit:
                refused.append(now)
            else:
                arrivals.append(now)
                recent.append(now)
            reset = recent[0] + window - now
            return RateLimit(remaining=max(limit - len(recent), 0), limit=limit,
                             window_seconds=window if rolling else math.ceil(reset),
                             rolling=rolling)

    def work(_: int) -> None:
        for _ in range(10):
            pacer.before_request("default")
            pacer.after_response("default", crm())

    run_threads(time, THREADS, work)

    assert refused == []
    assert most_in_any_window(arrivals, window) <= limit
    # 80 requests at 20 per window: the last ones cannot go before 3 windows have passed.
    # (Pipedrive rounds its reset up to whole seconds, which costs some speed, as serially.)
    elapsed = max(arrivals) - min(arrivals)
    assert 3 * window <= elapsed <= 5 * window


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_threads_sharing_one_adapter_get_no_429_from_the_sandbox(crm: str) -> None:
    time = VirtualTime(THREADS)
    server = start_sandbox(port=0, clock=time)
    try:
        set_faults(server.base_url, rate_limits_enabled=True, hubspot_limit_per_10s=20,
                   pipedrive_burst_per_2s=20)
        adapter = create_adapter(crm, settings_for(server.base_url), sleep=time.sleep,
                                 clock=time)
        start = time()

        def work(_: int) -> None:
            for _ in range(5):
                adapter.list_pipelines()

        run_threads(time, THREADS, work)
        seen = stats(server.base_url)
    finally:
        server.stop()

    assert seen["by_status"].get("429", 0) == 0
    calls = seen["by_crm"][crm]
    assert calls == THREADS * 5 * (1 if crm == "hubspot" else 2)
    window = 10.0 if crm == "hubspot" else 2.0
    passed = time() - start
    # (calls / 20) windows, less the first one that needs no wait; not much more (threads
    # answered out of order make the pacer assume the worst for a while).
    assert (calls / 20 - 1) * window <= passed <= (calls / 20 + 2) * window
