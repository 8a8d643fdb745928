"""HubSpot deal pipelines and stages through the official SDK (hubspot-api-client 12.0.0).

CRM v3 pipelines (https://developers.hubspot.com/docs/api/crm/pipelines), object type `deals`:

- a pipeline is only ever PATCHed (label, displayOrder). `PUT` replaces a pipeline whole: every
  stage is archived and the inputs become new stages with new ids (stranding deals), so it is
  never used; stages are created, PATCHed and archived one by one
  (`…/pipelines/deals/{pipelineId}/stages[/{stageId}]`);
- stage metadata is strings: `probability` "0.0"–"1.0" in steps of 0.1, `isClosed` "true" on
  outcome stages (won = "1.0", lost = "0.0"); reading, a closed stage is won when its
  probability is at least 0.5;
- rotting does not exist in HubSpot (`capabilities.rotting` False);
- deals are counted and moved with CRM search and batch update.

Exactly one retry layer: the SDK's urllib3 retries are off (`retry=False`, see
`_sdk_client`), every call goes through the shared `HttpPolicy`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import hubspot
import hubspot.crm.deals as deals_sdk
import hubspot.crm.pipelines as pipelines_sdk

from crmsync.adapters.base import (
    AdapterCapabilities,
    RemotePipeline,
    RemoteStage,
    StageSpec,
)
from crmsync.adapters.http_policy import HUBSPOT, HttpPolicy, Reply, request_timeouts
from crmsync.adapters.hubspot_records import HubSpotRecords
from crmsync.adapters.hubspot_writes import HubSpotWrites
from crmsync.errors import FatalRemoteError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from pydantic import SecretStr

    from crmsync.names import MonotonicClock, Sleep, StageOutcome

HUBSPOT_CAPABILITIES = AdapterCapabilities(
    pipeline_order_writable=True,
    stage_order_writable=True,
    outcome_stages=True,
    rotting=False,
    probability_step=0.1,
    max_stages_per_pipeline=100,
    unique_labels=True,
)

OBJECT_TYPE = "deals"
BATCH_SIZE = 100  # HubSpot batch endpoints take at most 100 inputs
SEARCH_PAGE = 100
# CRM search has its own limit of 4 requests per second per token and (unlike other
# endpoints) no rate-limit headers to pace by: space search calls 0.3 s apart — a quarter
# second plus a margin, as the limit counts arrivals and network jitter can bring five sends
# 0.25 s apart within one second of each other (the bench drew such a 429).
# https://developers.hubspot.com/docs/api/crm/search#limitations
SEARCH_BUCKET = "search"
SEARCH_MIN_INTERVAL = 0.3

# Each generated SDK package has its own ApiException class.
_API_EXCEPTIONS: tuple[type[Exception], ...] = (
    pipelines_sdk.ApiException,
    deals_sdk.ApiException,
)


def _sdk_client(base_url: str, token: str) -> hubspot.Client:
    """An SDK client pointed at `base_url`, with the SDK's own retries switched off.

    `Client.create(**config)` copies every non-None key onto each generated package's
    `Configuration` (`discovery_base._default_api_factory`): `host` becomes the base URL of
    every generated API and `retry` becomes `Configuration.retries`, handed to urllib3's
    `PoolManager(retries=...)`. Left unset (None), urllib3 applies its default `Retry(3)` to
    connection errors — a second, hidden retry layer. `False` disables retries and redirects,
    so a dropped connection surfaces at once as urllib3's own error for our policy to classify.
    """
    return hubspot.Client.create(access_token=token, host=base_url, base_url=base_url,
                                 retry=False)


class HubSpotAdapter(HubSpotRecords, HubSpotWrites):
    """A `CrmAdapter` for one HubSpot account (deal pipelines)."""

    crm = "hubspot"
    capabilities = HUBSPOT_CAPABILITIES

    def __init__(
        self,
        base_url: str,
        token: SecretStr | str,
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        sleep: Sleep = time.sleep,
        clock: MonotonicClock = time.monotonic,
        policy: HttpPolicy | None = None,
    ) -> None:
        secret = token if isinstance(token, str) else token.get_secret_value()
        self._base_url = base_url.rstrip("/")
        self._timeouts = request_timeouts(timeout)
        self.policy = policy or HttpPolicy(
            HUBSPOT, max_retries=max_retries, sleep=sleep, clock=clock, secrets=[secret],
            min_intervals={SEARCH_BUCKET: SEARCH_MIN_INTERVAL},
        )
        client = _sdk_client(self._base_url, secret)
        # Each property access builds a new ApiClient (and connection pool): build them once.
        self._pipelines = client.crm.pipelines.pipelines_api
        self._stages = client.crm.pipelines.pipeline_stages_api
        self._search = client.crm.deals.search_api
        self._batch = client.crm.deals.batch_api
        self._api_clients = [api.api_client for api in
                             (self._pipelines, self._stages, self._search, self._batch)]
        self._account_id: str | None = None

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self._base_url!r})"

    def account_id(self) -> str:
        """The portal id (`GET /account-info/v3/details` → `portalId`), asked once."""
        if self._account_id is None:
            # The SDK has no client for the account-info API; its generic call sends the
            # request with the same token, pool and timeouts as every other call.
            details = self._call(
                self._pipelines.api_client.call_api, "/account-info/v3/details", "GET",
                header_params={"Accept": "application/json"}, auth_settings=["oauth2"],
                response_types_map={200: "object"}, _return_http_data_only=False,
                what="read the account details")
            portal = details.get("portalId") if isinstance(details, dict) else None
            if portal is None:
                raise FatalRemoteError(self.crm, "account details carry no portalId")
            self._account_id = str(portal)
        return self._account_id

    # -- pipelines ----------------------------------------------------------------------------

    def list_pipelines(self) -> list[RemotePipeline]:
        """Live deal pipelines and live stages, sorted by (displayOrder, label)."""
        # GET /crm/v3/pipelines/{objectType} answers every pipeline at once (no paging).
        response = self._call(self._pipelines.get_all_with_http_info, OBJECT_TYPE,
                              what="list deal pipelines")
        pipelines = [_pipeline(p) for p in response.results or [] if not p.archived]
        return sorted(pipelines, key=lambda p: (p.order, p.label))

    def create_pipeline(
        self, label: str, order: int, stages: Sequence[StageSpec]
    ) -> RemotePipeline:
        """Create the pipeline with all its stages in one request (the input requires stages)."""
        body = pipelines_sdk.PipelineInput(
            label=label, display_order=order, stages=[_stage_input(s) for s in stages]
        )
        created = self._call(
            self._pipelines.create_with_http_info, OBJECT_TYPE, body,
            what=f"create pipeline {label!r}",
            find_existing=lambda: self._find_pipeline(label),
        )
        return _pipeline(created)

    def update_pipeline(self, pipeline_id: str, *, label: str, order: int) -> None:
        """PATCH label and displayOrder only (never PUT: it would replace every stage)."""
        self._call(
            self._pipelines.update_with_http_info, OBJECT_TYPE, pipeline_id,
            pipelines_sdk.PipelinePatchInput(label=label, display_order=order),
            what=f"update pipeline {pipeline_id} ({label!r})",
        )

    def archive_pipeline(self, pipeline_id: str) -> None:
        """Archive (DELETE) the pipeline; HubSpot refuses while deals still use it."""
        # Ask HubSpot to check references even before the 2026-09 API version, where these
        # flags default to false: a safety net behind the planner's own deal count.
        self._call(
            self._pipelines.archive_with_http_info, OBJECT_TYPE, pipeline_id,
            validate_references_before_delete=True,
            validate_deal_stage_usages_before_delete=True,
            what=f"archive pipeline {pipeline_id}",
        )

    # -- stages -------------------------------------------------------------------------------

    def create_stage(self, pipeline_id: str, stage: StageSpec) -> RemoteStage:
        """POST one stage into an existing pipeline."""
        created = self._call(
            self._stages.create_with_http_info, OBJECT_TYPE, pipeline_id, _stage_input(stage),
            what=f"create stage {stage.label!r} in pipeline {pipeline_id}",
            find_existing=lambda: self._find_stage(pipeline_id, stage.label),
        )
        return _stage(created)

    def update_stage(self, pipeline_id: str, stage_id: str, stage: StageSpec) -> RemoteStage:
        """PATCH label, displayOrder and metadata (probability, isClosed)."""
        patch = pipelines_sdk.PipelineStagePatchInput(
            label=stage.label, display_order=stage.order, metadata=_metadata(stage)
        )
        updated = self._call(
            self._stages.update_with_http_info, OBJECT_TYPE, pipeline_id, stage_id, patch,
            what=f"update stage {stage_id} ({stage.label!r}) in pipeline {pipeline_id}",
        )
        return _stage(updated)

    def archive_stage(self, pipeline_id: str, stage_id: str) -> None:
        """Archive (DELETE) one stage."""
        self._call(self._stages.archive_with_http_info, OBJECT_TYPE, pipeline_id, stage_id,
                   what=f"archive stage {stage_id} in pipeline {pipeline_id}")

    # -- deals --------------------------------------------------------------------------------

    def count_deals(self, pipeline_id: str, stage_id: str) -> int:
        """Deals in the stage, from CRM search's `total` (one request, limit 1)."""
        result = self._search_deals(pipeline_id, stage_id, limit=1)
        return int(result.total or 0)

    def move_deals(self, pipeline_id: str, from_stage_id: str, to_stage_id: str) -> int:
        """Move every deal of a stage with batch updates of `dealstage` (≤100 per request)."""
        if from_stage_id == to_stage_id:
            return 0
        moved = 0
        for ids in self._deal_id_pages(pipeline_id, from_stage_id):
            for start in range(0, len(ids), BATCH_SIZE):
                chunk = ids[start:start + BATCH_SIZE]
                self._batch_move(chunk, to_stage_id)
                moved += len(chunk)
        return moved

    def close(self) -> None:
        for api_client in self._api_clients:
            api_client.close()
            api_client.rest_client.pool_manager.clear()

    # -- helpers ------------------------------------------------------------------------------

    def _deal_id_pages(self, pipeline_id: str, stage_id: str) -> Iterator[list[str]]:
        """Ids of the stage's deals, a page at a time, in ascending id order.

        Keyset paging (`hs_object_id GT last`) rather than the `after` offset: moving a page
        shrinks the result set, which would make an offset skip deals; it also stays clear of
        search's 10,000-results cap (https://developers.hubspot.com/docs/api/crm/search).
        """
        last_id: str | None = None
        while True:
            result = self._search_deals(pipeline_id, stage_id, limit=SEARCH_PAGE,
                                        after_id=last_id)
            ids = [str(deal.id) for deal in result.results or []]
            if not ids:
                return
            yield ids
            last_id = max(ids, key=int)
            if len(ids) < SEARCH_PAGE:
                return

    def _search_deals(self, pipeline_id: str, stage_id: str, *, limit: int,
                      after_id: str | None = None) -> Any:
        filters = [
            deals_sdk.Filter(property_name="pipeline", operator="EQ", value=pipeline_id),
            deals_sdk.Filter(property_name="dealstage", operator="EQ", value=stage_id),
        ]
        if after_id is not None:
            filters.append(
                deals_sdk.Filter(property_name="hs_object_id", operator="GT", value=after_id)
            )
        request = deals_sdk.PublicObjectSearchRequest(
            filter_groups=[deals_sdk.FilterGroup(filters=filters)],
            # The SDK types sorts as strings; HubSpot takes (and documents) objects.
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["dealstage"],
            limit=limit,
        )
        return self._call(self._search.do_search_with_http_info, request,
                          what=f"search deals in stage {stage_id}", bucket=SEARCH_BUCKET)

    def _batch_move(self, deal_ids: list[str], to_stage_id: str) -> None:
        body = deals_sdk.BatchInputSimplePublicObjectBatchInput(inputs=[
            deals_sdk.SimplePublicObjectBatchInput(id=deal_id,
                                                   properties={"dealstage": to_stage_id})
            for deal_id in deal_ids
        ])
        result = self._call(self._batch.update_with_http_info, body,
                            what=f"move {len(deal_ids)} deals to stage {to_stage_id}")
        errors = getattr(result, "errors", None) or []
        if errors:
            # 207 Multi-Status: some deals were not moved, so the stage must not be removed.
            first = errors[0]
            status = int(getattr(first, "status", None) or 400)
            error = self.policy.classify_reply(
                status if status >= 400 else 400, {},
                {"message": f"{len(errors)} of {len(deal_ids)} deals not moved: "
                            f"{getattr(first, 'message', '')}"},
                what=f"move deals to stage {to_stage_id}",
            )
            if error is not None:
                raise error

    def _find_pipeline(self, label: str) -> Any:
        response = self._call(self._pipelines.get_all_with_http_info, OBJECT_TYPE,
                              what="list deal pipelines")
        return next((p for p in response.results or []
                     if p.label == label and not p.archived), None)

    def _find_stage(self, pipeline_id: str, label: str) -> Any:
        # Stage labels are unique within a pipeline, so a label names at most one stage.
        response = self._call(self._stages.get_all_with_http_info, OBJECT_TYPE, pipeline_id,
                              what=f"list stages of pipeline {pipeline_id}")
        return next((s for s in response.results or []
                     if s.label == label and not s.archived), None)

    def _call(self, method: Callable[..., Any], *args: Any, what: str,
              bucket: str = "default", find_existing: Callable[[], Any] | None = None,
              **kwargs: Any) -> Any:
        """Run one `*_with_http_info` SDK call through the policy; return its data."""

        def send() -> Reply[Any]:
            try:
                data, status, headers = method(*args, _request_timeout=self._timeouts, **kwargs)
            except _API_EXCEPTIONS as exc:
                # ApiException carries the HTTP status, headers and raw body of the error.
                status = getattr(exc, "status", None) or 0
                return Reply(status, getattr(exc, "headers", None) or {},
                             body=getattr(exc, "body", None))
            return Reply(status, headers or {}, value=data)

        return self.policy.call(send, what=what, bucket=bucket, find_existing=find_existing)


def _probability_text(stage: StageSpec) -> str:
    if stage.outcome == "won":
        return "1.0"
    if stage.outcome == "lost":
        return "0.0"
    # One decimal: HubSpot takes deal-stage probabilities in steps of 0.1 (the blueprint's
    # lint enforces the step; rounding here only drops float noise such as 0.30000000000000004).
    return f"{round(stage.probability, 1):.1f}"


def _metadata(stage: StageSpec) -> dict[str, str]:
    # isClosed is written explicitly either way, so an open stage that used to be closed opens.
    return {"probability": _probability_text(stage),
            "isClosed": "true" if stage.outcome else "false"}


def _stage_input(stage: StageSpec) -> pipelines_sdk.PipelineStageInput:
    return pipelines_sdk.PipelineStageInput(
        label=stage.label, display_order=stage.order, metadata=_metadata(stage)
    )


def _stage(raw: Any) -> RemoteStage:
    metadata = raw.metadata or {}
    try:
        probability: float | None = float(metadata["probability"])
    except (KeyError, TypeError, ValueError):
        probability = None
    outcome: StageOutcome | None = None
    if str(metadata.get("isClosed", "")).lower() == "true":
        outcome = "won" if (probability or 0.0) >= 0.5 else "lost"
    return RemoteStage(
        id=str(raw.id), label=raw.label, order=int(raw.display_order or 0),
        probability=probability, outcome=outcome, rot_after_days=None,
    )


def _pipeline(raw: Any) -> RemotePipeline:
    stages = sorted((_stage(s) for s in raw.stages or [] if not s.archived),
                    key=lambda s: (s.order, s.label))
    return RemotePipeline(id=str(raw.id), label=raw.label, order=int(raw.display_order or 0),
                          stages=tuple(stages))
