"""The one retry and pacing policy every adapter sends its HTTP requests through.

An adapter turns each request into a zero-argument `send()` returning a neutral `Reply`
(status, headers, body, value) and lets `HttpPolicy.call` do the rest:

- **pace** before sending, from the rate-limit headers of earlier responses, so a run slows
  down *before* the CRM's limit instead of bouncing off it with 429s;
- **classify** the outcome in one place (`classify_reply`, `classify_exception`): 429, 408,
  5xx, timeouts and dropped connections are `RetriableRemoteError`; any other 4xx is a
  `FatalRemoteError` carrying the CRM's own message;
- **retry** retriable failures with tenacity: exponential backoff with jitter, or exactly the
  `Retry-After` the CRM asked for.

This is the only retry layer: the HubSpot SDK's urllib3 retries are switched off
(`hubspot.py`) and `requests` does not retry unless told to. Tokens handed to the policy are
masked in every message and log line it produces.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

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

from crmsync.errors import FatalRemoteError, RemoteError, RetriableRemoteError

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], None]
Clock = Callable[[], float]

MASK = "***"


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
    # https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting : `x-ratelimit-reset`
    # is the number of seconds until the current (2 s burst) window resets.
    remaining = _int_header(headers, "x-ratelimit-remaining")
    if remaining is None:
        return None
    reset = headers.get("x-ratelimit-reset")
    try:
        window = float(reset) if reset is not None else 2.0
    except ValueError:
        window = 2.0
    return RateLimit(
        remaining=remaining, limit=_int_header(headers, "x-ratelimit-limit"), window_seconds=window
    )


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


HUBSPOT = Dialect("hubspot", _hubspot_rate_limit, _hubspot_error_message)
PIPEDRIVE = Dialect("pipedrive", _pipedrive_rate_limit, _pipedrive_error_message)


@dataclass(frozen=True)
class Reply(Generic[T]):
    """One HTTP exchange, whatever library made it: status, headers, raw body, parsed value."""

    status: int
    headers: Mapping[str, str]
    body: Any = None  # the error body (bytes, text or parsed JSON) when status >= 400
    value: T | None = None  # what the adapter wants back on success


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
      the window; with nothing left it waits for the whole window;
    - **rolling windows** (HubSpot's `-Interval-Milliseconds`), requests are spaced at the
      sustainable rate `interval / limit`; with nothing left, the next one waits until the
      oldest of our own recent requests has aged out of the interval (a slot frees then), or
      the whole interval when the budget was spent by someone else.

    Between responses the pacer counts its own requests down, so a reply without headers does
    not reset it. Buckets keep separate limits apart (HubSpot's search has its own);
    `min_intervals` adds a fixed minimum spacing for a bucket whose limit has no headers.
    Times of our requests are taken when their answer arrived: the latest the CRM can have
    counted them, so ageing-out estimates err on the late (safe) side.
    """

    _LOG_SIZE = 1_000  # requests remembered per bucket; more than any window allows

    def __init__(self, *, clock: Clock, sleep: Sleep, pace_below: float = 0.2,
                 min_intervals: Mapping[str, float] | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._pace_below = pace_below
        self._min_intervals = dict(min_intervals or {})
        self._windows: dict[str, tuple[RateLimit, float]] = {}
        self._last_sent: dict[str, float] = {}
        self._done: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def delay(self, bucket: str) -> float:
        """Seconds to wait before the next request in `bucket` (0 when none)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            window = self._windows.get(bucket)
            if window is not None:
                limit, observed_at = window
                if limit.remaining <= self._threshold(limit):
                    if limit.rolling:
                        wait = self._rolling_wait(bucket, limit, observed_at, now)
                    else:
                        time_left = limit.window_seconds - (now - observed_at)
                        if time_left > 0:
                            wait = time_left / (max(limit.remaining, 0) + 1)
            spacing = self._min_intervals.get(bucket)
            last = self._last_sent.get(bucket)
            if spacing and last is not None:
                wait = max(wait, last + spacing - now)
        return max(wait, 0.0)

    def before_request(self, bucket: str) -> float:
        """Sleep as long as `delay` says, then count the request; returns the seconds slept."""
        wait = self.delay(bucket)
        if wait > 0:
            log.debug("pacing %s: waiting %.2fs before the next request", bucket, wait)
            self._sleep(wait)
        with self._lock:
            self._last_sent[bucket] = self._clock()
            window = self._windows.get(bucket)
            if window is not None:
                limit, observed_at = window
                self._windows[bucket] = (replace(limit, remaining=limit.remaining - 1),
                                         observed_at)
        return wait

    def after_response(self, bucket: str, limit: RateLimit | None) -> None:
        """Log the finished request; record the window its response reported, if any."""
        now = self._clock()
        with self._lock:
            self._done.setdefault(bucket, deque(maxlen=self._LOG_SIZE)).append(now)
            if limit is not None:  # the reported window already counts this request
                self._windows[bucket] = (limit, now)

    def observe(self, bucket: str, limit: RateLimit) -> None:
        """Record a window reported outside a request (kept for callers and tests)."""
        self.after_response(bucket, limit)

    def _rolling_wait(self, bucket: str, limit: RateLimit, observed_at: float,
                      now: float) -> float:
        done = self._done.get(bucket, deque())
        if limit.remaining > 0:
            last = done[-1] if done else None
            pace = limit.window_seconds / (limit.limit or limit.remaining + 1)
            return 0.0 if last is None else last + pace - now
        horizon = now - limit.window_seconds
        ours = [t for t in done if t > horizon]
        if ours:
            return ours[0] + limit.window_seconds - now
        return limit.window_seconds - (now - observed_at)

    def _threshold(self, limit: RateLimit) -> int:
        if limit.limit:
            return max(1, math.ceil(limit.limit * self._pace_below))
        return 1


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

    def __init__(self, crm: str, message: str, *, maybe_sent: bool) -> None:
        super().__init__(crm, message)
        self.maybe_sent = maybe_sent  # False when it failed before the request went out


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the form HubSpot and Pipedrive send); None if absent/unparsable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
    return max(seconds, 0.0)


class HttpPolicy:
    """Paces, classifies and retries every request of one adapter (one CRM account)."""

    def __init__(
        self,
        dialect: Dialect,
        *,
        max_retries: int = 6,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        secrets: Sequence[str] = (),
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.5,
        max_retry_after: float = 300.0,
        pace_below: float = 0.2,
        min_intervals: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.dialect = dialect
        self.max_retries = max(0, max_retries)
        self._sleep = sleep
        self._secrets = tuple(s for s in secrets if s)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter
        self._max_retry_after = max_retry_after
        # Jitter only spreads clients apart; it needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self.pacer = Pacer(clock=clock, sleep=sleep, pace_below=pace_below,
                           min_intervals=min_intervals)

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
        for attempt in Retrying(
            stop=stop_any(stop_after_attempt(self.max_retries + 1),
                          _StopOnLongRetryAfter(self._max_retry_after)),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableRemoteError),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        ):
            with attempt:
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
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _attempt(self, send: Callable[[], Reply[T]], *, what: str, bucket: str) -> T:
        self.pacer.before_request(bucket)
        try:
            reply = send()
        except _TRANSIENT_EXCEPTIONS as exc:
            self.pacer.after_response(bucket, None)
            raise self.classify_exception(exc, what=what) from exc
        headers = lower_headers(reply.headers)
        limit = self.dialect.read_rate_limit(headers)
        self.pacer.after_response(bucket, limit)
        error = self.classify_reply(reply.status, headers, reply.body, what=what, limit=limit)
        if error is not None:
            raise error
        return reply.value  # type: ignore[return-value]

    # -- the one place that sorts failures ----------------------------------------------------

    def classify_reply(
        self, status: int, headers: Mapping[str, str], body: Any, *, what: str,
        limit: RateLimit | None = None,
    ) -> RemoteError | None:
        """None for success; otherwise the RemoteError this status means (retriable or fatal)."""
        if 0 < status < 400:
            return None
        headers = lower_headers(headers)
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
        return FatalRemoteError(self.crm, message, status=status)

    def classify_exception(self, exc: BaseException, *, what: str) -> TransportError:
        """A transport failure (timeout, refused or dropped connection) as a retriable error."""
        timed_out = isinstance(
            exc, requests.Timeout | TimeoutError | urllib3.exceptions.TimeoutError
        )
        kind = "timed out" if timed_out else "connection failed"
        return TransportError(
            self.crm,
            self.mask(f"{kind} ({type(exc).__name__}: {exc}) ({what})"),
            maybe_sent=not _caused_by_not_sent(exc),
        )

    def mask(self, text: str) -> str:
        """`text` with every secret this policy knows replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

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
        log.warning("%s (attempt %d of %d); retrying in %.1fs", self.mask(str(error)),
                    state.attempt_number, self.max_retries + 1, wait)


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


def _caused_by_not_sent(exc: BaseException) -> bool:
    """requests and urllib3 nest the real cause (MaxRetryError.reason, __context__)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _NOT_SENT_EXCEPTIONS):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        first_arg = current.args[0] if current.args else None
        if isinstance(first_arg, BaseException) and id(first_arg) not in seen:
            current = first_arg
            continue
        current = current.__cause__ or current.__context__
    return False


def _maybe_applied(error: RemoteError) -> bool:
    """Could the failed request have changed the CRM? (429s and unsent requests cannot.)"""
    if error.status == 429:
        return False
    if error.status is not None:
        return error.status >= 500 or error.status == 408
    return not isinstance(error, TransportError) or error.maybe_sent
