"""The sandbox the record contract suites (pull and write) share: one server per module on a
manual clock, reset before each test, both CRMs, and the account's own state as the truth
results are compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from crmsync.adapters import hubspot_records

if TYPE_CHECKING:

    from crmsync.names import ObjectType
    from crmsync.sandbox.clock import ManualClock


TOKEN = "records-contract-token"
LAG = 60.0  # seconds: past HubSpot's search lag (`hubspot_records.SEARCH_LAG`)
PD_ENTITY = {"contacts": "persons", "companies": "organizations", "deals": "deals"}


class Sandbox:
    def __init__(self, server: Any, clock: ManualClock) -> None:
        self.server = server
        self.clock = clock
        self.url: str = server.base_url

    def account(self, crm: str) -> Any:
        return self.server.app.account(crm, TOKEN)

    def seed(self, crm: str, **counts: int) -> None:
        body = {"crm": crm, "seed": 11, "token": TOKEN, "contacts": 0, "companies": 0,
                "deals": 0, **counts}
        requests.post(f"{self.url}/_sandbox/seed", json=body, timeout=120).raise_for_status()

    def faults(self, **config: Any) -> None:
        requests.post(f"{self.url}/_sandbox/faults", json=config,
                      timeout=10).raise_for_status()

    def hubspot(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.url + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        response.raise_for_status()
        return response.json() if response.content else None

    def pipedrive(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/api/v2{path}", json=body, timeout=30,
                                    headers={"x-api-token": TOKEN})
        response.raise_for_status()
        return response.json()["data"]


def truth(box: Sandbox, crm: str, object_type: ObjectType) -> dict[str, dict[str, Any]]:
    """Live records of the sandbox account: id -> canonical fields we can check, links."""
    state = box.account(crm).dump_state()
    out: dict[str, dict[str, Any]] = {}
    if crm == "hubspot":
        links: dict[str, set[tuple[str, str, bool]]] = {}
        owned = hubspot_records.OWNED_ASSOCIATIONS[object_type]
        for from_type, from_id, to_type, to_id, type_ids in state["associations"]:
            if from_type == object_type and to_type in owned:
                links.setdefault(str(from_id), set()).add(
                    (to_type, str(to_id), bool(set(type_ids) & {1, 5})))
        name = {"contacts": "email", "companies": "name", "deals": "dealname"}[object_type]
        for record_id, props, _created, _updated, archived, _ in state["objects"][object_type]:
            if not archived:
                out[str(record_id)] = {"key": props.get(name),
                                       "links": links.get(str(record_id), set())}
        return out
    rows = state["tables"][PD_ENTITY[object_type]]["rows"]
    for row in rows:
        if row["is_deleted"] or row.get("is_archived"):
            continue
        if object_type == "contacts":
            key = next((e["value"] for e in row.get("emails") or [] if e.get("primary")), None)
            links_pd = {("companies", str(row["org_id"]), True)} if row.get("org_id") else set()
        elif object_type == "companies":
            key, links_pd = row["name"], set()
        else:
            key = row["title"]
            links_pd = {(t, str(row[f]), True) for t, f in
                        (("contacts", "person_id"), ("companies", "org_id")) if row.get(f)}
        out[str(row["id"])] = {"key": key, "links": links_pd}
    return out
