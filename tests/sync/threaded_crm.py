"""The fake CRM made safe for threads, writing one record a call (as Pipedrive does)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.sync.fake_records import FakeCrm

HOLD_SECONDS = 1.0

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crmsync.adapters.records import RecordWrite, WriteResult


@dataclass
class ThreadedCrm(FakeCrm):
    """The fake CRM writing one record a call, its state guarded by a lock. `fail` makes a
    record's call raise (the CRM unreachable after retries, a refused token) instead of
    answering; with `overlap`, the second and third calls wait for each other, so a push
    that keeps calls in flight together shows it in `most_at_once`."""

    records_per_request: int = 1
    fail: dict[str, Exception] = field(default_factory=dict)
    overlap: threading.Barrier | None = None
    # store key → the key whose write it waits for (at most `HOLD_SECONDS`): a call that
    # would race another shows whether the push let them race
    hold_until: dict[str, str] = field(default_factory=dict)
    most_at_once: int = 0
    _calls_seen: int = 0
    _at_once: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def write(self, object_type: str, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        with self._lock:
            number, self._calls_seen = self._calls_seen, self._calls_seen + 1
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            if self.overlap is not None and number in (1, 2):
                self.overlap.wait(timeout=10)
            for write in writes:
                self._arrival(write.key).set()
            for write in writes:
                if write.key in self.hold_until:
                    self._arrival(self.hold_until[write.key]).wait(timeout=HOLD_SECONDS)
            failing = next((self.fail[w.key] for w in writes if w.key in self.fail), None)
            if failing is not None:
                raise failing
            with self._lock:
                return super().write(object_type, writes)
        finally:
            with self._lock:
                self._at_once -= 1

    def _arrival(self, key: str) -> threading.Event:
        with self._lock:
            arrivals: dict[str, threading.Event] = self.__dict__.setdefault("_arrivals", {})
            return arrivals.setdefault(key, threading.Event())

    def read(self, object_type: str, remote_ids: Sequence[str]) -> list[Any]:
        with self._lock:
            return super().read(object_type, remote_ids)

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self.__dict__)
        del state["_lock"]
        state.pop("_arrivals", None)
        state["overlap"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.RLock())
