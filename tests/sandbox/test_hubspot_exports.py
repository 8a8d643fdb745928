"""Conformance of the sandbox's Exports API v3 through the official SDK (`hubspot.crm.exports`).

The SDK's models are generated from HubSpot's published spec: every answer must deserialize
into them (required fields, enums). The file itself is checked with the standard library.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import TYPE_CHECKING, Any

import hubspot
import pytest
import requests
from hubspot.crm.exports import ApiException, PublicExportViewRequest
from hubspot.crm.exports.models import Filter, PublicCrmSearchRequest

from crmsync.sandbox import ManualClock, start_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.sandbox import SandboxServer

TOKEN = "exports-conformance-token"
DENIED = "exports-no-scope-token"


@pytest.fixture
def box() -> Iterator[tuple[SandboxServer, ManualClock]]:
    clock = ManualClock()
    server = start_sandbox(clock=clock, config={
        "hubspot_export_partition_rows": 50, "hubspot_export_base_seconds": 10,
        "hubspot_export_seconds_per_1000": 1000, "hubspot_export_denied_tokens": [DENIED]})
    server.app.seed("hubspot", token=TOKEN, contacts=120, companies=10, deals=0, seed=7)
    try:
        yield server, clock
    finally:
        server.stop()


def exports_api(server: SandboxServer, token: str = TOKEN) -> Any:
    client = hubspot.Client.create(access_token=token, host=server.base_url, retry=False)
    return client.crm.exports.public_exports_api


def view_request(**extra: Any) -> PublicExportViewRequest:
    values: dict[str, Any] = {
        "export_type": "VIEW", "format": "CSV", "export_name": "contacts-all",
        "object_type": "contacts", "object_properties": ["email", "firstname"],
        "language": "EN", "export_internal_values_options": ["NAMES", "VALUES"],
        "override_associated_objects_per_definition_per_row_limit": True,
        "associated_object_type": "companies", **extra}
    return PublicExportViewRequest(**values)


def download(url: str) -> bytes:
    # The sandbox serves the file on its own (CRM) origin, behind the account's token.
    response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    response.raise_for_status()
    return response.content


def test_an_export_goes_pending_processing_complete_with_a_result_url(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    api = exports_api(server)
    task = api.start(public_export_request=view_request())
    assert task.id
    status = api.get_status(task_id=task.id)
    assert status.status == "PENDING"
    assert status.result is None
    clock.advance(2)
    assert api.get_status(task_id=task.id).status == "PROCESSING"
    # 120 rows at 1,000 s per 1,000 rows, plus 10 s: processing time grows with rows
    clock.advance(125)
    assert api.get_status(task_id=task.id).status == "PROCESSING"
    clock.advance(10)
    done = api.get_status(task_id=task.id)
    assert done.status == "COMPLETE"
    assert done.completed_at >= done.started_at >= done.requested_at
    assert done.result.startswith(server.base_url)


def test_above_the_partition_size_the_file_is_a_zip_of_csv_partitions(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    api = exports_api(server)
    task = api.start(public_export_request=view_request())
    clock.advance(1_000)
    data = download(api.get_status(task_id=task.id).result)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = [list(csv.reader(io.TextIOWrapper(archive.open(info), "utf-8")))
                 for info in archive.infolist()]
    assert [len(p) - 1 for p in parts] == [50, 50, 20]  # 120 live contacts, 50 a partition
    header = parts[0][0]
    assert header[:3] == ["hs_object_id", "email", "firstname"]
    assert "Associated Company IDs" in header
    assert "Associated Company IDs (Primary)" in header
    account = server.app.account("hubspot", TOKEN)
    live = {str(r.id) for r in account.objects["contacts"].records.values() if not r.archived}
    assert {row[0] for p in parts for row in p[1:]} == live


def test_a_search_filter_narrows_the_export_to_one_csv(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    account = server.app.account("hubspot", TOKEN)
    first = min(r.id for r in account.objects["contacts"].records.values() if not r.archived)
    api = exports_api(server)
    search = PublicCrmSearchRequest(filters=[Filter(property_name="hs_object_id",
                                                    operator="EQ", value=str(first))])
    task = api.start(public_export_request=view_request(public_crm_search_request=search))
    clock.advance(1_000)
    rows = list(csv.reader(io.StringIO(download(
        api.get_status(task_id=task.id).result).decode())))
    assert [row[0] for row in rows[1:]] == [str(first)]


def test_a_token_without_the_crm_export_scope_gets_hubspots_403(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, _ = box
    with pytest.raises(ApiException) as refused:
        exports_api(server, DENIED).start(public_export_request=view_request())
    assert refused.value.status == 403
    assert '"category":"MISSING_SCOPES"' in refused.value.body
    assert "crm.export" in refused.value.body


def test_an_expired_result_link_is_refused_and_a_new_status_gives_a_fresh_one(
        box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    api = exports_api(server)
    task = api.start(public_export_request=view_request())
    clock.advance(1_000)
    old = api.get_status(task_id=task.id).result
    clock.advance(301)
    assert requests.get(old, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30).status_code == 403
    assert download(api.get_status(task_id=task.id).result)[:2] == b"PK"


def test_an_unknown_task_is_404(box: tuple[SandboxServer, ManualClock]) -> None:
    server, _ = box
    with pytest.raises(ApiException) as missing:
        exports_api(server).get_status(task_id="999")
    assert missing.value.status == 404


def test_export_details_by_id(box: tuple[SandboxServer, ManualClock]) -> None:
    server, clock = box
    task = exports_api(server).start(public_export_request=view_request())
    url = f"{server.base_url}/crm/v3/exports/export/{task.id}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(url, headers=headers, timeout=30).json()["exportState"] == "PROCESSING"
    clock.advance(1_000)
    details = requests.get(url, headers=headers, timeout=30).json()
    assert details["exportState"] == "DONE"
    assert details["recordCount"] == 120
