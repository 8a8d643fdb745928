"""HubSpot's first load read in slices of the id space, concurrently, against the sandbox.

What a partitioned pull returns is compared with the sandbox account's own state, record by
record; a pull stopped after any page and resumed from that page's cursor (what the engine
would have committed) must bring the rest exactly: nothing lost, nothing twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.adapters.hubspot import HubSpotAdapter
from crmsync.adapters.hubspot_records import split_ids
from crmsync.adapters.records import Partition, PullCursor, RecordPage, interleave

from .record_sandbox import LAG, TOKEN, Sandbox, truth
from .sandbox_helpers import reset_stats, stats

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.names import ObjectType

    from .conftest import FakeTime


@pytest.fixture
def sliced(box: Sandbox, fake_time: FakeTime) -> Iterator[HubSpotAdapter]:
    """A HubSpot adapter with 4 requests in flight and slices of at least 150 records."""
    made = HubSpotAdapter(box.url, TOKEN, timeout=10, max_retries=8, sleep=fake_time.sleep,
                          clock=fake_time.clock)
    made.records_clock = box.clock
    made.concurrency = 4
    made.partition_min_records = 150
    yield made
    made.close()


def seen(pages: list[RecordPage], object_type: ObjectType) -> dict[str, dict[str, Any]]:
    field = {"contacts": "email", "companies": "name", "deals": "name"}[object_type]
    return {r.id: {"key": r.fields[field],
                   "links": {(a.to_type, a.to_id, a.primary) for a in r.associations or ()}}
            for page in pages for r in page.records}


def ids(pages: list[RecordPage]) -> list[str]:
    return [r.id for page in pages for r in page.records]


# --- pure parts ---------------------------------------------------------------------------------

def test_split_ids_covers_the_range_in_contiguous_slices_the_last_open() -> None:
    parts = split_ids(1001, 2000, 4)
    assert parts == [Partition("1001", "1251"), Partition("1251", "1501"),
                     Partition("1501", "1751"), Partition("1751", None)]
    assert split_ids(5, 7, 10) == [Partition("5", "6"), Partition("6", "7"),
                                   Partition("7", None)]  # no slice without an id
    assert split_ids(9, 3, 4) == [Partition("9", None)]  # nothing above: one open slice


def test_cursor_json_keeps_partitions_and_reads_cursors_written_without_them() -> None:
    cursor = PullCursor(phase="full", token="10", partitions=(
        Partition("10", "500"), Partition("700", None)), extra={"full_by": "list"})
    assert PullCursor.from_json(cursor.to_json()) == cursor
    old = {"phase": "full", "token": "1201", "high_water": None, "high_water_id": None,
           "pass_started_at": "2026-01-01T00:00:00+00:00", "extra": {"full_by": "list"}}
    assert PullCursor.from_json(old).partitions == ()
    assert "partitions" not in PullCursor(phase="incremental").to_json()


def test_interleave_yields_every_item_once_each_source_in_order() -> None:
    sources = [lambda n=n: iter(range(n * 100, n * 100 + 50)) for n in range(5)]
    got = list(interleave(sources, 3))
    assert sorted(item for _, item in got) == sorted(
        i for n in range(5) for i in range(n * 100, n * 100 + 50))
    for n in range(5):
        assert [item for index, item in got if index == n] == list(range(n * 100,
                                                                          n * 100 + 50))


def test_interleave_raises_a_sources_error_and_stops_the_others() -> None:
    pulled: Counter[int] = Counter()

    def endless(index: int) -> Iterator[int]:
        while True:
            pulled[index] += 1
            yield index

    def failing() -> Iterator[int]:
        yield -1
        raise ValueError("boom")

    items = interleave([lambda: endless(0), failing, lambda: endless(2)], 3, buffer=2)
    with pytest.raises(ValueError, match="boom"):
        for _ in items:
            pass
    # The endless readers were stopped and joined before the error reached us.
    assert not [t for t in threading.enumerate() if t.name.startswith("crmsync-read")]
    assert pulled[0] < 1000
    assert pulled[2] < 1000


def test_closing_interleave_early_stops_its_readers() -> None:
    items = interleave([lambda: iter(range(10**9)), lambda: iter(range(10**9))], 2)
    assert next(items)[1] == 0
    items.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("crmsync-read")]


# --- against the sandbox ------------------------------------------------------------------------

@pytest.mark.parametrize("object_type", ["contacts", "deals"])
def test_partitioned_full_pull_returns_every_record_once(
        sliced: HubSpotAdapter, box: Sandbox, object_type: ObjectType) -> None:
    box.seed("hubspot", contacts=1500, companies=300, deals=1200)
    reset_stats(box.url)
    pages = list(sliced.pull(object_type, None, []))

    got = ids(pages)
    assert len(got) == len(set(got))
    assert seen(pages, object_type) == truth(box, "hubspot", object_type)
    assert max(len(p.cursor.partitions) for p in pages) > 1  # it was read in slices
    assert pages[-1].done
    assert pages[-1].cursor.phase == "incremental"
    assert not any(p.done or p.cursor.phase != "full" for p in pages[:-1])
    # The pages account for every request; slicing costs at most a page per slice and the
    # one search that sized them (deals: + 1 for the pipelines, read once for all threads).
    calls = sum(p.calls for p in pages)
    assert calls == stats(box.url)["by_crm"]["hubspot"]
    full_pages = -(-len(got) // 100)
    slices = max(len(p.cursor.partitions) for p in pages)
    extra = 1 if object_type == "deals" else 0
    assert full_pages + 1 + extra <= calls <= full_pages + 1 + extra + slices


@pytest.mark.parametrize("stop_after", [1, 2, 5, 9, 14])
def test_partitioned_pull_stopped_after_any_page_resumes_with_the_rest_exactly(
        sliced: HubSpotAdapter, box: Sandbox, stop_after: int) -> None:
    box.seed("hubspot", contacts=1600, companies=100)
    pulling = sliced.pull("contacts", None, [])
    before = [next(pulling) for _ in range(stop_after)]
    pulling.close()  # what a killed run leaves: the pages up to here committed, no more
    committed = PullCursor.from_json(before[-1].cursor.to_json())

    after = list(sliced.pull("contacts", committed, []))

    both = ids(before) + ids(after)
    assert len(both) == len(set(both)), "a record came twice"
    assert seen(before + after, "contacts") == truth(box, "hubspot", "contacts")
    assert after[-1].cursor.phase == "incremental"


def test_a_token_that_is_not_an_id_is_followed_one_page_after_another(
        sliced: HubSpotAdapter, box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """HubSpot documents `after` as opaque: a token that is not a plain integer cannot be
    cut into slices, so the pass reads one page after another and never sizes slices."""
    box.seed("hubspot", contacts=900)
    real = sliced._records_request
    searches: list[str] = []

    def opaque_tokens(method: str, path: str, **kwargs: Any) -> Any:
        if kwargs.get("bucket") == "search":
            searches.append(path)
        params = kwargs.get("params")
        if params and str(params.get("after", "")).startswith("opaque-"):
            kwargs["params"] = dict(params, after=params["after"].removeprefix("opaque-"))
        body, calls = real(method, path, **kwargs)
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        if following:
            body["paging"]["next"]["after"] = f"opaque-{following}"
        return body, calls

    monkeypatch.setattr(sliced, "_records_request", opaque_tokens)
    pages = list(sliced.pull("contacts", None, []))

    assert searches == []
    assert not any(p.cursor.partitions for p in pages)
    assert ids(pages) == sorted(ids(pages), key=int)  # in id order: one sequence
    assert seen(pages, "contacts") == truth(box, "hubspot", "contacts")
    assert sum(p.calls for p in pages) == 9


def test_a_small_account_is_not_sliced(sliced: HubSpotAdapter, box: Sandbox) -> None:
    box.seed("hubspot", contacts=250)
    sliced.partition_min_records = 1000
    reset_stats(box.url)
    pages = list(sliced.pull("contacts", None, []))
    assert not any(p.cursor.partitions for p in pages)
    assert seen(pages, "contacts") == truth(box, "hubspot", "contacts")
    assert stats(box.url)["by_crm"]["hubspot"] == 3 + 1  # three pages and the sizing search


def test_records_created_during_a_sliced_pass_come_with_it_or_the_next_increment(
        sliced: HubSpotAdapter, box: Sandbox) -> None:
    """The slices were sized by the highest id at the start; records created afterwards get
    higher ids. The last slice has no end, and the increment after the pass starts from the
    pass's start (less the overlap): each new record comes, once."""
    box.seed("hubspot", contacts=1200)
    pulling = sliced.pull("contacts", None, [])
    pages = [next(pulling) for _ in range(3)]  # the pass is under way, in slices
    assert pages[-1].cursor.partitions
    made = box.hubspot("POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [
        {"properties": {"firstname": "New", "email": f"new{i}@example.com"}}
        for i in range(5)]})
    new = {str(r["id"]) for r in made["results"]}
    pages += list(pulling)
    box.clock.advance(LAG)  # past the search index's lag
    increment = list(sliced.pull("contacts", pages[-1].cursor, []))

    full_ids = ids(pages)
    assert len(full_ids) == len(set(full_ids))
    assert new <= set(full_ids) | set(ids(increment))
    assert set(full_ids) | set(ids(increment)) == set(truth(box, "hubspot", "contacts"))
