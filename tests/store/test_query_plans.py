"""Every query a page commit makes finds its rows through an index on what it looks for: a
query that reads a whole table (or every live record of the client) once per page makes a
million-record load quadratic. Checked on SQLite's plans, whose planner has no statistics
to rescue a poor choice."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event

from crmsync.adapters.records import Association, RecordPage, RemoteRecord
from crmsync.store import open_store
from crmsync.sync.mapping import MappingRules, pack_page, prepare_page
from crmsync.sync.reconcile import resolver

if TYPE_CHECKING:
    from pathlib import Path

    from crmsync.store import Store

RULES = MappingRules()
WHEN = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
RECORD_TABLES = ("contacts", "companies", "deals", "record_links", "associations")


def _page(first: int, count: int) -> RecordPage:
    return RecordPage("contacts", tuple(
        RemoteRecord("contacts", str(n), WHEN, {"email": f"p{n}@example.com"},
                     {"jobtitle": "CEO"},
                     associations=(Association("companies", f"c{n % 7}", True),))
        for n in range(first, first + count)), (), cursor=None)  # type: ignore[arg-type]


def _plans(store: Store, commit: Any) -> list[tuple[str, str]]:
    """(statement, plan step) of every SELECT `commit` runs."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        commit()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    steps: list[tuple[str, str]] = []
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters):
                steps.append((statement, row[-1]))
    return steps


@pytest.mark.parametrize("two_way", [True, False], ids=["two-way", "pull-only"])
def test_a_page_commit_never_reads_a_whole_table(tmp_path: Path, two_way: bool) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    records = store.records("acme")
    resolve = resolver("contacts", RULES, "remote_wins") if two_way else None
    records.commit_page("hubspot", "contacts", pack_page(RULES, _page(0, 300)).rows, [],
                        {"phase": "full"}, resolve=resolve)
    local_id = store.local("acme").create("contacts", {"email": "new@example.com"})
    outcomes: list[Any] = []

    def commit() -> None:
        # A page of new records (one of them the local record) and records read again.
        page = _page(250, 300)
        again = RecordPage("contacts", (*page.records, RemoteRecord(
            "contacts", "9999", WHEN, {"email": "new@example.com"}, {})), (), cursor=None)
        outcomes.append(records.commit_page(
            "hubspot", "contacts", prepare_page(RULES, again).rows, [], {"phase": "full"},
            resolve=resolve))

    steps = _plans(store, commit)
    assert steps, "the commit ran no SELECT: the check saw nothing"
    for statement, step in steps:
        whole = step.startswith("SCAN ") and step.split()[1] in RECORD_TABLES
        by_client = any(f"INDEX ix_{t}_client (client=? AND deleted_at=?)" in step
                        and "rowid=?" not in step for t in RECORD_TABLES)
        assert not whole, f"{step}\n  in {statement}"
        assert not by_client, f"{step}\n  in {statement}"
    # The lookups still find what they look for.
    (outcome,) = outcomes
    assert (outcome.created, outcome.updated, outcome.unchanged) == (
        (250, 1, 50) if two_way else (251, 0, 50))
    assert outcome.linked == int(two_way)
    assert (records.remote_ids("hubspot", "contacts")["9999"] == local_id) is two_way
    store.close()


def test_listing_the_records_another_crm_lacks_looks_each_one_up(tmp_path: Path) -> None:
    """`sync --to`'s listing, a batch at a time: each record's links and queue row by
    index, not every link of the CRM read again for each batch (a `NOT IN` list)."""
    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    records = store.records("acme")
    records.commit_page("hubspot", "contacts", pack_page(RULES, _page(0, 250)).rows, [],
                        {"phase": "full"})
    records.commit_page("pipedrive", "contacts", pack_page(RULES, _page(0, 50)).rows, [],
                        {"phase": "full"})
    batches: list[list[Any]] = []
    steps = _plans(store, lambda: batches.extend(records.unlinked("pipedrive", "contacts",
                                                                  batch=100)))
    # HubSpot's 250, not Pipedrive's own 50 (no matching by email without two-way sync).
    assert [len(b) for b in batches] == [100, 100, 50]
    hubspot_ids = set(records.remote_ids("hubspot", "contacts").values())
    assert {c.record_id for b in batches for c in b} == hubspot_ids
    assert steps
    for statement, step in steps:
        assert "LIST SUBQUERY" not in step, f"{step}\n  in {statement}"
    store.close()
