"""CRM objects v3 batch endpoints: read, create, update, upsert, archive."""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_model import (
    SINGULAR,
    UNIQUE,
    HubSpotError,
    Record,
    batch_error,
    truthy,
)
from crmsync.sandbox.hubspot_objects import ObjectsApi


def _invalid_email_only(exc: HubSpotError) -> bool:
    codes = [e.get("code") for e in exc.extra.get("errors", [])]
    return bool(codes) and all(code == "INVALID_EMAIL" for code in codes)


def _trace(item: Any) -> str | None:
    trace = item.get("objectWriteTraceId") if isinstance(item, dict) else None
    return None if trace is None else str(trace)


def _input_error(exc: HubSpotError, index: int, trace: str | None = None) -> dict[str, Any]:
    """A batch `errors` entry for one input refused by validation (live HubSpot fails only
    that input, with a 207, when its email is invalid, or whatever the refusal when the
    input carries an `objectWriteTraceId`, which the error's context then names:
    https://developers.hubspot.com/docs/api-reference/error-handling "Multi-status errors")."""
    context: dict[str, list[str]] = {"propertyName": ["email"], "inputIndex": [str(index)]}
    if trace is not None:
        context = {"objectWriteTraceId": [trace]}
    return {"status": "error", "category": exc.category, "message": exc.message,
            "context": context, "links": {}, "errors": exc.extra.get("errors", [])}


def _traced(result: dict[str, Any], item: Any) -> dict[str, Any]:
    """A result echoing its input's `objectWriteTraceId` (SimplePublicObject in the spec)."""
    trace = _trace(item)
    return result if trace is None else {**result, "objectWriteTraceId": trace}


class BatchApi(ObjectsApi):
    """`/crm/v3/objects/{objectType}/batch/…`."""

    def _normalise_input(self, object_type: str, item: dict[str, Any], index: int,
                         errors: list[dict[str, Any]]) -> dict[str, str] | None:
        """The input's values, or None (its error added) if only its email is invalid."""
        try:
            return self._normalise(object_type, item.get("properties"))
        except HubSpotError as exc:
            if not _invalid_email_only(exc) and _trace(item) is None:
                raise
            errors.append(_input_error(exc, index, _trace(item)))
            return None

    @staticmethod
    def _refused(item: Any, index: int, errors: list[dict[str, Any]], check: Any) -> bool:
        """Run `check()`; with a trace id, its refusal fails only this input (True)."""
        try:
            check()
        except HubSpotError as exc:
            if _trace(item) is None or exc.status >= 500:
                raise
            errors.append(_input_error(exc, index, _trace(item)))
            return True
        return False

    @staticmethod
    def _not_found_error(object_type: str, ids: list[str]) -> dict[str, Any]:
        return batch_error(
            f"Could not get some {SINGULAR[object_type].upper()} objects, they may be "
            "deleted or not exist. Check that ids are valid.", {"ids": ids})

    def batch_read(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        body, inputs = self._batch_inputs(request)
        id_property = body.get("idProperty")
        archived = truthy(request.arg("archived"))
        properties = body.get("properties") or []
        history = body.get("propertiesWithHistory") or []
        results, missing = [], []
        for item in inputs:
            raw = item.get("id") if isinstance(item, dict) else None
            record = self._find(object_type, raw, id_property, archived=archived)
            if record is None:
                missing.append(str(raw))
            else:
                results.append(self._render(object_type, record, properties,
                                            with_history=history))
        errors = [self._not_found_error(object_type, missing)] if missing else []
        return self._batch_response(200, results, errors, started)

    def batch_create(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        # Validate every input before writing any: a batch create is all-or-nothing
        # (unconfirmed upstream; HubSpot answers one 400/409 for the whole batch).
        emails: set[str] = set()
        errors: list[dict[str, Any]] = []
        valid: list[dict[str, Any]] = []
        for index, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise HubSpotError(400, "each input must be an object with `properties`")
            props = self._normalise_input(object_type, item, index, errors)
            if props is None:
                continue

            def check(item: dict[str, Any] = item, props: dict[str, str] = props) -> None:
                self._inline_associations(object_type, item.get("associations"))
                if object_type == "contacts":
                    self._check_email(props, None)
                    email = (props.get("email") or "").strip().lower()
                    if email and email in emails:
                        raise HubSpotError(409, f"Duplicate email in batch input: {email}",
                                           category="CONFLICT")
                    emails.add(email)
                if object_type == "deals":
                    self._check_deal(dict(props), None)

            if not self._refused(item, index, errors, check):
                valid.append(item)
        now = self.now_ms()
        records = [(self._create_one(object_type, item, now), item) for item in valid]
        self._touch()
        return self._batch_response(
            201, [_traced(self._render(object_type, r, self._written(object_type, r.props)),
                          item) for r, item in records], errors, started)

    def batch_update(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        seen: set[str] = set()
        plan: list[tuple[Record, dict[str, str], Any]] = []
        missing: list[str] = []
        invalid: list[dict[str, Any]] = []
        for index, item in enumerate(inputs):
            if not isinstance(item, dict) or item.get("id") is None:
                raise HubSpotError(400, "each input needs `id` and `properties`")
            raw = str(item["id"])
            if raw in seen:
                raise HubSpotError(400, f"Duplicate IDs found in batch input: [{raw}]. IDs "
                                   "must be unique")
            seen.add(raw)
            props = self._normalise_input(object_type, item, index, invalid)
            if props is None:
                continue
            record = self._find(object_type, raw, item.get("idProperty"))
            if record is None:
                missing.append(raw)
                continue
            if not self._refused(item, index, invalid, lambda record=record, props=props:
                                 self._validate_update(object_type, record, props)):
                plan.append((record, props, item))
        now = self.now_ms()
        for record, props, _ in plan:
            self._apply_update(object_type, record, props, now)
        if plan:
            self._touch()
        errors = [self._not_found_error(object_type, missing)] if missing else []
        return self._batch_response(
            200, [_traced(self._render(object_type, r, self._written(object_type, p)), item)
                  for r, p, item in plan],
            [*errors, *invalid], started)

    def batch_upsert(self, request: Request) -> Response:
        object_type = self._type_of(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        now = self.now_ms()
        results = []
        for item in inputs:
            if not isinstance(item, dict) or not item.get("idProperty") or item.get("id") is None:
                raise HubSpotError(400, "each upsert input needs `idProperty`, `id` and "
                                   "`properties`")
            id_property = item["idProperty"]
            if id_property not in UNIQUE[object_type] or id_property == "hs_object_id":
                # upsert needs a unique property that can be set on create (upsert docs)
                raise HubSpotError(400, f"{id_property} is not a unique property of "
                                   f"{object_type}; upsert needs a unique idProperty")
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(inputs):
            raw = dict(item.get("properties") or {})
            raw.setdefault(item["idProperty"], str(item["id"]))
            traced = {"properties": raw, "objectWriteTraceId": item.get("objectWriteTraceId")}
            if _trace(item) is None:
                traced.pop("objectWriteTraceId")
            if self._normalise_input(object_type, traced, index, errors) is None:
                continue
            props = self._normalise(object_type, item.get("properties"))
            found = self._find(object_type, item["id"], item["idProperty"])
            if found is None:
                created_box: list[Record] = []
                if self._refused(item, index, errors, lambda raw=raw, box=created_box:
                                 box.append(self._create_one(object_type,
                                                             {"properties": raw}, now))):
                    continue
                record, created = created_box[0], True
            else:
                if self._refused(item, index, errors, lambda found=found, props=props:
                                 self._validate_update(object_type, found, props)):
                    continue
                self._apply_update(object_type, found, props, now)
                record, created = found, False
            results.append(_traced({**self._render(object_type, record, self._written(
                object_type, props if not created else record.props)), "new": created}, item))
        self._touch()
        return self._batch_response(200, results, errors, started)

    def batch_archive(self, request: Request) -> Response:
        object_type = self._type_of(request)
        _, inputs = self._batch_inputs(request)
        now = self.now_ms()
        for item in inputs:
            record = self._find(object_type, item.get("id") if isinstance(item, dict) else None)
            if record is not None:
                self._archive(object_type, record, now)
        self._touch()
        return Response(204)
