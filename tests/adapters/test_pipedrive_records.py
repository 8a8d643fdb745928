"""Pipedrive's removal scans (`/v1/recents`, `/api/v2/deals/archived`) with `responses`: the
requests they make, what they read as a removal, their cursors — and none after a full pass."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
import responses

from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.records import PullCursor
from crmsync.errors import RemoteError

if TYPE_CHECKING:
    from .conftest import FakeTime

BASE = "https://acme.pipedrive.com"
HIGH = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def envelope(data: list[dict[str, Any]], **additional: Any) -> dict[str, Any]:
    return {"success": True, "data": data, "additional_data": additional}


@pytest.fixture
def adapter(fake_time: FakeTime) -> PipedriveAdapter:
    return PipedriveAdapter(BASE, "token-1234567890", sleep=fake_time.sleep,
                            clock=fake_time.clock)


def listed_once() -> None:
    """An increment of persons that finds nothing changed."""
    responses.get(f"{BASE}/api/v2/persons", json=envelope([], next_cursor=None))


@responses.activate
def test_recents_report_deleted_persons_and_page_by_start(adapter: PipedriveAdapter) -> None:
    listed_once()
    first = responses.get(f"{BASE}/api/v1/recents", json=envelope(
        [{"item": "person", "id": 5, "data": {"id": 5, "active_flag": False,
                                              "update_time": "2026-05-01 12:30:00"}},
         {"item": "person", "id": 6, "data": {"id": 6, "active_flag": True}}],
        pagination={"start": 0, "limit": 500, "more_items_in_collection": True}),
        match=[responses.matchers.query_param_matcher(
            {"since_timestamp": "2026-05-01 11:59:00", "items": "person", "start": "0",
             "limit": "500"})])
    second = responses.get(f"{BASE}/api/v1/recents", json=envelope(
        [{"item": "person", "id": 7, "data": None}],
        pagination={"start": 500, "limit": 500, "more_items_in_collection": False}),
        match=[responses.matchers.query_param_matcher(
            {"since_timestamp": "2026-05-01 11:59:00", "items": "person", "start": "500",
             "limit": "500"})])
    # The first scan starts a margin before the first pass did.
    cursor = PullCursor(phase="incremental", high_water=HIGH + dt.timedelta(hours=1),
                        high_water_id="9", pass_started_at=HIGH)
    pages = list(adapter.pull("contacts", cursor, [], scan_removals=True))
    removals = [(r.id, r.reason) for p in pages for r in p.removals]
    assert removals == [("5", "deleted"), ("7", "deleted")]
    assert first.call_count == 1
    assert second.call_count == 1
    assert [p.calls for p in pages] == [1, 1, 1]
    assert pages[1].cursor.phase == "recents"
    assert pages[1].cursor.token == "500"
    assert pages[-1].done
    assert pages[-1].cursor.phase == "incremental"
    # The next scan starts where this one started (not where the records were).
    assert pages[-1].cursor.extra["recents_since"] == pages[1].cursor.extra["recents_started"]


@responses.activate
def test_recents_resume_from_their_page(adapter: PipedriveAdapter) -> None:
    responses.get(f"{BASE}/api/v1/recents", json=envelope(
        [{"item": "person", "id": 8, "data": {"active_flag": False}}],
        pagination={"more_items_in_collection": False}),
        match=[responses.matchers.query_param_matcher(
            {"since_timestamp": "2026-04-01 00:00:00", "items": "person", "start": "500",
             "limit": "500"})])
    cursor = PullCursor(phase="recents", token="500", high_water=HIGH,
                        extra={"recents_since": "2026-04-01 00:00:00",
                               "recents_started": "2026-05-01 12:00:00"})
    pages = list(adapter.pull("contacts", cursor, [], scan_removals=True))
    assert [r.id for p in pages for r in p.removals] == ["8"]
    assert pages[-1].cursor.extra["recents_since"] == "2026-05-01 12:00:00"


@responses.activate
def test_deals_scan_the_archived_listing_not_recents(adapter: PipedriveAdapter) -> None:
    responses.get(f"{BASE}/api/v2/deals", json=envelope([], next_cursor=None))
    archived = responses.get(f"{BASE}/api/v2/deals/archived", json=envelope(
        [{"id": 4, "update_time": "2026-05-01T12:00:09Z", "archive_time": "2026-05-01T12:00:09Z"}],
        next_cursor=None))
    cursor = PullCursor(phase="incremental", high_water=HIGH,
                        extra={"archived_since": "2026-05-01T11:00:00Z"})
    pages = list(adapter.pull("deals", cursor, [], scan_removals=True))
    # Deleted deals come with the listing; archived ones from their own: 2 calls.
    assert sum(p.calls for p in pages) == 2
    assert [(r.id, r.reason) for p in pages for r in p.removals] == [("4", "archived")]
    assert archived.calls[0].request.params["updated_since"] == "2026-05-01T11:00:00Z"
    assert pages[-1].cursor.extra["archived_since"] == "2026-05-01T12:00:09Z"


@responses.activate
def test_a_cursor_returned_twice_raises(adapter: PipedriveAdapter) -> None:
    person = {"id": 1, "name": "A B", "update_time": "2026-05-01T12:00:00Z",
              "custom_fields": {}}
    responses.get(f"{BASE}/api/v1/personFields", json=envelope([]))
    responses.get(f"{BASE}/api/v2/persons", json=envelope([person], next_cursor="abc"))
    with pytest.raises(RemoteError, match="second time"):
        list(adapter.pull("contacts", None, []))


@responses.activate
def test_a_full_pass_makes_no_removal_scan_even_when_asked(adapter: PipedriveAdapter) -> None:
    listing = responses.get(f"{BASE}/api/v2/persons", json=envelope([], next_cursor=None))
    # No other URL is registered: a scan request would fail the pull (ConnectionError).
    pages = list(adapter.pull("contacts", None, [], scan_removals=True))
    assert listing.call_count == 1
    assert [p.calls for p in pages] == [1]
    assert pages[-1].done
    assert pages[-1].cursor.phase == "incremental"


@responses.activate
def test_the_first_archived_scan_starts_a_margin_before_the_first_pass(
        adapter: PipedriveAdapter) -> None:
    responses.get(f"{BASE}/api/v2/deals", json=envelope([], next_cursor=None))
    url = f"{BASE}/api/v2/deals/archived"
    # `responses` answers with these in turn: two pages.
    responses.get(url, json=envelope([{"id": 4, "update_time": "2026-05-01T12:00:09Z"}],
                                     next_cursor="next-page"))
    responses.get(url, json=envelope([], next_cursor=None))
    cursor = PullCursor(phase="incremental", high_water=HIGH, pass_started_at=HIGH)
    pages = list(adapter.pull("deals", cursor, [], scan_removals=True))
    sent = [c.request.params for c in responses.calls if c.request.url.startswith(url)]
    assert [p.get("updated_since") for p in sent] == ["2026-05-01T11:59:00Z"] * 2
    assert sent[1]["cursor"] == "next-page"
    assert [(r.id, r.reason) for p in pages for r in p.removals] == [("4", "archived")]
    assert pages[-1].cursor.extra["archived_since"] == "2026-05-01T12:00:09Z"
    assert "archived_query_since" not in pages[-1].cursor.extra

    # Resumed from the first page, the token is sent with the query it came from.
    assert pages[1].cursor.phase == "archived"
    responses.calls.reset()
    again = list(adapter.pull("deals", pages[1].cursor, [], scan_removals=True))
    [resumed] = [c.request.params for c in responses.calls]
    assert resumed["updated_since"] == "2026-05-01T11:59:00Z"
    assert resumed["cursor"] == "next-page"
    assert again[-1].cursor.extra["archived_since"] == "2026-05-01T12:00:09Z"
