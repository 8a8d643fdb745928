"""The three-way merge and the push decisions, data in, data out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crmsync.sync.merge import (
    ArchiveRemote,
    Conflict,
    CreateRemote,
    Discard,
    HoldBack,
    KeepRemote,
    PushLocal,
    TakeRemote,
    UpdateRemote,
    apply_decisions,
    gdpr_reason,
    merge_fields,
    plan_push,
    winner,
)

T1 = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)
BASE = {"name": "Ann", "phone": "1", "city": "Kyiv"}

MERGES: list[tuple[str, dict[str, Any], dict[str, Any], set[str], str, tuple[object, ...]]] = [
    ("nothing changed", dict(BASE), dict(BASE), set(), "remote_wins", ()),
    ("remote only", dict(BASE), {**BASE, "phone": "2"}, set(), "local_wins",
     (TakeRemote("phone", "2"),)),
    ("local only", {**BASE, "name": "Anna"}, dict(BASE), {"name"}, "remote_wins",
     (PushLocal("name", "Anna"),)),
    ("each side its own field", {**BASE, "name": "Anna"}, {**BASE, "city": "Lviv"}, {"name"},
     "remote_wins", (TakeRemote("city", "Lviv"), PushLocal("name", "Anna"))),
    ("both, same value: agreed", {**BASE, "phone": "3"}, {**BASE, "phone": "3"}, {"phone"},
     "local_wins", (TakeRemote("phone", "3"),)),
    ("both: remote wins", {**BASE, "phone": "L"}, {**BASE, "phone": "R"}, {"phone"},
     "remote_wins", (Conflict("phone", "1", "L", "R", "remote_wins", "remote"),)),
    ("both: local wins", {**BASE, "phone": "L"}, {**BASE, "phone": "R"}, {"phone"},
     "local_wins", (Conflict("phone", "1", "L", "R", "local_wins", "local"),)),
    ("listed locally but back at the base", dict(BASE), dict(BASE), {"phone"}, "remote_wins",
     ()),
    ("a new property remotely", dict(BASE), {**BASE, "tier": "A"}, set(), "remote_wins",
     (TakeRemote("tier", "A"),)),
    ("cleared remotely", dict(BASE), {**BASE, "city": None}, set(), "remote_wins",
     (TakeRemote("city", None),)),
]


@pytest.mark.parametrize(("local", "remote", "changed", "policy", "expected"),
                         [m[1:] for m in MERGES], ids=[m[0] for m in MERGES])
def test_merge_fields(local: dict[str, Any], remote: dict[str, Any], changed: set[str],
                      policy: Any, expected: tuple[object, ...]) -> None:
    assert merge_fields(BASE, local, remote, changed, policy=policy) == expected


@pytest.mark.parametrize(("local_at", "remote_at", "expected"), [
    (T2, T1, "local"), (T1, T2, "remote"), (T1, T1, "remote"), (None, T1, "remote"),
    (T1, None, "remote"),
])
def test_newest_wins_by_edit_time(local_at: Any, remote_at: Any, expected: str) -> None:
    assert winner("newest_wins", local_at, remote_at) == expected
    decisions = merge_fields(BASE, {**BASE, "phone": "L"}, {**BASE, "phone": "R"}, {"phone"},
                             policy="newest_wins", local_at=local_at, remote_at=remote_at)
    assert decisions == (Conflict("phone", "1", "L", "R", "newest_wins", expected),)  # type: ignore[arg-type]


def test_created_on_both_sides_has_no_base() -> None:
    local = {"email": "a@x.example", "first_name": "Ann", "phone": None}
    remote = {"email": "a@x.example", "first_name": "Anna", "phone": "5", "last_name": None}
    decisions = merge_fields(None, local, remote, {"email", "first_name", "phone"},
                             policy="local_wins")
    assert decisions == (
        TakeRemote("email", "a@x.example"),
        Conflict("first_name", None, "Ann", "Anna", "local_wins", "local"),
        TakeRemote("last_name", None),
        TakeRemote("phone", "5"),
    )


def test_apply_decisions_keeps_local_winners_queued_and_takes_the_rest() -> None:
    local = {"name": "Anna", "phone": "L", "city": "Kyiv"}
    merged = apply_decisions(local, (
        TakeRemote("city", "Lviv"), PushLocal("name", "Anna"),
        Conflict("phone", "1", "L", "R", "remote_wins", "remote"),
        Conflict("tier", None, "B", "A", "local_wins", "local")))
    assert merged.values == {"name": "Anna", "phone": "R", "city": "Lviv"}
    assert merged.still_local == {"name", "tier"}
    assert [c.field for c in merged.conflicts] == ["phone", "tier"]


PUSHES: list[tuple[str, dict[str, Any], object]] = [
    ("new company", {"object_type": "companies", "op": "upsert", "remote_id": None},
     CreateRemote(1)),
    ("new contact with consent", {"object_type": "contacts", "op": "upsert", "remote_id": None,
                                  "email": "a@x.example", "consent": True}, CreateRemote(1)),
    ("new contact, no email", {"object_type": "contacts", "op": "upsert", "remote_id": None,
                               "email": " ", "consent": True}, HoldBack(1, "no email")),
    ("new contact, consent refused", {"object_type": "contacts", "op": "upsert",
                                      "remote_id": None, "email": "a@x.example",
                                      "consent": False}, HoldBack(1, "no marketing consent")),
    ("new contact, consent unknown", {"object_type": "contacts", "op": "upsert",
                                      "remote_id": None, "email": "a@x.example",
                                      "consent": None},
     HoldBack(1, "marketing consent unknown")),
    ("linked contact, consent withdrawn", {"object_type": "contacts", "op": "upsert",
                                           "remote_id": "9", "email": "a@x.example",
                                           "consent": False},
     UpdateRemote(1, "9", frozenset({"consent"}))),
    ("local delete, kept remote", {"object_type": "deals", "op": "delete", "remote_id": "9"},
     KeepRemote(1, "9")),
    ("local delete, propagated", {"object_type": "deals", "op": "delete", "remote_id": "9",
                                  "delete_policy": "propagate"}, ArchiveRemote(1, "9")),
    ("local delete of a record never pushed", {"object_type": "deals", "op": "delete",
                                               "remote_id": None}, Discard(1)),
]


@pytest.mark.parametrize(("given", "expected"), [p[1:] for p in PUSHES],
                         ids=[p[0] for p in PUSHES])
def test_plan_push(given: dict[str, Any], expected: object) -> None:
    args: dict[str, Any] = {"delete_policy": "keep_remote", "fields": {"consent"}, **given}
    assert plan_push(record_id=1, **args) == expected


def test_gdpr_reason() -> None:
    assert gdpr_reason("a@x.example", True) is None
    assert gdpr_reason(None, True) == "no email"
