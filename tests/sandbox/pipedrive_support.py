"""Helpers for the Pipedrive emulator tests: a private server, the published specs with their
errata, and a validator that checks every request and response against them.

The specs are Pipedrive's own (see SOURCE.md beside them), kept outside the repository:
`CRMSYNC_PIPEDRIVE_SPECS_DIR` (environment, else `.env` in the repository) names their folder,
by default `../shared/specs/pipedrive` beside the repository. Without them the tests that need
them are skipped with one reason naming that setting (`tests/sandbox/conftest.py`); a folder
named explicitly that lacks them fails those tests instead, so a misconfigured CI is not
mistaken for a green one.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from dotenv import dotenv_values
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

from crmsync.sandbox.clock import ManualClock, to_datetime
from crmsync.sandbox.pipedrive import PipedriveEmulator
from crmsync.sandbox.pipedrive_store import format_time
from crmsync.sandbox.server import Sandbox, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
SPECS_SETTING = "CRMSYNC_PIPEDRIVE_SPECS_DIR"
SPEC_FILES = ("openapi-v2.yaml", "openapi-v1.yaml")


def _configured_specs_dir() -> str | None:
    """The setting from the environment, else from the repository's `.env` (as settings are)."""
    value = os.environ.get(SPECS_SETTING)
    if value is None and (REPO / ".env").is_file():
        value = dotenv_values(REPO / ".env").get(SPECS_SETTING)
    return value or None


_CONFIGURED = _configured_specs_dir()
SPECS_EXPLICIT = _CONFIGURED is not None
SPEC_DIR = (REPO / _CONFIGURED) if _CONFIGURED else REPO.parent / "shared" / "specs" / "pipedrive"


def missing_specs_reason() -> str | None:
    """Why the spec-based tests cannot run (the files are not there), else None."""
    missing = [name for name in SPEC_FILES if not (SPEC_DIR / name).is_file()]
    if not missing:
        return None
    return (f"Pipedrive's OpenAPI specs not found ({', '.join(missing)} missing in {SPEC_DIR}): "
            f"the Pipedrive conformance tests need them. Set {SPECS_SETTING} to the folder "
            "holding openapi-v1.yaml and openapi-v2.yaml (default: ../shared/specs/pipedrive "
            "beside the repository)")
TOKEN = "sandbox-test-token"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def stamp(offset_seconds: float = 0) -> str:
    """The timestamp Pipedrive shows `offset_seconds` after START (the manual clock's start)."""
    return format_time(to_datetime(START + offset_seconds))


def load_spec(name: str) -> dict[str, Any]:
    """A spec file as a dict; fails the test when it is missing (the conftest skips the tests
    that need the specs when they are absent from the default folder)."""
    path = SPEC_DIR / name
    if not path.is_file():
        pytest.fail(
            f"Pipedrive spec {path} is missing, though {SPECS_SETTING} names that folder. The "
            "conformance suite validates the emulator against Pipedrive's published OpenAPI "
            f"files; restore them (see SOURCE.md) or point {SPECS_SETTING} at a folder holding "
            "them.",
            pytrace=False,
        )
    loaded: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"),
                                       Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded


# ---- errata ------------------------------------------------------------------------------
# Where the published spec disagrees with Pipedrive's documented live behaviour. Each entry
# patches only the named schema nodes of the loaded dict; everything else is validated as
# published. Evidence is cited per entry.

_V2_LISTS = ("/pipelines", "/stages", "/persons", "/organizations", "/deals",
             "/deals/archived", "/persons/search", "/organizations/search", "/deals/search")

# E2: properties typed non-nullable that the API returns as null when unset. The spec's own
# examples show the pattern (`origin_id: null`, deal search `organization: null`, person
# search `organization.address: null`); an unlinked deal has no person/org, an open deal no
# won/lost time, a deal whose stage never changed no stage_change_time. A live v2 deal
# payload (the `updated-deal-instant` test event of the `@pipedream/pipedrive` npm package)
# carries `"expected_close_date": null, "won_time": null, "lost_time": null`.
_NULLABLE: dict[str, tuple[str, ...]] = {
    "deal": ("person_id", "org_id", "won_time", "lost_time", "stage_change_time",
             "expected_close_date"),
    "person": ("org_id", "picture_id"),
    "organization": ("address",),
}
# E2 (search): person search `organization` (nullable in deal search, not here) and
# organization search `address` (null when the organization has none).
_SEARCH_NULLABLE: dict[str, tuple[str, ...]] = {
    "/persons/search": ("organization",),
    "/organizations/search": ("address",),
}


def _data_schema(response_schema: dict[str, Any]) -> dict[str, Any]:
    """The `data` property schema inside a (possibly allOf-composed) envelope schema."""
    for part in [response_schema, *response_schema.get("allOf", [])]:
        data = part.get("properties", {}).get("data")
        if data is not None:
            return data  # type: ignore[no-any-return]
    raise KeyError("data")


def _additional_data(response_schema: dict[str, Any]) -> dict[str, Any] | None:
    for part in [response_schema, *response_schema.get("allOf", [])]:
        extra = part.get("properties", {}).get("additional_data")
        if extra is not None:
            return extra  # type: ignore[no-any-return]
    return None


def _json_schema(operation: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return operation["responses"][status]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def apply_v2_errata(spec: dict[str, Any]) -> dict[str, Any]:
    """The v2 spec with the errata below applied (a patched deep copy)."""
    spec = copy.deepcopy(spec)
    paths = spec["paths"]

    # E1: `additional_data.next_cursor` is typed `string` but "will be null if you have
    # reached the end of the dataset" (its own description; API-FACTS.md).
    for path in _V2_LISTS:
        extra = _additional_data(_json_schema(paths[path]["get"]))
        assert extra is not None, path
        extra["properties"]["next_cursor"]["nullable"] = True

    # E2: see _NULLABLE.
    for path, entity in (("/deals", "deal"), ("/deals/{id}", "deal"),
                         ("/deals/archived", "deal"), ("/persons", "person"),
                         ("/persons/{id}", "person"), ("/organizations", "organization"),
                         ("/organizations/{id}", "organization")):
        for method, operation in paths[path].items():
            if method not in ("get", "post", "patch"):
                continue
            data = _data_schema(_json_schema(operation))
            record = data.get("items", data)
            for name in _NULLABLE[entity]:
                if name in record.get("properties", {}):
                    record["properties"][name]["nullable"] = True
    for path, names in _SEARCH_NULLABLE.items():
        item = (_data_schema(_json_schema(paths[path]["get"]))["properties"]["items"]["items"]
                ["properties"]["item"])
        for name in names:
            item["properties"][name]["nullable"] = True

    # E3: deal search `item.value` is typed `integer`; deal values are numbers (`value:
    # number` on every deal schema), so a deal worth 2799.36 is found with that value.
    deal_item = (_data_schema(_json_schema(paths["/deals/search"]["get"]))["properties"]
                 ["items"]["items"]["properties"]["item"])
    deal_item["properties"]["value"]["type"] = "number"

    # E4: list parameters documented as "comma separated" (`status` "Multiple statuses can
    # be included as a comma separated array", search `fields` "A comma-separated string
    # array") are typed as a single-value enum; a valid `open,won` fails the enum. The enum
    # is replaced by a pattern of comma-joined enum values.
    # `include_fields` ("Optional comma separated string array of additional fields to
    # include") has the same fault on every record read.
    for path, name in (("/deals", "status"), ("/deals/archived", "status"),
                       ("/persons/search", "fields"), ("/organizations/search", "fields"),
                       ("/deals/search", "fields"),
                       *((p, "include_fields") for p in (
                           "/deals", "/deals/{id}", "/deals/archived", "/persons",
                           "/persons/{id}", "/organizations", "/organizations/{id}"))):
        for parameter in paths[path]["get"].get("parameters", []):
            if parameter["name"] == name:
                values = "|".join(parameter["schema"].pop("enum"))
                parameter["schema"]["pattern"] = f"^({values})(,({values}))*$"
    return spec


V1_PATHS = ("/dealFields", "/personFields", "/organizationFields", "/dealFields/{id}", "/users/me",
            "/personFields/{id}", "/organizationFields/{id}", "/recents",
            "/persons/{id}/merge", "/organizations/{id}/merge")
# E7 (recents): properties typed non-nullable that v1 returns as null when unset, as in E2
# (the same live deal payload; the v1 deal example itself has `close_time: null`,
# `lost_reason: null`, and person `org_id` is null for a person without organization).
_RECENTS_NULLABLE: dict[str, tuple[str, ...]] = {
    "deal": ("person_id", "org_id", "won_time", "first_won_time", "lost_time",
             "stage_change_time", "expected_close_date", "person_name", "org_name"),
    "person": ("org_id",),
    "organization": ("address",),
    "stage": ("rotten_days",),
}


def _make_nullable(schema: dict[str, Any], name: str) -> None:
    """Mark property `name` nullable wherever an (allOf-composed) object schema defines it."""
    if name in schema.get("properties", {}):
        schema["properties"][name]["nullable"] = True
    for part in schema.get("allOf", []):
        _make_nullable(part, name)


def apply_v1_errata(spec: dict[str, Any]) -> dict[str, Any]:
    """The v1 spec (the endpoints the sandbox serves) with its errata applied."""
    spec = copy.deepcopy(spec)
    recents = spec["paths"]["/recents"]["get"]
    for kind in _data_schema(_json_schema(recents))["items"]["anyOf"]:
        item = kind["properties"]["item"]["enum"][0]
        for name in _RECENTS_NULLABLE.get(item, ()):
            _make_nullable(kind["properties"]["data"], name)
    # E4 (recents): `items` is "Multiple selection of item types" typed as one enum value
    for parameter in recents["parameters"]:
        if parameter["name"] == "items":
            values = "|".join(parameter["schema"].pop("enum"))
            parameter["schema"]["pattern"] = f"^({values})(,({values}))*$"
    # E7 (merge): the merged person is a mergePersonItem, org_id null without organization
    _make_nullable(_data_schema(_json_schema(spec["paths"]["/persons/{id}/merge"]["put"])),
                   "org_id")
    for path in ("/dealFields", "/personFields", "/organizationFields",
                 *(f"/{n}Fields/{{id}}" for n in ("deal", "person", "organization"))):
        for method in ("get", "post", "put"):
            if method not in spec["paths"][path]:
                continue
            data = _data_schema(_json_schema(spec["paths"][path][method]))
            field = data.get("items", data)
            first, _second = field["allOf"]
            # E5: GetField is `allOf` two `field_type` enums: the creatable types and "List
            # of all possible field types". Their intersection rejects the system types the
            # live API lists for standard fields (`int`, `status`, `stage`, `pipeline`,
            # `varchar_options`); the second, complete enum is kept.
            first["properties"]["field_type"] = {}
            # E6: `add_time`/`update_time` are typed `format: date-time`, but the same
            # schema's example (and v1 everywhere) prints `2019-02-04 13:58:03`.
            for name in ("add_time", "update_time"):
                first["properties"][name].pop("format", None)
    return spec


# ---- validation --------------------------------------------------------------------------

@dataclass
class SpecValidator:
    """Validates live requests/responses against the v2 spec (v1 for field definitions)."""

    v2: OpenAPI
    v1: OpenAPI
    error_schema: OAS30Validator
    unauthorized_schema: OAS30Validator
    checked: int = 0

    def check(self, response: requests.Response, *, request_valid: bool = True) -> None:
        """Validate one exchange. Error statuses the spec does not document per operation
        are checked against the common error schemas (see `error_validators`)."""
        path = urlsplit(response.request.url).path  # type: ignore[arg-type]
        api = self.v1 if path.startswith(("/api/v1/", "/v1/")) else self.v2
        openapi_request = RequestsOpenAPIRequest(response.request)
        if request_valid:
            api.validate_request(openapi_request)
        if response.status_code >= 400:
            body = response.json()
            schema = self.unauthorized_schema if response.status_code == 401 else self.error_schema
            schema.validate(body)
            assert body["success"] is False
            assert isinstance(body["error"], str)
            assert body["error"]
        else:
            api.validate_response(openapi_request, RequestsOpenAPIResponse(response))
        self.checked += 1


def error_validators(v1: dict[str, Any], v2: dict[str, Any]) -> tuple[OAS30Validator,
                                                                       OAS30Validator]:
    """The spec's common error schemas.

    The v2 spec documents error responses only on four convert endpoints, yet Pipedrive's
    docs say "All error responses follow the same schema" ({success: false, error,
    error_info, data: null, additional_data: null}). That documented 404 schema is used
    for every 4xx; a 401 is checked against v1's `unathorizedResponse` (`/users/me`).
    Both get `required` so that a missing field fails.
    """
    error = copy.deepcopy(_json_schema(v2["paths"]["/deals/{id}/convert/lead"]["post"], "404"))
    error["required"] = ["success", "error", "error_info", "data", "additional_data"]
    unauthorized = copy.deepcopy(_json_schema(v1["paths"]["/users/me"]["get"], "401"))
    unauthorized["required"] = ["success", "error", "errorCode"]
    return OAS30Validator(error), OAS30Validator(unauthorized)


def build_validator() -> SpecValidator:
    v2_raw = load_spec("openapi-v2.yaml")
    v1_raw = load_spec("openapi-v1.yaml")
    v2 = OpenAPI.from_dict(_served_at(apply_v2_errata(v2_raw), "/api/v2"))
    # Pipedrive serves v1 at both /v1 (the spec's server) and /api/v1; so does the sandbox
    v1_served = _only_paths(apply_v1_errata(v1_raw), V1_PATHS)
    v1 = OpenAPI.from_dict(_served_at(v1_served, "/api/v1", "/v1"))
    error, unauthorized = error_validators(v1_raw, v2_raw)
    return SpecValidator(v2=v2, v1=v1, error_schema=error, unauthorized_schema=unauthorized)


def _served_at(spec: dict[str, Any], *prefixes: str) -> dict[str, Any]:
    """The spec pointed at any local sandbox instead of api.pipedrive.com (not an erratum)."""
    servers = [{"url": "http://{host}" + prefix, "variables": {"host": {"default": "127.0.0.1"}}}
               for prefix in prefixes]
    return {**spec, "servers": servers}


def _only_paths(spec: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """The spec reduced to the paths under test (fast to load; components kept whole)."""
    return {**spec, "paths": {p: spec["paths"][p] for p in keep}}


# ---- a private server --------------------------------------------------------------------

@dataclass
class PipedriveSandbox:
    """A running sandbox serving only the Pipedrive emulator, with a manual clock."""

    emulator: PipedriveEmulator
    clock: ManualClock
    server: SandboxServer
    session: requests.Session

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def reset(self) -> None:
        self.clock.set(START)
        self.emulator.reset()

    def tick(self, seconds: float = 1) -> None:
        self.clock.advance(seconds)


def start_pipedrive_sandbox(token: str | None = None) -> Iterator[PipedriveSandbox]:
    """Yield a started sandbox; stop it afterwards (use from a fixture).

    `emulator` is the account of the session's token, for setting data up directly.
    """
    clock = ManualClock(START)
    app = Sandbox([partial(PipedriveEmulator, clock=clock)], token=token, clock=clock)
    emulator = app.account("pipedrive", token or TOKEN)
    assert isinstance(emulator, PipedriveEmulator)
    server = SandboxServer(app).start()
    session = requests.Session()
    session.headers["x-api-token"] = token or TOKEN
    try:
        yield PipedriveSandbox(emulator, clock, server, session)
    finally:
        session.close()
        server.stop()
