"""The HubSpot adapter over real HTTP against the sandbox (the SDK's urllib3 is invisible to
`responses`). The request counts come from the sandbox's own stats, so they prove how many
times a request really went out: one retry layer, not two."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests

from crmsync.adapters.base import CrmAdapter, StageSpec
from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.errors import FatalRemoteError, RetriableRemoteError

from .sandbox_helpers import TOKEN, crm_requests, reset_stats, set_faults, stats

if TYPE_CHECKING:
    from .conftest import FakeTime


def make_adapter(sandbox: str, fake_time: FakeTime, *, max_retries: int = 2) -> HubSpotAdapter:
    return HubSpotAdapter(sandbox, TOKEN, timeout=5.0, max_retries=max_retries,
                          sleep=fake_time.sleep, clock=fake_time.clock)


def test_is_a_crm_adapter_with_honest_capabilities(sandbox: str, fake_time: FakeTime) -> None:
    adapter = make_adapter(sandbox, fake_time)
    assert isinstance(adapter, CrmAdapter)
    caps = adapter.capabilities
    assert caps.stage_order_writable
    assert caps.pipeline_order_writable
    assert caps.outcome_stages
    assert not caps.rotting
    assert caps.probability_step == 0.1
    assert caps.max_stages_per_pipeline == 100


def test_the_sdks_own_urllib3_retries_are_off(sandbox: str, fake_time: FakeTime) -> None:
    adapter = make_adapter(sandbox, fake_time)
    for api_client in adapter._api_clients:
        assert api_client.configuration.retries is False
        # urllib3 turns `retries=False` into Retry(total=False): raise at once, never resend
        pool_retries = api_client.rest_client.pool_manager.connection_pool_kw["retries"]
        assert pool_retries is False or pool_retries.total is False
        assert api_client.configuration.host == sandbox


@pytest.mark.parametrize("max_retries", [0, 2])
def test_5xx_is_retried_by_our_policy_only(
    sandbox: str, fake_time: FakeTime, max_retries: int
) -> None:
    adapter = make_adapter(sandbox, fake_time, max_retries=max_retries)
    set_faults(sandbox, rate_5xx=1.0, fault_crm="hubspot")
    reset_stats(sandbox)

    with pytest.raises(RetriableRemoteError) as raised:
        adapter.list_pipelines()

    assert raised.value.status in (500, 502, 503)
    assert crm_requests(sandbox, "hubspot") == max_retries + 1
    assert len(fake_time.sleeps) == max_retries


def test_dropped_connections_are_retried_by_our_policy_only(
    sandbox: str, fake_time: FakeTime
) -> None:
    # urllib3's default Retry(3) would resend a GET after a dropped connection by itself:
    # 3 policy attempts x 4 urllib3 attempts = 12 requests if both layers were active.
    adapter = make_adapter(sandbox, fake_time, max_retries=2)
    set_faults(sandbox, rate_drop=1.0, fault_crm="hubspot")
    reset_stats(sandbox)

    with pytest.raises(RetriableRemoteError) as raised:
        adapter.list_pipelines()

    assert raised.value.status is None
    assert "connection failed" in str(raised.value)
    assert crm_requests(sandbox, "hubspot") == 3


def test_429_is_retried_after_retry_after(sandbox: str, fake_time: FakeTime) -> None:
    adapter = make_adapter(sandbox, fake_time, max_retries=10)
    # With this seed the first request draws a 429 (asserted below), later ones pass.
    set_faults(sandbox, rate_429=0.5, fault_crm="hubspot", seed=3)
    reset_stats(sandbox)

    adapter.list_pipelines()

    refused = stats(sandbox)["by_status"].get("429", 0)
    assert refused >= 1
    assert crm_requests(sandbox, "hubspot") == refused + 1
    assert fake_time.sleeps == [1.0] * refused  # the sandbox's Retry-After: 1


def test_400_is_fatal_with_hubspots_message_and_not_retried(
    sandbox: str, fake_time: FakeTime
) -> None:
    adapter = make_adapter(sandbox, fake_time, max_retries=3)
    bad_stages = [StageSpec("Qualified", 0, 1.5)]  # probability must lie in 0.0–1.0
    # What HubSpot (the sandbox) itself says about this input, asked without the adapter:
    raw = requests.post(
        f"{sandbox}/crm/v3/pipelines/deals",
        json={"label": "Broken", "displayOrder": 0, "stages": [
            {"label": "Qualified", "displayOrder": 0,
             "metadata": {"probability": "1.5", "isClosed": "false"}}]},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )
    assert raw.status_code == 400
    reset_stats(sandbox)

    with pytest.raises(FatalRemoteError) as raised:
        adapter.create_pipeline("Broken", 0, bad_stages)

    assert raised.value.status == 400
    assert raw.json()["message"] in str(raised.value)
    assert crm_requests(sandbox, "hubspot") == 1
    assert fake_time.sleeps == []


def test_token_is_sent_as_bearer_and_never_shown(sandbox: str, fake_time: FakeTime) -> None:
    adapter = make_adapter(sandbox, fake_time, max_retries=0)
    set_faults(sandbox, rate_5xx=1.0, fault_crm="hubspot")
    with pytest.raises(RetriableRemoteError) as raised:
        adapter.list_pipelines()
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(adapter)
