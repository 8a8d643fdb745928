"""Money and numbers per language, and the method's hints, from plain rows."""

from __future__ import annotations

import datetime as dt

import pytest

from crmsync.report.board import compute_board, parse_moment, qualifies
from crmsync.report.queries import ContactRow, DealRow
from crmsync.report.words import (
    NARROW_NBSP,
    NBSP,
    format_money,
    format_number,
    format_percent,
    language_of,
)
from tests.report.seeding import AS_OF, at, blueprint


@pytest.mark.parametrize(("language", "currency", "value", "expected"), [
    ("en", "EUR", 1234567.4, "€1,234,567"),
    ("en", "CHF", 950, f"CHF{NBSP}950"),
    ("de", "EUR", 1234567.5, f"1.234.568{NBSP}€"),
    ("uk", "UAH", 1234567, f"1{NARROW_NBSP}234{NARROW_NBSP}567{NBSP}₴"),
    ("de", "XYZ", 12, f"12{NBSP}XYZ"),
    ("en", "EUR", -2500, "€-2,500"),
    ("en", "EUR", -0.2, "€0"),
])
def test_money(language: str, currency: str, value: float, expected: str) -> None:
    assert format_money(value, currency, language) == expected


def test_numbers_and_percent() -> None:
    assert format_number(1234.5, "de", 1) == "1.234,5"
    assert format_number(1234.5, "uk", 2) == f"1{NARROW_NBSP}234,50"
    assert format_number(1234.5, "en", 1) == "1,234.5"
    assert format_percent(0.755, "en") == "76%"
    assert format_percent(0.1, "de") == f"10{NBSP}%"
    assert language_of("uk") == "uk"
    assert language_of("fr") == "en"
    assert language_of(None) == "en"


def test_sales_qualified_matching_and_dates() -> None:
    assert qualifies("SalesQualifiedLead ", ["salesqualifiedlead"])
    assert qualifies(["Lead", "SQL"], ["sql"])
    assert not qualifies(None, ["sql"])
    assert not qualifies(["Lead"], ["sql"])
    assert parse_moment("1767225600000") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_moment("2026-01-01 10:00:00") == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert parse_moment("2026-01-01T10:00:00Z") == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert parse_moment("not a date") is None


def _deal(i: int, stage: str, *, owner: str | None = "u1", entered: float = 1,
          linked: bool = True) -> DealRow:
    return DealRow(id=i, name=f"D{i}", amount=100.0, currency=None,
                   pipeline_key="new_business", stage_key=stage, status="open",
                   owner_id=owner, stage_changed_at=at(entered), remote_created_at=at(90),
                   has_contact=linked, has_company=linked)


def _kinds(board_hints: tuple[object, ...]) -> list[str]:
    return [h.kind for h in board_hints]  # type: ignore[attr-defined]


def test_thin_first_stage_and_strong_late_stages() -> None:
    deals = ([_deal(1, "meeting_booked")]
             + [_deal(10 + i, "contract_sent") for i in range(4)]
             + [_deal(20 + i, "needs_assessed") for i in range(2)])
    board = compute_board(blueprint("hubspot"), deals, [], AS_OF)
    hints = {h.kind: h.text for h in board.hints}
    assert hints["acquisition"] == ("New business: Few deals in the first stage "
                                    "'Meeting booked' (1): time to step up acquisition.")
    # late = the second half of the 4 open stages: proposal_sent, contract_sent
    assert hints["strong"].startswith("New business: 4 of 7 open deals are in late stages")
    assert "€320" in hints["strong"]  # 4 × 100 × 0.8


def test_healthy_funnel_gives_neither_hint() -> None:
    deals = ([_deal(i, "meeting_booked") for i in range(6)]
             + [_deal(10 + i, "needs_assessed") for i in range(3)]
             + [_deal(20, "proposal_sent")])
    kinds = _kinds(compute_board(blueprint("hubspot"), deals, [], AS_OF).hints)
    assert "acquisition" not in kinds
    assert "strong" not in kinds


def test_who_to_call_names_owners_of_stuck_deals() -> None:
    deals = [_deal(1, "contract_sent", owner="anna", entered=8),
             _deal(2, "contract_sent", owner="anna", entered=20),
             _deal(3, "meeting_booked", owner=None, entered=11),
             _deal(4, "contract_sent", owner="ben", entered=7)]  # at the limit: not stuck
    board = compute_board(blueprint("hubspot"), deals, [], AS_OF)
    call = next(h.text for h in board.hints if h.kind == "call")
    assert call == ("Who to call: owner anna (2), no owner (1) — their deals are past the "
                    "stage's limit.")


def test_handoff_hints_in_german_and_ukrainian() -> None:
    contacts = [ContactRow(1, None, True, properties={"lifecyclestage": "salesqualifiedlead",
                                                      "createdate": "2025-12-01"}),
                ContactRow(2, "x@example.com", False)]
    deals = [_deal(1, "meeting_booked", linked=False)]
    de = compute_board(blueprint("hubspot", language="de"), deals, contacts, AS_OF)
    texts = {h.kind: h.text for h in de.hints}
    assert texts["waiting"].startswith("1 vertriebsreife Kontakte warten seit über 14 Tagen")
    assert texts["unlinked"].startswith("1 offene Deals ohne Kontakt oder Firma")
    assert texts["held"].startswith("2 Kontakte zurückgehalten")
    uk = compute_board(blueprint("hubspot", language="uk"), deals, contacts, AS_OF)
    assert {h.kind for h in uk.hints} >= {"waiting", "unlinked", "held"}
    assert "Готових до продажу контактів без угоди понад 14 днів: 1" in \
        next(h.text for h in uk.hints if h.kind == "waiting")


def test_missing_sales_qualified_field_is_pointed_out() -> None:
    contacts = [ContactRow(1, "a@example.com", True, properties={"createdate": "2026-01-01"})]
    board = compute_board(blueprint("pipedrive"), [_deal(1, "meeting_booked")], contacts,
                          AS_OF)
    hint = next(h.text for h in board.hints if h.kind == "no_field")
    assert "'lifecycle_stage'" in hint
    assert "report.sales_qualified" in hint
