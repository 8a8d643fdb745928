"""Pipedrive persons, organizations and deals page by page: the `RecordAdapter` side of
`PipedriveAdapter` (mixed in as `PipedriveRecords`).

Pulls of several object types may run at once (the engine's threads); each type's pages
follow one another, since v2 page cursors are opaque and cannot be split into slices to read
concurrently.

One listing serves the first load and every increment: `GET /api/v2/{persons|organizations|
deals}` with `limit=500`, `sort_by=update_time`, `sort_direction=asc`, paged by
`additional_data.next_cursor` (null at the end), and from the second run on
`updated_since` = high-water mark minus `OVERLAP` (`update_time` has one-second resolution, so
records written in the high-water second, or committed late, are read again). What was already
taken is recognised by a digest per record of the overlap window kept in the cursor: a record
comes again only if it changed, so nothing is missed nor repeated at the boundary.

What each way costs, in calls (list = 10 tokens, `x-token-cost` in the v2 spec):

- first load (and any full pass): 2 calls per 1,000 records (500 a page), nothing else — no
  removal scan, whatever `scan_removals` says: what the pass does not list the engine
  tombstones when it completes. Custom-field names come from the field definitions the
  engine passes (or, without them, one paged read of `/api/v1/{deal,person,organization}
  Fields` per type and adapter, 500 a page);
- increment: 1 call per 500 changed records; nothing changed: exactly 1 call;
- removals: deleted deals come free in the same listing (`status=open,won,lost,deleted`; v2
  keeps deleted deals listed for 30 days). Deleted persons and organizations do not show in
  v2 lists: with `scan_removals`, after an increment, `GET /v1/recents?since_timestamp=…&
  items=person` (or `organization`) lists every change since the last scan, 500 a page (20
  tokens a call): 1 call per 500 changes of the type since the last scan. Archived deals
  leave the `/deals` listing: with `scan_removals`, after an increment,
  `/api/v2/deals/archived` since the last scan reports them (reason "archived", 20 tokens a
  call): 1 call per 500 deals archived since. The first scan of either kind starts
  `RECENTS_MARGIN` before the first pass began.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeGuard, cast
from urllib.parse import urlsplit

from crmsync.adapters.http_policy import Reply, parse_body
from crmsync.adapters.records import (
    Association,
    FieldDefinition,
    FieldOption,
    FieldType,
    PullCursor,
    RecordPage,
    RemoteRecord,
    RemoteRemoval,
    TokenGuard,
    ensure_last_done,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping, Sequence

    import requests

    from crmsync.adapters.http_policy import HttpPolicy
    from crmsync.names import ObjectType

PAGE_LIMIT = 500  # the v2 list maximum
FIELDS_LIMIT = 500  # v1 field definitions per page
OVERLAP = dt.timedelta(seconds=2)
RECENTS_MARGIN = dt.timedelta(minutes=1)
ENTITY = {"contacts": "persons", "companies": "organizations", "deals": "deals"}
FIELDS_PATH = {"contacts": "personFields", "companies": "organizationFields",
               "deals": "dealFields"}
RECENTS_ITEM = {"contacts": "person", "companies": "organization"}
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)
_HASH_KEY = re.compile(r"^[0-9a-f]{40}$")
_TYPES: dict[str, FieldType] = {
    "varchar": "text", "varchar_auto": "text", "text": "text", "phone": "text",
    "address": "text", "double": "number", "int": "number", "monetary": "monetary",
    "date": "date", "enum": "enumeration", "set": "enumeration",
}
# Top-level keys that become canonical fields (or the record's id and time) per type.
_CONSUMED = {
    "contacts": frozenset({"id", "first_name", "last_name", "owner_id", "org_id",
                           "update_time", "custom_fields", "is_deleted"}),
    "companies": frozenset({"id", "name", "owner_id", "update_time", "custom_fields",
                            "is_deleted"}),
    "deals": frozenset({"id", "title", "value", "currency", "pipeline_id", "stage_id",
                        "status", "expected_close_date", "won_time", "lost_time",
                        "stage_change_time", "owner_id", "add_time", "update_time",
                        "custom_fields", "org_id", "person_id", "is_deleted"}),
}


class PipedriveRecords:
    """Persons, organizations and deals for `PipedriveAdapter` (see the module docstring)."""

    crm: str
    policy: HttpPolicy
    _api: str  # …/api/v2
    _session: requests.Session
    _timeouts: tuple[float, float]

    # -- the interface ------------------------------------------------------------------------

    def field_definitions(self, object_type: ObjectType) -> list[FieldDefinition]:
        """Every field of the type (`/api/v1/{entity}Fields`, paged); custom fields named
        from their label in snake_case, unique within the type."""
        raws: list[dict[str, Any]] = []
        start = 0
        while True:
            body = self._pd_get(
                f"{self._v1()}/{FIELDS_PATH[object_type]}",
                params={"start": start, "limit": FIELDS_LIMIT},
                what=f"list {ENTITY[object_type]} fields")
            raws.extend(body.get("data") or [])
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                break
            start = int(pagination.get("next_start") or start + FIELDS_LIMIT)
        return _definitions(raws)

    def pull(self, object_type: ObjectType, cursor: PullCursor | None,
             fields: Sequence[FieldDefinition], *,
             scan_removals: bool = False) -> Iterator[RecordPage]:
        """Pages changed since `cursor`; see the module docstring for the calls each costs."""
        return ensure_last_done(self._pd_phases(object_type, cursor or PullCursor(), fields,
                                                scan_removals=scan_removals))

    # -- phases -------------------------------------------------------------------------------

    def _pd_phases(self, object_type: ObjectType, cursor: PullCursor,
                   fields: Sequence[FieldDefinition], *,
                   scan_removals: bool) -> Iterator[RecordPage]:
        if cursor.phase not in ("recents", "archived"):
            full_pass = cursor.phase == "full"
            cursor = yield from self._pd_listing(object_type, cursor, fields)
            # A full pass needs no scan: the engine tombstones what it did not list, and the
            # first scan after it starts where it began.
            if full_pass or not scan_removals:
                return
        if object_type == "deals":
            yield from self._pd_archived_deals(cursor)
        elif object_type in RECENTS_ITEM:
            yield from self._pd_recents(object_type, cursor)

    def _pd_archived_deals(self, cursor: PullCursor) -> Iterator[RecordPage]:
        """Deals archived since the last scan (`/api/v2/deals/archived`), as removals.

        Archived deals leave the `/deals` listing; one unarchived comes back there as a record.
        """
        resuming = cursor.phase == "archived"
        token = cursor.token if resuming else None
        if resuming:
            # A page token belongs to its query: the `updated_since` it was read with
            # (cursors from before `archived_query_since` read with `archived_since`).
            since = cursor.extra.get("archived_query_since",
                                     cursor.extra.get("archived_since"))
        else:
            since = cursor.extra.get("archived_since") or _first_archived_since(cursor)
        newest = cursor.extra.get("archived_newest") if resuming else since
        # Ids already reported in the newest second: `updated_since` is inclusive.
        edge = set(cursor.extra.get("archived_edge") or ())
        guard = TokenGuard(self.crm, "list archived deals")
        guard.check(token)
        while True:
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "update_time",
                                      "sort_direction": "asc"}
            if since:
                params["updated_since"] = since
            if token:
                params["cursor"] = token
            body = self._pd_get(f"{self._api}/deals/archived", params=params,
                                what="list archived deals")
            removals = []
            for raw in body.get("data") or []:
                updated = _rfc3339(_time(raw.get("update_time")) or _EPOCH)
                if updated == newest and str(raw["id"]) in edge:
                    continue
                if newest is None or updated > newest:
                    newest, edge = updated, set()
                edge.add(str(raw["id"]))
                when = _time(raw.get("archive_time")) or _time(raw.get("update_time"))
                removals.append(RemoteRemoval("deals", str(raw["id"]), "archived",
                                              removed_at=when))
            token = (body.get("additional_data") or {}).get("next_cursor") or None
            guard.check(token)
            extra = dict(cursor.extra)
            extra["archived_edge"] = sorted(edge)
            if token:
                extra.update(archived_newest=newest, archived_query_since=since)
                after = PullCursor("archived", token, cursor.high_water, cursor.high_water_id,
                                   cursor.pass_started_at, extra=extra)
            else:
                extra.pop("archived_newest", None)
                extra.pop("archived_query_since", None)
                extra["archived_since"] = newest
                after = PullCursor("incremental", None, cursor.high_water,
                                   cursor.high_water_id, cursor.pass_started_at, extra=extra)
            yield RecordPage("deals", (), tuple(removals), after, calls=1)
            if not token:
                return

    def _pd_listing(self, object_type: ObjectType, cursor: PullCursor,
                    fields: Sequence[FieldDefinition]
                    ) -> Generator[RecordPage, None, PullCursor]:
        # Without definitions from the engine, read them only once a record has custom fields
        # (an unchanged increment stays one call).
        mapper = _Mapper(object_type, fields, lambda: self._pd_definitions(object_type))
        guard = TokenGuard(self.crm, f"list {ENTITY[object_type]}")
        token = cursor.token
        guard.check(token)
        high, high_id = cursor.high_water, cursor.high_water_id
        # A page token belongs to its query: resuming, the query is the one it came from.
        since = cursor.extra.get("since") if token else next_since(cursor)
        seen: dict[str, list[str]] = dict(cursor.extra.get("seen") or {})
        phase = cursor.phase if cursor.phase in ("full", "incremental") else "incremental"
        # When the first pass began: where the first removal scan starts.
        started = cursor.pass_started_at or dt.datetime.now(dt.UTC)
        while True:
            body = self._pd_get(f"{self._api}/{ENTITY[object_type]}",
                                params=_list_params(object_type, since, token),
                                what=f"list {ENTITY[object_type]}")
            data = body.get("data") or []
            times = [_time(raw.get("update_time")) or _EPOCH for raw in data]
            for raw, when in zip(data, times, strict=True):
                if high is None or (when, int(raw["id"])) > (high, int(high_id or 0)):
                    high, high_id = when, str(raw["id"])
            # Digests only where they can matter (a record read before, or one inside the
            # overlap window of the new high-water mark): hashing every record costs CPU.
            window = (high - OVERLAP) if high is not None else _EPOCH
            records, removals = [], []
            for raw, when in zip(data, times, strict=True):
                record_id = str(raw["id"])
                before = seen.get(record_id)
                digest = _digest(raw) if before is not None or when >= window else None
                if before is not None and before[1] == digest:
                    continue  # read before, unchanged: the overlap window
                if digest is not None:
                    seen[record_id] = [when.isoformat(), digest]
                if raw.get("is_deleted") or raw.get("status") == "deleted":
                    removals.append(RemoteRemoval(object_type, record_id, "deleted",
                                                  removed_at=when))
                else:
                    records.append(mapper.record(raw, when))
            if high is not None:
                floor = (high - OVERLAP).isoformat()
                seen = {k: v for k, v in seen.items() if v[0] >= floor}
            token = (body.get("additional_data") or {}).get("next_cursor") or None
            guard.check(token)
            extra = {k: v for k, v in cursor.extra.items() if k not in ("since", "seen")}
            extra["seen"] = dict(seen)  # a snapshot: `seen` goes on changing
            if token:
                extra["since"] = since
            after = PullCursor(phase=phase if token else "incremental", token=token,
                               high_water=high, high_water_id=high_id,
                               pass_started_at=started, extra=extra)
            yield RecordPage(object_type, tuple(records), tuple(removals), after,
                             calls=1 + self._pd_take_calls(object_type))
            if not token:
                return after

    def _pd_recents(self, object_type: ObjectType, cursor: PullCursor) -> Iterator[RecordPage]:
        """Persons or organizations deleted since the last scan, from `/v1/recents`."""
        item = RECENTS_ITEM[object_type]
        resuming = cursor.phase == "recents"
        # Times are our clock, read by Pipedrive's: each scan starts RECENTS_MARGIN before
        # the previous one began (or before the first pass began), for clock skew.
        now = dt.datetime.now(dt.UTC)
        started = (cursor.extra.get("recents_started") if resuming else None) or \
            _v1_time(now - RECENTS_MARGIN)
        since = cursor.extra.get("recents_since") or _v1_time(
            (cursor.pass_started_at or now) - RECENTS_MARGIN)
        start = int(cursor.token or 0) if resuming else 0
        guard = TokenGuard(self.crm, f"list recent {item} changes")
        while True:
            body = self._pd_get(
                f"{self._v1()}/recents",
                params={"since_timestamp": since, "items": item, "start": start,
                        "limit": PAGE_LIMIT},
                what=f"list recent {item} changes")
            removals = []
            for entry in body.get("data") or []:
                data = entry.get("data")
                gone = data is None or (isinstance(data, dict) and (
                    data.get("active_flag") is False or data.get("is_deleted")))
                if entry.get("item") == item and gone:
                    removed = _time((data or {}).get("update_time"))
                    removals.append(RemoteRemoval(object_type, str(entry["id"]), "deleted",
                                                  removed_at=removed))
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            more = bool(pagination.get("more_items_in_collection"))
            start = int(pagination.get("next_start") or start + PAGE_LIMIT)
            extra = dict(cursor.extra)
            if more:
                guard.check(str(start))
                extra.update(recents_since=since, recents_started=started)
                after = PullCursor("recents", str(start), cursor.high_water,
                                   cursor.high_water_id, cursor.pass_started_at, extra=extra)
            else:
                extra.pop("recents_started", None)
                extra["recents_since"] = started
                after = PullCursor("incremental", None, cursor.high_water,
                                   cursor.high_water_id, cursor.pass_started_at, extra=extra)
            yield RecordPage(object_type, (), tuple(removals), after, calls=1)
            if not more:
                return

    # -- helpers ------------------------------------------------------------------------------

    def _pd_definitions(self, object_type: ObjectType) -> list[FieldDefinition]:
        cache: dict[str, list[FieldDefinition]] = self.__dict__.setdefault(
            "_pd_field_cache", {})
        if object_type not in cache:
            cache[object_type] = self.field_definitions(object_type)
            # Charged to the type's page that needed them (see `_pd_take_calls`); per type,
            # as types are pulled concurrently.
            pending: dict[str, int] = self.__dict__.setdefault("_pd_pending_calls", {})
            pending[object_type] = 1 + len(cache[object_type]) // FIELDS_LIMIT
        return cache[object_type]

    def _pd_take_calls(self, object_type: ObjectType) -> int:
        """Requests made for the type beside its listing since its last page (field
        definitions)."""
        pending: dict[str, int] = self.__dict__.get("_pd_pending_calls") or {}
        return pending.pop(object_type, 0)

    def _pd_get(self, url: str, *, params: dict[str, Any], what: str) -> dict[str, Any]:
        """One GET through the policy (the adapter's session carries the token)."""

        def send() -> Reply[dict[str, Any]]:
            # No redirect is followed (the policy reports one): the token must stay home.
            response = self._session.get(url, params=params, timeout=self._timeouts,
                                         allow_redirects=False)
            body = parse_body(response.content) if response.content else {}
            return Reply(response.status_code, response.headers, body=body,
                         value=body if isinstance(body, dict) else {})

        result: dict[str, Any] = self.policy.call(send, what=what)
        return result

    def _v1(self) -> str:
        return self._api.removesuffix("/v2") + "/v1"


class _Mapper:
    """Turns one raw v2 record into a `RemoteRecord` (custom fields by name, options by label)."""

    def __init__(self, object_type: ObjectType, fields: Sequence[FieldDefinition],
                 load: Callable[[], Sequence[FieldDefinition]]) -> None:
        self.object_type = object_type
        self._load: Callable[[], Sequence[FieldDefinition]] | None = None if fields else load
        self._use(fields)

    def _use(self, fields: Sequence[FieldDefinition]) -> None:
        self.custom = {f.remote_key: f for f in fields if f.custom}
        self.options = {f.remote_key: {o.value: o.label for o in f.options} for f in fields}

    def record(self, raw: Mapping[str, Any], when: dt.datetime) -> RemoteRecord:
        object_type = self.object_type
        properties = {k: v for k, v in raw.items() if k not in _CONSUMED[object_type]}
        custom_fields = raw.get("custom_fields") or {}
        if custom_fields and self._load is not None:
            self._use(self._load())
            self._load = None
        for key, value in custom_fields.items():
            definition = self.custom.get(key)
            name = definition.name if definition else key
            properties[name] = self._value(key, value)
        fields: dict[str, Any]
        associations: tuple[Association, ...]
        if object_type == "contacts":
            fields = {"email": _primary(raw.get("emails")),
                      "first_name": raw.get("first_name"), "last_name": raw.get("last_name"),
                      "phone": _primary(raw.get("phones")), "owner_id": _id(raw.get("owner_id"))}
            associations = _links(("companies", raw.get("org_id")))
        elif object_type == "companies":
            fields = {"name": raw.get("name"), "owner_id": _id(raw.get("owner_id")),
                      "domain": _domain(properties.get("domain"), raw.get("website"))}
            associations = ()
        else:
            closed = raw.get("won_time") or raw.get("lost_time")
            expected = raw.get("expected_close_date")
            fields = {
                "name": raw.get("title"), "amount": _decimal(raw.get("value")),
                "currency": raw.get("currency"), "pipeline_id": _id(raw.get("pipeline_id")),
                "stage_id": _id(raw.get("stage_id")), "status": raw.get("status"),
                "close_date": dt.date.fromisoformat(expected[:10]) if expected else None,
                "closed_at": _time(closed), "stage_changed_at": _time(
                    raw.get("stage_change_time")),
                "owner_id": _id(raw.get("owner_id")), "created_at": _time(raw.get("add_time")),
            }
            associations = _links(("contacts", raw.get("person_id")),
                                  ("companies", raw.get("org_id")))
        return RemoteRecord(object_type, str(raw["id"]), when, fields, properties, associations)

    def _value(self, key: str, value: Any) -> Any:
        options = self.options.get(key)
        if not options or value is None:
            return value  # monetary stays {value, currency}
        if isinstance(value, list):
            return [options.get(str(v), v) for v in value]
        return options.get(str(value), value)


def _first_archived_since(cursor: PullCursor) -> str | None:
    """Where the first archived-deals scan starts: a margin before the first pass began
    (deals archived before it were never listed by it, so the store has none of them live);
    None (every archived deal) when the cursor does not say when that was."""
    if cursor.pass_started_at is None:
        return None
    return _rfc3339(cursor.pass_started_at - RECENTS_MARGIN)


def listing_finished(cursor: PullCursor | None) -> TypeGuard[PullCursor]:
    """Whether the pull that left `cursor` has read its listing to the end: every record
    changed up to the cursor's high-water mark is in the store (a removal scan may still be
    under way)."""
    if cursor is None or cursor.phase == "full":
        return False
    return cursor.phase != "incremental" or not cursor.token


def next_since(cursor: PullCursor) -> str | None:
    """The `updated_since` the increment after `cursor` reads from (None: everything — the
    pull has not seen a record yet)."""
    high = cursor.high_water
    return _rfc3339(high - OVERLAP) if high is not None else None


def _list_params(object_type: str, since: str | None, token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "update_time",
                              "sort_direction": "asc"}
    if since:
        params["updated_since"] = since
    if object_type == "deals":
        # Deleted deals stay listed for 30 days with this status (v2 `status`).
        params["status"] = "open,won,lost,deleted"
    if token:
        params["cursor"] = token
    return params


def _definitions(raws: Sequence[Mapping[str, Any]]) -> list[FieldDefinition]:
    taken = {str(r["key"]) for r in raws if not _HASH_KEY.match(str(r["key"]))}
    definitions = []
    for raw in raws:
        key = str(raw["key"])
        custom = bool(_HASH_KEY.match(key))
        label = str(raw.get("name") or key)
        name = key
        if custom:
            base = re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_") or "field"
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
        options = tuple(FieldOption(str(o.get("id")), str(o.get("label")))
                        for o in raw.get("options") or [])
        definitions.append(FieldDefinition(
            name=name, label=label, type=_TYPES.get(str(raw.get("field_type")), "other"),
            remote_key=key, custom=custom, options=options))
    return definitions


def _links(*pairs: tuple[str, Any]) -> tuple[Association, ...]:
    # A deal's person and organization, a person's organization: one each, so primary.
    return tuple(Association(cast("ObjectType", t), str(_ref(i)), primary=True)
                 for t, i in pairs if _ref(i) is not None)


def _ref(value: Any) -> Any:
    # v2 gives plain ids; an `include_fields`-style object {"value": id} is read too.
    return value.get("value") if isinstance(value, dict) else value


def _primary(items: Any) -> str | None:
    if not items:
        return None
    chosen = next((i for i in items if i.get("primary")), items[0])
    return chosen.get("value") or None


def _id(value: Any) -> str | None:
    value = _ref(value)
    return None if value is None else str(value)


def _domain(custom: Any, website: Any) -> str | None:
    if custom:
        return str(custom)
    if not website:
        return None
    text = str(website)
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.") or None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _digest(raw: Mapping[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()
