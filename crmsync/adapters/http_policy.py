"""The one retry and pacing policy every adapter sends its HTTP requests through.

An adapter turns each request into a zero-argument `send()` returning a neutral `Reply`
(status, headers, body, value) and lets `HttpPolicy.call` do the rest:

- **pace** before sending, from the rate-limit headers of earlier responses, so a run slows
  down *before* the CRM's limit instead of bouncing off it with 429s;
- **classify** the outcome in one place (`classify_reply`, `classify_exception`): 429, 408,
  5xx, timeouts and dropped connections are `RetriableRemoteError`; any other 4xx is a
  `FatalRemoteError` carrying the CRM's own message;
- **retry** retriable failures with tenacity: exponential backoff with jitter, or exactly the
  `Retry-After` the CRM asked for. A CRM that cannot be reached at all (connection refused,
  unknown host, TLS failure, connect timeout) gets only `unreachable_retries` more tries:
  waiting half a minute to learn that nothing listens at a mistyped base URL helps nobody;
- **explain** the final error: the operation, how many attempts were made, and what to check
  (the base-URL setting, the variable the token came from — never the token itself).

This is the only retry layer: the HubSpot SDK's urllib3 retries are switched off
(`hubspot.py`) and `requests` does not retry unless told to. Tokens handed to the policy are
masked in every message and log line it produces.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from crmsync.errors import (
    BudgetExhaustedError,
    FatalRemoteError,
    RemoteError,
    RetriableRemoteError,
    TokenRefusedError,
)
from crmsync.logs import MASK, mask_secrets
from crmsync.names import MonotonicClock, Sleep, crm_title

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["MASK", "DailyBudget", "Endpoint", "HttpPolicy", "Reply", "TransportError"]

# --------------------------------------------------------------------------------------------
# What each CRM says about its limits and its errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """A CRM's rate-limit window as read from one response's headers."""

    remaining: int  # requests left in the current window
    limit: int | None  # requests allowed per window, when the CRM says
    window_seconds: float  # how long until the window has freed up (upper bound)
    rolling: bool = False  # a sliding window: slots free one by one as old requests age out


@dataclass(frozen=True)
class Dialect:
    """How one CRM spells its rate-limit headers and its error bodies."""

    crm: str
    read_rate_limit: Callable[[Mapping[str, str]], RateLimit | None]
    read_error_message: Callable[[Any], str | None]
    # What is left of today's budget (requests on HubSpot, tokens on Pipedrive), if said.
    read_daily_left: Callable[[Mapping[str, str]], int | None] = lambda _headers: None


PIPEDRIVE_BURST_SECONDS = 2.0


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _hubspot_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    # https://developers.hubspot.com/docs/api/usage-details#rate-limits : the window is a
    # rolling one of `-Interval-Milliseconds`; HubSpot does not say when the next slot frees,
    # so the whole interval is the (conservative) upper bound.
    remaining = _int_header(headers, "x-hubspot-ratelimit-remaining")
    if remaining is None:
        return None
    interval_ms = _int_header(headers, "x-hubspot-ratelimit-interval-milliseconds")
    return RateLimit(
        remaining=remaining,
        limit=_int_header(headers, "x-hubspot-ratelimit-max"),
        window_seconds=(interval_ms if interval_ms is not None else 10_000) / 1000.0,
        rolling=True,
    )


def _pipedrive_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    # https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting : the burst limit is a
    # rolling 2-second window per token; `x-ratelimit-reset` (seconds until the window frees)
    # comes in whole seconds, too coarse to pace by, so it only bounds a longer window.
    remaining = _int_header(headers, "x-ratelimit-remaining")
    if remaining is None:
        return None
    reset = headers.get("x-ratelimit-reset")
    try:
        window = max(float(reset), PIPEDRIVE_BURST_SECONDS) if reset is not None \
            else PIPEDRIVE_BURST_SECONDS
    except ValueError:
        window = PIPEDRIVE_BURST_SECONDS
    return RateLimit(remaining=remaining, limit=_int_header(headers, "x-ratelimit-limit"),
                     window_seconds=window, rolling=True)


def _hubspot_daily_left(headers: Mapping[str, str]) -> int | None:
    # `X-HubSpot-RateLimit-Daily-Remaining` (usage-details page): requests left today.
    return _int_header(headers, "x-hubspot-ratelimit-daily-remaining")


def _pipedrive_daily_left(headers: Mapping[str, str]) -> int | None:
    # `x-daily-requests-left` (rate-limiting docs): the daily *token* budget left, sent for
    # api_token requests only.
    return _int_header(headers, "x-daily-requests-left")


def _hubspot_error_message(body: Any) -> str | None:
    # Error shape: {"status": "error", "message": ..., "correlationId": ..., "category": ...}
    # (https://developers.hubspot.com/docs/api/error-handling)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return None


def _pipedrive_error_message(body: Any) -> str | None:
    # Error shape: {"success": false, "error": ..., "error_info": ..., "data": null}
    # (specs/pipedrive/openapi-v2.yaml, every 4xx response)
    if not isinstance(body, dict) or not body.get("error"):
        return None
    error, info = str(body["error"]), body.get("error_info")
    return f"{error} ({info})" if info else error


HUBSPOT = Dialect("hubspot", _hubspot_rate_limit, _hubspot_error_message, _hubspot_daily_left)
PIPEDRIVE = Dialect("pipedrive", _pipedrive_rate_limit, _pipedrive_error_message,
                    _pipedrive_daily_left)

# The window each CRM plan allows, for pacing before any response has said (the headers win
# once seen). HubSpot private apps: Free/Starter 100, Professional/Enterprise 190 requests per
# rolling 10 s (https://developers.hubspot.com/docs/api/usage-details). Pipedrive api_token
# burst per rolling 2 s by plan (https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting;
# OAuth apps get four times as much — crmsync sends an api_token).
HUBSPOT_TIERS = ("free", "starter", "professional", "enterprise")
PIPEDRIVE_PLANS = ("lite", "growth", "premium", "ultimate")
PLAN_WINDOWS: dict[tuple[str, str], RateLimit] = {
    **{("hubspot", tier): RateLimit(remaining=limit, limit=limit, window_seconds=10.0,
                                    rolling=True)
       for tier, limit in zip(HUBSPOT_TIERS, (100, 100, 190, 190), strict=True)},
    **{("pipedrive", plan): RateLimit(remaining=burst, limit=burst, window_seconds=2.0)
       for plan, burst in zip(PIPEDRIVE_PLANS, (20, 40, 100, 120), strict=True)},
}


class DailyBudget:
    """Keeps one run within `share` of what the CRM's daily budget had left when it started.

    The baseline is the first `left` a response reports (a much larger one later means a new
    day: the baseline restarts). Spent = baseline - the lowest `left` reported since, plus
    the requests sent after the newest request that reported (search answers carry no
    headers), each at the largest cost one request was seen to take (Pipedrive's list costs
    10 tokens). Requests run concurrently, so reports arrive out of order: a report may be
    older than one already seen, and a `left` a little higher than the lowest is such a
    report, not a new day — a new day must rise by more than the requests not yet reported
    can explain (and by more than 1 % of the baseline). `check` raises
    `BudgetExhaustedError` before a request that would cross the share. Thread-safe.
    """

    def __init__(self, crm: str, share: float | None = None) -> None:
        self.crm = crm
        self.share = share  # None: no limit of our own (the CRM's 429 still applies)
        self._lock = threading.Lock()
        self._start: int | None = None
        self._left: int | None = None
        self._sent = 0  # requests sent so far; each one's number is its order
        self._reported = -1  # the order of the newest request whose report was applied
        self._cost = 1

    @property
    def spent(self) -> int:
        """Budget units this run has used, as far as the CRM's headers tell."""
        with self._lock:
            return self._spent()

    def _spent(self) -> int:
        if self._start is None or self._left is None:
            return 0
        unseen = self._sent - 1 - self._reported
        return self._start - self._left + unseen * self._cost

    def check(self) -> None:
        with self._lock:
            if self.share is None or self._start is None:
                return
            allowed = self.share * self._start
            spent = self._spent()
            if spent + self._cost <= allowed:
                return
            start, share = self._start, self.share
        raise BudgetExhaustedError(
            self.crm,
            f"stopped at the daily budget: this run used {spent:,} of the {start:,} left "
            f"today when it started, and may use {share:.0%} of it",
            hint="Pages already read are saved; the next run resumes where this one stopped "
                 "(CRMSYNC_SYNC_MAX_DAILY_SHARE sets the share)")

    def sent(self) -> int:
        """Count a request about to be sent; returns its order (for `observe`)."""
        with self._lock:
            self._sent += 1
            return self._sent - 1

    def observe(self, left: int | None, order: int | None = None) -> None:
        """The `left` reported by the answer to request `order` (default: the latest sent)."""
        if left is None:
            return
        with self._lock:
            if order is None:
                order = self._sent - 1
            # How far out of order a report can plausibly be: every request not reported yet,
            # at the cost seen, or (while the cost is not known yet) 1 % of the baseline. A
            # reset at midnight restores the whole daily allowance.
            reorder = max(self._cost * max(1, self._sent - self._reported),
                          (self._start or 0) // 100)
            if self._left is None or self._start is None or left > self._left + reorder:
                self._start = self._left = left  # the first report, or a new day
                self._reported = order
                return
            if order == self._reported + 1 and self._left > left:
                self._cost = max(self._cost, self._left - left)
            self._left = min(self._left, left)
            self._reported = max(self._reported, order)


@dataclass(frozen=True)
class Endpoint:
    """Where an adapter's requests go and which settings said so: what a message tells the
    user to check. Set by the registry, which knows the settings; never holds the token."""

    base_url: str
    base_url_setting: str | None = None  # e.g. CRMSYNC_HUBSPOT_BASE_URL
    token_source: str | None = None  # the variable the token was read from, e.g. ACME_TOKEN


@dataclass(frozen=True)
class Reply(Generic[T]):
    """One HTTP exchange, whatever library made it: status, headers, raw body, parsed value."""

    status: int
    headers: Mapping[str, str]
    body: Any = None  # the error body (bytes, text or parsed JSON) when status >= 400
    value: T | None = None  # what the adapter wants back on success


CONNECT_TIMEOUT_SECONDS = 10.0


def request_timeouts(timeout: float) -> tuple[float, float]:
    """(connect, read) timeouts for one request: `timeout` bounds the wait for an answer, but a
    host that never accepts the connection is given up on sooner, so an unreachable base URL
    fails in seconds rather than minutes (each retry would wait the full read timeout)."""
    return min(timeout, CONNECT_TIMEOUT_SECONDS), timeout


def lower_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Headers as a plain dict with lower-case names (urllib3 and requests differ)."""
    if not headers:
        return {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def parse_body(body: Any) -> Any:
    """JSON-decode an error body if it is JSON; otherwise return the text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


# --------------------------------------------------------------------------------------------
# Pacing
# --------------------------------------------------------------------------------------------


class Pacer:
    """Slows requests down before a rate limit is reached, from what responses said about it.

    After every response the CRM says how many requests remain in its window. While plenty
    remain, requests go out at once. Once `remaining` drops to `pace_below` of the limit:

    - **fixed windows** (Pipedrive's `x-ratelimit-reset`: seconds until the window frees), each
      request waits `time_left / (remaining + 1)`, spreading what is left over what remains of
      the window; with nothing left it waits for the window to reopen, and claims beyond
      that wait for our own earlier requests to age out of it (the burst window is rolling);
    - **rolling windows** (HubSpot's `-Interval-Milliseconds`), requests are spaced at the
      sustainable rate `interval / limit`; with nothing left, the next one waits until the
      oldest of our own recent requests has aged out of the interval (a slot frees then), or
      the whole interval when the budget was spent by someone else.

    One pacer is shared by every thread sending to one CRM account, so a request **claims its
    slot under the lock**: its send time is reserved and `remaining` counted down before it
    sleeps, and the next thread plans after it. A response's `remaining` is reduced by the
    requests other threads have claimed but not yet seen answered, and by those answered
    while it was on its way (the CRM may not have counted either yet); a response to an
    earlier claim than the last one applied is not allowed to undo it. Buckets keep separate
    limits apart (HubSpot's search has its own); `min_intervals` adds a fixed minimum spacing
    for a bucket whose limit has no headers. Times of our requests are taken when their answer
    arrived: the latest the CRM can have counted them, so ageing-out estimates err on the late
    (safe) side.
    """

    _LOG_SIZE = 1_000  # requests remembered per bucket; more than any window allows

    def __init__(self, *, clock: MonotonicClock, sleep: Sleep, pace_below: float = 0.2,
                 min_intervals: Mapping[str, float] | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._pace_below = pace_below
        self._min_intervals = dict(min_intervals or {})
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._claims = itertools.count()
        self._tickets = threading.local()  # per thread: bucket -> its claim not yet answered

    def assume(self, bucket: str, limit: RateLimit) -> None:
        """Take `limit` as `bucket`'s window until a response reports one (the account's plan,
        from settings): the first concurrent requests are paced before any header is seen."""
        with self._lock:
            state = self._bucket(bucket)
            if state.window is None and state.observed_ticket < 0:
                state.window = limit
                state.observed_at = self._clock()
                state.longest_window = max(state.longest_window, limit.window_seconds)

    def delay(self, bucket: str) -> float:
        """Seconds the next request in `bucket` would wait (0 when none); claims nothing."""
        with self._lock:
            now = self._clock()
            return max(self._send_at(bucket, now) - now, 0.0)

    def before_request(self, bucket: str) -> float:
        """Claim the next slot in `bucket`, then sleep until it comes; returns the seconds slept.

        Every `before_request` must be followed by `after_response` from the same thread.
        """
        tickets = self._my_tickets()
        with self._lock:
            now = self._clock()
            send_at = self._send_at(bucket, now)
            state = self._bucket(bucket)
            unanswered = tickets.get(bucket)
            if unanswered is not None:  # one request per thread and bucket at a time
                state.in_flight.pop(unanswered, None)
            ticket = next(self._claims)
            state.in_flight[ticket] = None
            state.last_claimed = send_at
            if state.window is not None:
                state.window = replace(state.window, remaining=state.window.remaining - 1)
            tickets[bucket] = ticket
        wait = max(send_at - now, 0.0)
        if wait > 0:
            log.debug("pacing %s: waiting %.2fs before the next request", bucket, wait)
            self._sleep(wait)
        wait += self._keep_spacing(bucket, state)
        with self._lock:  # from now on, answers to others may not be counted in ours
            if ticket in state.in_flight:
                state.in_flight[ticket] = state.answered
        return wait

    def _keep_spacing(self, bucket: str, state: _Bucket) -> float:
        """For a bucket with a minimum spacing, wait until the request before really went
        out that long ago; returns the seconds slept. Claims are spaced as planned, but with
        several threads one may wake late (a busy machine) and the next on time: two would
        then go out closer together than the bucket allows (HubSpot search: 4 per second)."""
        spacing = self._min_intervals.get(bucket)
        slept = 0.0
        while spacing:
            with self._lock:
                now = self._clock()
                due = state.last_sent + spacing if state.last_sent is not None else now
                if now >= due - 1e-6:
                    state.last_sent = now
                    return slept
            self._sleep(due - now)
            slept += due - now
        return slept

    def after_response(self, bucket: str, limit: RateLimit | None) -> None:
        """Log the finished request; record the window its response reported, if any."""
        ticket = self._my_tickets().pop(bucket, None)
        with self._lock:
            now = self._clock()
            state = self._bucket(bucket)
            state.done.append(now)
            state.answered += 1
            sent_after = state.in_flight.pop(ticket, None) if ticket is not None else None
            if limit is None:
                return  # the claim already counted this request down
            if ticket is not None and ticket < state.observed_ticket:
                return  # a later request's report is newer: this one would undo it
            # The report counts this request. It may not count those still in flight, nor
            # those answered while it was on its way (they may have reached the CRM after it).
            overlapped = state.answered - 1 - sent_after if sent_after is not None else 0
            unseen = len(state.in_flight) + overlapped
            state.window = replace(limit, remaining=limit.remaining - unseen)
            state.observed_at = now
            state.observed_ticket = ticket if ticket is not None else state.observed_ticket
            state.longest_window = max(state.longest_window, limit.window_seconds)

    def _my_tickets(self) -> dict[str, int]:
        tickets: dict[str, int] | None = getattr(self._tickets, "by_bucket", None)
        if tickets is None:
            tickets = self._tickets.by_bucket = {}
        return tickets

    def _bucket(self, bucket: str) -> _Bucket:
        state = self._buckets.get(bucket)
        if state is None:
            state = self._buckets[bucket] = _Bucket(deque(maxlen=self._LOG_SIZE))
        return state

    def _send_at(self, bucket: str, now: float) -> float:
        """When the next request in `bucket` may go out (called under the lock)."""
        state = self._bucket(bucket)
        send_at = now
        limit = state.window
        if limit is not None and limit.remaining <= self._threshold(limit):
            paced = (self._rolling_send_at(state, limit, now) if limit.rolling
                     else self._fixed_send_at(state, limit, now))
            send_at = max(send_at, paced)
        spacing = self._min_intervals.get(bucket)
        if spacing and state.last_claimed is not None:
            send_at = max(send_at, state.last_claimed + spacing)
        return send_at

    @staticmethod
    def _fixed_send_at(state: _Bucket, limit: RateLimit, now: float) -> float:
        base = now if state.last_claimed is None else max(now, state.last_claimed)
        reopens = state.observed_at + limit.window_seconds
        if limit.remaining >= 0:
            return base + max(reopens - base, 0.0) / (limit.remaining + 1)
        # More claims than the window had left. Pipedrive's burst window is a rolling 2 s one
        # (https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting) that frees a
        # slot as each request ages out: the n-th claim beyond the budget waits for the n-th
        # oldest of our own requests to leave it, the window being the longest reset seen.
        window = max(state.longest_window, limit.window_seconds)
        ours = [t for t in state.done if t > now - window]
        needed = 1 - limit.remaining
        if now >= reopens and limit.limit:
            # The reported window has reset since: our own requests are all we know of.
            busy = len(ours) + len(state.in_flight)
            if busy < limit.limit:
                return now
            needed = busy - limit.limit + 1
        if len(ours) >= needed:
            return max(reopens, ours[needed - 1] + window)
        return max(reopens, base + window / (limit.limit or 1))

    @staticmethod
    def _rolling_send_at(state: _Bucket, limit: RateLimit, now: float) -> float:
        pace = limit.window_seconds / (limit.limit or max(limit.remaining, 0) + 1)
        if limit.remaining > 0:
            # Spaced from the last claim, not the last answer: with several requests in
            # flight an answer arrives up to a round trip after its claim, and spacing from
            # it would hold the rate below what the window allows. The window itself still
            # counts every claim down, and the exhausted branch below waits for answers.
            return state.last_claimed + pace if state.last_claimed is not None else now
        # The n-th claim beyond the budget waits for the n-th slot to free: the n-th oldest of
        # our own requests still in the window ageing out.
        needed = 1 - limit.remaining
        horizon = now - limit.window_seconds
        ours = [t for t in state.done if t > horizon]
        if len(ours) >= needed:
            return ours[needed - 1] + limit.window_seconds
        after_last = state.last_claimed + pace if state.last_claimed is not None else now
        return max(state.observed_at + limit.window_seconds, after_last)

    def _threshold(self, limit: RateLimit) -> int:
        if limit.limit:
            return max(1, math.ceil(limit.limit * self._pace_below))
        return 1


@dataclass
class _Bucket:
    """What a pacer knows about one bucket's window (guarded by the pacer's lock)."""

    done: deque[float]  # when our recent requests were answered, oldest first
    window: RateLimit | None = None  # the last report, `remaining` counted down by claims since
    observed_at: float = 0.0
    observed_ticket: int = -1  # the claim whose response made the last report
    longest_window: float = 0.0
    last_claimed: float | None = None  # the send time reserved by the latest claim
    last_sent: float | None = None  # when the latest request really went (spaced buckets)
    # claims not yet answered -> `answered` when they were sent (None: not sent yet)
    in_flight: dict[int, int | None] = field(default_factory=dict)
    answered: int = 0  # responses seen so far


# --------------------------------------------------------------------------------------------
# Classification and retries
# --------------------------------------------------------------------------------------------

# Transport failures worth another try: the request may never have arrived, or the answer got
# lost. (`requests` wraps urllib3; the HubSpot SDK raises urllib3's own errors once its retries
# are off.) Anything else (a bug, a bad URL) propagates untouched.
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)
# Failures before a single byte was sent: a create can safely be sent again.
_NOT_SENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectTimeout,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
)


class TransportError(RetriableRemoteError):
    """No HTTP answer at all: a timeout, a refused, reset or dropped connection."""

    def __init__(self, crm: str, message: str, *, maybe_sent: bool,
                 unreachable: bool = False, timed_out: bool = False) -> None:
        super().__init__(crm, message)
        self.maybe_sent = maybe_sent  # False when it failed before the request went out
        # No connection could be made at all (refused, unknown host, TLS, connect timeout).
        self.unreachable = unreachable
        self.timed_out = timed_out


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delay-seconds (what HubSpot and Pipedrive send) or an
    HTTP-date (RFC 9110 §10.2.3), measured from `now`; None if absent or unparsable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)


class HttpPolicy:
    """Paces, classifies and retries every request of one adapter (one CRM account)."""

    def __init__(
        self,
        dialect: Dialect,
        *,
        max_retries: int = 6,
        sleep: Sleep = time.sleep,
        clock: MonotonicClock = time.monotonic,
        secrets: Sequence[str] = (),
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.5,
        max_retry_after: float = 300.0,
        pace_below: float = 0.2,
        min_intervals: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
        unreachable_retries: int = 2,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.dialect = dialect
        self.max_retries = max(0, max_retries)
        self.unreachable_retries = max(0, min(unreachable_retries, self.max_retries))
        self.endpoint = endpoint
        self._sleep = sleep
        self._secrets = tuple(s for s in secrets if s)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter
        self._max_retry_after = max_retry_after
        # Jitter only spreads clients apart; it needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._sent = _Counter()
        self._throttled = _Counter()
        self.pacer = Pacer(clock=clock, sleep=sleep, pace_below=pace_below,
                           min_intervals=min_intervals)
        self.budget = DailyBudget(dialect.crm)
        self._slots: threading.BoundedSemaphore | None = None
        self._max_in_flight: int | None = None

    @property
    def max_in_flight(self) -> int | None:
        """Requests sent at once at most, over every thread (None: no bound of its own).

        Set from CRMSYNC_SYNC_CONCURRENCY: however many threads pull and push for this
        account, no more requests than that are on the wire at once."""
        return self._max_in_flight

    @max_in_flight.setter
    def max_in_flight(self, count: int | None) -> None:
        self._max_in_flight = count
        self._slots = threading.BoundedSemaphore(count) if count else None

    @property
    def sleep(self) -> Sleep:
        """The sleeper this policy waits with (injected in tests): for polling loops."""
        return self._sleep

    @property
    def daily_share(self) -> float | None:
        """The share of today's remaining daily budget this run may spend (None: all)."""
        return self.budget.share

    @daily_share.setter
    def daily_share(self, share: float | None) -> None:
        self.budget.share = share

    @property
    def crm(self) -> str:
        return self.dialect.crm

    def __repr__(self) -> str:  # never the secrets
        return f"HttpPolicy({self.crm!r}, max_retries={self.max_retries})"

    # -- the one entry point ------------------------------------------------------------------

    def call(
        self,
        send: Callable[[], Reply[T]],
        *,
        what: str,
        bucket: str = "default",
        find_existing: Callable[[], T | None] | None = None,
    ) -> T:
        """Send through pacing and retries; return the reply's value or raise a RemoteError.

        `what` names the operation in messages ("create stage 'Proposal sent'").
        `find_existing` makes a non-idempotent create safe to retry: after a failure that may
        have reached the CRM (a 5xx, a dropped connection, a read timeout), it is asked first
        whether the object now exists, and its answer is returned instead of creating again.
        """
        last_error: RemoteError | None = None
        attempts = 0
        try:
            for attempt in Retrying(
                stop=stop_any(stop_after_attempt(self.max_retries + 1),
                              _StopOnLongRetryAfter(self._max_retry_after),
                              _StopWhenUnreachable(self.unreachable_retries + 1)),
                wait=self._wait,
                retry=retry_if_exception_type(RetriableRemoteError),
                sleep=self._sleep,
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    if find_existing is not None and last_error is not None and _maybe_applied(
                        last_error
                    ):
                        found = find_existing()
                        if found is not None:
                            log.info("%s: %s had already been applied; not sending it again",
                                     self.crm, what)
                            return found
                    try:
                        return self._attempt(send, what=what, bucket=bucket)
                    except RemoteError as exc:
                        last_error = exc
                        raise
        except RemoteError as exc:
            if exc.hint is None:
                exc.hint = self.advice(exc, attempts)
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _attempt(self, send: Callable[[], Reply[T]], *, what: str, bucket: str) -> T:
        self.budget.check()
        self.pacer.before_request(bucket)
        limit: RateLimit | None = None
        self._sent.add()
        order = self.budget.sent()
        # The slot is taken after pacing: a thread waiting for its paced moment holds none,
        # and one holding a slot only waits on the wire.
        slots = self._slots
        try:
            if slots is not None:
                slots.acquire()
            try:
                reply = send()
            finally:
                if slots is not None:
                    slots.release()
            headers = lower_headers(reply.headers)
            limit = self.dialect.read_rate_limit(headers)
            self.budget.observe(self.dialect.read_daily_left(headers), order)
        except _TRANSIENT_EXCEPTIONS as exc:
            raise self.classify_exception(exc, what=what) from exc
        finally:  # whatever happened, the claim is settled (a leaked one would slow all)
            self.pacer.after_response(bucket, limit)
        if reply.status == 429:
            self._throttled.add()
        error = self.classify_reply(reply.status, headers, reply.body, what=what, limit=limit)
        if error is not None:
            raise error
        return reply.value  # type: ignore[return-value]

    @property
    def requests_sent(self) -> int:
        """Requests sent so far (retries included), for run summaries and benchmarks."""
        return self._sent.value

    @property
    def throttled(self) -> int:
        """429s received so far."""
        return self._throttled.value

    # -- the one place that sorts failures ----------------------------------------------------

    def classify_reply(
        self, status: int, headers: Mapping[str, str], body: Any, *, what: str,
        limit: RateLimit | None = None,
    ) -> RemoteError | None:
        """None for success; otherwise the RemoteError this status means (retriable or fatal)."""
        if 0 < status < 300:
            return None
        headers = lower_headers(headers)
        if 300 <= status < 400:
            return self._redirect_error(status, headers.get("location"), what)
        message = self._message(status, body, what)
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status == 429:
            # Without Retry-After, the rate-limit window says when requests are welcome again.
            if retry_after is None and limit is not None and limit.remaining <= 0:
                retry_after = limit.window_seconds
            return RetriableRemoteError(self.crm, message, status=429, retry_after=retry_after)
        if status in {0, 408} or status >= 500:
            # 0: the HubSpot SDK's marker for a request it could not complete (TLS failure).
            return RetriableRemoteError(self.crm, message, status=status or None,
                                        retry_after=retry_after)
        if status == 401:
            return TokenRefusedError(self.crm, message, status=status)
        return FatalRemoteError(self.crm, message, status=status)

    def _redirect_error(self, status: int, location: str | None, what: str) -> FatalRemoteError:
        # No redirect is followed (requests would carry Pipedrive's x-api-token to any host it
        # is sent to; the HubSpot SDK's urllib3 has redirects off): say where it pointed, by
        # origin only, since a Location's path or query may carry anything.
        base = self.endpoint.base_url if self.endpoint else None
        target = urljoin(base + "/", location) if base and location else location
        where = "no Location"
        if target and not urlsplit(target).netloc:
            where = "its own origin"  # a relative Location, and no base URL to resolve it
        elif target:
            origin = _origin(target)
            same = base is not None and origin == _origin(base)
            where = f"{'its own origin' if same else 'another origin'}, {origin}"
        return FatalRemoteError(self.crm, self.mask(
            f"a redirect ({where}), which crmsync does not follow: the token must not travel "
            f"anywhere but the configured base URL ({what})"), status=status)

    def classify_exception(self, exc: BaseException, *, what: str) -> TransportError:
        """A transport failure (timeout, refused or dropped connection) as a retriable error."""
        failure = _transport_failure(exc)
        where = self.endpoint.base_url if self.endpoint else None
        return TransportError(
            self.crm,
            self.mask(f"{failure.describe(where)} ({what})"),
            maybe_sent=not _caused_by_not_sent(exc),
            unreachable=failure.unreachable,
            timed_out=failure.timed_out,
        )

    def advice(self, error: RemoteError, attempts: int) -> str | None:
        """What to do about `error`, the last of `attempts`: the hint of the final message."""
        name = crm_title(self.crm)
        endpoint = self.endpoint
        if isinstance(error, TokenRefusedError):
            source = (f"${endpoint.token_source}" if endpoint and endpoint.token_source
                      else "the token setting")
            return (f"{name} refused the token: check that {source} holds a current {name} "
                    "token for this client's account (the token itself is never shown)")
        if error.status == 403:
            return (f"{name} accepted the token but not this request: check the token's "
                    "scopes (HubSpot private app) or the user's permissions (Pipedrive)")
        if error.status is not None and 300 <= error.status < 400:
            setting = endpoint.base_url_setting if endpoint else None
            now = f" (now {endpoint.base_url})" if endpoint else ""
            return (f"Check {setting or 'the base URL'}{now}: it must be {name}'s API address "
                    "itself (or `crmsync sandbox`), not a page or proxy that redirects")
        if isinstance(error, FatalRemoteError):
            return None
        if error.retry_after is not None and error.retry_after > self._max_retry_after:
            return (f"{name} asked to wait {error.retry_after:.0f} s before the next request, "
                    "longer than crmsync waits in one run: try again later")
        if isinstance(error, TransportError) and error.unreachable:
            check = "check the base URL"
            if endpoint is not None and endpoint.base_url_setting:
                check = f"check {endpoint.base_url_setting} (now {endpoint.base_url})"
            elif endpoint is not None:
                check = f"check the base URL {endpoint.base_url}"
            todo = f"{check}: is {name}, or `crmsync sandbox`, running and reachable from here?"
        elif isinstance(error, TransportError) and error.timed_out:
            todo = (f"{name} may be slow or down: try again later, or allow more time with "
                    "CRMSYNC_HTTP_TIMEOUT_SECONDS")
        else:
            todo = (f"{name} may be having trouble: try again later (CRMSYNC_MAX_RETRIES sets "
                    "how often crmsync retries)")
        return f"Gave up after {attempts} attempts; {todo}" if attempts > 1 else (
            todo[0].upper() + todo[1:])

    def mask(self, text: str) -> str:
        """`text` with every secret this policy knows replaced by ***."""
        return mask_secrets(text, self._secrets)

    def _message(self, status: int, body: Any, what: str) -> str:
        parsed = parse_body(body)
        crm_message = self.dialect.read_error_message(parsed)
        if crm_message is None:
            text = parsed if isinstance(parsed, str) else json.dumps(parsed, ensure_ascii=False)
            crm_message = (text or "").strip()[:300] or "no error message"
        return self.mask(f"{crm_message} ({what})")

    # -- tenacity hooks -----------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RemoteError) and error.retry_after is not None:
            return error.retry_after
        backoff = self._backoff_initial * 2 ** (state.attempt_number - 1)
        return min(self._backoff_max, backoff) + self._rng.uniform(0, self._jitter)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        limit = self.max_retries + 1
        if isinstance(error, TransportError) and error.unreachable:
            limit = self.unreachable_retries + 1
        log.warning("%s (attempt %d of %d); retrying in %.1fs", self.mask(str(error)),
                    state.attempt_number, limit, wait)


class _StopOnLongRetryAfter(stop_base):
    """Stop when the CRM asks us to wait longer than `limit` seconds.

    A Retry-After of minutes or hours (HubSpot's daily limit) is not worth sleeping through
    inside one command: fail now and let the user, or the next cron run, try again later.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome else None
        return (isinstance(error, RemoteError) and error.retry_after is not None
                and error.retry_after > self.limit)


class _StopWhenUnreachable(stop_base):
    """Stop after `attempts` when no connection could be made at all.

    A refused connection, an unknown host or a failed TLS handshake rarely heal within the
    minute the full backoff would take; a brief blip (a restarting server) still gets a retry.
    """

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome else None
        return (isinstance(error, TransportError) and error.unreachable
                and retry_state.attempt_number >= self.attempts)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: requests and urllib3 nest the real cause (MaxRetryError.reason,
    the first argument, __cause__/__context__)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        first_arg = current.args[0] if current.args else None
        if isinstance(first_arg, BaseException) and id(first_arg) not in seen:
            current = first_arg
            continue
        current = current.__cause__ or current.__context__
    return chain


def _caused_by_not_sent(exc: BaseException) -> bool:
    return any(isinstance(e, _NOT_SENT_EXCEPTIONS) for e in _causes(exc))


@dataclass(frozen=True)
class _TransportFailure:
    """What went wrong on the wire, in words a user can act on."""

    text: str  # with {where} for the base URL, e.g. "connection refused by {where}"
    unreachable: bool = False
    timed_out: bool = False

    def describe(self, where: str | None) -> str:
        return self.text.format(where=where or "the server")


def _transport_failure(exc: BaseException) -> _TransportFailure:  # noqa: PLR0911 -- one
    # return per kind of failure: the taxonomy reads best as one flat list.
    chain = _causes(exc)

    def found(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    if found(urllib3.exceptions.NameResolutionError, socket.gaierror):
        return _TransportFailure("host name not found for {where}", unreachable=True)
    if found(ConnectionRefusedError) or any("Connection refused" in str(e) for e in chain):
        return _TransportFailure("connection refused by {where}", unreachable=True)
    tls = found(ssl.SSLError, urllib3.exceptions.SSLError, requests.exceptions.SSLError)
    if tls is not None:
        reason = getattr(tls, "reason", None) or str(tls).strip()
        return _TransportFailure(f"TLS handshake with {{where}} failed ({_short(reason)})",
                                 unreachable=True)
    connect_timeout = found(requests.exceptions.ConnectTimeout,
                            urllib3.exceptions.ConnectTimeoutError)
    new_connection = found(urllib3.exceptions.NewConnectionError)
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: only a real timeout counts.
    if connect_timeout is not None and not isinstance(
            connect_timeout, urllib3.exceptions.NewConnectionError) and new_connection is None:
        return _TransportFailure("timed out connecting to {where}", unreachable=True,
                                 timed_out=True)
    if new_connection is not None:
        os_error = found(OSError)
        reason = (os_error.strerror if isinstance(os_error, OSError) and os_error.strerror
                  else str(new_connection))
        return _TransportFailure(f"cannot connect to {{where}} ({_short(reason)})",
                                 unreachable=True)
    if found(requests.Timeout, TimeoutError, urllib3.exceptions.TimeoutError):
        return _TransportFailure("timed out waiting for the answer from {where}",
                                 timed_out=True)
    return _TransportFailure("connection failed: the connection to {where} broke before the "
                             f"answer arrived ({_short(f'{type(exc).__name__}: {exc}')})")


def _origin(url: str) -> str:
    """`scheme://host[:port]` of `url`, without any user info, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "an unreadable address"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _short(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split()).replace("{", "(").replace("}", ")")
    return text if len(text) <= width else text[: width - 1] + "…"


def _maybe_applied(error: RemoteError) -> bool:
    """Could the failed request have changed the CRM? (429s and unsent requests cannot.)"""
    if error.status == 429:
        return False
    if error.status is not None:
        return error.status >= 500 or error.status == 408
    return not isinstance(error, TransportError) or error.maybe_sent


class _Counter:
    """A count that threads sharing one policy add to safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1
