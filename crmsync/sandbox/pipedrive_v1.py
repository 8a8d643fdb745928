"""The v1 endpoints of the Pipedrive emulator that API v2 did not replace, as the current
`openapi-v1.yaml` shapes them: field definitions by id, `GET /recents`, and person and
organization merges.

v1 prints records in its legacy shape (`active_flag`, `YYYY-MM-DD HH:MM:SS` times, custom
fields as top-level hash keys, `email`/`phone` arrays); `v1_record` converts a stored v2 row.

Decisions the spec leaves open:
- Recents lists what changed strictly after `since_timestamp` ("all recent changes occurred
  after the given timestamp"), oldest first, ties by item type then id; each record once, in
  its current state. Deleted deals, persons and organizations stay listed there for the 30
  days they stay readable, with the deletion flags of the v1 shapes: `active_flag: false`
  for persons and organizations, `active: false, deleted: true, status: "deleted"` for deals
  (v1's deal status enum has `deleted`). Item types the emulator does not hold (activity,
  file, …) are accepted and contribute nothing.
- Merge: `PUT /persons/{id}/merge {merge_with_id}` merges the person `{id}` INTO
  `merge_with_id` ("The ID of the person that will not be overwritten. This person's data
  will be prioritized in case of conflict"). The survivor keeps its values and gains what it
  lacks (emails and phones are united, empty fields and custom fields filled); the other
  record is deleted (soft, so recents and `status=deleted` show it) and its deals - for an
  organization also its persons - move to the survivor. Organizations merge the same way.
- Deleting a custom field removes its values from every record of the entity; options
  removed from an enum/set field are removed from the values that used them. Neither moves
  a record's `update_time` (a change of the schema, not of the record).
"""

from __future__ import annotations

import heapq
import re
from itertools import islice
from typing import TYPE_CHECKING, Any

from crmsync.sandbox import pipedrive_input as inp
from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.pipedrive_fields import v1_field, v1_time
from crmsync.sandbox.pipedrive_input import invalid, not_found
from crmsync.sandbox.pipedrive_store import parse_time

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.sandbox.pipedrive import PipedriveEmulator
    from crmsync.sandbox.pipedrive_store import Row

# GET /recents `items` (openapi-v1.yaml); the emulator holds the types mapped to a table
RECENT_ITEMS = ("activity", "activityType", "deal", "file", "filter", "note", "person",
                "organization", "pipeline", "product", "stage", "user")
RECENT_TABLES = {"deal": "deals", "person": "persons", "organization": "organizations",
                 "pipeline": "pipelines", "stage": "stages"}
_V1_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
OWNER_NAME = "Sandbox User"  # the one user of an emulated company (DEFAULT_OWNER_ID)


def _ok(data: Any, additional_data: Any = None) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return Response(200, body)


def _time(stored: str | None) -> str | None:
    return None if stored is None else v1_time(stored)


# ---- field definitions by id ----------------------------------------------------------------

def get_field(account: PipedriveEmulator, entity: str, request: Request) -> Response:
    definition = account.fields.by_id(entity, inp.path_id(request))
    if definition is None:
        raise not_found("Field")
    return _ok(v1_field(definition))


def update_field(account: PipedriveEmulator, entity: str, request: Request) -> Response:
    field_id = inp.path_id(request)
    body = inp.json_body(request, ("name", "options", "add_visible_flag"))
    before = account.fields.by_id(entity, field_id)
    if before is None:
        raise not_found("Field")
    after = account.fields.update(entity, field_id, body, now=account.now())
    if before["options"] != after["options"]:
        kept = {o["id"] for o in after["options"] or []}
        _sweep_values(account, entity, after["key"], kept)
    return _ok(v1_field(after))


def delete_field(account: PipedriveEmulator, entity: str, request: Request) -> Response:
    field_id = inp.path_id(request)
    if account.fields.by_id(entity, field_id) is None:
        raise not_found("Field")
    definition = account.fields.delete(entity, field_id)
    _sweep_values(account, entity, definition["key"], None)
    return _ok({"id": field_id})


def _sweep_values(account: PipedriveEmulator, entity: str, key: str,
                  options: set[int] | None) -> None:
    """Drop a deleted field's values (`options` None) or the removed options of one."""
    table = account.tables[f"{entity}s"]
    for row in list(table.rows.values()):
        values = row["custom_fields"]
        if key not in values:
            continue
        value = values[key]
        kept: Any = None
        if options is not None:
            if isinstance(value, list):
                kept = [v for v in value if v in options] or None
            elif value in options:
                kept = value
        custom = {k: v for k, v in values.items() if k != key}
        if kept is not None:
            custom[key] = kept
        table.replace({**row, "custom_fields": custom})


# ---- v1 record shapes -------------------------------------------------------------------------

def _custom_v1(account: PipedriveEmulator, entity: str, row: Row) -> dict[str, Any]:
    """v1 custom fields: top-level hash keys; monetary as `<key>` + `<key>_currency`, options
    as ids (a set's comma-joined)."""
    out: dict[str, Any] = {}
    for key, value in row["custom_fields"].items():
        if isinstance(value, dict) and "currency" in value:
            out[key] = value["value"]
            out[f"{key}_currency"] = value["currency"]
        elif isinstance(value, list):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = value
    return out


def v1_record(account: PipedriveEmulator, item: str, row: Row) -> dict[str, Any]:
    """A stored v2 row in the v1 shape of `GET /recents` for its item type."""
    if item == "person":
        return _v1_person(account, row)
    if item == "organization":
        return _v1_organization(account, row)
    if item == "deal":
        return _v1_deal(account, row)
    if item == "pipeline":
        return {"id": row["id"], "name": row["name"], "url_title": row["name"].lower(),
                "order_nr": row["order_nr"], "active": not row["is_deleted"],
                "deal_probability": row["is_deal_probability_enabled"],
                "add_time": _time(row["add_time"]), "update_time": _time(row["update_time"])}
    return {"id": row["id"], "order_nr": row["order_nr"], "name": row["name"],
            "active_flag": not row["is_deleted"], "deal_probability": row["deal_probability"],
            "pipeline_id": row["pipeline_id"], "rotten_flag": row["is_deal_rot_enabled"],
            "rotten_days": row["days_to_rotten"], "add_time": _time(row["add_time"]),
            "update_time": _time(row["update_time"])}


def _v1_person(account: PipedriveEmulator, row: Row) -> dict[str, Any]:
    org = account.organizations.get(row["org_id"]) if row["org_id"] else None
    person = {
        "id": row["id"], "company_id": 1, "owner_id": row["owner_id"],
        "org_id": row["org_id"], "name": row["name"], "first_name": row["first_name"],
        "last_name": row["last_name"] or None, "active_flag": not row["is_deleted"],
        "phone": [dict(p) for p in row["phones"]], "email": [dict(e) for e in row["emails"]],
        "first_char": row["name"][:1].lower(), "add_time": _time(row["add_time"]),
        "update_time": _time(row["update_time"]), "visible_to": str(row["visible_to"]),
        "picture_id": None, "label": (row["label_ids"] or [None])[0],
        "label_ids": list(row["label_ids"]), "org_name": org["name"] if org else None,
        "owner_name": OWNER_NAME, "cc_email": None,
    }
    return {**person, **_custom_v1(account, "person", row)}


def _v1_organization(account: PipedriveEmulator, row: Row) -> dict[str, Any]:
    address = row.get("address") or {}
    organization: dict[str, Any] = {
        "id": row["id"], "company_id": 1,
        "owner_id": {"id": row["owner_id"], "name": OWNER_NAME, "has_pic": 0,
                     "active_flag": True, "value": row["owner_id"]},
        "name": row["name"], "active_flag": not row["is_deleted"],
        "first_char": row["name"][:1].lower(), "add_time": _time(row["add_time"]),
        "update_time": _time(row["update_time"]), "visible_to": str(row["visible_to"]),
        "label_ids": list(row["label_ids"]), "owner_name": OWNER_NAME,
        "address": address.get("value"),
    }
    for part in ("locality", "country", "postal_code", "route", "street_number"):
        if address.get(part) is not None:
            organization[f"address_{part}"] = address[part]
    return {**organization, **_custom_v1(account, "organization", row)}


def _v1_deal(account: PipedriveEmulator, row: Row) -> dict[str, Any]:
    person = account.persons.get(row["person_id"]) if row["person_id"] else None
    org = account.organizations.get(row["org_id"]) if row["org_id"] else None
    stage = account.stages.get(row["stage_id"])
    deleted = row["is_deleted"]
    deal = {
        "id": row["id"], "creator_user_id": row["creator_user_id"],
        "user_id": row["owner_id"], "person_id": row["person_id"], "org_id": row["org_id"],
        "stage_id": row["stage_id"], "pipeline_id": row["pipeline_id"],
        "title": row["title"], "value": row["value"], "currency": row["currency"],
        "add_time": _time(row["add_time"]), "update_time": _time(row["update_time"]),
        "stage_change_time": _time(row["stage_change_time"]),
        "active": not deleted and row["status"] == "open", "deleted": deleted,
        "is_archived": row["is_archived"],
        "status": "deleted" if deleted else row["status"],
        "probability": row["probability"], "lost_reason": row["lost_reason"],
        "visible_to": str(row["visible_to"]), "close_time": _time(row["close_time"]),
        "won_time": _time(row["won_time"]),
        "first_won_time": _time(account.first_won.get(row["id"])),
        "lost_time": _time(row["lost_time"]),
        "expected_close_date": row["expected_close_date"],
        "stage_order_nr": stage["order_nr"] if stage else 0,
        "person_name": person["name"] if person else None,
        "org_name": org["name"] if org else None,
        "owner_name": OWNER_NAME, "origin": row["origin"], "origin_id": row["origin_id"],
    }
    return {**deal, **_custom_v1(account, "deal", row)}


# ---- recents ---------------------------------------------------------------------------------

def recents(account: PipedriveEmulator, request: Request) -> Response:
    """`GET /recents`: every deal, person, organization, pipeline and stage changed after
    `since_timestamp`, deleted ones included (module docstring), paged by `start`/`limit`."""
    since_raw = request.arg("since_timestamp") or ""
    since = parse_time(since_raw.replace(" ", "T") + "Z") if _V1_TIME.match(since_raw) else None
    if since is None:
        raise invalid("since_timestamp: must be a UTC time YYYY-MM-DD HH:MM:SS")
    items = inp.csv_enum_param(request, "items", RECENT_ITEMS) or list(RECENT_ITEMS)
    start = inp.int_param(request, "start", minimum=0) or 0
    limit = min(inp.int_param(request, "limit") or 100, inp.MAX_LIMIT)
    cutoff = account.purge_cutoff()
    streams = [_changed(account, item, since, cutoff)
               for item in RECENT_ITEMS if item in items and item in RECENT_TABLES]
    merged = heapq.merge(*streams)
    page = list(islice(merged, start, start + limit + 1))
    more = len(page) > limit
    page = page[:limit]
    data = [{"item": item, "id": row["id"], "data": v1_record(account, item, row)}
            for _, _, _, item, row in page]
    pagination: dict[str, Any] = {"start": start, "limit": limit,
                                  "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    last = v1_time(page[-1][0]) if page else since_raw
    return _ok(data, {"since_timestamp": since_raw, "last_timestamp_on_page": last,
                      "pagination": pagination})


def _changed(account: PipedriveEmulator, item: str, since: str,
             cutoff: str) -> Iterator[tuple[str, int, int, str, Row]]:
    """(update_time, item order, id, item, row) of one type's rows changed after `since`."""
    name = RECENT_TABLES[item]
    order = RECENT_ITEMS.index(item)
    purgeable = name in account.deleted_at
    for row in account.tables[name].scan(sort_by="update_time", descending=False, since=since):
        if row["update_time"] == since:
            continue  # "after" the timestamp: strictly later
        if purgeable and row["is_deleted"] and not account.alive(name, row, cutoff):
            continue
        yield row["update_time"], order, row["id"], item, row


# ---- merges ----------------------------------------------------------------------------------

def merge_persons(account: PipedriveEmulator, request: Request) -> Response:
    loser, survivor = _merge(account, "persons", request)
    data = {**_v1_person(account, survivor), "merge_what_id": loser["id"]}
    return _ok(data)


def merge_organizations(account: PipedriveEmulator, request: Request) -> Response:
    _loser, survivor = _merge(account, "organizations", request)
    return _ok({"id": survivor["id"]})


def _merge(account: PipedriveEmulator, name: str, request: Request) -> tuple[Row, Row]:
    loser_id = inp.path_id(request)
    body = inp.json_body(request, ("merge_with_id",))
    survivor_id = inp.integer(body, "merge_with_id", minimum=1)
    if survivor_id is None:
        raise invalid("merge_with_id: is required")
    if survivor_id == loser_id:
        raise invalid("merge_with_id: cannot merge a record with itself")
    noun = "Person" if name == "persons" else "Organization"
    table = account.tables[name]
    loser, survivor = table.get(loser_id), table.get(survivor_id)
    if loser is None or loser["is_deleted"] or survivor is None or survivor["is_deleted"]:
        raise not_found(noun)
    now = account.now()
    merged = dict(survivor)
    for key, value in loser.items():
        if merged.get(key) in (None, "", [], {}) and value not in (None, "", [], {}):
            merged[key] = value
    merged["custom_fields"] = {**loser["custom_fields"], **survivor["custom_fields"]}
    if name == "persons":
        for field in ("emails", "phones"):
            seen = {c["value"].lower() for c in survivor[field]}
            extra = [{**c, "primary": False} for c in loser[field]
                     if c["value"].lower() not in seen]
            merged[field] = [*survivor[field], *extra]
    merged["id"], merged["add_time"] = survivor["id"], survivor["add_time"]
    merged["update_time"] = now
    survivor = table.replace(merged)
    link = "person_id" if name == "persons" else "org_id"
    moved: list[tuple[str, str]] = [("deals", link)]
    if name == "organizations":
        moved.append(("persons", "org_id"))
    for other, field in moved:
        other_table = account.tables[other]
        for row in list(other_table.rows.values()):
            if row[field] == loser_id:
                other_table.replace({**row, field: survivor_id, "update_time": now})
    account.delete(name, loser_id)
    return table.rows[loser_id], survivor
