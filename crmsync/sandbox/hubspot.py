"""The HubSpot emulator: CRM pipelines v3, objects v3 (contacts, companies, deals),
associations v4, GDPR delete — as HubSpot's public specs and `hubspot-api-client` 12 describe.

Sources: HubSpot/HubSpot-public-api-spec-collection (CRM Pipelines v3, Contacts/Companies/
Deals v3, Associations v4) and the SDK's models, whose required fields every response fills.
Decisions where no published source settles the behaviour are marked "unconfirmed".

One module per API area, each a mixin over `hubspot_core.HubSpotCore`: `hubspot_pipelines`,
`hubspot_objects`, `hubspot_batch`, `hubspot_search_api` (semantics in `hubspot_search`),
`hubspot_associations`, `hubspot_seed`; the data model is `hubspot_model`.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.clock import Clock, system_clock
from crmsync.sandbox.http import Handler, Request, Response, Router, bearer_token
from crmsync.sandbox.hubspot_associations import AssociationsApi
from crmsync.sandbox.hubspot_batch import BatchApi
from crmsync.sandbox.hubspot_model import HubSpotError
from crmsync.sandbox.hubspot_pipelines import PipelinesApi
from crmsync.sandbox.hubspot_search import SearchError
from crmsync.sandbox.hubspot_search_api import SearchApi
from crmsync.sandbox.hubspot_seed import SeedingApi

if TYPE_CHECKING:
    from collections.abc import Callable

    _Method = Callable[["HubSpotEmulator", Request], Response]


class HubSpotEmulator(PipelinesApi, BatchApi, SearchApi, AssociationsApi, SeedingApi):
    """One HubSpot portal's CRM APIs over in-memory state (a sandbox `Emulator`)."""

    crm: str = "hubspot"
    path_prefixes: tuple[str, ...] = ("/crm/",)

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or system_clock
        self.reset()

    def token_of(self, request: Request) -> str:
        """A private-app (or OAuth) token comes as `Authorization: Bearer …`."""
        return bearer_token(request)

    def unauthorized(self) -> Response:
        """HubSpot's 401 for a missing or invalid private-app token."""
        return self.error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 "
            "authentication and you can find more details at "
            "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            category="INVALID_AUTHENTICATION",
        )

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """HubSpot's error body: {status, message, correlationId, category, ...}."""
        category = extra.pop("category", None) or {
            401: "INVALID_AUTHENTICATION", 404: "OBJECT_NOT_FOUND", 409: "CONFLICT",
            429: "RATE_LIMITS", 405: "VALIDATION_ERROR",
        }.get(status, "VALIDATION_ERROR" if status < 500 else "INTERNAL_ERROR")
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": category, **extra}
        return Response(status, body)

    @staticmethod
    def _wrap(handler: _Method) -> Handler:
        def run(account: HubSpotEmulator, request: Request) -> Response:
            try:
                return handler(account, request)
            except HubSpotError as exc:
                return account.error(exc.status, exc.message, category=exc.category,
                                     **exc.extra)
            except SearchError as exc:
                return account.error(400, str(exc))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return account.error(400, f"Invalid input JSON on line 1: {exc}")

        return run

    @classmethod
    def register(cls, router: Router) -> None:
        """Add every route; handlers are the methods below, called on the token's account."""

        def add(method: str, template: str, handler: _Method) -> None:
            router.add(method, template, cls._wrap(handler), crm=cls.crm)

        base = "/crm/v3/pipelines/{objectType}"
        add("GET", base, cls.list_pipelines)
        add("POST", base, cls.create_pipeline)
        add("GET", base + "/{pipelineId}", cls.get_pipeline)
        add("PATCH", base + "/{pipelineId}", cls.patch_pipeline)
        add("PUT", base + "/{pipelineId}", cls.replace_pipeline)
        add("DELETE", base + "/{pipelineId}", cls.delete_pipeline)
        add("GET", base + "/{pipelineId}/audit", cls.pipeline_audit)
        add("GET", base + "/{pipelineId}/stages", cls.list_stages)
        add("POST", base + "/{pipelineId}/stages", cls.create_stage)
        add("GET", base + "/{pipelineId}/stages/{stageId}", cls.get_stage)
        add("PATCH", base + "/{pipelineId}/stages/{stageId}", cls.patch_stage)
        add("PUT", base + "/{pipelineId}/stages/{stageId}", cls.replace_stage)
        add("DELETE", base + "/{pipelineId}/stages/{stageId}", cls.delete_stage)
        add("GET", base + "/{pipelineId}/stages/{stageId}/audit", cls.stage_audit)

        objects = "/crm/v3/objects/{objectType}"
        add("POST", "/crm/v3/objects/contacts/gdpr-delete", cls.gdpr_delete)
        add("GET", objects, cls.list_objects)
        add("POST", objects, cls.create_object)
        add("POST", objects + "/search", cls.search_objects)
        add("POST", objects + "/batch/read", cls.batch_read)
        add("POST", objects + "/batch/create", cls.batch_create)
        add("POST", objects + "/batch/update", cls.batch_update)
        add("POST", objects + "/batch/upsert", cls.batch_upsert)
        add("POST", objects + "/batch/archive", cls.batch_archive)
        add("GET", objects + "/{objectId}", cls.get_object)
        add("PATCH", objects + "/{objectId}", cls.update_object)
        add("DELETE", objects + "/{objectId}", cls.archive_object)

        assoc = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
        add("POST", assoc + "/read", cls.assoc_batch_read)
        add("POST", assoc + "/create", cls.assoc_batch_create)
        add("POST", assoc + "/archive", cls.assoc_batch_archive)
        add("POST", assoc + "/labels/archive", cls.assoc_batch_labels_archive)
        add("POST", assoc + "/associate/default", cls.assoc_batch_default)
        one = "/crm/v4/objects/{objectType}/{objectId}/associations"
        add("GET", one + "/{toObjectType}", cls.assoc_list)
        add("PUT", one + "/{toObjectType}/{toObjectId}", cls.assoc_put_labeled)
        add("DELETE", one + "/{toObjectType}/{toObjectId}", cls.assoc_delete)
        add("PUT", "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/"
            "{toObjectType}/{toObjectId}", cls.assoc_put_default)
