"""Realism knobs: added latency and injected faults, reproducible from a seed.

Every emulated-CRM request (never `/_sandbox/`) that matches the optional `fault_crm` and
`fault_path_prefix` filters draws exactly two numbers from one `random.Random(seed)`: one
picks the fault, one the jitter. So a single client issuing the same requests in the same
order meets the same faults on every run; concurrent clients interleave the draws.

Faults are decided **before** the handler runs: a request answered with an injected 429, 5xx
or dropped connection has had no effect on the emulated CRM (retrying it is always safe).
Slow responses and latency do run the handler; only the reply is delayed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from crmsync.sandbox.config import SandboxConfig

FaultKind = Literal["none", "429", "500", "502", "503", "drop", "slow"]
_FIVE_XX: tuple[FaultKind, ...] = ("500", "502", "503")


@dataclass(frozen=True)
class FaultDecision:
    kind: FaultKind
    delay_s: float  # latency + jitter, plus slow_ms for a slow response

    @property
    def short_circuits(self) -> bool:
        """True when the handler must not run."""
        return self.kind not in ("none", "slow")


NO_FAULT = FaultDecision("none", 0.0)


class FaultInjector:
    """Decides, per request, the added delay and whether to inject a fault."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)  # noqa: S311 - reproducible, not secret
        self._lock = threading.Lock()

    def applies_to(self, crm: str, path: str) -> bool:
        cfg = self.config
        if cfg.fault_crm is not None and cfg.fault_crm != crm:
            return False
        return cfg.fault_path_prefix is None or path.startswith(cfg.fault_path_prefix)

    def decide(self, crm: str, path: str) -> FaultDecision:
        cfg = self.config
        if not cfg.faults_active or not self.applies_to(crm, path):
            return NO_FAULT
        with self._lock:
            roll, jitter_roll = self._rng.random(), self._rng.random()
        delay = (cfg.latency_ms + jitter_roll * cfg.jitter_ms) / 1000
        kind: FaultKind = "none"
        edge = cfg.rate_429
        if roll < edge:
            kind = "429"
        elif roll < (edge := edge + cfg.rate_5xx):
            # the position inside the 5xx band picks the status, so no extra draw is needed
            kind = _FIVE_XX[min(int((roll - edge + cfg.rate_5xx) / cfg.rate_5xx * 3), 2)]
        elif roll < (edge := edge + cfg.rate_drop):
            kind = "drop"
        elif roll < edge + cfg.rate_slow:
            kind = "slow"
            delay += cfg.slow_ms / 1000
        return FaultDecision(kind, delay)
