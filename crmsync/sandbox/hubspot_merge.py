"""Merging two records of one type (`POST /crm/v3/objects/{contacts|companies|deals}/merge`).

Sources: the objects v3 specs (`PublicMergeInput {primaryObjectId, objectIdToMerge}` → 200
`SimplePublicObject`) and the merge guide / knowledge base "Merge records": the primary's
values win, empty ones are filled from the merged record; the merged record's associations
move to the primary; the primary lists every id merged into it in `hs_merged_object_ids`
(semicolon-separated); contacts keep the merged email among `hs_additional_emails`.
"""

from __future__ import annotations

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_model import (
    ASSOCIATION_TYPES,
    MODIFIED,
    PRIMARY_IMPLIES,
    HubSpotError,
    Record,
    iso,
    object_not_found,
)
from crmsync.sandbox.hubspot_objects import ObjectsApi

MERGEABLE = ("contacts", "companies", "deals")
# What a merge never copies from the merged record: identity and system values.
_NOT_COPIED = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate",
                         "hs_merged_object_ids", "email", "hs_additional_emails"})


class MergeApi(ObjectsApi):
    """`POST /crm/v3/objects/{objectType}/merge`."""

    def merge_objects(self, request: Request) -> Response:
        object_type = self._type_of(request)
        if object_type not in MERGEABLE:
            raise HubSpotError(400, f"{object_type} cannot be merged")
        body = self._body(request)
        primary_raw, merged_raw = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if primary_raw is None or merged_raw is None:
            raise HubSpotError(400, "primaryObjectId and objectIdToMerge are required")
        primary = self._find(object_type, primary_raw)
        merged = self._find(object_type, merged_raw)
        if primary is None or merged is None:
            raise object_not_found()
        if primary.id == merged.id:
            raise HubSpotError(400, "An object cannot be merged into itself",
                               subCategory="MERGE_SAME_OBJECT")
        self.merge(object_type, primary, merged, self.now_ms())
        return Response(200, self._render(object_type, primary, self._written(
            object_type, ["hs_merged_object_ids"])))

    def merge(self, object_type: str, primary: Record, merged: Record, now: int) -> None:
        """Fold `merged` into `primary`; `merged` disappears (its id redirects)."""
        self._before_write(primary)
        old_email = primary.props.get("email")
        for name, value in merged.props.items():
            if name not in _NOT_COPIED and value and not primary.props.get(name):
                primary.props[name] = value
        if object_type == "contacts":
            extra = [e for e in (primary.props.get("hs_additional_emails") or "").split(";") if e]
            for email in (merged.props.get("email"),
                          *(merged.props.get("hs_additional_emails") or "").split(";")):
                if email and email != old_email and email not in extra:
                    extra.append(email)
            if extra:
                primary.props["hs_additional_emails"] = ";".join(extra)
        ids = [i for i in (primary.props.get("hs_merged_object_ids") or "").split(";") if i]
        ids += [str(merged.id)] + [
            i for i in (merged.props.get("hs_merged_object_ids") or "").split(";") if i]
        primary.props["hs_merged_object_ids"] = ";".join(dict.fromkeys(ids))
        self._move_associations(object_type, merged.id, primary.id)
        # The merged record is gone, not archived: drop it and redirect its ids.
        if object_type == "contacts":
            email = (merged.props.get("email") or "").strip().lower()
            if self.objects["contacts"].by_email.get(email) == merged.id:
                del self.objects["contacts"].by_email[email]
        self.objects[object_type].remove(merged.id)
        redirects = self.merged_into[object_type]
        for old, survivor in list(redirects.items()):
            if survivor == merged.id:
                redirects[old] = primary.id
        redirects[merged.id] = primary.id
        primary.updated_ms = now
        primary.props[MODIFIED[object_type]] = iso(now)
        self._after_write(primary, now)
        if object_type == "contacts":
            self._index_email(primary, old_email)
        self._touch()

    def _move_associations(self, object_type: str, from_id: int, to_id: int) -> None:
        """Every association of `from_id` moves to `to_id`; a primary flag moves only where
        `to_id` has no primary of its own to that type (a record keeps one primary)."""
        for other_type, targets in list(self.associations.get((object_type, from_id),
                                                               {}).items()):
            mine = self.associations.get((object_type, to_id), {}).get(other_type, {})
            has_primary = {t for ids in mine.values() for t in ids if t in PRIMARY_IMPLIES}
            for other_id, type_ids in list(targets.items()):
                for type_id in sorted(type_ids):
                    if type_id in has_primary and type_id in (1, 5):
                        continue
                    if ASSOCIATION_TYPES[type_id][0] != object_type:
                        continue
                    self._associate(object_type, to_id, other_type, other_id, type_id)
        self._drop_associations(object_type, from_id)
