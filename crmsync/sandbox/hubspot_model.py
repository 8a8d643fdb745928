"""The HubSpot emulator's data model: object types, properties, association types, the
default pipeline, records and their store, and the error a handler raises."""

from __future__ import annotations

from bisect import bisect_left, insort
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

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
TYPE_ALIASES = {
    **{t: t for t in OBJECT_TYPES},
    "contact": "contacts", "company": "companies", "deal": "deals",
    "0-1": "contacts", "0-2": "companies", "0-3": "deals",
}
# HubSpot's other standard object types: the sandbox holds no records of them, so reads
# towards them find nothing (rather than refusing the type).
EMPTY_TYPES = frozenset({
    "tickets", "ticket", "0-5", "notes", "note", "0-46", "calls", "call", "0-48", "emails",
    "email", "0-49", "meetings", "meeting", "0-47", "tasks", "task", "0-27", "line_items",
    "line_item", "0-8", "products", "product", "0-7", "quotes", "quote", "0-14",
    "communications", "0-18", "postal_mail", "0-116",
})
# Deal properties HubSpot calculates per pipeline stage: when a deal last entered and left
# it (`hs_date_entered_<stageId>`, `hs_date_exited_<stageId>`; HubSpot's deal properties).
STAGE_DATE_PREFIXES = ("hs_date_entered_", "hs_date_exited_")
ASSOC_BATCH_READ_MAX = 1_000  # v4 batch read inputs (developer changelog, 2025-02)
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}

# Properties each type knows. Writing any other name is refused like HubSpot does
# (PROPERTY_DOESNT_EXIST); the read-only ones are maintained here and ignored on write.
MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
             "deals": "hs_lastmodifieddate"}
PROPERTIES: dict[str, frozenset[str]] = {
    "contacts": frozenset({
        "email", "firstname", "lastname", "phone", "mobilephone", "jobtitle", "company",
        "website", "address", "city", "state", "zip", "country", "lifecyclestage",
        "hs_lead_status", "hs_legal_basis", "hubspot_owner_id", "hs_marketable_status",
        "hs_email_optout", "industry", "createdate", "lastmodifieddate", "hs_object_id",
        "hs_additional_emails", "salutation", "message", "notes_last_updated",
        "hs_merged_object_ids",
    }),
    "companies": frozenset({
        "name", "domain", "industry", "city", "state", "country", "zip", "address", "phone",
        "website", "description", "numberofemployees", "annualrevenue", "lifecyclestage",
        "hubspot_owner_id", "type", "createdate", "hs_lastmodifieddate", "hs_object_id",
        "notes_last_updated", "hs_merged_object_ids",
    }),
    "deals": frozenset({
        "dealname", "amount", "dealstage", "pipeline", "closedate", "dealtype", "description",
        "hubspot_owner_id", "hs_priority", "deal_currency_code", "createdate",
        "hs_lastmodifieddate", "hs_object_id", "closed_lost_reason", "closed_won_reason",
        "hs_deal_stage_probability", "notes_last_updated", "hs_merged_object_ids",
        "hs_is_closed", "hs_is_closed_won",
    }),
}
# What a record shows when the request names no `properties` (as HubSpot's defaults).
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
# Shown whatever `properties` asks for (HubSpot always adds these three).
ALWAYS = {t: ("createdate", "hs_object_id", MODIFIED[t]) for t in OBJECT_TYPES}
# What a search `query` looks in: the default searchable properties of the search guide
# (those of them this emulator knows; contacts also search fax and hs_marketable_until_renewal).
SEARCHABLE = {
    "contacts": ("firstname", "lastname", "email", "phone", "hs_additional_emails",
                 "mobilephone", "company"),
    "companies": ("website", "phone", "name", "domain"),
    "deals": ("dealname", "pipeline", "dealstage", "description", "dealtype"),
}
SEARCH_QUERY_MAX = 3000  # spec: "The search query string, up to 3000 characters."
DATETIMES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate",
                        "notes_last_updated"})
NUMBERS = frozenset({"amount", "hs_object_id", "numberofemployees", "annualrevenue",
                      "hs_deal_stage_probability", "hubspot_owner_id"})
# Properties whose values are unique per type, usable as `idProperty`.
UNIQUE = {"contacts": ("email", "hs_object_id"), "companies": ("hs_object_id",),
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
PRIMARY_IMPLIES = {1: 279, 2: 280, 5: 341, 6: 342}
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


def truthy(value: str | None) -> bool:
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


def object_not_found() -> HubSpotError:
    return HubSpotError(404, "Object not found.  objectId are usually numeric.",
                        category="OBJECT_NOT_FOUND")


def batch_error(message: str, context: dict[str, list[str]], **extra: str) -> dict[str, Any]:
    """One entry of a batch response's `errors` (an input that names no usable object)."""
    return {"status": "error", "category": "OBJECT_NOT_FOUND", **extra, "message": message,
            "context": context, "links": {}, "errors": []}


def unassociable(pair: str) -> dict[str, Any]:
    return batch_error(f"Could not associate {pair}: object not found", {"ids": [pair]})


def association_to(to_id: int, type_ids: Iterable[int]) -> dict[str, Any]:
    """A v4 read's associated record with its association types."""
    return {"toObjectId": to_id, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOCIATION_TYPES[t][2]}
        for t in sorted(type_ids)]}


def targets_page(targets: list[tuple[int, set[int]]], after: Any,
                  limit: int) -> tuple[list[tuple[int, set[int]]], str | None]:
    """The page of `targets` (sorted by id) from id `after` on, and the next page's `after`."""
    start = bisect_left([to_id for to_id, _ in targets], int(str(after))) if after else 0
    end = start + limit
    return targets[start:end], str(targets[end][0]) if end < len(targets) else None


def labels_between(from_type: str, from_id: int, to_type: str, to_id: int,
                    type_ids: Iterable[int]) -> dict[str, Any]:
    """v4 `LabelsBetweenObjectPair`: the labels of the pair's association types."""
    return {"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": from_id,
            "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": to_id,
            "labels": sorted({label for t in type_ids if (label := ASSOCIATION_TYPES[t][2])})}


def default_association(from_id: int, to_id: int, type_id: int) -> dict[str, Any]:
    """One result of creating a default association."""
    return {"from": {"id": str(from_id)}, "to": {"id": str(to_id)},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": type_id}}


class Record:
    __slots__ = ("archived", "archived_ms", "created_ms", "id", "index_log", "props",
                 "updated_ms")

    def __init__(self, record_id: int, props: dict[str, str], created_ms: int,
                 updated_ms: int) -> None:
        self.id = record_id
        self.props = props
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived = False
        self.archived_ms = 0
        # Search index lag only: [(visible from ms, props, archived)], oldest first; None
        # while search sees the live record (no lag when it was last written).
        self.index_log: list[tuple[int, dict[str, str], bool]] | None = None


class ObjectStore:
    """Records of one type: by id, with ids kept sorted for cursor paging."""

    def __init__(self) -> None:
        self.records: dict[int, Record] = {}
        self.ids: list[int] = []  # sorted; archived records stay listed (archived=true)
        self.by_email: dict[str, int] = {}  # contacts: lower-cased email -> id

    def add(self, record: Record) -> None:
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

    def iter_from(self, start: int, archived: bool) -> Iterator[Record]:
        ids, records = self.ids, self.records
        for index in range(bisect_left(ids, start), len(ids)):
            record = records[ids[index]]
            if record.archived == archived:
                yield record
