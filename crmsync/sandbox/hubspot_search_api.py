"""CRM objects v3 search (`POST /crm/v3/objects/{objectType}/search`); the filter semantics
are the pure functions of `hubspot_search`."""

from __future__ import annotations

import json
from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_model import (
    KINDS,
    SEARCH_LIMIT_MAX,
    SEARCH_QUERY_MAX,
    SEARCH_RESULTS_CAP,
    SEARCHABLE,
    HubSpotError,
)
from crmsync.sandbox.hubspot_objects import ObjectsApi
from crmsync.sandbox.hubspot_search import (
    compile_filter_groups,
    parse_sorts,
    query_predicate,
)


class SearchApi(ObjectsApi):
    """Search over the account's records."""

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
        text = query_predicate(body.get("query"), SEARCHABLE[object_type])
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
