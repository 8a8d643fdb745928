"""Run-time knobs of the sandbox: latency, fault injection and rate limits.

One pydantic model, `SandboxConfig`, is the single source for `POST /_sandbox/faults`, the
`crmsync sandbox` options and `start_sandbox(config=...)`. Everything is off by default so
unit tests see an ideal, unlimited CRM; benchmarks switch realism on per run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmsync.names import CrmName  # noqa: TC001 -- pydantic reads it at runtime

PipedrivePlan = Literal["lite", "growth", "premium", "ultimate"]

# Burst requests per token per rolling 2 s, by plan (Pipedrive "Rate limiting" docs, as
# summarised in API-FACTS.md); daily token budget multiplier by plan.
PIPEDRIVE_BURST_PER_2S: dict[str, int] = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
PIPEDRIVE_PLAN_MULTIPLIER: dict[str, int] = {"lite": 1, "growth": 2, "premium": 5, "ultimate": 7}


class SandboxConfig(BaseModel):
    """Latency, faults and rate limits. Rates are shares of requests in [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- added latency (every emulated CRM request; control endpoints excluded)
    latency_ms: float = Field(default=0.0, ge=0, le=60_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=60_000)

    # --- fault injection, decided before the handler runs (a faulted request has no effect)
    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_5xx: float = Field(default=0.0, ge=0, le=1)
    rate_drop: float = Field(default=0.0, ge=0, le=1)
    rate_slow: float = Field(default=0.0, ge=0, le=1)
    slow_ms: float = Field(default=3_000.0, ge=0, le=600_000)
    seed: int = 0
    fault_crm: CrmName | None = None
    fault_path_prefix: str | None = None

    # --- rate limits as the real services enforce them
    rate_limits_enabled: bool = False
    hubspot_limit_per_10s: int = Field(default=100, ge=1)
    hubspot_daily_limit: int | None = Field(default=None, ge=1)  # None: by tier (see daily_limit)
    hubspot_search_per_s: int = Field(default=4, ge=1)
    pipedrive_plan: PipedrivePlan = "lite"
    pipedrive_burst_per_2s: int | None = Field(default=None, ge=1)  # None: by plan
    pipedrive_search_per_2s: int = Field(default=10, ge=1)
    pipedrive_seats: int = Field(default=1, ge=1)

    # --- HubSpot search index lag: a created or changed record reaches search this many
    # seconds after the write (lists and gets see it at once, as live); 0 = at once.
    search_lag_seconds: float = Field(default=0.0, ge=0, le=3_600)

    # --- HubSpot exports (`hubspot_exports.py`): rows per CSV partition above which the
    # result is a zip of partitions (1,000,000 live), processing time (seconds, sandbox
    # clock: base plus per 1,000 rows), and tokens lacking the `crm.export` scope.
    hubspot_export_partition_rows: int = Field(default=1_000_000, ge=1)
    hubspot_export_base_seconds: float = Field(default=5.0, ge=0)
    hubspot_export_seconds_per_1000: float = Field(default=0.2, ge=0)
    hubspot_export_denied_tokens: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _rates_sum(self) -> SandboxConfig:
        if self.rate_429 + self.rate_5xx + self.rate_drop + self.rate_slow > 1:
            raise ValueError("rate_429 + rate_5xx + rate_drop + rate_slow must not exceed 1")
        return self

    @property
    def hubspot_daily(self) -> int:
        """HubSpot daily budget: 250k (100/10 s tier), 650k (190), 1M (250 with the pack)."""
        if self.hubspot_daily_limit is not None:
            return self.hubspot_daily_limit
        if self.hubspot_limit_per_10s <= 100:
            return 250_000
        return 650_000 if self.hubspot_limit_per_10s <= 190 else 1_000_000

    @property
    def pipedrive_burst(self) -> int:
        return self.pipedrive_burst_per_2s or PIPEDRIVE_BURST_PER_2S[self.pipedrive_plan]

    @property
    def pipedrive_daily_budget(self) -> int:
        """Daily token budget: 30,000 × plan multiplier × seats."""
        return 30_000 * PIPEDRIVE_PLAN_MULTIPLIER[self.pipedrive_plan] * self.pipedrive_seats

    @property
    def faults_active(self) -> bool:
        return bool(
            self.latency_ms or self.jitter_ms or self.rate_429 or self.rate_5xx
            or self.rate_drop or self.rate_slow
        )

    def merged(self, changes: dict[str, object]) -> SandboxConfig:
        """A new config with `changes` applied and validated (unknown keys rejected)."""
        return SandboxConfig.model_validate({**self.model_dump(), **changes})
