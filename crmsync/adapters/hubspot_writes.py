"""HubSpot contacts, companies and deals written back: the `RecordWriter` side of
`HubSpotAdapter` (mixed in as `HubSpotWrites`).

What each write costs, in calls (batch endpoints take at most `BATCH` inputs):

- contacts with an email are created by **batch upsert on `email`** (`idProperty: email`):
  a create whose answer was lost, or a person who is already in the CRM, updates that
  contact instead of duplicating it; companies with a domain are first looked for by domain
  (one search with `domain IN […]` per 100; found ones are updated instead); contacts
  without an email, other companies and deals by **batch create**, their associations inline
  (no extra call). Deals are never matched (DESIGN.md): a deal batch create retried after
  an answer lost in transit may duplicate — HubSpot has no idempotency key for it;
- updates by batch update, archives by batch archive: 1 call per 100 records;
- associations, only for writes that carry them (`associations` not None): what the CRM
  holds is read in bulk (v4 `batch/read`, `ASSOCIATION_READ` inputs a call, one call per
  owned association type), then the difference is written with v4 `batch/create` /
  `batch/archive` of 100. Unchanged associations cost the read only: 1,000 updated
  contacts are 10 updates + 1 read = 11 calls.

Every input carries an `objectWriteTraceId` (its index in the request). HubSpot then answers
a batch with per-input results (207 Multi-Status) and names each failed input in its error's
`context.objectWriteTraceId` (https://developers.hubspot.com/docs/api-reference/error-handling,
"Multi-status errors"); errors without it are matched by `context.ids` (update: records that
do not exist). A whole batch refused with a 4xx (a value HubSpot validates for the batch as
a whole) is split in halves until the failing inputs stand alone, so one bad record never
fails the others. A token refused raises; so does a CRM unreachable after retries while
nothing of the call was written yet. Once something was written, giving up never loses its
result: the writes not sent yet fail with the reason (and records written without all their
associations say so), so the caller can commit what landed.

`WriteResult.record` is the record as HubSpot's answer carried it, mapped like a pull. A batch
answer holds the written properties and HubSpot's defaults, not every property: only the
canonical fields whose property was in the answer are in `record.fields`. Associations are
the set written (None when the write did not touch them).
"""

from __future__ import annotations

import datetime as dt
import threading
from contextlib import suppress
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from crmsync.adapters.hubspot_records import (
    MODIFIED,
    OWNED_ASSOCIATIONS,
    SOURCES,
    _property_names,
)
from crmsync.adapters.records import Association, RemoteRecord, WriteResult
from crmsync.errors import (
    FatalRemoteError,
    RemoteError,
    RetriableRemoteError,
    TokenRefusedError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from crmsync.adapters.records import FieldDefinition, RecordWrite
    from crmsync.names import ObjectType

BATCH = 100  # objects v3 and associations v4 batch inputs per call
ASSOCIATION_READ = 1_000  # v4 batch/read inputs per call (developer changelog, 2025-02-10)
READ_BATCH = 100  # objects v3 batch/read
SEARCH_IN = 100  # values in one IN filter (search guide: up to 100 values)
# HubSpot-defined association type ids (associations v4 guide): (unlabeled, primary or None).
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("deals", "contacts"): (3, None),
    ("deals", "companies"): (341, 5),
}
# Canonical fields HubSpot calculates (or that have no property): never written.
_NOT_WRITTEN = frozenset({"status", "closed_at", "stage_changed_at", "created_at"})
# A whole batch refused with one of these is split to find the inputs at fault.
_SPLIT_STATUSES = frozenset({400, 409, 422})

# Caches filled on first use (field definitions, the deal pipelines' stages): one filling,
# whatever the number of concurrent pushes that need them.
_CACHE_LOCK = threading.Lock()

# (input index within the call, result or None, error message or None)
_Outcome = tuple[int, dict[str, Any] | None, str | None]


class HubSpotWrites:
    """Batch writes for `HubSpotAdapter` (see the module docstring)."""

    crm: str
    # Inputs one batch request takes: a push sends a batch a call, several calls at once.
    records_per_request: int = BATCH

    # -- the interface ------------------------------------------------------------------------

    def write(self, object_type: ObjectType, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Apply `writes`; one result per write, in order (see the module docstring)."""
        results: dict[int, WriteResult] = {}
        raws: dict[int, dict[str, Any]] = {}
        groups = _sort(object_type, writes, results)
        if object_type == "companies" and groups["create"]:
            writes = self._hs_known_companies(writes, groups)  # raises: nothing written yet
        inline = set(groups["create"])
        halted: RemoteError | None = None
        for kind in ("upsert", "create", "update", "archive"):
            indexes = groups[kind]
            for start in range(0, len(indexes), BATCH):
                chunk = indexes[start:start + BATCH]
                if halted is None:
                    try:
                        self._hs_send(object_type, kind, chunk, writes=writes, results=results,
                                      raws=raws)
                        continue
                    except RetriableRemoteError as exc:
                        if not raws and not any(r.ok for r in results.values()):
                            raise  # the whole call failed and nothing was written
                        halted = exc
                for index in chunk:
                    results[index] = _failed(writes[index], f"not sent: {halted.message}")
        linked = {i: str(raws[i]["id"]) for i in raws
                  if writes[i].associations is not None and i not in inline}
        failures: dict[int, str] = {}
        if halted is None:
            try:
                failures = self._hs_write_associations(object_type, linked, writes)
            except RetriableRemoteError as exc:
                halted = exc
        if halted is not None:  # written, but not (all) its associations: say so
            for index in linked:
                failures.setdefault(index, f"associations not written: {halted.message}")
        records = self._hs_records(object_type, raws, writes)
        for index, raw in raws.items():
            record = records[index]
            error = failures.get(index)
            results[index] = WriteResult(writes[index].key, ok=error is None,
                                         remote_id=str(raw["id"]),
                                         modified_at=record.modified_at, error=error,
                                         record=record)
        return [results[i] for i in range(len(writes))]

    def _hs_send(self, object_type: ObjectType, kind: str, chunk: list[int], *,
                 writes: Sequence[RecordWrite], results: dict[int, WriteResult],
                 raws: dict[int, dict[str, Any]]) -> None:
        """One batch of `kind` (≤ 100 writes); outcomes into `results` / `raws`."""
        if kind == "archive":
            # 204 and no body: HubSpot archives what it has and ignores ids it does not.
            self._hs_post(f"/crm/v3/objects/{object_type}/batch/archive",
                          {"inputs": [{"id": writes[i].remote_id} for i in chunk]},
                          what=f"archive {len(chunk)} {object_type}")
            for index in chunk:
                results[index] = WriteResult(writes[index].key, ok=True,
                                             remote_id=writes[index].remote_id)
            return
        inputs = [self._hs_input(kind, object_type, writes[i]) for i in chunk]
        for position, raw, error in self._hs_batch(object_type, kind, inputs):
            index = chunk[position]
            if raw is None:
                results[index] = _failed(writes[index], error or "no answer")
            else:
                raws[index] = raw

    def read(self, object_type: ObjectType, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        """The records as HubSpot holds them (batch read of 100, every property named, owned
        associations read in bulk); ids HubSpot does not know are left out."""
        names = _property_names(object_type, self._hs_definitions(object_type))
        raws: list[dict[str, Any]] = []
        ids = list(dict.fromkeys(str(i) for i in remote_ids))
        for start in range(0, len(ids), READ_BATCH):
            body = self._hs_post(
                f"/crm/v3/objects/{object_type}/batch/read",
                {"inputs": [{"id": i} for i in ids[start:start + READ_BATCH]],
                 "properties": names, "propertiesWithHistory": []},
                what=f"read {object_type}")
            raws.extend(body.get("results") or [])
        links, _ = self._read_associations(  # type: ignore[attr-defined]
            object_type, [str(r["id"]) for r in raws])
        records = [self._record(object_type, raw,  # type: ignore[attr-defined]
                                links.get(str(raw["id"]), ())) for raw in raws]
        self._deal_status(object_type, records)  # type: ignore[attr-defined]
        return records

    # -- record batches -----------------------------------------------------------------------

    def _hs_known_companies(self, writes: Sequence[RecordWrite],
                            groups: dict[str, list[int]]) -> list[RecordWrite]:
        """Company creates whose domain HubSpot already has become updates of that company
        (the identity rule: companies match by domain), so a create whose answer was lost,
        or a company made in HubSpot meanwhile, is not duplicated. One search per 100."""
        writes = list(writes)
        by_domain: dict[str, list[int]] = {}
        for index in groups["create"]:
            domain = _domain_key(writes[index].fields.get("domain"))
            if domain:
                by_domain.setdefault(domain, []).append(index)
        domains = sorted(by_domain)
        for start in range(0, len(domains), SEARCH_IN):
            for domain, remote_id in self._hs_search_domains(
                    domains[start:start + SEARCH_IN]).items():
                for index in by_domain.get(domain, ()):
                    writes[index] = replace(writes[index], op="update", remote_id=remote_id)
                    groups["create"].remove(index)
                    groups["update"].append(index)
        return writes

    def _hs_search_domains(self, domains: list[str]) -> dict[str, str]:
        """domain -> the oldest live company with it."""
        from crmsync.adapters.hubspot import SEARCH_BUCKET

        body = {"filterGroups": [{"filters": [
                    {"propertyName": "domain", "operator": "IN", "values": domains}]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": ["domain"], "limit": 200}
        reply, _ = self._records_request(  # type: ignore[attr-defined]
            "POST", "/crm/v3/objects/companies/search", json=body,
            what=f"look for {len(domains)} companies by domain", bucket=SEARCH_BUCKET)
        found: dict[str, str] = {}
        for raw in reply.get("results") or []:
            domain = _domain_key((raw.get("properties") or {}).get("domain"))
            if domain:
                found.setdefault(domain, str(raw["id"]))
        return found

    def _hs_input(self, kind: str, object_type: ObjectType,
                  write: RecordWrite) -> dict[str, Any]:
        properties = _properties(object_type, write)
        if kind == "upsert":
            return {"idProperty": "email", "id": str(write.fields["email"]).strip(),
                    "properties": properties}
        if kind == "update":
            return {"id": str(write.remote_id), "properties": properties}
        item: dict[str, Any] = {"properties": properties, "associations": []}
        for association in write.associations or ():
            types = _type_ids(object_type, association)
            if types:
                item["associations"].append({"to": {"id": association.to_id},
                                             "types": _types(types)})
        return item

    def _hs_batch(self, object_type: ObjectType, kind: str,
                  inputs: list[dict[str, Any]]) -> list[_Outcome]:
        """One batch call; each input's result or error. A 4xx for the whole batch is split
        in halves until the inputs at fault stand alone (HubSpot wrote none of a refused
        batch, so sending the rest again is safe)."""
        traced = [dict(item, objectWriteTraceId=str(n)) for n, item in enumerate(inputs)]
        what = f"{kind} {len(inputs)} {object_type}"
        try:
            body = self._hs_post(f"/crm/v3/objects/{object_type}/batch/{kind}",
                                 {"inputs": traced}, what=what)
        except FatalRemoteError as exc:
            if isinstance(exc, TokenRefusedError):
                raise
            if len(inputs) == 1 or exc.status not in _SPLIT_STATUSES:
                # e.g. a 403 (a scope missing): each of these records fails with it
                return [(n, None, crm_message(exc, what)) for n in range(len(inputs))]
            half = len(inputs) // 2
            head = self._hs_batch(object_type, kind, inputs[:half])
            tail = self._hs_batch(object_type, kind, inputs[half:])
            return head + [(n + half, raw, error) for n, raw, error in tail]
        return _match(kind, inputs, body)

    def _hs_records(self, object_type: ObjectType, raws: Mapping[int, dict[str, Any]],
                    writes: Sequence[RecordWrite]) -> dict[int, RemoteRecord]:
        records: dict[int, RemoteRecord] = {}
        for index, raw in raws.items():
            answered = raw.get("properties") or {}
            record = self._record(object_type, raw,  # type: ignore[attr-defined]
                                  _as_held(object_type, writes[index].associations))
            # Only the fields whose property the answer carried (see the module docstring).
            fields = {name: value for name, value in record.fields.items()
                      if SOURCES[object_type].get(name) in answered}
            records[index] = RemoteRecord(object_type, record.id, record.modified_at, fields,
                                          record.properties, record.associations)
        staged = [r for r in records.values() if "stage_id" in r.fields]
        if object_type == "deals" and staged:
            # Pipelines that cannot be read now leave the records without a status.
            with suppress(RetriableRemoteError), _CACHE_LOCK:
                self._deal_status(object_type, staged)  # type: ignore[attr-defined]
        return records

    # -- associations -------------------------------------------------------------------------

    def _hs_write_associations(self, object_type: ObjectType, written: Mapping[int, str],
                               writes: Sequence[RecordWrite]) -> dict[int, str]:
        """Make each written record's owned associations what its write says; returns the
        errors by write index."""
        errors: dict[int, str] = {}
        by_id = {remote_id: index for index, remote_id in written.items()}
        for to_type in OWNED_ASSOCIATIONS[object_type] if by_id else ():
            current = self._hs_current_links(object_type, to_type, list(by_id))
            adds, demotions, removes = _association_changes(
                object_type, to_type, {i: writes[n].associations or () for i, n in by_id.items()},
                current)
            path = f"/crm/v4/associations/{object_type}/{to_type}/batch"
            for start in range(0, len(adds), BATCH):
                chunk = adds[start:start + BATCH]
                body = self._hs_post(f"{path}/create", {"inputs": chunk},
                                     what=f"associate {len(chunk)} {object_type} with {to_type}")
                for error in body.get("errors") or []:
                    for remote_id in _error_ids(error, chunk):
                        if remote_id in by_id:
                            errors[by_id[remote_id]] = _error_message(error)
            # A primary that is no longer primary loses that label only (v4 labels/archive).
            for start in range(0, len(demotions), BATCH):
                self._hs_post(f"{path}/labels/archive",
                              {"inputs": demotions[start:start + BATCH]},
                              what=f"unset primary {object_type}→{to_type} associations")
            for start in range(0, len(removes), BATCH):
                self._hs_post(f"{path}/archive", {"inputs": removes[start:start + BATCH]},
                              what=f"remove {object_type}→{to_type} associations")
        return errors

    def _hs_current_links(self, object_type: ObjectType, to_type: str,
                          ids: list[str]) -> dict[str, dict[str, set[int]]]:
        """from id -> to id -> the association type ids HubSpot holds, read in bulk."""
        found: dict[str, dict[str, set[int]]] = {}
        pending: list[dict[str, Any]] = [{"id": i} for i in ids]
        while pending:
            chunk, pending = pending[:ASSOCIATION_READ], pending[ASSOCIATION_READ:]
            body = self._hs_post(f"/crm/v4/associations/{object_type}/{to_type}/batch/read",
                                 {"inputs": chunk},
                                 what=f"read {object_type}→{to_type} associations")
            # 207: inputs without associations come back as errors (NO_ASSOCIATIONS_FOUND)
            for result in body.get("results") or []:
                from_id = str(result["from"]["id"])
                links = found.setdefault(from_id, {})
                for to in result.get("to") or []:
                    links.setdefault(str(to["toObjectId"]), set()).update(
                        int(t.get("typeId") or 0) for t in to.get("associationTypes") or [])
                following = ((result.get("paging") or {}).get("next") or {}).get("after")
                if following:
                    pending.append({"id": from_id, "after": following})
        return found

    # -- HTTP ---------------------------------------------------------------------------------

    def _hs_post(self, path: str, body: Any, *, what: str) -> dict[str, Any]:
        reply, _ = self._records_request("POST", path, json=body,  # type: ignore[attr-defined]
                                         what=what)
        return cast("dict[str, Any]", reply)

    def _hs_definitions(self, object_type: ObjectType) -> list[FieldDefinition]:
        cache: dict[str, list[FieldDefinition]] = self.__dict__.setdefault(
            "_hs_field_cache", {})
        if object_type not in cache:
            with _CACHE_LOCK:
                if object_type not in cache:
                    cache[object_type] = self.field_definitions(object_type)  # type: ignore[attr-defined]
        return cache[object_type]


# -- mapping -----------------------------------------------------------------------------------


def _sort(object_type: ObjectType, writes: Sequence[RecordWrite],
          results: dict[int, WriteResult]) -> dict[str, list[int]]:
    """Write indexes by the batch endpoint that takes them; refusals go into `results`."""
    groups: dict[str, list[int]] = {"upsert": [], "create": [], "update": [], "archive": []}
    for index, write in enumerate(writes):
        if write.object_type != object_type:
            results[index] = _failed(write, f"a {write.object_type} write sent with "
                                     f"{object_type}")
        elif write.op == "create":
            email = str(write.fields.get("email") or "").strip()
            groups["upsert" if object_type == "contacts" and email else "create"].append(index)
        elif not write.remote_id:
            results[index] = _failed(write, f"cannot {write.op} a record without its "
                                     "HubSpot id")
        else:
            groups[write.op].append(index)
    return groups


def _properties(object_type: ObjectType, write: RecordWrite) -> dict[str, str]:
    """Canonical fields as HubSpot properties, then the other properties, all as text."""
    out: dict[str, str] = {}
    sources = SOURCES[object_type]
    for name, value in write.fields.items():
        if name in _NOT_WRITTEN or name not in sources:
            continue
        out[sources[name]] = _text(value, date=name == "close_date")
    for name, value in write.properties.items():
        if name not in (MODIFIED[object_type], "hs_object_id"):
            out[name] = _text(value)
    return out


def _domain_key(value: Any) -> str:
    # IN compares string values in lower case (search guide, "Filter search results").
    text = str(value or "").strip().lower()
    return text.removeprefix("www.")


def _text(value: Any, *, date: bool = False) -> str:
    """A property value as HubSpot takes it; "" clears the property."""
    if date and isinstance(value, str) and len(value) == 10:
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        # Date values are midnight UTC in epoch milliseconds (properties guide, "Date").
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = str(int(when.timestamp() * 1000))
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, (list, tuple, set)):
        text = ";".join(str(v) for v in value)  # multiple checkboxes: values joined by ;
    else:
        text = "" if value is None else str(value)
    return text


def _association_changes(
        object_type: str, to_type: str, wanted_by_id: Mapping[str, Iterable[Association]],
        current: Mapping[str, Mapping[str, set[int]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """v4 inputs (create, labels/archive, archive) that turn `current` into what is wanted."""
    adds: list[dict[str, Any]] = []
    demotions: list[dict[str, Any]] = []
    removes: list[dict[str, Any]] = []
    primary = (ASSOCIATION_TYPE_IDS.get((object_type, to_type)) or (0, None))[1]
    for remote_id, associations in wanted_by_id.items():
        wanted = {a.to_id: a for a in associations if a.to_type == to_type}
        have = current.get(remote_id, {})
        for to_id, association in wanted.items():
            types = set(_type_ids(object_type, association))
            held = have.get(to_id, set())
            if not types <= held:
                adds.append({"from": {"id": remote_id}, "to": {"id": to_id},
                             "types": _types(sorted(types))})
            elif primary is not None and primary in held and primary not in types:
                demotions.append({"from": {"id": remote_id}, "to": {"id": to_id},
                                  "types": _types([primary])})
        gone = sorted(have.keys() - wanted.keys())
        if gone:
            removes.append({"from": {"id": remote_id}, "to": [{"id": i} for i in gone]})
    return adds, demotions, removes


def _types(type_ids: Iterable[int]) -> list[dict[str, Any]]:
    return [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}
            for t in type_ids]


def _type_ids(object_type: str, association: Association) -> list[int]:
    pair = ASSOCIATION_TYPE_IDS.get((object_type, association.to_type))
    if pair is None:
        return []
    unlabeled, primary = pair
    return [unlabeled, primary] if association.primary and primary is not None else [unlabeled]


def _match(kind: str, inputs: list[dict[str, Any]],
           body: Mapping[str, Any]) -> list[_Outcome]:
    """Each input's result or error from a batch answer (see the module docstring)."""
    results = _placed_results(kind, inputs, body.get("results") or [])
    errors: dict[int, str] = {}
    unplaced: list[str] = []
    for error in body.get("errors") or []:
        positions = _error_positions(error, inputs)
        for position in positions:
            errors.setdefault(position, _error_message(error))
        if not positions:
            unplaced.append(_error_message(error))
    outcomes: list[_Outcome] = []
    for position in range(len(inputs)):
        if position in errors:
            outcomes.append((position, None, errors[position]))
        elif position in results:
            outcomes.append((position, results[position], None))
        else:
            reason = "; ".join(unplaced) or "HubSpot's answer did not mention this record"
            outcomes.append((position, None, reason))
    return outcomes


def _placed_results(kind: str, inputs: list[dict[str, Any]],
                    raws: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    loose: list[dict[str, Any]] = []
    for raw in raws:
        trace = str(raw.get("objectWriteTraceId"))
        if trace.isdigit() and int(trace) < len(inputs):
            results[int(trace)] = raw
        else:
            loose.append(raw)
    # An answer without trace ids: by id (update), by email (upsert), else in order.
    open_positions = [n for n in range(len(inputs)) if n not in results]
    for raw in loose:
        position = _position(kind, inputs, raw, open_positions)
        if position is not None:
            results[position] = raw
            open_positions.remove(position)
    return results


def _position(kind: str, inputs: list[dict[str, Any]], raw: Mapping[str, Any],
              open_positions: list[int]) -> int | None:
    if kind == "update":
        return next((n for n in open_positions if str(inputs[n]["id"]) == str(raw["id"])),
                    None)
    if kind == "upsert":
        email = str((raw.get("properties") or {}).get("email") or "").strip().lower()
        return next((n for n in open_positions
                     if str(inputs[n]["id"]).strip().lower() == email), None)
    return open_positions[0] if open_positions else None


def _error_positions(error: Mapping[str, Any], inputs: list[dict[str, Any]]) -> list[int]:
    context = error.get("context") or {}
    traces = [str(t) for t in context.get("objectWriteTraceId") or []]
    positions = [int(t) for t in traces if t.isdigit() and int(t) < len(inputs)]
    if positions:
        return positions
    ids = {str(i) for i in context.get("ids") or []}
    return [n for n, item in enumerate(inputs) if str(item.get("id")) in ids]


def _error_ids(error: Mapping[str, Any], chunk: Iterable[Mapping[str, Any]]) -> list[str]:
    """The from ids an association error names (its context, else its message)."""
    context = error.get("context") or {}
    # An id may come as a pair "from→to" (the sandbox) or alone.
    named = [str(i).split("→")[0].strip()
             for key in ("fromObjectId", "from", "ids") for i in context.get(key) or []]
    if named:
        return named
    message = str(error.get("message") or "")
    return [str(item["from"]["id"]) for item in chunk if str(item["from"]["id"]) in message]


def _error_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("message") or "HubSpot refused this record")
    category = error.get("category")
    return f"{message} ({category})" if category else message


def crm_message(exc: RemoteError, what: str) -> str:
    """The CRM's own words in `exc` ("<crm> answered <status>: <message> (<what>)")."""
    text = exc.message.split(": ", 1)[-1]
    return text.removesuffix(f" ({what})")


def _failed(write: RecordWrite, error: str) -> WriteResult:
    return WriteResult(write.key, ok=False, remote_id=write.remote_id, error=error)


def _as_held(object_type: str, associations: tuple[Association, ...] | None
             ) -> tuple[Association, ...] | None:
    """The associations as HubSpot holds them after writing them: primary only where the
    pair has a primary type (a deal's contacts have none)."""
    if associations is None:
        return None
    return tuple(a if not a.primary or ASSOCIATION_TYPE_IDS.get((object_type, a.to_type),
                                                                 (0, None))[1] is not None
                 else Association(a.to_type, a.to_id, False) for a in associations)
