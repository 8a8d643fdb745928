"""The HubSpot emulator: CRM pipelines v3, objects v3 (contacts, companies, deals),
associations v4, GDPR delete — as HubSpot's public specs and `hubspot-api-client` 12 describe.

Sources: HubSpot/HubSpot-public-api-spec-collection (CRM Pipelines v3, Contacts/Companies/
Deals v3, Associations v4) and the SDK's models, whose required fields every response fills.
Decisions where no published source settles the behaviour are marked "unconfirmed".

One module per API area, each a mixin over `hubspot_core.HubSpotCore`: `hubspot_pipelines`,
`hubspot_objects`, `hubspot_batch`, `hubspot_search_api` (semantics in `hubspot_search`),
`hubspot_associations`, `hubspot_properties` (definitions, groups, v2 read, schemas; the
definitions themselves in `hubspot_catalog`), `hubspot_owners`, `hubspot_merge`,
`hubspot_seed`; the data model is `hubspot_model`.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.clock import Clock, system_clock
from crmsync.sandbox.config import SandboxConfig
from crmsync.sandbox.http import Handler, Request, Response, Router, bearer_token
from crmsync.sandbox.hubspot_associations import AssociationsApi
from crmsync.sandbox.hubspot_batch import BatchApi
from crmsync.sandbox.hubspot_merge import MergeApi
from crmsync.sandbox.hubspot_model import HubSpotError
from crmsync.sandbox.hubspot_owners import OwnersApi
from crmsync.sandbox.hubspot_pipelines import PipelinesApi
from crmsync.sandbox.hubspot_properties import PropertiesApi
from crmsync.sandbox.hubspot_search import SearchError
from crmsync.sandbox.hubspot_search_api import SearchApi
from crmsync.sandbox.hubspot_seed import SeedingApi

if TYPE_CHECKING:
    from collections.abc import Callable

    _Method = Callable[["HubSpotEmulator", Request], Response]


def _no_lag() -> float:
    return 0.0


class HubSpotEmulator(PipelinesApi, BatchApi, SearchApi, SeedingApi, MergeApi, AssociationsApi,
                      PropertiesApi, OwnersApi):
    """One HubSpot portal's CRM APIs over in-memory state (a sandbox `Emulator`)."""

    crm: str = "hubspot"
    path_prefixes: tuple[str, ...] = ("/crm/", "/crm-object-schemas/", "/properties/",
                                      "/account-info/")

    def __init__(self, clock: Clock | None = None,
                 search_lag: Callable[[], float] | None = None,
                 config: Callable[[], SandboxConfig] | None = None) -> None:
        """`search_lag`: the sandbox's current `search_lag_seconds` (read on every search);
        `config`: the sandbox's current settings (exports read theirs from it)."""
        self.clock = clock or system_clock
        self.search_lag = search_lag or _no_lag
        self.config = config or SandboxConfig
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
        # Every error carries `errors` and `context` as live HubSpot's do (empty when there
        # is nothing per-field to say); the SDK's `Error` model types both.
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": category, "errors": [], "context": {}, **extra}
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
        objects = "/crm/v3/objects/{objectType}"
        assoc = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
        one = "/crm/v4/objects/{objectType}/{objectId}/associations"
        props = "/crm/v3/properties/{objectType}"
        routes: list[tuple[str, str, _Method]] = [
            ("GET", base, cls.list_pipelines),
            ("POST", base, cls.create_pipeline),
            ("GET", base + "/{pipelineId}", cls.get_pipeline),
            ("PATCH", base + "/{pipelineId}", cls.patch_pipeline),
            ("PUT", base + "/{pipelineId}", cls.replace_pipeline),
            ("DELETE", base + "/{pipelineId}", cls.delete_pipeline),
            ("GET", base + "/{pipelineId}/audit", cls.pipeline_audit),
            ("GET", base + "/{pipelineId}/stages", cls.list_stages),
            ("POST", base + "/{pipelineId}/stages", cls.create_stage),
            ("GET", base + "/{pipelineId}/stages/{stageId}", cls.get_stage),
            ("PATCH", base + "/{pipelineId}/stages/{stageId}", cls.patch_stage),
            ("PUT", base + "/{pipelineId}/stages/{stageId}", cls.replace_stage),
            ("DELETE", base + "/{pipelineId}/stages/{stageId}", cls.delete_stage),
            ("GET", base + "/{pipelineId}/stages/{stageId}/audit", cls.stage_audit),

            ("POST", "/crm/v3/objects/contacts/gdpr-delete", cls.gdpr_delete),
            ("GET", objects, cls.list_objects),
            ("POST", objects, cls.create_object),
            ("POST", objects + "/search", cls.search_objects),
            ("POST", objects + "/batch/read", cls.batch_read),
            ("POST", objects + "/batch/create", cls.batch_create),
            ("POST", objects + "/batch/update", cls.batch_update),
            ("POST", objects + "/batch/upsert", cls.batch_upsert),
            ("POST", objects + "/batch/archive", cls.batch_archive),
            ("POST", objects + "/merge", cls.merge_objects),
            ("GET", objects + "/{objectId}", cls.get_object),
            ("PATCH", objects + "/{objectId}", cls.update_object),
            ("DELETE", objects + "/{objectId}", cls.archive_object),

            ("POST", assoc + "/read", cls.assoc_batch_read),
            ("POST", assoc + "/create", cls.assoc_batch_create),
            ("POST", assoc + "/archive", cls.assoc_batch_archive),
            ("POST", assoc + "/labels/archive", cls.assoc_batch_labels_archive),
            ("POST", assoc + "/associate/default", cls.assoc_batch_default),
            ("GET", one + "/{toObjectType}", cls.assoc_list),
            ("PUT", one + "/{toObjectType}/{toObjectId}", cls.assoc_put_labeled),
            ("DELETE", one + "/{toObjectType}/{toObjectId}", cls.assoc_delete),
            ("PUT", "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/"
                    "{toObjectType}/{toObjectId}", cls.assoc_put_default),

            ("GET", props + "/groups", cls.list_groups),  # before {propertyName}: first wins
            ("POST", props + "/groups", cls.create_group),
            ("GET", props + "/groups/{groupName}", cls.get_group),
            ("PATCH", props + "/groups/{groupName}", cls.update_group),
            ("DELETE", props + "/groups/{groupName}", cls.archive_group),
            ("GET", props, cls.list_properties),
            ("POST", props, cls.create_property),
            ("GET", props + "/{propertyName}", cls.get_property),
            ("PATCH", props + "/{propertyName}", cls.update_property),
            ("DELETE", props + "/{propertyName}", cls.archive_property),
            ("GET", "/properties/v2/{objectType}/properties", cls.list_properties_v2),
            # The SDK reads schemas at /crm-object-schemas/v3/…; the docs name /crm/v3/schemas.
            ("GET", "/crm/v3/schemas", cls.list_schemas),
            ("GET", "/crm/v3/schemas/{objectType}", cls.get_schema),
            ("GET", "/crm-object-schemas/v3/schemas", cls.list_schemas),
            ("GET", "/crm-object-schemas/v3/schemas/{objectType}", cls.get_schema),
            # The SDK's owners path ends in a slash (`/crm/v3/owners/`); both forms are served.
            ("GET", "/crm/v3/owners", cls.list_owners),
            ("GET", "/crm/v3/owners/", cls.list_owners),
            ("GET", "/crm/v3/owners/{ownerId}", cls.get_owner),
        ]
        for method, template, handler in routes:
            add(method, template, handler)
        # Areas with routes of their own register here (one line each).
        from crmsync.sandbox.account_info import register_hubspot  # who the token is
        register_hubspot(router)
        from crmsync.sandbox.hubspot_exports import register_exports  # Exports API v3
        register_exports(router)
