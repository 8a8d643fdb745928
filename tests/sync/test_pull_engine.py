"""The pull engine over an in-memory CRM, on a SQLite file and on PostgreSQL.

Proven by comparing the store with the fake CRM's data, record by record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crmsync.adapters.records import Association
from crmsync.sync import engine
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules, StageKeys
from tests.sync.fake_records import CrashError, FakeCrm

if TYPE_CHECKING:
    from crmsync.store import Store

RULES = MappingRules(
    StageKeys.from_known({"sales": "p1"}, {("sales", "proposal_sent"): "s2"}),
    consent_field="marketing_consent",
)


def _account(crm: FakeCrm, people: int = 7) -> None:
    crm.put("companies", "1", fields={"name": "Acme", "domain": "https://www.Acme.example/x"})
    crm.put("companies", "2", fields={"name": "Brightwave", "domain": "brightwave.example"})
    for n in range(1, people + 1):
        crm.put("contacts", str(n), fields={"email": f" Person{n}@Example.com ",
                                            "first_name": f"P{n}"},
                properties={"marketing_consent": "true" if n % 2 else "false"},
                associations=(Association("companies", "1" if n < 4 else "2", primary=True),))
    crm.put("deals", "10", fields={"name": "Big deal", "amount": "1200.50", "currency": "EUR",
                                   "pipeline_id": "p1", "stage_id": "s2", "status": "open",
                                   "close_date": "2026-03-01"},
            associations=(Association("contacts", "1"), Association("companies", "1", True)))
    crm.put("deals", "11", fields={"name": "Elsewhere", "amount": "oops", "pipeline_id": "p9",
                                   "stage_id": "s9", "status": "won"}, associations=())


def _store_view(store: Store, crm: FakeCrm) -> dict[str, dict[str, dict[str, object]]]:
    records = store.records("acme")
    view: dict[str, dict[str, dict[str, object]]] = {}
    for object_type in ("companies", "contacts", "deals"):
        ids = {v: k for k, v in records.remote_ids(crm.crm, object_type).items()}
        view[object_type] = {ids[row["id"]]: row for row in records.live(object_type)}
    return view


def _assert_store_matches(store: Store, crm: FakeCrm) -> None:
    view = _store_view(store, crm)
    for object_type, remote in crm.records.items():
        assert sorted(view[object_type]) == sorted(remote), object_type
        for rid, record in remote.items():
            row = view[object_type][rid]
            for name in ("name", "first_name", "currency"):
                if name in record.fields:
                    assert row[name] == record.fields[name]
    records = store.records("acme")
    contact_ids = records.remote_ids(crm.crm, "contacts")
    company_ids = records.remote_ids(crm.crm, "companies")
    expected = {(contact_ids[r.id], company_ids[a.to_id], a.primary)
                for r in crm.records["contacts"].values() for a in r.associations or ()}
    assert records.association_pairs("contacts", "companies") == expected


def test_initial_pull_lands_every_record_with_typed_columns(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    result = pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]

    _assert_store_matches(store, crm)
    assert result.total("created") == 11
    view = _store_view(store, crm)
    person = view["contacts"]["1"]
    assert person["email_key"] == "person1@example.com"
    assert person["consent"] is True
    assert view["contacts"]["2"]["consent"] is False
    assert view["companies"]["1"]["domain_key"] == "acme.example"
    deal = view["deals"]["10"]
    assert (deal["pipeline_key"], deal["stage_key"], deal["amount"]) == ("sales", "proposal_sent",
                                                                         1200.5)
    other = view["deals"]["11"]  # a pipeline no blueprint manages: remote ids kept
    assert (other["pipeline_key"], other["remote_pipeline_id"], other["amount"]) == (None, "p9",
                                                                                     None)
    assert other["properties"] == {}
    assert other["status"] == "won"


def test_second_run_with_nothing_changed_costs_one_call_per_type(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    crm.calls = 0
    result = pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    assert crm.calls == 3
    assert result.total("created") + result.total("updated") == 0


def test_increments_bring_edits_creates_removals_and_merges(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    crm.edit("contacts", "3", first_name="Renamed")
    crm.put("contacts", "8", fields={"email": "new@example.com"},
            associations=(Association("companies", "3"),))  # a company not pulled yet
    crm.remove("contacts", "5")
    crm.remove("companies", "2", merged_into="1")
    result = pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]

    assert result.counts["contacts"].updated == 1
    assert result.counts["contacts"].created == 1
    assert result.total("tombstoned") == 2
    view = _store_view(store, crm)
    assert "5" not in view["contacts"]
    assert "2" not in view["companies"]
    assert view["contacts"]["3"]["first_name"] == "Renamed"
    # The company only seen as an association target is a stub: not live until pulled.
    assert "3" not in view["companies"]
    crm.put("companies", "3", fields={"name": "Late"})
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    _assert_store_matches(store, crm)
    merged = list(store.records("acme").live("companies"))
    assert len(merged) == 2


def test_merged_record_points_at_its_survivor(store: Store) -> None:
    from sqlalchemy import select

    from crmsync.store.schema import companies

    crm = FakeCrm()
    _account(crm)
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    crm.remove("companies", "2", merged_into="1")
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    ids = store.records("acme").remote_ids(crm.crm, "companies", live_only=False)
    with store.engine.connect() as conn:
        row = conn.execute(select(companies).where(companies.c.id == ids["2"])).one()
    assert (row.deleted_reason, row.merged_into) == ("merged", ids["1"])


@pytest.mark.parametrize("grouped", [False, True], ids=["page-commits", "group-commits"])
@pytest.mark.parametrize("crash_after", [0, 1, 2, 4, 5])
def test_a_pull_killed_between_pages_resumes_without_loss_or_duplicates(
        store: Store, crash_after: int, grouped: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if grouped:  # every page a bulk page, two to a transaction
        monkeypatch.setattr(engine, "GROUP_MIN_PAGE", 1)
        monkeypatch.setattr(engine, "GROUP_RECORDS", 6)
    crm = FakeCrm()
    _account(crm, people=10)
    crm.fail_after_pages = crash_after
    with pytest.raises(CrashError):
        pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    crm.fail_after_pages = None
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    _assert_store_matches(store, crm)
    for object_type, remote in crm.records.items():
        assert len(list(store.records("acme").live(object_type))) == len(remote)


def test_dry_run_reads_and_reports_but_writes_nothing(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    result = pull_client("acme", crm.crm, crm, store, RULES, dry_run=True)  # type: ignore[arg-type]
    assert result.total("created") == 11
    assert list(store.records("acme").live("contacts")) == []
    assert store.records("acme").cursor(crm.crm, "contacts") is None


def test_full_pull_tombstones_records_the_crm_no_longer_lists(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    del crm.records["contacts"]["4"]  # purged: no listing reports it any more
    result = pull_client("acme", crm.crm, crm, store, RULES, full=True)  # type: ignore[arg-type]
    assert result.counts["contacts"].tombstoned == 1
    _assert_store_matches(store, crm)


def test_field_definitions_are_cached_between_runs(store: Store) -> None:
    crm = FakeCrm()
    _account(crm)
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    assert crm.field_calls == 3
    pull_client("acme", crm.crm, crm, store, RULES)  # type: ignore[arg-type]
    assert crm.field_calls == 3
    pull_client("acme", crm.crm, crm, store, RULES, full=True)  # type: ignore[arg-type]
    assert crm.field_calls == 6


def test_grouped_pages_commit_together_and_an_error_rolls_back_only_the_open_group(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "GROUP_MIN_PAGE", 1)
    monkeypatch.setattr(engine, "GROUP_RECORDS", 6)  # two pages of three a transaction
    crm = FakeCrm()
    _account(crm, people=12)
    # Companies (one page), contacts 1-3 and 4-6 (a group), 7-9, then the error.
    crm.fail_after_pages = 4
    with pytest.raises(CrashError):
        pull_client("acme", crm.crm, crm, store, RULES, object_types=("companies", "contacts"))
    records = store.records("acme")
    # The companies' page and the first contacts' group committed; the open group (contacts
    # 7-9) was rolled back with its cursor.
    assert len(list(records.live("companies"))) == 2
    assert sorted(records.remote_ids(crm.crm, "contacts")) == sorted(str(n) for n in range(1, 7))
    cursor = records.cursor(crm.crm, "contacts")
    assert cursor is not None
    crm.fail_after_pages = None
    result = pull_client("acme", crm.crm, crm, store, RULES)
    assert result.counts["contacts"].created == 6  # the rest, once
    _assert_store_matches(store, crm)
