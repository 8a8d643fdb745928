"""The shared policy on its own: header dialects, classification, pacing arithmetic."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import requests
import urllib3.exceptions

from crmsync.adapters.http_policy import (
    HUBSPOT,
    PIPEDRIVE,
    Endpoint,
    HttpPolicy,
    Pacer,
    RateLimit,
    Reply,
    TransportError,
    parse_retry_after,
)
from crmsync.errors import FatalRemoteError, RetriableRemoteError, TokenRefusedError

if TYPE_CHECKING:
    from .conftest import FakeTime


def test_hubspot_headers_are_a_rolling_window() -> None:
    limit = HUBSPOT.read_rate_limit({
        "x-hubspot-ratelimit-max": "100", "x-hubspot-ratelimit-remaining": "42",
        "x-hubspot-ratelimit-interval-milliseconds": "10000"})
    assert limit == RateLimit(remaining=42, limit=100, window_seconds=10.0, rolling=True)
    assert HUBSPOT.read_rate_limit({}) is None  # search responses carry none


def test_pipedrive_headers_are_a_rolling_two_second_window() -> None:
    limit = PIPEDRIVE.read_rate_limit({
        "x-ratelimit-limit": "40", "x-ratelimit-remaining": "3", "x-ratelimit-reset": "1"})
    # The reset comes in whole seconds: the documented 2 s rolling window is what paces.
    assert limit == RateLimit(remaining=3, limit=40, window_seconds=2.0, rolling=True)
    longer = PIPEDRIVE.read_rate_limit({
        "x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "7"})
    assert longer is not None
    assert longer.window_seconds == 7.0


def test_error_messages_in_each_crms_shape() -> None:
    assert HUBSPOT.read_error_message({"status": "error", "message": "Pipeline not found",
                                       "category": "OBJECT_NOT_FOUND"}) == "Pipeline not found"
    assert PIPEDRIVE.read_error_message({"success": False, "error": "Stage not found",
                                         "error_info": "See the docs"}) == (
        "Stage not found (See the docs)")
    assert PIPEDRIVE.read_error_message({"success": False, "error": "Nope",
                                         "error_info": None}) == "Nope"


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0), (None, None), ("soon", None),
    ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),  # HTTP-date: seconds from now
    ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # already past
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(("status", "kind"), [
    (400, FatalRemoteError), (401, TokenRefusedError), (404, FatalRemoteError),
    (409, FatalRemoteError), (408, RetriableRemoteError), (429, RetriableRemoteError),
    (500, RetriableRemoteError), (502, RetriableRemoteError), (503, RetriableRemoteError),
    (504, RetriableRemoteError),
])
def test_one_place_classifies_statuses(status: int, kind: type) -> None:
    error = HttpPolicy(HUBSPOT).classify_reply(status, {}, b'{"message": "x"}', what="op")
    assert type(error) is kind
    assert isinstance(error, FatalRemoteError) == (status < 500 and status not in (408, 429))
    assert HttpPolicy(HUBSPOT).classify_reply(204, {}, None, what="op") is None


def test_error_without_a_crm_message_shows_the_body_text() -> None:
    error = HttpPolicy(PIPEDRIVE).classify_reply(502, {}, b"<html>Bad gateway</html>",
                                                 what="list stages")
    assert error is not None
    assert "<html>Bad gateway</html> (list stages)" in str(error)


def test_unsent_requests_are_told_apart_from_lost_answers() -> None:
    policy = HttpPolicy(PIPEDRIVE)
    refused = requests.ConnectionError(urllib3.exceptions.MaxRetryError(
        None, "/api/v2/stages",  # type: ignore[arg-type]
        urllib3.exceptions.NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    dropped = requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted"))
    assert policy.classify_exception(refused, what="x").maybe_sent is False
    assert policy.classify_exception(dropped, what="x").maybe_sent is True
    timeout = policy.classify_exception(requests.exceptions.ReadTimeout("slow"), what="x")
    assert isinstance(timeout, TransportError)
    assert "timed out" in str(timeout)


def test_an_unsent_create_is_resent_without_a_lookup(fake_time: FakeTime) -> None:
    policy = HttpPolicy(PIPEDRIVE, sleep=fake_time.sleep, clock=fake_time.clock, jitter=0)
    attempts: list[int] = []
    lookups: list[int] = []

    def send() -> Reply[str]:
        attempts.append(1)
        if len(attempts) == 1:
            raise urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
        return Reply(200, {}, value="created")

    def find() -> str | None:
        lookups.append(1)
        return None

    assert policy.call(send, what="create", find_existing=find) == "created"
    assert lookups == []
    assert len(attempts) == 2


def test_unknown_exceptions_are_not_swallowed() -> None:
    def send() -> Reply[None]:
        raise KeyError("a bug, not a network problem")

    with pytest.raises(KeyError):
        HttpPolicy(HUBSPOT).call(send, what="x")


def test_rolling_window_waits_for_our_oldest_request_to_age_out(fake_time: FakeTime) -> None:
    pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(3):
        pacer.before_request("default")
        pacer.after_response("default", None)
        fake_time.advance(1.0)
    # the last answer says nothing is left in the 10 s rolling window
    pacer.after_response("default", RateLimit(0, 3, 10.0, rolling=True))
    # our first request was answered at t0; it leaves the window at t0 + 10
    assert pacer.delay("default") == pytest.approx(10.0 - 3.0)


def test_rolling_window_spaces_the_last_requests_at_the_sustainable_rate(
    fake_time: FakeTime,
) -> None:
    pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep)
    pacer.before_request("default")
    pacer.after_response("default", RateLimit(10, 100, 10.0, rolling=True))
    assert pacer.delay("default") == pytest.approx(0.1)  # 10 s / 100 requests
    pacer.after_response("default", RateLimit(50, 100, 10.0, rolling=True))
    assert pacer.delay("default") == 0.0  # plenty left: no pacing


def test_min_interval_bucket(fake_time: FakeTime) -> None:
    pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep,
                  min_intervals={"search": 0.25})
    for _ in range(3):
        pacer.before_request("search")
    pacer.before_request("default")
    assert fake_time.sleeps == [0.25, 0.25]  # search only; other calls are not held up


def test_secrets_are_masked() -> None:
    policy = HttpPolicy(HUBSPOT, secrets=["pat-na1-secret"])
    error = policy.classify_reply(400, {}, {"message": "bad token pat-na1-secret"}, what="x")
    assert "pat-na1-secret" not in str(error)
    assert "bad token ***" in str(error)
    assert "pat-na1-secret" not in repr(policy)


@pytest.mark.parametrize(("location", "where"), [
    ("/crm/v3/elsewhere", "its own origin, https://api.hubapi.com"),
    ("https://user:pw@evil.example:8443/steal?token=x", "another origin, https://evil.example:8443"),
    (None, "no Location"),
])
def test_a_redirect_is_fatal_and_names_only_the_origin(location: str | None, where: str) -> None:
    policy = HttpPolicy(HUBSPOT, secrets=["pat-na1-secret"],
                        endpoint=Endpoint("https://api.hubapi.com", "CRMSYNC_HUBSPOT_BASE_URL"))
    headers = {"Location": location} if location else {}
    attempts: list[int] = []

    def send() -> Reply[str]:
        attempts.append(1)
        return Reply(301, headers, value="never used")

    with pytest.raises(FatalRemoteError) as caught:
        policy.call(send, what="list deal pipelines")
    message = str(caught.value)
    assert f"hubspot answered 301: a redirect ({where}), which crmsync does not follow" in message
    assert "Check CRMSYNC_HUBSPOT_BASE_URL (now https://api.hubapi.com)" in message
    assert "steal" not in message
    assert "pw" not in message
    assert len(attempts) == 1  # fatal: never retried


def test_a_relative_redirect_without_a_known_base_url_is_its_own_origin() -> None:
    error = HttpPolicy(PIPEDRIVE).classify_reply(302, {"Location": "/login"}, b"", what="x")
    assert isinstance(error, FatalRemoteError)
    assert "a redirect (its own origin), which crmsync does not follow" in str(error)


def test_a_report_counts_requests_other_threads_still_await_and_never_goes_back(
    fake_time: FakeTime,
) -> None:
    """One pacer, two threads: the report that arrives first must not assume the other
    thread's request was counted, and that request's later (older) report must not undo it."""
    pacer = Pacer(clock=fake_time.clock, sleep=fake_time.sleep)
    claimed, answer = threading.Event(), threading.Event()

    def slow_request() -> None:
        pacer.before_request("default")
        claimed.set()
        answer.wait(timeout=10)
        # counted by HubSpot before ours, so it says more remained than ours did
        pacer.after_response("default", RateLimit(2, 100, 10.0, rolling=True))

    other = threading.Thread(target=slow_request)
    other.start()
    assert claimed.wait(timeout=10)
    pacer.before_request("default")
    pacer.after_response("default", RateLimit(1, 100, 10.0, rolling=True))
    # 1 left, but the other thread's request may take it: wait for a slot to free (10 s),
    # not just the 0.1 s spacing of a window with room
    assert pacer.delay("default") == pytest.approx(10.0)
    answer.set()
    other.join(timeout=10)
    assert pacer.delay("default") == pytest.approx(10.0)
