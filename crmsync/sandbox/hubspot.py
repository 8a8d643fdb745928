"""The HubSpot emulator: CRM pipelines v3, objects v3 (contacts, companies, deals),
associations v4, GDPR delete — as HubSpot's public specs and `hubspot-api-client` 12 describe.

Sources: HubSpot/HubSpot-public-api-spec-collection (CRM Pipelines v3, Contacts/Companies/
Deals v3, Associations v4) and the SDK's models, whose required fields every response fills.
Decisions where no published source settles the behaviour are marked "unconfirmed" below.

State lives in plain dicts; handlers run under the sandbox's lock, so none is taken here.
Timestamps come from the injected clock, in milliseconds, and never go backwards: each write
gets ``max(clock, previous write)`` so ``lastmodifieddate`` is non-decreasing across writes.
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_left, insort
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from crmsync.sandbox import synthetic
from crmsync.sandbox.clock import Clock, system_clock
from crmsync.sandbox.http import Handler, Request, Response, Router, bearer_token
from crmsync.sandbox.hubspot_search import (
    PropertyKinds,
    SearchError,
    compile_filter_groups,
    parse_instant,
    parse_sorts,
    query_predicate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    _Method = Callable[["HubSpotEmulator", Request], Response]

PORTAL_ID = 20_000_001
LIST_LIMIT_MAX = 100  # objects list `limit` (spec: "maximum number of results per page")
BATCH_MAX = 100  # batch inputs (HubSpot docs "limited to 100 records"; not in the spec)
SEARCH_LIMIT_MAX = 200  # raised from 100 (HubSpot changelog, September 2024)
SEARCH_RESULTS_CAP = 10_000  # "paging beyond 10,000 results returns a 400" (search guide)
ASSOCIATIONS_PAGE = 500  # v4 associations per page (spec: list limit max 500)
MAX_STAGES = 100  # per deal pipeline (HubSpot pipelines guide)

# --- object types ---------------------------------------------------------------------
OBJECT_TYPES = ("contacts", "companies", "deals")
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
_TYPE_ALIASES = {
    **{t: t for t in OBJECT_TYPES},
    "contact": "contacts", "company": "companies", "deal": "deals",
    "0-1": "contacts", "0-2": "companies", "0-3": "deals",
}
_SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}

# Properties each type knows. Writing any other name is refused like HubSpot does
# (PROPERTY_DOESNT_EXIST); the read-only ones are maintained here and ignored on write.
_MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
             "deals": "hs_lastmodifieddate"}
_READ_ONLY = {"hs_object_id", "lastmodifieddate", "hs_lastmodifieddate"}
_PROPERTIES: dict[str, frozenset[str]] = {
    "contacts": frozenset({
        "email", "firstname", "lastname", "phone", "mobilephone", "jobtitle", "company",
        "website", "address", "city", "state", "zip", "country", "lifecyclestage",
        "hs_lead_status", "hs_legal_basis", "hubspot_owner_id", "hs_marketable_status",
        "hs_email_optout", "industry", "createdate", "lastmodifieddate", "hs_object_id",
        "hs_additional_emails", "salutation", "message", "notes_last_updated",
    }),
    "companies": frozenset({
        "name", "domain", "industry", "city", "state", "country", "zip", "address", "phone",
        "website", "description", "numberofemployees", "annualrevenue", "lifecyclestage",
        "hubspot_owner_id", "type", "createdate", "hs_lastmodifieddate", "hs_object_id",
        "notes_last_updated",
    }),
    "deals": frozenset({
        "dealname", "amount", "dealstage", "pipeline", "closedate", "dealtype", "description",
        "hubspot_owner_id", "hs_priority", "deal_currency_code", "createdate",
        "hs_lastmodifieddate", "hs_object_id", "closed_lost_reason", "closed_won_reason",
        "hs_deal_stage_probability", "notes_last_updated",
    }),
}
# What a record shows when the request names no `properties` (as HubSpot's defaults).
_DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
# Shown whatever `properties` asks for (HubSpot always adds these three).
_ALWAYS = {t: ("createdate", "hs_object_id", _MODIFIED[t]) for t in OBJECT_TYPES}
# What a search `query` looks in: the default searchable properties of the search guide
# (those of them this emulator knows; contacts also search fax and hs_marketable_until_renewal).
_SEARCHABLE = {
    "contacts": ("firstname", "lastname", "email", "phone", "hs_additional_emails",
                 "mobilephone", "company"),
    "companies": ("website", "phone", "name", "domain"),
    "deals": ("dealname", "pipeline", "dealstage", "description", "dealtype"),
}
SEARCH_QUERY_MAX = 3000  # spec: "The search query string, up to 3000 characters."
_DATETIMES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate",
                        "notes_last_updated"})
_NUMBERS = frozenset({"amount", "hs_object_id", "numberofemployees", "annualrevenue",
                      "hs_deal_stage_probability", "hubspot_owner_id"})
KINDS = PropertyKinds(datetimes=_DATETIMES, numbers=_NUMBERS)
# Properties whose values are unique per type, usable as `idProperty`.
_UNIQUE = {"contacts": ("email", "hs_object_id"), "companies": ("hs_object_id",),
           "deals": ("hs_object_id",)}

# --- associations (HubSpot-defined type ids, developers.hubspot.com associations v4) -----
# type id -> (from type, to type, v4 label, v3 type name)
ASSOCIATION_TYPES: dict[int, tuple[str, str, str | None, str]] = {
    1: ("contacts", "companies", "Primary", "contact_to_company"),
    279: ("contacts", "companies", None, "contact_to_company_unlabeled"),
    2: ("companies", "contacts", "Primary", "company_to_contact"),
    280: ("companies", "contacts", None, "company_to_contact_unlabeled"),
    5: ("deals", "companies", "Primary", "deal_to_company"),
    341: ("deals", "companies", None, "deal_to_company_unlabeled"),
    6: ("companies", "deals", "Primary", "company_to_deal"),
    342: ("companies", "deals", None, "company_to_deal_unlabeled"),
    3: ("deals", "contacts", None, "deal_to_contact"),
    4: ("contacts", "deals", None, "contact_to_deal"),
}
INVERSE_TYPE = {1: 2, 2: 1, 279: 280, 280: 279, 5: 6, 6: 5, 341: 342, 342: 341, 3: 4, 4: 3}
# A primary association always comes with the unlabeled one (v4 reads list both).
_PRIMARY_IMPLIES = {1: 279, 2: 280, 5: 341, 6: 342}
# "Default" associations are the unlabeled HubSpot-defined type of the pair.
DEFAULT_TYPE = {("contacts", "companies"): 279, ("companies", "contacts"): 280,
                ("deals", "companies"): 341, ("companies", "deals"): 342,
                ("deals", "contacts"): 3, ("contacts", "deals"): 4}

DEFAULT_PIPELINE_ID = "default"
DEFAULT_STAGES = (
    ("appointmentscheduled", "Appointment scheduled", "0.2"),
    ("qualifiedtobuy", "Qualified to buy", "0.4"),
    ("presentationscheduled", "Presentation scheduled", "0.6"),
    ("decisionmakerboughtin", "Decision maker bought-in", "0.8"),
    ("contractsent", "Contract sent", "0.9"),
    ("closedwon", "Closed won", "1.0"),
    ("closedlost", "Closed lost", "0.0"),
)


@lru_cache(maxsize=65_536)  # the same instants render again and again (pages, pipelines)
def iso(ms: int) -> str:
    """HubSpot's timestamp format: ISO-8601, milliseconds, 'Z'."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


class HubSpotError(Exception):
    """Raised inside handlers; becomes HubSpot's error body."""

    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR",
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra


def _object_not_found() -> HubSpotError:
    return HubSpotError(404, "Object not found.  objectId are usually numeric.",
                        category="OBJECT_NOT_FOUND")


def _batch_error(message: str, context: dict[str, list[str]], **extra: str) -> dict[str, Any]:
    """One entry of a batch response's `errors` (an input that names no usable object)."""
    return {"status": "error", "category": "OBJECT_NOT_FOUND", **extra, "message": message,
            "context": context, "links": {}, "errors": []}


def _unassociable(pair: str) -> dict[str, Any]:
    return _batch_error(f"Could not associate {pair}: object not found", {"ids": [pair]})


def _association_to(to_id: int, type_ids: Iterable[int]) -> dict[str, Any]:
    """A v4 read's associated record with its association types."""
    return {"toObjectId": to_id, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOCIATION_TYPES[t][2]}
        for t in sorted(type_ids)]}


def _targets_page(targets: list[tuple[int, set[int]]], after: Any,
                  limit: int) -> tuple[list[tuple[int, set[int]]], str | None]:
    """The page of `targets` (sorted by id) from id `after` on, and the next page's `after`."""
    start = bisect_left([to_id for to_id, _ in targets], int(str(after))) if after else 0
    end = start + limit
    return targets[start:end], str(targets[end][0]) if end < len(targets) else None


def _labels_between(from_type: str, from_id: int, to_type: str, to_id: int,
                    type_ids: Iterable[int]) -> dict[str, Any]:
    """v4 `LabelsBetweenObjectPair`: the labels of the pair's association types."""
    return {"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": from_id,
            "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": to_id,
            "labels": sorted({label for t in type_ids if (label := ASSOCIATION_TYPES[t][2])})}


def _default_association(from_id: int, to_id: int, type_id: int) -> dict[str, Any]:
    """One result of creating a default association."""
    return {"from": {"id": str(from_id)}, "to": {"id": str(to_id)},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": type_id}}


class _Record:
    __slots__ = ("archived", "archived_ms", "created_ms", "id", "props", "updated_ms")

    def __init__(self, record_id: int, props: dict[str, str], created_ms: int,
                 updated_ms: int) -> None:
        self.id = record_id
        self.props = props
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived = False
        self.archived_ms = 0


class _ObjectStore:
    """Records of one type: by id, with ids kept sorted for cursor paging."""

    def __init__(self) -> None:
        self.records: dict[int, _Record] = {}
        self.ids: list[int] = []  # sorted; archived records stay listed (archived=true)
        self.by_email: dict[str, int] = {}  # contacts: lower-cased email -> id

    def add(self, record: _Record) -> None:
        self.records[record.id] = record
        if not self.ids or record.id > self.ids[-1]:
            self.ids.append(record.id)
        else:
            insort(self.ids, record.id)

    def remove(self, record_id: int) -> None:
        record = self.records.pop(record_id, None)
        if record is not None:
            index = bisect_left(self.ids, record_id)
            if index < len(self.ids) and self.ids[index] == record_id:
                del self.ids[index]

    def iter_from(self, start: int, archived: bool) -> Iterator[_Record]:
        ids, records = self.ids, self.records
        for index in range(bisect_left(ids, start), len(ids)):
            record = records[ids[index]]
            if record.archived == archived:
                yield record


class HubSpotEmulator:
    """One HubSpot portal's CRM APIs over in-memory state (a sandbox `Emulator`)."""

    crm: str = "hubspot"
    path_prefixes: tuple[str, ...] = ("/crm/", "/account-info/")

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or system_clock
        self.reset()

    # ==================================================================== plumbing
    def reset(self) -> None:
        self._last_ms = 0
        self._next_object_id = 1001
        self._next_pipeline_id = 75_000_001
        self._next_stage_id = 110_000_001
        self.objects: dict[str, _ObjectStore] = {t: _ObjectStore() for t in OBJECT_TYPES}
        # (from type, from id) -> to type -> to id -> type ids
        self.associations: dict[tuple[str, int], dict[str, dict[int, set[int]]]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}  # deals pipelines by id
        self.audit: dict[str, list[dict[str, Any]]] = {}
        self._search_cache: dict[str, tuple[int, list[int]]] = {}
        self.gdpr_blocklist: set[str] = set()  # lower-cased emails GDPR-deleted unseen
        self._version = 0  # bumped on every write; invalidates the search cache
        self._create_default_pipeline()

    def now_ms(self) -> int:
        """The write timestamp: the clock in ms, never earlier than the previous write."""
        now = max(int(self.clock() * 1000), self._last_ms)
        self._last_ms = now
        return now

    def token_of(self, request: Request) -> str:
        """A private-app (or OAuth) token comes as `Authorization: Bearer …`."""
        return bearer_token(request)

    def unauthorized(self) -> Response:
        """HubSpot's 401 for a missing or invalid private-app token."""
        return self.error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 "
            "authentication and you can find more details at "
            "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            category="INVALID_AUTHENTICATION",
        )

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """HubSpot's error body: {status, message, correlationId, category, ...}."""
        category = extra.pop("category", None) or {
            401: "INVALID_AUTHENTICATION", 404: "OBJECT_NOT_FOUND", 409: "CONFLICT",
            429: "RATE_LIMITS", 405: "VALIDATION_ERROR",
        }.get(status, "VALIDATION_ERROR" if status < 500 else "INTERNAL_ERROR")
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": category, **extra}
        return Response(status, body)

    @staticmethod
    def _wrap(handler: _Method) -> Handler:
        def run(account: HubSpotEmulator, request: Request) -> Response:
            try:
                return handler(account, request)
            except HubSpotError as exc:
                return account.error(exc.status, exc.message, category=exc.category,
                                     **exc.extra)
            except SearchError as exc:
                return account.error(400, str(exc))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return account.error(400, f"Invalid input JSON on line 1: {exc}")

        return run

    @classmethod
    def register(cls, router: Router) -> None:
        """Add every route; handlers are the methods below, called on the token's account."""

        def add(method: str, template: str, handler: _Method) -> None:
            router.add(method, template, cls._wrap(handler), crm=cls.crm)

        base = "/crm/v3/pipelines/{objectType}"
        add("GET", base, cls.list_pipelines)
        add("POST", base, cls.create_pipeline)
        add("GET", base + "/{pipelineId}", cls.get_pipeline)
        add("PATCH", base + "/{pipelineId}", cls.patch_pipeline)
        add("PUT", base + "/{pipelineId}", cls.replace_pipeline)
        add("DELETE", base + "/{pipelineId}", cls.delete_pipeline)
        add("GET", base + "/{pipelineId}/audit", cls.pipeline_audit)
        add("GET", base + "/{pipelineId}/stages", cls.list_stages)
        add("POST", base + "/{pipelineId}/stages", cls.create_stage)
        add("GET", base + "/{pipelineId}/stages/{stageId}", cls.get_stage)
        add("PATCH", base + "/{pipelineId}/stages/{stageId}", cls.patch_stage)
        add("PUT", base + "/{pipelineId}/stages/{stageId}", cls.replace_stage)
        add("DELETE", base + "/{pipelineId}/stages/{stageId}", cls.delete_stage)
        add("GET", base + "/{pipelineId}/stages/{stageId}/audit", cls.stage_audit)

        objects = "/crm/v3/objects/{objectType}"
        add("POST", "/crm/v3/objects/contacts/gdpr-delete", cls.gdpr_delete)
        add("GET", objects, cls.list_objects)
        add("POST", objects, cls.create_object)
        add("POST", objects + "/search", cls.search_objects)
        add("POST", objects + "/batch/read", cls.batch_read)
        add("POST", objects + "/batch/create", cls.batch_create)
        add("POST", objects + "/batch/update", cls.batch_update)
        add("POST", objects + "/batch/upsert", cls.batch_upsert)
        add("POST", objects + "/batch/archive", cls.batch_archive)
        add("GET", objects + "/{objectId}", cls.get_object)
        add("PATCH", objects + "/{objectId}", cls.update_object)
        add("DELETE", objects + "/{objectId}", cls.archive_object)

        from crmsync.sandbox.account_info import register_hubspot  # who the token is
        register_hubspot(router)
        assoc = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
        add("POST", assoc + "/read", cls.assoc_batch_read)
        add("POST", assoc + "/create", cls.assoc_batch_create)
        add("POST", assoc + "/archive", cls.assoc_batch_archive)
        add("POST", assoc + "/labels/archive", cls.assoc_batch_labels_archive)
        add("POST", assoc + "/associate/default", cls.assoc_batch_default)
        one = "/crm/v4/objects/{objectType}/{objectId}/associations"
        add("GET", one + "/{toObjectType}", cls.assoc_list)
        add("PUT", one + "/{toObjectType}/{toObjectId}", cls.assoc_put_labeled)
        add("DELETE", one + "/{toObjectType}/{toObjectId}", cls.assoc_delete)
        add("PUT", "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/"
            "{toObjectType}/{toObjectId}", cls.assoc_put_default)

    # ==================================================================== pipelines
    def _create_default_pipeline(self) -> None:
        # A new HubSpot account has exactly this deal pipeline (API-FACTS, "Pipelines v3").
        # Spec (Pipeline/PipelineStage.createdAt): "The default pipelines [and the stages on
        # default pipelines] will have createdAt = 0."
        now = self.now_ms()
        stages = [
            self._new_stage(label, order, {"probability": prob,
                                           **({"isClosed": "true"} if order >= 5 else {})},
                            now, stage_id=stage_id, created=0)
            for order, (stage_id, label, prob) in enumerate(DEFAULT_STAGES)
        ]
        self.pipelines[DEFAULT_PIPELINE_ID] = {
            "id": DEFAULT_PIPELINE_ID, "label": "Sales Pipeline", "displayOrder": 0,
            "stages": stages, "archived": False, "createdAt": 0, "updatedAt": now,
        }

    def _new_stage(self, label: str, order: int, metadata: dict[str, str], now: int, *,
                   stage_id: str | None = None, created: int | None = None) -> dict[str, Any]:
        if stage_id is None:
            stage_id = str(self._next_stage_id)
            self._next_stage_id += 1
        return {"id": stage_id, "label": label, "displayOrder": order, "metadata": metadata,
                "archived": False, "createdAt": now if created is None else created,
                "updatedAt": now,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}

    @staticmethod
    def _object_type_for_pipelines(request: Request) -> None:
        object_type = request.path_params["objectType"]
        if object_type not in ("deals", "deal", "0-3"):
            # Tickets and custom objects have pipelines too; the sandbox emulates deals only.
            raise HubSpotError(400, f"Unable to infer object type from: {object_type}")

    def _pipeline(self, request: Request, *, include_archived: bool = False) -> dict[str, Any]:
        self._object_type_for_pipelines(request)
        pipeline = self.pipelines.get(request.path_params["pipelineId"])
        # "that ID must correspond to an existing, un-archived pipeline. Otherwise … 404"
        if pipeline is None or (pipeline["archived"] and not include_archived):
            raise HubSpotError(404, f"Unable to find pipeline {request.path_params['pipelineId']}",
                               category="OBJECT_NOT_FOUND")
        return pipeline

    @staticmethod
    def _stage_of(pipeline: dict[str, Any], stage_id: str) -> dict[str, Any]:
        for stage in pipeline["stages"]:
            if stage["id"] == stage_id and not stage["archived"]:
                return stage
        raise HubSpotError(404, f"Unable to find stage {stage_id} in pipeline {pipeline['id']}",
                           category="OBJECT_NOT_FOUND")

    @staticmethod
    def _active_stages(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
        """The pipeline's stages that are not archived (deleted), in stored order."""
        return [s for s in pipeline["stages"] if not s["archived"]]

    @staticmethod
    def _ordered(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        # displayOrder first; ties sort by label (pipelines guide)
        return sorted(items, key=lambda item: (item["displayOrder"], item["label"]))

    def _render_stage(self, stage: dict[str, Any]) -> dict[str, Any]:
        out = {**stage, "createdAt": iso(stage["createdAt"]), "updatedAt": iso(stage["updatedAt"])}
        if stage.get("archivedAt"):
            out["archivedAt"] = iso(stage["archivedAt"])
        else:
            out.pop("archivedAt", None)
        return out

    def _render_pipeline(self, pipeline: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": pipeline["id"], "label": pipeline["label"],
            "displayOrder": pipeline["displayOrder"],
            "stages": [self._render_stage(s)
                       for s in self._ordered(self._active_stages(pipeline))],
            "archived": pipeline["archived"],
            "createdAt": iso(pipeline["createdAt"]), "updatedAt": iso(pipeline["updatedAt"]),
        }
        if pipeline.get("archivedAt"):
            out["archivedAt"] = iso(pipeline["archivedAt"])
        return out

    @staticmethod
    def _check_metadata(metadata: Any, where: str) -> dict[str, str]:
        if not isinstance(metadata, dict):
            raise HubSpotError(400, f"{where}: metadata is required and must be an object")
        out = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        probability = out.get("probability")
        if probability is None:
            # deal stages must carry a probability (pipelines guide, "deal stages")
            raise HubSpotError(400, f"{where}: deal stages require metadata.probability")
        try:
            value = float(probability)
        except ValueError:
            value = -1.0
        # Spec (PipelineStageInput.metadata): "Possible values are between 0.0 and 1.0 in
        # increments of 0.1." The refusal's wording is the sandbox's own.
        if not 0.0 <= value <= 1.0 or abs(value * 10 - round(value * 10)) > 1e-9:
            raise HubSpotError(
                400, f"{where}: metadata.probability must be a number between 0.0 and 1.0 "
                f"in increments of 0.1, got {probability!r}")
        value = round(value, 1)
        out["probability"] = str(value)  # stored as HubSpot echoes it: "0.2", "1.0"
        if "isClosed" in out:
            out["isClosed"] = "true" if _truthy(out["isClosed"]) else "false"
        return out

    @staticmethod
    def _check_order(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HubSpotError(400, f"{where}: displayOrder is required and must be an integer")
        return value

    @staticmethod
    def _check_label(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise HubSpotError(400, f"{where}: label is required")
        return value

    def _check_stage_inputs(self, stages: Any) -> list[tuple[str, int, dict[str, str]]]:
        if not isinstance(stages, list) or not stages:
            raise HubSpotError(400, "stages is required: a pipeline needs at least one stage")
        if len(stages) > MAX_STAGES:
            raise HubSpotError(400, f"A deal pipeline can have at most {MAX_STAGES} stages")
        out: list[tuple[str, int, dict[str, str]]] = []
        for i, stage in enumerate(stages):
            where = f"stages[{i}]"
            if not isinstance(stage, dict):
                raise HubSpotError(400, f"{where} must be an object")
            out.append((self._check_label(stage.get("label"), where),
                        self._check_order(stage.get("displayOrder"), where),
                        self._check_metadata(stage.get("metadata"), where)))
        self._check_unique_labels([label for label, _, _ in out])
        return out

    @staticmethod
    def _check_unique_labels(labels: list[str]) -> None:
        seen: set[str] = set()
        for label in labels:
            key = label.strip().lower()
            if key in seen:
                # unconfirmed: HubSpot refuses duplicate stage labels; 400 VALIDATION_ERROR
                raise HubSpotError(400, f"Stage labels must be unique within a pipeline; "
                                   f"duplicate label {label!r}")
            seen.add(key)

    def _check_pipeline_label(self, label: str, except_id: str | None = None) -> None:
        for pipeline in self.pipelines.values():
            if (not pipeline["archived"] and pipeline["id"] != except_id
                    and pipeline["label"].strip().lower() == label.strip().lower()):
                # unconfirmed status: HubSpot refuses a second pipeline with the same label
                raise HubSpotError(409, f"A pipeline with label {label!r} already exists",
                                   category="CONFLICT")

    def _audit(self, identifier: str, action: str, raw: dict[str, Any], now: int) -> None:
        self.audit.setdefault(identifier, []).append({
            "identifier": identifier, "portalId": PORTAL_ID, "action": action,
            "timestamp": iso(now), "rawObject": raw, "fromUserId": 0,
        })

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise HubSpotError(400, "Invalid input JSON: expected an object")
        return body

    def list_pipelines(self, request: Request) -> Response:
        self._object_type_for_pipelines(request)
        active = [p for p in self.pipelines.values() if not p["archived"]]
        return Response(200, {"results": [self._render_pipeline(p)
                                          for p in self._ordered(active)]})

    def get_pipeline(self, request: Request) -> Response:
        return Response(200, self._render_pipeline(self._pipeline(request)))

    def create_pipeline(self, request: Request) -> Response:
        self._object_type_for_pipelines(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "pipeline")
        order = self._check_order(body.get("displayOrder"), "pipeline")
        stage_inputs = self._check_stage_inputs(body.get("stages"))
        self._check_pipeline_label(label)
        now = self.now_ms()
        pipeline_id = str(self._next_pipeline_id)
        self._next_pipeline_id += 1
        pipeline = {
            "id": pipeline_id, "label": label, "displayOrder": order,
            "stages": [self._new_stage(lbl, o, md, now) for lbl, o, md in stage_inputs],
            "archived": False, "createdAt": now, "updatedAt": now,
        }
        self.pipelines[pipeline_id] = pipeline
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline_id, "CREATE", rendered, now)
        self._touch()
        return Response(201, rendered)

    def patch_pipeline(self, request: Request) -> Response:
        body = self._body(request)
        # PipelinePatchInput.archived: "This property should only be provided when restoring
        # an archived pipeline. If it's provided in any other call, the request will fail and
        # a `400 Bad Request` will be returned." So only {"archived": false} on an archived
        # pipeline is accepted; archiving goes through DELETE.
        restoring = body.get("archived") is False
        pipeline = self._pipeline(request, include_archived=restoring)
        if "archived" in body and not (restoring and pipeline["archived"]):
            raise HubSpotError(400, "archived may only be provided (as false) to restore an "
                               "archived pipeline; delete a pipeline to archive it",
                               errors=[{"message": "archived is only valid when restoring",
                                        "in": "archived"}])
        if "label" in body:
            label = self._check_label(body["label"], "pipeline")
            self._check_pipeline_label(label, except_id=pipeline["id"])
            pipeline["label"] = label
        if "displayOrder" in body:
            pipeline["displayOrder"] = self._check_order(body["displayOrder"], "pipeline")
        now = self.now_ms()
        if "archived" in body:
            pipeline["archived"] = bool(body["archived"])
            pipeline["archivedAt"] = now if pipeline["archived"] else None
        pipeline["updatedAt"] = now
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline["id"], "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def replace_pipeline(self, request: Request) -> Response:
        """PUT replaces the pipeline whole: stages left out are deleted (pipelines guide)."""
        pipeline = self._pipeline(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "pipeline")
        order = self._check_order(body.get("displayOrder"), "pipeline")
        stage_inputs = self._check_stage_inputs(body.get("stages"))
        self._check_pipeline_label(label, except_id=pipeline["id"])
        # Spec (PUT): "Replace all the properties of an existing pipeline with the values
        # provided. This will overwrite any existing pipeline stages." PipelineStageInput has
        # no id, so every existing stage is dropped (archived) and the inputs become new
        # stages with new ids — deals left in the old stages are refused by the validate
        # flags, or stranded without them.
        existing = self._active_stages(pipeline)
        self._refuse_if_used(request, pipeline["id"], [s["id"] for s in existing])
        now = self.now_ms()
        for old in existing:
            old.update(archived=True, archivedAt=now, updatedAt=now)
        new_stages = [self._new_stage(lbl, o, md, now) for lbl, o, md in stage_inputs]
        pipeline.update(label=label, displayOrder=order, updatedAt=now,
                        stages=[*pipeline["stages"], *new_stages])
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline["id"], "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def _deals_in(self, pipeline_id: str, stage_ids: list[str] | None = None) -> list[int]:
        wanted = set(stage_ids) if stage_ids is not None else None
        return [
            r.id for r in self.objects["deals"].records.values()
            if not r.archived and r.props.get("pipeline") == pipeline_id
            and (wanted is None or r.props.get("dealstage") in wanted)
        ]

    def _refuse_if_used(self, request: Request, pipeline_id: str,
                        stage_ids: list[str] | None) -> None:
        """The validate…BeforeDelete flags refuse deleting what deals still use.

        Default false (API versions before 2026-09, per the spec's parameter description);
        the refusal's status is unconfirmed — 400 VALIDATION_ERROR, HubSpot's body shape.
        """
        if stage_ids == []:
            return
        if not (_truthy(request.arg("validateReferencesBeforeDelete"))
                or _truthy(request.arg("validateDealStageUsagesBeforeDelete"))):
            return
        used = self._deals_in(pipeline_id, stage_ids)
        if used:
            what = (f"stage(s) {', '.join(stage_ids)}" if stage_ids is not None
                    else f"pipeline {pipeline_id}")
            raise HubSpotError(
                400, f"Cannot delete {what}: {len(used)} deal(s) still use it. Move them first.",
                subCategory="PipelineError.STAGE_HAS_OBJECTS" if stage_ids is not None
                else "PipelineError.PIPELINE_HAS_OBJECTS",
                context={"dealIds": [str(i) for i in used[:100]]},
            )

    def delete_pipeline(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        if sum(1 for p in self.pipelines.values() if not p["archived"]) == 1:
            # "Each pipeline always has at least one stage, and each account has at least one
            # pipeline." (pipelines overview). Status and wording unconfirmed.
            raise HubSpotError(400, "An account must keep at least one pipeline; "
                               f"pipeline {pipeline['id']} is the last one")
        self._refuse_if_used(request, pipeline["id"], None)
        now = self.now_ms()
        # Deleting archives: later reads answer 404 (spec: "must correspond to an existing,
        # un-archived pipeline"), and PATCH {"archived": false} brings it back.
        pipeline.update(archived=True, archivedAt=now, updatedAt=now)
        self._audit(pipeline["id"], "DELETE", {"id": pipeline["id"]}, now)
        self._touch()
        return Response(204)

    def pipeline_audit(self, request: Request) -> Response:
        pipeline = self._pipeline(request, include_archived=True)
        return Response(200, {"results": list(reversed(self.audit.get(pipeline["id"], [])))})

    def list_stages(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        return Response(200, {"results": [
            self._render_stage(s) for s in self._ordered(self._active_stages(pipeline))]})

    def get_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        return Response(200, self._render_stage(
            self._stage_of(pipeline, request.path_params["stageId"])))

    def create_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "stage")
        order = self._check_order(body.get("displayOrder"), "stage")
        metadata = self._check_metadata(body.get("metadata"), "stage")
        active = self._active_stages(pipeline)
        if len(active) >= MAX_STAGES:
            raise HubSpotError(400, f"A deal pipeline can have at most {MAX_STAGES} stages")
        self._check_unique_labels([s["label"] for s in active] + [label])
        now = self.now_ms()
        stage = self._new_stage(label, order, metadata, now)
        pipeline["stages"].append(stage)
        pipeline["updatedAt"] = now
        rendered = self._render_stage(stage)
        self._audit(f"{pipeline['id']}/{stage['id']}", "CREATE", rendered, now)
        self._touch()
        return Response(201, rendered)

    def _update_stage(self, request: Request, *, replace: bool) -> Response:
        body = self._body(request)
        restoring = body.get("archived") is False and not replace
        pipeline = self._pipeline(request)
        stage_id = request.path_params["stageId"]
        if restoring:
            stage = next((s for s in pipeline["stages"] if s["id"] == stage_id), None)
            if stage is None:
                raise HubSpotError(404, f"Unable to find stage {stage_id}",
                                   category="OBJECT_NOT_FOUND")
        else:
            stage = self._stage_of(pipeline, stage_id)
        if replace or "label" in body:
            stage_label = self._check_label(body.get("label"), "stage")
            others = [s["label"] for s in self._active_stages(pipeline) if s["id"] != stage["id"]]
            self._check_unique_labels([*others, stage_label])
            stage["label"] = stage_label
        if replace or "displayOrder" in body:
            stage["displayOrder"] = self._check_order(body.get("displayOrder"), "stage")
        if replace or "metadata" in body:
            stage["metadata"] = self._check_metadata(body.get("metadata"), "stage")
        now = self.now_ms()
        if "archived" in body and not replace:
            stage["archived"] = bool(body["archived"])
            stage["archivedAt"] = now if stage["archived"] else None
        stage["updatedAt"] = pipeline["updatedAt"] = now
        rendered = self._render_stage(stage)
        self._audit(f"{pipeline['id']}/{stage['id']}", "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def patch_stage(self, request: Request) -> Response:
        return self._update_stage(request, replace=False)

    def replace_stage(self, request: Request) -> Response:
        return self._update_stage(request, replace=True)

    def delete_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        stage = self._stage_of(pipeline, request.path_params["stageId"])
        if len(self._active_stages(pipeline)) == 1:
            raise HubSpotError(400, "A pipeline must keep at least one stage")
        self._refuse_if_used(request, pipeline["id"], [stage["id"]])
        now = self.now_ms()
        # Without the validate flags HubSpot deletes the stage and leaves its deals pointing
        # at it (unconfirmed what the UI shows); the sandbox does the same.
        stage.update(archived=True, archivedAt=now, updatedAt=now)
        pipeline["updatedAt"] = now
        self._audit(f"{pipeline['id']}/{stage['id']}", "DELETE", {"id": stage["id"]}, now)
        self._touch()
        return Response(204)

    def stage_audit(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        key = f"{pipeline['id']}/{request.path_params['stageId']}"
        if key not in self.audit:
            raise HubSpotError(404, f"Unable to find stage {request.path_params['stageId']}",
                               category="OBJECT_NOT_FOUND")
        return Response(200, {"results": list(reversed(self.audit[key]))})

    # ==================================================================== objects
    @staticmethod
    def _object_type(name: str) -> str:
        object_type = _TYPE_ALIASES.get(name.lower())
        if object_type is None:
            raise HubSpotError(400, f"Unable to infer object type from: {name}")
        return object_type

    def _type_of(self, request: Request) -> str:
        return self._object_type(request.path_params["objectType"])

    def _touch(self) -> None:
        self._version += 1

    def _find(self, object_type: str, raw_id: Any, id_property: str | None = None,
              *, archived: bool = False) -> _Record | None:
        store = self.objects[object_type]
        if id_property and id_property != "hs_object_id":
            if id_property not in _UNIQUE[object_type]:
                raise HubSpotError(400, f"{id_property} is not a unique property of "
                                   f"{object_type}; idProperty must be a unique property")
            record_id = store.by_email.get(str(raw_id).strip().lower())
        else:
            try:
                record_id = int(str(raw_id))
            except ValueError:
                return None
        record = store.records.get(record_id) if record_id is not None else None
        if record is None or record.archived != archived:
            return None
        return record

    def _normalise(self, object_type: str, props: Any) -> dict[str, str]:
        """Validated, stringified property values; HubSpot refuses unknown names at once."""
        if props is None:
            return {}
        if not isinstance(props, dict):
            raise HubSpotError(400, "properties must be an object of name → value")
        known = _PROPERTIES[object_type]
        problems: list[dict[str, Any]] = []
        out: dict[str, str] = {}
        for name, value in props.items():
            if name not in known:
                problems.append({"isValid": False, "message": f'Property "{name}" does not exist',
                                 "error": "PROPERTY_DOESNT_EXIST", "name": name})
                continue
            if name in _READ_ONLY:
                # Spec (update/batch update): "Read-only and non-existent properties will
                # result in an error."
                problems.append({"isValid": False, "name": name, "error": "READ_ONLY_VALUE",
                                 "message": f"{name} is a read only property; its value "
                                 "cannot be set."})
                continue
            text = "" if value is None else (str(value).lower() if isinstance(value, bool)
                                             else str(value))
            if text and name in _NUMBERS:
                try:
                    float(text)
                except ValueError:
                    problems.append({"isValid": False, "name": name, "error": "INVALID_DECIMAL",
                                     "message": f"{text} was not a valid number."})
                    continue
            if text and name in _DATETIMES:
                instant = parse_instant(text)
                if instant is None:
                    problems.append({"isValid": False, "name": name, "error": "INVALID_DATE",
                                     "message": f"{text} was not a valid date."})
                    continue
                text = iso(instant)
            out[name] = text
        if problems:
            raise HubSpotError(
                400, f"Property values were not valid: {json.dumps(problems)}",
                errors=[{"message": p["message"], "code": p["error"],
                         "context": {"propertyName": [p["name"]]}} for p in problems],
            )
        return out

    def _check_deal(self, props: dict[str, str], existing: dict[str, str] | None) -> None:
        """Deal stage must belong to the deal's (un-archived) pipeline."""
        merged = {**(existing or {}), **props}
        if "pipeline" not in merged or not merged["pipeline"]:
            props["pipeline"] = merged["pipeline"] = DEFAULT_PIPELINE_ID
        pipeline = self.pipelines.get(merged["pipeline"])
        if pipeline is None or pipeline["archived"]:
            raise HubSpotError(400, "Property values were not valid: " + json.dumps([{
                "isValid": False, "message": f"{merged['pipeline']} is not a valid pipeline",
                "error": "INVALID_OPTION", "name": "pipeline"}]))
        if ("dealstage" in props or "pipeline" in props) and merged.get("dealstage"):
            allowed = [s["id"] for s in self._active_stages(pipeline)]
            if merged["dealstage"] not in allowed:
                raise HubSpotError(400, "Property values were not valid: " + json.dumps([{
                    "isValid": False, "name": "dealstage", "error": "INVALID_OPTION",
                    "message": f"{merged['dealstage']} was not one of the allowed options: "
                    f"{allowed}"}]))

    def _check_email(self, props: dict[str, str], record_id: int | None) -> None:
        email = props.get("email")
        if not email:
            return
        if email.strip().lower() in self.gdpr_blocklist:
            # The blocklist is documented (gdpr-delete); the refusal's status and wording
            # are unconfirmed.
            raise HubSpotError(400, f"{email} was permanently deleted (GDPR) and is blocked "
                               "from being used again", subCategory="GDPR_BLOCKLISTED_EMAIL")
        owner = self.objects["contacts"].by_email.get(email.strip().lower())
        if owner is not None and owner != record_id:
            raise HubSpotError(409, f"Contact already exists. Existing ID: {owner}",
                               category="CONFLICT")

    def _index_email(self, record: _Record, old_email: str | None) -> None:
        index = self.objects["contacts"].by_email
        if old_email:
            index.pop(old_email.strip().lower(), None)
        email = record.props.get("email")
        if email and not record.archived:
            index[email.strip().lower()] = record.id

    def _insert(self, object_type: str, props: dict[str, str], now: int) -> _Record:
        created = now
        if props.get("createdate"):
            created = parse_instant(props["createdate"]) or created
        clean = {k: v for k, v in props.items() if v != ""}
        return self._store_new(object_type, clean, created, now)

    def _store_new(self, object_type: str, props: dict[str, str], created: int,
                   modified: int) -> _Record:
        """Store a new record under the next id, with its id and times among `props`."""
        record_id = self._next_object_id
        self._next_object_id += 1
        props["createdate"] = iso(created)
        props["hs_object_id"] = str(record_id)
        props[_MODIFIED[object_type]] = iso(modified)
        record = _Record(record_id, props, created, modified)
        self.objects[object_type].add(record)
        if object_type == "contacts":
            self._index_email(record, None)
        return record

    def _apply_update(self, object_type: str, record: _Record, props: dict[str, str],
                      now: int) -> None:
        old_email = record.props.get("email")
        for name, value in props.items():
            if value == "":
                record.props.pop(name, None)  # an empty string clears the property
            else:
                record.props[name] = value
        record.updated_ms = now
        record.props[_MODIFIED[object_type]] = iso(now)
        if object_type == "contacts":
            self._index_email(record, old_email)

    def _archive(self, object_type: str, record: _Record, now: int) -> None:
        record.archived = True
        record.archived_ms = now
        record.updated_ms = now
        if object_type == "contacts":
            self._index_email(record, record.props.get("email"))

    def _render(self, object_type: str, record: _Record, properties: Iterable[str] | None,
                *, associations: list[str] | None = None,
                with_history: list[str] | None = None) -> dict[str, Any]:
        known = _PROPERTIES[object_type]
        # Spec (`properties`, `propertiesWithHistory`): "If any of the specified properties
        # are not present on the requested object(s), they will be ignored."
        names = [n for n in properties if n in known] if properties else (
            _DEFAULT_PROPERTIES[object_type])
        with_history = [n for n in with_history or () if n in known]
        props = {name: record.props.get(name) for name in (*names, *_ALWAYS[object_type])}
        out: dict[str, Any] = {
            "id": str(record.id), "properties": props, "createdAt": iso(record.created_ms),
            "updatedAt": iso(record.updated_ms), "archived": record.archived,
        }
        if record.archived:
            out["archivedAt"] = iso(record.archived_ms)
        if with_history:
            out["propertiesWithHistory"] = {
                name: [{"value": record.props[name], "timestamp": iso(record.updated_ms),
                        "sourceType": "API"}] if record.props.get(name) else []
                for name in with_history
            }
        if associations:
            found: dict[str, Any] = {}
            for to_name in associations:
                to_type = _TYPE_ALIASES.get(to_name.lower())
                if to_type is None:
                    continue
                results = [
                    {"id": str(to_id), "type": ASSOCIATION_TYPES[type_id][3]}
                    for to_id, type_ids in sorted(self._targets(object_type, record.id, to_type))
                    for type_id in sorted(type_ids)
                ]
                if results:  # HubSpot omits object types with no associations
                    found[to_name] = {"results": results}
            if found:
                out["associations"] = found
        return out

    @staticmethod
    def _limit(request: Request, default: int, maximum: int) -> int:
        raw = request.arg("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise HubSpotError(400, f"limit must be an integer, got {raw!r}") from None
        if not 1 <= limit <= maximum:
            raise HubSpotError(400, f"limit must be between 1 and {maximum}, got {limit}")
        return limit

    def list_objects(self, request: Request) -> Response:
        object_type = self._type_of(request)
        limit = self._limit(request, 10, LIST_LIMIT_MAX)
        after_raw = request.arg("after")
        try:
            after = int(after_raw) if after_raw else 0
        except ValueError:
            raise HubSpotError(400, f"after must be a cursor from paging.next.after, got "
                               f"{after_raw!r}") from None
        archived = _truthy(request.arg("archived"))
        properties = request.args("properties")
        history = request.args("propertiesWithHistory")
        associations = request.args("associations")
        page: list[dict[str, Any]] = []
        next_after: int | None = None
        for record in self.objects[object_type].iter_from(after, archived):
            if len(page) == limit:
                next_after = record.id  # the cursor is the next record's id
                break
            page.append(self._render(object_type, record, properties,
                                     associations=associations, with_history=history))
        body: dict[str, Any] = {"results": page}
        if next_after is not None:
            body["paging"] = {"next": {
                "after": str(next_after),
                "link": f"{request.path}?after={next_after}&limit={limit}",
            }}
        return Response(200, body)

    def get_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        record = self._find(object_type, request.path_params["objectId"],
                            request.arg("idProperty"),
                            archived=_truthy(request.arg("archived")))
        if record is None:
            raise _object_not_found()
        return Response(200, self._render(
            object_type, record, request.args("properties"),
            associations=request.args("associations"),
            with_history=request.args("propertiesWithHistory")))

    def _inline_associations(self, object_type: str, specs: Any) -> list[tuple[str, int, int]]:
        """Validate create-time `associations`; [(to type, to id, type id)]."""
        if not specs:
            return []
        if not isinstance(specs, list):
            raise HubSpotError(400, "associations must be a list")
        out = []
        for spec in specs:
            to_id = (spec.get("to") or {}).get("id") if isinstance(spec, dict) else None
            types = spec.get("types") if isinstance(spec, dict) else None
            if to_id is None or not isinstance(types, list) or not types:
                raise HubSpotError(400, "each association needs `to.id` and `types`")
            for t in types:
                type_id = self._checked_type(t, object_type)
                to_type = ASSOCIATION_TYPES[type_id][1]
                if self._find(to_type, to_id) is None:
                    raise HubSpotError(
                        400, f"No {_SINGULAR[to_type]} with ID {to_id} exists",
                        category="VALIDATION_ERROR", subCategory="OBJECT_NOT_FOUND")
                out.append((to_type, int(str(to_id)), type_id))
        return out

    @staticmethod
    def _checked_type(spec: Any, from_type: str, to_type: str | None = None) -> int:
        """A HubSpot-defined association type id valid from `from_type` (to `to_type`)."""
        type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
        definition = ASSOCIATION_TYPES.get(type_id) if isinstance(type_id, int) else None
        if (not isinstance(type_id, int) or definition is None or definition[0] != from_type
                or (to_type is not None and definition[1] != to_type)):
            target = f" and {to_type}" if to_type else " associations"
            raise HubSpotError(400, f"{type_id} is not a valid association type between "
                               f"{from_type}{target}", subCategory="INVALID_TYPE")
        return type_id

    def _create_one(self, object_type: str, item: Any, now: int) -> _Record:
        if not isinstance(item, dict):
            raise HubSpotError(400, "each input must be an object with `properties`")
        props = self._normalise(object_type, item.get("properties"))
        links = self._inline_associations(object_type, item.get("associations"))
        if object_type == "contacts":
            self._check_email(props, None)
        if object_type == "deals":
            self._check_deal(props, None)
        record = self._insert(object_type, props, now)
        for to_type, to_id, type_id in links:
            self._associate(object_type, record.id, to_type, to_id, type_id)
        return record

    @staticmethod
    def _written(object_type: str, props: Iterable[str]) -> list[str]:
        """What a write's response shows: the default properties plus those written
        (unconfirmed: HubSpot echoes the properties a create or update sets)."""
        return list(dict.fromkeys((*_DEFAULT_PROPERTIES[object_type], *props)))

    def create_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        body = self._body(request)
        record = self._create_one(object_type, body, self.now_ms())
        self._touch()
        return Response(201, self._render(object_type, record, self._written(
            object_type, (body.get("properties") or {}))))

    def update_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        record = self._find(object_type, request.path_params["objectId"],
                            request.arg("idProperty"))
        if record is None:
            raise _object_not_found()
        props = self._normalise(object_type, self._body(request).get("properties"))
        self._validate_update(object_type, record, props)
        self._apply_update(object_type, record, props, self.now_ms())
        self._touch()
        return Response(200, self._render(object_type, record, self._written(object_type, props)))

    def _validate_update(self, object_type: str, record: _Record, props: dict[str, str]) -> None:
        if object_type == "contacts":
            self._check_email(props, record.id)
        if object_type == "deals":
            self._check_deal(props, record.props)

    def archive_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        record = self._find(object_type, request.path_params["objectId"])
        # Archiving is idempotent: an unknown or already archived id also answers 204.
        if record is not None:
            self._archive(object_type, record, self.now_ms())
            self._touch()
        return Response(204)

    def gdpr_delete(self, request: Request) -> Response:
        body = self._body(request)
        object_id = body.get("objectId")
        if object_id is None:
            raise HubSpotError(400, "objectId is required")
        id_property = body.get("idProperty")
        record = self._find("contacts", object_id, id_property)
        if record is None:
            record = self._find("contacts", object_id, id_property, archived=True)
        if record is None and id_property == "email":
            # Spec (gdpr-delete): "If email address is not found, the email address will be
            # added to a blocklist and prevent it from being used in the future." → 204.
            self.gdpr_blocklist.add(str(object_id).strip().lower())
            self._touch()
            return Response(204)
        if record is None:
            raise _object_not_found()
        # Permanently deleted: gone from lists, archived lists and associations.
        email = (record.props.get("email") or "").strip().lower()
        if self.objects["contacts"].by_email.get(email) == record.id:
            del self.objects["contacts"].by_email[email]
        self._drop_associations("contacts", record.id)
        self.objects["contacts"].remove(record.id)
        self._touch()
        return Response(204)

    # ----------------------------------------------------------------- batch
    def _batch_inputs(self, request: Request) -> tuple[dict[str, Any], list[Any]]:
        body = self._body(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise HubSpotError(400, "inputs is required and must be a list")
        if len(inputs) > BATCH_MAX:
            # HubSpot: "Batch input limit of 100 exceeded" (limit documented; text unconfirmed)
            raise HubSpotError(400, f"Too many inputs: {len(inputs)}. The batch limit is "
                               f"{BATCH_MAX} inputs per request.")
        return body, inputs

    def _batch_response(self, status_ok: int, results: list[dict[str, Any]],
                        errors: list[dict[str, Any]], started: int) -> Response:
        done = self.now_ms()
        body: dict[str, Any] = {
            "status": "COMPLETE", "results": results,
            "requestedAt": iso(started), "startedAt": iso(started), "completedAt": iso(done),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(status_ok, body)

    @staticmethod
    def _not_found_error(object_type: str, ids: list[str]) -> dict[str, Any]:
        return _batch_error(
            f"Could not get some {_SINGULAR[object_type].upper()} objects, they may be "
            "deleted or not exist. Check that ids are valid.", {"ids": ids})

    def batch_read(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        body, inputs = self._batch_inputs(request)
        id_property = body.get("idProperty")
        archived = _truthy(request.arg("archived"))
        properties = body.get("properties") or []
        history = body.get("propertiesWithHistory") or []
        results, missing = [], []
        for item in inputs:
            raw = item.get("id") if isinstance(item, dict) else None
            record = self._find(object_type, raw, id_property, archived=archived)
            if record is None:
                missing.append(str(raw))
            else:
                results.append(self._render(object_type, record, properties,
                                            with_history=history))
        errors = [self._not_found_error(object_type, missing)] if missing else []
        return self._batch_response(200, results, errors, started)

    def batch_create(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        # Validate every input before writing any: a batch create is all-or-nothing
        # (unconfirmed upstream; HubSpot answers one 400/409 for the whole batch).
        emails: set[str] = set()
        for item in inputs:
            if not isinstance(item, dict):
                raise HubSpotError(400, "each input must be an object with `properties`")
            props = self._normalise(object_type, item.get("properties"))
            self._inline_associations(object_type, item.get("associations"))
            if object_type == "contacts":
                self._check_email(props, None)
                email = (props.get("email") or "").strip().lower()
                if email and email in emails:
                    raise HubSpotError(409, f"Duplicate email in batch input: {email}",
                                       category="CONFLICT")
                emails.add(email)
            if object_type == "deals":
                self._check_deal(dict(props), None)
        now = self.now_ms()
        records = [self._create_one(object_type, item, now) for item in inputs]
        self._touch()
        return self._batch_response(
            201, [self._render(object_type, r, self._written(object_type, r.props))
                  for r in records], [], started)

    def batch_update(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        seen: set[str] = set()
        plan: list[tuple[_Record, dict[str, str]]] = []
        missing: list[str] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") is None:
                raise HubSpotError(400, "each input needs `id` and `properties`")
            raw = str(item["id"])
            if raw in seen:
                raise HubSpotError(400, f"Duplicate IDs found in batch input: [{raw}]. IDs "
                                   "must be unique")
            seen.add(raw)
            props = self._normalise(object_type, item.get("properties"))
            record = self._find(object_type, raw, item.get("idProperty"))
            if record is None:
                missing.append(raw)
                continue
            self._validate_update(object_type, record, props)
            plan.append((record, props))
        now = self.now_ms()
        for record, props in plan:
            self._apply_update(object_type, record, props, now)
        if plan:
            self._touch()
        errors = [self._not_found_error(object_type, missing)] if missing else []
        return self._batch_response(
            200, [self._render(object_type, r, self._written(object_type, p)) for r, p in plan],
            errors, started)

    def batch_upsert(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        now = self.now_ms()
        results = []
        for item in inputs:
            if not isinstance(item, dict) or not item.get("idProperty") or item.get("id") is None:
                raise HubSpotError(400, "each upsert input needs `idProperty`, `id` and "
                                   "`properties`")
            id_property = item["idProperty"]
            if id_property not in _UNIQUE[object_type] or id_property == "hs_object_id":
                # upsert needs a unique property that can be set on create (upsert docs)
                raise HubSpotError(400, f"{id_property} is not a unique property of "
                                   f"{object_type}; upsert needs a unique idProperty")
        for item in inputs:
            props = self._normalise(object_type, item.get("properties"))
            record = self._find(object_type, item["id"], item["idProperty"])
            if record is None:
                raw = dict(item.get("properties") or {})
                raw.setdefault(item["idProperty"], str(item["id"]))
                record = self._create_one(object_type, {"properties": raw}, now)
                created = True
            else:
                self._validate_update(object_type, record, props)
                self._apply_update(object_type, record, props, now)
                created = False
            results.append({**self._render(object_type, record, self._written(
                object_type, props if not created else record.props)), "new": created})
        self._touch()
        return self._batch_response(200, results, [], started)

    def batch_archive(self, request: Request) -> Response:
        object_type = self._type_of(request)
        _, inputs = self._batch_inputs(request)
        now = self.now_ms()
        for item in inputs:
            record = self._find(object_type, item.get("id") if isinstance(item, dict) else None)
            if record is not None:
                self._archive(object_type, record, now)
        self._touch()
        return Response(204)

    # ----------------------------------------------------------------- search
    def search_objects(self, request: Request) -> Response:
        object_type = self._type_of(request)
        body = self._body(request)
        limit = body.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= (
                SEARCH_LIMIT_MAX):
            raise HubSpotError(400, f"limit must be between 0 and {SEARCH_LIMIT_MAX}")
        after_raw = body.get("after") or "0"
        try:
            after = int(str(after_raw))
        except ValueError:
            raise HubSpotError(400, f"after must be an integer offset, got {after_raw!r}") from None
        if after >= SEARCH_RESULTS_CAP or after < 0:
            # "The search endpoints are limited to 10,000 total results for any given query.
            # Attempting to page beyond 10,000 will result in a 400 error." (search guide)
            raise HubSpotError(400, f"The search API cannot page beyond "
                               f"{SEARCH_RESULTS_CAP} results (after={after}).")
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > SEARCH_QUERY_MAX):
            raise HubSpotError(400, f"query must be a string of at most {SEARCH_QUERY_MAX} "
                               "characters")
        ids = self._search_ids(object_type, body)
        store = self.objects[object_type]
        window = ids[after:after + limit]
        results = [self._render(object_type, store.records[i], body.get("properties"))
                   for i in window]
        out: dict[str, Any] = {"total": len(ids), "results": results}
        if after + limit < len(ids) and limit > 0:
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    def _search_ids(self, object_type: str, body: dict[str, Any]) -> list[int]:
        key = json.dumps([object_type, body.get("filterGroups"), body.get("sorts"),
                          body.get("query")], sort_keys=True, default=str)
        cached = self._search_cache.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]  # validated when it was cached: the same body compiles the same
        matcher = compile_filter_groups(body.get("filterGroups"), KINDS)
        sorts = parse_sorts(body.get("sorts"))
        text = query_predicate(body.get("query"), _SEARCHABLE[object_type])
        store = self.objects[object_type]
        matched = [r for r in (store.records[i] for i in store.ids)
                   if not r.archived and matcher(r.props) and text(r.props)]
        if sorts:
            name, descending = sorts[0]
            present = [r for r in matched if r.props.get(name)]
            absent = [r for r in matched if not r.props.get(name)]
            present.sort(key=lambda r: (KINDS.key(name, r.props[name]), r.id),
                         reverse=descending)
            matched = present + absent  # records without the property come last
        ids = [r.id for r in matched]
        if len(self._search_cache) > 32:
            self._search_cache.clear()
        self._search_cache[key] = (self._version, ids)
        return ids

    # ==================================================================== associations
    def _targets(self, from_type: str, from_id: int, to_type: str
                 ) -> Iterator[tuple[int, set[int]]]:
        """Active associated records and their type ids (archived targets hidden)."""
        store = self.objects[to_type]
        for to_id, type_ids in self.associations.get((from_type, from_id), {}).get(
                to_type, {}).items():
            record = store.records.get(to_id)
            if record is not None and not record.archived and type_ids:
                yield to_id, type_ids

    def _associate(self, from_type: str, from_id: int, to_type: str, to_id: int,
                   type_id: int) -> None:
        type_ids = {type_id}
        if type_id in _PRIMARY_IMPLIES:
            type_ids.add(_PRIMARY_IMPLIES[type_id])
            if type_id in (1, 5):
                self._demote_primary(from_type, from_id, to_type, type_id, keep=to_id)
            else:  # 2 / 6 set the primary from the company's side
                self._demote_primary(to_type, to_id, from_type, INVERSE_TYPE[type_id],
                                     keep=from_id)
        for t in type_ids:
            self.associations.setdefault((from_type, from_id), {}).setdefault(
                to_type, {}).setdefault(to_id, set()).add(t)
            self.associations.setdefault((to_type, to_id), {}).setdefault(
                from_type, {}).setdefault(from_id, set()).add(INVERSE_TYPE[t])

    def _demote_primary(self, from_type: str, from_id: int, to_type: str, type_id: int,
                        keep: int) -> None:
        # A contact (or deal) has one primary company: a new primary replaces the old one.
        for other_id, type_ids in self.associations.get((from_type, from_id), {}).get(
                to_type, {}).items():
            if other_id != keep and type_id in type_ids:
                type_ids.discard(type_id)
                self.associations[(to_type, other_id)][from_type][from_id].discard(
                    INVERSE_TYPE[type_id])

    def _dissociate(self, from_type: str, from_id: int, to_type: str, to_id: int,
                    type_ids: Iterable[int] | None = None) -> None:
        forward = self.associations.get((from_type, from_id), {}).get(to_type, {})
        current = forward.get(to_id)
        if not current:
            return
        remove = set(current) if type_ids is None else set(type_ids) & current
        if type_ids is not None:
            # removing the unlabeled type removes the primary one too (it cannot stand alone)
            remove |= {p for p, u in _PRIMARY_IMPLIES.items() if u in remove and p in current}
        current -= remove
        backward = self.associations[(to_type, to_id)][from_type][from_id]
        backward -= {INVERSE_TYPE[t] for t in remove}
        if not current:
            del forward[to_id]
            del self.associations[(to_type, to_id)][from_type][from_id]

    def _drop_associations(self, object_type: str, object_id: int) -> None:
        for to_type, targets in list(self.associations.get((object_type, object_id), {}).items()):
            for to_id in list(targets):
                self._dissociate(object_type, object_id, to_type, to_id)
        self.associations.pop((object_type, object_id), None)

    def _assoc_types(self, request: Request) -> tuple[str, str]:
        return (self._object_type(request.path_params["fromObjectType"]),
                self._object_type(request.path_params["toObjectType"]))

    def assoc_batch_read(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        results, errors = [], []
        for item in inputs:
            raw = item.get("id") if isinstance(item, dict) else None
            record = self._find(from_type, raw)
            targets = sorted(self._targets(from_type, record.id, to_type)) if record else []
            if not targets:
                # unconfirmed wording; HubSpot reports inputs without associations as errors
                errors.append(_batch_error(
                    f"No {_SINGULAR[to_type]} is associated with {_SINGULAR[from_type]} {raw}.",
                    {"fromObjectId": [str(raw)]},
                    subCategory="crm.associations.NO_ASSOCIATIONS_FOUND"))
                continue
            page, following = _targets_page(targets, item.get("after"), ASSOCIATIONS_PAGE)
            result: dict[str, Any] = {
                "from": {"id": str(record.id)},  # type: ignore[union-attr]
                "to": [_association_to(to_id, type_ids) for to_id, type_ids in page],
            }
            if following is not None:
                result["paging"] = {"next": {"after": following}}
            results.append(result)
        return self._batch_response(200, results, errors, started)

    def _pair_inputs(self, request: Request, from_type: str, to_type: str,
                     item: Any) -> tuple[_Record | None, _Record | None, str]:
        from_raw = (item.get("from") or {}).get("id") if isinstance(item, dict) else None
        to_raw = (item.get("to") or {}).get("id") if isinstance(item, dict) else None
        return self._find(from_type, from_raw), self._find(to_type, to_raw), f"{from_raw}→{to_raw}"

    def assoc_batch_create(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        results, errors = [], []
        for item in inputs:
            types = item.get("types") if isinstance(item, dict) else None
            if not isinstance(types, list) or not types:
                raise HubSpotError(400, "each input needs `from`, `to` and `types`")
            type_ids = [self._checked_type(t, from_type, to_type) for t in types]
            source, target, label = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                errors.append(_unassociable(label))
                continue
            for type_id in type_ids:
                self._associate(from_type, source.id, to_type, target.id, type_id)
            results.append(_labels_between(from_type, source.id, to_type, target.id, type_ids))
        self._touch()
        return self._batch_response(201, results, errors, started)

    def assoc_batch_default(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        type_id = DEFAULT_TYPE.get((from_type, to_type))
        if type_id is None:
            raise HubSpotError(400, f"No default association between {from_type} and {to_type}")
        results, errors = [], []
        for item in inputs:
            source, target, label = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                errors.append(_unassociable(label))
                continue
            self._associate(from_type, source.id, to_type, target.id, type_id)
            results.append(_default_association(source.id, target.id, type_id))
        self._touch()
        # The SDK maps only 200 here; per-input failures are listed with numErrors.
        response = self._batch_response(200, results, errors, started)
        response.status = 200
        return response

    def assoc_batch_archive(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        _, inputs = self._batch_inputs(request)
        for item in inputs:
            from_raw = (item.get("from") or {}).get("id") if isinstance(item, dict) else None
            source = self._find(from_type, from_raw)
            if source is None:
                continue
            for to in item.get("to") or []:
                target = self._find(to_type, to.get("id") if isinstance(to, dict) else None)
                if target is not None:
                    self._dissociate(from_type, source.id, to_type, target.id)
        self._touch()
        return Response(204)

    def assoc_batch_labels_archive(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        _, inputs = self._batch_inputs(request)
        for item in inputs:
            source, target, _ = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                continue
            type_ids = [t.get("associationTypeId") for t in item.get("types") or []
                        if isinstance(t, dict)]
            self._dissociate(from_type, source.id, to_type, target.id,
                             [t for t in type_ids if isinstance(t, int)])
        self._touch()
        return Response(204)

    def assoc_list(self, request: Request) -> Response:
        from_type = self._object_type(request.path_params["objectType"])
        to_type = self._object_type(request.path_params["toObjectType"])
        record = self._find(from_type, request.path_params["objectId"])
        if record is None:
            raise HubSpotError(404, "Object not found.", category="OBJECT_NOT_FOUND")
        limit = self._limit(request, ASSOCIATIONS_PAGE, ASSOCIATIONS_PAGE)
        targets = sorted(self._targets(from_type, record.id, to_type))
        page, following = _targets_page(targets, request.arg("after"), limit)
        body: dict[str, Any] = {"results": [_association_to(to_id, type_ids)
                                            for to_id, type_ids in page]}
        if following is not None:
            body["paging"] = {"next": {"after": following}}
        return Response(200, body)

    def _one_pair(self, request: Request, from_key: str = "objectType",
                  from_id_key: str = "objectId") -> tuple[str, _Record, str, _Record]:
        from_type = self._object_type(request.path_params[from_key])
        to_type = self._object_type(request.path_params["toObjectType"])
        source = self._find(from_type, request.path_params[from_id_key])
        target = self._find(to_type, request.path_params["toObjectId"])
        if source is None or target is None:
            raise HubSpotError(404, "Object not found.", category="OBJECT_NOT_FOUND")
        return from_type, source, to_type, target

    def assoc_put_labeled(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request)
        specs = request.json()
        if not isinstance(specs, list) or not specs:
            raise HubSpotError(400, "expected a list of association specs")
        for spec in specs:
            type_id = self._checked_type(spec, from_type, to_type)
            self._associate(from_type, source.id, to_type, target.id, type_id)
        self._touch()
        type_ids = dict(self._targets(from_type, source.id, to_type)).get(target.id, set())
        return Response(201, _labels_between(from_type, source.id, to_type, target.id,
                                             type_ids))

    def assoc_put_default(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request, "fromObjectType",
                                                            "fromObjectId")
        type_id = DEFAULT_TYPE.get((from_type, to_type))
        if type_id is None:
            raise HubSpotError(400, f"No default association between {from_type} and {to_type}")
        started = self.now_ms()
        self._associate(from_type, source.id, to_type, target.id, type_id)
        self._touch()
        return self._batch_response(
            200, [_default_association(source.id, target.id, type_id)], [], started)

    def assoc_delete(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request)
        self._dissociate(from_type, source.id, to_type, target.id)
        self._touch()
        return Response(204)

    # ==================================================================== seeding & state
    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]:
        """Add a synthetic account (see `synthetic.generate`), with associations.

        A person whose email differs from an earlier one only by case gets no email here:
        HubSpot keeps contact emails unique case-insensitively, so that duplicate cannot
        exist in a real portal (it can in Pipedrive).
        """
        now_s = self.clock()
        account = synthetic.generate(seed=seed, contacts=contacts, companies=companies,
                                     deals=deals, now=datetime.fromtimestamp(now_s, tz=UTC))
        pipeline = self.pipelines[DEFAULT_PIPELINE_ID]
        stages = self._ordered(self._active_stages(pipeline))
        open_stages = [s["id"] for s in stages if not _truthy(s["metadata"].get("isClosed"))]
        won = next((s["id"] for s in stages if s["metadata"].get("probability") == "1.0"),
                   stages[-1]["id"])
        lost = next((s["id"] for s in stages if s["metadata"].get("probability") == "0.0"),
                    stages[-1]["id"])
        self._last_ms = max(self._last_ms, int(now_s * 1000))

        def ms(when: datetime) -> int:
            return int(when.timestamp() * 1000)

        company_ids = []
        for c in account.companies:
            props = {"name": c.name, "domain": c.domain, "industry": c.industry,
                     "city": c.city, "country": c.country}
            company_ids.append(self._store_new("companies", props, ms(c.created_at),
                                               ms(c.modified_at)).id)
        person_ids = []
        links = 0
        emails = self.objects["contacts"].by_email
        for p in account.people:
            props = {"firstname": p.first_name, "lastname": p.last_name, "phone": p.phone,
                     "jobtitle": p.job_title}
            if p.email and p.email.lower() not in emails:
                props["email"] = p.email
            if p.marketing_consent:
                props["hs_legal_basis"] = "Freely given consent from contact"
            record_id = self._store_new("contacts", props, ms(p.created_at), ms(p.modified_at)).id
            person_ids.append(record_id)
            if p.company_index is not None:
                self._associate("contacts", record_id, "companies",
                                company_ids[p.company_index], 1)
                links += 1
        for d in account.deals:
            if d.status == "won":
                stage = won
            elif d.status == "lost":
                stage = lost
            else:
                stage = open_stages[synthetic.stage_index(d.stage_fraction, len(open_stages))]
            props = {"dealname": d.title, "amount": f"{d.amount:.2f}", "pipeline": pipeline["id"],
                     "dealstage": stage, "closedate": iso(ms(d.close_date))}
            record_id = self._store_new("deals", props, ms(d.created_at), ms(d.modified_at)).id
            if d.company_index is not None:
                self._associate("deals", record_id, "companies", company_ids[d.company_index], 5)
                links += 1
            if d.person_index is not None:
                self._associate("deals", record_id, "contacts", person_ids[d.person_index], 3)
                links += 1
        self._touch()
        return {"contacts": len(person_ids), "companies": len(company_ids),
                "deals": len(account.deals), "associations": links}

    def dump_state(self) -> dict[str, Any]:
        return {
            "counters": [self._last_ms, self._next_object_id, self._next_pipeline_id,
                         self._next_stage_id],
            "pipelines": self.pipelines,
            "audit": self.audit,
            "gdpr_blocklist": sorted(self.gdpr_blocklist),
            "objects": {
                t: [[r.id, r.props, r.created_ms, r.updated_ms, r.archived, r.archived_ms]
                    for r in (store.records[i] for i in store.ids)]
                for t, store in self.objects.items()
            },
            "associations": [
                [from_type, from_id, to_type, to_id, sorted(type_ids)]
                for (from_type, from_id), by_type in self.associations.items()
                for to_type, targets in by_type.items()
                for to_id, type_ids in targets.items()
                if type_ids
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.reset()
        (self._last_ms, self._next_object_id, self._next_pipeline_id,
         self._next_stage_id) = state["counters"]
        self.pipelines = state["pipelines"]
        self.audit = state.get("audit", {})
        self.gdpr_blocklist = set(state.get("gdpr_blocklist", []))
        for object_type, rows in state["objects"].items():
            store = self.objects[object_type]
            for record_id, props, created, updated, archived, archived_ms in rows:
                record = _Record(record_id, props, created, updated)
                record.archived, record.archived_ms = archived, archived_ms
                store.add(record)
                if object_type == "contacts":
                    self._index_email(record, None)
        for from_type, from_id, to_type, to_id, type_ids in state["associations"]:
            self.associations.setdefault((from_type, from_id), {}).setdefault(
                to_type, {})[to_id] = set(type_ids)
        self._touch()
