"""Pipedrive persons, organizations and deals written back: the `RecordWriter` side of
`PipedriveAdapter` (mixed in as `PipedriveWrites`).

API v2 has no batch writes: one request per record (`POST`, `PATCH`, `DELETE`
`/api/v2/{persons|organizations|deals}[/{id}]`, 5 / 5 / 3 tokens), paced by the adapter's
shared `HttpPolicy`. What each write costs, in calls:

- update or delete: 1 (a delete of a record already gone counts as done); an update that
  names only one of `first_name` / `last_name` also reads the person (v2 writes a person's
  `name` whole);
- create: persons and organizations are **looked for first** so that a create whose answer
  was lost, or a record that already exists, is never duplicated: a person by email
  (`GET /api/v2/persons/search?term=…&fields=email&exact_match=true`), an organization by
  its domain custom field when the account has one (a custom field named `domain`, as the
  pull names it) or else by exact name; found, it is updated instead. 2 calls (search costs
  20 tokens). Deals are never matched (DESIGN.md, identity): 1 call; the policy's
  `find_existing` still guards a create retried after an answer that may have been lost;
- the field definitions (`/api/v1/{deal,person,organization}Fields`), read once per type and
  adapter (shared with the pull): custom fields are written under their 40-character keys
  and option labels as option ids.

Associations are fields: a person's company is `org_id`; a deal's person and company are
`person_id` / `org_id` (one each; `associations=()` clears them). Deal `status` is written as
Pipedrive's own open / won / lost. The answer carries the whole record, so
`WriteResult.record` is complete, mapped exactly as a pull maps it.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmsync.adapters.http_policy import Reply, parse_body
from crmsync.adapters.pipedrive_records import ENTITY, _Mapper, _time
from crmsync.adapters.records import RemoteRecord, WriteResult
from crmsync.errors import (
    FatalRemoteError,
    RemoteError,
    RetriableRemoteError,
    TokenRefusedError,
)
from crmsync.keys import consent_value

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from crmsync.adapters.records import FieldDefinition, RecordWrite
    from crmsync.names import ObjectType

READ_IDS = 100  # v2 lists take up to 100 `ids` (openapi-v2.yaml, `ids`)
# Search endpoints have a burst window of their own (10 per 2 s, not the plan's 40): paced
# apart, so their headers never stand for the window every other request shares.
SEARCH_BUCKET = "search"
_DEFINITIONS_LOCK = threading.Lock()  # one read of a type's field definitions, whatever thread
DOMAIN_FIELD = "domain"  # the custom field (by the pull's name) that holds a company domain
# Top-level v2 body fields a property of that name is written to (POST/PATCH request bodies
# in openapi-v2.yaml), beyond those the canonical fields and associations set.
WRITABLE: dict[str, frozenset[str]] = {
    "contacts": frozenset({"visible_to", "label_ids", "postal_address", "notes", "im",
                           "birthday", "job_title", "marketing_status"}),
    "companies": frozenset({"visible_to", "label_ids", "address", "website", "linkedin",
                            "industry", "annual_revenue", "employee_count"}),
    "deals": frozenset({"visible_to", "label_ids", "probability", "lost_reason",
                        "won_time", "lost_time", "close_time"}),
}


class _RefusedError(Exception):
    """A write crmsync itself cannot send (an unknown field or option): that record's error."""


class PipedriveWrites:
    """One request per record for `PipedriveAdapter` (see the module docstring)."""

    crm: str
    domain_field: str = DOMAIN_FIELD
    # No batch writes: a push sends one record a call, several calls at once.
    records_per_request: int = 1

    # -- the interface ------------------------------------------------------------------------

    def write(self, object_type: ObjectType, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Apply `writes` one by one, in order; one result per write.

        Pipedrive unreachable after retries raises while nothing was written yet; after
        that, the writes not sent fail with the reason instead, so no result is lost.
        """
        results: list[WriteResult] = []
        halted: RemoteError | None = None
        if writes:
            self._pd_fields(object_type)
        for write in writes:
            if halted is None:
                try:
                    results.append(self._pd_write_one(object_type, write))
                    continue
                except RetriableRemoteError as exc:
                    if not any(r.ok for r in results):
                        raise
                    halted = exc
            results.append(WriteResult(write.key, ok=False, remote_id=write.remote_id,
                                       error=f"not sent: {halted.message}"))
        return results

    def _pd_mapper(self, object_type: ObjectType) -> _Mapper:
        """Raw Pipedrive records → `RemoteRecord`s, with the pull's field definitions."""
        return _Mapper(object_type, self._pd_fields(object_type),
                       lambda: self._pd_definitions(object_type))  # type: ignore[attr-defined]

    def _pd_fields(self, object_type: ObjectType) -> list[FieldDefinition]:
        """The type's field definitions, read once even when several writes want them at
        once (concurrent pushes)."""
        cached = self.__dict__.get("_pd_field_cache", {}).get(object_type)
        if cached is not None:
            return cached
        with _DEFINITIONS_LOCK:
            return self._pd_definitions(object_type)  # type: ignore[attr-defined]

    def read(self, object_type: ObjectType, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        """The records as Pipedrive holds them (`GET /api/v2/{entity}?ids=…`, 100 a call);
        deleted or unknown ids are left out."""
        mapper = self._pd_mapper(object_type)
        ids = list(dict.fromkeys(str(i) for i in remote_ids))
        records: list[RemoteRecord] = []
        for start in range(0, len(ids), READ_IDS):
            chunk = ids[start:start + READ_IDS]
            body = self._pd_get(  # type: ignore[attr-defined]
                f"{self._api}/{ENTITY[object_type]}",  # type: ignore[attr-defined]
                params={"ids": ",".join(chunk), "limit": READ_IDS},
                what=f"read {ENTITY[object_type]}")
            records += [_mapped(mapper, raw) for raw in body.get("data") or []
                        if not raw.get("is_deleted")]
        return records

    # -- one record ---------------------------------------------------------------------------

    def _pd_write_one(self, object_type: ObjectType, write: RecordWrite) -> WriteResult:
        entity = ENTITY[object_type]
        try:
            if write.object_type != object_type:
                raise _RefusedError(f"a {write.object_type} write sent with {object_type}")
            if write.op != "create" and not write.remote_id:
                raise _RefusedError(f"cannot {write.op} a record without its Pipedrive id")
            if write.op == "archive":
                return self._pd_delete(entity, write)
            body = self._pd_body(object_type, write)
            if write.op == "update":
                raw = self._pd_send("PATCH", f"/{entity}/{write.remote_id}", body,
                                    what=f"update {entity} {write.remote_id}")
            else:
                raw = self._pd_create(object_type, write, body)
        except _RefusedError as exc:
            return WriteResult(write.key, ok=False, remote_id=write.remote_id, error=str(exc))
        except FatalRemoteError as exc:
            if isinstance(exc, TokenRefusedError):
                raise
            return WriteResult(write.key, ok=False, remote_id=write.remote_id,
                               error=_crm_words(exc))
        mapper = self._pd_mapper(object_type)
        record = _mapped(mapper, raw)
        return WriteResult(write.key, ok=True, remote_id=record.id,
                           modified_at=record.modified_at, record=record)

    def _pd_create(self, object_type: ObjectType, write: RecordWrite,
                   body: dict[str, Any]) -> dict[str, Any]:
        entity = ENTITY[object_type]
        look = self._pd_finder(object_type, write)
        found = look() if look is not None else None
        if found is not None:  # already there (an earlier answer lost, or made in the CRM)
            return self._pd_send("PATCH", f"/{entity}/{found}", body,
                                 what=f"update {entity} {found} (found before creating)")
        if object_type == "contacts" and "name" not in body:
            body["name"] = str(write.fields.get("email") or "")  # v2 needs a person's name

        def find_existing() -> dict[str, Any] | None:
            again = look() if look is not None else None
            if again is None:
                return None
            return self._pd_send("GET", f"/{entity}/{again}", None, what=f"read {entity}")

        return self._pd_send("POST", f"/{entity}", body, what=f"create {entity[:-1]}",
                             find_existing=find_existing if look is not None else None)

    def _pd_delete(self, entity: str, write: RecordWrite) -> WriteResult:
        try:
            self._pd_send("DELETE", f"/{entity}/{write.remote_id}", None,
                          what=f"delete {entity[:-1]} {write.remote_id}")
        except FatalRemoteError as exc:
            if exc.status != 404:  # gone already: what a delete wants
                raise
        return WriteResult(write.key, ok=True, remote_id=write.remote_id)

    def _pd_finder(self, object_type: ObjectType,
                   write: RecordWrite) -> Callable[[], str | None] | None:
        """How to look for the record a create would make (None: never matched)."""
        entity = ENTITY[object_type]
        if object_type == "contacts":
            email = str(write.fields.get("email") or "").strip()
            if not email:
                return None
            return lambda: self._pd_search(entity, email, "email")
        if object_type == "companies":
            domain = str(write.fields.get("domain") or "").strip()
            has_domain_field = any(d.custom and d.name == self.domain_field
                                   for d in self._pd_fields(object_type))
            if domain and has_domain_field:
                return lambda: self._pd_search(entity, domain, "custom_fields")
            name = str(write.fields.get("name") or "").strip()
            if name:
                return lambda: self._pd_search(entity, name, "name")
        return None

    def _pd_search(self, entity: str, term: str, field: str) -> str | None:
        url = f"{self._api}/{entity}/search"  # type: ignore[attr-defined]
        params = {"term": term, "fields": field, "exact_match": "true", "limit": 2}

        def send() -> Reply[dict[str, Any]]:
            # No redirect is followed (the policy reports one): the token must stay home.
            response = self._session.get(  # type: ignore[attr-defined]
                url, params=params, timeout=self._timeouts,  # type: ignore[attr-defined]
                allow_redirects=False)
            parsed = parse_body(response.content) if response.content else {}
            return Reply(response.status_code, response.headers, body=parsed,
                         value=parsed if isinstance(parsed, dict) else {})

        body: dict[str, Any] = self.policy.call(  # type: ignore[attr-defined]
            send, what=f"look for {entity[:-1]} {term!r}", bucket=SEARCH_BUCKET)
        items = (body.get("data") or {}).get("items") or []
        # Lowest id on a tie: the oldest record is the one crmsync would have made first.
        ids = sorted(int(i["item"]["id"]) for i in items if i.get("item"))
        return str(ids[0]) if ids else None

    # -- request bodies -----------------------------------------------------------------------

    def _pd_body(self, object_type: ObjectType, write: RecordWrite) -> dict[str, Any]:
        """The v2 request body: canonical fields, associations, then other properties."""
        fields = write.fields
        body: dict[str, Any] = {}
        if "owner_id" in fields:
            body["owner_id"] = _int(fields["owner_id"])
        if object_type == "contacts":
            self._pd_person(write, body)
        elif object_type == "companies":
            if "name" in fields:
                body["name"] = fields["name"]
            if "domain" in fields:
                self._pd_domain(fields["domain"], body)
        else:
            _deal(fields, body)
        _links(object_type, write, body)
        definitions = {d.name: d for d in self._pd_fields(object_type)}
        for name, value in write.properties.items():
            definition = definitions.get(name)
            if definition is not None and definition.custom:
                body.setdefault("custom_fields", {})[definition.remote_key] = _custom_value(
                    definition, value)
            elif name in WRITABLE[object_type]:
                body[name] = value
            elif definition is None:
                raise _RefusedError(f"Pipedrive has no {ENTITY[object_type][:-1]} field named "
                               f"{name!r}")
            # else: a field Pipedrive sets itself (or one the pull reports but v2 cannot write)
        return body

    def _pd_person(self, write: RecordWrite, body: dict[str, Any]) -> None:
        fields = write.fields
        if "email" in fields:
            email = str(fields["email"] or "").strip()
            body["emails"] = [{"value": email, "primary": True, "label": "work"}] if email else []
        if "phone" in fields:
            phone = str(fields["phone"] or "").strip()
            body["phones"] = [{"value": phone, "primary": True, "label": "work"}] if phone else []
        if "first_name" in fields or "last_name" in fields:
            first, last = fields.get("first_name"), fields.get("last_name")
            if write.op == "update" and ("first_name" not in fields or "last_name" not in fields):
                current = self._pd_send("GET", f"/persons/{write.remote_id}", None,
                                        what=f"read person {write.remote_id}")
                first = first if "first_name" in fields else current.get("first_name")
                last = last if "last_name" in fields else current.get("last_name")
            name = " ".join(str(p).strip() for p in (first, last) if p and str(p).strip())
            if name:
                body["name"] = name

    def _pd_domain(self, domain: Any, body: dict[str, Any]) -> None:
        # The pull reads a company's domain from the `domain` custom field, else the website.
        definition = next((d for d in self._pd_fields("companies")
                           if d.custom and d.name == self.domain_field), None)
        if definition is not None:
            body.setdefault("custom_fields", {})[definition.remote_key] = domain or None
        else:
            body["website"] = domain or None

    # -- HTTP ---------------------------------------------------------------------------------

    def _pd_send(self, method: str, path: str, body: Any, *, what: str,
                 find_existing: Callable[[], dict[str, Any] | None] | None = None,
                 ) -> dict[str, Any]:
        """One request through the policy; returns the envelope's `data`."""
        finder = None
        if find_existing is not None:
            def finder() -> dict[str, Any] | None:
                found = find_existing()
                return None if found is None else {"success": True, "data": found}
        envelope = self._request(method, path, json=body, what=what,  # type: ignore[attr-defined]
                                 find_existing=finder)
        data: dict[str, Any] = envelope.get("data") or {}
        return data


def _deal(fields: Mapping[str, Any], body: dict[str, Any]) -> None:
    simple = {"name": "title", "currency": "currency", "status": "status"}
    for name, key in simple.items():
        if name in fields:
            body[key] = fields[name]
    if "amount" in fields:
        body["value"] = _number(fields["amount"])
    for name in ("pipeline_id", "stage_id"):
        if name in fields:
            body[name] = _int(fields[name])
    if "close_date" in fields:
        close = fields["close_date"]
        body["expected_close_date"] = (close.isoformat()[:10]
                                       if isinstance(close, dt.date) else close)


def _links(object_type: ObjectType, write: RecordWrite, body: dict[str, Any]) -> None:
    """Associations as the fields that hold them (one of each; the primary first)."""
    if write.associations is None or object_type == "companies":
        return
    targets = [("org_id", "companies")]
    if object_type == "deals":
        targets.append(("person_id", "contacts"))
    for key, to_type in targets:
        linked = sorted((a for a in write.associations if a.to_type == to_type),
                        key=lambda a: not a.primary)
        body[key] = _int(linked[0].to_id) if linked else None


def _custom_value(definition: FieldDefinition, value: Any) -> Any:
    """A custom field value in its v2 shape: option labels become option ids."""
    if value is None:
        return None
    if definition.options:
        ids = {o.label: o.value for o in definition.options}
        known = {o.value for o in definition.options}

        def option(item: Any) -> int:
            text = str(item)
            if text in ids:
                return int(ids[text])
            if text in known:
                return int(text)
            # A yes/no value (a consent field as the store writes it: "true"/"false") for a
            # Yes/No option field: the option that says the same.
            meaning = consent_value(item)
            same = [o for o in definition.options if meaning is not None
                    and consent_value(o.label) is meaning]
            if len(same) == 1:
                return int(same[0].value)
            raise _RefusedError(f"{text!r} is not an option of the Pipedrive field "
                           f"{definition.label!r} (options: "
                           f"{', '.join(o.label for o in definition.options)})")

        if isinstance(value, (list, tuple, set)):
            return [option(v) for v in value]
        return option(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    return value


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(str(value))


def _number(value: Any) -> int | float | None:
    if value in (None, ""):
        return None
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() else float(number)


def _mapped(mapper: _Mapper, raw: Mapping[str, Any]) -> RemoteRecord:
    when = _time(raw.get("update_time")) or dt.datetime.now(dt.UTC)
    return mapper.record(raw, when)


def _crm_words(exc: RemoteError) -> str:
    """Pipedrive's own message in `exc` ("pipedrive answered 400: <message> (<what>)")."""
    text = exc.message.split(": ", 1)[-1]
    return text.rsplit(" (", 1)[0] if text.endswith(")") else text
