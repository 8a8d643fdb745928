"""A local emulator of the HubSpot and Pipedrive APIs (`crmsync sandbox`).

    server = start_sandbox(port=0)           # background thread, free port
    server.base_url                          # http://127.0.0.1:PORT — both CRMs live here
    server.stop()

HubSpot is served under `/crm/v3/…` and `/crm/v4/…`, Pipedrive under `/api/…`, the control
API under `/_sandbox/…` (contract in `crmsync.sandbox.control`). Each token is its own CRM
account, as each client's real portal or company is (`crmsync.sandbox.accounts`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.accounts import DEFAULT_TOKEN
from crmsync.sandbox.clock import Clock, ManualClock
from crmsync.sandbox.config import SandboxConfig
from crmsync.sandbox.server import Emulator, Sandbox, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "DEFAULT_TOKEN",
    "Clock",
    "Emulator",
    "ManualClock",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "build_sandbox",
    "start_sandbox",
]


def build_sandbox(
    *,
    token: str | None = None,
    config: SandboxConfig | Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> Sandbox:
    """The sandbox application (both CRMs) without a socket — for tests and the server.

    `token`: None accepts any non-empty token, each its own account; a string accepts only
    that one (a single account per CRM).
    `clock`: POSIX-seconds callable shared by the emulators and rate limits.
    """
    from crmsync.sandbox.hubspot import HubSpotEmulator
    from crmsync.sandbox.pipedrive import PipedriveEmulator

    if config is not None and not isinstance(config, SandboxConfig):
        config = SandboxConfig.model_validate(dict(config))
    sandbox: Sandbox | None = None

    def search_lag() -> float:  # read on every HubSpot write and search: follows the config
        return sandbox.config.search_lag_seconds if sandbox is not None else 0.0

    def current_config() -> SandboxConfig:  # the export settings follow the config too
        return sandbox.config if sandbox is not None else SandboxConfig()

    sandbox = Sandbox(
        [partial(HubSpotEmulator, clock=clock, search_lag=search_lag, config=current_config),
         partial(PipedriveEmulator, clock=clock)],
        token=token, config=config, clock=clock,
    )
    return sandbox


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    state_file: str | Path | None = None,
    config: SandboxConfig | Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> SandboxServer:
    """Build the sandbox, load `state_file` if it exists, and serve it in a background thread.

    `server.stop()` stops it and, with `state_file`, saves the state there.
    """
    from crmsync.sandbox.state import load_state

    app = build_sandbox(token=token, config=config, clock=clock)
    if state_file is not None:
        load_state(app, state_file)
    return SandboxServer(app, host, port, state_file=state_file).start()
