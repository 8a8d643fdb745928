"""Pushes with several write calls in flight end exactly as sequential pushes do.

The CRM is the in-memory fake, made safe for threads and writing one record a call (as
Pipedrive does), so a push of a few dozen records has many calls at once; batches are small so
that several batches are on their way together. Every check compares records — the two CRMs'
records with each other and with the store — not calls.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.adapters.records import RecordWrite
from crmsync.errors import RetriableRemoteError, TokenRefusedError
from crmsync.store import open_store
from crmsync.sync.engine import pull_client
from crmsync.sync.push import PushResult, _calls, push_client
from tests.sync import local_edits as local
from tests.sync.test_two_way import RULES, account, ids, push_rules
from tests.sync.threaded_crm import ThreadedCrm

if TYPE_CHECKING:
    from crmsync.store import Store
    from tests.sync.fake_records import FakeCrm

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"contacts": "email", "companies": "domain", "deals": "name"}


def crm_state(crm: FakeCrm) -> dict[str, dict[str, Any]]:
    """Every record by its key field, with its fields and its associations by key: what two
    CRMs that were written the same way hold alike, whatever ids they gave."""
    key_of = {(t, rid): str(r.fields.get(KEYS[t])) for t, records in crm.records.items()
              for rid, r in records.items()}
    state: dict[str, dict[str, Any]] = {}
    for object_type, records in crm.records.items():
        for rid, record in records.items():
            key = f"{object_type}:{key_of[(object_type, rid)]}"
            assert key not in state, f"two {object_type} with one key: {key}"
            state[key] = {"fields": dict(record.fields), "properties": dict(record.properties),
                          "links": sorted((a.to_type, key_of[(a.to_type, a.to_id)], a.primary)
                                          for a in record.associations or ())}
    return state


def assert_store_matches(store: Store, crm: FakeCrm) -> None:
    """The store's live records are the CRM's, linked one to one: same key field, and each
    association the store holds is the CRM record's."""
    records = store.records("acme")
    remote_of = {t: {v: k for k, v in records.remote_ids(crm.crm, t).items()}
                 for t in ("companies", "contacts", "deals")}
    for object_type in ("companies", "contacts", "deals"):
        rows = {r["id"]: r for r in records.live(object_type)}
        assert set(remote_of[object_type].values()) == set(crm.records[object_type])
        linked_rows = {i for i in rows if i in remote_of[object_type]}
        assert len(linked_rows) == len(crm.records[object_type]), object_type
        for store_id in linked_rows:
            remote = crm.records[object_type][remote_of[object_type][store_id]]
            key = KEYS[object_type]
            assert rows[store_id][key] == remote.fields.get(key), (object_type, store_id)
    for from_type, to_type in (("contacts", "companies"), ("deals", "contacts"),
                               ("deals", "companies")):
        for from_id, to_id, primary in records.association_pairs(from_type, to_type):
            remote = crm.records[from_type][remote_of[from_type][from_id]]
            assert (to_type, remote_of[to_type][to_id], primary) in {
                (a.to_type, a.to_id, a.primary) for a in remote.associations or ()}


def changes(store: Store, crm: FakeCrm) -> None:
    """The same mix of local changes in any store started from `account`: creates that
    depend on creates of the same push, updates, a delete, and two queued creates of one
    email in different batches."""
    ann = ids(store, crm, "contacts")["2"]
    local.edit(store, "contacts", ann, first_name="Anna", phone="7")
    companies = [local.create(store, "companies", name=f"Co {n}", domain=f"co{n}.example")
                 for n in range(9)]
    contacts = []
    for n in range(14):
        contact = local.create(store, "contacts", email=f"p{n}@co.example", consent=True,
                               first_name=f"P{n}", marketing_consent="true")
        local.associate(store, "contacts", contact, "companies", companies[n % 9],
                        primary=True)
        contacts.append(contact)
    when = store.clock()
    twins = [local.create(store, "contacts", when=when, email="twin@co.example", consent=True,
                          first_name="Twin") for _ in range(2)]
    # The same email twice, queued apart (as a pull from Pipedrive can), in two batches: the
    # first one's call waits a moment for the second's, which must not come before the
    # first is committed (then the second is held back, one contact per email).
    crm.hold_until[str(twins[0])] = str(twins[1])
    for n in range(10):
        deal = local.create(store, "deals", name=f"Deal {n}", pipeline_key="sales",
                            stage_key="signed", status="open", amount=n * 10)
        local.associate(store, "deals", deal, "contacts", contacts[n])
        local.associate(store, "deals", deal, "companies", companies[n % 9], primary=True)
    local.remove(store, "deals", ids(store, crm, "deals")["3"])


def pushed(store: Store, crm: FakeCrm, concurrency: int) -> PushResult:
    pull_client("acme", crm.crm, crm, store, RULES, conflict_policy="remote_wins")  # type: ignore[arg-type]
    return push_client("acme", crm, store,  # type: ignore[arg-type]
                       push_rules(crm.crm, batch_size=4, concurrency=concurrency,
                                  delete_policy="propagate"))


@pytest.fixture
def stores(tmp_path: Path) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'one.db'}") as one, \
            open_store(f"sqlite:///{tmp_path / 'many.db'}") as many:
        yield one, many


@pytest.mark.parametrize("crm_name", ["hubspot", "pipedrive"])
def test_a_concurrent_push_ends_as_a_sequential_one(stores: Any, crm_name: str) -> None:
    results: list[PushResult] = []
    crms: list[ThreadedCrm] = []
    for store, concurrency in zip(stores, (1, 4), strict=True):
        crm = ThreadedCrm(crm=crm_name)
        account(crm)
        pushed(store, crm, 1)
        changes(store, crm)
        if concurrency > 1:
            crm.overlap = threading.Barrier(2)
        results.append(pushed(store, crm, concurrency))
        crms.append(crm)
        assert_store_matches(store, crm)
        [held] = results[-1].held_back  # the second twin: one contact per email
        assert held["reason"].startswith("same email as contact ")
        assert list(local.queue(store)) == [("contacts", held["record_id"])]
    one, many = crms
    assert many.most_at_once > 1  # the calls were in flight together
    assert crm_state(many) == crm_state(one)
    assert results[1].as_dict()["totals"] == results[0].as_dict()["totals"]
    assert (results[1].total("created"), results[1].total("updated"),
            results[1].total("archived")) == (9 + 15 + 10, 1, 1)


def test_a_failed_record_is_reported_kept_and_retried_next_run(stores: Any) -> None:
    store = stores[1]
    crm = ThreadedCrm(crm="pipedrive")
    account(crm)
    pushed(store, crm, 4)
    made = [local.create(store, "companies", name=f"Co {n}", domain=f"co{n}.example")
            for n in range(12)]
    crm.reject[("companies", str(made[5]))] = "Property values were not valid"
    result = pushed(store, crm, 4)
    assert result.failures == [{"object_type": "companies", "record_id": made[5],
                                "error": "Property values were not valid"}]
    assert result.total("created") == 11
    assert list(local.queue(store)) == [("companies", made[5])]
    assert [f["record_key"] for f in store.records("acme").failures("pipedrive")] == [
        str(made[5])]
    del crm.reject[("companies", str(made[5]))]
    again = pushed(store, crm, 4)
    assert (again.total("created"), again.total("failed")) == (1, 0)
    assert local.queue(store) == {}
    assert store.records("acme").failures("pipedrive") == []
    assert_store_matches(store, crm)


def test_a_call_that_gives_up_keeps_its_records_queued_and_commits_the_others(
        stores: Any) -> None:
    store = stores[1]
    crm = ThreadedCrm(crm="pipedrive")
    account(crm)
    pushed(store, crm, 4)
    made = [local.create(store, "companies", name=f"Co {n}", domain=f"co{n}.example")
            for n in range(12)]
    crm.fail[str(made[6])] = RetriableRemoteError("pipedrive", "answered 503 (create)")
    with pytest.raises(RetriableRemoteError):
        pushed(store, crm, 4)
    queued = local.queue(store)
    assert ("companies", made[6]) in queued
    landed = set(ids(store, crm, "companies").values())
    # What the CRM made is linked in the store, and only that stays queued which it lacks.
    assert {r.fields["domain"] for r in crm.records["companies"].values()} == {
        "acme.example"} | {f"co{n}.example" for n in range(12) if made[n] in landed}
    assert {k[1] for k in queued} == set(made) - landed
    del crm.fail[str(made[6])]
    pushed(store, crm, 4)
    assert local.queue(store) == {}
    assert len(crm.records["companies"]) == 13
    assert_store_matches(store, crm)


def test_a_refused_token_stops_the_push_and_loses_nothing(stores: Any) -> None:
    store = stores[1]
    crm = ThreadedCrm(crm="pipedrive")
    account(crm)
    pushed(store, crm, 4)
    made = [local.create(store, "companies", name=f"Co {n}", domain=f"co{n}.example")
            for n in range(8)]
    crm.fail[str(made[2])] = TokenRefusedError("pipedrive", "answered 401")
    with pytest.raises(TokenRefusedError):
        pushed(store, crm, 4)
    del crm.fail[str(made[2])]
    pushed(store, crm, 4)
    assert local.queue(store) == {}
    assert len(crm.records["companies"]) == 9
    assert_store_matches(store, crm)


def test_calls_keep_writes_of_one_record_identity_together_and_in_order() -> None:
    writes = [RecordWrite("contacts", "create", str(n), fields={"email": email})
              for n, email in enumerate(["a@x", "b@x", "a@x", "c@x", "b@x", "d@x"])]

    def identity(write: RecordWrite) -> set[tuple[str, str]]:
        return {("email", str(write.fields["email"]))}

    one_each = _calls(writes, 1, identity)
    assert [[w.key for w in call] for call in one_each] == [["0", "2"], ["1", "4"], ["3"],
                                                            ["5"]]
    assert [[w.key for w in call] for call in _calls(writes, 3, identity)] == [
        ["0", "2"], ["1", "4", "3"], ["5"]]
    assert [[w.key for w in call] for call in _calls(writes, 100, identity)] == [
        ["0", "2", "1", "4", "3", "5"]]


def test_a_write_that_joins_two_identities_joins_their_calls() -> None:
    writes = [RecordWrite("companies", "create", "0", fields={"domain": "a", "name": "A"}),
              RecordWrite("companies", "create", "1", fields={"domain": "b", "name": "B"}),
              RecordWrite("companies", "create", "2", fields={"domain": "a", "name": "B"})]

    def identity(write: RecordWrite) -> set[tuple[str, str]]:
        return {("domain", str(write.fields["domain"])), ("name", str(write.fields["name"]))}

    assert [[w.key for w in call] for call in _calls(writes, 1, identity)] == [
        ["0", "1", "2"]]


CHILD = textwrap.dedent("""\
    import pickle, sys
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.push import push_client
    from tests.sync.test_two_way import RULES, push_rules

    path, url = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        crm = pickle.load(f)

    def answered(object_type, results):
        with open(path, "wb") as f:
            pickle.dump(crm, f)  # what the CRM has done, calls still in flight included
        print("answered", object_type, flush=True)
        sys.stdin.readline()  # killed here, before the store hears of this batch

    with open_store(url) as store:
        pull_client("acme", crm.crm, crm, store, RULES, conflict_policy="remote_wins")
        push_client("acme", crm, store, push_rules(crm.crm, batch_size=4, concurrency=4),
                    on_answered=answered)
    print("finished", flush=True)
    """)


@pytest.mark.parametrize("answer", [2, 5])
def test_sigkill_mid_concurrent_push_duplicates_and_loses_nothing(tmp_path: Path,
                                                                   answer: int) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    crm = ThreadedCrm(crm="pipedrive")
    account(crm)
    with open_store(url) as store:
        pushed(store, crm, 1)
        ann = ids(store, crm, "contacts")["2"]
        local.edit(store, "contacts", ann, first_name="Anna")
        made = [local.create(store, "contacts", email=f"k{n}@co.example", consent=True,
                             first_name=f"K{n}", marketing_consent="true") for n in range(30)]
    crm_file = tmp_path / "crm.pickle"
    crm_file.write_bytes(pickle.dumps(crm))
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(crm_file), url], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:
        if line.startswith("answered"):
            seen += 1
            if seen == answer:
                process.send_signal(signal.SIGKILL)
                break
            process.stdin.write("\n")
            process.stdin.flush()
    process.wait(timeout=60)
    process.stdin.close()
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "the child finished before it was killed"

    crm = pickle.loads(crm_file.read_bytes())
    with open_store(url) as store:
        assert local.queue(store)  # the kill left work for the re-run
        pushed(store, crm, 4)
        pushed(store, crm, 4)
        emails = [r.fields["email"] for r in crm.records["contacts"].values()]
        assert len(emails) == len(set(emails)) == 31
        assert set(ids(store, crm, "contacts").values()) >= set(made)
        assert crm.records["contacts"]["2"].fields["first_name"] == "Anna"
        assert local.queue(store) == {}
        assert_store_matches(store, crm)
