"""Pipedrive deal pipelines and stages through API v2, with `requests`.

Spec: `../shared/specs/pipedrive/openapi-v2.yaml` (`/pipelines`, `/stages`, `/deals`).
Mapping (DESIGN.md, "Mapping the blueprint to each CRM"):

- probability 0–1 ↔ `deal_probability` 0–100 (whole percent); it only counts in pipelines with
  `is_deal_probability_enabled`, which we switch on for every pipeline we create or give a
  probability to;
- rotting ↔ `is_deal_rot_enabled` + `days_to_rotten`;
- won / lost are deal statuses, not stages: outcome stages are never created here;
- `order_nr` of pipelines and stages is read-only in v2 (no order field in the POST or PATCH
  bodies of `/pipelines` or `/stages`): new ones go last, reordering is a drag in the UI.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import requests

from crmsync.adapters.base import AdapterCapabilities, RemotePipeline, RemoteStage, StageSpec
from crmsync.adapters.http_policy import (
    PIPEDRIVE,
    HttpPolicy,
    Reply,
    parse_body,
    request_timeouts,
)
from crmsync.adapters.pipedrive_records import PipedriveRecords
from crmsync.adapters.pipedrive_writes import PipedriveWrites
from crmsync.errors import FatalRemoteError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from pydantic import SecretStr

    from crmsync.names import MonotonicClock, Sleep

PIPEDRIVE_CAPABILITIES = AdapterCapabilities(
    pipeline_order_writable=False,
    stage_order_writable=False,
    outcome_stages=False,
    rotting=True,
    probability_step=0.01,
    max_stages_per_pipeline=None,
    order_note=(
        "Pipedrive's API v2 has no writable order for pipelines or stages (order_nr is "
        "read-only; new ones are added last). Reorder them by dragging in Pipedrive: "
        "Deals > Pipeline > Edit pipeline."
    ),
)

PAGE_SIZE = 500  # the v2 maximum for list endpoints (`limit`, "a maximum value of 500")


# Archived deals are listed apart from the others (GET /api/v2/deals/archived) but keep their
# stage: both listings are read wherever "the deals of a stage" matter.
DEAL_LISTINGS = ("/deals", "/deals/archived")


class TokenSession(requests.Session):
    """A session that never carries `x-api-token` to another host on a redirect.

    `requests` strips only `Authorization` when a redirect leaves the origin
    (`Session.rebuild_auth`); Pipedrive's token header would go along. `_request` does not
    follow redirects at all; this guards any other request made on the session.
    """

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(str(response.request.url), str(prepared_request.url)):
            prepared_request.headers.pop("x-api-token", None)


class PipedriveAdapter(PipedriveRecords, PipedriveWrites):
    """A `CrmAdapter` for one Pipedrive company account."""

    crm = "pipedrive"
    capabilities = PIPEDRIVE_CAPABILITIES

    def __init__(
        self,
        base_url: str,
        token: SecretStr | str,
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        sleep: Sleep = time.sleep,
        clock: MonotonicClock = time.monotonic,
        session: requests.Session | None = None,
        page_size: int = PAGE_SIZE,
        policy: HttpPolicy | None = None,
    ) -> None:
        secret = token if isinstance(token, str) else token.get_secret_value()
        self._api = f"{base_url.rstrip('/')}/api/v2"
        self._timeouts = request_timeouts(timeout)
        self._page_size = page_size
        self._session = session or TokenSession()
        self._session.headers["x-api-token"] = secret
        self._session.headers["Accept"] = "application/json"
        self._clock = clock
        self.policy = policy or HttpPolicy(
            PIPEDRIVE, max_retries=max_retries, sleep=sleep, clock=clock, secrets=[secret]
        )
        # pipeline id -> is_deal_probability_enabled, as last seen (see _ensure_probability).
        self._probability_enabled: dict[str, bool] = {}
        self._account_id: str | None = None

    def __repr__(self) -> str:
        return f"PipedriveAdapter({self._api!r})"

    def account_id(self) -> str:
        """The company id (`GET /v1/users/me` → `data.company_id`), asked once."""
        if self._account_id is None:
            # API v2 has no "current user"; v1's /users/me is still current (openapi-v1.yaml).
            me = self._request("GET", "/users/me", what="read the current user",
                               api=self._api.removesuffix("/v2") + "/v1")
            company = (me.get("data") or {}).get("company_id")
            if company is None:
                raise FatalRemoteError(self.crm, "the current user carries no company_id")
            self._account_id = str(company)
        return self._account_id

    # -- pipelines ----------------------------------------------------------------------------

    def list_pipelines(self) -> list[RemotePipeline]:
        """Live pipelines with their live stages, ordered by `order_nr` (ties: id)."""
        stages_by_pipeline: dict[str, list[dict[str, Any]]] = {}
        # One paged listing of every stage beats one request per pipeline ("If omitted, stages
        # for all pipelines will be fetched", GET /stages `pipeline_id`).
        for stage in self._paged("/stages", what="list stages"):
            if not stage.get("is_deleted"):
                stages_by_pipeline.setdefault(str(stage["pipeline_id"]), []).append(stage)
        pipelines = []
        for raw in self._paged("/pipelines", what="list pipelines"):
            if raw.get("is_deleted"):
                continue
            pipeline_id = str(raw["id"])
            enabled = bool(raw.get("is_deal_probability_enabled"))
            self._probability_enabled[pipeline_id] = enabled
            stages = sorted(stages_by_pipeline.get(pipeline_id, []),
                            key=lambda s: (s.get("order_nr") or 0, s["id"]))
            pipelines.append(
                (raw.get("order_nr") or 0, raw["id"], RemotePipeline(
                    id=pipeline_id,
                    label=raw["name"],
                    order=raw.get("order_nr") or 0,
                    stages=tuple(_stage(s, probability_enabled=enabled) for s in stages),
                ))
            )
        return [p for _, _, p in sorted(pipelines, key=lambda item: (item[0], item[1]))]

    def create_pipeline(
        self, label: str, order: int, stages: Sequence[StageSpec]
    ) -> RemotePipeline:
        """Create the pipeline, then its non-outcome stages in blueprint order.

        `order` cannot be written (see `order_note`): the pipeline goes last.
        """
        body = {"name": label, "is_deal_probability_enabled": True}
        raw = self._send(
            "POST", "/pipelines", json=body, what=f"create pipeline {label!r}",
            find_existing=lambda: self._find_pipeline(label),
        )
        pipeline_id = str(raw["id"])
        self._probability_enabled[pipeline_id] = True
        created = []
        for spec in sorted(stages, key=lambda s: s.order):
            stage = self.create_stage(pipeline_id, spec)
            if stage is not None:
                created.append(stage)
        return RemotePipeline(
            id=pipeline_id, label=raw["name"], order=raw.get("order_nr") or 0,
            stages=tuple(created),
        )

    def update_pipeline(self, pipeline_id: str, *, label: str, order: int) -> None:
        """Rename the pipeline; `order` is ignored (read-only in v2, see `order_note`)."""
        self._send("PATCH", f"/pipelines/{pipeline_id}", json={"name": label},
                   what=f"rename pipeline {pipeline_id} to {label!r}")

    def archive_pipeline(self, pipeline_id: str) -> None:
        """Delete the pipeline (Pipedrive marks it deleted)."""
        self._send("DELETE", f"/pipelines/{pipeline_id}",
                   what=f"delete pipeline {pipeline_id}")
        self._probability_enabled.pop(pipeline_id, None)

    # -- stages -------------------------------------------------------------------------------

    def create_stage(self, pipeline_id: str, stage: StageSpec) -> RemoteStage | None:
        """Add a stage at the end of the pipeline; None for an outcome (won/lost) stage."""
        if stage.outcome is not None:
            # Won and lost are deal statuses in Pipedrive, not stages (DESIGN.md "Mapping").
            return None
        self._ensure_probability(pipeline_id)
        body: dict[str, Any] = {"name": stage.label, "pipeline_id": int(pipeline_id),
                                **_stage_fields(stage)}
        raw = self._send(
            "POST", "/stages", json=body,
            what=f"create stage {stage.label!r} in pipeline {pipeline_id}",
            find_existing=lambda: self._find_stage(pipeline_id, stage.label),
        )
        return _stage(raw, probability_enabled=True)

    def update_stage(self, pipeline_id: str, stage_id: str, stage: StageSpec) -> RemoteStage:
        """Write label, probability and rotting (PATCH, idempotent); order is read-only."""
        self._ensure_probability(pipeline_id)
        body = {"name": stage.label, **_stage_fields(stage)}
        raw = self._send("PATCH", f"/stages/{stage_id}", json=body,
                         what=f"update stage {stage_id} ({stage.label!r})")
        return _stage(raw, probability_enabled=True)

    def archive_stage(self, pipeline_id: str, stage_id: str) -> None:
        """Delete the stage (Pipedrive marks it deleted)."""
        self._send("DELETE", f"/stages/{stage_id}", what=f"delete stage {stage_id}")

    # -- deals --------------------------------------------------------------------------------

    def count_deals(self, pipeline_id: str, stage_id: str) -> int:
        """Deals in the stage that are not deleted: open, won, lost and archived alike.

        Won, lost and archived deals all keep their `stage_id` in Pipedrive, so a stage holding
        only those still holds deals; counting them all keeps "never remove a stage with deals"
        true.
        """
        return sum(1 for _ in self.iter_deals(stage_id))

    def move_deals(self, pipeline_id: str, from_stage_id: str, to_stage_id: str) -> int:
        """PATCH every deal of one stage to another (one request per deal); returns the count."""
        if from_stage_id == to_stage_id:
            return 0
        moved: set[int] = set()
        for listing in DEAL_LISTINGS:
            while True:
                # Always re-read the first page: each moved deal leaves the filter, so this
                # converges without relying on how a cursor behaves on a shrinking result.
                page = self._get(listing, params={"stage_id": from_stage_id,
                                                  "limit": self._page_size},
                                 what=f"list deals in stage {from_stage_id}")
                deals = page.get("data") or []
                if not deals:
                    break
                for deal in deals:
                    if deal["id"] in moved:
                        raise FatalRemoteError(
                            self.crm, f"deal {deal['id']} is still in stage {from_stage_id} "
                            "after it was moved; nothing more was moved")
                    self._send("PATCH", f"/deals/{deal['id']}",
                               json={"stage_id": int(to_stage_id)},
                               what=f"move deal {deal['id']} to stage {to_stage_id}")
                    moved.add(deal["id"])
        return len(moved)

    def iter_deals(self, stage_id: str) -> Iterator[dict[str, Any]]:
        """Every not-deleted deal in the stage, archived ones included, page by page."""
        for listing in DEAL_LISTINGS:
            yield from self._paged(listing, params={"stage_id": stage_id},
                                   what=f"list deals in stage {stage_id}")

    def close(self) -> None:
        self._session.close()

    # -- helpers ------------------------------------------------------------------------------

    def _ensure_probability(self, pipeline_id: str) -> None:
        # A stage's deal_probability only counts where the pipeline has probabilities switched
        # on (Pipeline.is_deal_probability_enabled); listing reports None for such stages, so
        # writing a probability must switch it on or the diff would never come clean. A
        # pipeline this adapter has not listed yet is looked up once (GET costs 1 token).
        if pipeline_id not in self._probability_enabled:
            raw = self._get(f"/pipelines/{pipeline_id}", params={},
                            what=f"read pipeline {pipeline_id}").get("data") or {}
            self._probability_enabled[pipeline_id] = bool(raw.get("is_deal_probability_enabled"))
        if not self._probability_enabled[pipeline_id]:
            self._send("PATCH", f"/pipelines/{pipeline_id}",
                       json={"is_deal_probability_enabled": True},
                       what=f"enable deal probability in pipeline {pipeline_id}")
            self._probability_enabled[pipeline_id] = True

    def _find_pipeline(self, label: str) -> dict[str, Any] | None:
        for raw in self._paged("/pipelines", what="list pipelines"):
            if raw.get("name") == label and not raw.get("is_deleted"):
                return raw
        return None

    def _find_stage(self, pipeline_id: str, label: str) -> dict[str, Any] | None:
        for raw in self._paged("/stages", params={"pipeline_id": pipeline_id},
                               what=f"list stages of pipeline {pipeline_id}"):
            if raw.get("name") == label and not raw.get("is_deleted"):
                return raw
        return None

    def _paged(self, path: str, *, what: str,
               params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield the items of a cursor-paged v2 list (`additional_data.next_cursor`)."""
        query = dict(params or {}, limit=self._page_size)
        while True:
            page = self._get(path, params=query, what=what)
            yield from page.get("data") or []
            # The spec types next_cursor as a string; the API sends null on the last page.
            cursor = (page.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor

    def _get(self, path: str, *, params: dict[str, Any], what: str) -> dict[str, Any]:
        return self._request("GET", path, params=params, what=what)

    def _send(self, method: str, path: str, *, what: str, json: Any = None,
              find_existing: Any = None) -> dict[str, Any]:
        """A write; returns the envelope's `data` object."""
        envelope = self._request(method, path, json=json, what=what,
                                 find_existing=_as_envelope(find_existing))
        return envelope.get("data") or {}

    def _request(self, method: str, path: str, *, what: str, params: Any = None,
                 json: Any = None, find_existing: Any = None,
                 api: str | None = None) -> dict[str, Any]:
        url = (api or self._api) + path

        def send() -> Reply[dict[str, Any]]:
            # Never follow a redirect: requests would resend x-api-token to wherever it
            # points (it strips only Authorization); the policy reports the 3xx instead.
            response = self._session.request(method, url, params=params, json=json,
                                             timeout=self._timeouts, allow_redirects=False)
            body = parse_body(response.content) if response.content else {}
            return Reply(response.status_code, response.headers, body=body,
                         value=body if isinstance(body, dict) else {})

        return self.policy.call(send, what=what, find_existing=find_existing)


def _as_envelope(find: Any) -> Any:
    """Wrap a finder returning a `data` object so the policy can hand back an envelope."""
    if find is None:
        return None

    def find_envelope() -> dict[str, Any] | None:
        found = find()
        return None if found is None else {"success": True, "data": found}

    return find_envelope


def _stage_fields(stage: StageSpec) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "deal_probability": round(stage.probability * 100),
        "is_deal_rot_enabled": stage.rot_after_days is not None,
    }
    if stage.rot_after_days is not None:
        fields["days_to_rotten"] = stage.rot_after_days
    return fields


def _stage(raw: dict[str, Any], *, probability_enabled: bool) -> RemoteStage:
    probability = raw.get("deal_probability")
    rotting = bool(raw.get("is_deal_rot_enabled")) and raw.get("days_to_rotten") is not None
    return RemoteStage(
        id=str(raw["id"]),
        label=raw["name"],
        order=raw.get("order_nr") or 0,
        probability=(probability / 100) if probability_enabled and probability is not None
        else None,
        outcome=None,
        rot_after_days=raw.get("days_to_rotten") if rotting else None,
    )
