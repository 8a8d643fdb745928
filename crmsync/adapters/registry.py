"""Adapters by CRM name: `create_adapter("hubspot", settings)`.

The registry maps a name to a factory taking the resolved connection details, so the SDK of
one CRM is only imported when that CRM is used (`crmsync --help` stays fast).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from crmsync.errors import UnknownAdapterError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import SecretStr

    from crmsync.adapters.base import CrmAdapter
    from crmsync.adapters.http_policy import Endpoint, HttpPolicy
    from crmsync.names import MonotonicClock, Sleep
    from crmsync.settings import Settings

    class _PolicyAdapter(CrmAdapter, Protocol):
        """An adapter that sends through an `HttpPolicy` (both built-in ones do)."""

        policy: HttpPolicy


@dataclass(frozen=True)
class Connection:
    """Everything an adapter needs to talk to one CRM account."""

    base_url: str
    token: SecretStr
    timeout: float
    max_retries: int
    sleep: Sleep
    clock: MonotonicClock
    # Which settings these came from, so an error can say what to check (never the token).
    base_url_setting: str | None = None
    token_source: str | None = None
    # HubSpot only: how long its search index may trail a write (see hubspot_records).
    search_lag_seconds: float | None = None
    # Requests in flight at once for this account (CRMSYNC_SYNC_CONCURRENCY).
    concurrency: int = 1
    # The account's tier or plan (CRMSYNC_HUBSPOT_TIER / CRMSYNC_PIPEDRIVE_PLAN), if named.
    plan: str | None = None

    def __repr__(self) -> str:  # SecretStr already hides the token; keep the repr short
        return f"Connection({self.base_url!r}, timeout={self.timeout}, retries={self.max_retries})"

    @property
    def endpoint(self) -> Endpoint:
        from crmsync.adapters.http_policy import Endpoint

        return Endpoint(self.base_url, self.base_url_setting, self.token_source)


def _connect(adapter_class: Callable[..., _PolicyAdapter], connection: Connection
             ) -> CrmAdapter:
    """An adapter built from `connection`, whose errors name the settings it came from."""
    adapter = adapter_class(
        connection.base_url, connection.token, timeout=connection.timeout,
        max_retries=connection.max_retries, sleep=connection.sleep, clock=connection.clock,
    )
    adapter.policy.endpoint = connection.endpoint
    adapter.policy.max_in_flight = connection.concurrency
    if hasattr(adapter, "concurrency"):
        adapter.concurrency = connection.concurrency
    if connection.plan is not None:
        from crmsync.adapters.http_policy import PLAN_WINDOWS

        window = PLAN_WINDOWS.get((adapter.policy.crm, connection.plan))
        if window is not None:
            adapter.policy.pacer.assume("default", window)
    return adapter


def _hubspot(connection: Connection) -> CrmAdapter:
    import datetime as dt

    from crmsync.adapters.hubspot import HubSpotAdapter

    adapter = _connect(HubSpotAdapter, connection)
    if connection.search_lag_seconds is not None:
        cast("HubSpotAdapter", adapter).search_lag = dt.timedelta(
            seconds=connection.search_lag_seconds)
    return adapter


def _pipedrive(connection: Connection) -> CrmAdapter:
    from crmsync.adapters.pipedrive import PipedriveAdapter

    return _connect(PipedriveAdapter, connection)


_FACTORIES: dict[str, Callable[[Connection], CrmAdapter]] = {  # one per names.CRM_NAMES
    "hubspot": _hubspot,
    "pipedrive": _pipedrive,
}


def known_adapters() -> list[str]:
    """The CRM names `create_adapter` accepts, sorted."""
    return sorted(_FACTORIES)


def register_adapter(crm: str, factory: Callable[[Connection], CrmAdapter]) -> None:
    """Add (or replace) the factory for a CRM name, e.g. a fake in tests."""
    _FACTORIES[crm] = factory


def create_adapter(
    crm: str,
    settings: Settings,
    *,
    token_env: str | None = None,
    sleep: Sleep = time.sleep,
    clock: MonotonicClock = time.monotonic,
) -> CrmAdapter:
    """The adapter for `crm`, connected as `settings` say (base URL, token, timeout, retries).

    `token_env` names a blueprint's own token variable (see `Settings.token`). Raises
    `UnknownAdapterError` for a name with no adapter, `SettingsError` when the token is missing.
    """
    factory = _FACTORIES.get(crm)
    if factory is None:
        raise UnknownAdapterError(
            f"no adapter for CRM {crm!r}; known: {', '.join(known_adapters())}"
        )
    connection = Connection(
        base_url=settings.base_url(crm),
        token=settings.token(crm, token_env),
        timeout=settings.http_timeout_seconds,
        max_retries=settings.max_retries,
        sleep=sleep,
        clock=clock,
        base_url_setting=f"CRMSYNC_{crm.upper()}_BASE_URL",
        token_source=settings.token_source(crm, token_env),
        search_lag_seconds=settings.hubspot_search_lag_seconds,
        concurrency=settings.sync_concurrency,
        plan=settings.plan(crm),
    )
    return factory(connection)
