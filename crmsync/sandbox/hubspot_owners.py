"""Owners v3: the portal's users that records' `hubspot_owner_id` refers to.

Shapes: `hubspot.crm.owners` 12 (`PublicOwner`, `CollectionResponsePublicOwnerForwardPaging`);
`limit` at most 500, `after` a cursor, `email` filters (Owners v3 spec).
"""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_core import HubSpotCore
from crmsync.sandbox.hubspot_model import HubSpotError, iso, truthy

OWNERS_LIMIT_MAX = 500  # spec: "The maximum number of results to display per page."


def _render(owner: dict[str, Any]) -> dict[str, Any]:
    return {**owner, "createdAt": iso(owner["createdAt"]), "updatedAt": iso(owner["updatedAt"])}


class OwnersApi(HubSpotCore):
    """`/crm/v3/owners/` and `/crm/v3/owners/{ownerId}`."""

    def owner_ids(self) -> frozenset[str]:
        """Ids a record's `hubspot_owner_id` may take (active owners)."""
        return frozenset(o["id"] for o in self.owners if not o["archived"])

    def list_owners(self, request: Request) -> Response:
        limit = self._limit(request, 100, OWNERS_LIMIT_MAX)
        archived = truthy(request.arg("archived"))
        email = (request.arg("email") or "").strip().lower()
        matching = [o for o in self.owners if o["archived"] == archived
                    and (not email or o["email"].lower() == email)]
        start = 0
        if request.arg("after"):
            start = next((i for i, o in enumerate(matching)
                          if int(o["id"]) >= int(request.arg("after") or 0)), len(matching))
        page = matching[start:start + limit]
        body: dict[str, Any] = {"results": [_render(o) for o in page]}
        if start + limit < len(matching):
            body["paging"] = {"next": {"after": matching[start + limit]["id"]}}
        return Response(200, body)

    def get_owner(self, request: Request) -> Response:
        raw = request.path_params["ownerId"]
        key = "userId" if request.arg("idProperty") == "userId" else "id"
        archived = truthy(request.arg("archived"))
        for owner in self.owners:
            if str(owner[key]) == raw and owner["archived"] == archived:
                return Response(200, _render(owner))
        raise HubSpotError(404, f"Owner {raw} not found", category="OBJECT_NOT_FOUND")
