"""CRM objects v3 search (`POST /crm/v3/objects/{objectType}/search`); the filter semantics
are the pure functions of `hubspot_search`."""

from __future__ import annotations

import json
from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_model import (
    SEARCH_LIMIT_MAX,
    SEARCH_QUERY_MAX,
    SEARCH_RESULTS_CAP,
    SEARCHABLE,
    HubSpotError,
    Record,
)
from crmsync.sandbox.hubspot_objects import ObjectsApi
from crmsync.sandbox.hubspot_search import (
    compile_filter_groups,
    parse_sorts,
    query_predicate,
)


class SearchApi(ObjectsApi):
    """Search over the account's records."""

    def _as_indexed(self, record: Record) -> Record:
        """`record` as search shows it (under index lag, perhaps an older version)."""
        if record.index_log is None:
            return record
        view = self.indexed(record, int(self.clock() * 1000))
        if view is None or view[0] is record.props:
            return record
        shown = Record(record.id, view[0], record.created_ms, record.updated_ms)
        shown.archived = view[1]
        return shown

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
        results = [self._render(object_type, self._as_indexed(store.records[i]),
                                body.get("properties")) for i in window]
        out: dict[str, Any] = {"total": len(ids), "results": results}
        if after + limit < len(ids) and limit > 0:
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    def _search_ids(self, object_type: str, body: dict[str, Any]) -> list[int]:
        groups = body.get("filterGroups")
        if body.get("filters"):
            # Live HubSpot takes a top-level `filters` list as one more AND over every group
            # (one group when there are none); the spec does not list it.
            top = body["filters"]
            if not isinstance(top, list):
                raise HubSpotError(400, "filters must be a list")
            groups = ([{"filters": [*(g.get("filters") or []), *top]} if isinstance(g, dict)
                       else g for g in groups] if isinstance(groups, list) and groups
                      else [{"filters": top}])
        key = json.dumps([object_type, groups, body.get("sorts"), body.get("query")],
                         sort_keys=True, default=str)
        cached = self._search_cache.get(key)
        if cached is not None and cached[0] == self._version and not self._lagged:
            return cached[1]  # validated when it was cached: the same body compiles the same
        kinds = self.catalog.kinds(object_type)
        matcher = compile_filter_groups(groups, kinds)
        sorts = parse_sorts(body.get("sorts"))
        text = query_predicate(body.get("query"), SEARCHABLE[object_type])
        store = self.objects[object_type]
        now = int(self.clock() * 1000)
        views = ((r.id, self.indexed(r, now)) for r in (store.records[i] for i in store.ids))
        matched = [(record_id, view[0]) for record_id, view in views
                   if view is not None and not view[1] and matcher(view[0]) and text(view[0])]
        if sorts:
            name, descending = sorts[0]
            present = [m for m in matched if m[1].get(name)]
            absent = [m for m in matched if not m[1].get(name)]
            present.sort(key=lambda m: (kinds.key(name, m[1][name]), m[0]), reverse=descending)
            matched = present + absent  # records without the property come last
        ids = [record_id for record_id, _ in matched]
        if len(self._search_cache) > 32:
            self._search_cache.clear()
        self._search_cache[key] = (self._version, ids)
        return ids
