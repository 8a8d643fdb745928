"""Rate limits of both CRMs, as pure logic over an injected clock.

HubSpot (developers.hubspot.com/docs/api/usage-details; bodies as reported in
HubSpot/hubspot-api-python#117 and HGData/mk-node-hubspot#84):
- per token, a rolling 10-second window of 100 / 190 / 250 requests (policy
  ``TEN_SECONDLY_ROLLING``) and a daily budget (policy ``DAILY``, UTC days here — HubSpot
  resets at midnight in the account's time zone);
- every non-search response carries ``X-HubSpot-RateLimit-Max``, ``-Remaining``,
  ``-Interval-Milliseconds``, ``-Daily``, ``-Daily-Remaining``;
- the CRM search endpoints have their own limit (4 requests/s per token, policy ``SECONDLY``)
  and — as HubSpot documents — do not return the standard rate-limit headers;
- a 429 carries ``Retry-After`` in seconds.

Pipedrive (pipedrive.readme.io "Rate limiting"):
- per token, a rolling 2-second burst window by plan (Lite 20, Growth 40, Premium 100,
  Ultimate 120 for an ``api_token``; four times that for an OAuth ``access_token``) and 10
  per 2 s for search endpoints;
- a daily token budget (30,000 × plan multiplier × seats) spent by each request's token cost,
  the spec's per-operation ``x-token-cost`` (``pipedrive_cost``);
- headers ``x-ratelimit-limit``, ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (whole
  seconds until the window frees a slot) and, for ``api_token`` requests only ("Applicable
  only to api_token requests"), ``x-daily-requests-left``; over the limit → 429 in
  Pipedrive's error envelope with ``Retry-After``.

Decision (unconfirmed upstream): requests refused with 429 do not consume window capacity, so
a client that backs off for ``Retry-After`` seconds always gets through.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmsync.sandbox.config import SandboxConfig
    from crmsync.sandbox.http import Request


class RollingWindow:
    """At most `limit` events per key within any `window` seconds (a sliding log)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def try_acquire(self, key: str, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining after this request, seconds until a slot frees)."""
        events = self._prune(key, now)
        if len(events) >= self.limit:
            return False, 0, events[0] + self.window - now
        events.append(now)
        reset = events[0] + self.window - now
        return True, self.limit - len(events), reset


class DailyBudget:
    """A per-key budget that resets at each UTC midnight."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used: dict[str, tuple[int, int]] = {}  # key -> (day number, used)

    def spend(self, key: str, now: float, cost: int = 1) -> tuple[bool, int, float]:
        """(allowed, left after this request, seconds until midnight UTC)."""
        day = int(now // 86_400)
        used_day, used = self._used.get(key, (day, 0))
        if used_day != day:
            used = 0
        until_midnight = (day + 1) * 86_400 - now
        if used + cost > self.limit:
            return False, max(self.limit - used, 0), until_midnight
        used += cost
        self._used[key] = (day, used)
        return True, self.limit - used, until_midnight


@dataclass
class LimitOutcome:
    """What the limiter adds to a response: headers always; a 429 body when refused."""

    headers: dict[str, str] = field(default_factory=dict)
    refused: dict[str, Any] | None = None  # the 429 body
    retry_after: int = 0


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class HubSpotLimiter:
    """HubSpot's ten-secondly rolling, daily and search limits for one run's config."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.ten_secondly = RollingWindow(config.hubspot_limit_per_10s, 10.0)
        self.search = RollingWindow(config.hubspot_search_per_s, 1.0)
        self.daily = DailyBudget(config.hubspot_daily)

    def check(self, token: str, request: Request, now: float) -> LimitOutcome:
        if request.method == "POST" and request.path.endswith("/search"):
            allowed, _, reset = self.search.try_acquire(token, now)
            if not allowed:
                return LimitOutcome(
                    refused=hubspot_limit_body("You have reached your secondly limit.", "SECONDLY",
                                       f"publicapi:search-secondly:{_group(token)}"),
                    retry_after=_retry_after(reset),
                )
            return LimitOutcome()  # search responses carry no rate-limit headers
        allowed, remaining, reset = self.ten_secondly.try_acquire(token, now)
        daily_ok, daily_left, until_midnight = (
            self.daily.spend(token, now) if allowed else (True, -1, 0.0)
        )
        headers = {
            "X-HubSpot-RateLimit-Max": str(self.ten_secondly.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Daily": str(self.daily.limit),
        }
        if daily_left >= 0:
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily_left)
        if not allowed:
            return LimitOutcome(
                headers=headers,
                refused=hubspot_limit_body(
                    "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING",
                    f"publicapi:private-app:{_group(token)}"),
                retry_after=_retry_after(reset),
            )
        if not daily_ok:
            return LimitOutcome(
                headers=headers,
                refused=hubspot_limit_body("You have reached your daily limit.", "DAILY",
                                   f"publicapi:private-app-daily:{_group(token)}"),
                retry_after=_retry_after(until_midnight),
            )
        return LimitOutcome(headers=headers)


def hubspot_limit_body(message: str, policy: str, group: str) -> dict[str, Any]:
    """HubSpot's 429 body (no `category`: rate-limit errors use `errorType`)."""
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "groupName": group,
    }


def pipedrive_limit_body(message: str) -> dict[str, Any]:
    """Pipedrive's error envelope for a 429."""
    return {
        "success": False,
        "error": message,
        "error_info": "Please check developers.pipedrive.com/docs/api/v1/#/ for more "
        "information about Pipedrive API.",
        "data": None,
        "additional_data": None,
    }


def _group(token: str) -> str:
    """A stable, non-secret id for a token (HubSpot puts the app id in `groupName`)."""
    return str(sum(token.encode()) * 7919 % 10_000_000)


# `x-token-cost` of the operations that break the v2 pattern below (openapi-v2.yaml; the
# field definitions from openapi-v1.yaml, where they are served).
_PIPEDRIVE_COSTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v2/pipelines"): 5,
    ("GET", "/api/v2/stages"): 5,
    ("GET", "/api/v2/deals/archived"): 20,
    **{(method, f"{prefix}{path}"): cost
       for prefix in ("/api/v1", "/v1")  # v1 answers at both (openapi-v1.yaml costs)
       for method, path, cost in (
           *((m, f"/{name}{tail}", c)
             for name in ("dealFields", "personFields", "organizationFields")
             for m, tail, c in (("GET", "", 20), ("POST", "", 10), ("GET", "/{id}", 2),
                                ("PUT", "/{id}", 10), ("DELETE", "/{id}", 6))),
           ("GET", "/recents", 20),
           ("GET", "/users/me", 2),
           ("PUT", "/persons/{id}/merge", 40),
           ("PUT", "/organizations/{id}/merge", 40))},
}
# OAuth apps get four times an api_token's burst ("80 requests per 2 seconds per
# access_token" against 20 per api_token on the smallest plan).
PIPEDRIVE_OAUTH_BURST_FACTOR = 4


def pipedrive_cost(request: Request) -> int:
    """A request's token cost: the spec's `x-token-cost` of its operation."""
    cost = _PIPEDRIVE_COSTS.get((request.method, request.route))
    if cost is not None:
        return cost
    if request.path.endswith("/search"):
        return 20
    if request.method == "GET":
        # single-record reads end in an id segment; lists end in a collection name
        return 1 if request.route.endswith("}") else 10
    if request.method == "DELETE":
        return 3
    return 5


def pipedrive_is_oauth(request: Request) -> bool:
    """True when the request authenticates with an OAuth bearer token, not an api_token."""
    return not (request.headers.get("x-api-token") or request.arg("api_token"))


class PipedriveLimiter:
    """Pipedrive's per-token 2-second burst window, search window and daily token budget."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.burst = RollingWindow(config.pipedrive_burst, 2.0)
        self.oauth_burst = RollingWindow(config.pipedrive_burst * PIPEDRIVE_OAUTH_BURST_FACTOR,
                                         2.0)
        self.search = RollingWindow(config.pipedrive_search_per_2s, 2.0)
        self.daily = DailyBudget(config.pipedrive_daily_budget)

    def check(self, token: str, request: Request, now: float) -> LimitOutcome:
        is_search = request.path.endswith("/search")
        oauth = pipedrive_is_oauth(request)
        window = self.search if is_search else (self.oauth_burst if oauth else self.burst)
        allowed, remaining, reset = window.try_acquire(token, now)
        daily_ok, daily_left, until_midnight = (
            self.daily.spend(token, now, pipedrive_cost(request)) if allowed else (True, -1, 0.0)
        )
        headers = {
            "x-ratelimit-limit": str(window.limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(_retry_after(reset)),
        }
        if daily_left >= 0 and not oauth:
            headers["x-daily-requests-left"] = str(daily_left)
        if not allowed:
            return LimitOutcome(
                headers=headers,
                refused=pipedrive_limit_body("Request over limit"),
                retry_after=_retry_after(reset),
            )
        if not daily_ok:
            return LimitOutcome(
                headers=headers,
                refused=pipedrive_limit_body("Daily API token budget exhausted"),
                retry_after=_retry_after(until_midnight),
            )
        return LimitOutcome(headers=headers)


class RateLimits:
    """Both CRMs' limiters behind one lock; rebuilt whenever the config changes.

    Every limit is per token, that is per account (`accounts.py`), as the real services count.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.Lock()
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        with self._lock:
            self.enabled = config.rate_limits_enabled
            self._limiters: dict[str, HubSpotLimiter | PipedriveLimiter] = {
                "hubspot": HubSpotLimiter(config),
                "pipedrive": PipedriveLimiter(config),
            }

    def check(self, crm: str, token: str, request: Request, now: float) -> LimitOutcome:
        """The limits `token` meets on `crm` for `request` at `now`."""
        if not self.enabled or crm not in self._limiters:
            return LimitOutcome()
        with self._lock:
            return self._limiters[crm].check(token, request, now)
