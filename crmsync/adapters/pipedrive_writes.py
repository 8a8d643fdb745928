"""Pipedrive persons, organizations and deals written back: the `RecordWriter` side of
`PipedriveAdapter` (mixed in as `PipedriveWrites`).

API v2 has no batch writes: one request per record (`POST`, `PATCH`, `DELETE`
`/api/v2/{persons|organizations|deals}[/{id}]`, 5 / 5 / 3 tokens), paced by the adapter's
shared `HttpPolicy`. What each write costs, in calls:

- update or delete: 1 (a delete of a record already gone counts as done); an update that
  names only one of `first_name` / `last_name` also reads the person (v2 writes a person's
  `name` whole);
- create: persons and organizations are **looked for first** so that a create whose answer
  was lost, or a record that already exists, is never duplicated: a person by email, an
  organization by its domain custom field when the account has one (a custom field named
  `domain`, as the pull names it) and the write a domain, or else by exact name (not
  case-sensitive); found, it is updated instead. Deals are never matched (DESIGN.md,
  identity): 1 call. Where the record is looked for:

  - in a push after a pull (`after_pull`, what `crmsync sync` does): in **one listing of
    what changed since the pull** — `GET /api/v2/{persons|organizations}?updated_since=`
    the type's pull high-water mark less the pull's overlap, 500 a call (10 tokens), read
    when the push's first create of the type asks, read again from where it reached once
    it is `REFRESH_SECONDS` old, and kept up to date with every record the push writes.
    What changed before that time is in the store already: the pull linked it to the
    local record it matches (contacts by email, companies by domain, a create whose answer
    a killed run lost by name too), or else it is a store record of its own (the push
    holds back a contact whose email a linked contact has). A create is then **1 call**,
    plus about 1 listing per `REFRESH_SECONDS` of creates;
  - otherwise (no pull of the type finished its listing, `write` called alone, a company
    matched by name while seeding `sync --to`, whose creates are not marked in flight), by
    a search: `GET /api/v2/{persons|organizations}/search?term=…&fields=email|custom_fields
    |name&exact_match=true` (20 tokens, its own window of 10 per 2 s): 2 calls;

  either way the policy's `find_existing` searches before it retries a create whose answer
  may have been lost (rare). A record found but deleted since it was listed is created;
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
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmsync.adapters.http_policy import Reply, parse_body
from crmsync.adapters.pipedrive_records import (
    ENTITY,
    OVERLAP,
    PAGE_LIMIT,
    _Mapper,
    _rfc3339,
    _time,
    listing_finished,
    next_since,
)
from crmsync.adapters.records import RemoteRecord, TokenGuard, WriteResult
from crmsync.errors import (
    FatalRemoteError,
    RemoteError,
    RetriableRemoteError,
    TokenRefusedError,
)
from crmsync.keys import consent_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from crmsync.adapters.records import FieldDefinition, PullCursor, RecordWrite
    from crmsync.names import MonotonicClock, ObjectType

READ_IDS = 100  # v2 lists take up to 100 `ids` (openapi-v2.yaml, `ids`)
# Search endpoints have a burst window of their own (10 per 2 s, not the plan's 40): paced
# apart, so their headers never stand for the window every other request shares.
SEARCH_BUCKET = "search"
_DEFINITIONS_LOCK = threading.Lock()  # one read of a type's field definitions, whatever thread
DOMAIN_FIELD = "domain"  # the custom field (by the pull's name) that holds a company domain
# How old the listing of records changed since the pull may grow before a create reads what
# changed after it: a record made in the CRM by someone else while a push runs is seen by
# the creates sent from then on (a listing of 500 a call: about 1 call in 200 creates).
REFRESH_SECONDS = 10.0
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
    _clock: MonotonicClock

    # -- the interface ------------------------------------------------------------------------

    def write(self, object_type: ObjectType, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Apply `writes` one by one, in order; one result per write.

        Pipedrive unreachable after retries raises while nothing was written yet; after
        that, the writes not sent fail with the reason instead, so no result is lost.
        """
        return self._pd_write_all(object_type, writes, None)

    def after_pull(self, pulled: Mapping[ObjectType, PullCursor | None], *,
                   seeding: bool = False) -> PipedrivePush:
        """This adapter's writes for one push after a pull (`PullAwareWriter`): persons and
        organizations whose pull finished its listing are looked for in what changed since
        (see the module docstring); the others as `write` does."""
        changed = {
            object_type: _Changed(
                next_since(cursor), list_since=self._pd_lister(object_type),
                keys=self._pd_keys(object_type), clock=self._clock,
                by_name=not seeding)
            for object_type, cursor in pulled.items()
            if object_type in MATCHED and listing_finished(cursor)}
        return PipedrivePush(self, changed)

    def _pd_write_all(self, object_type: ObjectType, writes: Sequence[RecordWrite],
                      changed: _Changed | None) -> list[WriteResult]:
        results: list[WriteResult] = []
        halted: RemoteError | None = None
        if writes:
            self._pd_fields(object_type)
        for write in writes:
            if halted is None:
                try:
                    results.append(self._pd_write_one(object_type, write, changed))
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

    def _pd_write_one(self, object_type: ObjectType, write: RecordWrite,
                      changed: _Changed | None) -> WriteResult:
        entity = ENTITY[object_type]
        try:
            if write.object_type != object_type:
                raise _RefusedError(f"a {write.object_type} write sent with {object_type}")
            if write.op != "create" and not write.remote_id:
                raise _RefusedError(f"cannot {write.op} a record without its Pipedrive id")
            if write.op == "archive":
                result = self._pd_delete(entity, write)
                if changed is not None:
                    changed.forget(str(write.remote_id))
                return result
            body = self._pd_body(object_type, write)
            if write.op == "update":
                raw = self._pd_send("PATCH", f"/{entity}/{write.remote_id}", body,
                                    what=f"update {entity} {write.remote_id}")
            else:
                raw = self._pd_create(object_type, write, body, changed)
            if changed is not None:  # later creates of this push meet it as it now is
                changed.saw(raw)
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
                   body: dict[str, Any], changed: _Changed | None) -> dict[str, Any]:
        entity = ENTITY[object_type]
        match = self._pd_match(object_type, write)

        def look() -> str | None:
            return None if match is None else self._pd_search(entity, match.term, match.field)

        if match is None:
            found = None
        elif changed is not None and changed.covers(match):
            found = changed.find(match.key)
        else:
            found = look()
        if found is not None:  # already there (an earlier answer lost, or made in the CRM)
            raw = self._pd_update_found(entity, found, body)
            if raw is not None:
                return raw
            if changed is not None:  # deleted since it was listed: the create is still due
                changed.forget(found)
        if object_type == "contacts" and "name" not in body:
            body["name"] = str(write.fields.get("email") or "")  # v2 needs a person's name

        def find_existing() -> dict[str, Any] | None:
            # After an answer that may have been lost, a search: the listing cannot have
            # seen what this very request made (rare: the policy asks only then).
            again = look()
            if again is None:
                return None
            return self._pd_send("GET", f"/{entity}/{again}", None, what=f"read {entity}")

        return self._pd_send("POST", f"/{entity}", body, what=f"create {entity[:-1]}",
                             find_existing=find_existing if match is not None else None)

    def _pd_update_found(self, entity: str, found: str, body: dict[str, Any]
                         ) -> dict[str, Any] | None:
        """PATCH the record a create found; None when it turns out deleted (v2 answers a
        deleted record until it is purged, flagged `is_deleted`; 404 after)."""
        try:
            raw = self._pd_send("PATCH", f"/{entity}/{found}", body,
                                what=f"update {entity} {found} (found before creating)")
        except FatalRemoteError as exc:
            if exc.status != 404:
                raise
            return None
        return None if raw.get("is_deleted") else raw

    def _pd_delete(self, entity: str, write: RecordWrite) -> WriteResult:
        try:
            self._pd_send("DELETE", f"/{entity}/{write.remote_id}", None,
                          what=f"delete {entity[:-1]} {write.remote_id}")
        except FatalRemoteError as exc:
            if exc.status != 404:  # gone already: what a delete wants
                raise
        return WriteResult(write.key, ok=True, remote_id=write.remote_id)

    def _pd_match(self, object_type: ObjectType, write: RecordWrite) -> _Match | None:
        """What a create is matched on (None: never matched): a person by email; an
        organization by its domain custom field when the account has one and the write a
        domain, else by exact name."""
        if object_type == "contacts":
            email = str(write.fields.get("email") or "").strip()
            return _Match("email", email, "email") if email else None
        if object_type == "companies":
            domain = str(write.fields.get("domain") or "").strip()
            if domain and self._pd_domain_definition() is not None:
                return _Match("domain", domain, "custom_fields")
            name = str(write.fields.get("name") or "").strip()
            if name:
                return _Match("name", name, "name")
        return None

    def _pd_domain_definition(self) -> FieldDefinition | None:
        return next((d for d in self._pd_fields("companies")
                     if d.custom and d.name == self.domain_field), None)

    def _pd_keys(self, object_type: ObjectType) -> Callable[[Mapping[str, Any]], set[str]]:
        """The match keys (`_Match.key`) a raw person or organization answers to."""
        if object_type == "contacts":
            return lambda raw: {k for e in raw.get("emails") or []
                                if (k := _match_key("email", e.get("value")))}

        def organization(raw: Mapping[str, Any]) -> set[str]:
            keys = {_match_key("name", raw.get("name"))}
            definition = self._pd_domain_definition()
            if definition is not None:
                custom = raw.get("custom_fields") or {}
                keys.add(_match_key("domain", custom.get(definition.remote_key)))
            return {k for k in keys if k}

        return organization

    def _pd_lister(self, object_type: ObjectType
                   ) -> Callable[[str | None], Iterator[dict[str, Any]]]:
        """Every person or organization changed since a time (`GET /api/v2/{entity}
        ?updated_since=…`, 500 a call; everything when None)."""
        entity = ENTITY[object_type]
        url = f"{self._api}/{entity}"  # type: ignore[attr-defined]

        def changed_since(since: str | None) -> Iterator[dict[str, Any]]:
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "update_time",
                                      "sort_direction": "asc"}
            if since:
                params["updated_since"] = since
            definition = self._pd_domain_definition() if object_type == "companies" else None
            if definition is not None:  # the one custom field a match needs: a smaller answer
                params["custom_fields"] = definition.remote_key
            guard = TokenGuard(self.crm, f"list {entity} changed since {since}")
            while True:
                body = self._pd_get(url, params=params,  # type: ignore[attr-defined]
                                    what=f"list {entity} changed since {since or 'ever'}")
                yield from body.get("data") or []
                token = (body.get("additional_data") or {}).get("next_cursor") or None
                guard.check(token)
                if token is None:
                    return
                params["cursor"] = token

        return changed_since

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
        definition = self._pd_domain_definition()
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


class PipedrivePush:
    """`PipedriveAdapter`'s writes for one push after a pull (`PipedriveWrites.after_pull`):
    creates look for their record in what changed since the pull; the adapter does the rest
    (its pacing, caches and session)."""

    records_per_request: int = 1

    def __init__(self, adapter: PipedriveWrites, changed: Mapping[ObjectType, _Changed]
                 ) -> None:
        self.crm = adapter.crm
        self._adapter = adapter
        self._changed = dict(changed)

    def write(self, object_type: ObjectType, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """As `PipedriveWrites.write`."""
        return self._adapter._pd_write_all(object_type, writes,
                                           self._changed.get(object_type))

    def read(self, object_type: ObjectType, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        """As `PipedriveWrites.read`."""
        return self._adapter.read(object_type, remote_ids)


MATCHED: frozenset[str] = frozenset({"contacts", "companies"})  # deals are never matched


@dataclass(frozen=True)
class _Match:
    """What a create is matched on: `term` searched in `field`, or `key` looked up."""

    kind: str  # email | domain | name
    term: str
    field: str  # the search's `fields`

    @property
    def key(self) -> str:
        return _match_key(self.kind, self.term) or ""


def _match_key(kind: str, value: Any) -> str | None:
    # Exact, as the search's `exact_match`, but not case-sensitive (as it is not).
    text = str(value or "").strip().lower()
    return f"{kind}:{text}" if text else None


class _Changed:
    """Persons or organizations changed in the account since the pull, by match key.

    Listed when a create first asks (a push without creates costs nothing), listed again
    from where that listing reached once it is `REFRESH_SECONDS` old, and told of every
    record this push writes (its own creates included: a second create of one identity
    finds the first). Creates run on several threads: one lock guards the map, and a
    create that finds it stale waits for the listing.
    """

    def __init__(self, since: str | None, *,
                 list_since: Callable[[str | None], Iterator[Mapping[str, Any]]],
                 keys: Callable[[Mapping[str, Any]], set[str]], clock: MonotonicClock,
                 by_name: bool = True) -> None:
        self._since = since
        self._list_since = list_since
        self._keys_of = keys
        self._clock = clock
        # Seeding (`sync --to`): creates are not marked in flight, so one whose answer a
        # killed run lost is linked by the next pull only by email or domain, not by name.
        self._by_name = by_name
        self._lock = threading.Lock()
        self._ids: dict[str, set[int]] = {}
        self._keys: dict[int, set[str]] = {}
        self._listed_at: float | None = None

    def covers(self, match: _Match) -> bool:
        """Whether a create matched so may trust the map (else: a search)."""
        return self._by_name or match.kind != "name"

    def find(self, key: str) -> str | None:
        """The oldest record (lowest id) that answers to `key`, as the search's tie rule."""
        with self._lock:
            now = self._clock()
            if self._listed_at is None or now - self._listed_at >= REFRESH_SECONDS:
                self._relist()
                self._listed_at = now  # when it started: records made during it are re-read
            ids = self._ids.get(key)
            return str(min(ids)) if ids else None

    def saw(self, raw: Mapping[str, Any]) -> None:
        """A record as this push's write left it."""
        with self._lock:
            self._put(raw)

    def forget(self, remote_id: str) -> None:
        """A record deleted."""
        with self._lock:
            self._put({"id": remote_id, "is_deleted": True})

    def _relist(self) -> None:
        newest: dt.datetime | None = None
        for raw in self._list_since(self._since):
            self._put(raw)
            when = _time(raw.get("update_time"))
            if when is not None and (newest is None or when > newest):
                newest = when
        if newest is not None:
            # `update_time` has one-second resolution and a write may commit late: the next
            # listing starts OVERLAP before the newest one seen (as the pull's increments).
            since = _rfc3339(newest - OVERLAP)
            self._since = max(since, self._since or since)

    def _put(self, raw: Mapping[str, Any]) -> None:
        record_id = int(raw["id"])
        for key in self._keys.pop(record_id, ()):
            ids = self._ids[key]
            ids.discard(record_id)
            if not ids:
                del self._ids[key]
        if raw.get("is_deleted"):
            return
        keys = self._keys_of(raw)
        self._keys[record_id] = keys
        for key in keys:
            self._ids.setdefault(key, set()).add(record_id)


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
