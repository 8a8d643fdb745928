"""The `/_sandbox/` control API: a public contract for tests, benchmarks and the demo.

No authentication; JSON in, JSON out; errors are ``{"error": message}`` with status 400/404.
Control requests are not counted in the stats and never see latency, faults or limits.

Accounts: each CRM keeps one account per token (`accounts.py`), created fresh the first time
the token is served or seeded — HubSpot with only its default deal pipeline, Pipedrive with
only its default pipeline and its standard and seeded custom field definitions, as new real
accounts are.
Faults and latency are server-wide; rate limits are per token, i.e. per account. Nothing
here ever shows a token.

``GET /_sandbox/stats`` → 200
    ``{"total": int,                        # every non-control request answered (incl.
                                            # 401/404/405/429/5xx), unknown paths too
       "by_route": {"GET /crm/v3/objects/{objectType}": int, …},   # method + route template;
                                            # unknown paths count as "<METHOD> <unmatched>"
       "unmatched": {"GET /api/v2/leads": int, …},  # the requests no route served, by method
                                            # and path (query left out); at most 1,000 paths,
                                            # the rest under "<METHOD> <other>"
       "by_crm": {"hubspot": int, "pipedrive": int},   # a path under no CRM counts in none
       "by_status": {"200": int, "429": int, …},  # dropped connections count under "dropped"
       "rate_limited": int,                 # 429s served by the enforced rate limits
       "faults_injected": {"total": int, "429": int, "500": int, "502": int, "503": int,
                           "drop": int, "slow": int},
       "accounts": {"hubspot": int, "pipedrive": int}}``  # accounts each CRM holds now
``POST /_sandbox/stats/reset`` → 200 ``{"ok": true}``: zero the stats only.
``POST /_sandbox/reset`` → 200 ``{"ok": true}``: every account of every CRM dropped (the
    next request of any token meets a new account), latency/faults/rate limits off, stats
    zeroed.
``POST /_sandbox/seed`` ``{"crm": "hubspot"|"pipedrive", "contacts": N, "companies": N,
    "deals": N, "seed": S, "token": T}`` → 200 ``{"crm": …, "created": {"contacts": n,
    "companies": n, "deals": n, "associations": n, …}}``. Seeds the account of ``token``
    (optional; default the sandbox's default token: ``--token`` when the sandbox is
    restricted to one, else ``"sandbox-token"``, the token `crmsync sandbox` prints); a token
    the sandbox would refuse → 400. Adds to existing data; deterministic from ``seed``.
``GET /_sandbox/faults`` → 200: the current `SandboxConfig` as JSON.
``POST /_sandbox/faults`` ``{…any SandboxConfig fields…}`` → 200 with the new full config.
    A partial update over the current settings; an unknown key or invalid value → 400.
    Every POST restarts the rate-limit windows and the fault RNG (from ``seed``).
    Keys: latency_ms, jitter_ms, rate_429, rate_5xx, rate_drop, rate_slow, slow_ms, seed,
    fault_crm, fault_path_prefix, rate_limits_enabled, hubspot_limit_per_10s,
    hubspot_daily_limit, hubspot_search_per_s, pipedrive_plan, pipedrive_burst_per_2s,
    pipedrive_search_per_2s, pipedrive_seats, search_lag_seconds (HubSpot: seconds before a
    created or changed record is visible to search; lists and gets see it at once).
``GET /_sandbox/health`` → 200 ``{"ok": true, "crms": ["hubspot", "pipedrive"]}``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmsync.names import CrmName  # noqa: TC001 -- pydantic reads it at runtime
from crmsync.sandbox.http import Request, Response

if TYPE_CHECKING:
    from crmsync.sandbox.server import Sandbox

MAX_SEED_RECORDS = 2_000_000
UNMATCHED = "<unmatched>"  # the route of a request no route served
# distinct paths `unmatched` keeps (a scanner must not grow the counters without bound)
MAX_UNMATCHED_PATHS = 1_000


class Stats:
    """Request counters, safe to update from many server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.total = 0
            self.by_route: Counter[str] = Counter()
            self.unmatched: Counter[str] = Counter()
            self.by_crm: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.rate_limited = 0
            self.faults: Counter[str] = Counter()

    def record(
        self, crm: str | None, method: str, route: str | None, response: Response,
        injected: str | None, *, path: str = "",
    ) -> None:
        """Count one request; `route` None: no route served it (`path` says where it went);
        `crm` None: the path belongs to no emulated CRM."""
        with self._lock:
            self.total += 1
            self.by_route[f"{method} {route or UNMATCHED}"] += 1
            if route is None:
                key = f"{method} {path}"
                if key not in self.unmatched and len(self.unmatched) >= MAX_UNMATCHED_PATHS:
                    key = f"{method} <other>"
                self.unmatched[key] += 1
            if crm is not None:
                self.by_crm[crm] += 1
            self.by_status["dropped" if response.drop else str(response.status)] += 1
            if injected is not None:
                self.faults[injected] += 1
            elif response.status == 429:
                self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            faults = {k: self.faults.get(k, 0) for k in ("429", "500", "502", "503", "drop",
                                                        "slow")}
            return {
                "total": self.total,
                "by_route": dict(sorted(self.by_route.items())),
                "unmatched": dict(sorted(self.unmatched.items())),
                "by_crm": dict(self.by_crm),
                "by_status": dict(sorted(self.by_status.items())),
                "rate_limited": self.rate_limited,
                "faults_injected": {"total": sum(faults.values()), **faults},
            }


class SeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crm: CrmName
    contacts: int = Field(default=0, ge=0)
    companies: int = Field(default=0, ge=0)
    deals: int = Field(default=0, ge=0)
    seed: int = 0
    token: str | None = Field(default=None, min_length=1)  # None: the default token


def _error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


class ControlApi:
    """Handlers of `/_sandbox/…`; pure over the `Sandbox` they control."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._routes = {
            ("GET", "/_sandbox/stats"): self.stats,
            ("POST", "/_sandbox/stats/reset"): self.reset_stats,
            ("POST", "/_sandbox/reset"): self.reset,
            ("POST", "/_sandbox/seed"): self.seed,
            ("GET", "/_sandbox/faults"): self.get_faults,
            ("POST", "/_sandbox/faults"): self.set_faults,
            ("GET", "/_sandbox/health"): self.health,
        }

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        handler = self._routes.get((request.method, path))
        if handler is None:
            if any(p == path for _, p in self._routes):
                return _error(405, f"{request.method} not allowed on {path}")
            return _error(404, f"unknown control endpoint {path}")
        try:
            return handler(request)
        except ValueError as exc:  # malformed JSON
            return _error(400, f"invalid JSON body: {exc}")

    def stats(self, request: Request) -> Response:
        with self.sandbox.lock:
            accounts = self.sandbox.accounts.counts()
        return Response(200, {**self.sandbox.stats.snapshot(), "accounts": accounts})

    def reset_stats(self, request: Request) -> Response:
        self.sandbox.stats.clear()
        return Response(200, {"ok": True})

    def reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return Response(200, {"ok": True})

    def health(self, request: Request) -> Response:
        return Response(200, {"ok": True, "crms": self.sandbox.accounts.crms})

    def seed(self, request: Request) -> Response:
        try:
            body = SeedRequest.model_validate(request.json() or {})
        except ValidationError as exc:
            return _error(400, _validation_message(exc))
        if body.contacts + body.companies + body.deals > MAX_SEED_RECORDS:
            return _error(400, f"at most {MAX_SEED_RECORDS} records per seed call")
        if body.crm not in self.sandbox.accounts.crms:
            return _error(404, f"the {body.crm} emulator is not running")
        if body.token is not None and not self.sandbox.accepts(body.token):
            return _error(400, "token: the sandbox accepts only its --token; an account for "
                               "another token could never be reached")
        created = self.sandbox.seed(
            body.crm, token=body.token, contacts=body.contacts, companies=body.companies,
            deals=body.deals, seed=body.seed,
        )
        return Response(200, {"crm": body.crm, "created": created})

    def get_faults(self, request: Request) -> Response:
        return Response(200, self.sandbox.config.model_dump(mode="json"))

    def set_faults(self, request: Request) -> Response:
        changes = request.json() or {}
        if not isinstance(changes, dict):
            return _error(400, "expected a JSON object")
        try:
            config = self.sandbox.config.merged(changes)
        except ValidationError as exc:
            return _error(400, _validation_message(exc))
        self.sandbox.configure(config)
        return Response(200, config.model_dump(mode="json"))
