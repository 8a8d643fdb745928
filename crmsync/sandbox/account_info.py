"""Who the token is: HubSpot's account details and Pipedrive's current user.

crmsync asks once per run which account a token reaches, to never apply ids recorded in one
account to another. Each sandbox account answers with one stable id derived from its account
key (the token's SHA-256, `accounts.py`), so it survives a restart with saved state and two
tokens never share one. Registered from each emulator's `register()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.sandbox.accounts import account_key
from crmsync.sandbox.http import Request, Response

if TYPE_CHECKING:
    from crmsync.sandbox.http import Router

HUBSPOT_DETAILS_PATH = "/account-info/v3/details"
PIPEDRIVE_ME_PATH = "/api/v1/users/me"


def account_number(token: str, *, salt: str) -> int:
    """A stable positive int32 for `token`'s account (HubSpot's portalId is an int32)."""
    digest = account_key(f"{salt}:{account_key(token)}")
    return 10_000_000 + int(digest[:12], 16) % 2_000_000_000


def hubspot_details(account: Any, request: Request) -> Response:
    """`GET /account-info/v3/details` (PortalInformationResponse; every field is required)."""
    portal_id = account_number(account.token_of(request), salt="hubspot-portal")
    return Response(200, {
        "portalId": portal_id,
        "accountType": "STANDARD",
        "timeZone": "Europe/Berlin",
        "companyCurrency": "EUR",
        "additionalCurrencies": [],
        "utcOffset": "+01:00",
        "utcOffsetMilliseconds": 3_600_000,
        "uiDomain": "app-eu1.hubspot.com",
        "dataHostingLocation": "eu1",
    })


def pipedrive_me(account: Any, request: Request) -> Response:
    """`GET /v1/users/me` (GetCurrentUserResponse), the one admin user of the company."""
    company_id = account_number(account.token_of(request), salt="pipedrive-company")
    return Response(200, {"success": True, "data": {
        "id": 1, "name": "Sandbox Admin", "default_currency": "EUR", "locale": "en_US",
        "lang": 1, "email": "admin@sandbox.invalid", "phone": None, "activated": True,
        "last_login": "2026-01-01 00:00:00", "created": "2026-01-01 00:00:00",
        "modified": None, "has_created_company": True,
        "access": [{"app": "global", "admin": True}, {"app": "sales", "admin": True}],
        "active_flag": True, "timezone_name": "Europe/Berlin", "timezone_offset": "+01:00",
        "role_id": 1, "icon_url": None, "is_you": True, "is_deleted": False,
        "company_id": company_id, "company_name": f"Sandbox company {company_id}",
        "company_domain": f"sandbox-{company_id}", "company_country": "DE",
        "company_industry": "IT Services",
        "language": {"language_code": "en", "country_code": "US"},
    }})


def register_hubspot(router: Router) -> None:
    router.add("GET", HUBSPOT_DETAILS_PATH, hubspot_details, crm="hubspot")


def register_pipedrive(router: Router) -> None:
    # Like every v1 path, at both host forms: `/api/v1/…` and the v1 spec's own `/v1/…`.
    for path in (PIPEDRIVE_ME_PATH, PIPEDRIVE_ME_PATH.removeprefix("/api")):
        router.add("GET", path, pipedrive_me, crm="pipedrive")
