"""The account's plan seeds the rate limiter; `CRMSYNC_SYNC_CONCURRENCY` bounds the requests
on the wire per account, however many threads send. No real sleeps: a fake clock and
sleeper, and threads that hand over with conditions."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.adapters.http_policy import HUBSPOT, HttpPolicy, Pacer, RateLimit, Reply
from crmsync.adapters.registry import create_adapter
from crmsync.errors import SettingsError
from crmsync.settings import load_settings

from .sandbox_helpers import settings_for

if TYPE_CHECKING:
    from .conftest import FakeTime


def test_plan_names_are_read_loosely_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_HUBSPOT_TIER", " Professional")
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_PLAN", "")
    settings = load_settings()
    assert settings.plan("hubspot") == "professional"
    assert settings.plan("pipedrive") is None
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_PLAN", "platinum")
    with pytest.raises(SettingsError, match="CRMSYNC_PIPEDRIVE_PLAN"):
        load_settings()


def _claims_before_pacing(policy: HttpPolicy, fake_time: FakeTime, most: int = 400) -> int:
    """How many requests go out at once before the pacer makes one wait (no answers yet)."""
    for count in range(most):
        policy.pacer.before_request("default")
        if fake_time.sleeps:
            return count
        policy.pacer.after_response("default", None)  # an answer without headers
    return most


@pytest.mark.parametrize(("crm", "plan", "at_once"), [
    ("hubspot", "starter", 80),        # 100 per 10 s, paced from the last 20 %
    ("hubspot", "enterprise", 152),    # 190 per 10 s
    ("pipedrive", "lite", 16),         # 20 per 2 s
    ("pipedrive", "ultimate", 96),     # 120 per 2 s
    ("hubspot", None, 400),            # unknown: the first response's headers will say
])
def test_the_plan_paces_the_first_requests_before_any_header(
        crm: str, plan: str | None, at_once: int, fake_time: FakeTime) -> None:
    key = "hubspot_tier" if crm == "hubspot" else "pipedrive_plan"
    adapter: Any = create_adapter(crm, settings_for("http://127.0.0.1:9", **{key: plan}),
                                  sleep=fake_time.sleep, clock=fake_time.clock)
    assert _claims_before_pacing(adapter.policy, fake_time) == at_once
    adapter.close()


def test_headers_win_over_the_plan_once_seen(fake_time: FakeTime) -> None:
    adapter: Any = create_adapter("hubspot", settings_for("http://127.0.0.1:9",
                                                          hubspot_tier="free"),
                                  sleep=fake_time.sleep, clock=fake_time.clock)
    pacer = adapter.policy.pacer
    pacer.before_request("default")
    pacer.after_response("default", RateLimit(remaining=249, limit=250, window_seconds=10.0,
                                              rolling=True))  # a limit-increase pack
    assert _claims_before_pacing(adapter.policy, fake_time) == 199  # 250 less 20 %, less one
    adapter.close()


def test_the_registry_hands_the_concurrency_to_the_adapter_and_its_policy() -> None:
    adapter: Any = create_adapter("hubspot", settings_for("http://127.0.0.1:9",
                                                          sync_concurrency=6))
    assert adapter.concurrency == 6
    assert adapter.policy.max_in_flight == 6
    adapter.close()


class _CountingSlots:
    """The policy's semaphore, counting the threads that wait for a slot."""

    def __init__(self, slots: threading.BoundedSemaphore, seen: threading.Condition) -> None:
        self._slots = slots
        self._seen = seen
        self.waiting = 0

    def acquire(self) -> bool:
        with self._seen:
            self.waiting += 1
            self._seen.notify_all()
        self._slots.acquire()
        with self._seen:
            self.waiting -= 1
        return True

    def release(self) -> None:
        self._slots.release()


def test_requests_on_the_wire_never_exceed_the_bound(fake_time: FakeTime) -> None:
    policy = HttpPolicy(HUBSPOT, sleep=fake_time.sleep, clock=fake_time.clock)
    policy.max_in_flight = 3
    seen = threading.Condition()
    slots = _CountingSlots(policy._slots, seen)  # type: ignore[arg-type]
    policy._slots = slots  # type: ignore[assignment]
    on_wire = 0
    most = 0
    released = False

    def send() -> Reply[dict[str, Any]]:
        nonlocal on_wire, most
        with seen:
            on_wire += 1
            most = max(most, on_wire)
            seen.notify_all()
            seen.wait_for(lambda: released, timeout=30)
            on_wire -= 1
        return Reply(200, {}, value={})

    threads = [threading.Thread(target=lambda: policy.call(send, what="read"))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    with seen:  # every thread is either on the wire or waiting for a slot
        assert seen.wait_for(lambda: on_wire + slots.waiting == 8, timeout=30)
        assert (on_wire, slots.waiting) == (3, 5)
        released = True
        seen.notify_all()
    for thread in threads:
        thread.join(timeout=30)
    assert most == 3
    assert policy.requests_sent == 8


def test_a_request_that_went_out_late_still_spaces_the_next_one() -> None:
    """HubSpot search allows 4 a second: claims are spaced 0.25 s apart, but a thread that
    wakes late (a busy machine) must not leave the next request closer to it than that."""
    now = [100.0]
    overshoot = iter([0.1])  # the first wait ends 0.1 s late; the others on time

    def sleep(seconds: float) -> None:
        now[0] += seconds + next(overshoot, 0.0)

    pacer = Pacer(clock=lambda: now[0], sleep=sleep, min_intervals={"search": 0.25})
    sent: list[float] = []
    for _ in range(4):
        pacer.before_request("search")
        sent.append(now[0])
        pacer.after_response("search", None)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(sent)]
    assert gaps == [0.35, 0.25, 0.25]
