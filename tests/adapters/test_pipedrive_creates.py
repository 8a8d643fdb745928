"""Pipedrive creates after a pull: looked for in one listing of what changed since, not with a
search per record — and still never duplicated. Against the sandbox over real HTTP; every
outcome is checked against the account's own rows, calls against the sandbox's count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.pipedrive_writes import REFRESH_SECONDS
from crmsync.adapters.records import PullAwareWriter, PullCursor, RecordWrite, WriteResult
from crmsync.store import open_store
from crmsync.sync.engine import pull_client
from crmsync.sync.mapping import MappingRules
from crmsync.sync.push import PushRules, push_client
from tests.sync import local_edits as local

from .record_sandbox import TOKEN, Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from crmsync.names import ObjectType

    from .conftest import FakeTime

CONSENT = "marketing_consent"  # the consent field the sandbox seeds


@pytest.fixture
def pd(box: Sandbox, fake_time: FakeTime) -> Iterator[PipedriveAdapter]:
    box.seed("pipedrive", contacts=20, companies=5)
    made = PipedriveAdapter(box.url, TOKEN, timeout=10, sleep=fake_time.sleep,
                            clock=fake_time.clock)
    yield made
    made.close()


def pulled(adapter: PipedriveAdapter, object_type: ObjectType) -> PullCursor:
    """Where a pull of the whole type leaves its cursor."""
    pages = list(adapter.pull(object_type, None, adapter.field_definitions(object_type)))
    return pages[-1].cursor


def after_pull(adapter: PipedriveAdapter, box: Sandbox, *, seeding: bool = False,
               **cursors: PullCursor | None) -> Any:
    box.clock.advance(30)  # what the CRM gets from now on is newer than the pull
    view = adapter.after_pull(cursors, seeding=seeding)  # type: ignore[arg-type]
    requests.post(f"{box.url}/_sandbox/stats/reset", timeout=10).raise_for_status()
    return view


def served(box: Sandbox) -> dict[str, int]:
    """Requests to v2 the sandbox served since its stats were reset, by route (the v1 field
    definitions, read once per adapter, left out)."""
    stats = requests.get(f"{box.url}/_sandbox/stats", timeout=10).json()
    return {route: n for route, n in stats["by_route"].items() if "/api/v2/" in route}


def made_in_pipedrive(box: Sandbox, entity: str, body: dict[str, Any]) -> int:
    """A record someone made in Pipedrive (the emulator's own API: no request counted)."""
    return int(box.account("pipedrive").create(entity, body)["id"])


def someone(email: str) -> dict[str, Any]:
    return {"name": "Made In Pipedrive", "emails": [{"value": email, "primary": True}]}


def rows(box: Sandbox, entity: str) -> list[dict[str, Any]]:
    state = box.account("pipedrive").dump_state()
    return [r for r in state["tables"][entity]["rows"] if not r["is_deleted"]]


def with_email(box: Sandbox, email: str) -> list[int]:
    return sorted(r["id"] for r in rows(box, "persons")
                  if any(e["value"].lower() == email for e in r["emails"]))


def person(key: str, email: str, first: str = "Ada") -> RecordWrite:
    return RecordWrite("contacts", "create", key,
                       fields={"email": email, "first_name": first, "last_name": "Byron"})


def company(key: str, name: str, domain: str | None = None) -> RecordWrite:
    fields = {"name": name} | ({"domain": domain} if domain else {})
    return RecordWrite("companies", "create", key, fields=fields)


def ok(results: list[WriteResult]) -> list[str]:
    assert [r.error for r in results if not r.ok] == []
    return [str(r.remote_id) for r in results]


def test_the_adapter_is_pull_aware(pd: PipedriveAdapter) -> None:
    assert isinstance(pd, PullAwareWriter)


LIST_PERSONS, PERSON = "GET /api/v2/persons", "/api/v2/persons"
SEARCH_PERSONS = "GET /api/v2/persons/search"


def test_a_person_made_in_the_crm_since_the_pull_is_updated_not_duplicated(
        pd: PipedriveAdapter, box: Sandbox) -> None:
    view = after_pull(pd, box, contacts=pulled(pd, "contacts"))
    twin = made_in_pipedrive(box, "persons", someone("twin@example.org"))
    [made] = ok(view.write("contacts", [person("k", "Twin@Example.org", first="Local")]))
    assert made == str(twin)
    assert with_email(box, "twin@example.org") == [twin]
    assert next(r for r in rows(box, "persons") if r["id"] == twin)["first_name"] == "Local"
    # One listing of what changed since the pull, and the update: no search.
    assert served(box) == {LIST_PERSONS: 1, f"PATCH {PERSON}/{{id}}": 1}


def test_creates_after_a_pull_cost_one_call_each(pd: PipedriveAdapter, box: Sandbox) -> None:
    view = after_pull(pd, box, contacts=pulled(pd, "contacts"))
    before = len(rows(box, "persons"))
    made = ok(view.write("contacts", [person(f"k{i}", f"new{i}@example.org")
                                      for i in range(40)]))
    assert len(set(made)) == 40
    assert len(rows(box, "persons")) == before + 40
    assert all(with_email(box, f"new{i}@example.org") == [int(made[i])] for i in range(40))
    assert served(box) == {LIST_PERSONS: 1, f"POST {PERSON}": 40}


def test_a_second_create_of_one_identity_meets_the_first(pd: PipedriveAdapter,
                                                         box: Sandbox) -> None:
    view = after_pull(pd, box, companies=pulled(pd, "companies"))
    [first] = ok(view.write("companies", [company("a", "Northwind Traders")]))
    [again] = ok(view.write("companies", [company("b", " northwind traders")]))
    assert again == first
    assert [r["id"] for r in rows(box, "organizations")
            if r["name"].lower().strip() == "northwind traders"] == [int(first)]
    assert served(box) == {"GET /api/v2/organizations": 1, "POST /api/v2/organizations": 1,
                           "PATCH /api/v2/organizations/{id}": 1}


def test_a_company_made_in_the_crm_since_the_pull_is_found_by_domain(
        pd: PipedriveAdapter, box: Sandbox) -> None:
    view = after_pull(pd, box, companies=pulled(pd, "companies"))
    domain_key = next(d.remote_key for d in pd.field_definitions("companies")
                      if d.custom and d.name == "domain")
    there = made_in_pipedrive(box, "organizations", {
        "name": "Contoso", "custom_fields": {domain_key: "contoso.example"}})
    before = len(rows(box, "organizations"))
    [found] = ok(view.write("companies", [company("c", "Contoso Ltd", "Contoso.example")]))
    assert found == str(there)
    assert len(rows(box, "organizations")) == before
    assert served(box) == {"GET /api/v2/organizations": 1,
                           "PATCH /api/v2/organizations/{id}": 1}


def test_the_listing_is_read_again_once_it_is_old(pd: PipedriveAdapter, box: Sandbox,
                                                  fake_time: FakeTime) -> None:
    view = after_pull(pd, box, contacts=pulled(pd, "contacts"))
    ok(view.write("contacts", [person("a", "first@example.org")]))
    box.clock.advance(5)
    later = made_in_pipedrive(box, "persons", someone("later@example.org"))
    fake_time.advance(REFRESH_SECONDS)
    [made] = ok(view.write("contacts", [person("b", "later@example.org")]))
    assert made == str(later)
    assert with_email(box, "later@example.org") == [later]
    assert served(box) == {LIST_PERSONS: 2, f"POST {PERSON}": 1, f"PATCH {PERSON}/{{id}}": 1}


def test_a_record_deleted_after_the_listing_is_created(pd: PipedriveAdapter,
                                                       box: Sandbox) -> None:
    view = after_pull(pd, box, contacts=pulled(pd, "contacts"))
    gone = made_in_pipedrive(box, "persons", someone("gone@example.org"))
    ok(view.write("contacts", [person("a", "other@example.org")]))  # lists it
    box.account("pipedrive").delete("persons", gone)
    [made] = ok(view.write("contacts", [person("b", "gone@example.org")]))
    assert made != str(gone)
    assert with_email(box, "gone@example.org") == [int(made)]


@pytest.mark.parametrize("cursor", [None, PullCursor("full", token="next-page")])
def test_without_a_finished_pull_a_create_searches_first(
        pd: PipedriveAdapter, box: Sandbox, cursor: PullCursor | None) -> None:
    view = after_pull(pd, box, contacts=cursor)
    twin = made_in_pipedrive(box, "persons", someone("twin@example.org"))
    [made] = ok(view.write("contacts", [person("k", "twin@example.org")]))
    assert made == str(twin)
    assert served(box) == {SEARCH_PERSONS: 1, f"PATCH {PERSON}/{{id}}": 1}


def test_seeding_looks_for_a_company_without_domain_with_a_search(
        pd: PipedriveAdapter, box: Sandbox) -> None:
    # Seeded creates are not marked in flight: a pull links their twins by domain only.
    view = after_pull(pd, box, seeding=True, companies=pulled(pd, "companies"))
    ok(view.write("companies", [company("a", "Fabrikam")]))
    ok(view.write("companies", [company("b", "Tailspin", "tailspin.example")]))
    assert served(box) == {"GET /api/v2/organizations/search": 1,
                           "GET /api/v2/organizations": 1, "POST /api/v2/organizations": 2}


def test_a_push_after_a_pull_meets_a_person_made_in_between(
        pd: PipedriveAdapter, box: Sandbox, tmp_path: Path) -> None:
    """Through the engine and a real store: a local contact and a person made in Pipedrive
    after the pull, with one email, end as one person linked to the local record."""
    mapping = MappingRules(consent_field=CONSENT)
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        pull_client("acme", "pipedrive", pd, store, mapping, conflict_policy="remote_wins")
        mine = [local.create(store, "contacts", email=f"local{n}@example.org",
                             first_name="Local", consent=True, **{CONSENT: "true"})
                for n in range(6)]
        box.clock.advance(30)
        theirs = made_in_pipedrive(box, "persons", someone("local3@example.org"))
        requests.post(f"{box.url}/_sandbox/stats/reset", timeout=10).raise_for_status()
        result = push_client("acme", pd, store, PushRules(crm="pipedrive", mapping=mapping,
                                                          concurrency=3))
        assert result.total("failed") == 0
        assert result.total("created") == 6
        links = store.records("acme").remote_ids("pipedrive", "contacts")
    assert served(box) == {LIST_PERSONS: 1, f"POST {PERSON}": 5, f"PATCH {PERSON}/{{id}}": 1}
    assert links[str(theirs)] == mine[3]
    for n, record_id in enumerate(mine):
        [remote] = with_email(box, f"local{n}@example.org")
        assert links[str(remote)] == record_id


def records_linked(store: Any, object_type: ObjectType) -> dict[str, int]:
    return store.records("acme").remote_ids("pipedrive", object_type)  # type: ignore[no-any-return]


class _Killed(BaseException):
    """The run dies (as under SIGKILL): nothing after it runs, no `except Exception` stops it."""


@pytest.mark.parametrize("killed_at", ["companies", "contacts"])
def test_creates_whose_answers_a_killed_run_lost_are_not_made_again(
        pd: PipedriveAdapter, box: Sandbox, tmp_path: Path, killed_at: str) -> None:
    """Pipedrive made the records, the store never heard: the next run's pull links them
    (contacts by email, a company without a domain by name, being in flight) and its push
    creates only what is still missing."""
    mapping = MappingRules(consent_field=CONSENT)
    rules = PushRules(crm="pipedrive", mapping=mapping, batch_size=3)

    def killed(object_type: str, _answered: object) -> None:
        if object_type == killed_at:
            raise _Killed

    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        pull_client("acme", "pipedrive", pd, store, mapping, conflict_policy="remote_wins")
        firms = [local.create(store, "companies", name=f"No Domain {n}") for n in range(3)]
        people = [local.create(store, "contacts", email=f"lost{n}@example.org",
                               consent=True, **{CONSENT: "true"}) for n in range(3)]
        box.clock.advance(30)
        with pytest.raises(_Killed):  # the batch lands, its commit never happens
            push_client("acme", pd, store, rules, on_answered=killed)
        made = {"companies": [r for r in rows(box, "organizations")
                              if r["name"].startswith("No Domain")],
                "contacts": [r for r in rows(box, "persons")
                             if any(e["value"].startswith("lost") for e in r["emails"])]}
        assert len(made[killed_at]) == 3
        assert set(records_linked(store, killed_at)).isdisjoint(str(r["id"])
                                                                for r in made[killed_at])
        box.clock.advance(30)
        for _ in range(2):  # the next run, and one more: nothing changes
            pull_client("acme", "pipedrive", pd, store, mapping, conflict_policy="remote_wins")
            result = push_client("acme", pd, store, rules)
            assert result.total("failed") == 0
        records = store.records("acme")
        firm_links = records.remote_ids("pipedrive", "companies")
        people_links = records.remote_ids("pipedrive", "contacts")
        assert local.queue(store) == {}
    for n, record_id in enumerate(firms):
        [remote] = [r["id"] for r in rows(box, "organizations") if r["name"] == f"No Domain {n}"]
        assert firm_links[str(remote)] == record_id
    for n, record_id in enumerate(people):
        [remote] = with_email(box, f"lost{n}@example.org")
        assert people_links[str(remote)] == record_id
