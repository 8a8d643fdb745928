"""CRM objects v3, one record at a time: list, get, create, update, archive, GDPR delete;
and the validation and rendering every write and read shares."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_catalog import PropertyValueError
from crmsync.sandbox.hubspot_core import HubSpotCore
from crmsync.sandbox.hubspot_model import (
    ALWAYS,
    ASSOCIATION_TYPES,
    DEFAULT_PIPELINE_ID,
    DEFAULT_PROPERTIES,
    LIST_LIMIT_MAX,
    MODIFIED,
    SINGULAR,
    STAGE_DATE_PREFIXES,
    TYPE_ALIASES,
    HubSpotError,
    Record,
    iso,
    object_not_found,
    truthy,
)
from crmsync.sandbox.hubspot_search import parse_instant

if TYPE_CHECKING:
    from collections.abc import Iterable



def _int_or_none(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def next_link(request: Request, after: str, limit: int) -> str:
    """`paging.next.link`: an absolute URL on the sandbox's own base (the request's Host)
    that keeps the query — properties, associations, archived — with the next `after`, so a
    client can follow it as-is (live HubSpot's links are absolute, on api.hubapi.com)."""
    host = request.headers.get("host") or "127.0.0.1"
    query = [(k, v) for k, values in request.query.items() if k not in ("after", "limit")
             for v in values]
    query += [("limit", str(limit)), ("after", after)]
    return f"http://{host}{request.path}?{urlencode(query)}"


class ObjectsApi(HubSpotCore):
    """`/crm/v3/objects/{objectType}[/{objectId}]`."""

    def _normalise(self, object_type: str, props: Any) -> dict[str, str]:
        """Validated, stringified property values; HubSpot refuses unknown names at once."""
        if props is None:
            return {}
        if not isinstance(props, dict):
            raise HubSpotError(400, "properties must be an object of name → value")
        catalog = self.catalog
        problems: list[dict[str, Any]] = []
        out: dict[str, str] = {}
        for name, value in props.items():
            definition = catalog.get(object_type, name)
            if definition is None and object_type == "deals" and name.startswith(
                    STAGE_DATE_PREFIXES):
                definition = catalog.stage_dates([(name.split("_", 3)[3], name)])[name]
            if definition is None:
                problems.append({"isValid": False, "message": f'Property "{name}" does not exist',
                                 "error": "PROPERTY_DOESNT_EXIST", "name": name})
                continue
            if definition["modificationMetadata"]["readOnlyValue"]:
                # Spec (update/batch update): "Read-only and non-existent properties will
                # result in an error."
                problems.append({"isValid": False, "name": name, "error": "READ_ONLY_VALUE",
                                 "message": f"{name} is a read only property; its value "
                                 "cannot be set."})
                continue
            text = "" if value is None else (str(value).lower() if isinstance(value, bool)
                                             else str(value))
            if text and name == "hubspot_owner_id":
                if text not in {o["id"] for o in self.owners if not o["archived"]}:
                    problems.append({"isValid": False, "name": name, "error": "INVALID_OWNER_ID",
                                     "message": f"{text} is not a valid owner id"})
                    continue
            elif text:
                try:
                    text = catalog.check_value(definition, text)
                except PropertyValueError as problem:
                    problems.append(problem.entry)
                    continue
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
        if "dealstage" in props or "pipeline" in props:
            stage = next((s for s in pipeline["stages"] if s["id"] == merged.get("dealstage")),
                         None)
            metadata = stage["metadata"] if stage is not None else {}
            # Calculated by HubSpot from the stage (deals guide: "Is Closed Won", "Is Deal
            # Closed?"); read-only for clients.
            closed = truthy(metadata.get("isClosed"))
            props["hs_is_closed"] = "true" if closed else "false"
            props["hs_is_closed_won"] = (
                "true" if closed and metadata.get("probability") == "1.0" else "false")

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

    def _insert(self, object_type: str, props: dict[str, str], now: int) -> Record:
        created = now
        if props.get("createdate"):
            created = parse_instant(props["createdate"]) or created
        clean = {k: v for k, v in props.items() if v != ""}
        if object_type == "deals" and clean.get("dealstage"):
            clean[STAGE_DATE_PREFIXES[0] + clean["dealstage"]] = iso(now)
        return self._store_new(object_type, clean, created, now)

    def _store_new(self, object_type: str, props: dict[str, str], created: int,
                   modified: int) -> Record:
        """Store a new record under the next id, with its id and times among `props`."""
        record_id = self._next_object_id
        self._next_object_id += 1
        props["createdate"] = iso(created)
        props["hs_object_id"] = str(record_id)
        props[MODIFIED[object_type]] = iso(modified)
        record = Record(record_id, props, created, modified)
        self.objects[object_type].add(record)
        self._after_write(record, modified, new=True)
        if object_type == "contacts":
            self._index_email(record, None)
        return record

    def _apply_update(self, object_type: str, record: Record, props: dict[str, str],
                      now: int) -> None:
        self._before_write(record)
        old_email = record.props.get("email")
        old_stage = record.props.get("dealstage")
        if object_type == "deals" and props.get("dealstage") and props["dealstage"] != old_stage:
            entered, exited = STAGE_DATE_PREFIXES
            props = {**props, entered + props["dealstage"]: iso(now)}
            if old_stage:
                props[exited + old_stage] = iso(now)
        for name, value in props.items():
            if value == "":
                record.props.pop(name, None)  # an empty string clears the property
            else:
                record.props[name] = value
        record.updated_ms = now
        record.props[MODIFIED[object_type]] = iso(now)
        self._after_write(record, now)
        if object_type == "contacts":
            self._index_email(record, old_email)

    def _archive(self, object_type: str, record: Record, now: int) -> None:
        self._before_write(record)
        record.archived = True
        record.archived_ms = now
        record.updated_ms = now
        self._after_write(record, now)
        if object_type == "contacts":
            self._index_email(record, record.props.get("email"))

    def _render(self, object_type: str, record: Record, properties: Iterable[str] | None,
                *, associations: list[str] | None = None,
                with_history: list[str] | None = None) -> dict[str, Any]:
        known = self.catalog.definitions[object_type]
        # Spec (`properties`, `propertiesWithHistory`): "If any of the specified properties
        # are not present on the requested object(s), they will be ignored."
        stage_dates = STAGE_DATE_PREFIXES if object_type == "deals" else ()
        names = [n for n in properties if n in known or (stage_dates and n.startswith(
            stage_dates))] if properties else (
            DEFAULT_PROPERTIES[object_type])
        with_history = [n for n in with_history or () if n in known]
        props = {name: record.props.get(name) for name in (*names, *ALWAYS[object_type])}
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
                to_type = TYPE_ALIASES.get(to_name.lower())
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

    def list_objects(self, request: Request) -> Response:
        object_type = self._type_of(request)
        limit = self._limit(request, 10, LIST_LIMIT_MAX)
        after_raw = request.arg("after")
        try:
            after = int(after_raw) if after_raw else 0
        except ValueError:
            raise HubSpotError(400, f"after must be a cursor from paging.next.after, got "
                               f"{after_raw!r}") from None
        archived = truthy(request.arg("archived"))
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
            body["paging"] = {"next": {"after": str(next_after),
                                       "link": next_link(request, str(next_after), limit)}}
        return Response(200, body)

    def get_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        archived = truthy(request.arg("archived"))
        record = self._find(object_type, request.path_params["objectId"],
                            request.arg("idProperty"), archived=archived)
        if record is None and not archived and not request.arg("idProperty"):
            # A merged-away id answers the record it was merged into (merge guide: "the
            # secondary record's ID … redirects to the primary record"); unconfirmed for
            # companies and deals, treated alike here.
            survivor = self.merged_into[object_type].get(_int_or_none(
                request.path_params["objectId"]) or 0)
            record = self._find(object_type, survivor) if survivor is not None else None
        if record is None:
            raise object_not_found()
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
                        400, f"No {SINGULAR[to_type]} with ID {to_id} exists",
                        category="VALIDATION_ERROR", subCategory="OBJECT_NOT_FOUND")
                out.append((to_type, int(str(to_id)), type_id))
        return out

    def _create_one(self, object_type: str, item: Any, now: int) -> Record:
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
        return list(dict.fromkeys((*DEFAULT_PROPERTIES[object_type], *props)))

    def create_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        body = self._body(request)
        if not isinstance(body.get("properties"), dict):
            # An empty body creates nothing: the spec requires `properties` (and
            # `associations`, which may be empty) in SimplePublicObjectInputForCreate.
            raise HubSpotError(400, "Invalid input JSON: `properties` is required to create "
                               f"a {SINGULAR[object_type]}", subCategory="MISSING_PROPERTIES")
        record = self._create_one(object_type, body, self.now_ms())
        self._touch()
        return Response(201, self._render(object_type, record, self._written(
            object_type, (body.get("properties") or {}))))

    def update_object(self, request: Request) -> Response:
        object_type = self._type_of(request)
        record = self._find(object_type, request.path_params["objectId"],
                            request.arg("idProperty"))
        if record is None:
            raise object_not_found()
        props = self._normalise(object_type, self._body(request).get("properties"))
        self._validate_update(object_type, record, props)
        self._apply_update(object_type, record, props, self.now_ms())
        self._touch()
        return Response(200, self._render(object_type, record, self._written(object_type, props)))

    def _validate_update(self, object_type: str, record: Record, props: dict[str, str]) -> None:
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
            raise object_not_found()
        # Permanently deleted: gone from lists, archived lists and associations.
        email = (record.props.get("email") or "").strip().lower()
        if self.objects["contacts"].by_email.get(email) == record.id:
            del self.objects["contacts"].by_email[email]
        self._drop_associations("contacts", record.id)
        self.objects["contacts"].remove(record.id)
        self._touch()
        return Response(204)
