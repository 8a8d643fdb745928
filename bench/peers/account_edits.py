"""What the comparison does to a sandbox account between runs, through the CRM's own API.

Every edit returns the ids it touched, so each extractor's output can be checked against them.
The calls made here are the bench's, not an extractor's: the driver counts an extractor's calls
as the sandbox's total before and after its run only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Iterator

TIMEOUT = 60
HUBSPOT_BATCH = 100


def seed(base: str, crm: str, token: str, *, contacts: int, companies: int, deals: int) -> None:
    """A deterministic account: the same numbers and seed give the same records."""
    requests.post(f"{base}/_sandbox/seed", timeout=600, json={
        "crm": crm, "token": token, "contacts": contacts, "companies": companies,
        "deals": deals, "seed": 1}).raise_for_status()


def calls_so_far(base: str) -> dict[str, Any]:
    return dict(requests.get(f"{base}/_sandbox/stats", timeout=30).json())


def contact_ids(base: str, crm: str, token: str) -> list[str]:
    """Every live contact (HubSpot) or person (Pipedrive) id, in the CRM's list order."""
    return list(_hubspot_ids(base, token) if crm == "hubspot" else _pipedrive_ids(base, token))


def _hubspot_ids(base: str, token: str) -> Iterator[str]:
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        page = requests.get(f"{base}/crm/v3/objects/contacts", params=params,
                            headers=_hubspot_headers(token), timeout=TIMEOUT).json()
        yield from (str(r["id"]) for r in page["results"])
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return


def _pipedrive_ids(base: str, token: str) -> Iterator[str]:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{base}/api/v2/persons", params=params,
                            headers={"x-api-token": token}, timeout=TIMEOUT).json()
        yield from (str(r["id"]) for r in page["data"])
        cursor = (page.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            return


def _hubspot_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def change_contacts(base: str, crm: str, token: str, ids: list[str], value: str) -> None:
    """Set one field of each contact/person: HubSpot `jobtitle` (batch update, 100 a call),
    Pipedrive `name` (one PATCH each, as bench/sync_pull.py does)."""
    if crm == "hubspot":
        for start in range(0, len(ids), HUBSPOT_BATCH):
            inputs = [{"id": i, "properties": {"jobtitle": value}}
                      for i in ids[start:start + HUBSPOT_BATCH]]
            requests.post(f"{base}/crm/v3/objects/contacts/batch/update",
                          json={"inputs": inputs}, headers=_hubspot_headers(token),
                          timeout=TIMEOUT).raise_for_status()
        return
    for person_id in ids:
        requests.patch(f"{base}/api/v2/persons/{person_id}", json={"name": value},
                       headers={"x-api-token": token}, timeout=TIMEOUT).raise_for_status()


def delete_contacts(base: str, crm: str, token: str, ids: list[str]) -> None:
    """Delete (HubSpot: archive; Pipedrive: soft-delete) each contact/person."""
    for record_id in ids:
        if crm == "hubspot":
            url, headers = f"{base}/crm/v3/objects/contacts/{record_id}", _hubspot_headers(token)
        else:
            url, headers = f"{base}/api/v2/persons/{record_id}", {"x-api-token": token}
        requests.delete(url, headers=headers, timeout=TIMEOUT).raise_for_status()


def every_nth(ids: list[str], share: float) -> list[str]:
    """`share` of `ids`, spread evenly (the rule of bench/sync_pull.py's `_touch_contacts`)."""
    return ids[:: max(1, round(1 / share))]
