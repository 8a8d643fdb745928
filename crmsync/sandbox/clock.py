"""Injectable clocks: the emulators and rate limiters never read the time themselves.

A clock is any zero-argument callable returning POSIX seconds as a float (`time.time`).
Tests pass a `ManualClock` and advance it instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

system_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to (`advance`), for sleep-free tests."""

    def __init__(self, start: float | datetime = 1_767_225_600.0) -> None:  # 2026-01-01Z
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float | datetime) -> None:
        self._now = when.timestamp() if isinstance(when, datetime) else float(when)


def to_datetime(seconds: float) -> datetime:
    """POSIX seconds → aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)
