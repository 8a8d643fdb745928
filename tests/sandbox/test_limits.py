"""Rate limits of both CRMs, driven with an injected clock (no sleeps)."""

from __future__ import annotations

from typing import Any

import hubspot
import pytest
from urllib3.util.retry import Retry

from crmsync.sandbox import ManualClock, build_sandbox, start_sandbox
from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.limits import RollingWindow


def _get(app: Any, path: str, token: str = "tok") -> Response:
    headers = {"Authorization": f"Bearer {token}", "x-api-token": token}
    return app.handle(Request.build("GET", path, headers, b""))


def _search(app: Any, token: str = "tok") -> Response:
    return app.handle(Request.build("POST", "/crm/v3/objects/contacts/search",
                                    {"Authorization": f"Bearer {token}"}, b"{}"))


def test_rolling_window_is_a_sliding_log() -> None:
    window = RollingWindow(limit=3, window=10.0)
    assert [window.try_acquire("k", t)[0] for t in (0.0, 1.0, 2.0, 3.0)] == [
        True, True, True, False]
    allowed, remaining, reset = window.try_acquire("k", 9.5)
    assert (allowed, remaining, reset) == (False, 0, 0.5)
    assert window.try_acquire("k", 10.0)[0]  # the t=0 request left the window
    assert window.try_acquire("other", 3.0) == (True, 2, 10.0)


def test_limits_are_off_by_default() -> None:
    app = build_sandbox(clock=ManualClock())
    responses = [_get(app, "/crm/v3/pipelines/deals") for _ in range(300)]
    assert {r.status for r in responses} == {200}
    assert "X-HubSpot-RateLimit-Max" not in responses[0].headers


@pytest.mark.parametrize("limit", [100, 190])
def test_hubspot_ten_secondly_rolling_limit(limit: int) -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                             "hubspot_limit_per_10s": limit})
    first = _get(app, "/crm/v3/objects/contacts")
    assert first.headers["X-HubSpot-RateLimit-Max"] == str(limit)
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == str(limit - 1)
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == ("250000" if limit == 100 else "650000")
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == (
        str(int(first.headers["X-HubSpot-RateLimit-Daily"]) - 1))
    clock.advance(4.0)
    for _ in range(limit - 1):
        assert _get(app, "/crm/v3/objects/contacts").status == 200
    refused = _get(app, "/crm/v3/objects/contacts")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "6"  # the first request leaves at t=10
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    body = refused.body
    assert body["status"] == "error"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"]
    assert body["groupName"]
    assert _get(app, "/crm/v3/objects/contacts", token="another-app").status == 200  # per token
    clock.advance(6.0)
    assert _get(app, "/crm/v3/objects/contacts").status == 200  # one slot freed
    assert _get(app, "/crm/v3/objects/contacts").status == 429


def test_hubspot_daily_limit() -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                             "hubspot_daily_limit": 3})
    assert [_get(app, "/crm/v3/pipelines/deals").status for _ in range(4)] == [
        200, 200, 200, 429]
    assert _get(app, "/crm/v3/pipelines/deals").body["policyName"] == "DAILY"
    clock.advance(86_400)
    assert _get(app, "/crm/v3/pipelines/deals").status == 200


def test_hubspot_search_limit_is_separate() -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True})
    statuses = [_search(app).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    refused = _search(app)
    assert refused.body["policyName"] == "SECONDLY"
    assert refused.body["errorType"] == "RATE_LIMIT"
    assert refused.headers["Retry-After"] == "1"
    # search answers carry no X-HubSpot-RateLimit-* headers (HubSpot usage guidelines)
    assert not any(h.startswith("X-HubSpot-RateLimit") for h in refused.headers)
    assert _get(app, "/crm/v3/objects/contacts").status == 200  # the 10 s window is untouched
    clock.advance(1.0)
    assert _search(app).status == 200


@pytest.mark.parametrize(("plan", "burst"), [("lite", 20), ("growth", 40), ("premium", 100),
                                             ("ultimate", 120)])
def test_pipedrive_burst_limit_by_plan(plan: str, burst: int) -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                             "pipedrive_plan": plan})
    first = _get(app, "/api/v2/pipelines")
    assert first.status == 200
    assert first.headers["x-ratelimit-limit"] == str(burst)
    assert first.headers["x-ratelimit-remaining"] == str(burst - 1)
    assert first.headers["x-ratelimit-reset"] == "2"
    assert int(first.headers["x-daily-requests-left"]) > 0
    clock.advance(0.5)
    for _ in range(burst - 1):
        assert _get(app, "/api/v2/pipelines").status == 200
    refused = _get(app, "/api/v2/pipelines")
    assert refused.status == 429
    assert refused.body["success"] is False
    assert refused.body["data"] is None
    assert refused.body["additional_data"] is None
    assert refused.body["error"]
    assert "error_info" in refused.body
    assert refused.headers["Retry-After"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    clock.advance(1.5)
    assert _get(app, "/api/v2/pipelines").status == 200


def test_pipedrive_search_window() -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                             "pipedrive_plan": "ultimate"})
    statuses = [_get(app, "/api/v2/persons/search?term=anna").status for _ in range(11)]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429


def test_hubspot_429_through_the_sdk_over_http() -> None:
    clock = ManualClock()
    server = start_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                                "hubspot_limit_per_10s": 3})
    try:
        # Without an explicit `retry`, urllib3's default Retry(3) honours Retry-After on a 429
        # and sleeps (here 3 x 10 s) before giving up: the adapter must pass its own policy.
        client = hubspot.Client.create(access_token="t", host=server.base_url,
                                       retry=Retry(total=0))
        for _ in range(3):
            client.crm.pipelines.pipelines_api.get_all("deals")
        with pytest.raises(Exception) as err:  # noqa: PT011 - the SDK's ApiException
            client.crm.pipelines.pipelines_api.get_all("deals")
        assert getattr(err.value, "status", None) == 429
        headers = err.value.headers
        assert headers["Retry-After"] == "10"
        assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert "TEN_SECONDLY_ROLLING" in err.value.body
    finally:
        server.stop()


def _pipedrive(app: Any, method: str, path: str, headers: dict[str, str]) -> Response:
    return app.handle(Request.build(method, path, headers, b'{"name": "F", "field_type": "text"}'
                                    if method == "POST" else b""))


@pytest.mark.parametrize(("method", "path", "cost"), [
    ("GET", "/api/v2/pipelines", 5),  # x-token-cost 5, not the 10 of other lists
    ("GET", "/api/v2/stages", 5),
    ("GET", "/api/v2/deals", 10),
    ("GET", "/api/v2/deals/archived", 20),
    ("GET", "/api/v2/deals/1", 1),
    ("GET", "/api/v2/persons/search?term=anna", 20),
    ("DELETE", "/api/v2/persons/1", 3),
    ("GET", "/api/v1/dealFields", 20),  # v1 costs: list 20, create 10
    ("POST", "/api/v1/dealFields", 10),
])
def test_pipedrive_token_cost_is_the_specs_x_token_cost(method: str, path: str,
                                                        cost: int) -> None:
    app = build_sandbox(clock=ManualClock(), config={"rate_limits_enabled": True})
    headers = {"x-api-token": "tok"}
    before = int(_pipedrive(app, "GET", "/api/v2/deals/1", headers)
                 .headers["x-daily-requests-left"])
    after = int(_pipedrive(app, method, path, headers).headers["x-daily-requests-left"])
    assert before - after == cost


def test_pipedrive_oauth_burst_is_four_times_and_has_no_daily_header() -> None:
    clock = ManualClock()
    app = build_sandbox(clock=clock, config={"rate_limits_enabled": True,
                                             "pipedrive_plan": "lite"})
    bearer = {"Authorization": "Bearer oauth-tok"}
    first = _pipedrive(app, "GET", "/api/v2/pipelines", bearer)
    assert first.headers["x-ratelimit-limit"] == "80"  # 20 per api_token on Lite, x4
    # "x-daily-requests-left ... Applicable only to api_token requests"
    assert "x-daily-requests-left" not in first.headers
    statuses = [_pipedrive(app, "GET", "/api/v2/pipelines", bearer).status for _ in range(80)]
    assert statuses.count(429) == 1
    assert statuses[-1] == 429
