"""CRM Pipelines v3 for deals: pipelines, stages, their audits."""

from __future__ import annotations

import json
from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_core import HubSpotCore
from crmsync.sandbox.hubspot_model import (
    MAX_STAGES,
    PORTAL_ID,
    HubSpotError,
    iso,
    truthy,
)


class PipelinesApi(HubSpotCore):
    """`/crm/v3/pipelines/deals/…`."""

    @staticmethod
    def _object_type_for_pipelines(request: Request) -> None:
        object_type = request.path_params["objectType"]
        if object_type not in ("deals", "deal", "0-3"):
            # Tickets and custom objects have pipelines too; the sandbox emulates deals only.
            raise HubSpotError(400, f"Unable to infer object type from: {object_type}")

    def _pipeline(self, request: Request, *, include_archived: bool = False) -> dict[str, Any]:
        self._object_type_for_pipelines(request)
        pipeline = self.pipelines.get(request.path_params["pipelineId"])
        # "that ID must correspond to an existing, un-archived pipeline. Otherwise … 404"
        if pipeline is None or (pipeline["archived"] and not include_archived):
            raise HubSpotError(404, f"Unable to find pipeline {request.path_params['pipelineId']}",
                               category="OBJECT_NOT_FOUND")
        return pipeline

    @staticmethod
    def _stage_of(pipeline: dict[str, Any], stage_id: str) -> dict[str, Any]:
        for stage in pipeline["stages"]:
            if stage["id"] == stage_id and not stage["archived"]:
                return stage
        raise HubSpotError(404, f"Unable to find stage {stage_id} in pipeline {pipeline['id']}",
                           category="OBJECT_NOT_FOUND")

    def _render_stage(self, stage: dict[str, Any]) -> dict[str, Any]:
        out = {**stage, "createdAt": iso(stage["createdAt"]), "updatedAt": iso(stage["updatedAt"])}
        if stage.get("archivedAt"):
            out["archivedAt"] = iso(stage["archivedAt"])
        else:
            out.pop("archivedAt", None)
        return out

    def _render_pipeline(self, pipeline: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": pipeline["id"], "label": pipeline["label"],
            "displayOrder": pipeline["displayOrder"],
            "stages": [self._render_stage(s)
                       for s in self._ordered(self._active_stages(pipeline))],
            "archived": pipeline["archived"],
            "createdAt": iso(pipeline["createdAt"]), "updatedAt": iso(pipeline["updatedAt"]),
        }
        if pipeline.get("archivedAt"):
            out["archivedAt"] = iso(pipeline["archivedAt"])
        return out

    @staticmethod
    def _check_metadata(metadata: Any, where: str) -> dict[str, str]:
        if not isinstance(metadata, dict):
            raise HubSpotError(400, f"{where}: metadata is required and must be an object")
        out = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        probability = out.get("probability")
        if probability is None:
            # deal stages must carry a probability (pipelines guide, "deal stages")
            raise HubSpotError(400, f"{where}: deal stages require metadata.probability")
        try:
            value = float(probability)
        except ValueError:
            value = -1.0
        # Spec (PipelineStageInput.metadata): "Possible values are between 0.0 and 1.0 in
        # increments of 0.1." The refusal's wording is the sandbox's own.
        if not 0.0 <= value <= 1.0 or abs(value * 10 - round(value * 10)) > 1e-9:
            raise HubSpotError(
                400, f"{where}: metadata.probability must be a number between 0.0 and 1.0 "
                f"in increments of 0.1, got {probability!r}")
        value = round(value, 1)
        out["probability"] = str(value)  # stored as HubSpot echoes it: "0.2", "1.0"
        if "isClosed" in out:
            out["isClosed"] = "true" if truthy(out["isClosed"]) else "false"
        return out

    @staticmethod
    def _check_order(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HubSpotError(400, f"{where}: displayOrder is required and must be an integer")
        return value

    @staticmethod
    def _check_label(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise HubSpotError(400, f"{where}: label is required")
        return value

    def _check_stage_inputs(self, stages: Any) -> list[tuple[str, int, dict[str, str]]]:
        if not isinstance(stages, list) or not stages:
            raise HubSpotError(400, "stages is required: a pipeline needs at least one stage")
        if len(stages) > MAX_STAGES:
            raise HubSpotError(400, f"A deal pipeline can have at most {MAX_STAGES} stages")
        out: list[tuple[str, int, dict[str, str]]] = []
        for i, stage in enumerate(stages):
            where = f"stages[{i}]"
            if not isinstance(stage, dict):
                raise HubSpotError(400, f"{where} must be an object")
            out.append((self._check_label(stage.get("label"), where),
                        self._check_order(stage.get("displayOrder"), where),
                        self._check_metadata(stage.get("metadata"), where)))
        self._check_unique_labels([label for label, _, _ in out])
        return out

    @staticmethod
    def _check_unique_labels(labels: list[str]) -> None:
        seen: set[str] = set()
        for label in labels:
            key = label.strip().lower()
            if key in seen:
                # unconfirmed: HubSpot refuses duplicate stage labels; 400 VALIDATION_ERROR
                raise HubSpotError(400, f"Stage labels must be unique within a pipeline; "
                                   f"duplicate label {label!r}")
            seen.add(key)

    def _check_pipeline_label(self, label: str, except_id: str | None = None) -> None:
        for pipeline in self.pipelines.values():
            if (not pipeline["archived"] and pipeline["id"] != except_id
                    and pipeline["label"].strip().lower() == label.strip().lower()):
                # unconfirmed status: HubSpot refuses a second pipeline with the same label
                raise HubSpotError(409, f"A pipeline with label {label!r} already exists",
                                   category="CONFLICT")

    def _audit(self, identifier: str, action: str, raw: dict[str, Any], now: int) -> None:
        self.audit.setdefault(identifier, []).append({
            "identifier": identifier, "portalId": PORTAL_ID, "action": action,
            "timestamp": iso(now), "rawObject": raw, "fromUserId": 0,
        })

    def list_pipelines(self, request: Request) -> Response:
        self._object_type_for_pipelines(request)
        active = [p for p in self.pipelines.values() if not p["archived"]]
        return Response(200, {"results": [self._render_pipeline(p)
                                          for p in self._ordered(active)]})

    def get_pipeline(self, request: Request) -> Response:
        return Response(200, self._render_pipeline(self._pipeline(request)))

    def create_pipeline(self, request: Request) -> Response:
        self._object_type_for_pipelines(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "pipeline")
        order = self._check_order(body.get("displayOrder"), "pipeline")
        stage_inputs = self._check_stage_inputs(body.get("stages"))
        self._check_pipeline_label(label)
        now = self.now_ms()
        pipeline_id = str(self._next_pipeline_id)
        self._next_pipeline_id += 1
        pipeline = {
            "id": pipeline_id, "label": label, "displayOrder": order,
            "stages": [self._new_stage(lbl, o, md, now) for lbl, o, md in stage_inputs],
            "archived": False, "createdAt": now, "updatedAt": now,
        }
        self.pipelines[pipeline_id] = pipeline
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline_id, "CREATE", rendered, now)
        self._touch()
        return Response(201, rendered)

    def patch_pipeline(self, request: Request) -> Response:
        body = self._body(request)
        # PipelinePatchInput.archived: "This property should only be provided when restoring
        # an archived pipeline. If it's provided in any other call, the request will fail and
        # a `400 Bad Request` will be returned." So only {"archived": false} on an archived
        # pipeline is accepted; archiving goes through DELETE.
        restoring = body.get("archived") is False
        pipeline = self._pipeline(request, include_archived=restoring)
        if "archived" in body and not (restoring and pipeline["archived"]):
            raise HubSpotError(400, "archived may only be provided (as false) to restore an "
                               "archived pipeline; delete a pipeline to archive it",
                               errors=[{"message": "archived is only valid when restoring",
                                        "in": "archived"}])
        if "label" in body:
            label = self._check_label(body["label"], "pipeline")
            self._check_pipeline_label(label, except_id=pipeline["id"])
            pipeline["label"] = label
        if "displayOrder" in body:
            pipeline["displayOrder"] = self._check_order(body["displayOrder"], "pipeline")
        now = self.now_ms()
        if "archived" in body:
            pipeline["archived"] = bool(body["archived"])
            pipeline["archivedAt"] = now if pipeline["archived"] else None
        pipeline["updatedAt"] = now
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline["id"], "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def replace_pipeline(self, request: Request) -> Response:
        """PUT replaces the pipeline whole: stages left out are deleted (pipelines guide)."""
        pipeline = self._pipeline(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "pipeline")
        order = self._check_order(body.get("displayOrder"), "pipeline")
        stage_inputs = self._check_stage_inputs(body.get("stages"))
        self._check_pipeline_label(label, except_id=pipeline["id"])
        # Spec (PUT): "Replace all the properties of an existing pipeline with the values
        # provided. This will overwrite any existing pipeline stages." PipelineStageInput has
        # no id, so every existing stage is dropped (archived) and the inputs become new
        # stages with new ids — deals left in the old stages are refused by the validate
        # flags, or stranded without them.
        existing = self._active_stages(pipeline)
        self._refuse_if_used(request, pipeline["id"], [s["id"] for s in existing])
        now = self.now_ms()
        for old in existing:
            old.update(archived=True, archivedAt=now, updatedAt=now)
        new_stages = [self._new_stage(lbl, o, md, now) for lbl, o, md in stage_inputs]
        pipeline.update(label=label, displayOrder=order, updatedAt=now,
                        stages=[*pipeline["stages"], *new_stages])
        rendered = self._render_pipeline(pipeline)
        self._audit(pipeline["id"], "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def _deals_in(self, pipeline_id: str, stage_ids: list[str] | None = None) -> list[int]:
        wanted = set(stage_ids) if stage_ids is not None else None
        return [
            r.id for r in self.objects["deals"].records.values()
            if not r.archived and r.props.get("pipeline") == pipeline_id
            and (wanted is None or r.props.get("dealstage") in wanted)
        ]

    def _refuse_if_used(self, request: Request, pipeline_id: str,
                        stage_ids: list[str] | None) -> None:
        """The validate…BeforeDelete flags refuse deleting what deals still use.

        Default false (API versions before 2026-09, per the spec's parameter description);
        the refusal's status is unconfirmed — 400 VALIDATION_ERROR, HubSpot's body shape.
        """
        if stage_ids == []:
            return
        if not (truthy(request.arg("validateReferencesBeforeDelete"))
                or truthy(request.arg("validateDealStageUsagesBeforeDelete"))):
            return
        used = self._deals_in(pipeline_id, stage_ids)
        if used:
            what = (f"stage(s) {', '.join(stage_ids)}" if stage_ids is not None
                    else f"pipeline {pipeline_id}")
            raise HubSpotError(
                400, f"Cannot delete {what}: {len(used)} deal(s) still use it. Move them first.",
                subCategory="PipelineError.STAGE_HAS_OBJECTS" if stage_ids is not None
                else "PipelineError.PIPELINE_HAS_OBJECTS",
                context={"dealIds": [str(i) for i in used[:100]]},
            )

    def delete_pipeline(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        if sum(1 for p in self.pipelines.values() if not p["archived"]) == 1:
            # "Each pipeline always has at least one stage, and each account has at least one
            # pipeline." (pipelines overview). Status and wording unconfirmed.
            raise HubSpotError(400, "An account must keep at least one pipeline; "
                               f"pipeline {pipeline['id']} is the last one")
        self._refuse_if_used(request, pipeline["id"], None)
        now = self.now_ms()
        # Deleting archives: later reads answer 404 (spec: "must correspond to an existing,
        # un-archived pipeline"), and PATCH {"archived": false} brings it back.
        pipeline.update(archived=True, archivedAt=now, updatedAt=now)
        self._audit(pipeline["id"], "DELETE", {"id": pipeline["id"]}, now)
        self._touch()
        return Response(204)

    def pipeline_audit(self, request: Request) -> Response:
        pipeline = self._pipeline(request, include_archived=True)
        return Response(200, {"results": list(reversed(self.audit.get(pipeline["id"], [])))})

    def list_stages(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        return Response(200, {"results": [
            self._render_stage(s) for s in self._ordered(self._active_stages(pipeline))]})

    def get_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        return Response(200, self._render_stage(
            self._stage_of(pipeline, request.path_params["stageId"])))

    def create_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        body = self._body(request)
        label = self._check_label(body.get("label"), "stage")
        order = self._check_order(body.get("displayOrder"), "stage")
        metadata = self._check_metadata(body.get("metadata"), "stage")
        active = self._active_stages(pipeline)
        if len(active) >= MAX_STAGES:
            raise HubSpotError(400, f"A deal pipeline can have at most {MAX_STAGES} stages")
        self._check_unique_labels([s["label"] for s in active] + [label])
        now = self.now_ms()
        stage = self._new_stage(label, order, metadata, now)
        pipeline["stages"].append(stage)
        pipeline["updatedAt"] = now
        rendered = self._render_stage(stage)
        self._audit(f"{pipeline['id']}/{stage['id']}", "CREATE", rendered, now)
        self._touch()
        return Response(201, rendered)

    def _update_stage(self, request: Request, *, replace: bool) -> Response:
        body = self._body(request)
        restoring = body.get("archived") is False and not replace
        pipeline = self._pipeline(request)
        stage_id = request.path_params["stageId"]
        if restoring:
            stage = next((s for s in pipeline["stages"] if s["id"] == stage_id), None)
            if stage is None:
                raise HubSpotError(404, f"Unable to find stage {stage_id}",
                                   category="OBJECT_NOT_FOUND")
        else:
            stage = self._stage_of(pipeline, stage_id)
        if replace or "label" in body:
            stage_label = self._check_label(body.get("label"), "stage")
            others = [s["label"] for s in self._active_stages(pipeline) if s["id"] != stage["id"]]
            self._check_unique_labels([*others, stage_label])
            stage["label"] = stage_label
        if replace or "displayOrder" in body:
            stage["displayOrder"] = self._check_order(body.get("displayOrder"), "stage")
        if replace or "metadata" in body:
            stage["metadata"] = self._check_metadata(body.get("metadata"), "stage")
        now = self.now_ms()
        if "archived" in body and not replace:
            stage["archived"] = bool(body["archived"])
            stage["archivedAt"] = now if stage["archived"] else None
        stage["updatedAt"] = pipeline["updatedAt"] = now
        rendered = self._render_stage(stage)
        self._audit(f"{pipeline['id']}/{stage['id']}", "UPDATE", rendered, now)
        self._touch()
        return Response(200, rendered)

    def patch_stage(self, request: Request) -> Response:
        return self._update_stage(request, replace=False)

    def replace_stage(self, request: Request) -> Response:
        return self._update_stage(request, replace=True)

    def delete_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        stage = self._stage_of(pipeline, request.path_params["stageId"])
        if len(self._active_stages(pipeline)) == 1:
            raise HubSpotError(400, "A pipeline must keep at least one stage")
        self._refuse_if_used(request, pipeline["id"], [stage["id"]])
        now = self.now_ms()
        # Without the validate flags HubSpot deletes the stage and leaves its deals pointing
        # at it (unconfirmed what the UI shows); the sandbox does the same.
        stage.update(archived=True, archivedAt=now, updatedAt=now)
        pipeline["updatedAt"] = now
        self._audit(f"{pipeline['id']}/{stage['id']}", "DELETE", {"id": stage["id"]}, now)
        self._touch()
        return Response(204)

    def stage_audit(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        key = f"{pipeline['id']}/{request.path_params['stageId']}"
        if key not in self.audit:
            raise HubSpotError(404, f"Unable to find stage {request.path_params['stageId']}",
                               category="OBJECT_NOT_FOUND")
        return Response(200, {"results": list(reversed(self.audit[key]))})
