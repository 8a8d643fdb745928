"""HubSpot contacts, companies and deals page by page: the `RecordAdapter` side of
`HubSpotAdapter` (mixed in as `HubSpotRecords`).

What each way costs, in calls (limits in API-FACTS.md):

- **first load** (cursor None or phase "full"): `GET /crm/v3/objects/{type}` with `limit=100`,
  every property named and the owned associations inline (`associations=companies` for
  contacts, `contacts,companies` for deals): 10 calls per 1,000 records, plus 1 for the deal
  pipelines (deals only, once per adapter). With `concurrency` above 1 the list is read in
  slices of the id space at once (`_full_partitioned`): the first page alone, one search for
  the highest id and the count, then up to `concurrency` slices in flight, each ending in a
  partial page — about 10.3 calls per 1,000 at 10,000 records, 10.0 at a million. Where the
  property list would make the URL longer than `MAX_URL`, search on `hs_object_id` (keyset,
  properties in the body) replaces the list, one page after another; a page then gathers
  searches up to one association batch (`ASSOCIATION_READ_MAX`).
- **increment**: `POST …/search` on the modification date (`lastmodifieddate` for contacts,
  `hs_lastmodifieddate` otherwise), `GTE` the high-water mark, ascending, 200 a page: 5 calls
  per 1,000 changed records plus one v4 `batch/read` per owned association type and page.
  Nothing changed: exactly 1 call (records read again that the store holds at the same
  modification time, the engine's `stored_versions`, are left out before that read).
  Records modified in the last `SEARCH_LAG` wait for the
  next run (the search index trails writes). Search answers at most `SEARCH_CAP` results per
  query: before paging past it the query restarts from the last timestamp seen, first reading
  that timestamp's records by id (`EQ ts`, `hs_object_id GT last`, sorted by id) so ties of
  any size are neither lost nor repeated. Unconfirmed: HubSpot orders records with one
  timestamp by id (the sandbox does); the resume rule `(ts, id) <= high water` relies on it.
- **removals**: merged records come free as the survivor's `hs_merged_object_ids`. With
  `scan_removals`, after an increment (a full pass reads live records only: the engine
  tombstones what it did not list), the archived list (`archived=true`, 100 a page) is read
  whole, since HubSpot lists archived records by id and not by `archivedAt`: 1 call per 100
  archived records; those archived since the last scan are reported (the first scan after a
  full pass reports every archived record, so those archived during the pass too).

Requests go through `requests` and the adapter's `HttpPolicy` (one retry layer), not the SDK's
generated APIs: these turn every record into model objects (slow at a million records), and
the property list must be measured as a URL before it is sent.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import requests

from crmsync.adapters.http_policy import Reply, parse_body, request_timeouts
from crmsync.adapters.records import (
    Association,
    FieldDefinition,
    FieldOption,
    FieldType,
    Partition,
    PullCursor,
    RecordPage,
    RemoteRecord,
    RemoteRemoval,
    TokenGuard,
    ensure_last_done,
    interleave,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence

    from crmsync.adapters.http_policy import HttpPolicy
    from crmsync.names import ObjectType

LIST_LIMIT = 100  # objects list maximum
SEARCH_LIMIT = 200  # search maximum (HubSpot changelog, September 2024)
SEARCH_CAP = 10_000  # results one search query can page through (search guide)
# v4 association batch/read takes 1,000 inputs since 2025-02-10 (developer changelog).
ASSOCIATION_READ_MAX = 1_000
MAX_URL = 6_000  # longer list URLs risk a 414 (dlt-hub/verified-sources#305)
# Subtracted from a full pass's start before increments take over: HubSpot's search index
# lags writes by seconds, and our clock may differ from HubSpot's.
OVERLAP = dt.timedelta(minutes=2)
# Search reads an index that trails writes ("it may take a few moments for newly created or
# updated objects to appear", search guide). An increment takes no record modified in the
# last SEARCH_LAG: a record written just before the search but not yet indexed would
# otherwise fall behind a high-water mark that has moved past it. The next run reads them.
SEARCH_LAG = dt.timedelta(seconds=30)

# A full pass by list is read in slices of the id space, concurrently (`_full_partitioned`):
# up to PARTITIONS_PER_WORKER slices per worker (more slices than workers evens out ids that
# cluster), none smaller than PARTITION_MIN_RECORDS — each slice costs about half a page more.
PARTITIONS_PER_WORKER = 4
PARTITION_MIN_RECORDS = 2_000

MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
            "deals": "hs_lastmodifieddate"}
OWNED_ASSOCIATIONS: dict[str, tuple[ObjectType, ...]] = {
    "contacts": ("companies",), "companies": (), "deals": ("contacts", "companies")}
# HubSpot-defined primary association types: contact→company 1, deal→company 5.
PRIMARY_TYPE_IDS = frozenset({1, 5})
PRIMARY_TYPE_NAMES = frozenset({"contact_to_company", "deal_to_company"})
MERGED = "hs_merged_object_ids"
STAGE_ENTERED = "hs_v2_date_entered_current_stage"
# The HubSpot properties each canonical field comes from (deal status comes from the stage).
SOURCES: dict[str, dict[str, str]] = {
    "contacts": {"email": "email", "first_name": "firstname", "last_name": "lastname",
                 "phone": "phone", "owner_id": "hubspot_owner_id"},
    "companies": {"name": "name", "domain": "domain", "owner_id": "hubspot_owner_id"},
    "deals": {"name": "dealname", "amount": "amount", "currency": "deal_currency_code",
              "pipeline_id": "pipeline", "stage_id": "dealstage", "close_date": "closedate",
              "stage_changed_at": STAGE_ENTERED, "owner_id": "hubspot_owner_id",
              "created_at": "createdate"},
}
_NOT_PROPERTIES = frozenset({"hs_object_id", "lastmodifieddate", "hs_lastmodifieddate", MERGED})
_TYPES: dict[str, FieldType] = {"string": "text", "number": "number", "date": "date",
                                "datetime": "datetime", "enumeration": "enumeration",
                                "bool": "bool"}


class HubSpotRecords:
    """Contacts, companies and deals for `HubSpotAdapter` (see the module docstring)."""

    crm: str
    policy: HttpPolicy
    _base_url: str
    _timeouts: tuple[float, float]
    _pipelines: Any  # the SDK's pipelines API, whose configuration holds the token
    # Wall-clock time in POSIX seconds (pass starts, the search lag); tests put the sandbox's
    # clock here.
    records_clock: Callable[[], float] = time.time
    # How long HubSpot's search index may trail a write (CRMSYNC_HUBSPOT_SEARCH_LAG_SECONDS):
    # records modified that recently wait for the next run.
    search_lag: dt.timedelta = SEARCH_LAG
    initial_load: str = "list"  # full passes: export | list | auto (hubspot_export.py)
    # Requests this adapter's pulls keep in flight (CRMSYNC_SYNC_CONCURRENCY, set by the
    # registry): above 1, a full pass by list reads slices of the ids concurrently.
    concurrency: int = 1
    partition_min_records: int = PARTITION_MIN_RECORDS

    # -- the interface ------------------------------------------------------------------------

    def field_definitions(self, object_type: ObjectType) -> list[FieldDefinition]:
        """Every property of the type (`GET /crm/v3/properties/{objectType}`, one call)."""
        body, _ = self._records_request("GET", f"/crm/v3/properties/{object_type}",
                                        what=f"list {object_type} properties")
        return [_definition(raw) for raw in body.get("results") or []]

    def pull(self, object_type: ObjectType, cursor: PullCursor | None,
             fields: Sequence[FieldDefinition], *,
             scan_removals: bool = False) -> Iterator[RecordPage]:
        """Pages changed since `cursor`; see the module docstring for the calls each costs."""
        names = _property_names(object_type, fields)
        return ensure_last_done(self._phases(object_type, cursor or PullCursor(), names,
                                             scan_removals=scan_removals))

    # -- phases -------------------------------------------------------------------------------

    def _phases(self, object_type: ObjectType, cursor: PullCursor, names: list[str], *,
                scan_removals: bool) -> Iterator[RecordPage]:
        if cursor.phase == "full":
            from crmsync.adapters.hubspot_export import full_by_export  # big first loads

            if not (yield from full_by_export(self, object_type, cursor, names)):
                yield from self._full(object_type, cursor, names)
            return
        if cursor.phase != "archived":
            cursor = yield from self._increment(object_type, cursor, names)
            if not scan_removals:
                return
        yield from self._archived(object_type, cursor)

    def _full(self, object_type: ObjectType, cursor: PullCursor,
              names: list[str]) -> Iterator[RecordPage]:
        started = cursor.pass_started_at or self._records_now()
        owned = OWNED_ASSOCIATIONS[object_type]
        params: dict[str, Any] = {"limit": LIST_LIMIT, "properties": ",".join(names)}
        if owned:
            params["associations"] = ",".join(owned)
        path = f"/crm/v3/objects/{object_type}"
        by_search = len(self._base_url + path + "?" + urlencode(params)) + 40 > MAX_URL
        if ((cursor.token or cursor.partitions)
                and cursor.extra.get("full_by") != ("search" if by_search else "list")):
            # The property list changed size mid-pass: list and search tokens mean different
            # things, so the pass starts over the other way (keeping its start time).
            cursor = PullCursor(phase="full", pass_started_at=started, extra={
                k: v for k, v in cursor.extra.items() if k != "full_by"})
        if by_search:
            yield from self._full_by_search(object_type, cursor, names, started)
            return
        listing = _Listing(self, object_type, path, params)
        if cursor.partitions:
            yield from self._full_partitioned(listing, cursor, started, cursor.partitions)
            return
        token = cursor.token
        if token is None and self.concurrency > 1:
            # The first page is read alone: it says where the ids start (and whether the
            # tokens are ids at all).
            page = listing.page(None)
            token = page.following
            yield page.record_page(_after_full(cursor, token, started, "list"))
            if token is None:
                return
        sizing = 0  # the search that sized the slices, charged to the next page
        if self.concurrency > 1 and _id_token(token) is not None:
            parts = self._partitions(object_type, int(str(token)))
            sizing = 1
            if len(parts) > 1:
                yield from self._full_partitioned(listing, cursor, started, tuple(parts),
                                                  sizing)
                return
        # One sequence: a token that is not a plain id (see `_id_token`), concurrency 1, or
        # too few records left to be worth splitting.
        guard = TokenGuard(self.crm, f"list {object_type}")
        guard.check(token)
        while True:
            page = listing.page(token)
            token = page.following
            guard.check(token)
            yield page.record_page(_after_full(cursor, token, started, "list"), sizing)
            sizing = 0
            if not token:
                return

    def _partitions(self, object_type: ObjectType, low: int) -> list[Partition]:
        """Slices of the ids from `low` up for concurrent reading (one search call).

        The highest id and the count come from one search sorted by `hs_object_id`
        descending. The last slice has no end, so records created above that id during the
        pass are listed too (and the search increment after the pass reads them anyway).
        """
        from crmsync.adapters.hubspot import SEARCH_BUCKET

        body, _ = self._records_request(
            "POST", f"/crm/v3/objects/{object_type}/search", what=f"size {object_type}",
            bucket=SEARCH_BUCKET, json={
                "filterGroups": [{"filters": [_filter("hs_object_id", "GTE", str(low))]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
                "properties": ["hs_object_id"], "limit": 1})
        results = body.get("results") or []
        if not results:
            return []
        count = int(body.get("total") or 0)
        parts = min(self.concurrency * PARTITIONS_PER_WORKER,
                    count // max(1, self.partition_min_records))
        return split_ids(low, int(results[0]["id"]), parts)

    def _full_partitioned(self, listing: _Listing, cursor: PullCursor, started: dt.datetime,
                          parts: tuple[Partition, ...], sizing: int = 0
                          ) -> Iterator[RecordPage]:
        """The pass's slices read concurrently; pages in the order they arrive.

        Each page's cursor holds every unfinished slice where the pages yielded so far (this
        one included) leave it, never further: the engine commits pages in this order, so a
        run killed anywhere resumes each slice after its last committed page. The pass is
        complete when the last slice ends: that page's cursor hands over to increments.
        """
        where = dict(enumerate(parts))
        sources = [partial(listing.pages, part) for part in parts]
        with closing(interleave(sources, self.concurrency)) as arriving:
            yield from self._sliced_pages(arriving, where, cursor, started, sizing)

    @staticmethod
    def _sliced_pages(arriving: Iterator[tuple[int, _ListPage]], where: dict[int, Partition],
                      cursor: PullCursor, started: dt.datetime, sizing: int
                      ) -> Iterator[RecordPage]:
        for index, page in arriving:
            if page.following is None:
                del where[index]
            else:
                where[index] = Partition(page.following, where[index].end)
            if where:
                remaining = tuple(where[i] for i in sorted(where))
                # `token` repeats the first slice's: code that only knows `token` sees a
                # list pass under way (an export is not started in its middle).
                after = PullCursor(phase="full", token=remaining[0].token,
                                   pass_started_at=started, partitions=remaining,
                                   extra=dict(cursor.extra, full_by="list"))
            else:
                after = _after_full(cursor, None, started, "list")
            yield page.record_page(after, sizing)
            sizing = 0

    def _full_by_search(self, object_type: ObjectType, cursor: PullCursor, names: list[str],
                        started: dt.datetime) -> Iterator[RecordPage]:
        # Keyset on hs_object_id (token = last id read): no offset, so no 10,000 cap. A page
        # gathers searches up to one association batch, read once per association type.
        last = cursor.token
        finished = False
        while not finished:
            raws: list[dict[str, Any]] = []
            calls = 0
            while len(raws) < _group() and not finished:
                filters = [_filter("hs_object_id", "GT", last)] if last else []
                found, _, used = self._search_records(object_type, filters, "hs_object_id",
                                                      names, None)
                calls += used
                raws += found
                last = str(found[-1]["id"]) if found else last
                finished = len(found) < SEARCH_LIMIT
            page, more = self._search_page(object_type, raws)
            after = _after_full(cursor, None if finished else last, started, "search")
            yield replace_page(page, after, calls + more)

    def _increment(self, object_type: ObjectType, cursor: PullCursor,
                   names: list[str]) -> Generator[RecordPage, None, PullCursor]:
        """Search pages on the modification date; returns the cursor after the last one.

        The query state lives in `cursor.extra["query"]`: mode "range" (`op` GTE or GT the
        timestamp `ts`, sorted by it, paged by offset in `cursor.token`; with GTE, records at
        or before (`ts`, `id`) are skipped) or mode "tie" (`EQ ts`, `hs_object_id GT id`,
        sorted by id: one timestamp's records, however many, by keyset). A page gathers
        searches up to one association batch.
        """
        guard = TokenGuard(self.crm, f"search {object_type}")
        query = dict(cursor.extra.get("query") or _range_query(cursor, "GTE"))
        token = cursor.token
        guard.check(token)
        high, high_id = cursor.high_water, cursor.high_water_id
        settled = self._records_now() - self.search_lag
        finished = False
        while True:
            gathered: list[dict[str, Any]] = []
            calls = 0
            while len(gathered) < _group() and not finished:
                raws, next_after, used = self._search_step(object_type, query, names, token)
                calls += used
                if (query["mode"] == "range" and raws
                        and _modified(object_type, raws[-1]) > settled):
                    # Sorted by time: keep what is older than the lag and stop there.
                    raws = [r for r in raws if _modified(object_type, r) <= settled]
                    next_after = None
                if raws:
                    high, high_id = _modified(object_type, raws[-1]), str(raws[-1]["id"])
                query, token, finished = _next_step(query, next_after, bool(raws), high,
                                                    high_id)
                if token is None:
                    guard.reset()  # a new query: its offsets are its own
                guard.check(token)
                gathered += raws
            page, more = self._search_page(object_type, self._changed(object_type, gathered))
            after = PullCursor(phase="incremental", token=token, high_water=high,
                               high_water_id=high_id, pass_started_at=cursor.pass_started_at,
                               extra=dict(cursor.extra, query=query))
            yield replace_page(page, after, calls + more)
            if finished:
                return after

    def _changed(self, object_type: ObjectType, raws: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
        """The search's records less those the store holds at this very modification time
        (the engine's `stored_versions`): read again unchanged — the first increment after a
        full pass reads what changed from just before the pass began — they would cost an
        association read each page, and a run with nothing changed more than its search."""
        stored_versions = getattr(self, "stored_versions", None)
        if stored_versions is None or not raws:
            return raws
        held = stored_versions(object_type, [str(raw["id"]) for raw in raws])
        return [raw for raw in raws if held.get(str(raw["id"])) != _modified(object_type, raw)]

    def _search_step(self, object_type: ObjectType, query: Mapping[str, Any],
                     names: list[str], token: str | None
                     ) -> tuple[list[dict[str, Any]], str | None, int]:
        """One search request of the increment's current query (see `_increment`)."""
        prop = MODIFIED[object_type]
        ts = dt.datetime.fromisoformat(query["ts"]) if query.get("ts") else None
        if query["mode"] == "tie":
            filters = [_filter(prop, "EQ", ts), _filter("hs_object_id", "GT", query["id"])]
            return self._search_records(object_type, filters, "hs_object_id", names, None)
        filters = [_filter(prop, query["op"], ts)] if ts else []
        raws, next_after, calls = self._search_records(object_type, filters, prop, names, token)
        if query["op"] == "GTE" and query.get("id"):
            floor = (ts, int(query["id"]))
            raws = [r for r in raws if (_modified(object_type, r), int(r["id"])) > floor]
        return raws, next_after, calls

    def _archived(self, object_type: ObjectType, cursor: PullCursor) -> Iterator[RecordPage]:
        """Records archived since the last scan (`archivedAt` after it), as removals."""
        since_text = cursor.extra.get("archived_since")
        since = dt.datetime.fromisoformat(since_text) if since_text else None
        started = (dt.datetime.fromisoformat(cursor.extra["archived_started"])
                   if cursor.phase == "archived" and cursor.extra.get("archived_started")
                   else self._records_now())
        guard = TokenGuard(self.crm, f"list archived {object_type}")
        token = cursor.token if cursor.phase == "archived" else None
        # The next scan starts after the newest `archivedAt` seen (HubSpot's clock) or, when
        # none was newer, where this one started.
        newest_text = cursor.extra.get("archived_newest") if cursor.phase == "archived" else None
        newest = dt.datetime.fromisoformat(newest_text) if newest_text else since
        guard.check(token)
        while True:
            params: dict[str, Any] = {"limit": LIST_LIMIT, "archived": "true",
                                      "properties": "hs_object_id"}
            if token:
                params["after"] = token
            body, calls = self._records_request("GET", f"/crm/v3/objects/{object_type}",
                                                params=params,
                                                what=f"list archived {object_type}")
            removals = []
            for raw in body.get("results") or []:
                when = _time(raw.get("archivedAt"))
                if since is None or when is None or when > since:
                    removals.append(RemoteRemoval(object_type, str(raw["id"]), "archived",
                                                  removed_at=when))
                if when is not None and (newest is None or when > newest):
                    newest = when
            token = ((body.get("paging") or {}).get("next") or {}).get("after")
            guard.check(token)
            if token:
                after = PullCursor(phase="archived", token=token, high_water=cursor.high_water,
                                   high_water_id=cursor.high_water_id,
                                   pass_started_at=cursor.pass_started_at,
                                   extra=dict(cursor.extra, archived_started=_iso(started),
                                              archived_newest=_iso(newest)))
            else:
                extra = {k: v for k, v in cursor.extra.items()
                         if k not in ("archived_started", "archived_newest")}
                extra["archived_since"] = _iso(newest or started - OVERLAP)
                after = PullCursor(phase="incremental", token=None,
                                   high_water=cursor.high_water,
                                   high_water_id=cursor.high_water_id,
                                   pass_started_at=cursor.pass_started_at, extra=extra)
            yield RecordPage(object_type, (), tuple(removals), after, calls=calls)
            if not token:
                return

    # -- reading ------------------------------------------------------------------------------

    def _search_records(self, object_type: ObjectType, filters: list[dict[str, Any]], sort: str,
                names: list[str], after: str | None
                ) -> tuple[list[dict[str, Any]], str | None, int]:
        from crmsync.adapters.hubspot import SEARCH_BUCKET

        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": names, "limit": SEARCH_LIMIT,
        }
        if after:
            body["after"] = after
        reply, calls = self._records_request("POST", f"/crm/v3/objects/{object_type}/search",
                                     json=body, what=f"search {object_type}",
                                     bucket=SEARCH_BUCKET)
        next_after = ((reply.get("paging") or {}).get("next") or {}).get("after")
        return list(reply.get("results") or []), next_after, calls

    def _search_page(self, object_type: ObjectType,
                     raws: list[dict[str, Any]]) -> tuple[RecordPage, int]:
        """Records of a search page with their associations read in bulk; returns the calls."""
        ids = [str(raw["id"]) for raw in raws]
        associations, calls = self._read_associations(object_type, ids)
        records = [self._record(object_type, raw, associations.get(str(raw["id"]), ()))
                   for raw in raws]
        calls += self._deal_status(object_type, records)
        page = RecordPage(object_type, tuple(records),
                          _merged(object_type, raws), PullCursor())
        return page, calls

    def _read_associations(self, object_type: ObjectType, ids: list[str]
                           ) -> tuple[dict[str, tuple[Association, ...]], int]:
        found: dict[str, dict[tuple[str, str], bool]] = {i: {} for i in ids}
        calls = self._add_associations(object_type, OWNED_ASSOCIATIONS[object_type], found)
        return {i: tuple(Association(cast("ObjectType", t), to, p)
                         for (t, to), p in sorted(links.items()))
                for i, links in found.items()}, calls

    def _add_associations(self, object_type: ObjectType, to_types: Iterable[str],
                          found: dict[str, dict[tuple[str, str], bool]]) -> int:
        """Adds the associations to `to_types` of the records keyed in `found` (to each
        record's {(type, id): primary}) by v4 batch/read; returns the calls."""
        calls = 0
        for to_type in to_types if found else ():
            pending: list[dict[str, Any]] = [{"id": i} for i in found]
            while pending:
                chunk, pending = pending[:ASSOCIATION_READ_MAX], pending[ASSOCIATION_READ_MAX:]
                body, used = self._records_request(
                    "POST", f"/crm/v4/associations/{object_type}/{to_type}/batch/read",
                    json={"inputs": chunk}, what=f"read {object_type}→{to_type} associations")
                calls += used
                # 207: inputs without associations come back as errors (NO_ASSOCIATIONS_FOUND)
                for result in body.get("results") or []:
                    from_id = str(result["from"]["id"])
                    links = found.setdefault(from_id, {})
                    for to in result.get("to") or []:
                        key = (to_type, str(to["toObjectId"]))
                        primary = any(int(t.get("typeId") or 0) in PRIMARY_TYPE_IDS
                                      for t in to.get("associationTypes") or [])
                        links[key] = links.get(key, False) or primary
                    following = ((result.get("paging") or {}).get("next") or {}).get("after")
                    if following:  # more than one page of associations for this record
                        pending.append({"id": from_id, "after": following})
        return calls

    def _record(self, object_type: ObjectType, raw: dict[str, Any],
                associations: tuple[Association, ...] | None) -> RemoteRecord:
        return record_from_raw(object_type, raw, associations)

    def _deal_status(self, object_type: ObjectType, records: list[RemoteRecord]) -> int:
        """Set deals' status from their stage; returns the calls spent reading pipelines.

        The pipelines are read when a deal page first needs them, and once more if a deal
        names a stage not seen yet (a pipeline created since); never once per page.
        """
        if object_type != "deals" or not records:
            return 0
        known, calls = self._stage_outcomes_for(
            {str(r.fields.get("stage_id")) for r in records})
        set_deal_status(records, known)
        return calls

    def _stage_outcomes_for(self, stage_ids: set[str] | None
                            ) -> tuple[dict[str, str | None], int]:
        """Each deal stage's outcome (won, lost or None), reading the pipelines if they were
        not read yet or (once more) if `stage_ids` names a stage not seen; and the calls."""
        calls = 0
        with _SHARED_STATE:  # concurrent slices of deals read the pipelines once
            known: dict[str, str | None] | None = getattr(self, "_stage_outcomes", None)
            unknown = known is None or any(s not in known for s in stage_ids or ())
            reads = getattr(self, "_stage_reads", 0)
            if unknown and reads < 2:
                known = {stage.id: stage.outcome
                         for pipeline in self.list_pipelines()  # type: ignore[attr-defined]
                         for stage in pipeline.stages}
                self._stage_outcomes = known
                self._stage_reads = reads + 1
                calls = 1  # GET /crm/v3/pipelines/deals answers every pipeline at once
        return known or {}, calls

    def _records_now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.records_clock(), dt.UTC)

    # -- HTTP ---------------------------------------------------------------------------------

    def _records_request(self, method: str, path: str, *, what: str, params: Any = None,
                 json: Any = None, bucket: str = "default") -> tuple[dict[str, Any], int]:
        """One request through the policy; returns the JSON body and the requests it took."""
        session = self._records_session()
        url = self._base_url + path
        timeouts = getattr(self, "_timeouts", None) or request_timeouts(30.0)

        def send() -> Reply[dict[str, Any]]:
            # No redirect is followed (the policy reports one), as with the SDK's calls.
            response = session.request(method, url, params=params, json=json, timeout=timeouts,
                                       allow_redirects=False)
            body = parse_body(response.content) if response.content else {}
            return Reply(response.status_code, response.headers, body=body,
                         value=body if isinstance(body, dict) else {})

        return self.policy.call(send, what=what, bucket=bucket), 1

    def _records_session(self) -> requests.Session:
        session: requests.Session | None = getattr(self, "_session_for_records", None)
        if session is not None:
            return session
        with _SHARED_STATE:
            session = getattr(self, "_session_for_records", None)
            if session is None:
                session = requests.Session()
                # One pooled connection per request in flight (requests keeps 10 by default).
                pooled = requests.adapters.HTTPAdapter(pool_maxsize=max(10, self.concurrency))
                session.mount("http://", pooled)
                session.mount("https://", pooled)
                token = self._pipelines.api_client.configuration.access_token
                session.headers["Authorization"] = f"Bearer {token}"
                session.headers["Accept"] = "application/json"
                self._session_for_records = session
                # `HubSpotAdapter.close` knows only the SDK's clients: close this one with it.
                weakref.finalize(self, session.close)
        return session


@dataclass(frozen=True)
class _ListPage:
    """One page of the objects list, mapped: what a `RecordPage` needs but its cursor."""

    object_type: ObjectType
    raws: list[dict[str, Any]]
    records: list[RemoteRecord]
    following: str | None  # the next page's token; None: this listing (or slice) has ended
    calls: int

    def record_page(self, cursor: PullCursor, other_calls: int = 0) -> RecordPage:
        return RecordPage(self.object_type, tuple(self.records),
                          _merged(self.object_type, self.raws), cursor,
                          calls=self.calls + other_calls)


class _Listing:
    """`GET /crm/v3/objects/{type}` with one query, page by page (thread-safe)."""

    def __init__(self, records: HubSpotRecords, object_type: ObjectType, path: str,
                 params: dict[str, Any]) -> None:
        self._records = records
        self.object_type = object_type
        self._path = path
        self._params = params

    def page(self, token: str | None, end: int | None = None) -> _ListPage:
        """The page at `token`; with `end`, only its records with ids below `end` (a slice's
        last page), and `following` None once the slice is done."""
        object_type, owner = self.object_type, self._records
        query = dict(self._params, after=token) if token else self._params
        body, calls = owner._records_request("GET", self._path, params=query,
                                             what=f"list {object_type}")
        raws = body.get("results") or []
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        if end is not None:
            kept = [raw for raw in raws if int(raw["id"]) < end]
            following_id = _id_token(following)
            if len(kept) < len(raws) or (following_id is not None and following_id >= end):
                following = None
            raws = kept
        owned = OWNED_ASSOCIATIONS[object_type]
        inline = [_inline_associations(raw, owned) for raw in raws]
        # A record with more associations than the list shows inline (the block has its own
        # `paging`) has them all read in bulk instead.
        cut = [str(raw["id"]) for raw, links in zip(raws, inline, strict=True) if links is None]
        complete, more = owner._read_associations(object_type, cut)
        calls += more
        records = [owner._record(object_type, raw,
                                 complete[str(raw["id"])] if links is None else links)
                   for raw, links in zip(raws, inline, strict=True)]
        calls += owner._deal_status(object_type, records)
        return _ListPage(object_type, raws, records, following, calls)

    def pages(self, part: Partition) -> Iterator[_ListPage]:
        """Every page of one slice, from its token to its end."""
        guard = TokenGuard(self._records.crm, f"list {self.object_type}")
        end = int(part.end) if part.end is not None else None
        token: str | None = part.token
        guard.check(token)
        while token is not None:
            page = self.page(token, end)
            token = page.following
            guard.check(token)
            yield page


def _id_token(token: str | None) -> int | None:
    """The record id a list page token stands for, if it is one.

    Observed, unconfirmed: HubSpot documents `paging.next.after` as opaque, but the objects
    list pages in id order and its token is the next page's first record id (the sandbox does
    the same), so `after=N` lists the records from id N on. Partitioned reading relies on
    it; a token that is not a plain integer means something else and is followed as it
    comes, one page after another.
    """
    if token is None or not token.isascii() or not token.isdigit():
        return None
    return int(token)


def split_ids(low: int, high: int, parts: int) -> list[Partition]:
    """The ids from `low` to `high` in `parts` slices of equal width; the last has no end."""
    parts = max(1, min(parts, high - low + 1))
    bounds = [low + (high + 1 - low) * n // parts for n in range(parts)]
    return [Partition(str(start), str(bounds[n + 1]) if n + 1 < parts else None)
            for n, start in enumerate(bounds)]


# Guards the adapter's lazily built state (session, deal stages) against concurrent readers.
_SHARED_STATE = threading.RLock()


def _group() -> int:
    """Records a search-built page gathers: one association batch (at least one search)."""
    return max(SEARCH_LIMIT, ASSOCIATION_READ_MAX)


def replace_page(page: RecordPage, cursor: PullCursor, calls: int) -> RecordPage:
    return RecordPage(page.object_type, page.records, page.removals, cursor, calls=calls)


def _after_full(cursor: PullCursor, token: str | None, started: dt.datetime,
                by: str) -> PullCursor:
    if token:
        return PullCursor(phase="full", token=token, pass_started_at=started,
                          extra=dict(cursor.extra, full_by=by))
    # The list has ended: increments take over from the pass's start (less the overlap),
    # so whatever changed while the pass ran is read again.
    high = started - OVERLAP
    extra = {k: v for k, v in cursor.extra.items() if k not in ("query", "full_by")}
    extra.setdefault("archived_since", _iso(started - OVERLAP))
    return PullCursor(phase="incremental", high_water=high, pass_started_at=started,
                      extra=extra)


def _next_step(query: Mapping[str, Any], next_after: str | None, read_any: bool,
               high: dt.datetime | None, high_id: str | None
               ) -> tuple[dict[str, Any], str | None, bool]:
    """The increment's next (query, offset token, finished) after one search page."""
    if query["mode"] == "tie":
        if next_after is not None and read_any:
            return {"mode": "tie", "ts": query["ts"], "id": high_id}, None, False
        # This timestamp is done: on to strictly later ones.
        return {"mode": "range", "op": "GT", "ts": query["ts"], "id": None}, None, False
    if next_after is None:  # caught up: the next run starts at the high-water mark
        return {"mode": "range", "op": "GTE", "ts": _iso(high), "id": high_id}, None, True
    if int(next_after) + SEARCH_LIMIT > SEARCH_CAP:
        # The next page would pass search's cap: restart from the last record read, first
        # with the rest of its timestamp by id.
        return {"mode": "tie", "ts": _iso(high), "id": high_id}, None, False
    return dict(query), next_after, False


def _range_query(cursor: PullCursor, op: str) -> dict[str, Any]:
    return {"mode": "range", "op": op,
            "ts": _iso(cursor.high_water) if cursor.high_water else None,
            "id": cursor.high_water_id}


def _filter(prop: str, op: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dt.datetime):
        value = str(int(value.timestamp() * 1000))  # search compares datetimes as epoch ms
    return {"propertyName": prop, "operator": op, "value": value}


def _property_names(object_type: str, fields: Sequence[FieldDefinition]) -> list[str]:
    names = dict.fromkeys(f.remote_key for f in fields)
    names.update(dict.fromkeys(SOURCES[object_type].values()))
    names[MODIFIED[object_type]] = None
    names["createdate"] = None
    if object_type != "deals":
        names[MERGED] = None
    return list(names)


def _inline_associations(raw: Mapping[str, Any], owned: Iterable[ObjectType]
                         ) -> tuple[Association, ...] | None:
    """The record's associations as listed inline; None when a block says it has more."""
    found: dict[tuple[str, str], bool] = {}
    inline = raw.get("associations") or {}
    for to_type in owned:
        block = inline.get(to_type) or {}
        if (block.get("paging") or {}).get("next"):
            return None
        for item in block.get("results") or []:
            key = (to_type, str(item["id"]))
            found[key] = found.get(key, False) or item.get("type") in PRIMARY_TYPE_NAMES
    return tuple(Association(cast("ObjectType", t), i, p) for (t, i), p in sorted(found.items()))


def record_from_raw(object_type: ObjectType, raw: Mapping[str, Any],
                    associations: tuple[Association, ...] | None) -> RemoteRecord:
    """A HubSpot record (the v3 shape: `id`, `properties`) in domain terms; deals' `status`
    is set apart (`set_deal_status`), from their pipelines."""
    props: Mapping[str, Any] = raw.get("properties") or {}
    sources = SOURCES[object_type]
    fields: dict[str, Any] = {name: props.get(source) for name, source in sources.items()}
    if object_type == "deals":
        fields["amount"] = _decimal(fields["amount"])
        close = _time(fields["close_date"])
        fields["close_date"] = close.date() if close else None
        fields["closed_at"] = close  # kept only for closed deals (`set_deal_status`)
        fields["stage_changed_at"] = _time(fields["stage_changed_at"])
        fields["created_at"] = _time(fields["created_at"] or raw.get("createdAt"))
    used = set(sources.values())
    properties = {k: v for k, v in props.items() if k not in used and k not in
                  _NOT_PROPERTIES}
    return RemoteRecord(object_type, str(raw["id"]), _modified(object_type, raw), fields,
                        properties, associations)


def set_deal_status(records: Iterable[RemoteRecord], outcomes: Mapping[str, str | None]
                    ) -> None:
    """Each deal's `status` from its stage's outcome (open where the stage has none or is
    not known); an open deal has no `closed_at`."""
    for record in records:
        status = outcomes.get(str(record.fields.get("stage_id"))) or "open"
        fields = cast("dict[str, Any]", record.fields)
        fields["status"] = status
        if status == "open":
            fields["closed_at"] = None


def _merged(object_type: ObjectType, raws: Iterable[Mapping[str, Any]]
            ) -> tuple[RemoteRemoval, ...]:
    removals = []
    for raw in raws:
        merged = (raw.get("properties") or {}).get(MERGED)
        for old in str(merged or "").split(";"):
            if old.strip():
                removals.append(RemoteRemoval(object_type, old.strip(), "merged",
                                              removed_at=_modified(object_type, raw),
                                              merged_into=str(raw["id"])))
    return tuple(removals)


def _modified(object_type: str, raw: Mapping[str, Any]) -> dt.datetime:
    props = raw.get("properties") or {}
    when = _time(props.get(MODIFIED[object_type]) or raw.get("updatedAt"))
    return when or dt.datetime.fromtimestamp(0, dt.UTC)


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    text = str(value)
    if text.isdigit():  # epoch milliseconds (date properties may come so)
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _definition(raw: Mapping[str, Any]) -> FieldDefinition:
    kind = _TYPES.get(str(raw.get("type")), "other")
    if raw.get("fieldType") == "booleancheckbox":
        kind = "bool"
    options = tuple(FieldOption(str(o.get("value")), str(o.get("label")))
                    for o in raw.get("options") or [] if not o.get("hidden"))
    name = str(raw["name"])
    return FieldDefinition(name=name, label=str(raw.get("label") or name), type=kind,
                           remote_key=name, custom=not raw.get("hubspotDefined", False),
                           options=options)
