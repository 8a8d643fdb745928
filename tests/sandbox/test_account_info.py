"""Who the token is: one stable account id per token, in each CRM's own response shape."""

from __future__ import annotations

import requests

# HubSpot's PortalInformationResponse marks every one of these required (accountInfo.json v3).
PORTAL_FIELDS = {"portalId", "accountType", "timeZone", "companyCurrency",
                 "additionalCurrencies", "utcOffset", "utcOffsetMilliseconds", "uiDomain",
                 "dataHostingLocation"}


def _hubspot(sandbox: str, token: str) -> requests.Response:
    return requests.get(f"{sandbox}/account-info/v3/details",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _pipedrive(sandbox: str, token: str) -> requests.Response:
    return requests.get(f"{sandbox}/api/v1/users/me", headers={"x-api-token": token},
                        timeout=10)


def test_hubspot_details_give_one_stable_portal_per_token(sandbox: str) -> None:
    first = _hubspot(sandbox, "token-a").json()
    assert set(first) == PORTAL_FIELDS
    assert isinstance(first["portalId"], int)
    assert 0 < first["portalId"] < 2**31  # an int32 in the spec
    assert _hubspot(sandbox, "token-a").json()["portalId"] == first["portalId"]
    assert _hubspot(sandbox, "token-b").json()["portalId"] != first["portalId"]
    requests.post(f"{sandbox}/_sandbox/reset", timeout=10).raise_for_status()
    assert _hubspot(sandbox, "token-a").json()["portalId"] == first["portalId"]  # stable
    assert _hubspot(sandbox, "").status_code == 401


def test_pipedrive_current_user_names_one_company_per_token(sandbox: str) -> None:
    body = _pipedrive(sandbox, "token-a").json()
    assert body["success"] is True
    user = body["data"]
    assert user["is_you"] is True
    assert isinstance(user["company_id"], int)
    assert _pipedrive(sandbox, "token-a").json()["data"]["company_id"] == user["company_id"]
    assert _pipedrive(sandbox, "token-b").json()["data"]["company_id"] != user["company_id"]
    assert _pipedrive(sandbox, "").status_code == 401
