"""State and helpers every HubSpot API area shares: the account's records, association
graph, deal pipelines, timestamps, and lookups of types and records.

State lives in plain dicts; handlers run under the sandbox's lock, so none is taken here.
Timestamps come from the injected clock, in milliseconds, and never go backwards: each write
gets ``max(clock, previous write)`` so ``lastmodifieddate`` is non-decreasing across writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_catalog import PropertyCatalog
from crmsync.sandbox.hubspot_model import (
    ASSOCIATION_TYPES,
    BATCH_MAX,
    DEFAULT_PIPELINE_ID,
    DEFAULT_STAGES,
    INVERSE_TYPE,
    OBJECT_TYPES,
    PRIMARY_IMPLIES,
    TYPE_ALIASES,
    UNIQUE,
    HubSpotError,
    ObjectStore,
    Record,
    iso,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from crmsync.sandbox.clock import Clock



# A new portal's users (the owners API lists them; `hubspot_owner_id` refers to them).
OWNERS: tuple[dict[str, Any], ...] = tuple(
    {"id": str(owner_id), "email": email, "firstName": first, "lastName": last,
     "userId": user_id, "userIdIncludingInactive": user_id, "type": "PERSON",
     "archived": False, "teams": [], "createdAt": 0, "updatedAt": 0}
    for owner_id, user_id, email, first, last in (
        (90_000_001, 7_000_001, "owner.one@sandbox.example", "Olivia", "Owner"),
        (90_000_002, 7_000_002, "sales.lead@sandbox.example", "Jonas", "Seller"),
        (90_000_003, 7_000_003, "account.manager@sandbox.example", "Priya", "Manager"),
    )
)


class HubSpotCore:
    """One portal's state and the helpers the API areas share."""

    clock: Clock
    search_lag: Callable[[], float]  # seconds before a write is visible to search

    def reset(self) -> None:
        self._last_ms = 0
        self._next_object_id = 1001
        self._next_pipeline_id = 75_000_001
        self._next_stage_id = 110_000_001
        self.objects: dict[str, ObjectStore] = {t: ObjectStore() for t in OBJECT_TYPES}
        # (from type, from id) -> to type -> to id -> type ids
        self.associations: dict[tuple[str, int], dict[str, dict[int, set[int]]]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}  # deals pipelines by id
        self.audit: dict[str, list[dict[str, Any]]] = {}
        self._search_cache: dict[str, tuple[int, list[int]]] = {}
        self.gdpr_blocklist: set[str] = set()  # lower-cased emails GDPR-deleted unseen
        self.catalog = PropertyCatalog(now_ms=0)
        self.owners: list[dict[str, Any]] = [dict(owner) for owner in OWNERS]
        # type -> merged-away id -> surviving id (a GET of the old id answers the survivor)
        self.merged_into: dict[str, dict[int, int]] = {t: {} for t in OBJECT_TYPES}
        self._version = 0  # bumped on every write; invalidates the search cache
        self._lagged = False  # some write was made under search index lag
        self._create_default_pipeline()

    # -- search index lag (`search_lag_seconds`): search sees a write only that long after it
    def _before_write(self, record: Record) -> None:
        """Keep what search sees of `record` until the write about to happen is indexed."""
        if record.index_log is None and self.search_lag() > 0:
            record.index_log = [(0, dict(record.props), record.archived)]

    def _after_write(self, record: Record, now: int, *, new: bool = False) -> None:
        lag = self.search_lag()
        if lag <= 0 and record.index_log is None:
            return
        self._lagged = True
        if record.index_log is None or new:
            record.index_log = []
        record.index_log.append((now + int(lag * 1000), dict(record.props), record.archived))

    @staticmethod
    def indexed(record: Record, now: int) -> tuple[dict[str, str], bool] | None:
        """(props, archived) as search sees them at `now`; None before the first indexing."""
        log = record.index_log
        if log is None:
            return record.props, record.archived
        visible = [i for i, (at, _, _) in enumerate(log) if at <= now]
        if not visible:
            return None
        del log[:visible[-1]]  # older versions can never be seen again
        return log[0][1], log[0][2]

    def now_ms(self) -> int:
        """The write timestamp: the clock in ms, never earlier than the previous write."""
        now = max(int(self.clock() * 1000), self._last_ms)
        self._last_ms = now
        return now

    def _touch(self) -> None:
        self._version += 1

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise HubSpotError(400, "Invalid input JSON: expected an object")
        return body

    @staticmethod
    def _limit(request: Request, default: int, maximum: int) -> int:
        raw = request.arg("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise HubSpotError(400, f"limit must be an integer, got {raw!r}") from None
        if not 1 <= limit <= maximum:
            raise HubSpotError(400, f"limit must be between 1 and {maximum}, got {limit}")
        return limit

    @staticmethod
    def _object_type(name: str) -> str:
        object_type = TYPE_ALIASES.get(name.lower())
        if object_type is None:
            raise HubSpotError(400, f"Unable to infer object type from: {name}")
        return object_type

    def _type_of(self, request: Request) -> str:
        return self._object_type(request.path_params["objectType"])

    def _find(self, object_type: str, raw_id: Any, id_property: str | None = None,
              *, archived: bool = False) -> Record | None:
        store = self.objects[object_type]
        if id_property and id_property != "hs_object_id":
            if id_property not in UNIQUE[object_type]:
                raise HubSpotError(400, f"{id_property} is not a unique property of "
                                   f"{object_type}; idProperty must be a unique property")
            record_id = store.by_email.get(str(raw_id).strip().lower())
        else:
            try:
                record_id = int(str(raw_id))
            except ValueError:
                return None
        record = store.records.get(record_id) if record_id is not None else None
        if record is None or record.archived != archived:
            return None
        return record

    def _create_default_pipeline(self) -> None:
        # A new HubSpot account has exactly this deal pipeline (API-FACTS, "Pipelines v3").
        # Spec (Pipeline/PipelineStage.createdAt): "The default pipelines [and the stages on
        # default pipelines] will have createdAt = 0."
        now = self.now_ms()
        stages = [
            self._new_stage(label, order, {"probability": prob,
                                           **({"isClosed": "true"} if order >= 5 else {})},
                            now, stage_id=stage_id, created=0)
            for order, (stage_id, label, prob) in enumerate(DEFAULT_STAGES)
        ]
        self.pipelines[DEFAULT_PIPELINE_ID] = {
            "id": DEFAULT_PIPELINE_ID, "label": "Sales Pipeline", "displayOrder": 0,
            "stages": stages, "archived": False, "createdAt": 0, "updatedAt": now,
        }

    def _new_stage(self, label: str, order: int, metadata: dict[str, str], now: int, *,
                   stage_id: str | None = None, created: int | None = None) -> dict[str, Any]:
        if stage_id is None:
            stage_id = str(self._next_stage_id)
            self._next_stage_id += 1
        return {"id": stage_id, "label": label, "displayOrder": order, "metadata": metadata,
                "archived": False, "createdAt": now if created is None else created,
                "updatedAt": now,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}

    @staticmethod
    def _active_stages(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
        """The pipeline's stages that are not archived (deleted), in stored order."""
        return [s for s in pipeline["stages"] if not s["archived"]]

    @staticmethod
    def _ordered(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        # displayOrder first; ties sort by label (pipelines guide)
        return sorted(items, key=lambda item: (item["displayOrder"], item["label"]))

    @staticmethod
    def _checked_type(spec: Any, from_type: str, to_type: str | None = None) -> int:
        """A HubSpot-defined association type id valid from `from_type` (to `to_type`)."""
        type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
        definition = ASSOCIATION_TYPES.get(type_id) if isinstance(type_id, int) else None
        if (not isinstance(type_id, int) or definition is None or definition[0] != from_type
                or (to_type is not None and definition[1] != to_type)):
            target = f" and {to_type}" if to_type else " associations"
            raise HubSpotError(400, f"{type_id} is not a valid association type between "
                               f"{from_type}{target}", subCategory="INVALID_TYPE")
        return type_id

    def _batch_inputs(self, request: Request, maximum: int = BATCH_MAX
                      ) -> tuple[dict[str, Any], list[Any]]:
        body = self._body(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise HubSpotError(400, "inputs is required and must be a list")
        if len(inputs) > maximum:
            # HubSpot: "Batch input limit of 100 exceeded" (limit documented; text unconfirmed)
            raise HubSpotError(400, f"Too many inputs: {len(inputs)}. The batch limit is "
                               f"{maximum} inputs per request.")
        return body, inputs

    def _batch_response(self, status_ok: int, results: list[dict[str, Any]],
                        errors: list[dict[str, Any]], started: int) -> Response:
        done = self.now_ms()
        body: dict[str, Any] = {
            "status": "COMPLETE", "results": results,
            "requestedAt": iso(started), "startedAt": iso(started), "completedAt": iso(done),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(status_ok, body)

    def _index_email(self, record: Record, old_email: str | None) -> None:
        index = self.objects["contacts"].by_email
        if old_email:
            index.pop(old_email.strip().lower(), None)
        email = record.props.get("email")
        if email and not record.archived:
            index[email.strip().lower()] = record.id

    def _targets(self, from_type: str, from_id: int, to_type: str
                 ) -> Iterator[tuple[int, set[int]]]:
        """Active associated records and their type ids (archived targets hidden)."""
        store = self.objects[to_type]
        for to_id, type_ids in self.associations.get((from_type, from_id), {}).get(
                to_type, {}).items():
            record = store.records.get(to_id)
            if record is not None and not record.archived and type_ids:
                yield to_id, type_ids

    def _associate(self, from_type: str, from_id: int, to_type: str, to_id: int,
                   type_id: int) -> None:
        type_ids = {type_id}
        if type_id in PRIMARY_IMPLIES:
            type_ids.add(PRIMARY_IMPLIES[type_id])
            if type_id in (1, 5):
                self._demote_primary(from_type, from_id, to_type, type_id, keep=to_id)
            else:  # 2 / 6 set the primary from the company's side
                self._demote_primary(to_type, to_id, from_type, INVERSE_TYPE[type_id],
                                     keep=from_id)
        for t in type_ids:
            self.associations.setdefault((from_type, from_id), {}).setdefault(
                to_type, {}).setdefault(to_id, set()).add(t)
            self.associations.setdefault((to_type, to_id), {}).setdefault(
                from_type, {}).setdefault(from_id, set()).add(INVERSE_TYPE[t])

    def _demote_primary(self, from_type: str, from_id: int, to_type: str, type_id: int,
                        keep: int) -> None:
        # A contact (or deal) has one primary company: a new primary replaces the old one.
        for other_id, type_ids in self.associations.get((from_type, from_id), {}).get(
                to_type, {}).items():
            if other_id != keep and type_id in type_ids:
                type_ids.discard(type_id)
                self.associations[(to_type, other_id)][from_type][from_id].discard(
                    INVERSE_TYPE[type_id])

    def _dissociate(self, from_type: str, from_id: int, to_type: str, to_id: int,
                    type_ids: Iterable[int] | None = None) -> None:
        forward = self.associations.get((from_type, from_id), {}).get(to_type, {})
        current = forward.get(to_id)
        if not current:
            return
        remove = set(current) if type_ids is None else set(type_ids) & current
        if type_ids is not None:
            # removing the unlabeled type removes the primary one too (it cannot stand alone)
            remove |= {p for p, u in PRIMARY_IMPLIES.items() if u in remove and p in current}
        current -= remove
        backward = self.associations[(to_type, to_id)][from_type][from_id]
        backward -= {INVERSE_TYPE[t] for t in remove}
        if not current:
            del forward[to_id]
            del self.associations[(to_type, to_id)][from_type][from_id]

    def _drop_associations(self, object_type: str, object_id: int) -> None:
        for to_type, targets in list(self.associations.get((object_type, object_id), {}).items()):
            for to_id in list(targets):
                self._dissociate(object_type, object_id, to_type, to_id)
        self.associations.pop((object_type, object_id), None)
