"""Talking to the sandbox directly (faults, stats, deals) for adapter tests.

Only the `/_sandbox/` control API and the CRMs' own public endpoints are used, so the adapters
under test are never bypassed for what they are being tested on.
"""

from __future__ import annotations

from typing import Any

import requests

from crmsync.settings import Settings

TOKEN = "sandbox-test-token-0123456789"


def settings_for(sandbox: str, **overrides: Any) -> Settings:
    """Settings pointing both CRMs at the sandbox (explicit values beat any .env)."""
    values: dict[str, Any] = {
        "hubspot_base_url": sandbox, "pipedrive_base_url": sandbox,
        "hubspot_token": TOKEN, "pipedrive_token": TOKEN,
        "http_timeout_seconds": 5.0, "max_retries": 3,
    }
    return Settings(**{**values, **overrides})


def set_faults(sandbox: str, **config: Any) -> dict[str, Any]:
    response = requests.post(f"{sandbox}/_sandbox/faults", json=config, timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def stats(sandbox: str) -> dict[str, Any]:
    response = requests.get(f"{sandbox}/_sandbox/stats", timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def reset_stats(sandbox: str) -> None:
    requests.post(f"{sandbox}/_sandbox/stats/reset", timeout=10).raise_for_status()


def crm_requests(sandbox: str, crm: str) -> int:
    """How many requests the sandbox answered (or dropped) for `crm` since the last reset."""
    return int(stats(sandbox)["by_crm"].get(crm, 0))


def create_deal(sandbox: str, crm: str, pipeline_id: str, stage_id: str, name: str) -> str:
    """Create a deal through the CRM's own API (test set-up, not adapter code)."""
    if crm == "hubspot":
        response = requests.post(
            f"{sandbox}/crm/v3/objects/deals",
            json={"properties": {"dealname": name, "pipeline": pipeline_id,
                                 "dealstage": stage_id}},
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["id"])
    response = requests.post(
        f"{sandbox}/api/v2/deals",
        json={"title": name, "pipeline_id": int(pipeline_id), "stage_id": int(stage_id)},
        headers={"x-api-token": TOKEN}, timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def sandbox_crms(sandbox: str) -> list[str]:
    response = requests.get(f"{sandbox}/_sandbox/health", timeout=10)
    response.raise_for_status()
    return list(response.json().get("crms", []))
