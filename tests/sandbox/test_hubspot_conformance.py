"""Every emulated HubSpot endpoint, driven through hubspot-api-client 12's own API classes.

The SDK deserialises each response into its generated models (which reject missing required
fields and unknown enum values), so a call that returns a model is the conformance check.

Errata: where HubSpot's published spec (HubSpot/HubSpot-public-api-spec-collection) and its
documented live behaviour disagree, the sandbox follows the live behaviour. Each is exercised
by the test named after it:
- E1 search `sorts`: typed as strings; clients send {"propertyName", "direction"} objects
  and HubSpot takes both (API-FACTS) — test_search_incremental_by_modified_date_sorted.
- E2 search `filterGroups`: the spec's description says "up to 6 groups"; the search guide and
  the 2024-08 changelog ("Expanded Filtering Capabilities") say 5 groups, 10 filters a group,
  25 in all — test_search_limits_are_enforced.
- E3 objects create / batch create: the current v3 spec answers 200 (a CreatedResponse…
  wrapper for the basic create); live HubSpot and hubspot-api-client 12 answer 201 with the
  object (batch: 201, or 207 with errors) — test_create_answers_201_with_the_object.
- E4 associations v4 `toObjectId` (batch read, list) and `fromObjectId`/`toObjectId`
  (LabelsBetweenObjectPair) are typed as strings; HubSpot's guide and Postman collection show
  (and live HubSpot sends) integers — test_v4_object_ids_are_integers_on_the_wire.
- E5 the error body's `status: "error"` is not in the spec's `Error` schema; live HubSpot
  sends it (API-FACTS, HubSpot/hubspot-api-python#117) — every `_error_body` check.
- E6 SDK 12.0.0 `PipelineStageAuditsApi.get_audit(object_type, stage_id)` never fills the
  path's {pipelineId}; the stage audit is read over plain HTTP —
  test_stage_crud_and_metadata_strings.
- E7 owners: the SDK's path is `/crm/v3/owners/` (trailing slash), the docs' `/crm/v3/owners`;
  both are served — test_owners_are_listed_and_records_refer_to_them.
- E8 schemas: SDK 12 reads `/crm-object-schemas/v3/schemas`, the docs name `/crm/v3/schemas`;
  both are served — test_an_account_without_custom_objects_has_no_schemas.
- E9 search: a top-level `filters` list is in neither the spec nor the SDK's
  PublicObjectSearchRequest; live HubSpot applies it as one ANDed group (issue 8) — sent over
  plain HTTP in test_search_takes_top_level_filters_as_one_group.
- E10 merge: the spec answers the survivor; that a GET of the merged-away id answers the
  survivor is HubSpot's documented behaviour for contacts (knowledge base, "Merge records"),
  unconfirmed for companies and deals — test_merge_two_contacts.
- E11 v4 batch read: the spec caps nothing; the 1,000-input limit is the 2025-02 developer
  changelog — test_v4_batch_read_takes_1000_inputs_and_empty_types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicGdprDeleteInput,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals import SimplePublicObjectInput as DealUpdate
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hubspot.crm.pipelines import (
    PipelineInput,
    PipelinePatchInput,
    PipelineStageInput,
    PipelineStagePatchInput,
)

if TYPE_CHECKING:
    from collections.abc import Callable

BEARER = {"Authorization": "Bearer sandbox-token"}  # the account the `hs` fixture uses
DEFAULT_STAGE_IDS = [
    "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
    "contractsent", "closedwon", "closedlost",
]


def _stages(*labels: str) -> list[PipelineStageInput]:
    return [PipelineStageInput(label=label, display_order=i,
                               metadata={"probability": f"{min(i, 10) / 10:.1f}"})
            for i, label in enumerate(labels)]


def raised(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The SDK exception a call raises (each SDK package has its own ApiException class)."""
    with pytest.raises(Exception) as err:  # noqa: PT011 - the package's own ApiException
        call(*args, **kwargs)
    assert hasattr(err.value, "status"), err.value
    return err.value


def _error_body(exc: Any) -> dict[str, Any]:
    import json

    body: dict[str, Any] = json.loads(exc.body)
    assert body["status"] == "error"
    assert body["correlationId"]
    assert body["message"]
    return body


# --------------------------------------------------------------------------- pipelines
def test_fresh_account_has_the_default_deal_pipeline(hs: Any) -> None:
    pipelines = hs.crm.pipelines.pipelines_api.get_all("deals").results
    assert [p.id for p in pipelines] == ["default"]
    stages = pipelines[0].stages
    assert [s.id for s in stages] == DEFAULT_STAGE_IDS
    assert [s.metadata["probability"] for s in stages] == [
        "0.2", "0.4", "0.6", "0.8", "0.9", "1.0", "0.0"]
    assert [s.metadata.get("isClosed") for s in stages][-2:] == ["true", "true"]


def test_pipeline_crud_through_the_sdk(hs: Any) -> None:
    api = hs.crm.pipelines.pipelines_api
    created = api.create("deals", PipelineInput(
        label="New business", display_order=1,
        stages=_stages("Meeting booked", "Proposal sent", "Won")))
    assert created.id.isdigit()
    assert [s.label for s in created.stages] == ["Meeting booked", "Proposal sent", "Won"]
    assert all(s.metadata["probability"] in {"0.0", "0.1", "0.2"} for s in created.stages)
    assert api.get_by_id("deals", created.id).label == "New business"

    patched = api.update("deals", created.id, PipelinePatchInput(label="Renewals"))
    assert patched.label == "Renewals"
    assert patched.updated_at >= created.updated_at

    # PUT replaces the pipeline whole: "This will overwrite any existing pipeline stages" —
    # the inputs carry no id, so every stage is new and the old ones are gone.
    replaced = api.replace("deals", created.id, PipelineInput(
        label="Renewals", display_order=2, stages=_stages("Meeting booked", "Won")))
    assert [s.label for s in replaced.stages] == ["Meeting booked", "Won"]
    old_ids = {s.id for s in created.stages}
    assert not old_ids & {s.id for s in replaced.stages}
    stages_api = hs.crm.pipelines.pipeline_stages_api
    assert raised(stages_api.get_by_id, "deals", created.id, created.stages[0].id).status == 404

    audit = hs.crm.pipelines.pipeline_audits_api.get_audit("deals", created.id)
    assert [a.action for a in audit.results][:1] == ["UPDATE"]

    api.archive("deals", created.id)
    assert raised(api.get_by_id, "deals", created.id).status == 404
    assert [p.id for p in api.get_all("deals").results] == ["default"]


def test_pipelines_sort_by_display_order_then_label(hs: Any) -> None:
    api = hs.crm.pipelines.pipelines_api
    for label, order in (("Zeta", 1), ("Alpha", 1), ("First", 0)):
        api.create("deals", PipelineInput(label=label, display_order=order,
                                          stages=_stages("Open")))
    labels = [p.label for p in api.get_all("deals").results]
    assert labels == ["First", "Sales Pipeline", "Alpha", "Zeta"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"displayOrder": 0, "stages": [{"label": "A", "displayOrder": 0,
                                         "metadata": {"probability": "0.1"}}]}, "label"),
        ({"label": "P", "stages": [{"label": "A", "displayOrder": 0,
                                    "metadata": {"probability": "0.1"}}]}, "displayOrder"),
        ({"label": "P", "displayOrder": 0}, "stages"),
        ({"label": "P", "displayOrder": 0,
          "stages": [{"label": "A", "displayOrder": 0, "metadata": {}}]}, "probability"),
        ({"label": "P", "displayOrder": 0,
          "stages": [{"label": "A", "displayOrder": 0, "metadata": {"probability": "1.5"}}]},
         "between 0.0 and 1.0"),
        # "Possible values are between 0.0 and 1.0 in increments of 0.1."
        ({"label": "P", "displayOrder": 0,
          "stages": [{"label": "A", "displayOrder": 0, "metadata": {"probability": "0.25"}}]},
         "increments of 0.1"),
        ({"label": "P", "displayOrder": 0,
          "stages": [{"label": "A", "displayOrder": 0, "metadata": {"probability": "0.1"}},
                     {"label": "a", "displayOrder": 1, "metadata": {"probability": "0.2"}}]},
         "unique"),
    ],
)
def test_pipeline_create_validation(sandbox: str, body: dict[str, Any], fragment: str) -> None:
    response = requests.post(f"{sandbox}/crm/v3/pipelines/deals", json=body, timeout=10,
                             headers=BEARER)
    assert response.status_code == 400
    error = response.json()
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert fragment in error["message"]


def test_stage_crud_and_metadata_strings(hs: Any) -> None:
    api = hs.crm.pipelines.pipeline_stages_api
    stage = api.create("deals", "default", PipelineStageInput(
        label="Needs assessed", display_order=1, metadata={"probability": "0.3"}))
    assert stage.metadata == {"probability": "0.3"}
    assert api.get_by_id("deals", "default", stage.id).label == "Needs assessed"
    patched = api.update("deals", "default", stage.id, PipelineStagePatchInput(
        label="Needs assessed (call held)", metadata={"probability": "0.3", "isClosed": "false"}))
    assert patched.metadata["isClosed"] == "false"
    replaced = api.replace("deals", "default", stage.id, PipelineStageInput(
        label="Needs assessed", display_order=9, metadata={"probability": "0.5"}))
    assert replaced.display_order == 9
    labels = [s.label for s in api.get_all("deals", "default").results]
    assert labels[-1] == "Needs assessed"
    # Erratum (SDK 12.0.0): PipelineStageAuditsApi.get_audit(object_type, stage_id) never fills
    # the path's {pipelineId}; read the stage audit over plain HTTP instead.
    audit = requests.get(f"{hs.crm.pipelines.pipelines_api.api_client.configuration.host}"
                         f"/crm/v3/pipelines/deals/default/stages/{stage.id}/audit",
                         headers=BEARER, timeout=10).json()
    assert [a["action"] for a in audit["results"]] == ["UPDATE", "UPDATE", "CREATE"]
    duplicate = PipelineStageInput(label="closed WON", display_order=3,
                                   metadata={"probability": "1.0"})
    assert raised(api.create, "deals", "default", duplicate).status == 400
    api.archive("deals", "default", stage.id)
    assert raised(api.get_by_id, "deals", "default", stage.id).status == 404


def test_delete_flags_refuse_stages_and_pipelines_still_used(hs: Any, sandbox: str) -> None:
    deal = hs.crm.deals.basic_api.create(DealCreate(properties={
        "dealname": "Acme retainer", "pipeline": "default", "dealstage": "qualifiedtobuy"}))
    headers = BEARER
    base = f"{sandbox}/crm/v3/pipelines/deals/default"
    refused = requests.delete(f"{base}/stages/qualifiedtobuy",
                              params={"validateDealStageUsagesBeforeDelete": "true"},
                              headers=headers, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["context"]["dealIds"] == [deal.id]
    refused = requests.delete(base, params={"validateReferencesBeforeDelete": "true"},
                              headers=headers, timeout=10)
    assert refused.status_code == 400
    # a PUT that drops the used stage is refused the same way
    err = raised(hs.crm.pipelines.pipelines_api.replace, "deals", "default",
                 PipelineInput(label="Sales Pipeline", display_order=0, stages=_stages("Only")),
                 validate_deal_stage_usages_before_delete=True)
    assert err.status == 400
    # an unused stage goes; without the flag (default before 2026-09) a used one goes too
    ok = requests.delete(f"{base}/stages/contractsent",
                         params={"validateDealStageUsagesBeforeDelete": "true"},
                         headers=headers, timeout=10)
    assert ok.status_code == 204
    assert requests.delete(f"{base}/stages/qualifiedtobuy", headers=headers,
                           timeout=10).status_code == 204


# --------------------------------------------------------------------------- objects
def test_contact_lifecycle_and_modified_dates(hs: Any) -> None:
    api = hs.crm.contacts.basic_api
    created = api.create(SimplePublicObjectInputForCreate(properties={
        "email": "Anna.Mueller@example.com", "firstname": "Anna", "lastname": "Müller"}))
    props = created.properties
    assert props["hs_object_id"] == created.id
    assert props["createdate"].endswith("Z")
    assert props["lastmodifieddate"].endswith("Z")
    fetched = api.get_by_id(created.id, properties=["email", "jobtitle"])
    assert fetched.properties["jobtitle"] is None
    by_email = api.get_by_id("anna.mueller@example.com", id_property="email")
    assert by_email.id == created.id
    updated = api.update(created.id, SimplePublicObjectInput(properties={"jobtitle": "CEO"}))
    assert updated.properties["lastmodifieddate"] >= props["lastmodifieddate"]
    with pytest.raises(ApiException) as err:
        api.create(SimplePublicObjectInputForCreate(properties={
            "email": "ANNA.MUELLER@example.com"}))
    assert err.value.status == 409
    assert _error_body(err.value)["category"] == "CONFLICT"
    with pytest.raises(ApiException) as err:
        api.update(created.id, SimplePublicObjectInput(properties={"no_such_prop": "x"}))
    assert err.value.status == 400
    api.archive(created.id)
    with pytest.raises(ApiException) as err:
        api.get_by_id(created.id)
    assert err.value.status == 404
    assert api.get_by_id(created.id, archived=True).archived is True
    archived_page = api.get_page(archived=True)
    assert [r.id for r in archived_page.results] == [created.id]


def test_deals_companies_inline_associations(hs: Any) -> None:
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={
        "name": "Nord Logistics GmbH", "domain": "nord.example"}))
    deal = hs.crm.deals.basic_api.create(DealCreate(
        properties={"dealname": "Website relaunch", "amount": "12000", "dealstage":
                    "appointmentscheduled", "closedate": "2026-03-01"},
        associations=[{"to": {"id": company.id},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                  "associationTypeId": 5}]}]))
    assert deal.properties["pipeline"] == "default"
    assert deal.properties["closedate"] == "2026-03-01T00:00:00.000Z"
    page = hs.crm.deals.basic_api.get_page(associations=["companies"])
    links = page.results[0].associations["companies"].results
    assert {(a.id, a.type) for a in links} == {
        (company.id, "deal_to_company"), (company.id, "deal_to_company_unlabeled")}
    back = hs.crm.companies.basic_api.get_by_id(company.id, associations=["deals"])
    assert {a.type for a in back.associations["deals"].results} == {
        "company_to_deal", "company_to_deal_unlabeled"}
    bad = DealCreate(properties={"dealname": "x", "dealstage": "nonexistent"})
    assert raised(hs.crm.deals.basic_api.create, bad).status == 400


def test_batch_endpoints_and_207_partial_failure(hs: Any) -> None:
    batch = hs.crm.contacts.batch_api
    created = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": f"p{i}@example.com", "firstname": f"P{i}"}}
        for i in range(3)]))
    assert created.status == "COMPLETE"
    ids = sorted(r.id for r in created.results)

    read = batch.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": ids[0]}, {"id": "999999"}], properties=["email"],
        properties_with_history=[]))
    assert type(read).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert read.num_errors == 1
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context == {"ids": ["999999"]}
    assert [r.id for r in read.results] == [ids[0]]

    updated = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[1], "properties": {"jobtitle": "CFO"}},
        {"id": "888888", "properties": {"jobtitle": "CFO"}}]))
    assert updated.num_errors == 1
    assert [r.id for r in updated.results] == [ids[1]]

    upserted = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"idProperty": "email", "id": "P0@EXAMPLE.COM", "properties": {"lastname": "Zero"}},
        {"idProperty": "email", "id": "new@example.com", "properties": {"lastname": "New"}}]))
    assert sorted((r.new, r.properties.get("email")) for r in upserted.results) == [
        (False, "p0@example.com"), (True, "new@example.com")]

    batch.archive(BatchInputSimplePublicObjectId(inputs=[{"id": i} for i in ids]))
    assert len(hs.crm.contacts.basic_api.get_page().results) == 1


def test_batch_over_100_inputs_is_refused(hs: Any) -> None:
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"firstname": f"x{i}"}} for i in range(101)]))
    assert err.value.status == 400
    assert _error_body(err.value)["category"] == "VALIDATION_ERROR"
    assert hs.crm.contacts.basic_api.get_page().results == []  # nothing written


def test_gdpr_delete_removes_the_contact_for_good(hs: Any) -> None:
    contact = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "forget@example.com"}))
    hs.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=contact.id))
    with pytest.raises(ApiException):
        hs.crm.contacts.basic_api.get_by_id(contact.id, archived=True)
    # the address is free again
    hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "forget@example.com"}))


# --------------------------------------------------------------------------- search
def _search(hs: Any, **kwargs: Any) -> Any:
    return hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(**kwargs))


def test_search_operators(hs: Any, seed_sandbox: Callable[..., dict[str, Any]]) -> None:
    seed_sandbox(contacts=60, companies=5)
    everyone = _search(hs, limit=200, properties=["email", "firstname", "lastname"]).results
    assert len(everyone) == 60
    some = everyone[3]

    def count(*filters: dict[str, Any]) -> int:
        return int(_search(hs, filter_groups=[{"filters": list(filters)}]).total)

    with_email = sum(1 for r in everyone if r.properties.get("email"))
    assert count({"propertyName": "email", "operator": "HAS_PROPERTY"}) == with_email
    assert count({"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}) == 60 - with_email
    assert count({"propertyName": "firstname", "operator": "EQ",
                  "value": some.properties["firstname"].upper()}) == sum(
        1 for r in everyone if r.properties["firstname"] == some.properties["firstname"])
    assert count({"propertyName": "hs_object_id", "operator": "IN",
                  "values": [everyone[0].id, everyone[1].id]}) == 2
    assert count({"propertyName": "hs_object_id", "operator": "NOT_IN",
                  "values": [everyone[0].id]}) == 59
    assert count({"propertyName": "hs_object_id", "operator": "BETWEEN",
                  "value": everyone[0].id, "highValue": everyone[9].id}) == 10
    assert count({"propertyName": "hs_object_id", "operator": "GT",
                  "value": everyone[49].id}) == 10
    assert count({"propertyName": "hs_object_id", "operator": "LTE",
                  "value": everyone[4].id}) == 5
    assert count({"propertyName": "hs_object_id", "operator": "NEQ",
                  "value": everyone[0].id}) == 59
    last = some.properties["lastname"]
    assert count({"propertyName": "lastname", "operator": "CONTAINS_TOKEN",
                  "value": last}) >= 1
    assert count({"propertyName": "lastname", "operator": "NOT_CONTAINS_TOKEN",
                  "value": last}) == 60 - count({"propertyName": "lastname",
                                                 "operator": "CONTAINS_TOKEN", "value": last})


def test_search_incremental_by_modified_date_sorted(hs: Any,
                                                    seed_sandbox: Callable[..., Any]) -> None:
    seed_sandbox(companies=30)
    everyone = hs.crm.companies.search_api.do_search({"limit": 200}).results
    dates = sorted(r.properties["hs_lastmodifieddate"] for r in everyone)
    cutoff = dates[10]
    # epoch-millisecond values are what incremental syncs send
    from datetime import datetime

    cutoff_ms = int(datetime.fromisoformat(cutoff.replace("Z", "+00:00")).timestamp() * 1000)
    result = hs.crm.companies.search_api.do_search({
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                       "value": str(cutoff_ms)}]}],
        # erratum: the spec types sorts as strings; HubSpot and real clients use objects
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["hs_lastmodifieddate"], "limit": 100})
    got = [r.properties["hs_lastmodifieddate"] for r in result.results]
    assert got == sorted(got)
    assert result.total == sum(1 for d in dates if d >= cutoff)
    as_string = hs.crm.companies.search_api.do_search({"sorts": ["-hs_lastmodifieddate"],
                                                       "limit": 1})
    assert as_string.results[0].properties["hs_lastmodifieddate"] == dates[-1]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"limit": 201}, "limit"),
        ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}
                           for _ in range(6)]}, "filter groups"),
        ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}
                                        for _ in range(11)]}]}, "filters in a group"),
        ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}
                                        for _ in range(9)]} for _ in range(3)]}, "Too many"),
        ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE",
                                         "value": "x"}]}]}, "operator"),
    ],
)
def test_search_limits_are_enforced(hs: Any, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.search_api.do_search(body)
    assert err.value.status == 400
    assert fragment in _error_body(err.value)["message"]


# --------------------------------------------------------------------------- associations v4
def test_associations_v4_batch_endpoints(hs: Any) -> None:
    contacts = hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": {"email": f"c{i}@example.com"}} for i in range(2)])).results
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme"}))
    c0, c1 = sorted(c.id for c in contacts)
    v4 = hs.crm.associations.v4.batch_api

    created = v4.create("contacts", "companies", BatchInputPublicAssociationMultiPost(inputs=[
        {"from": {"id": c0}, "to": {"id": company.id},
         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]))
    assert created.results[0].labels == ["Primary"]
    default = v4.create_default("contacts", "companies",
                                BatchInputPublicDefaultAssociationMultiPost(inputs=[
                                    {"from": {"id": c1}, "to": {"id": company.id}}]))
    assert default.results[0].association_spec.association_type_id == 279

    read = v4.get_page("companies", "contacts", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": company.id}]))
    to = {str(t.to_object_id): sorted(a.type_id for a in t.association_types)
          for t in read.results[0].to}
    assert to == {c0: [2, 280], c1: [280]}  # both directions kept consistent

    missing = v4.get_page("contacts", "companies", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": c0}, {"id": "424242"}]))
    assert missing.num_errors == 1
    assert [r._from.id for r in missing.results] == [c0]

    v4.archive("contacts", "companies", BatchInputPublicAssociationMultiArchive(inputs=[
        {"from": {"id": c0}, "to": [{"id": company.id}]}]))
    after = v4.get_page("companies", "contacts", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": company.id}]))
    assert [str(t.to_object_id) for t in after.results[0].to] == [c1]
    listed = hs.crm.associations.v4.basic_api.get_page("contacts", c1, "companies")
    assert [str(r.to_object_id) for r in listed.results] == [company.id]


def test_invalid_association_type_is_refused(hs: Any) -> None:
    contact = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={}))
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme"}))
    wrong_type = BatchInputPublicAssociationMultiPost(inputs=[
        {"from": {"id": contact.id}, "to": {"id": company.id},
         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}])
    err = raised(hs.crm.associations.v4.batch_api.create, "contacts", "companies", wrong_type)
    assert err.status == 400


# --------------------------------------------------------------------------- pipeline specifics
def test_default_pipeline_and_its_stages_have_created_at_zero(hs: Any) -> None:
    # Pipeline.createdAt: "The default pipelines will have createdAt = 0." (stages likewise)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    default = hs.crm.pipelines.pipelines_api.get_by_id("deals", "default")
    assert default.created_at == epoch
    assert {s.created_at for s in default.stages} == {epoch}
    assert default.updated_at > epoch


def test_patch_archived_only_restores_an_archived_pipeline(hs: Any) -> None:
    api = hs.crm.pipelines.pipelines_api
    created = api.create("deals", PipelineInput(label="Renewals", display_order=1,
                                                stages=_stages("Open")))
    # PipelinePatchInput.archived: "should only be provided when restoring an archived
    # pipeline. If it's provided in any other call, the request will fail" with a 400.
    for archived in (True, False):
        err = raised(api.update, "deals", created.id, PipelinePatchInput(archived=archived))
        assert err.status == 400
        assert _error_body(err)["category"] == "VALIDATION_ERROR"
    assert api.get_by_id("deals", created.id).archived is False
    api.archive("deals", created.id)
    restored = api.update("deals", created.id, PipelinePatchInput(archived=False))
    assert restored.archived is False
    assert restored.archived_at is None
    assert created.id in {p.id for p in api.get_all("deals").results}


def test_the_last_pipeline_cannot_be_deleted(hs: Any) -> None:
    # "Each pipeline always has at least one stage, and each account has at least one
    # pipeline." (pipelines overview)
    api = hs.crm.pipelines.pipelines_api
    assert raised(api.archive, "deals", "default").status == 400
    other = api.create("deals", PipelineInput(label="Renewals", display_order=1,
                                              stages=_stages("Open")))
    api.archive("deals", "default")
    assert [p.id for p in api.get_all("deals").results] == [other.id]


# --------------------------------------------------------------------------- object specifics
def test_create_answers_201_with_the_object(hs: Any) -> None:
    # Erratum E3: 201 + SimplePublicObject (SDK 12, live), not the current spec's 200 wrapper.
    _, status, _ = hs.crm.contacts.basic_api.create_with_http_info(
        SimplePublicObjectInputForCreate(properties={"email": "e3@example.com"}))
    assert status == 201
    _, status, _ = hs.crm.contacts.batch_api.create_with_http_info(
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            {"properties": {"email": "e3b@example.com"}}]))
    assert status == 201


def test_read_only_properties_are_refused(hs: Any) -> None:
    # "Read-only and non-existent properties will result in an error." (update, batch update)
    api = hs.crm.contacts.basic_api
    err = raised(api.create, SimplePublicObjectInputForCreate(properties={
        "email": "ro@example.com", "hs_object_id": "5"}))
    assert err.status == 400
    body = _error_body(err)
    assert "READ_ONLY_VALUE" in body["message"]
    assert body["errors"][0]["code"] == "READ_ONLY_VALUE"
    contact = api.create(SimplePublicObjectInputForCreate(properties={"email": "ro@example.com"}))
    err = raised(hs.crm.contacts.batch_api.update, BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": contact.id, "properties": {"lastmodifieddate": "2020-01-01T00:00:00Z"}}]))
    assert err.status == 400
    deal = hs.crm.deals.basic_api.create(DealCreate(properties={"dealname": "x"}))
    err = raised(hs.crm.deals.basic_api.update, deal.id, DealUpdate(properties={
        "hs_lastmodifieddate": "2020-01-01T00:00:00Z"}))
    assert err.status == 400


def test_unknown_requested_properties_are_ignored(hs: Any) -> None:
    # `properties` / `propertiesWithHistory`: "If any of the specified properties are not
    # present on the requested object(s), they will be ignored."
    api = hs.crm.contacts.basic_api
    contact = api.create(SimplePublicObjectInputForCreate(properties={
        "email": "ign@example.com", "jobtitle": "CEO"}))
    fetched = api.get_by_id(contact.id, properties=["email", "no_such_prop"],
                            properties_with_history=["jobtitle", "no_such_prop"])
    assert "no_such_prop" not in fetched.properties
    assert set(fetched.properties_with_history) == {"jobtitle"}
    assert fetched.properties_with_history["jobtitle"][0].value == "CEO"
    found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
        properties=["email", "no_such_prop"]))
    assert "no_such_prop" not in found.results[0].properties


def test_write_responses_show_the_written_properties(hs: Any) -> None:
    api = hs.crm.contacts.basic_api
    created = api.create(SimplePublicObjectInputForCreate(properties={
        "email": "w@example.com", "jobtitle": "CEO"}))
    assert created.properties["jobtitle"] == "CEO"
    updated = api.update(created.id, SimplePublicObjectInput(properties={"city": "Graz"}))
    assert updated.properties["city"] == "Graz"
    assert updated.properties["email"] == "w@example.com"  # defaults still shown


def test_gdpr_delete_of_an_unknown_email_blocklists_it(hs: Any) -> None:
    # "If email address is not found, the email address will be added to a blocklist and
    # prevent it from being used in the future." → 204, not 404.
    api = hs.crm.contacts.basic_api
    api.purge(PublicGdprDeleteInput(object_id="Never.Seen@example.com", id_property="email"))
    err = raised(api.create, SimplePublicObjectInputForCreate(properties={
        "email": "never.seen@example.com"}))
    assert err.status == 400
    assert _error_body(err)["category"] == "VALIDATION_ERROR"
    # an unknown id (not an email) is still a 404
    assert raised(api.purge, PublicGdprDeleteInput(object_id="424242")).status == 404


# --------------------------------------------------------------------------- search specifics
def test_search_query_covers_the_default_searchable_properties(hs: Any) -> None:
    hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={
        "email": "q@example.com", "mobilephone": "+43 660 1234567"}))
    found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(query="660"))
    assert found.total == 1
    hs.crm.deals.basic_api.create(DealCreate(properties={
        "dealname": "Relaunch", "description": "Website rebuild for Nordwind"}))
    deals = hs.crm.deals.search_api.do_search({"query": "nordwind"})
    assert deals.total == 1
    err = raised(hs.crm.contacts.search_api.do_search,
                 PublicObjectSearchRequest(query="x" * 3001))  # "up to 3000 characters"
    assert err.status == 400


# --------------------------------------------------------------------------- associations v4
def test_v4_object_ids_are_integers_on_the_wire(hs: Any, sandbox: str) -> None:
    # Erratum E4: the spec types these ids as strings; live HubSpot sends integers.
    contact = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={}))
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme"}))
    created = requests.post(
        f"{sandbox}/crm/v4/associations/contacts/companies/batch/create", headers=BEARER,
        timeout=10, json={"inputs": [{"from": {"id": contact.id}, "to": {"id": company.id},
                                      "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                 "associationTypeId": 279}]}]})
    assert created.status_code == 201
    pair = created.json()["results"][0]
    assert (pair["fromObjectId"], pair["toObjectId"]) == (int(contact.id), int(company.id))
    read = requests.post(f"{sandbox}/crm/v4/associations/contacts/companies/batch/read",
                         headers=BEARER, timeout=10, json={"inputs": [{"id": contact.id}]})
    assert read.json()["results"][0]["to"][0]["toObjectId"] == int(company.id)


# --------------------------------------------------------------------------- properties
def _prop_api(hs: Any) -> Any:
    return hs.crm.properties.core_api


def test_standard_properties_are_listed_with_type_and_options(hs: Any) -> None:
    listed = {p.name: p for p in _prop_api(hs).get_all("contacts").results}
    assert listed["email"].type == "string"
    assert listed["createdate"].type == "datetime"
    assert listed["lifecyclestage"].type == "enumeration"
    assert "customer" in [o.value for o in listed["lifecyclestage"].options]
    assert listed["hs_object_id"].modification_metadata.read_only_value is True
    deal = _prop_api(hs).get_by_name("deals", "amount")
    assert (deal.type, deal.field_type) == ("number", "number")


def test_custom_property_crud_and_values_checked_by_type(hs: Any) -> None:
    from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyUpdate

    api = _prop_api(hs)
    created = api.create("contacts", PropertyCreate(
        name="customer_tier", label="Customer tier", type="enumeration", field_type="select",
        group_name="contactinformation",
        options=[OptionInput(label="Gold", value="gold", display_order=0, hidden=False),
                 OptionInput(label="Silver", value="silver", display_order=1, hidden=False)]))
    assert (created.name, created.type, created.hubspot_defined) == (
        "customer_tier", "enumeration", False)
    for name, kind, field in (("seats", "number", "number"), ("renewal", "date", "date"),
                              ("vip", "bool", "booleancheckbox")):
        api.create("contacts", PropertyCreate(name=name, label=name, type=kind,
                                              field_type=field, group_name="contactinformation"))
    assert raised(api.create, "contacts", PropertyCreate(
        name="seats", label="again", type="number", field_type="number",
        group_name="contactinformation")).status == 409

    contacts = hs.crm.contacts.basic_api
    ok = contacts.create(SimplePublicObjectInputForCreate(properties={
        "email": "tier@example.com", "customer_tier": "gold", "seats": "12",
        "renewal": "2026-03-01", "vip": True}))
    assert ok.properties["customer_tier"] == "gold"
    assert ok.properties["renewal"] == "2026-03-01"
    assert ok.properties["vip"] == "true"
    for bad, code in (({"customer_tier": "platinum"}, "INVALID_OPTION"),
                      ({"seats": "many"}, "INVALID_DECIMAL"),
                      ({"renewal": "2026-03-01T10:00:00Z"}, "INVALID_DATE"),
                      ({"vip": "maybe"}, "INVALID_BOOLEAN")):
        exc = raised(contacts.update, ok.id, SimplePublicObjectInput(properties=bad))
        body = _error_body(exc)
        assert exc.status == 400
        assert body["category"] == "VALIDATION_ERROR"
        assert [e["code"] for e in body["errors"]] == [code]

    found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "customer_tier", "operator": "EQ",
                                     "value": "gold"}]}], properties=["customer_tier"]))
    assert [r.id for r in found.results] == [ok.id]
    found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "seats", "operator": "GT", "value": "9"}]}]))
    assert found.total == 1  # compared as a number: "12" > "9"

    updated = api.update("contacts", "customer_tier", PropertyUpdate(
        label="Tier", options=[OptionInput(label="Gold", value="gold", display_order=0,
                                           hidden=False),
                               OptionInput(label="Platinum", value="platinum",
                                           display_order=1, hidden=False)]))
    assert [o.value for o in updated.options] == ["gold", "platinum"]
    contacts.update(ok.id, SimplePublicObjectInput(properties={"customer_tier": "platinum"}))

    api.archive("contacts", "seats")
    assert raised(api.get_by_name, "contacts", "seats").status == 404
    assert api.get_by_name("contacts", "seats", archived=True).archived is True
    exc = raised(contacts.update, ok.id, SimplePublicObjectInput(properties={"seats": "1"}))
    assert [e["code"] for e in _error_body(exc)["errors"]] == ["PROPERTY_DOESNT_EXIST"]
    assert raised(api.archive, "contacts", "email").status == 400  # HubSpot-defined


def test_property_groups_crud(hs: Any) -> None:
    from hubspot.crm.properties import PropertyGroupCreate, PropertyGroupUpdate

    api = hs.crm.properties.groups_api
    assert [g.name for g in api.get_all("deals").results] == ["dealinformation"]
    created = api.create("deals", PropertyGroupCreate(name="sync_fields", label="Sync",
                                                      display_order=2))
    assert (created.name, created.archived) == ("sync_fields", False)
    assert api.get_by_name("deals", "sync_fields").label == "Sync"
    assert api.update("deals", "sync_fields", PropertyGroupUpdate(label="Synced")).label == (
        "Synced")
    api.archive("deals", "sync_fields")
    assert raised(api.get_by_name, "deals", "sync_fields").status == 404


def test_legacy_v2_properties_read(hs: Any, sandbox: str) -> None:
    response = requests.get(f"{sandbox}/properties/v2/contacts/properties", headers=BEARER,
                            timeout=10)
    assert response.status_code == 200
    by_name = {p["name"]: p for p in response.json()}
    assert by_name["email"]["type"] == "string"
    assert by_name["hs_object_id"]["readOnlyValue"] is True
    assert isinstance(by_name["createdate"]["createdAt"], int)  # v2 times are epoch ms


def test_an_account_without_custom_objects_has_no_schemas(hs: Any, sandbox: str) -> None:
    assert hs.crm.schemas.core_api.get_all().results == []
    response = requests.get(f"{sandbox}/crm/v3/schemas", headers=BEARER, timeout=10)
    assert response.json() == {"results": []}


def test_owners_are_listed_and_records_refer_to_them(hs: Any) -> None:
    api = hs.crm.owners.owners_api
    owners = api.get_page(limit=2)
    assert len(owners.results) == 2
    assert owners.paging.next.after
    rest = api.get_page(after=owners.paging.next.after)
    ids = [o.id for o in owners.results + rest.results]
    assert len(ids) == 3
    assert api.get_by_id(int(ids[0])).email == owners.results[0].email
    assert [o.id for o in api.get_page(email=rest.results[0].email).results] == [
        rest.results[0].id]
    contacts = hs.crm.contacts.basic_api
    owned = contacts.create(SimplePublicObjectInputForCreate(properties={
        "email": "owned@example.com", "hubspot_owner_id": ids[1]}))
    assert contacts.get_by_id(owned.id, properties=["hubspot_owner_id"]).properties[
        "hubspot_owner_id"] == ids[1]
    assert raised(contacts.update, owned.id, SimplePublicObjectInput(
        properties={"hubspot_owner_id": "123"})).status == 400


# --------------------------------------------------------------------------- merge
def test_merge_two_contacts(hs: Any) -> None:
    from hubspot.crm.contacts import PublicMergeInput

    contacts = hs.crm.contacts.basic_api
    primary = contacts.create(SimplePublicObjectInputForCreate(properties={
        "email": "keep@example.com", "firstname": "Keep"}))
    other = contacts.create(SimplePublicObjectInputForCreate(properties={
        "email": "gone@example.com", "jobtitle": "CTO"}))
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme"}))
    hs.crm.associations.v4.basic_api.create_default("contacts", other.id, "companies",
                                                    company.id)

    merged = contacts.merge(PublicMergeInput(primary_object_id=primary.id,
                                             object_id_to_merge=other.id))
    assert merged.id == primary.id
    survivor = contacts.get_by_id(primary.id, properties=[
        "hs_merged_object_ids", "jobtitle", "email", "hs_additional_emails"],
        associations=["companies"])
    assert survivor.properties["hs_merged_object_ids"] == other.id
    assert survivor.properties["jobtitle"] == "CTO"  # empty on the primary: filled
    assert survivor.properties["email"] == "keep@example.com"
    assert survivor.properties["hs_additional_emails"] == "gone@example.com"
    assert survivor.properties["lastmodifieddate"] > primary.properties["lastmodifieddate"]
    assert [a.id for a in survivor.associations["companies"].results] == [company.id]

    # The merged-away id is gone from lists; a GET of it answers the survivor.
    assert other.id not in [c.id for c in contacts.get_page(limit=100).results]
    assert contacts.get_by_id(other.id).id == primary.id
    assert other.id not in [c.id for c in contacts.get_page(archived=True).results]
    links = hs.crm.associations.v4.basic_api.get_page("companies", company.id, "contacts")
    assert [str(r.to_object_id) for r in links.results] == [primary.id]


def test_merge_companies_and_deals(hs: Any) -> None:
    from hubspot.crm.companies import PublicMergeInput as CompanyMerge
    from hubspot.crm.deals import PublicMergeInput as DealMerge

    companies = hs.crm.companies.basic_api
    a = companies.create(CompanyCreate(properties={"name": "A"}))
    b = companies.create(CompanyCreate(properties={"name": "B", "domain": "b.example"}))
    merged = companies.merge(CompanyMerge(primary_object_id=a.id, object_id_to_merge=b.id))
    assert merged.properties["hs_merged_object_ids"] == b.id
    deals = hs.crm.deals.basic_api
    d1 = deals.create(DealCreate(properties={"dealname": "one"}))
    d2 = deals.create(DealCreate(properties={"dealname": "two"}))
    d3 = deals.create(DealCreate(properties={"dealname": "three"}))
    deals.merge(DealMerge(primary_object_id=d2.id, object_id_to_merge=d3.id))
    deals.merge(DealMerge(primary_object_id=d1.id, object_id_to_merge=d2.id))
    survivor = deals.get_by_id(d1.id, properties=["hs_merged_object_ids"])
    assert survivor.properties["hs_merged_object_ids"].split(";") == [d2.id, d3.id]
    assert deals.get_by_id(d3.id).id == d1.id  # redirects follow the chain
    assert raised(deals.merge, DealMerge(primary_object_id=d1.id,
                                         object_id_to_merge="999999")).status == 404


# --------------------------------------------------------------------------- live validation
def test_invalid_email_is_refused_alone(hs: Any) -> None:
    contacts = hs.crm.contacts.basic_api
    exc = raised(contacts.create, SimplePublicObjectInputForCreate(
        properties={"email": "not-an-email"}))
    body = _error_body(exc)
    assert exc.status == 400
    assert [e["code"] for e in body["errors"]] == ["INVALID_EMAIL"]
    assert body["category"] == "VALIDATION_ERROR"

    batch = hs.crm.contacts.batch_api
    response = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectInputForCreate(properties={"email": "ok1@example.com"}),
        SimplePublicObjectInputForCreate(properties={"email": "broken@"}),
        SimplePublicObjectInputForCreate(properties={"email": "ok2@example.com"})]))
    assert sorted(r.properties["email"] for r in response.results) == [
        "ok1@example.com", "ok2@example.com"]
    assert response.num_errors == 1
    assert response.errors[0].errors[0].code == "INVALID_EMAIL"

    ids = [r.id for r in response.results]
    updated = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"email": "bad address@x"}},
        {"id": ids[1], "properties": {"firstname": "Fine"}}]))
    assert [r.id for r in updated.results] == [ids[1]]
    assert updated.num_errors == 1
    upserted = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"idProperty": "email", "id": "nope", "properties": {}},
        {"idProperty": "email", "id": "new@example.com", "properties": {"firstname": "N"}}]))
    assert [r.properties["email"] for r in upserted.results] == ["new@example.com"]
    assert upserted.num_errors == 1


def test_empty_create_body_and_errors_are_shaped_as_hubspot(hs: Any, sandbox: str) -> None:
    response = requests.post(f"{sandbox}/crm/v3/objects/contacts", json={}, headers=BEARER,
                             timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert {"status", "message", "correlationId", "category", "errors", "context"} <= set(body)
    missing = requests.get(f"{sandbox}/crm/v3/objects/deals/424242", headers=BEARER, timeout=10)
    assert missing.status_code == 404
    assert {"category", "errors", "context"} <= set(missing.json())
    unknown = requests.patch(f"{sandbox}/crm/v3/objects/contacts/1", json={"properties": {
        "nope": "x"}}, headers=BEARER, timeout=10)
    assert unknown.status_code in (400, 404)
    assert isinstance(unknown.json()["errors"], list)


def test_search_takes_top_level_filters_as_one_group(hs: Any, sandbox: str) -> None:
    contacts = hs.crm.contacts.basic_api
    for first, last in (("Anna", "Weber"), ("Anna", "Kim"), ("Ben", "Weber")):
        contacts.create(SimplePublicObjectInputForCreate(properties={
            "firstname": first, "lastname": last}))
    # The SDK's PublicObjectSearchRequest has no top-level `filters`: sent over plain HTTP.
    body = {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Anna"},
                        {"propertyName": "lastname", "operator": "EQ", "value": "Weber"}],
            "properties": ["firstname", "lastname"]}
    found = requests.post(f"{sandbox}/crm/v3/objects/contacts/search", json=body,
                          headers=BEARER, timeout=10).json()
    assert found["total"] == 1
    assert found["results"][0]["properties"]["lastname"] == "Weber"


def test_v4_batch_read_takes_1000_inputs_and_empty_types(hs: Any) -> None:
    api = hs.crm.associations.v4.batch_api
    contact = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "many@example.com"}))
    no_deals = api.get_page("contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": contact.id}]))
    assert no_deals.results == []
    assert not hasattr(no_deals, "errors")  # a 200, not a 207 with per-input errors
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "X"}))
    hs.crm.associations.v4.basic_api.create_default("contacts", contact.id, "companies",
                                                    company.id)
    inputs = [{"id": contact.id}] + [{"id": str(10_000_000 + i)} for i in range(999)]
    read = api.get_page("contacts", "companies",
                        BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs))
    assert [r._from.id for r in read.results] == [contact.id]
    empty = api.get_page("contacts", "tickets", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": contact.id}]))
    assert empty.results == []
    too_many = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": "1"}] * 1001)
    assert raised(api.get_page, "contacts", "companies", too_many).status == 400


def test_archived_listing_carries_archived_at(hs: Any) -> None:
    contacts = hs.crm.contacts.basic_api
    gone = contacts.create(SimplePublicObjectInputForCreate(properties={"firstname": "Gone"}))
    contacts.archive(gone.id)
    page = contacts.get_page(archived=True)
    assert [r.id for r in page.results] == [gone.id]
    assert page.results[0].archived is True
    assert page.results[0].archived_at is not None


def test_deals_carry_calculated_stage_properties(hs: Any) -> None:
    deals = hs.crm.deals.basic_api
    deal = deals.create(DealCreate(properties={"dealname": "Stages",
                                               "dealstage": "appointmentscheduled"}))
    assert deals.get_by_id(deal.id, properties=["hs_is_closed"]).properties[
        "hs_is_closed"] == "false"
    won = deals.update(deal.id, DealUpdate(properties={"dealstage": "closedwon"}))
    assert (won.properties["hs_is_closed"], won.properties["hs_is_closed_won"]) == (
        "true", "true")
    read = deals.get_by_id(deal.id, properties=[
        "hs_date_entered_appointmentscheduled", "hs_date_exited_appointmentscheduled",
        "hs_date_entered_closedwon"])
    assert read.properties["hs_date_entered_closedwon"] == read.properties[
        "hs_date_exited_appointmentscheduled"]
    assert read.properties["hs_date_entered_appointmentscheduled"] <= read.properties[
        "hs_date_entered_closedwon"]
    definition = hs.crm.properties.core_api.get_by_name("deals", "hs_date_entered_closedwon")
    assert (definition.type, definition.calculated) == ("datetime", True)
    exc = raised(deals.update, deal.id, DealUpdate(properties={"hs_is_closed_won": "false"}))
    assert [e["code"] for e in _error_body(exc)["errors"]] == ["READ_ONLY_VALUE"]
    exc = raised(deals.update, deal.id, DealUpdate(
        properties={"hs_date_entered_closedwon": "2026-01-01T00:00:00Z"}))
    assert [e["code"] for e in _error_body(exc)["errors"]] == ["READ_ONLY_VALUE"]
    found = hs.crm.deals.search_api.do_search(PublicObjectSearchRequest(filter_groups=[{
        "filters": [{"propertyName": "hs_date_entered_closedwon", "operator": "GT",
                     "value": "2000-01-01T00:00:00Z"}]}]))
    assert [r.id for r in found.results] == [deal.id]
