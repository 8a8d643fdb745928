"""Two-way sync over an in-memory CRM, on a SQLite file and on PostgreSQL.

Every check compares the store with the fake CRM's records (and the queue), not calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from crmsync.adapters.records import Association
from crmsync.store.schema import conflicts, sync_failures
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules, StageKeys
from crmsync.sync.push import PushResult, PushRules, push_client
from tests.sync import local_edits as local
from tests.sync.fake_records import FakeCrm

if TYPE_CHECKING:
    from crmsync.store import Store

RULES = MappingRules(
    StageKeys.from_known({"sales": "p1"}, {("sales", "proposal_sent"): "s2",
                                           ("sales", "signed"): "s3", ("sales", "won"): "s8",
                                           ("sales", "lost"): "s9"}),
    consent_field="marketing_consent",
)


class CrashError(Exception):
    """The process dying between the CRM's answer and the store's commit."""


def push_rules(crm: str = "hubspot", **changes: Any) -> PushRules:
    base = {"crm": crm, "mapping": RULES, "pipelines": {"sales": "p1"},
            "stages": {("sales", "proposal_sent"): "s2", ("sales", "signed"): "s3",
                       ("sales", "won"): "s8", ("sales", "lost"): "s9"},
            "outcome_stages": {("sales", "won"): "won", ("sales", "lost"): "lost"}}
    return PushRules(**{**base, **changes})


def sync(store: Store, crm: FakeCrm, policy: Any = "remote_wins", **rules: Any) -> PushResult:
    pull_client("acme", crm.crm, crm, store, RULES, conflict_policy=policy)  # type: ignore[arg-type]
    on_answered = rules.pop("on_answered", None)
    return push_client("acme", crm, store, push_rules(crm.crm, **rules),  # type: ignore[arg-type]
                       on_answered=on_answered)


def account(crm: FakeCrm) -> None:
    crm.put("companies", "1", fields={"name": "Acme", "domain": "acme.example"})
    crm.put("contacts", "2", fields={"email": "ann@acme.example", "first_name": "Ann",
                                     "phone": "1"},
            properties={"marketing_consent": "true", "city": "Kyiv"},
            associations=(Association("companies", "1", primary=True),))
    crm.put("deals", "3", fields={"name": "Big", "pipeline_id": "p1", "stage_id": "s2",
                                  "status": "open", "amount": "100"},
            associations=(Association("contacts", "2"),))


def ids(store: Store, crm: FakeCrm, object_type: str) -> dict[str, int]:
    return store.records("acme").remote_ids(crm.crm, object_type)


def row(store: Store, object_type: str, record_id: int) -> dict[str, Any]:
    return next(r for r in store.records("acme").live(object_type) if r["id"] == record_id)


def started(store: Store, crm: FakeCrm) -> None:
    account(crm)
    sync(store, crm)


def test_a_local_edit_goes_out_and_the_queue_empties(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, first_name="Anna", city="Lviv")
    result = sync(store, crm)
    assert result.total("updated") == 1
    remote = crm.records["contacts"]["2"]
    assert (remote.fields["first_name"], remote.properties["city"]) == ("Anna", "Lviv")
    assert remote.fields["phone"] == "1"  # only what changed was written
    assert local.queue(store) == {}
    crm.writes.clear()
    again = sync(store, crm)  # the write's own echo in the next pull changes nothing
    assert crm.writes == []
    assert again.total("updated") == 0
    assert row(store, "contacts", ann)["first_name"] == "Anna"


def test_a_remote_edit_beside_a_local_one_merges_field_by_field(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, first_name="Anna")
    crm.edit("contacts", "2", phone="2")
    sync(store, crm)
    assert row(store, "contacts", ann)["phone"] == "2"
    assert crm.records["contacts"]["2"].fields["first_name"] == "Anna"
    assert row(store, "contacts", ann)["first_name"] == "Anna"


@pytest.mark.parametrize("cleared", [None, "absent"])
def test_a_property_cleared_in_the_crm_beside_a_local_edit_is_cleared_in_the_store(
        store: Store, cleared: str | None) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    assert row(store, "contacts", ann)["properties"]["city"] == "Kyiv"
    local.edit(store, "contacts", ann, first_name="Anna")
    old = crm.records["contacts"]["2"]
    # The CRM sends an emptied property as null, or (a pull that drops nulls) not at all.
    properties = {k: v for k, v in old.properties.items() if k != "city"}
    if cleared is None:
        properties["city"] = None
    crm.records["contacts"]["2"] = replace(old, properties=properties,
                                           modified_at=crm.tick())
    sync(store, crm)
    assert row(store, "contacts", ann)["properties"].get("city") is None
    assert row(store, "contacts", ann)["first_name"] == "Anna"
    assert crm.records["contacts"]["2"].properties.get("city") is None  # not pushed back
    assert crm.records["contacts"]["2"].fields["first_name"] == "Anna"
    assert store.records("acme").failures() == []


@pytest.mark.parametrize(("policy", "local_first", "winner"), [
    ("remote_wins", False, "remote"), ("local_wins", False, "local"),
    ("newest_wins", False, "local"), ("newest_wins", True, "remote"),
])
def test_both_sides_changed_resolves_by_policy_and_is_recorded(
        store: Store, policy: str, local_first: bool, winner: str) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    if local_first:
        local.edit(store, "contacts", ann, when=crm.now - dt.timedelta(hours=1), phone="L")
        crm.edit("contacts", "2", phone="R")
    else:
        crm.edit("contacts", "2", phone="R")
        local.edit(store, "contacts", ann, when=crm.now + dt.timedelta(hours=1), phone="L")
    result = sync(store, crm, policy)
    expected = "L" if winner == "local" else "R"
    assert row(store, "contacts", ann)["phone"] == expected
    assert crm.records["contacts"]["2"].fields["phone"] == expected
    assert result.total("updated") == (1 if winner == "local" else 0)
    with store.engine.connect() as conn:
        logged = [dict(r._mapping) for r in conn.execute(select(conflicts))]
    assert [(c["field"], c["base_value"], c["local_value"], c["remote_value"], c["policy"],
             c["winner"]) for c in logged] == [("phone", "1", "L", "R", policy, winner)]
    assert local.queue(store) == {}


@pytest.mark.parametrize("policy", ["keep_remote", "propagate"])
def test_a_local_delete_follows_the_delete_policy(store: Store, policy: str) -> None:
    crm = FakeCrm()
    started(store, crm)
    deal = ids(store, crm, "deals")["3"]
    local.remove(store, "deals", deal)
    result = sync(store, crm, delete_policy=policy)
    assert ids(store, crm, "deals") == {}
    assert local.queue(store) == {}
    if policy == "propagate":
        assert crm.records["deals"] == {}
        assert result.total("archived") == 1
    else:
        assert "3" in crm.records["deals"]
        assert result.kept_remote == [{"object_type": "deals", "record_id": deal,
                                       "remote_id": "3"}]


def test_a_remote_delete_tombstones_even_with_a_local_edit_queued(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    company = ids(store, crm, "companies")["1"]
    crm.remove("companies", "1")
    sync(store, crm)
    assert ids(store, crm, "companies") == {}
    assert company not in {r["id"] for r in store.records("acme").live("companies")}


def test_a_local_edit_to_a_record_the_crm_deleted_is_recorded_not_pushed(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, phone="L", city="Lviv")
    crm.remove("contacts", "2")
    result = sync(store, crm)
    assert ids(store, crm, "contacts") == {}
    assert "2" not in crm.records["contacts"]  # the removal wins: nothing recreated
    assert result.total("created") == 0
    assert local.queue(store) == {}
    with store.engine.connect() as conn:
        logged = sorted((c.record_id, c.field, c.base_value, c.local_value, c.remote_value,
                         c.policy, c.winner) for c in conn.execute(select(conflicts)))
    # What the consultant changed, kept where they can see it (and counted by the pull).
    assert logged == [(ann, "city", "Kyiv", "Lviv", None, "removed_remotely", "remote"),
                      (ann, "phone", "1", "L", None, "removed_remotely", "remote")]


def test_a_record_created_on_both_sides_becomes_one(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    mine = local.create(store, "contacts", email=" Bob@Acme.example", first_name="Bob",
                        consent=True, marketing_consent="true")
    crm.put("contacts", "7", fields={"email": "bob@acme.example", "last_name": "Stone"},
            properties={"marketing_consent": "true"})
    sync(store, crm, "local_wins")
    assert ids(store, crm, "contacts")["7"] == mine
    assert len(crm.records["contacts"]) == 2
    assert crm.records["contacts"]["7"].fields["first_name"] == "Bob"
    record = row(store, "contacts", mine)
    assert (record["first_name"], record["last_name"]) == ("Bob", "Stone")
    assert local.queue(store) == {}


def test_contacts_without_email_or_consent_are_held_back(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    local.create(store, "contacts", first_name="No email", consent=True)
    refused = local.create(store, "contacts", email="no@acme.example", consent=False)
    local.create(store, "contacts", email="unknown@acme.example")
    ok = local.create(store, "contacts", email="yes@acme.example", consent=True)
    result = sync(store, crm)
    assert result.total("held_back") == 3
    assert sorted(h["reason"] for h in result.held_back) == [
        "marketing consent unknown", "no email", "no marketing consent"]
    emails = {r.fields.get("email") for r in crm.records["contacts"].values()}
    assert emails == {"ann@acme.example", "yes@acme.example"}
    assert crm.records["contacts"][next(
        rid for rid, r in crm.records["contacts"].items()
        if r.fields.get("email") == "yes@acme.example")].properties["marketing_consent"] == "true"
    assert ("contacts", refused) in local.queue(store)
    assert ("contacts", ok) not in local.queue(store)


def test_withdrawn_consent_is_written_never_deleted(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, consent=False)
    sync(store, crm)
    assert crm.records["contacts"]["2"].properties["marketing_consent"] == "false"
    assert row(store, "contacts", ann)["consent"] is False


def test_mixed_results_keep_failures_queued_and_retry_them(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    first = local.create(store, "companies", name="One", domain="one.example")
    second = local.create(store, "companies", name="Two", domain="two.example")
    crm.reject[("companies", str(second))] = "Property values were not valid"
    result = sync(store, crm)
    assert (result.total("created"), result.total("failed")) == (1, 1)
    assert result.failures == [{"object_type": "companies", "record_id": second,
                                "error": "Property values were not valid"}]
    queued = local.queue(store)
    assert list(queued) == [("companies", second)]
    assert (queued[("companies", second)]["attempts"],
            queued[("companies", second)]["last_error"]) == (1, "Property values were not valid")
    failures = store.records("acme").failures("hubspot")
    assert [(f["direction"], f["record_key"]) for f in failures] == [("push", str(second))]
    assert first in ids(store, crm, "companies").values()

    del crm.reject[("companies", str(second))]
    result = sync(store, crm)
    assert result.total("created") == 1
    assert local.queue(store) == {}
    assert store.records("acme").failures("hubspot") == []
    assert {r.fields["name"] for r in crm.records["companies"].values()} == {"Acme", "One",
                                                                             "Two"}


def test_a_deal_moved_by_stage_key_and_won(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    deal = ids(store, crm, "deals")["3"]
    local.edit(store, "deals", deal, stage_key="signed")
    sync(store, crm)
    assert crm.records["deals"]["3"].fields["stage_id"] == "s3"
    assert row(store, "deals", deal)["stage_key"] == "signed"
    local.edit(store, "deals", deal, status="won")
    sync(store, crm)
    assert crm.records["deals"]["3"].fields["stage_id"] == "s8"  # HubSpot: the won stage
    assert row(store, "deals", deal)["status"] == "won"


def test_pipedrive_keeps_the_stage_and_writes_the_status() -> None:
    from crmsync.store.records import QueuedChange
    from crmsync.sync.push import _create

    change = QueuedChange(5, "upsert", frozenset({"name"}), object(), 0,
                          {"name": "D", "pipeline_key": "sales", "stage_key": "signed",
                           "status": "lost", "properties": {}}, None)
    write = _create("deals", change, push_rules("pipedrive"), [], {})
    assert (write.fields["pipeline_id"], write.fields["stage_id"], write.fields["status"]) == (
        "p1", "s3", "lost")


def test_a_stage_key_the_crm_lacks_is_that_records_error(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    deal = ids(store, crm, "deals")["3"]
    local.edit(store, "deals", deal, stage_key="negotiated")
    result = sync(store, crm)
    assert len(result.failures) == 1
    assert "run `crmsync apply` first" in result.failures[0]["error"]
    assert crm.records["deals"]["3"].fields["stage_id"] == "s2"
    assert ("deals", deal) in local.queue(store)


def test_new_records_go_out_with_their_associations(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    company = local.create(store, "companies", name="Nova", domain="nova.example")
    person = local.create(store, "contacts", email="eve@nova.example", consent=True)
    local.associate(store, "contacts", person, "companies", company, primary=True)
    deal = local.create(store, "deals", name="Nova deal", pipeline_key="sales",
                        stage_key="proposal_sent", status="open", amount=5.0)
    local.associate(store, "deals", deal, "contacts", person)
    sync(store, crm)
    remote = {t: ids(store, crm, t) for t in ("companies", "contacts", "deals")}
    by_store = {t: {v: k for k, v in m.items()} for t, m in remote.items()}
    eve = crm.records["contacts"][by_store["contacts"][person]]
    assert eve.associations == (Association("companies", by_store["companies"][company],
                                            True),)
    nova = crm.records["deals"][by_store["deals"][deal]]
    assert nova.associations == (Association("contacts", by_store["contacts"][person]),)
    assert nova.fields["stage_id"] == "s2"
    assert local.queue(store) == {}


@pytest.mark.parametrize("object_type", ["companies", "contacts", "deals"])
def test_killed_between_the_answer_and_the_commit_creates_nothing_twice(
        store: Store, object_type: str) -> None:
    crm = FakeCrm()
    started(store, crm)
    values: dict[str, dict[str, Any]] = {
        "companies": {"name": "Nova", "domain": "nova.example"},
        "contacts": {"email": "eve@nova.example", "consent": True, "first_name": "Eve"},
        "deals": {"name": "Nova deal", "pipeline_key": "sales", "stage_key": "signed",
                  "status": "open"},
    }
    mine = local.create(store, object_type, **values[object_type])
    before = len(crm.records[object_type])

    def die(_type: str, _answers: object) -> None:
        raise CrashError

    with pytest.raises(CrashError):
        sync(store, crm, on_answered=die)
    assert len(crm.records[object_type]) == before + 1  # the CRM has it; the store not yet
    # Edited again before the next run (a deal's in-flight create is found by its name,
    # so that one changes its amount).
    field, value = {"companies": ("name", "Renamed"), "contacts": ("first_name", "Renamed"),
                    "deals": ("amount", 42.0)}[object_type]
    local.edit(store, object_type, mine, **{field: value})
    sync(store, crm)
    assert len(crm.records[object_type]) == before + 1
    (remote_id,) = [rid for rid, rec in ids(store, crm, object_type).items() if rec == mine]
    assert crm.records[object_type][remote_id].fields[field] == value
    assert len(list(store.records("acme").live(object_type))) == before + 1
    assert local.queue(store) == {}


def test_push_failures_are_listed_by_the_store(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    company = local.create(store, "companies", name="Bad", domain="bad.example")
    crm.reject[("companies", str(company))] = "nope"
    sync(store, crm)
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(sync_failures)))
    assert [(r.direction, r.error) for r in rows] == [("push", "nope")]


def test_a_pipedrive_store_seeds_an_empty_hubspot(store: Store) -> None:
    source, target = FakeCrm(crm="pipedrive"), FakeCrm(crm="hubspot")
    account(source)
    source.put("contacts", "4", fields={"email": "no-consent@acme.example"},
               properties={"marketing_consent": "false"})
    source.put("contacts", "5", fields={"first_name": "No email"})
    source.put("deals", "6", fields={"name": "Won one", "pipeline_id": "p1", "stage_id": "s3",
                                     "status": "won"})
    pull_client("acme", "pipedrive", source, store, RULES, conflict_policy="remote_wins")  # type: ignore[arg-type]
    pull_client("acme", "hubspot", target, store, RULES, conflict_policy="remote_wins")  # type: ignore[arg-type]
    rules = push_rules("hubspot", pipelines={"sales": "hp"},
                       stages={("sales", "proposal_sent"): "h2", ("sales", "signed"): "h3",
                               ("sales", "won"): "h8", ("sales", "lost"): "h9"})
    result = push_client("acme", target, store, rules, queue=False, seed=True)  # type: ignore[arg-type]

    assert [h["reason"] for h in result.held_back] == ["no email"]
    assert result.total("created") == 5
    records = store.records("acme")
    for object_type in ("companies", "contacts", "deals"):
        pd, hs = records.remote_ids("pipedrive", object_type), records.remote_ids(
            "hubspot", object_type)
        # Same store identity: each record now has both CRMs' ids.
        assert set(hs.values()) <= set(pd.values())
    by_pd = {t: {v: k for k, v in records.remote_ids("hubspot", t).items()}
             for t in ("companies", "contacts", "deals")}
    pd_ids = {t: records.remote_ids("pipedrive", t) for t in ("companies", "contacts", "deals")}
    big = target.records["deals"][by_pd["deals"][pd_ids["deals"]["3"]]]
    assert (big.fields["pipeline_id"], big.fields["stage_id"]) == ("hp", "h2")
    won = target.records["deals"][by_pd["deals"][pd_ids["deals"]["6"]]]
    assert won.fields["stage_id"] == "h8"
    assert big.associations == (
        Association("contacts", by_pd["contacts"][pd_ids["contacts"]["2"]]),)
    ann = target.records["contacts"][by_pd["contacts"][pd_ids["contacts"]["2"]]]
    assert ann.associations == (
        Association("companies", by_pd["companies"][pd_ids["companies"]["1"]], True),)
    # A second seed finds nothing left to create.
    again = push_client("acme", target, store, rules, queue=False, seed=True)  # type: ignore[arg-type]
    assert again.total("created") == 0


def test_a_local_association_survives_a_remote_edit_of_its_owner(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    crm.put("companies", "8", fields={"name": "Second", "domain": "second.example"})
    sync(store, crm)
    ann, second = ids(store, crm, "contacts")["2"], ids(store, crm, "companies")["8"]
    local.associate(store, "contacts", ann, "companies", second)
    crm.edit("contacts", "2", phone="9")  # the page carries Ann's (old) associations
    pull_client("acme", crm.crm, crm, store, RULES, conflict_policy="remote_wins")  # type: ignore[arg-type]
    assert store.records("acme").association_pairs("contacts", "companies") == {
        (ann, ids(store, crm, "companies")["1"], True), (ann, second, False)}
    sync(store, crm)
    assert set(crm.records["contacts"]["2"].associations or ()) == {
        Association("companies", "1", True), Association("companies", "8", False)}
    assert row(store, "contacts", ann)["phone"] == "9"
    assert local.queue(store) == {}


def test_a_dry_run_push_counts_and_writes_nothing(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, first_name="Anna")
    local.create(store, "companies", name="New", domain="new.example")
    local.create(store, "contacts", email="no@consent.example", consent=False)
    before = local.queue(store)
    result = push_client("acme", crm, store, push_rules(), dry_run=True)  # type: ignore[arg-type]
    assert (result.total("created"), result.total("updated"), result.total("held_back")) == (
        1, 1, 1)
    assert crm.writes == []
    assert local.queue(store) == before


def test_a_name_change_sends_both_halves(store: Store) -> None:
    """Pipedrive writes a person's name whole: with both halves it needs no read first."""
    crm = FakeCrm(crm="pipedrive")
    started(store, crm)
    crm.put("contacts", "2", fields={**crm.records["contacts"]["2"].fields, "last_name": "Lee"},
            properties=crm.records["contacts"]["2"].properties)
    sync(store, crm)
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, last_name="Lewis")
    crm.writes.clear()
    sync(store, crm)
    [write] = crm.writes
    assert (write.fields["first_name"], write.fields["last_name"]) == ("Ann", "Lewis")
    assert "phone" not in write.fields


def test_a_create_without_links_leaves_the_crms_associations_alone(store: Store) -> None:
    crm = FakeCrm()
    started(store, crm)
    local.create(store, "contacts", email="new@acme.example", consent=True,
                 marketing_consent="true")
    crm.writes.clear()
    sync(store, crm)
    [write] = crm.writes
    assert write.op == "create"
    assert write.associations is None  # an upsert that meets a known contact keeps its links


def test_two_store_contacts_with_one_email_seed_one_contact(store: Store) -> None:
    """Pipedrive allows two persons with one email; HubSpot (and the writer's look before
    create) makes them one contact: the second is held back, named, not failed."""
    source, target = FakeCrm(crm="pipedrive"), FakeCrm(crm="hubspot")
    for remote_id, email in (("7", "twin@acme.example"), ("8", " TWIN@acme.example")):
        source.put("contacts", remote_id, fields={"email": email},
                   properties={"marketing_consent": "true"})
    pull_client("acme", "pipedrive", source, store, RULES, conflict_policy="remote_wins")  # type: ignore[arg-type]
    rules = push_rules("hubspot")
    result = push_client("acme", target, store, rules, queue=False, seed=True,  # type: ignore[arg-type]
                         object_types=("contacts",))
    pd = store.records("acme").remote_ids("pipedrive", "contacts")
    assert result.total("created") == 1
    assert result.total("failed") == 0
    [held] = result.held_back
    assert held["record_id"] == pd["8"]
    assert held["reason"] == f"same email as contact {pd['7']}: one contact in hubspot"
    assert len(target.records["contacts"]) == 1
    again = push_client("acme", target, store, rules, queue=False, seed=True,  # type: ignore[arg-type]
                        object_types=("contacts",))
    assert again.total("created") == 0
    assert [h["record_id"] for h in again.held_back] == [pd["8"]]
