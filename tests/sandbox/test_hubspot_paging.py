"""Paging walks every record exactly once; the search API's 10,000-result cap answers 400."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hubspot.crm.contacts import BatchInputSimplePublicObjectId, PublicObjectSearchRequest

if TYPE_CHECKING:
    from collections.abc import Callable


def _walk_list(hs: Any, limit: int = 100) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = hs.crm.contacts.basic_api.get_page(limit=limit, after=after,
                                                  properties=["email"])
        seen.extend(r.id for r in page.results)
        if page.paging is None:
            return seen
        after = page.paging.next.after


@pytest.mark.parametrize("size", [0, 1, 100, 101, 10_001])
def test_list_paging_walks_every_record_once(hs: Any, seed_sandbox: Callable[..., Any],
                                             size: int) -> None:
    if size:
        seed_sandbox(contacts=size)
    seen = _walk_list(hs)
    assert len(seen) == size
    assert len(set(seen)) == size
    assert seen == sorted(seen, key=int)


def test_list_paging_skips_archived_and_archived_lists_them(hs: Any,
                                                            seed_sandbox: Callable[..., Any]
                                                            ) -> None:
    seed_sandbox(contacts=250)
    ids = _walk_list(hs)
    gone = ids[5:205:2]
    hs.crm.contacts.batch_api.archive(BatchInputSimplePublicObjectId(
        inputs=[{"id": i} for i in gone]))
    assert sorted(_walk_list(hs), key=int) == [i for i in ids if i not in set(gone)]
    archived = hs.crm.contacts.basic_api.get_page(archived=True, limit=100)
    assert len(archived.results) == 100
    assert all(r.archived for r in archived.results)


def test_list_limit_above_100_is_refused(hs: Any) -> None:
    with pytest.raises(Exception) as err:  # noqa: PT011 - the SDK's ApiException
        hs.crm.contacts.basic_api.get_page(limit=101)
    assert getattr(err.value, "status", None) == 400


@pytest.mark.parametrize("size", [0, 1, 200, 201])
def test_search_paging_walks_every_record_once(hs: Any, seed_sandbox: Callable[..., Any],
                                               size: int) -> None:
    if size:
        seed_sandbox(companies=size)
    seen: list[str] = []
    after = None
    while True:
        page = hs.crm.companies.search_api.do_search(
            {"limit": 200, "after": after,
             "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]})
        assert page.total == size
        seen.extend(r.id for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert sorted(seen, key=int) == seen
    assert len(set(seen)) == size


def test_search_cannot_page_past_10000(hs: Any, seed_sandbox: Callable[..., Any]) -> None:
    seed_sandbox(contacts=10_001)
    walked = 0
    after: str | None = None
    for _ in range(50):
        page = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
            limit=200, after=after, properties=["email"]))
        assert page.total == 10_001
        walked += len(page.results)
        after = page.paging.next.after
    assert walked == 10_000
    assert after == "10000"  # HubSpot still offers the next page …
    with pytest.raises(Exception) as err:  # noqa: PT011 - the SDK's ApiException
        hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=200, after=after))
    assert getattr(err.value, "status", None) == 400  # … and refuses it
    assert "10000" in err.value.body
