"""The Pipedrive emulator: API v2 pipelines, stages, persons, organizations and deals, plus
the v1 endpoints v2 did not replace (field definitions, recents, person and organization
merges: `pipedrive_v1`), as `openapi-v2.yaml` / `openapi-v1.yaml` describe them.

Behaviour the published spec leaves open is decided here and marked "Decision" in the
comments, so it is easy to find and change:

- Fresh account (`reset`): Pipedrive's default pipeline ("Pipeline", five stages), no
  records, the standard fields and four custom fields (`pipedrive_fields`). A real company
  starts with one: "To help you get started, Pipedrive includes a default sales process. You
  can find it in the deals tab under pipeline view" (support.pipedrive.com, article
  207365225), and the spec's `POST /deals` needs only a `title` because a deal without
  `stage_id` goes "in the first stage of the default pipeline" - which must exist.
- A new pipeline gets no stages. The spec's `POST /pipelines` takes only `name` and
  `is_deal_probability_enabled`, returns no stages, and `POST /stages` requires a
  `pipeline_id`; a client builds stages itself.
- Deleting ("Marks a pipeline/stage as deleted.") sets `is_deleted` and nothing else for
  deals: deals keep their `stage_id`/`pipeline_id` and stay listed (the spec documents no
  cascade and no refusal). Deleting a pipeline also marks its stages deleted. GET of a
  deleted pipeline/stage answers 200 with `is_deleted: true` (the GET schemas carry the
  flag); lists leave deleted ones out.
- Deleted deals, persons and organizations stay readable by id (`is_deleted: true`) for
  30 days ("After 30 days, the deal will be permanently deleted"), then answer 404; deals
  also list under `status=deleted` in that window. DELETE of a deleted record is a no-op
  200, so a retried DELETE succeeds.
- `update_time` has second resolution. Lists order by `(sort field, id)`; the cursor names
  the next page's first row by both, so rows sharing a second are neither skipped nor
  repeated within one walk. A row updated during a walk sorted by `update_time` moves to
  the end and may be seen twice (at-least-once), never lost.
- A stage moved to another pipeline takes its deals along (a deal's pipeline is its
  stage's); their `update_time` moves.
- `include_fields` / `include_option_labels` are served (`pipedrive_include`);
  `include_labels` is accepted and ignored: label definitions are not emulated.
- The v1 CRUD endpoints v2 replaced answer 410 Gone (`_retired`).
- Not emulated: the v2 field-definition endpoints (`/api/v2/dealFields`, ...) the current
  spec also lists; clients here read field definitions from v1.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crmsync.sandbox import pipedrive_input as inp
from crmsync.sandbox import pipedrive_v1 as v1api
from crmsync.sandbox.http import Handler, Request, Response, Router, bearer_token
from crmsync.sandbox.pipedrive_fields import FieldCatalog, FieldError, v1_field
from crmsync.sandbox.pipedrive_include import Shaper
from crmsync.sandbox.pipedrive_input import ApiError, invalid, not_found
from crmsync.sandbox.pipedrive_store import (
    CursorError,
    Row,
    Table,
    format_time,
    is_date,
    paginate,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    _Method = Callable[["PipedriveEmulator", Request], Response]

DEFAULT_CURRENCY = "EUR"  # Decision: the account's default currency when a deal omits it
# the user the token belongs to: "If not provided, the user making the request will be used"
DEFAULT_OWNER_ID = 1
DEFAULT_VISIBLE_TO = 3  # "Owner's visibility group"
PURGE_AFTER = timedelta(days=30)

# Pipedrive's default pipeline of a new company (see the module docstring); `seed` recreates
# it when the account has none. The stage names are those of Pipedrive's default sales
# process. Decision (unconfirmed): the pipeline's name "Pipeline" and the rising
# probabilities (so that weighted board totals differ from plain totals).
DEFAULT_PIPELINE = "Pipeline"
DEFAULT_STAGES = (
    ("Qualified", 10), ("Contact Made", 25), ("Demo Scheduled", 50),
    ("Proposal Made", 75), ("Negotiations Started", 90),
)
LOST_REASONS = ("Price", "Chose a competitor", "No budget", "No response", "Timing")

PIPELINE_FIELDS = ("name", "is_deal_probability_enabled")
STAGE_FIELDS = ("name", "pipeline_id", "deal_probability", "is_deal_rot_enabled",
                "days_to_rotten")
PERSON_POST = ("name", "owner_id", "org_id", "add_time", "emails", "phones", "visible_to",
               "label_ids", "postal_address", "notes", "im", "birthday", "job_title",
               "marketing_status", "custom_fields")
PERSON_PATCH = tuple(f for f in PERSON_POST if f != "add_time")
ORG_POST = ("name", "owner_id", "add_time", "visible_to", "label_ids", "address", "website",
            "linkedin", "industry", "annual_revenue", "employee_count", "custom_fields")
ORG_PATCH = tuple(f for f in ORG_POST if f != "add_time")
DEAL_FIELDS = ("title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value",
               "currency", "is_deleted", "is_archived", "archive_time", "status",
               "probability", "lost_reason", "visible_to", "close_time", "won_time",
               "lost_time", "expected_close_date", "label_ids", "custom_fields")
POST_FIELDS = {"persons": PERSON_POST, "organizations": ORG_POST, "deals": DEAL_FIELDS}
PATCH_FIELDS = {"persons": PERSON_PATCH, "organizations": ORG_PATCH, "deals": DEAL_FIELDS}
ADDRESS_PARTS = ("value", "country", "admin_area_level_1", "admin_area_level_2", "locality",
                 "sublocality", "route", "street_number", "subpremise", "postal_code")
# Contact-sync person fields: "don't exist by default … only created when you set up your
# contact sync". The emulator behaves as if contact sync were on: stored and shown when set.
CONTACT_SYNC = ("postal_address", "notes", "im", "birthday", "job_title", "marketing_status")
MARKETING_STATUSES = ("no_consent", "unsubscribed", "subscribed", "archived")
SEARCH_FIELDS = {
    "persons": ("custom_fields", "email", "notes", "phone", "name"),
    "organizations": ("address", "custom_fields", "notes", "name"),
    "deals": ("custom_fields", "notes", "title"),
}
# "Only the following custom field types are searchable"
SEARCHABLE_TYPES = frozenset({"address", "varchar", "text", "varchar_auto", "double",
                              "monetary", "phone"})
# v1 CRUD endpoints that API v2 replaced (see `_retired`)
V1_PREFIXES = ("/api/v1", "/v1")
RETIRED_V1 = ("pipelines", "stages", "deals", "persons", "organizations")
ENTITY_OF = {"persons": "person", "organizations": "organization", "deals": "deal"}
NOUN = {"persons": "Person", "organizations": "Organization", "deals": "Deal",
        "pipelines": "Pipeline", "stages": "Stage"}


def _for(name: str, handler: Callable[[PipedriveEmulator, str, Request], Response]) -> _Method:
    """A route handler serving `handler` for one entity (`persons`, `deal`, …)."""
    def run(account: PipedriveEmulator, request: Request) -> Response:
        return handler(account, name, request)
    return run


def _ok(data: Any, additional_data: Any = None, *, listed: bool = False) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if listed or additional_data is not None:
        body["additional_data"] = additional_data
    return Response(200, body)


class PipedriveEmulator:
    """One emulated Pipedrive company account served under `/api/` (a sandbox `Emulator`).

    Handlers run under the sandbox's lock (`server.py`), so none is taken here.
    """

    crm: str = "pipedrive"
    # v2 resources and the v1 endpoints v2 did not replace (`/api/v1/…` and `/v1/…`)
    path_prefixes: tuple[str, ...] = ("/api/", "/v1/")

    def __init__(self, clock: Callable[[], datetime | float] | None = None) -> None:
        """`clock` returns the current time as an aware datetime or POSIX seconds (the
        sandbox's shared `Clock`); records get its time truncated to the second."""
        self._read_clock = clock or (lambda: datetime.now(UTC))
        self.pipelines = Table()
        self.stages = Table(("id", "update_time", "add_time", "order_nr"))
        self.persons = Table()
        self.organizations = Table()
        self.deals = Table()
        # by name; the tables themselves are never replaced (reset and load refill them)
        self.tables: dict[str, Table] = {
            "pipelines": self.pipelines, "stages": self.stages, "persons": self.persons,
            "organizations": self.organizations, "deals": self.deals,
        }
        # when each deleted record was deleted (its purge clock), per table name
        self.deleted_at: dict[str, dict[int, str]] = {}
        # when each deal was first won (`include_fields=first_won_time`)
        self.first_won: dict[int, str] = {}
        self.fields = FieldCatalog(self.now())
        self.reset()

    # ---- Emulator protocol --------------------------------------------------------------

    def _clock(self) -> datetime:
        moment = self._read_clock()
        if isinstance(moment, datetime):
            return moment
        return datetime.fromtimestamp(moment, tz=UTC)

    def now(self) -> str:
        return format_time(self._clock())

    def reset(self) -> None:
        for table in self.tables.values():
            table.clear()
        self.deleted_at = {name: {} for name in ("persons", "organizations", "deals")}
        self.first_won = {}
        self.fields = FieldCatalog(self.now())
        self.ensure_default_pipeline()

    def token_of(self, request: Request) -> str:
        """`x-api-token`, else the `api_token` query parameter, else `Authorization: Bearer`.

        The spec's security schemes are `api_key` (header `x-api-token`) and OAuth 2 (bearer).
        """
        return (request.headers.get("x-api-token") or request.arg("api_token")
                or bearer_token(request))

    def unauthorized(self) -> Response:
        # openapi-v1.yaml `unathorizedResponse`: {success, error: "unauthorized access",
        # errorCode: 401}; the live API adds the common error_info/data/additional_data.
        return self.error(401, "unauthorized access", errorCode=401)

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """Pipedrive's error body: `{success: false, error, error_info, data, additional_data}`."""
        body = {
            "success": False, "error": message, "error_info": inp.ERROR_INFO,
            "data": None, "additional_data": None, **extra,
        }
        return Response(status, body)

    @classmethod
    def register(cls, router: Router) -> None:
        """Add every route; handlers are the methods below, called on the token's account
        (per-entity ones with the entity's name bound first)."""
        v2 = "/api/v2"
        routes: list[tuple[str, str, _Method]] = [
            ("GET", f"{v2}/pipelines", cls._list_pipelines),
            ("POST", f"{v2}/pipelines", cls._add_pipeline),
            ("GET", f"{v2}/pipelines/{{id}}", cls._get_pipeline),
            ("PATCH", f"{v2}/pipelines/{{id}}", cls._update_pipeline),
            ("DELETE", f"{v2}/pipelines/{{id}}", cls._delete_pipeline),
            ("GET", f"{v2}/stages", cls._list_stages),
            ("POST", f"{v2}/stages", cls._add_stage),
            ("GET", f"{v2}/stages/{{id}}", cls._get_stage),
            ("PATCH", f"{v2}/stages/{{id}}", cls._update_stage),
            ("DELETE", f"{v2}/stages/{{id}}", cls._delete_stage),
            ("GET", f"{v2}/deals/archived", cls._list_archived_deals),
        ]
        for name in ("persons", "organizations", "deals"):
            routes += [
                # static paths first: `{id}` would otherwise swallow "search"
                ("GET", f"{v2}/{name}/search", _for(name, cls._search)),
                ("GET", f"{v2}/{name}", _for(name, cls._list_records)),
                ("POST", f"{v2}/{name}", _for(name, cls._add_record)),
                ("GET", f"{v2}/{name}/{{id}}", _for(name, cls._get_record)),
                ("PATCH", f"{v2}/{name}/{{id}}", _for(name, cls._update_record)),
                ("DELETE", f"{v2}/{name}/{{id}}", _for(name, cls._delete_record)),
            ]
        v1: list[tuple[str, str, _Method]] = [
            ("GET", "/recents", v1api.recents),
            ("PUT", "/persons/{id}/merge", v1api.merge_persons),
            ("PUT", "/organizations/{id}/merge", v1api.merge_organizations),
        ]
        for entity, path in (("deal", "dealFields"), ("person", "personFields"),
                             ("organization", "organizationFields")):
            v1 += [
                ("GET", f"/{path}", _for(entity, cls._list_fields)),
                ("POST", f"/{path}", _for(entity, cls._add_field)),
                ("GET", f"/{path}/{{id}}", _for(entity, v1api.get_field)),
                ("PUT", f"/{path}/{{id}}", _for(entity, v1api.update_field)),
                ("DELETE", f"/{path}/{{id}}", _for(entity, v1api.delete_field)),
            ]
        for name in RETIRED_V1:
            v1 += [(m, f"/{name}/search", cls._retired)
                   for m in ("GET",) if name in ENTITY_OF]
            v1 += [(m, f"/{name}", cls._retired) for m in ("GET", "POST")]
            v1 += [(m, f"/{name}/{{id}}", cls._retired) for m in ("GET", "PUT", "DELETE")]
        # v1 answers at both host forms: `https://api.pipedrive.com/v1/…` (the v1 spec's
        # server) and `https://COMPANY.pipedrive.com/api/v1/…`. v2's spec server is
        # `https://api.pipedrive.com/api/v2`: `/api/v2` on either host, so no `/v2` alias.
        routes += [(m, f"{prefix}{path}", handler) for prefix in V1_PREFIXES
                   for m, path, handler in v1]
        # room for `GET /v1/users/me` (account_info.py), registered by its own line here
        for method, template, handler in routes:
            router.add(method, template, cls._guarded(handler), crm=cls.crm)
        from crmsync.sandbox.account_info import register_pipedrive  # who the token is
        register_pipedrive(router)

    def _retired(self, _request: Request) -> Response:
        # Pipedrive's status codes: "410 Gone - Old resource permanently unavailable". The
        # v1 CRUD endpoints of these resources left the published v1 spec (SOURCE.md) and
        # are out of support since 2026-08. Decision: they answer 410, not 404, so that a
        # client still on v1 learns why.
        raise ApiError(410, "This API v1 endpoint is no longer available; use API v2")

    @staticmethod
    def _guarded(handler: _Method) -> Handler:
        def run(account: PipedriveEmulator, request: Request) -> Response:
            try:
                return handler(account, request)
            except ApiError as exc:
                return account.error(exc.status, exc.message, **exc.extra)
            except (FieldError, CursorError) as exc:
                return account.error(400, f"Validation failed: {exc}",
                                     code="ERR_SCHEMA_VALIDATION_FAILED")
        return run

    # ---- state --------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """The whole account as JSON-serialisable data."""
        return {
            "version": 1,
            "tables": {
                name: {"next_id": table.next_id, "rows": list(table.rows.values())}
                for name, table in self.tables.items()
            },
            "deleted_at": {
                name: {str(k): v for k, v in times.items()}
                for name, times in self.deleted_at.items()
            },
            "fields": self.fields.to_state(),
            "first_won": {str(k): v for k, v in self.first_won.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the account with one produced by `dump_state`."""
        if state.get("version") != 1:
            raise ValueError("unsupported Pipedrive sandbox state version")
        for name, table in self.tables.items():
            saved = state["tables"][name]
            table.load(saved["rows"], saved["next_id"])
        self.deleted_at = {
            name: {int(k): v for k, v in times.items()}
            for name, times in state["deleted_at"].items()
        }
        self.fields.load_state(state["fields"])
        self.first_won = {int(k): v for k, v in state.get("first_won", {}).items()}

    # ---- shared helpers -----------------------------------------------------------------

    def purge_cutoff(self) -> str:
        """Records deleted before this time are purged (30 days)."""
        return format_time(self._clock() - PURGE_AFTER)

    _purge_cutoff = purge_cutoff

    def alive(self, name: str, row: Row, cutoff: str) -> bool:
        """False once a deleted record is past its 30 days (purged)."""
        if not row["is_deleted"]:
            return True
        return self.deleted_at[name].get(row["id"], cutoff) > cutoff

    def _record(self, name: str, row_id: int) -> Row:
        """A record by id, deleted ones included until purged; 404 otherwise."""
        row = self.tables[name].get(row_id)
        if row is None or (name in self.deleted_at
                           and not self.alive(name, row, self._purge_cutoff())):
            raise not_found(NOUN[name])
        return row

    def _live(self, name: str, row_id: int | None, field: str) -> int | None:
        """Validate a link to another record: it must exist and not be deleted."""
        if row_id is None:
            return None
        row = self.tables[name].get(row_id)
        if row is None or row["is_deleted"]:
            raise invalid(f"{field}: {NOUN[name].lower()} {row_id} not found")
        return row_id

    def _shape(self, row: Row, shaper: Shaper | None) -> Row:
        if shaper is None or shaper.plain:
            return row
        return shaper.shape(row, catalog=self.fields, first_won=self.first_won,
                            deals=self.deals.rows.values(),
                            persons=self.persons.rows.values())

    def _list(
        self,
        request: Request,
        table: Table,
        keep: Callable[[Row], bool],
        sort_fields: tuple[str, ...] = ("id", "update_time", "add_time"),
        *,
        timed: bool = True,
        shaper: Shaper | None = None,
    ) -> Response:
        limit = inp.limit_param(request)
        sort_by = inp.enum_param(request, "sort_by", sort_fields, "id")
        direction = inp.enum_param(request, "sort_direction", ("asc", "desc"), "asc")
        since = inp.time_param(request, "updated_since") if timed else None
        until = inp.time_param(request, "updated_until") if timed else None
        ids = inp.ids_param(request) if timed else None

        def matches(row: Row) -> bool:
            if ids is not None and row["id"] not in ids:
                return False
            # `updated_since` is inclusive (">="), `updated_until` exclusive ("earlier than")
            if since is not None and row["update_time"] < since:
                return False
            if until is not None and row["update_time"] >= until:
                return False
            return keep(row)

        rows, next_cursor = paginate(
            table, sort_by=sort_by, sort_direction=direction, limit=limit,
            cursor=request.arg("cursor") or None, keep=matches, since=since, until=until,
        )
        data = [self._shape(row, shaper) for row in rows]
        return _ok(data, {"next_cursor": next_cursor}, listed=True)

    # ---- pipelines ----------------------------------------------------------------------

    def _list_pipelines(self, request: Request) -> Response:
        return self._list(request, self.pipelines, lambda r: not r["is_deleted"], timed=False)

    def _get_pipeline(self, request: Request) -> Response:
        return _ok(self._record("pipelines", inp.path_id(request)))

    def _add_pipeline(self, request: Request) -> Response:
        body = inp.json_body(request, PIPELINE_FIELDS)
        return _ok(self.create_pipeline(body))

    def create_pipeline(self, body: dict[str, Any]) -> Row:
        """Create a pipeline from a v2 body; it goes last (`order_nr` is read-only)."""
        inp.non_null(body, ("is_deal_probability_enabled",))
        name = inp.text(body, "name", required=True)
        enabled = inp.boolean(body, "is_deal_probability_enabled")
        now = self.now()
        live = [r["order_nr"] for r in self.pipelines.rows.values() if not r["is_deleted"]]
        row = {
            "id": self.pipelines.allocate_id(),
            "name": name,
            "order_nr": max(live, default=0) + 1,
            "is_deleted": False,
            "is_deal_probability_enabled": bool(enabled),
            "add_time": now,
            "update_time": now,
        }
        return self.pipelines.insert(row)

    def _update_pipeline(self, request: Request) -> Response:
        row = self._record("pipelines", inp.path_id(request))
        body = inp.json_body(request, PIPELINE_FIELDS)
        inp.non_null(body, PIPELINE_FIELDS)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = inp.text(body, "name", required=True)
        if "is_deal_probability_enabled" in body:
            changes["is_deal_probability_enabled"] = bool(
                inp.boolean(body, "is_deal_probability_enabled"))
        return _ok(self.pipelines.replace({**row, **changes, "update_time": self.now()}))

    def _delete_pipeline(self, request: Request) -> Response:
        row = self._record("pipelines", inp.path_id(request))
        if not row["is_deleted"]:
            now = self.now()
            self.pipelines.replace({**row, "is_deleted": True, "update_time": now})
            # Decision: its stages go with it (they would otherwise be listed under a
            # pipeline clients cannot see); deals are left as they are (module docstring).
            for stage in list(self.stages.rows.values()):
                if stage["pipeline_id"] == row["id"] and not stage["is_deleted"]:
                    self.stages.replace({**stage, "is_deleted": True, "update_time": now})
        return _ok({"id": row["id"]})

    def default_pipeline(self) -> Row | None:
        """The pipeline with the lowest `order_nr` ("considered the default")."""
        live = [r for r in self.pipelines.rows.values() if not r["is_deleted"]]
        return min(live, key=lambda r: (r["order_nr"], r["id"]), default=None)

    # ---- stages -------------------------------------------------------------------------

    def _list_stages(self, request: Request) -> Response:
        pipeline_id = inp.int_param(request, "pipeline_id")

        def keep(row: Row) -> bool:
            if row["is_deleted"]:
                return False
            return pipeline_id is None or row["pipeline_id"] == pipeline_id

        return self._list(request, self.stages, keep,
                          ("id", "update_time", "add_time", "order_nr"), timed=False)

    def _get_stage(self, request: Request) -> Response:
        return _ok(self._record("stages", inp.path_id(request)))

    def _add_stage(self, request: Request) -> Response:
        body = inp.json_body(request, STAGE_FIELDS)
        return _ok(self.create_stage(body))

    def pipeline_stages(self, pipeline_id: int) -> list[Row]:
        """The pipeline's live stages in board order."""
        stages = [r for r in self.stages.rows.values()
                  if r["pipeline_id"] == pipeline_id and not r["is_deleted"]]
        return sorted(stages, key=lambda r: (r["order_nr"], r["id"]))

    def _next_order(self, pipeline_id: int) -> int:
        return max((r["order_nr"] for r in self.pipeline_stages(pipeline_id)), default=0) + 1

    @staticmethod
    def _stage_settings(body: dict[str, Any], current: Row) -> dict[str, Any]:
        """`deal_probability` and the rotting pair from a v2 body, over `current`.

        `days_to_rotten` "Applies only if the `is_deal_rot_enabled` is set": a stage without
        rotting shows null days (as Pipedrive's stages without rotting show `rotten_days:
        null` in v1), and days sent with rotting off are dropped.
        """
        inp.non_null(body, ("deal_probability", "is_deal_rot_enabled"))
        settings: dict[str, Any] = {}
        if "deal_probability" in body:
            settings["deal_probability"] = inp.integer(body, "deal_probability", minimum=0,
                                                       maximum=100)
        enabled = inp.boolean(body, "is_deal_rot_enabled")
        if enabled is None:
            enabled = current["is_deal_rot_enabled"]
        days = (inp.integer(body, "days_to_rotten", minimum=1) if "days_to_rotten" in body
                else current["days_to_rotten"])
        settings["is_deal_rot_enabled"] = enabled
        settings["days_to_rotten"] = days if enabled else None
        return settings

    def create_stage(self, body: dict[str, Any]) -> Row:
        """Create a stage from a v2 body; it goes last in its pipeline."""
        name = inp.text(body, "name", required=True)
        pipeline_id = inp.integer(body, "pipeline_id", minimum=1)
        if pipeline_id is None:
            raise invalid("pipeline_id: is required")
        self._live("pipelines", pipeline_id, "pipeline_id")
        now = self.now()
        row = {
            "id": self.stages.allocate_id(),
            "order_nr": self._next_order(pipeline_id),
            "name": name,
            "is_deleted": False,
            # Decision: Pipedrive's UI default for a new stage is 100 %
            "deal_probability": 100,
            "pipeline_id": pipeline_id,
            "is_deal_rot_enabled": False,
            "days_to_rotten": None,
            "add_time": now,
            "update_time": now,
        }
        row.update(self._stage_settings(body, row))
        return self.stages.insert(row)

    def _update_stage(self, request: Request) -> Response:
        row = self._record("stages", inp.path_id(request))
        body = inp.json_body(request, STAGE_FIELDS)
        inp.non_null(body, ("name", "pipeline_id"))
        changes = self._stage_settings(body, row)
        if "name" in body:
            changes["name"] = inp.text(body, "name", required=True)
        now = self.now()
        pipeline_id = inp.integer(body, "pipeline_id", minimum=1)
        if pipeline_id is not None:
            self._live("pipelines", pipeline_id, "pipeline_id")
            if pipeline_id != row["pipeline_id"]:
                # moving a stage: like a new one, it goes last in its new pipeline
                changes["pipeline_id"] = pipeline_id
                changes["order_nr"] = self._next_order(pipeline_id)
                self._move_stage_deals(row["id"], pipeline_id, now)
        return _ok(self.stages.replace({**row, **changes, "update_time": now}))

    def _move_stage_deals(self, stage_id: int, pipeline_id: int, now: str) -> None:
        """A deal's pipeline is its stage's ("a pipeline will be assigned automatically based
        on the `stage_id`"), so the deals of a moved stage move with it. Decision: that is a
        change to each deal, so their `update_time` moves too (incremental syncs see it)."""
        for deal in list(self.deals.rows.values()):
            if deal["stage_id"] == stage_id and deal["pipeline_id"] != pipeline_id:
                self.deals.replace({**deal, "pipeline_id": pipeline_id, "update_time": now})

    def _delete_stage(self, request: Request) -> Response:
        row = self._record("stages", inp.path_id(request))
        if not row["is_deleted"]:
            self.stages.replace({**row, "is_deleted": True, "update_time": self.now()})
        return _ok({"id": row["id"]})

    # ---- persons, organizations, deals: routes -------------------------------------------

    def _list_records(self, name: str, request: Request) -> Response:
        if request.arg("filter_id"):
            # saved filters are not emulated, so no filter id exists
            raise not_found("Filter")
        owner_id = inp.int_param(request, "owner_id")
        shaper = Shaper(name, request)
        cutoff = self._purge_cutoff()
        if name == "deals":
            keep = self._deal_filter(request, archived=False, cutoff=cutoff)
        else:
            org_id = inp.int_param(request, "org_id") if name == "persons" else None
            deal_id = inp.int_param(request, "deal_id") if name == "persons" else None
            deal_person = None
            if deal_id is not None:
                deal = self.deals.get(deal_id)
                deal_person = deal["person_id"] if deal else 0

            def keep(row: Row) -> bool:
                if row["is_deleted"]:
                    return False
                if owner_id is not None and row["owner_id"] != owner_id:
                    return False
                if org_id is not None and row["org_id"] != org_id:
                    return False
                return deal_id is None or row["id"] == deal_person

        return self._list(request, self.tables[name], keep, shaper=shaper)

    def _list_archived_deals(self, request: Request) -> Response:
        if request.arg("filter_id"):
            raise not_found("Filter")
        keep = self._deal_filter(request, archived=True, cutoff=self._purge_cutoff())
        # this listing documents no include_option_labels
        return self._list(request, self.deals, keep,
                          shaper=Shaper("deals", request, option_labels=False))

    def _deal_filter(self, request: Request, *, archived: bool,
                     cutoff: str) -> Callable[[Row], bool]:
        owner_id = inp.int_param(request, "owner_id")
        person_id = inp.int_param(request, "person_id")
        org_id = inp.int_param(request, "org_id")
        pipeline_id = inp.int_param(request, "pipeline_id")
        stage_id = inp.int_param(request, "stage_id")
        # "Multiple statuses can be included as a comma separated array."
        statuses = set(inp.csv_enum_param(request, "status", ("open", "won", "lost", "deleted")))
        with_deleted = "deleted" in statuses
        open_statuses = statuses - {"deleted"}
        deleted_at = self.deleted_at["deals"]

        def keep(row: Row) -> bool:
            if row["is_archived"] != archived:
                return False
            if row["is_deleted"]:
                # "If set to deleted, deals that have been deleted up to 30 days ago will
                # be included" - and only then
                if not with_deleted or deleted_at.get(row["id"], cutoff) <= cutoff:
                    return False
            elif statuses and row["status"] not in open_statuses:
                return False
            return not (
                (owner_id is not None and row["owner_id"] != owner_id)
                or (person_id is not None and row["person_id"] != person_id)
                or (org_id is not None and row["org_id"] != org_id)
                or (pipeline_id is not None and row["pipeline_id"] != pipeline_id)
                or (stage_id is not None and row["stage_id"] != stage_id)
            )
        return keep

    def _get_record(self, name: str, request: Request) -> Response:
        row = self._record(name, inp.path_id(request))
        return _ok(self._shape(row, Shaper(name, request)))

    def _add_record(self, name: str, request: Request) -> Response:
        return _ok(self.create(name, inp.json_body(request, POST_FIELDS[name])))

    def _update_record(self, name: str, request: Request) -> Response:
        row_id = inp.path_id(request)
        self._record(name, row_id)
        return _ok(self.update(name, row_id, inp.json_body(request, PATCH_FIELDS[name])))

    def _delete_record(self, name: str, request: Request) -> Response:
        row_id = inp.path_id(request)
        self._record(name, row_id)
        self.delete(name, row_id)
        return _ok({"id": row_id})

    # ---- persons, organizations, deals: the internal API (also used by tests) -------------

    def create(self, name: str, body: dict[str, Any]) -> Row:
        """Create a person, organization or deal from a v2 request body (validated)."""
        now = self.now()
        base: Row = {"id": self.tables[name].allocate_id(), "add_time": now,
                     "is_deleted": False, "custom_fields": {}}
        if name == "persons":
            row = self._person(base, body, creating=True)
        elif name == "organizations":
            row = self._organization(base, body, creating=True)
        else:
            row = self._deal(base, body, creating=True)
        if "add_time" in body:
            row["add_time"] = inp.body_time(body, "add_time") or now
        row["update_time"] = now
        self._note_first_win(name, row)
        return self.tables[name].insert(row)

    def update(self, name: str, row_id: int, body: dict[str, Any]) -> Row:
        """Apply a v2 PATCH body to a record; bumps `update_time`."""
        current = self._record(name, row_id)
        if name == "persons":
            row = self._person(dict(current), body, creating=False)
        elif name == "organizations":
            row = self._organization(dict(current), body, creating=False)
        else:
            row = self._deal(dict(current), body, creating=False)
        row["update_time"] = self.now()
        self._note_first_win(name, row)
        return self.tables[name].replace(row)

    def _note_first_win(self, name: str, row: Row) -> None:
        if name == "deals" and row["status"] == "won":
            self.first_won.setdefault(row["id"], row["won_time"])

    def delete(self, name: str, row_id: int) -> None:
        """Soft-delete a record ("Marks a … as deleted"); a no-op when already deleted."""
        row = self._record(name, row_id)
        if not row["is_deleted"]:
            now = self.now()
            self._start_purge_clock(name, row_id, deleted=True, now=now)
            self.tables[name].replace({**row, "is_deleted": True, "update_time": now})

    def _start_purge_clock(self, name: str, row_id: int, *, deleted: bool, now: str) -> None:
        """Note when a record was deleted (its 30 days run from then); undeleting stops it."""
        if deleted:
            self.deleted_at[name][row_id] = now
        else:
            self.deleted_at[name].pop(row_id, None)

    def _custom(self, entity: str, row: Row, body: dict[str, Any]) -> dict[str, Any]:
        if "custom_fields" not in body or body["custom_fields"] is None:
            return dict(row["custom_fields"])
        return self.fields.merge_values(entity, row["custom_fields"], body["custom_fields"],
                                        DEFAULT_CURRENCY)

    def _common(self, row: Row, body: dict[str, Any], creating: bool) -> None:
        if creating or "owner_id" in body:
            row["owner_id"] = inp.integer(body, "owner_id", minimum=1) or DEFAULT_OWNER_ID
        if creating or "visible_to" in body:
            row["visible_to"] = inp.visible_to(body) or DEFAULT_VISIBLE_TO
        if creating or "label_ids" in body:
            row["label_ids"] = inp.int_list(body, "label_ids") or []

    def _person(self, row: Row, body: dict[str, Any], *, creating: bool) -> Row:
        # Decision: `name` is required on create although the v2 schema omits `required`;
        # the v1 spec required it and a nameless person cannot be saved in Pipedrive.
        if creating or "name" in body:
            name = inp.text(body, "name", required=True) or ""
            first, _, last = name.partition(" ")
            row.update(name=name, first_name=first, last_name=last.strip())
        self._common(row, body, creating)
        if creating or "org_id" in body:
            row["org_id"] = self._live("organizations",
                                       inp.integer(body, "org_id", minimum=1), "org_id")
        for field in ("emails", "phones"):
            if creating or field in body:
                row[field] = inp.contact_list(body, field) or []
        if creating:
            row["picture_id"] = None
        for field in CONTACT_SYNC:
            if field not in body:
                continue
            value = self._contact_sync_value(body, field)
            if value is None:
                row.pop(field, None)
            else:
                row[field] = value
        row["custom_fields"] = self._custom("person", row, body)
        return row

    @staticmethod
    def _contact_sync_value(body: dict[str, Any], field: str) -> Any:
        if field == "postal_address":
            return inp.address(body, field, ADDRESS_PARTS)
        if field == "im":
            return inp.contact_list(body, field)
        if field == "marketing_status":
            value = body.get(field)
            if value is not None and value not in MARKETING_STATUSES:
                raise invalid(f"marketing_status: must be one of {', '.join(MARKETING_STATUSES)}")
            return value
        return inp.optional_text(body, field)

    def _organization(self, row: Row, body: dict[str, Any], *, creating: bool) -> Row:
        if creating or "name" in body:
            row["name"] = inp.text(body, "name", required=True)
        self._common(row, body, creating)
        if creating or "address" in body:
            row["address"] = inp.address(body, "address", ADDRESS_PARTS)
        for field in ("website", "linkedin"):
            if creating or field in body:
                row[field] = inp.optional_text(body, field)
        for field in ("industry", "annual_revenue", "employee_count"):
            if creating or field in body:
                row[field] = inp.integer(body, field, minimum=0)
        row["custom_fields"] = self._custom("organization", row, body)
        return row

    def _deal(self, row: Row, body: dict[str, Any], *, creating: bool) -> Row:
        now = self.now()
        if creating or "title" in body:
            row["title"] = inp.text(body, "title", required=True)
        self._common(row, body, creating)
        if creating:
            row.update(creator_user_id=DEFAULT_OWNER_ID, origin="API", origin_id=None,
                       channel=None, channel_id=None, arr=None, mrr=None, acv=None,
                       stage_change_time=None, is_deleted=False)
        for field, table in (("person_id", "persons"), ("org_id", "organizations")):
            if creating or field in body:
                row[field] = self._live(table, inp.integer(body, field, minimum=1), field)
        self._place_deal(row, body, creating, now)
        self._deal_amounts(row, body, creating)
        self._deal_status(row, body, creating, now)
        self._deal_archive(row, body, creating, now)
        row["custom_fields"] = self._custom("deal", row, body)
        deleted = inp.boolean(body, "is_deleted")
        if deleted is not None and deleted != row["is_deleted"]:
            row["is_deleted"] = deleted
            self._start_purge_clock("deals", row["id"], deleted=deleted, now=now)
        return row

    @staticmethod
    def _deal_amounts(row: Row, body: dict[str, Any], creating: bool) -> None:
        if creating or "value" in body:
            value = inp.number(body, "value")
            row["value"] = 0 if value is None else value
        if creating or "currency" in body:
            currency = inp.text(body, "currency") or DEFAULT_CURRENCY
            if len(currency) != 3 or not currency.isalpha():
                raise invalid("currency: must be a 3-letter currency code")
            row["currency"] = currency.upper()
        if creating or "probability" in body:
            probability = inp.number(body, "probability")
            if probability is not None and not 0 <= probability <= 100:
                raise invalid("probability: must be between 0 and 100")
            row["probability"] = probability
        if creating or "expected_close_date" in body:
            date = body.get("expected_close_date")
            if date is not None and not is_date(date):
                raise invalid("expected_close_date: must be a date YYYY-MM-DD")
            row["expected_close_date"] = date

    def _place_deal(self, row: Row, body: dict[str, Any], creating: bool, now: str) -> None:
        """Resolve `stage_id`/`pipeline_id`: a stage implies its pipeline; a pipeline alone
        means its first stage; neither (on create) the default pipeline's first stage."""
        stage_id = inp.integer(body, "stage_id", minimum=1)
        pipeline_id = inp.integer(body, "pipeline_id", minimum=1)
        if stage_id is not None:
            stage = self.stages.get(stage_id)
            if stage is None or stage["is_deleted"]:
                raise invalid(f"stage_id: stage {stage_id} not found")
            if pipeline_id is not None and pipeline_id != stage["pipeline_id"]:
                # Decision: v1 silently ignored pipeline_id here; v2 validates strictly
                raise invalid("stage_id: the stage is not in the given pipeline_id")
        elif pipeline_id is not None:
            if not creating and pipeline_id == row["pipeline_id"]:
                return
            self._live("pipelines", pipeline_id, "pipeline_id")
            stages = self.pipeline_stages(pipeline_id)
            if not stages:
                raise invalid(f"pipeline_id: pipeline {pipeline_id} has no stages")
            stage = stages[0]
        elif creating:
            pipeline = self.default_pipeline()
            stages = self.pipeline_stages(pipeline["id"]) if pipeline else []
            if not stages:
                raise invalid("stage_id: the account has no pipeline with stages")
            stage = stages[0]
        else:
            return
        if not creating and stage["id"] != row["stage_id"]:
            row["stage_change_time"] = now
        row["stage_id"] = stage["id"]
        row["pipeline_id"] = stage["pipeline_id"]

    def _deal_status(self, row: Row, body: dict[str, Any], creating: bool, now: str) -> None:
        """won/lost are statuses, not stages; their times exist only with the status."""
        previous = None if creating else row["status"]
        status = body.get("status", previous or "open")
        if status not in ("open", "won", "lost"):
            raise invalid("status: must be one of open, won, lost")
        won_time = inp.body_time(body, "won_time")
        lost_time = inp.body_time(body, "lost_time")
        close_time = inp.body_time(body, "close_time")
        lost_reason = inp.optional_text(body, "lost_reason")
        # "Can only be set if deal status is won" / "… is lost" / "… is won or lost"
        if won_time is not None and status != "won":
            raise invalid("won_time: can only be set if deal status is won")
        if (lost_time is not None or lost_reason is not None) and status != "lost":
            raise invalid("lost_time/lost_reason: can only be set if deal status is lost")
        if close_time is not None and status == "open":
            raise invalid("close_time: can only be set if deal status is won or lost")
        row["status"] = status
        if status == "open":
            row.update(won_time=None, lost_time=None, close_time=None, lost_reason=None)
        elif status == "won":
            won = won_time or close_time or (row["won_time"] if previous == "won" else now)
            row.update(won_time=won, close_time=won, lost_time=None, lost_reason=None)
        else:
            lost = lost_time or close_time or (row["lost_time"] if previous == "lost" else now)
            reason = lost_reason if "lost_reason" in body else (
                row["lost_reason"] if previous == "lost" else None)
            row.update(lost_time=lost, close_time=lost, won_time=None, lost_reason=reason)

    @staticmethod
    def _deal_archive(row: Row, body: dict[str, Any], creating: bool, now: str) -> None:
        archived = inp.boolean(body, "is_archived")
        if archived is None:
            archived = False if creating else row["is_archived"]
        archive_time = inp.body_time(body, "archive_time")
        if archived:
            # "If omitted and is_archived is true, it will be set to the current date and time."
            row["archive_time"] = archive_time or (row.get("archive_time") or now)
        else:
            row["archive_time"] = None
        row["is_archived"] = archived

    # ---- search -------------------------------------------------------------------------

    def _search(self, name: str, request: Request) -> Response:
        term = (request.arg("term") or "").strip()
        exact = inp.bool_param(request, "exact_match")
        # the spec: term has a "Minimum 2 characters (or 1 if using exact_match)"
        if len(term) < (1 if exact else 2):
            raise invalid("term: must be at least 2 characters (1 with exact_match)")
        fields = set(inp.csv_enum_param(request, "fields", SEARCH_FIELDS[name])
                     or SEARCH_FIELDS[name])
        limit = inp.limit_param(request)
        offset = _search_offset(request.arg("cursor"))
        org_filter = inp.int_param(request, "organization_id")
        person_filter = inp.int_param(request, "person_id") if name == "deals" else None
        status = (inp.enum_param(request, "status", ("open", "won", "lost"), "")
                  if name == "deals" else "")
        needle = term.lower()
        searchable = {k for k, d in self.fields.custom(ENTITY_OF[name]).items()
                      if d["field_type"] in SEARCHABLE_TYPES}
        hits: list[tuple[float, int, Row, list[str]]] = []
        for row in self.tables[name].rows.values():
            if row["is_deleted"]:
                continue
            if name == "deals" and (
                (status and row["status"] != status)
                or (person_filter is not None and row["person_id"] != person_filter)
                or (org_filter is not None and row["org_id"] != org_filter)
            ):
                continue
            if name == "persons" and org_filter is not None and row["org_id"] != org_filter:
                continue
            score, custom_hits = _score(row, name, fields=fields, searchable=searchable,
                                        needle=needle, exact=exact)
            if score > 0:
                hits.append((score, row["id"], row, custom_hits))
        hits.sort(key=lambda h: (-h[0], h[1]))
        page = hits[offset:offset + limit]
        next_cursor = None
        if offset + limit < len(hits):
            next_cursor = base64.urlsafe_b64encode(
                json.dumps({"offset": offset + limit}).encode()).decode().rstrip("=")
        items = [{"result_score": round(score, 4), "item": self._search_item(name, row, found)}
                 for score, _, row, found in page]
        return _ok({"items": items}, {"next_cursor": next_cursor}, listed=True)

    def _search_item(self, name: str, row: Row, custom_hits: list[str]) -> dict[str, Any]:
        owner = {"id": row["owner_id"]}
        if name == "persons":
            org = self.organizations.get(row["org_id"]) if row["org_id"] else None
            return {
                "id": row["id"], "type": "person", "name": row["name"],
                "phones": [p["value"] for p in row["phones"]],
                "emails": [e["value"] for e in row["emails"]],
                "visible_to": row["visible_to"], "owner": owner,
                "organization": {"id": org["id"], "name": org["name"]} if org else None,
                "custom_fields": custom_hits, "notes": [],
            }
        if name == "organizations":
            return {
                "id": row["id"], "type": "organization", "name": row["name"],
                "address": (row["address"] or {}).get("value"),
                "visible_to": row["visible_to"], "owner": owner,
                "custom_fields": custom_hits, "notes": [],
            }
        stage = self.stages.get(row["stage_id"]) or {"id": row["stage_id"], "name": ""}
        person = self.persons.get(row["person_id"]) if row["person_id"] else None
        org = self.organizations.get(row["org_id"]) if row["org_id"] else None
        return {
            "id": row["id"], "type": "deal", "title": row["title"], "value": row["value"],
            "currency": row["currency"], "status": row["status"],
            "visible_to": row["visible_to"], "owner": owner,
            "stage": {"id": stage["id"], "name": stage["name"]},
            "person": {"id": person["id"], "name": person["name"]} if person else None,
            "organization": {"id": org["id"], "name": org["name"]} if org else None,
            "custom_fields": custom_hits, "notes": [], "is_archived": row["is_archived"],
        }

    # ---- v1 field definitions -----------------------------------------------------------

    def _list_fields(self, entity: str, request: Request) -> Response:
        start = inp.int_param(request, "start", minimum=0) or 0
        limit = inp.int_param(request, "limit") or 100
        limit = min(limit, inp.MAX_LIMIT)
        fields = self.fields.fields[entity]
        page = [v1_field(f) for f in fields[start:start + limit]]
        more = start + limit < len(fields)
        pagination: dict[str, Any] = {"start": start, "limit": limit,
                                      "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return _ok(page, {"pagination": pagination})

    def _add_field(self, entity: str, request: Request) -> Response:
        body = inp.json_body(request, ("name", "field_type", "options", "add_visible_flag"))
        definition = self.fields.add_custom(entity, body.get("name", ""),
                                            body.get("field_type", ""),
                                            body.get("options"), now=self.now())
        return _ok(v1_field(definition))

    # ---- seeding ------------------------------------------------------------------------

    def ensure_default_pipeline(self) -> tuple[Row, list[Row]]:
        """The default pipeline and its stages, creating Pipedrive's default one if needed."""
        pipeline = self.default_pipeline()
        if pipeline is not None and self.pipeline_stages(pipeline["id"]):
            return pipeline, self.pipeline_stages(pipeline["id"])
        if pipeline is None:
            pipeline = self.create_pipeline(
                {"name": DEFAULT_PIPELINE, "is_deal_probability_enabled": True})
        for stage_name, probability in DEFAULT_STAGES:
            self.create_stage({"name": stage_name, "pipeline_id": pipeline["id"],
                               "deal_probability": probability})
        return pipeline, self.pipeline_stages(pipeline["id"])

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]:
        """Add a deterministic synthetic account (`synthetic.generate`) to the current one."""
        from crmsync.sandbox.pipedrive_seed import seed_account

        return seed_account(self, contacts=contacts, companies=companies, deals=deals,
                            seed=seed, now=self._clock())


def _search_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("cursor: invalid cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("cursor: invalid cursor")
    return offset


def _match(value: str, needle: str, exact: bool) -> float:
    """Relevance of one field value: 1 for an exact match, else the share it covers."""
    hay = value.lower()
    if hay == needle:
        return 1.0
    if exact or needle not in hay:
        return 0.0
    return len(needle) / len(hay)


def _score(row: Row, name: str, *, fields: set[str], searchable: set[str], needle: str,
           exact: bool) -> tuple[float, list[str]]:
    candidates: list[str] = []
    if "name" in fields and name != "deals":
        candidates.append(row["name"])
    if "title" in fields and name == "deals":
        candidates.append(row["title"])
    if "email" in fields and name == "persons":
        candidates.extend(e["value"] for e in row["emails"])
    if "phone" in fields and name == "persons":
        candidates.extend(p["value"] for p in row["phones"])
    if "address" in fields and name == "organizations" and row["address"]:
        candidates.append(row["address"].get("value", ""))
    if "notes" in fields and name == "persons" and row.get("notes"):
        candidates.append(row["notes"])
    best = max((_match(c, needle, exact) for c in candidates), default=0.0)
    custom_hits: list[str] = []
    if "custom_fields" in fields:
        for key, value in row["custom_fields"].items():
            if key not in searchable:
                continue
            shown = str(value["value"] if isinstance(value, dict) else value)
            score = _match(shown, needle, exact)
            if score > 0:
                custom_hits.append(shown)
                best = max(best, score)
    return best, custom_hits
