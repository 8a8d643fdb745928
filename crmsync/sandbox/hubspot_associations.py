"""Associations v4: batch read/create/archive, labels, defaults, and one record's list."""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_core import HubSpotCore
from crmsync.sandbox.hubspot_model import (
    ASSOC_BATCH_READ_MAX,
    ASSOCIATIONS_PAGE,
    DEFAULT_TYPE,
    EMPTY_TYPES,
    SINGULAR,
    HubSpotError,
    Record,
    association_to,
    batch_error,
    default_association,
    labels_between,
    targets_page,
    unassociable,
)


class AssociationsApi(HubSpotCore):
    """`/crm/v4/associations/…` and `/crm/v4/objects/…/associations/…`."""

    def _assoc_types(self, request: Request) -> tuple[str, str]:
        return (self._object_type(request.path_params["fromObjectType"]),
                self._object_type(request.path_params["toObjectType"]))

    def assoc_batch_read(self, request: Request) -> Response:
        started = self.now_ms()
        if {request.path_params["fromObjectType"].lower(),
                request.path_params["toObjectType"].lower()} & EMPTY_TYPES:
            # A type the sandbox holds no records of: nothing is associated (live HubSpot
            # answers an empty result for a portal without such records, not a 400).
            self._batch_inputs(request, ASSOC_BATCH_READ_MAX)
            return self._batch_response(200, [], [], started)
        from_type, to_type = self._assoc_types(request)
        _, inputs = self._batch_inputs(request, ASSOC_BATCH_READ_MAX)
        if not self.objects[to_type].records:
            return self._batch_response(200, [], [], started)  # no records of the type
        results, errors = [], []
        for item in inputs:
            raw = item.get("id") if isinstance(item, dict) else None
            record = self._find(from_type, raw)
            targets = sorted(self._targets(from_type, record.id, to_type)) if record else []
            if not targets:
                # unconfirmed wording; HubSpot reports inputs without associations as errors
                errors.append(batch_error(
                    f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {raw}.",
                    {"fromObjectId": [str(raw)]},
                    subCategory="crm.associations.NO_ASSOCIATIONS_FOUND"))
                continue
            page, following = targets_page(targets, item.get("after"), ASSOCIATIONS_PAGE)
            result: dict[str, Any] = {
                "from": {"id": str(record.id)},  # type: ignore[union-attr]
                "to": [association_to(to_id, type_ids) for to_id, type_ids in page],
            }
            if following is not None:
                result["paging"] = {"next": {"after": following}}
            results.append(result)
        return self._batch_response(200, results, errors, started)

    def _pair_inputs(self, request: Request, from_type: str, to_type: str,
                     item: Any) -> tuple[Record | None, Record | None, str]:
        from_raw = (item.get("from") or {}).get("id") if isinstance(item, dict) else None
        to_raw = (item.get("to") or {}).get("id") if isinstance(item, dict) else None
        return self._find(from_type, from_raw), self._find(to_type, to_raw), f"{from_raw}→{to_raw}"

    def assoc_batch_create(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        results, errors = [], []
        for item in inputs:
            types = item.get("types") if isinstance(item, dict) else None
            if not isinstance(types, list) or not types:
                raise HubSpotError(400, "each input needs `from`, `to` and `types`")
            type_ids = [self._checked_type(t, from_type, to_type) for t in types]
            source, target, label = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                errors.append(unassociable(label))
                continue
            for type_id in type_ids:
                self._associate(from_type, source.id, to_type, target.id, type_id)
            results.append(labels_between(from_type, source.id, to_type, target.id, type_ids))
        self._touch()
        return self._batch_response(201, results, errors, started)

    def assoc_batch_default(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        started = self.now_ms()
        _, inputs = self._batch_inputs(request)
        type_id = DEFAULT_TYPE.get((from_type, to_type))
        if type_id is None:
            raise HubSpotError(400, f"No default association between {from_type} and {to_type}")
        results, errors = [], []
        for item in inputs:
            source, target, label = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                errors.append(unassociable(label))
                continue
            self._associate(from_type, source.id, to_type, target.id, type_id)
            results.append(default_association(source.id, target.id, type_id))
        self._touch()
        # The SDK maps only 200 here; per-input failures are listed with numErrors.
        response = self._batch_response(200, results, errors, started)
        response.status = 200
        return response

    def assoc_batch_archive(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        _, inputs = self._batch_inputs(request)
        for item in inputs:
            from_raw = (item.get("from") or {}).get("id") if isinstance(item, dict) else None
            source = self._find(from_type, from_raw)
            if source is None:
                continue
            for to in item.get("to") or []:
                target = self._find(to_type, to.get("id") if isinstance(to, dict) else None)
                if target is not None:
                    self._dissociate(from_type, source.id, to_type, target.id)
        self._touch()
        return Response(204)

    def assoc_batch_labels_archive(self, request: Request) -> Response:
        from_type, to_type = self._assoc_types(request)
        _, inputs = self._batch_inputs(request)
        for item in inputs:
            source, target, _ = self._pair_inputs(request, from_type, to_type, item)
            if source is None or target is None:
                continue
            type_ids = [t.get("associationTypeId") for t in item.get("types") or []
                        if isinstance(t, dict)]
            self._dissociate(from_type, source.id, to_type, target.id,
                             [t for t in type_ids if isinstance(t, int)])
        self._touch()
        return Response(204)

    def assoc_list(self, request: Request) -> Response:
        from_type = self._object_type(request.path_params["objectType"])
        to_type = self._object_type(request.path_params["toObjectType"])
        record = self._find(from_type, request.path_params["objectId"])
        if record is None:
            raise HubSpotError(404, "Object not found.", category="OBJECT_NOT_FOUND")
        limit = self._limit(request, ASSOCIATIONS_PAGE, ASSOCIATIONS_PAGE)
        targets = sorted(self._targets(from_type, record.id, to_type))
        page, following = targets_page(targets, request.arg("after"), limit)
        body: dict[str, Any] = {"results": [association_to(to_id, type_ids)
                                            for to_id, type_ids in page]}
        if following is not None:
            body["paging"] = {"next": {"after": following}}
        return Response(200, body)

    def _one_pair(self, request: Request, from_key: str = "objectType",
                  from_id_key: str = "objectId") -> tuple[str, Record, str, Record]:
        from_type = self._object_type(request.path_params[from_key])
        to_type = self._object_type(request.path_params["toObjectType"])
        source = self._find(from_type, request.path_params[from_id_key])
        target = self._find(to_type, request.path_params["toObjectId"])
        if source is None or target is None:
            raise HubSpotError(404, "Object not found.", category="OBJECT_NOT_FOUND")
        return from_type, source, to_type, target

    def assoc_put_labeled(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request)
        specs = request.json()
        if not isinstance(specs, list) or not specs:
            raise HubSpotError(400, "expected a list of association specs")
        for spec in specs:
            type_id = self._checked_type(spec, from_type, to_type)
            self._associate(from_type, source.id, to_type, target.id, type_id)
        self._touch()
        type_ids = dict(self._targets(from_type, source.id, to_type)).get(target.id, set())
        return Response(201, labels_between(from_type, source.id, to_type, target.id,
                                             type_ids))

    def assoc_put_default(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request, "fromObjectType",
                                                            "fromObjectId")
        type_id = DEFAULT_TYPE.get((from_type, to_type))
        if type_id is None:
            raise HubSpotError(400, f"No default association between {from_type} and {to_type}")
        started = self.now_ms()
        self._associate(from_type, source.id, to_type, target.id, type_id)
        self._touch()
        return self._batch_response(
            200, [default_association(source.id, target.id, type_id)], [], started)

    def assoc_delete(self, request: Request) -> Response:
        from_type, source, to_type, target = self._one_pair(request)
        self._dissociate(from_type, source.id, to_type, target.id)
        self._touch()
        return Response(204)
