"""A small stateful Pipedrive API v2 for `responses`: pipelines, stages, deals, faults.

Just enough of the real shapes (envelope, cursor paging, soft deletes, error bodies) to test
the adapter and the shared HTTP policy without a network. Failures are queued with
`fail_next(...)` and served, in order, before the stateful handler runs — so a test reads
as "429, then 200".
"""

from __future__ import annotations

import functools
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

    import responses
    from requests import PreparedRequest

BASE_URL = "https://acme.pipedrive.com"
TOKEN = "pd-secret-token-0123456789"

Reply = tuple[int, dict[str, str], str]


@dataclass
class Fault:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    exception: BaseException | None = None
    after_handler: bool = False  # run the real handler first (the request "landed"), then fail


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


class FakePipedrive:
    """Register on a `responses.RequestsMock`; inspect `calls`, `pipelines`, `stages`, `deals`."""

    def __init__(self, *, page_size_cap: int = 500) -> None:
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.stages: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.faults: deque[Fault] = deque()
        self.headers: dict[str, str] = {}  # added to every successful reply
        self.page_size_cap = page_size_cap
        self._next_id = 1

    # -- test controls ------------------------------------------------------------------------

    def fail_next(self, status: int = 0, *, headers: dict[str, str] | None = None,
                  body: Any = None, exception: BaseException | None = None,
                  after_handler: bool = False) -> None:
        self.faults.append(Fault(status, headers or {}, body, exception, after_handler))

    def add_pipeline(self, name: str, **fields: Any) -> dict[str, Any]:
        pipeline = {"id": self._id(), "name": name, "order_nr": len(self.pipelines) + 1,
                    "is_deleted": False, "is_deal_probability_enabled": True,
                    "add_time": "2026-01-01T00:00:00Z", "update_time": "2026-01-01T00:00:00Z",
                    **fields}
        self.pipelines[pipeline["id"]] = pipeline
        return pipeline

    def add_stage(self, pipeline_id: int, name: str, **fields: Any) -> dict[str, Any]:
        order = 1 + sum(1 for s in self.stages.values() if s["pipeline_id"] == pipeline_id)
        stage = {"id": self._id(), "name": name, "pipeline_id": pipeline_id, "order_nr": order,
                 "is_deleted": False, "deal_probability": 100, "is_deal_rot_enabled": False,
                 "days_to_rotten": None, "add_time": "2026-01-01T00:00:00Z",
                 "update_time": "2026-01-01T00:00:00Z", **fields}
        self.stages[stage["id"]] = stage
        return stage

    def add_deal(self, stage_id: int, status: str = "open", *, archived: bool = False
                 ) -> dict[str, Any]:
        deal = {"id": self._id(), "title": f"Deal {self._next_id}", "stage_id": stage_id,
                "pipeline_id": self.stages[stage_id]["pipeline_id"], "status": status,
                "is_deleted": False, "is_archived": archived}
        self.deals[deal["id"]] = deal
        return deal

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.fullmatch(path_pattern, c.path)]

    # -- wiring -------------------------------------------------------------------------------

    def register(self, rsps: responses.RequestsMock) -> None:
        routes: list[tuple[str, str, Callable[..., Reply]]] = [
            ("GET", r"/api/v2/pipelines", self._list_pipelines),
            ("POST", r"/api/v2/pipelines", self._create_pipeline),
            ("GET", r"/api/v2/pipelines/(\d+)", self._get_pipeline),
            ("PATCH", r"/api/v2/pipelines/(\d+)", self._patch_pipeline),
            ("DELETE", r"/api/v2/pipelines/(\d+)", self._delete_pipeline),
            ("GET", r"/api/v2/stages", self._list_stages),
            ("POST", r"/api/v2/stages", self._create_stage),
            ("PATCH", r"/api/v2/stages/(\d+)", self._patch_stage),
            ("DELETE", r"/api/v2/stages/(\d+)", self._delete_stage),
            ("GET", r"/api/v2/deals", functools.partial(self._list_deals, archived=False)),
            ("GET", r"/api/v2/deals/archived", functools.partial(self._list_deals, archived=True)),
            ("PATCH", r"/api/v2/deals/(\d+)", self._patch_deal),
        ]
        for method, pattern, handler in routes:
            rsps.add_callback(
                method, re.compile(re.escape(BASE_URL) + pattern + r"(\?.*)?$"),
                callback=self._dispatch(pattern, handler),
            )

    def _dispatch(self, pattern: str, handler: Callable[..., Reply]) -> Callable[..., Any]:
        def callback(request: PreparedRequest) -> Reply:
            url = urlsplit(request.url or "")
            raw = request.body
            body = json.loads(raw) if raw else None
            call = Call(request.method or "", url.path, parse_qs(url.query), body,
                        {k.lower(): v for k, v in request.headers.items()})
            self.calls.append(call)
            if call.headers.get("x-api-token") != TOKEN:
                return self._error(401, "unauthorized access")
            match = re.fullmatch(pattern, url.path)
            args = match.groups() if match else ()
            fault = self.faults.popleft() if self.faults else None
            if fault is not None and not fault.after_handler:
                return self._fault(fault)
            status, headers, text = handler(call, *args)
            if fault is not None:  # the request changed state, but the answer is lost
                return self._fault(fault)
            return status, {**self.headers, **headers}, text

        return callback

    def _fault(self, fault: Fault) -> Reply:
        if fault.exception is not None:
            raise fault.exception
        body = fault.body if fault.body is not None else {
            "success": False, "error": f"fault {fault.status}", "error_info": None,
            "data": None, "additional_data": None}
        return fault.status, fault.headers, json.dumps(body)

    # -- handlers -----------------------------------------------------------------------------

    def _list_pipelines(self, call: Call) -> Reply:
        return self._page(call, sorted(self.pipelines.values(), key=lambda p: p["id"]))

    def _create_pipeline(self, call: Call) -> Reply:
        if not call.body or not call.body.get("name"):
            return self._error(400, "Parameter 'name' is required")
        pipeline = self.add_pipeline(call.body["name"], is_deal_probability_enabled=bool(
            call.body.get("is_deal_probability_enabled")))
        return self._ok(pipeline)

    def _get_pipeline(self, call: Call, pipeline_id: str) -> Reply:
        pipeline = self.pipelines.get(int(pipeline_id))
        if pipeline is None:
            return self._error(404, "Pipeline not found")
        return self._ok(pipeline)

    def _patch_pipeline(self, call: Call, pipeline_id: str) -> Reply:
        pipeline = self.pipelines.get(int(pipeline_id))
        if pipeline is None or pipeline["is_deleted"]:
            return self._error(404, "Pipeline not found")
        pipeline.update({k: v for k, v in (call.body or {}).items()
                         if k in ("name", "is_deal_probability_enabled")})
        return self._ok(pipeline)

    def _delete_pipeline(self, call: Call, pipeline_id: str) -> Reply:
        pipeline = self.pipelines.get(int(pipeline_id))
        if pipeline is None or pipeline["is_deleted"]:
            return self._error(404, "Pipeline not found")
        pipeline["is_deleted"] = True
        return self._ok({"id": pipeline["id"]})

    def _list_stages(self, call: Call) -> Reply:
        wanted = call.query.get("pipeline_id")
        stages = [s for s in sorted(self.stages.values(), key=lambda s: s["id"])
                  if not wanted or str(s["pipeline_id"]) == wanted[0]]
        return self._page(call, stages)

    def _create_stage(self, call: Call) -> Reply:
        body = call.body or {}
        if not body.get("name"):
            return self._error(400, "Parameter 'name' is required",
                               info="Please check developers.pipedrive.com")
        if body.get("pipeline_id") not in self.pipelines:
            return self._error(400, "Pipeline not found")
        fields = {k: body[k] for k in ("deal_probability", "is_deal_rot_enabled",
                                       "days_to_rotten") if k in body}
        return self._ok(self.add_stage(body["pipeline_id"], body["name"], **fields))

    def _patch_stage(self, call: Call, stage_id: str) -> Reply:
        stage = self.stages.get(int(stage_id))
        if stage is None or stage["is_deleted"]:
            return self._error(404, "Stage not found")
        stage.update({k: v for k, v in (call.body or {}).items()
                      if k in ("name", "deal_probability", "is_deal_rot_enabled",
                               "days_to_rotten", "pipeline_id")})
        return self._ok(stage)

    def _delete_stage(self, call: Call, stage_id: str) -> Reply:
        stage = self.stages.get(int(stage_id))
        if stage is None or stage["is_deleted"]:
            return self._error(404, "Stage not found")
        stage["is_deleted"] = True
        return self._ok({"id": stage["id"]})

    def _list_deals(self, call: Call, *, archived: bool) -> Reply:
        stage = call.query.get("stage_id")
        statuses = call.query.get("status", [""])[0].split(",")
        deals = [d for d in sorted(self.deals.values(), key=lambda d: d["id"])
                 if not d["is_deleted"] and d.get("is_archived", False) == archived
                 and (not stage or str(d["stage_id"]) == stage[0])
                 and (statuses == [""] or d["status"] in statuses)]
        return self._page(call, deals)

    def _patch_deal(self, call: Call, deal_id: str) -> Reply:
        deal = self.deals.get(int(deal_id))
        if deal is None:
            return self._error(404, "Deal not found")
        if "stage_id" in (call.body or {}):
            deal["stage_id"] = call.body["stage_id"]
        return self._ok(deal)

    # -- helpers ------------------------------------------------------------------------------

    def _page(self, call: Call, items: list[dict[str, Any]]) -> Reply:
        limit = min(int(call.query.get("limit", ["100"])[0]), self.page_size_cap)
        start = int(call.query.get("cursor", ["0"])[0])
        page = items[start:start + limit]
        more = start + limit < len(items)
        return 200, {}, json.dumps({"success": True, "data": page, "additional_data": {
            "next_cursor": str(start + limit) if more else None}})

    def _ok(self, data: Any) -> Reply:
        return 200, {}, json.dumps({"success": True, "data": data, "additional_data": None})

    def _error(self, status: int, message: str, info: str | None = None) -> Reply:
        return status, {}, json.dumps({"success": False, "error": message, "error_info": info,
                                       "data": None, "additional_data": None})

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1
