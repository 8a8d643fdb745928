"""Conformance of the Pipedrive emulator with Pipedrive's published OpenAPI specs.

Every emulated endpoint is driven over real HTTP with `requests`; every request and response
is validated with openapi-core against `openapi-v2.yaml` (field definitions against
`openapi-v1.yaml`), with the short errata list in `pipedrive_support`. Without the spec files
(`CRMSYNC_PIPEDRIVE_SPECS_DIR`) these tests are skipped with one reason; a folder named
explicitly that lacks them fails them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from pipedrive_support import (
    TOKEN,
    PipedriveSandbox,
    SpecValidator,
    stamp,
    start_pipedrive_sandbox,
)

V2 = "/api/v2"


EXERCISED: set[tuple[str, str]] = set()  # (method, route template) called by this module


def _canonical(template: str) -> str:
    """A route's template with v1's short host form (`/v1/…`) as its `/api/v1/…` twin: the
    aliases share the handlers, and `test_v1_answers_at_both_host_forms` calls each."""
    return "/api" + template if template.startswith("/v1/") else template


class Api:
    """Sends requests, validates each exchange against the spec, checks the status."""

    def __init__(self, pd: PipedriveSandbox, spec: SpecValidator) -> None:
        self.pd = pd
        self.spec = spec

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json: Any = None, data: str | None = None, status: int = 200,
             headers: dict[str, str] | None = None, request_valid: bool = True) -> Any:
        response = self.pd.session.request(method, self.pd.url(path), params=params, json=json,
                                           data=data, headers=headers, timeout=30)
        assert response.status_code == status, (method, path, response.status_code,
                                                response.text[:500])
        self.spec.check(response, request_valid=request_valid and status < 400)
        route, _, _ = self.pd.server.app.router.match(method, urlsplit(response.url).path)
        if route is not None:
            EXERCISED.add((route.method, _canonical(route.template)))
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(pd: PipedriveSandbox, spec: SpecValidator) -> Api:
    pd.reset()
    return Api(pd, spec)


def _pipeline_with_stages(api: Api, name: str = "Sales", stages: int = 3) -> tuple[int, list[int]]:
    pipeline = api.post(f"{V2}/pipelines", {"name": name})["data"]
    ids = [api.post(f"{V2}/stages", {"name": f"Step {i}", "pipeline_id": pipeline["id"],
                                     "deal_probability": 10 * (i + 1)})["data"]["id"]
           for i in range(stages)]
    return pipeline["id"], ids


def _default_pipeline(api: Api) -> tuple[int, list[int]]:
    """The fresh account's default pipeline (lowest order_nr) and its stage ids in order."""
    pipeline = api.get(f"{V2}/pipelines", params={"limit": 1})["data"][0]
    stages = api.get(f"{V2}/stages", params={"pipeline_id": pipeline["id"],
                                             "sort_by": "order_nr"})["data"]
    return pipeline["id"], [s["id"] for s in stages]


# ---- pipelines -----------------------------------------------------------------------------

def test_a_new_company_has_the_default_pipeline(api: Api) -> None:
    """Pipedrive "includes a default sales process" (module docstring of the emulator)."""
    [pipeline] = api.get(f"{V2}/pipelines")["data"]
    assert (pipeline["name"], pipeline["order_nr"], pipeline["is_deleted"]) == (
        "Pipeline", 1, False)
    assert pipeline["add_time"] == pipeline["update_time"] == stamp()
    stages = api.get(f"{V2}/stages", params={"sort_by": "order_nr"})["data"]
    assert [s["name"] for s in stages] == [
        "Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started"]
    assert [s["order_nr"] for s in stages] == [1, 2, 3, 4, 5]
    assert {s["pipeline_id"] for s in stages} == {pipeline["id"]}
    # a deal with nothing but a title lands in its first stage
    deal = api.post(f"{V2}/deals", {"title": "First"})["data"]
    assert (deal["pipeline_id"], deal["stage_id"]) == (pipeline["id"], stages[0]["id"])
    # without any pipeline left, such a deal has nowhere to go
    api.delete(f"{V2}/pipelines/{pipeline['id']}")
    assert api.get(f"{V2}/pipelines")["data"] == []
    api.post(f"{V2}/deals", {"title": "Nowhere"}, status=400)


def test_pipelines_crud_order_and_soft_delete(api: Api, pd: PipedriveSandbox) -> None:
    default, _ = _default_pipeline(api)
    first = api.post(f"{V2}/pipelines", {"name": "New business",
                                         "is_deal_probability_enabled": True})
    assert first["success"] is True
    assert first["data"]["order_nr"] == 2  # after the default pipeline
    assert first["data"]["is_deal_probability_enabled"] is True
    assert first["data"]["add_time"] == stamp()
    pd.tick(5)
    second = api.post(f"{V2}/pipelines", {"name": "Renewals"})["data"]
    assert second["order_nr"] == 3  # new pipelines go last; order_nr is read-only
    assert second["is_deal_probability_enabled"] is False
    # a new pipeline has no stages: the spec's POST takes none and returns none
    assert api.get(f"{V2}/stages", params={"pipeline_id": second["id"]})["data"] == []

    listed = api.get(f"{V2}/pipelines")
    assert [p["name"] for p in listed["data"]] == ["Pipeline", "New business", "Renewals"]
    assert listed["additional_data"] == {"next_cursor": None}
    desc = api.get(f"{V2}/pipelines", params={"sort_by": "add_time", "sort_direction": "desc"})
    assert [p["id"] for p in desc["data"]] == [second["id"], first["data"]["id"], default]

    pd.tick(5)
    updated = api.patch(f"{V2}/pipelines/{second['id']}",
                        {"name": "Renewals 2027", "is_deal_probability_enabled": True})["data"]
    assert updated["name"] == "Renewals 2027"
    assert updated["update_time"] == stamp(10)
    assert updated["add_time"] == stamp(5)
    assert api.get(f"{V2}/pipelines/{second['id']}")["data"] == updated

    assert api.delete(f"{V2}/pipelines/{second['id']}") == {"success": True,
                                                              "data": {"id": second["id"]}}
    gone = api.get(f"{V2}/pipelines/{second['id']}")["data"]
    assert gone["is_deleted"] is True  # soft: still readable, flagged
    assert [p["id"] for p in api.get(f"{V2}/pipelines")["data"]] == [default, first["data"]["id"]]
    third = api.post(f"{V2}/pipelines", {"name": "Partners"})["data"]
    assert third["order_nr"] == 3  # last among the live pipelines


def test_pipeline_errors(api: Api) -> None:
    api.post(f"{V2}/pipelines", {}, status=400)
    api.post(f"{V2}/pipelines", {"name": ""}, status=400)
    api.post(f"{V2}/pipelines", {"name": "X", "order_nr": 3}, status=400)  # read-only
    api.post(f"{V2}/pipelines", {"name": "X", "is_deal_probability_enabled": 1}, status=400)
    api.get(f"{V2}/pipelines/999", status=404)
    api.patch(f"{V2}/pipelines/999", {"name": "Y"}, status=404)
    api.delete(f"{V2}/pipelines/999", status=404)
    api.get(f"{V2}/pipelines/abc", status=400)


# ---- stages --------------------------------------------------------------------------------

def test_stages_crud_order_and_filters(api: Api, pd: PipedriveSandbox) -> None:
    sales, stage_ids = _pipeline_with_stages(api, "Sales", 3)
    other, other_ids = _pipeline_with_stages(api, "Other", 1)
    stage = api.get(f"{V2}/stages/{stage_ids[1]}")["data"]
    assert stage["order_nr"] == 2
    assert stage["deal_probability"] == 20
    assert stage["is_deal_rot_enabled"] is False
    assert stage["days_to_rotten"] is None
    assert stage["pipeline_id"] == sales

    in_sales = api.get(f"{V2}/stages", params={"pipeline_id": sales})["data"]
    assert [s["id"] for s in in_sales] == stage_ids
    _, default_stages = _default_pipeline(api)
    everything = api.get(f"{V2}/stages", params={"sort_by": "order_nr"})["data"]
    assert [s["order_nr"] for s in everything] == [1, 1, 1, 2, 2, 3, 3, 4, 5]
    assert len(everything) == len(default_stages) + 4

    pd.tick()
    rotting = api.patch(f"{V2}/stages/{stage_ids[0]}",
                        {"name": "Meeting booked", "is_deal_rot_enabled": True,
                         "days_to_rotten": 14, "deal_probability": 15})["data"]
    assert (rotting["name"], rotting["days_to_rotten"], rotting["deal_probability"]) == (
        "Meeting booked", 14, 15)
    assert rotting["is_deal_rot_enabled"] is True

    moved = api.patch(f"{V2}/stages/{stage_ids[0]}", {"pipeline_id": other})["data"]
    assert (moved["pipeline_id"], moved["order_nr"]) == (other, 2)  # last in its new pipeline

    api.delete(f"{V2}/stages/{other_ids[0]}")
    assert api.get(f"{V2}/stages/{other_ids[0]}")["data"]["is_deleted"] is True
    assert [s["id"] for s in api.get(f"{V2}/stages", params={"pipeline_id": other})["data"]] \
        == [stage_ids[0]]


def test_rotting_days_apply_only_with_rotting(api: Api) -> None:
    """`days_to_rotten` "Applies only if the `is_deal_rot_enabled` is set"."""
    pipeline, _ = _pipeline_with_stages(api, stages=0)
    stage = api.post(f"{V2}/stages", {"name": "Idle", "pipeline_id": pipeline,
                                      "days_to_rotten": 9})["data"]
    assert (stage["is_deal_rot_enabled"], stage["days_to_rotten"]) == (False, None)
    rotting = api.patch(f"{V2}/stages/{stage['id']}", {"is_deal_rot_enabled": True,
                                                      "days_to_rotten": 14})["data"]
    assert (rotting["is_deal_rot_enabled"], rotting["days_to_rotten"]) == (True, 14)
    renamed = api.patch(f"{V2}/stages/{stage['id']}", {"name": "Idle too"})["data"]
    assert renamed["days_to_rotten"] == 14  # omitted fields keep their values
    off = api.patch(f"{V2}/stages/{stage['id']}", {"is_deal_rot_enabled": False})["data"]
    assert (off["is_deal_rot_enabled"], off["days_to_rotten"]) == (False, None)


def test_null_is_refused_where_the_spec_allows_none(api: Api) -> None:
    pipeline, stages = _pipeline_with_stages(api, stages=1)
    for body in ({"deal_probability": None}, {"is_deal_rot_enabled": None}, {"name": None},
                 {"pipeline_id": None}):
        api.patch(f"{V2}/stages/{stages[0]}", body, status=400, request_valid=False)
    for body in ({"is_deal_probability_enabled": None}, {"name": None}):
        api.patch(f"{V2}/pipelines/{pipeline}", body, status=400, request_valid=False)
    stage = api.get(f"{V2}/stages/{stages[0]}")["data"]
    assert stage["deal_probability"] == 10  # unchanged (it used to become 100)


def test_moving_a_stage_moves_its_deals(api: Api, pd: PipedriveSandbox) -> None:
    source, stages = _pipeline_with_stages(api, "Source", 2)
    target, _ = _pipeline_with_stages(api, "Target", 1)
    moving = api.post(f"{V2}/deals", {"title": "Moves", "stage_id": stages[1]})["data"]
    staying = api.post(f"{V2}/deals", {"title": "Stays", "stage_id": stages[0]})["data"]
    pd.tick(30)
    api.patch(f"{V2}/stages/{stages[1]}", {"pipeline_id": target})
    moved = api.get(f"{V2}/deals/{moving['id']}")["data"]
    # a deal's pipeline is its stage's: never a stage of one pipeline in another
    assert (moved["pipeline_id"], moved["stage_id"]) == (target, stages[1])
    assert moved["update_time"] == stamp(30)
    assert api.get(f"{V2}/deals/{staying['id']}")["data"]["pipeline_id"] == source
    assert [d["id"] for d in api.get(f"{V2}/deals", params={"pipeline_id": target})["data"]] \
        == [moving["id"]]


def test_stage_errors(api: Api) -> None:
    pipeline, _ = _pipeline_with_stages(api, stages=0)
    api.post(f"{V2}/stages", {"name": "No pipeline"}, status=400)
    api.post(f"{V2}/stages", {"pipeline_id": pipeline}, status=400)
    api.post(f"{V2}/stages", {"name": "X", "pipeline_id": 999}, status=400)
    api.post(f"{V2}/stages", {"name": "X", "pipeline_id": pipeline, "deal_probability": 101},
             status=400)
    api.post(f"{V2}/stages", {"name": "X", "pipeline_id": pipeline, "deal_probability": 0.5},
             status=400, request_valid=False)
    api.post(f"{V2}/stages", {"name": "X", "pipeline_id": str(pipeline)}, status=400)
    api.post(f"{V2}/stages", {"name": "X", "pipeline_id": pipeline, "order_nr": 1}, status=400)
    api.get(f"{V2}/stages/999", status=404)
    api.get(f"{V2}/stages", params={"sort_by": "name"}, status=400)


def test_deleting_a_stage_or_pipeline_leaves_its_deals(api: Api) -> None:
    pipeline, stages = _pipeline_with_stages(api, stages=2)
    deal = api.post(f"{V2}/deals", {"title": "Kept", "stage_id": stages[1]})["data"]
    api.delete(f"{V2}/stages/{stages[1]}")
    # decision (module docstring of the emulator): no cascade to deals is documented
    kept = api.get(f"{V2}/deals/{deal['id']}")["data"]
    assert (kept["stage_id"], kept["is_deleted"]) == (stages[1], False)
    assert [d["id"] for d in api.get(f"{V2}/deals", params={"stage_id": stages[1]})["data"]] \
        == [deal["id"]]
    api.delete(f"{V2}/pipelines/{pipeline}")
    assert api.get(f"{V2}/stages/{stages[0]}")["data"]["is_deleted"] is True
    assert api.get(f"{V2}/deals/{deal['id']}")["data"]["pipeline_id"] == pipeline
    # a deleted stage cannot take new deals
    api.post(f"{V2}/deals", {"title": "Nope", "stage_id": stages[0]}, status=400)


# ---- persons and organizations -------------------------------------------------------------

def test_organizations_crud(api: Api, pd: PipedriveSandbox) -> None:
    domain = pd.emulator.fields.key_of("organization", "Domain")
    org = api.post(f"{V2}/organizations", {
        "name": "Nord Logistics GmbH",
        "address": {"value": "Hamburg, Germany", "locality": "Hamburg", "country": "Germany"},
        "website": "https://nord.example", "employee_count": 40,
        "custom_fields": {domain: "nord.example"},
    })["data"]
    assert org["address"]["locality"] == "Hamburg"
    assert org["owner_id"] == 1
    assert org["custom_fields"] == {domain: "nord.example"}
    bare = api.post(f"{V2}/organizations", {"name": "Bare"})["data"]
    assert bare["address"] is None
    pd.tick()
    patched = api.patch(f"{V2}/organizations/{org['id']}",
                        {"name": "Nord Logistik GmbH", "custom_fields": {domain: None},
                         "label_ids": [3]})["data"]
    assert patched["name"] == "Nord Logistik GmbH"
    assert patched["custom_fields"] == {}
    assert patched["label_ids"] == [3]
    assert patched["update_time"] == stamp(1)
    assert api.get(f"{V2}/organizations/{org['id']}")["data"] == patched
    listed = api.get(f"{V2}/organizations", params={"owner_id": 1})["data"]
    assert [o["id"] for o in listed] == [org["id"], bare["id"]]
    api.delete(f"{V2}/organizations/{bare['id']}")
    assert [o["id"] for o in api.get(f"{V2}/organizations")["data"]] == [org["id"]]
    assert api.get(f"{V2}/organizations/{bare['id']}")["data"]["is_deleted"] is True
    api.post(f"{V2}/organizations", {"owner_id": 1}, status=400)


def test_persons_crud_with_emails_phones_and_links(api: Api, pd: PipedriveSandbox) -> None:
    org = api.post(f"{V2}/organizations", {"name": "Blue Software AG"})["data"]
    consent = pd.emulator.fields.key_of("person", "Marketing consent")
    yes = pd.emulator.fields.option_id("person", "Marketing consent", "Yes")
    person = api.post(f"{V2}/persons", {
        "name": "Anna Müller", "org_id": org["id"],
        "emails": [{"value": "anna@blue.example", "label": "work"},
                   {"value": "anna@home.example", "primary": False, "label": "home"}],
        "phones": [{"value": "+49 30 1234567", "primary": True, "label": "mobile"}],
        "custom_fields": {consent: yes},
    })["data"]
    assert (person["first_name"], person["last_name"]) == ("Anna", "Müller")
    assert person["emails"][0] == {"value": "anna@blue.example", "primary": True,
                                   "label": "work"}
    assert person["org_id"] == org["id"]
    assert person["custom_fields"] == {consent: yes}
    assert person["is_deleted"] is False

    other = api.post(f"{V2}/persons", {"name": "Ben"})["data"]
    assert other["org_id"] is None
    assert other["emails"] == []
    by_org = api.get(f"{V2}/persons", params={"org_id": org["id"]})["data"]
    assert [p["id"] for p in by_org] == [person["id"]]

    pd.tick()
    patched = api.patch(f"{V2}/persons/{person['id']}", {
        "emails": [{"value": "a.mueller@blue.example", "primary": True, "label": "work"}],
        "job_title": "Head of Sales",
    })["data"]
    assert [e["value"] for e in patched["emails"]] == ["a.mueller@blue.example"]
    assert patched["job_title"] == "Head of Sales"
    assert patched["phones"] == person["phones"]

    deal = api.post(f"{V2}/deals", {"title": "X", "person_id": person["id"]})["data"]
    by_deal = api.get(f"{V2}/persons", params={"deal_id": deal["id"]})["data"]
    assert [p["id"] for p in by_deal] == [person["id"]]

    api.delete(f"{V2}/persons/{person['id']}")
    assert api.get(f"{V2}/persons/{person['id']}")["data"]["is_deleted"] is True
    assert [p["id"] for p in api.get(f"{V2}/persons")["data"]] == [other["id"]]
    # a deleted record cannot be linked anew
    api.post(f"{V2}/deals", {"title": "Y", "person_id": person["id"]}, status=400)


def test_person_input_errors(api: Api) -> None:
    api.post(f"{V2}/persons", {"emails": [{"value": "x@example.com"}]}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "emails": "x@example.com"}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "emails": [{"value": "a@x.io", "primary": True},
                                                        {"value": "b@x.io", "primary": True}]},
             status=400)
    api.post(f"{V2}/persons", {"name": "X", "org_id": 12345}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "owner_id": "1"}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "visible_to": 2}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "marketing_status": "maybe"}, status=400)
    api.post(f"{V2}/persons", {"name": "X", "email": "x@example.com"}, status=400)
    api.call("POST", f"{V2}/persons", data="{not json", status=400,
             headers={"content-type": "application/json"})
    api.post(f"{V2}/persons", [{"name": "X"}], status=400)
    api.get(f"{V2}/persons/999", status=404)
    api.patch(f"{V2}/persons/999", {"name": "Y"}, status=404)
    api.delete(f"{V2}/persons/999", status=404)
    api.get(f"{V2}/persons", params={"filter_id": 3}, status=404)


# ---- deals ---------------------------------------------------------------------------------

def test_deal_lifecycle_placement_and_status_times(api: Api, pd: PipedriveSandbox) -> None:
    default, stages = _default_pipeline(api)
    second, second_stages = _pipeline_with_stages(api, "Second", 2)
    person = api.post(f"{V2}/persons", {"name": "Olena Шевченко"})["data"]
    org = api.post(f"{V2}/organizations", {"name": "Київ Партнери ТОВ"})["data"]

    deal = api.post(f"{V2}/deals", {"title": "CRM implementation", "value": 12000.5,
                                    "person_id": person["id"], "org_id": org["id"],
                                    "expected_close_date": "2026-03-31"})["data"]
    # no stage or pipeline: the first stage of the default pipeline (lowest order_nr)
    assert (deal["pipeline_id"], deal["stage_id"]) == (default, stages[0])
    assert (deal["status"], deal["currency"], deal["value"]) == ("open", "EUR", 12000.5)
    assert deal["won_time"] is None
    assert deal["lost_time"] is None
    assert deal["close_time"] is None
    assert deal["stage_change_time"] is None
    assert deal["origin"] == "API"
    in_pipeline = api.post(f"{V2}/deals", {"title": "B", "pipeline_id": second})["data"]
    assert in_pipeline["stage_id"] == second_stages[0]
    in_stage = api.post(f"{V2}/deals", {"title": "C", "stage_id": second_stages[1]})["data"]
    assert in_stage["pipeline_id"] == second
    api.post(f"{V2}/deals", {"title": "D", "stage_id": stages[0], "pipeline_id": second},
             status=400)

    pd.tick(60)
    moved = api.patch(f"{V2}/deals/{deal['id']}", {"stage_id": stages[2]})["data"]
    assert moved["stage_change_time"] == stamp(60)
    assert moved["update_time"] == stamp(60)
    pd.tick(60)
    won = api.patch(f"{V2}/deals/{deal['id']}", {"status": "won"})["data"]
    assert won["status"] == "won"
    assert won["won_time"] == won["close_time"] == stamp(120)
    assert won["lost_time"] is None
    pd.tick(60)
    lost = api.patch(f"{V2}/deals/{deal['id']}", {"status": "lost", "lost_reason": "Price"})
    assert lost["data"]["lost_reason"] == "Price"
    assert lost["data"]["won_time"] is None
    assert lost["data"]["lost_time"] == stamp(180)
    reopened = api.patch(f"{V2}/deals/{deal['id']}", {"status": "open"})["data"]
    assert (reopened["lost_reason"], reopened["lost_time"], reopened["close_time"]) == (
        None, None, None)
    # won/lost times and reasons exist only with the matching status
    api.patch(f"{V2}/deals/{deal['id']}", {"lost_reason": "Price"}, status=400)
    api.patch(f"{V2}/deals/{deal['id']}", {"won_time": stamp()}, status=400)
    api.patch(f"{V2}/deals/{deal['id']}", {"status": "won", "lost_time": stamp()}, status=400)
    explicit = api.patch(f"{V2}/deals/{deal['id']}",
                         {"status": "won", "won_time": "2026-01-01T10:00:00Z"})["data"]
    assert explicit["won_time"] == "2026-01-01T10:00:00Z"
    api.patch(f"{V2}/deals/{deal['id']}", {"status": "deleted"}, status=400)

    moved_pipeline = api.patch(f"{V2}/deals/{in_stage['id']}", {"pipeline_id": default})
    assert moved_pipeline["data"]["stage_id"] == stages[0]

    assert api.delete(f"{V2}/deals/{deal['id']}")["data"] == {"id": deal["id"]}
    api.delete(f"{V2}/deals/{deal['id']}")  # idempotent: a retried DELETE succeeds
    gone = api.get(f"{V2}/deals/{deal['id']}")["data"]
    assert gone["is_deleted"] is True
    pd.tick(31 * 86_400)  # "After 30 days, the deal will be permanently deleted."
    api.get(f"{V2}/deals/{deal['id']}", status=404)
    assert api.get(f"{V2}/deals", params={"status": "deleted"})["data"] == []


def test_deal_input_errors(api: Api) -> None:
    _, stages = _pipeline_with_stages(api, stages=1)
    api.post(f"{V2}/deals", {"value": 10}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "value": "100"}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "currency": "EURO"}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "stage_id": 999}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "org_id": 999}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "probability": 101}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "expected_close_date": "31.03.2026"}, status=400,
             request_valid=False)
    api.post(f"{V2}/deals", {"title": "X", "status": "lost", "won_time": stamp()}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "lost_reason": "why"}, status=400)
    api.post(f"{V2}/deals", {"title": "X", "stage_id": stages[0], "add_time": stamp()},
             status=400)  # add_time is not writable on v2 deals
    api.get(f"{V2}/deals/0", status=400)
    api.get(f"{V2}/deals/424242", status=404)


def test_deal_list_filters_status_and_archive(api: Api, pd: PipedriveSandbox) -> None:
    pipeline, stages = _default_pipeline(api)
    person = api.post(f"{V2}/persons", {"name": "P"})["data"]
    org = api.post(f"{V2}/organizations", {"name": "O"})["data"]
    open_deal = api.post(f"{V2}/deals", {"title": "open", "person_id": person["id"]})["data"]
    won = api.post(f"{V2}/deals", {"title": "won", "status": "won",
                                   "stage_id": stages[1], "org_id": org["id"]})["data"]
    lost = api.post(f"{V2}/deals", {"title": "lost", "status": "lost",
                                    "owner_id": 7})["data"]
    deleted = api.post(f"{V2}/deals", {"title": "deleted", "status": "won"})["data"]
    api.delete(f"{V2}/deals/{deleted['id']}")
    archived = api.post(f"{V2}/deals", {"title": "archived", "is_archived": True})["data"]
    assert archived["archive_time"] == stamp()

    def ids(**params: Any) -> list[int]:
        return [d["id"] for d in api.get(f"{V2}/deals", params=params)["data"]]

    assert ids() == [open_deal["id"], won["id"], lost["id"]]  # no deleted, no archived
    assert ids(status="open") == [open_deal["id"]]
    assert ids(status="won,lost") == [won["id"], lost["id"]]
    assert ids(status="deleted") == [deleted["id"]]  # deleted only when asked
    assert ids(status="open,deleted") == [open_deal["id"], deleted["id"]]
    assert ids(person_id=person["id"]) == [open_deal["id"]]
    assert ids(org_id=org["id"]) == [won["id"]]
    assert ids(owner_id=7) == [lost["id"]]
    assert ids(stage_id=stages[1]) == [won["id"]]
    assert ids(pipeline_id=pipeline) == [open_deal["id"], won["id"], lost["id"]]
    assert ids(ids=f"{won['id']},{archived['id']},999") == [won["id"]]
    api.get(f"{V2}/deals", params={"status": "closed"}, status=400, request_valid=False)
    api.get(f"{V2}/deals", params={"ids": ",".join(str(i) for i in range(1, 102))},
            status=400)

    archive = api.get(f"{V2}/deals/archived")["data"]
    assert [d["id"] for d in archive] == [archived["id"]]
    assert archive[0]["is_archived"] is True
    pd.tick()
    api.patch(f"{V2}/deals/{archived['id']}", {"is_archived": False})
    assert ids() == [open_deal["id"], won["id"], lost["id"], archived["id"]]
    assert api.get(f"{V2}/deals/archived")["data"] == []


def test_custom_fields_round_trip(api: Api, pd: PipedriveSandbox) -> None:
    _pipeline_with_stages(api, stages=1)
    fields = pd.emulator.fields
    fee = fields.key_of("deal", "Monthly fee")
    source = fields.key_of("deal", "Lead source")
    referral = fields.option_id("deal", "Lead source", "Referral")
    tags = api.post("/api/v1/dealFields", {"name": "Services", "field_type": "set",
                                           "options": [{"label": "SEO"}, {"label": "Ads"},
                                                       {"label": "CRM"}]})["data"]
    start = api.post("/api/v1/dealFields", {"name": "Start", "field_type": "date"})["data"]
    option_ids = [o["id"] for o in tags["options"]]
    assert len(tags["key"]) == 40
    assert all(c in "0123456789abcdef" for c in tags["key"])

    values = {fee: {"value": 1500, "currency": "eur"}, source: referral,
              tags["key"]: [option_ids[2], option_ids[0]], start["key"]: "2026-02-01"}
    deal = api.post(f"{V2}/deals", {"title": "Retainer", "custom_fields": values})["data"]
    expected = {fee: {"value": 1500, "currency": "EUR"}, source: referral,
                tags["key"]: sorted([option_ids[2], option_ids[0]]),
                start["key"]: "2026-02-01"}
    assert deal["custom_fields"] == expected
    assert api.get(f"{V2}/deals/{deal['id']}")["data"]["custom_fields"] == expected
    listed = api.get(f"{V2}/deals", params={"custom_fields": fee})["data"]
    assert listed[0]["custom_fields"] == {fee: {"value": 1500, "currency": "EUR"}}
    one = api.get(f"{V2}/deals/{deal['id']}", params={"custom_fields": f"{source},{fee}"})
    assert set(one["data"]["custom_fields"]) == {source, fee}

    cleared = api.patch(f"{V2}/deals/{deal['id']}",
                        {"custom_fields": {tags["key"]: None, fee: {"value": 99.5}}})["data"]
    assert tags["key"] not in cleared["custom_fields"]
    assert cleared["custom_fields"][fee] == {"value": 99.5, "currency": "EUR"}
    assert cleared["custom_fields"][source] == referral  # untouched keys stay

    bad = [
        {"0" * 40: "x"},  # unknown key
        {source: 999_999},  # not an option
        {source: "Referral"},  # options are ids
        {tags["key"]: []},  # "sending an empty array [] is not supported"
        {fee: 1500},  # monetary is {value, currency}
        {fee: {"value": "1500"}},
        {start["key"]: "01/02/2026"},
    ]
    for custom in bad:
        api.patch(f"{V2}/deals/{deal['id']}", {"custom_fields": custom}, status=400)
    api.get(f"{V2}/deals", params={"custom_fields": ",".join(["a" * 40] * 16)}, status=400)


def test_include_fields_and_option_labels(api: Api, pd: PipedriveSandbox) -> None:
    fields = pd.emulator.fields
    source = fields.key_of("deal", "Lead source")
    referral = fields.option_id("deal", "Lead source", "Referral")
    org = api.post(f"{V2}/organizations", {"name": "Counted GmbH"})["data"]
    person = api.post(f"{V2}/persons", {"name": "Counted Person", "org_id": org["id"]})["data"]
    api.post(f"{V2}/persons", {"name": "Colleague", "org_id": org["id"]})
    deal = api.post(f"{V2}/deals", {"title": "Won twice", "person_id": person["id"],
                                    "org_id": org["id"], "custom_fields": {source: referral}})
    deal_id = deal["data"]["id"]
    api.post(f"{V2}/deals", {"title": "Open", "person_id": person["id"], "org_id": org["id"]})
    api.post(f"{V2}/deals", {"title": "Lost", "org_id": org["id"], "status": "lost"})
    gone = api.post(f"{V2}/deals", {"title": "Deleted", "org_id": org["id"]})["data"]
    api.delete(f"{V2}/deals/{gone['id']}")

    # not asked for: not there
    plain = api.get(f"{V2}/deals/{deal_id}")["data"]
    assert "first_won_time" not in plain
    assert plain["custom_fields"][source] == referral

    pd.tick(10)
    api.patch(f"{V2}/deals/{deal_id}", {"status": "won"})
    pd.tick(10)
    api.patch(f"{V2}/deals/{deal_id}", {"status": "open"})
    pd.tick(10)
    rewon = api.patch(f"{V2}/deals/{deal_id}", {"status": "won"})["data"]
    assert rewon["won_time"] == stamp(30)
    asked = api.get(f"{V2}/deals/{deal_id}", params={
        "include_fields": "first_won_time,activities_count,participants_count,next_activity_id",
        "include_option_labels": "true"})["data"]
    assert asked["first_won_time"] == stamp(10)  # the first win, not the latest
    assert (asked["activities_count"], asked["participants_count"]) == (0, 1)
    assert asked["next_activity_id"] is None
    assert asked["custom_fields"][source] == {"id": referral, "label": "Referral"}
    listed = api.get(f"{V2}/deals", params={"include_fields": "first_won_time",
                                            "ids": str(deal_id)})["data"]
    assert listed[0]["first_won_time"] == stamp(10)

    counts = "open_deals_count,closed_deals_count,won_deals_count,lost_deals_count"
    shown = api.get(f"{V2}/organizations/{org['id']}",
                    params={"include_fields": f"{counts},people_count"})["data"]
    assert [shown[k] for k in counts.split(",")] == [1, 2, 1, 1]  # the deleted deal left out
    assert shown["people_count"] == 2
    mine = api.get(f"{V2}/persons", params={"include_fields": counts,
                                            "ids": str(person["id"])})["data"][0]
    assert [mine[k] for k in counts.split(",")] == [1, 1, 1, 0]

    # values outside the operation's enum are refused
    api.get(f"{V2}/deals", params={"include_fields": "people_count"}, status=400,
            request_valid=False)
    api.get(f"{V2}/persons/{person['id']}", params={"include_fields": "products_count"},
            status=400, request_valid=False)
    api.get(f"{V2}/deals/archived", params={"include_fields": "first_won_time"})


# ---- search --------------------------------------------------------------------------------

def test_search_endpoints(api: Api, pd: PipedriveSandbox) -> None:
    _pipeline_with_stages(api, stages=1)
    org = api.post(f"{V2}/organizations", {
        "name": "Harbor Analytics", "address": {"value": "Lyon, France"}})["data"]
    anna = api.post(f"{V2}/persons", {"name": "Anna Harbor", "org_id": org["id"],
                                      "emails": [{"value": "anna@harbor.example"}]})["data"]
    api.post(f"{V2}/persons", {"name": "Ben Smith",
                               "phones": [{"value": "+49 555 0101"}]})
    deal = api.post(f"{V2}/deals", {"title": "Harbor SEO audit", "value": 2799.36,
                                    "org_id": org["id"], "person_id": anna["id"]})["data"]
    api.post(f"{V2}/deals", {"title": "Harbor lost one", "status": "lost"})

    persons = api.get(f"{V2}/persons/search", params={"term": "harbor"})["data"]["items"]
    assert [i["item"]["id"] for i in persons] == [anna["id"]]
    assert persons[0]["item"]["organization"] == {"id": org["id"], "name": "Harbor Analytics"}
    assert persons[0]["item"]["emails"] == ["anna@harbor.example"]
    by_phone = api.get(f"{V2}/persons/search", params={"term": "555", "fields": "phone"})
    assert [i["item"]["name"] for i in by_phone["data"]["items"]] == ["Ben Smith"]
    assert api.get(f"{V2}/persons/search", params={"term": "harbor", "fields": "email,phone"})[
        "data"]["items"][0]["item"]["id"] == anna["id"]

    orgs = api.get(f"{V2}/organizations/search", params={"term": "lyon"})["data"]["items"]
    assert orgs[0]["item"]["address"] == "Lyon, France"
    exact = api.get(f"{V2}/organizations/search",
                    params={"term": "harbor analytics", "exact_match": "true"})
    assert [i["result_score"] for i in exact["data"]["items"]] == [1.0]
    assert api.get(f"{V2}/organizations/search",
                   params={"term": "harbor", "exact_match": "true"})["data"]["items"] == []

    deals = api.get(f"{V2}/deals/search", params={"term": "harbor", "status": "open"})
    found = deals["data"]["items"]
    assert [i["item"]["id"] for i in found] == [deal["id"]]
    assert found[0]["item"]["value"] == 2799.36
    assert found[0]["item"]["person"] == {"id": anna["id"], "name": "Anna Harbor"}
    assert deals["additional_data"] == {"next_cursor": None}
    by_org = api.get(f"{V2}/deals/search", params={"term": "harbor",
                                                   "organization_id": org["id"]})
    assert len(by_org["data"]["items"]) == 1

    paged = api.get(f"{V2}/deals/search", params={"term": "harbor", "limit": 1})
    assert len(paged["data"]["items"]) == 1
    rest = api.get(f"{V2}/deals/search", params={
        "term": "harbor", "limit": 1, "cursor": paged["additional_data"]["next_cursor"]})
    assert rest["data"]["items"][0]["item"]["id"] != paged["data"]["items"][0]["item"]["id"]
    assert rest["additional_data"]["next_cursor"] is None

    api.get(f"{V2}/persons/search", params={"term": "h"}, status=400)
    assert api.get(f"{V2}/persons/search", params={"term": "h", "exact_match": "true"})
    api.get(f"{V2}/deals/search", params={"term": "harbor", "fields": "name"}, status=400,
            request_valid=False)
    api.get(f"{V2}/deals/search", params={"term": "harbor", "cursor": "%%%"}, status=400)


# ---- v1 field definitions ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["dealFields", "personFields", "organizationFields"])
def test_field_definitions(api: Api, path: str) -> None:
    listed = api.get(f"/api/v1/{path}")
    keys = [f["key"] for f in listed["data"]]
    assert "id" in keys
    custom = [f for f in listed["data"] if f["edit_flag"]]
    assert custom
    assert all(len(f["key"]) == 40 for f in custom)
    assert listed["additional_data"]["pagination"] == {
        "start": 0, "limit": 100, "more_items_in_collection": False}
    page = api.get(f"/api/v1/{path}", params={"start": 1, "limit": 2})
    assert [f["key"] for f in page["data"]] == keys[1:3]
    assert page["additional_data"]["pagination"]["more_items_in_collection"] is True
    assert page["additional_data"]["pagination"]["next_start"] == 3
    created = api.post(f"/api/v1/{path}", {"name": "Source detail", "field_type": "varchar"})
    assert created["data"]["key"] not in keys
    assert created["data"]["key"] in [f["key"] for f in api.get(f"/api/v1/{path}")["data"]]
    api.post(f"/api/v1/{path}", {"name": "Bad", "field_type": "enum"}, status=400)
    api.post(f"/api/v1/{path}", {"name": "Bad", "field_type": "status"}, status=400,
             request_valid=False)


def test_seeded_field_shapes(api: Api) -> None:
    deal_fields = {f["name"]: f for f in api.get("/api/v1/dealFields")["data"]}
    fee = deal_fields["Monthly fee"]
    assert fee["field_type"] == "monetary"
    assert fee["subfields"][0]["key"] == f"{fee['key']}_currency"
    source = deal_fields["Lead source"]
    assert [o["label"] for o in source["options"]] == [
        "Website", "Referral", "Event", "Outbound", "Partner"]
    assert deal_fields["Status"]["options"] is None


@pytest.mark.parametrize("path", ["dealFields", "personFields", "organizationFields"])
def test_field_definitions_by_id(api: Api, path: str) -> None:
    entity = path.removesuffix("Fields")
    created = api.post(f"/api/v1/{path}", {"name": "Tier", "field_type": "enum",
                                           "options": [{"label": "A"}, {"label": "B"}]})["data"]
    field_id, key = created["id"], created["key"]
    assert api.get(f"/api/v1/{path}/{field_id}")["data"] == created
    [a, b] = created["options"]
    table = {"deal": "deals", "person": "persons", "organization": "organizations"}[entity]
    body = {"title" if table == "deals" else "name": "Holder", "custom_fields": {key: b["id"]}}
    record = api.post(f"{V2}/{table}", body)["data"]
    api.pd.tick()
    renamed = api.call("PUT", f"/api/v1/{path}/{field_id}", json={
        "name": "Tier level", "options": [{"id": a["id"], "label": "Gold"}, {"label": "C"}]})
    data = renamed["data"]
    assert (data["name"], data["key"], data["update_time"]) == (
        "Tier level", key, stamp(1).replace("T", " ").rstrip("Z"))
    assert [o["label"] for o in data["options"]] == ["Gold", "C"]
    assert data["options"][0]["id"] == a["id"]
    # the value of a removed option is gone from the record
    assert key not in api.get(f"{V2}/{table}/{record['id']}")["data"]["custom_fields"]
    api.call("PUT", f"/api/v1/{path}/{field_id}", json={"options": [{"id": 99999,
                                                                     "label": "X"}]},
             status=400)
    system = next(f for f in api.get(f"/api/v1/{path}")["data"] if not f["edit_flag"])
    api.call("PUT", f"/api/v1/{path}/{system['id']}", json={"name": "Mine"}, status=400)
    api.delete(f"/api/v1/{path}/{system['id']}", status=400)
    assert api.delete(f"/api/v1/{path}/{field_id}") == {"success": True, "data": {"id": field_id}}
    api.get(f"/api/v1/{path}/{field_id}", status=404)
    api.call("PUT", f"/api/v1/{path}/{field_id}", json={"name": "Gone"}, status=404)
    api.delete(f"/api/v1/{path}/{field_id}", status=404)
    assert key not in [f["key"] for f in api.get(f"/api/v1/{path}")["data"]]
    # another entity's field id is not this entity's
    other = "personFields" if path != "personFields" else "dealFields"
    foreign = api.get(f"/api/v1/{other}")["data"][0]["id"]
    api.get(f"/api/v1/{path}/{foreign}", status=404)


def test_deleting_a_field_removes_its_values(api: Api) -> None:
    field = api.post("/api/v1/personFields", {"name": "Nickname", "field_type": "varchar"})
    key = field["data"]["key"]
    person = api.post(f"{V2}/persons", {"name": "Ann", "custom_fields": {key: "A"}})["data"]
    assert person["custom_fields"] == {key: "A"}
    api.delete(f"/api/v1/personFields/{field['data']['id']}")
    again = api.get(f"{V2}/persons/{person['id']}")["data"]
    assert key not in again["custom_fields"]
    assert again["update_time"] == person["update_time"]  # a schema change, not an edit
    api.patch(f"{V2}/persons/{person['id']}", {"custom_fields": {key: "B"}}, status=400)


def test_v1_answers_at_both_host_forms(api: Api) -> None:
    """`https://api.pipedrive.com/v1/…` (the v1 spec's server) and `/api/v1/…` serve the same
    endpoints; v2's server is `…/api/v2` on either host, so `/v2/…` is not an API path."""
    aliases = [r for r in api.pd.server.app.router.routes if r.template.startswith("/v1/")]
    twins = {(r.method, r.template) for r in api.pd.server.app.router.routes
             if r.template.startswith("/api/v1/")}
    assert {(r.method, "/api" + r.template) for r in aliases} == twins
    org = api.post(f"{V2}/organizations", {"name": "Keep"})["data"]["id"]
    gone = api.post(f"{V2}/organizations", {"name": "Gone"})["data"]["id"]
    p1 = api.post(f"{V2}/persons", {"name": "P1"})["data"]["id"]
    p2 = api.post(f"{V2}/persons", {"name": "P2"})["data"]["id"]
    fields: dict[str, int] = {}
    for route in aliases:
        path = route.template
        if "Fields" in path and (route.method == "POST" or "{id}" in path):
            name = path.split("/")[2]
            if route.method == "POST":
                fields[name] = api.post(path, {"name": "X", "field_type": "text"})["data"]["id"]
    for route in sorted(aliases, key=lambda r: r.method == "DELETE"):
        path, method = route.template, route.method
        name = path.split("/")[2]
        if path.endswith("/merge"):
            loser, keep = (p2, p1) if name == "persons" else (gone, org)
            api.call("PUT", path.replace("{id}", str(loser)), json={"merge_with_id": keep})
        elif "Fields" in name and "{id}" in path:
            body = {"name": "Y"} if method == "PUT" else None
            api.call(method, path.replace("{id}", str(fields[name])), json=body)
        elif "Fields" in name:
            if method == "GET":
                assert api.get(path)["data"] == api.get("/api" + path)["data"]
        elif name == "recents":
            api.get(path, params={"since_timestamp": "2025-12-31 00:00:00"})
        elif path.endswith("/users/me"):  # current in v1 (account_info.py)
            assert api.get(path)["data"] == api.get("/api" + path)["data"]
        else:  # a retired v1 CRUD endpoint: gone at both forms
            target = path.replace("{id}", "1") + ("?term=ab" if path.endswith("search") else "")
            api.call(method, target, json={} if method in ("POST", "PUT") else None,
                     status=410)
    response = api.pd.session.get(api.pd.url("/v2/deals"))
    assert response.status_code == 404


# ---- recents -------------------------------------------------------------------------------

def _v1(offset: float) -> str:
    return stamp(offset).replace("T", " ").rstrip("Z")


def test_recents_lists_changes_after_a_time_with_deletions(api: Api, pd: PipedriveSandbox) -> None:
    before = _v1(-1)
    org = api.post(f"{V2}/organizations", {"name": "Acme"})["data"]
    person = api.post(f"{V2}/persons", {"name": "Ann Lee", "org_id": org["id"]})["data"]
    deal = api.post(f"{V2}/deals", {"title": "Big", "person_id": person["id"],
                                    "org_id": org["id"], "value": 10})["data"]
    pd.tick(10)
    api.delete(f"{V2}/persons/{person['id']}")
    api.delete(f"{V2}/deals/{deal['id']}")
    api.delete(f"{V2}/organizations/{org['id']}")
    body = api.get("/v1/recents", params={"since_timestamp": before,
                                          "items": "deal,person,organization"})
    assert [(i["item"], i["id"]) for i in body["data"]] == [
        ("deal", deal["id"]), ("person", person["id"]), ("organization", org["id"])]
    by_item = {i["item"]: i["data"] for i in body["data"]}
    assert by_item["person"]["active_flag"] is False
    assert by_item["organization"]["active_flag"] is False
    assert (by_item["deal"]["deleted"], by_item["deal"]["active"],
            by_item["deal"]["status"]) == (True, False, "deleted")
    assert by_item["person"]["update_time"] == _v1(10)
    assert body["additional_data"] == {
        "since_timestamp": before, "last_timestamp_on_page": _v1(10),
        "pagination": {"start": 0, "limit": 100, "more_items_in_collection": False}}
    # strictly after the timestamp: the deletions' own second is not "after" itself
    later = api.get("/v1/recents", params={"since_timestamp": _v1(10)})
    assert later["data"] == []
    only_people = api.get("/api/v1/recents", params={"since_timestamp": before,
                                                     "items": "person"})
    assert [i["item"] for i in only_people["data"]] == ["person"]
    # without `items`, every type: the default pipeline and stages came with the account
    everything = api.get("/v1/recents", params={"since_timestamp": _v1(-5)})["data"]
    assert {"pipeline", "stage"} <= {i["item"] for i in everything}
    pd.tick(31 * 24 * 3600)  # purged after 30 days: no longer listed
    gone = api.get("/v1/recents", params={"since_timestamp": before, "items": "person"})
    assert gone["data"] == []


def test_recents_paging_and_custom_fields(api: Api, pd: PipedriveSandbox) -> None:
    since = _v1(-1)
    fee = pd.emulator.fields.key_of("deal", "Monthly fee")
    for n in range(7):  # all in one second: ties ordered by item type, then id
        api.post(f"{V2}/deals", {"title": f"D{n}",
                                 "custom_fields": {fee: {"value": n, "currency": "USD"}}})
    seen: list[int] = []
    start = 0
    while True:
        body = api.get("/v1/recents", params={"since_timestamp": since, "items": "deal",
                                              "start": start, "limit": 3})
        seen += [i["id"] for i in body["data"]]
        pagination = body["additional_data"]["pagination"]
        if not pagination["more_items_in_collection"]:
            break
        start = pagination["next_start"]
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen)
    first = api.get("/v1/recents", params={"since_timestamp": since, "items": "deal",
                                           "limit": 1})["data"][0]["data"]
    assert (first[fee], first[f"{fee}_currency"]) == (0, "USD")


@pytest.mark.parametrize("params", [
    {}, {"since_timestamp": "2026-01-01"}, {"since_timestamp": "2026-01-01T00:00:00Z"},
    {"since_timestamp": "2026-02-30 00:00:00"},
    {"since_timestamp": "2026-01-01 00:00:00", "items": "deal,unicorn"},
    {"since_timestamp": "2026-01-01 00:00:00", "limit": 0},
])
def test_recents_rejects_bad_parameters(api: Api, params: dict[str, Any]) -> None:
    api.get("/v1/recents", params=params, status=400)


# ---- merges --------------------------------------------------------------------------------

def test_merge_persons_moves_deals_and_deletes_the_merged_one(api: Api,
                                                              pd: PipedriveSandbox) -> None:
    org = api.post(f"{V2}/organizations", {"name": "Acme"})["data"]
    keep = api.post(f"{V2}/persons", {"name": "Ann Lee", "emails": [
        {"value": "ann@acme.example", "primary": True, "label": "work"}]})["data"]
    lose = api.post(f"{V2}/persons", {"name": "Ann L.", "org_id": org["id"], "emails": [
        {"value": "ann@home.example", "primary": True, "label": "home"}]})["data"]
    deal = api.post(f"{V2}/deals", {"title": "Big", "person_id": lose["id"]})["data"]
    pd.tick(5)
    merged = api.call("PUT", f"/v1/persons/{lose['id']}/merge",
                      json={"merge_with_id": keep["id"]})["data"]
    assert (merged["id"], merged["merge_what_id"], merged["name"]) == (
        keep["id"], lose["id"], "Ann Lee")  # the survivor's data wins
    survivor = api.get(f"{V2}/persons/{keep['id']}")["data"]
    assert [e["value"] for e in survivor["emails"]] == ["ann@acme.example", "ann@home.example"]
    assert survivor["org_id"] == org["id"]  # filled from the merged person
    assert survivor["update_time"] == stamp(5)
    assert api.get(f"{V2}/persons/{lose['id']}")["data"]["is_deleted"] is True
    moved = api.get(f"{V2}/deals/{deal['id']}")["data"]
    assert (moved["person_id"], moved["update_time"]) == (keep["id"], stamp(5))
    recent = api.get("/v1/recents", params={"since_timestamp": _v1(4), "items": "person"})
    assert {(i["id"], i["data"]["active_flag"]) for i in recent["data"]} == {
        (keep["id"], True), (lose["id"], False)}
    api.call("PUT", f"/v1/persons/{lose['id']}/merge", json={"merge_with_id": keep["id"]},
             status=404)
    api.call("PUT", f"/v1/persons/{keep['id']}/merge", json={"merge_with_id": keep["id"]},
             status=400)
    api.call("PUT", f"/v1/persons/{keep['id']}/merge", json={}, status=400,
             request_valid=False)


def test_merge_organizations_moves_deals_and_persons(api: Api) -> None:
    keep = api.post(f"{V2}/organizations", {"name": "Acme GmbH"})["data"]
    lose = api.post(f"{V2}/organizations", {"name": "ACME"})["data"]
    person = api.post(f"{V2}/persons", {"name": "Bo", "org_id": lose["id"]})["data"]
    deal = api.post(f"{V2}/deals", {"title": "Deal", "org_id": lose["id"]})["data"]
    body = api.call("PUT", f"/api/v1/organizations/{lose['id']}/merge",
                    json={"merge_with_id": keep["id"]})
    assert body == {"success": True, "data": {"id": keep["id"]}}
    assert api.get(f"{V2}/persons/{person['id']}")["data"]["org_id"] == keep["id"]
    assert api.get(f"{V2}/deals/{deal['id']}")["data"]["org_id"] == keep["id"]
    assert api.get(f"{V2}/organizations/{lose['id']}")["data"]["is_deleted"] is True
    assert [o["id"] for o in api.get(f"{V2}/organizations")["data"]] == [keep["id"]]
    api.call("PUT", "/api/v1/organizations/999/merge", json={"merge_with_id": keep["id"]},
             status=404)


# ---- auth and generic errors ---------------------------------------------------------------

AUTH_PROBES = [("GET", f"{V2}/deals"), ("GET", f"{V2}/pipelines/1"), ("POST", f"{V2}/persons"),
               ("GET", f"{V2}/organizations/search?term=ab"), ("GET", "/api/v1/dealFields"),
               ("DELETE", f"{V2}/stages/1")]


@pytest.mark.parametrize(("method", "path"), AUTH_PROBES)
def test_missing_token_gets_pipedrives_401(api: Api, method: str, path: str) -> None:
    body = api.call(method, path, headers={"x-api-token": ""}, status=401)
    assert body["error"] == "unauthorized access"
    assert body["errorCode"] == 401


def test_token_forms_and_restriction(spec: SpecValidator) -> None:
    for pd in start_pipedrive_sandbox(token=TOKEN):
        api = Api(pd, spec)
        assert api.get(f"{V2}/pipelines")["success"] is True  # x-api-token header
        del pd.session.headers["x-api-token"]
        response = pd.session.get(pd.url(f"{V2}/pipelines"), params={"api_token": TOKEN})
        assert response.status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert pd.session.get(pd.url(f"{V2}/pipelines"), headers=bearer).status_code == 200
        api.get(f"{V2}/pipelines", headers={"x-api-token": "wrong"}, status=401)
        api.get(f"{V2}/pipelines", headers={"Authorization": "Bearer wrong"}, status=401)
        api.get(f"{V2}/pipelines", status=401)


@pytest.mark.parametrize("params", [
    {"limit": 501}, {"limit": 0}, {"limit": "ten"}, {"cursor": "not-a-cursor"},
    {"sort_by": "name"}, {"sort_direction": "up"},
    {"updated_since": "2026-01-01"}, {"updated_since": "2026-01-01T10:20:00.123Z"},
    {"updated_until": "yesterday"}, {"owner_id": "me"},
])
def test_bad_list_parameters_are_400(api: Api, params: dict[str, Any]) -> None:
    body = api.get(f"{V2}/persons", params=params, status=400)
    assert body["error"].startswith("Validation failed")


def test_cursor_is_bound_to_its_sort(api: Api) -> None:
    for name in ("A", "B", "C"):
        api.post(f"{V2}/organizations", {"name": name})
    first = api.get(f"{V2}/organizations", params={"limit": 1})
    cursor = first["additional_data"]["next_cursor"]
    api.get(f"{V2}/organizations", params={"limit": 1, "cursor": cursor,
                                           "sort_direction": "desc"}, status=400)
    api.get(f"{V2}/organizations", params={"limit": 1, "cursor": cursor,
                                           "sort_by": "update_time"}, status=400)


RETIRED = ("pipelines", "stages", "deals", "persons", "organizations")


def test_retired_v1_endpoints_are_gone(api: Api) -> None:
    """"410 Gone - Old resource permanently unavailable" for the v1 CRUD that v2 replaced."""
    retired = [r for r in api.pd.server.app.router.routes
               if r.template.startswith("/api/v1/") and not r.template.endswith("/merge")
               and r.template.split("/")[3] in RETIRED]
    assert {r.template.split("/")[3] for r in retired} == {
        "pipelines", "stages", "deals", "persons", "organizations"}
    for route in retired:
        path = route.template.replace("{id}", "1")
        body = api.call(route.method, path + ("?term=ab" if path.endswith("search") else ""),
                        json={} if route.method in ("POST", "PUT") else None, status=410)
        assert "v2" in body["error"]
    api.get("/api/v1/dealFields")  # the field definitions are still v1


def test_current_user_names_the_company(api: Api) -> None:
    """v1 `/users/me` (still current): crmsync reads the account's `company_id` from it."""
    user = api.get("/api/v1/users/me")["data"]
    assert isinstance(user["company_id"], int)
    assert user["is_you"] is True


def test_unknown_path_and_method(api: Api) -> None:
    response = api.pd.session.get(api.pd.url(f"{V2}/leads"))
    assert response.status_code == 404
    assert response.json()["success"] is False
    response = api.pd.session.put(api.pd.url(f"{V2}/deals/1"), json={})
    assert response.status_code in (404, 405)
    assert response.json()["success"] is False


@pytest.mark.pipedrive_specs  # the routes are exercised by the spec-validated tests above
def test_every_route_was_exercised(request: pytest.FixtureRequest,
                                   pd: PipedriveSandbox) -> None:
    """Runs last: every route the emulator registers was called by a test above."""
    defined = {name for name in vars(request.module) if name.startswith("test_")}
    selected = {getattr(item, "originalname", item.name) for item in request.session.items
                if getattr(item, "module", None) is request.module}
    if defined - selected:
        pytest.skip("route coverage is only meaningful when the whole module runs")
    routes = {(r.method, _canonical(r.template)) for r in pd.server.app.router.routes}
    assert routes - EXERCISED == set()



@pytest.mark.pipedrive_specs  # reads the v1 spec's x-token-cost
def test_v1_token_costs_are_the_specs(pd: PipedriveSandbox) -> None:
    """Each v1 route, at both host forms, costs its operation's `x-token-cost`."""
    from pipedrive_support import load_spec

    from crmsync.sandbox.http import Request
    from crmsync.sandbox.limits import pipedrive_cost

    paths = load_spec("openapi-v1.yaml")["paths"]
    checked = 0
    for route in pd.server.app.router.routes:
        short = route.template.removeprefix("/api").removeprefix("/v1")
        operation = paths.get(short, {}).get(route.method.lower())
        if not route.template.startswith(("/api/v1/", "/v1/")) or operation is None:
            continue
        request = Request.build(route.method, route.template, {}, b"")
        request.route = route.template
        assert pipedrive_cost(request) == operation["x-token-cost"], route.template
        checked += 1
    assert checked == 2 * 19  # fields (5 × 3), recents, users/me, two merges; both forms
