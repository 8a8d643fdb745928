"""`create_adapter`: adapters by name, connected as the settings say."""

from __future__ import annotations

import pytest

from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.registry import create_adapter, known_adapters
from crmsync.errors import SettingsError, UnknownAdapterError
from crmsync.settings import Settings


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "hubspot_base_url": "http://localhost:9/", "pipedrive_base_url": "http://localhost:9",
        "hubspot_token": "hs-default", "pipedrive_token": "pd-default",
        "http_timeout_seconds": 7.5, "max_retries": 4,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def test_known_adapters() -> None:
    assert known_adapters() == ["hubspot", "pipedrive"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownAdapterError, match=r"'salesforce'.*hubspot, pipedrive"):
        create_adapter("salesforce", settings())


def test_builds_each_adapter_from_settings() -> None:
    hubspot = create_adapter("hubspot", settings())
    pipedrive = create_adapter("pipedrive", settings())
    assert isinstance(hubspot, HubSpotAdapter)
    assert isinstance(pipedrive, PipedriveAdapter)
    assert hubspot.policy.max_retries == 4
    assert pipedrive.policy.max_retries == 4
    assert pipedrive._timeouts == (7.5, 7.5)  # (connect, read): connect is capped at 10 s
    assert hubspot._timeouts == (7.5, 7.5)
    assert pipedrive._api == "http://localhost:9/api/v2"
    assert pipedrive._session.headers["x-api-token"] == "pd-default"
    assert hubspot._pipelines.api_client.configuration.host == "http://localhost:9"
    assert hubspot._pipelines.api_client.configuration.access_token == "hs-default"


def test_a_blueprints_own_token_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_PIPEDRIVE_TOKEN", "pd-acme")
    adapter = create_adapter("pipedrive", settings(), token_env="ACME_PIPEDRIVE_TOKEN")
    assert isinstance(adapter, PipedriveAdapter)
    assert adapter._session.headers["x-api-token"] == "pd-acme"


def test_a_missing_token_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="CRMSYNC_HUBSPOT_TOKEN"):
        create_adapter("hubspot", settings(hubspot_token=None))


def test_connect_timeout_is_capped_so_unreachable_hosts_fail_fast() -> None:
    from crmsync.adapters.http_policy import request_timeouts

    assert request_timeouts(30.0) == (10.0, 30.0)
    assert request_timeouts(4.0) == (4.0, 4.0)
