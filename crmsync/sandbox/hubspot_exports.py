"""HubSpot's CRM Exports API v3: export an object view as CSV, asynchronously.

Source: HubSpot/HubSpot-public-api-spec-collection, CRM "Exports" v3, and the SDK's
`hubspot.crm.exports` models (`PublicExportViewRequest`, `TaskLocator`,
`ActionResponseWithSingleResultURI`):

- `POST /crm/v3/exports/export/async` with a `PublicExportViewRequest` (`exportType` VIEW,
  `format`, `exportName`, `objectType`, `objectProperties`, `language`,
  `exportInternalValuesOptions` NAMES/VALUES, optional `associatedObjectType` and
  `publicCrmSearchRequest` filter) → 202 `TaskLocator` `{id, links: {status}}`. Needs the
  `crm.export` scope: without it, HubSpot's 403 `MISSING_SCOPES`. `associatedObjectType` is
  an array of types in the current spec and one string in SDK 12's model: both are taken.
- `GET /crm/v3/exports/export/{exportId}` → `PublicExportResponse` (`exportState`,
  `recordCount`, …).
- `GET /crm/v3/exports/export/async/tasks/{taskId}/status` → `{status: PENDING | PROCESSING |
  COMPLETE | CANCELED, requestedAt, startedAt, completedAt, links, result?}`; `result` (when
  COMPLETE) is the download URL.
- The file: CSV; above one million rows a zip of CSV partitions (developer changelog
  2025-04-28).

Sandbox decisions (unconfirmed upstream, easy to change):
- the rows are the records as they were when the export was requested; processing takes
  `hubspot_export_base_seconds` plus `hubspot_export_seconds_per_1000` per 1,000 rows on the
  sandbox clock (PENDING for its first second); the partition size is
  `hubspot_export_partition_rows`; tokens in `hubspot_export_denied_tokens` lack the scope;
- the model types `completedAt` as required, so a running task reports its expected end;
- the result URL is served by the sandbox at `…/tasks/{taskId}/download`, valid for five
  minutes after the status call that gave it (live links expire too: poll again for a new
  one); the file stays available while the account lives;
- columns: `hs_object_id` then the requested properties, by internal name with
  `exportInternalValuesOptions` NAMES (labels otherwise), values as stored (VALUES); per
  associated type, `Associated {Type} IDs` (";"-separated) and, for the primary company of
  a contact or deal, `Associated Company IDs (Primary)`; only CSV is emulated.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_model import SINGULAR, TYPE_ALIASES, HubSpotError, iso
from crmsync.sandbox.hubspot_search import compile_filter_groups

if TYPE_CHECKING:
    from crmsync.sandbox.http import Router

START_PATH = "/crm/v3/exports/export/async"
STATUS_PATH = START_PATH + "/tasks/{taskId}/status"
DOWNLOAD_PATH = START_PATH + "/tasks/{taskId}/download"
LINK_SECONDS = 300  # how long a result URL stays valid
PENDING_SECONDS = 1.0  # queued before processing starts
LANGUAGES = frozenset({
    "AF_ZA", "AR_EG", "BG", "BN", "CA_ES", "CS", "DA_DK", "DE", "EL_GR", "EN", "EN_GB", "ES",
    "ES_MX", "ET_EE", "FI", "FR", "FR_CA", "HE_IL", "HI_IN", "HR", "HU", "ID", "IT", "JA",
    "KO_KR", "LT_LT", "MS", "NL", "NO", "PL", "PT_BR", "PT_PT", "RO", "RU", "SK_SK", "SL", "SV",
    "TH", "TL", "TR", "UK", "VI_VN", "ZH_CN", "ZH_HK", "ZH_TW"})
FORMATS = frozenset({"XLS", "XLSX", "CSV"})
PRIMARY_COMPANY = {"contacts": 1, "deals": 5}  # contact→company / deal→company primary ids
SCOPE = "crm.export"


@dataclass
class ExportJob:
    id: str
    object_type: str
    properties: list[str]
    requested_ms: int
    done_ms: int
    rows: int
    data: bytes
    zipped: bool
    name: str


def _jobs(account: Any) -> dict[str, ExportJob]:
    jobs: dict[str, ExportJob] | None = getattr(account, "_exports", None)
    if jobs is None:
        jobs = account._exports = {}
    return jobs


def _origin(request: Request) -> str:
    return "http://" + request.headers.get("host", "127.0.0.1")


def _missing_scope(account: Any) -> Response:
    # HubSpot's 403 for a token without a required scope (developers.hubspot.com/scopes).
    return account.error(
        403, "This app hasn't been granted all required scopes to make this call. Read more "
        "about required scopes here: https://developers.hubspot.com/scopes.",
        category="MISSING_SCOPES",
        errors=[{"message": "One or more of the following scopes are required.",
                 "context": {"requiredGranularScopes": [SCOPE]}}],
        links={"scopes": "https://developers.hubspot.com/scopes"})


def start_export(account: Any, request: Request) -> Response:
    """`POST /crm/v3/exports/export/async` (PublicExportViewRequest → TaskLocator)."""
    config = account.config()
    if account.token_of(request) in config.hubspot_export_denied_tokens:
        return _missing_scope(account)
    try:
        body = account._body(request)
        object_type, properties, assocs, groups, names = _validate(body)
        rows, data, zipped = _render(account, object_type, properties, assocs, groups=groups,
                                     names=names, export_name=str(body["exportName"]),
                                     partition_rows=config.hubspot_export_partition_rows)
    except HubSpotError as exc:
        return account.error(exc.status, exc.message, category=exc.category)
    jobs = _jobs(account)
    task_id = str(5_000_001 + len(jobs))
    now = account.now_ms()
    seconds = (config.hubspot_export_base_seconds
               + config.hubspot_export_seconds_per_1000 * rows / 1000)
    done = now + int((PENDING_SECONDS + seconds) * 1000)
    jobs[task_id] = ExportJob(task_id, object_type, properties, now, done, rows, data, zipped,
                              str(body["exportName"]))
    status = _origin(request) + STATUS_PATH.format(taskId=task_id)
    return Response(202, {"id": task_id, "links": {"status": status}})


def _validate(body: dict[str, Any]) -> tuple[str, list[str], list[str], Any, bool]:
    def bad(message: str) -> HubSpotError:
        return HubSpotError(400, message)

    if body.get("exportType") != "VIEW":
        raise bad("exportType must be VIEW (LIST exports are not emulated)")
    if body.get("format") not in FORMATS:
        raise bad(f"format must be one of {', '.join(sorted(FORMATS))}")
    if body.get("format") != "CSV":
        raise bad("the sandbox emulates CSV exports only")
    for required in ("exportName", "objectType", "objectProperties", "language"):
        if body.get(required) in (None, "", []):
            raise bad(f"{required} is required")
    if body["language"] not in LANGUAGES:
        raise bad(f"language must be one of {', '.join(sorted(LANGUAGES))}")
    object_type = TYPE_ALIASES.get(str(body["objectType"]).lower())
    if object_type is None:
        raise HubSpotError(400, f"Unable to infer object type from: {body['objectType']}")
    properties = body["objectProperties"]
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise bad("objectProperties must be a list of property names")
    options = body.get("exportInternalValuesOptions") or []
    if not isinstance(options, list) or not set(options) <= {"NAMES", "VALUES"}:
        raise bad("exportInternalValuesOptions must hold NAMES and/or VALUES")
    assoc_raw = body.get("associatedObjectType") or []
    assocs: list[str] = []
    for name in [assoc_raw] if isinstance(assoc_raw, str) else assoc_raw:
        found = TYPE_ALIASES.get(str(name).lower())
        if found is None:
            raise bad(f"Unable to infer object type from: {name}")
        assocs.append(found)
    search = body.get("publicCrmSearchRequest") or {}
    groups = search.get("filterGroups") or ([{"filters": search["filters"]}]
                                            if search.get("filters") else [])
    return object_type, properties, list(dict.fromkeys(assocs)), groups, "NAMES" in options


def _render(account: Any, object_type: str, properties: list[str], assocs: list[str], *,
            groups: Any, names: bool, export_name: str,
            partition_rows: int) -> tuple[int, bytes, bool]:
    """Every matching live record as CSV rows; a zip of partitions above `partition_rows`."""
    known = account._definitions(object_type)  # deals: with the calculated stage dates
    wanted = [p for p in dict.fromkeys(properties) if p in known and p != "hs_object_id"]
    matcher = compile_filter_groups(groups, account.catalog.kinds(object_type)) if groups else None
    header = ["hs_object_id" if names else "Record ID"]
    header += [p if names else str(known[p].get("label") or p) for p in wanted]
    primary_type = PRIMARY_COMPANY.get(object_type)
    for assoc in assocs:
        label = SINGULAR[assoc].capitalize()
        header.append(f"Associated {label} IDs")
        if assoc == "companies" and primary_type is not None:
            header.append(f"Associated {label} IDs (Primary)")
    partitions: list[bytes] = []
    text, writer = _sheet(header)
    rows = in_part = 0
    for record in account.objects[object_type].iter_from(0, False):
        if matcher is not None and not matcher(record.props):
            continue
        row = [str(record.id), *(record.props.get(p) or "" for p in wanted)]
        for assoc in assocs:
            targets = sorted(account._targets(object_type, record.id, assoc))
            row.append(";".join(str(to_id) for to_id, _ in targets))
            if assoc == "companies" and primary_type is not None:
                row.append(";".join(str(to_id) for to_id, types in targets
                                    if primary_type in types))
        if in_part == partition_rows:
            partitions.append(text.getvalue().encode())
            text, writer = _sheet(header)
            in_part = 0
        writer.writerow(row)
        rows += 1
        in_part += 1
    partitions.append(text.getvalue().encode())
    if len(partitions) == 1:
        return rows, partitions[0], False
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for number, part in enumerate(partitions, start=1):
            archive.writestr(f"{export_name}-{number}.csv", part)
    return rows, out.getvalue(), True


def _sheet(header: list[str]) -> tuple[io.StringIO, Any]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header)
    return text, writer


def _job(account: Any, request: Request) -> ExportJob:
    job = _jobs(account).get(request.path_params["taskId"])
    if job is None:
        raise HubSpotError(404, f"No export task with id {request.path_params['taskId']}")
    return job


def export_status(account: Any, request: Request) -> Response:
    """`GET …/tasks/{taskId}/status` (ActionResponseWithSingleResultURI)."""
    try:
        job = _job(account, request)
    except HubSpotError as exc:
        return account.error(exc.status, exc.message)
    now = int(account.clock() * 1000)
    started = job.requested_ms + int(PENDING_SECONDS * 1000)
    status = ("PENDING" if now < started else "PROCESSING" if now < job.done_ms
              else "COMPLETE")
    body: dict[str, Any] = {
        "status": status, "requestedAt": iso(job.requested_ms),
        "startedAt": iso(min(started, max(now, job.requested_ms))),
        "completedAt": iso(job.done_ms),
        "links": {"self": _origin(request) + STATUS_PATH.format(taskId=job.id)},
    }
    if status == "COMPLETE":
        expires = now + LINK_SECONDS * 1000
        body["result"] = (f"{_origin(request)}{DOWNLOAD_PATH.format(taskId=job.id)}"
                          f"?expires={expires}&signature={uuid.uuid4().hex}")
        body["numErrors"] = 0
    return Response(200, body)


def download_export(account: Any, request: Request) -> Response:
    """The file a COMPLETE status links to: CSV, or a zip of CSV partitions."""
    try:
        job = _job(account, request)
    except HubSpotError as exc:
        return account.error(exc.status, exc.message)
    now = int(account.clock() * 1000)
    if now < job.done_ms:
        return account.error(404, f"Export {job.id} is not complete yet")
    try:
        expires = int(request.arg("expires") or 0)
    except ValueError:
        expires = 0
    if expires < now:
        return account.error(403, "This download link has expired: request the task status "
                             "again for a new one", category="FORBIDDEN")
    kind, suffix = ("application/zip", "zip") if job.zipped else ("text/csv", "csv")
    return Response(200, job.data, {
        "Content-Type": kind,
        "Content-Disposition": f'attachment; filename="{job.name}.{suffix}"'})


def get_export(account: Any, request: Request) -> Response:
    """`GET /crm/v3/exports/export/{exportId}` (PublicExportResponse)."""
    job = _jobs(account).get(request.path_params["exportId"])
    if job is None:
        return account.error(404, f"No export with id {request.path_params['exportId']}")
    done = int(account.clock() * 1000) >= job.done_ms
    return Response(200, {
        "id": job.id, "exportName": job.name, "exportType": "VIEW",
        "exportState": "DONE" if done else "PROCESSING", "objectType": job.object_type,
        "objectProperties": job.properties, "recordCount": job.rows,
        "createdAt": iso(job.requested_ms), "updatedAt": iso(job.done_ms if done
                                                             else job.requested_ms)})


def register_exports(router: Router) -> None:
    router.add("POST", START_PATH, start_export, crm="hubspot")
    router.add("GET", "/crm/v3/exports/export/{exportId}", get_export, crm="hubspot")
    router.add("GET", STATUS_PATH, export_status, crm="hubspot")
    router.add("GET", DOWNLOAD_PATH, download_export, crm="hubspot")
