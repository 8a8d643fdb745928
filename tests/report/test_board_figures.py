"""Every figure of the board against an independent computation over the seeded specs.

Both CRMs' shapes (HubSpot: closed deals in outcome stages, SQL date as epoch ms; Pipedrive:
closed deals keep their stage, amounts in two currencies, the SQL field a custom field by
label) on SQLite and PostgreSQL, with a fixed "today".
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.report import board_for
from tests.report.seeding import (
    AS_OF,
    BLUEPRINT,
    OPEN_STAGES,
    Account,
    SeedDeal,
    blueprint,
    generate,
    seed,
)

if TYPE_CHECKING:
    from crmsync.report.board import Board
    from crmsync.store import Store

CRMS = ["hubspot", "pipedrive"]


class Oracle:
    """The board's definitions (board.py's docstring), recomputed from the specs alone."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.deals = [d for d in account.deals if not d.deleted]
        self.live_contacts = {p.remote_id for p in account.contacts if not p.deleted}
        self.live_companies = {c.remote_id for c in account.companies if not c.deleted}
        self.stages = {(p["key"], s["key"]): s for p in BLUEPRINT["pipelines"]
                       for s in p["stages"]}

    @staticmethod
    def value(deal: SeedDeal) -> float:
        return 0.0 if deal.currency not in (None, "EUR") else (deal.amount or 0.0)

    def on_board(self, deal: SeedDeal) -> bool:
        return (deal.status == "open" and deal.pipeline_key in OPEN_STAGES
                and deal.stage_key in OPEN_STAGES[deal.pipeline_key])

    def in_stage(self, pipeline: str, stage: str) -> list[SeedDeal]:
        return [d for d in self.deals if self.on_board(d) and d.pipeline_key == pipeline
                and d.stage_key == stage]

    @staticmethod
    def days_in_stage(deal: SeedDeal) -> int:
        entered = deal.stage_changed or deal.created
        return (AS_OF - entered.date()).days

    def closed(self, pipelines: set[str | None], days: int) -> list[SeedDeal]:
        return [d for d in self.deals if d.status in ("won", "lost")
                and d.pipeline_key in pipelines and d.closed is not None
                and 0 <= (AS_OF - d.closed.date()).days < days]

    def open_deal_for(self, contact_id: str, company: str | None) -> bool:
        return any(d.status == "open" and (
            d.contact == contact_id
            or (company is not None and company in self.live_companies and d.company == company))
            for d in self.deals)

    def qualified_since(self, props: dict[str, Any]) -> dt.date:
        if "hs_lifecyclestage_salesqualifiedlead_date" in props:
            ms = int(props["hs_lifecyclestage_salesqualifiedlead_date"])
            return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()
        if "createdate" in props:
            return dt.date.fromisoformat(props["createdate"][:10])
        return dt.date.fromisoformat(props["add_time"][:10])


@pytest.fixture(params=CRMS)
def seeded(request: pytest.FixtureRequest, store: Store) -> tuple[Board, Oracle]:
    crm = request.param
    account = generate(crm)
    seed(store, "acme", account)
    seed(store, "other", generate(crm, seed=5, deals=30, contacts=10))  # never counted
    return board_for(blueprint(crm), store, AS_OF), Oracle(account)


def test_stage_figures(seeded: tuple[Board, Oracle]) -> None:
    board, oracle = seeded
    assert [p.key for p in board.pipelines] == ["new_business", "renewals"]
    for pipeline in board.pipelines:
        assert [s.key for s in pipeline.stages] == OPEN_STAGES[pipeline.key]  # blueprint order
        for stage in pipeline.stages:
            deals = oracle.in_stage(pipeline.key, stage.key)
            spec = oracle.stages[(pipeline.key, stage.key)]
            total = sum(oracle.value(d) for d in deals)
            assert stage.open_deals == len(deals)
            assert stage.total_value == pytest.approx(total)
            assert stage.weighted_value == pytest.approx(total * spec["probability"])
            days = [oracle.days_in_stage(d) for d in deals]
            assert stage.avg_days_in_stage == pytest.approx(sum(days) / len(days))
            limit = spec.get("rot_after_days")
            expected = sorted((d.name, oracle.days_in_stage(d), d.owner) for d in deals
                               if limit is not None and oracle.days_in_stage(d) > limit)
            assert sorted((s.name, s.days_in_stage, s.owner_id) for s in stage.stuck) == expected
            if limit is None:
                assert stage.stuck == ()
    assert sum(len(s.stuck) for p in board.pipelines for s in p.stages) > 5  # data has some


def test_totals_forecast_and_unmanaged(seeded: tuple[Board, Oracle]) -> None:
    board, oracle = seeded
    for pipeline in board.pipelines:
        deals = [d for d in oracle.deals if oracle.on_board(d)
                 and d.pipeline_key == pipeline.key]
        assert pipeline.open_deals == len(deals)
        assert pipeline.total_value == pytest.approx(sum(oracle.value(d) for d in deals))
        assert pipeline.weighted_value == pytest.approx(sum(
            oracle.value(d) * oracle.stages[(pipeline.key, d.stage_key or "")]["probability"]
            for d in deals))
    on_board = [d for d in oracle.deals if oracle.on_board(d)]
    assert board.open_deals == len(on_board)
    assert board.weighted_value == pytest.approx(sum(
        oracle.value(d) * oracle.stages[(d.pipeline_key or "", d.stage_key or "")]["probability"]
        for d in on_board))
    unmanaged = [d for d in oracle.deals if d.status == "open" and not oracle.on_board(d)]
    assert unmanaged, "the seeded data has deals outside the blueprint"
    assert board.unmanaged.open_deals == len(unmanaged)
    assert board.unmanaged.total_value == pytest.approx(sum(oracle.value(d) for d in unmanaged))
    assert board.deals_seen == len(oracle.deals)
    foreign = sum(1 for d in oracle.deals if d.currency not in (None, "EUR"))
    assert dict(board.foreign_currency) == ({"USD": foreign} if foreign else {})
    if oracle.account.crm == "pipedrive":
        assert foreign > 0


@pytest.mark.parametrize("days", [30, 90])
def test_won_lost_win_rate_and_cycle(seeded: tuple[Board, Oracle], days: int) -> None:
    board, oracle = seeded
    scopes: list[tuple[Any, set[str | None]]] = [
        *((p, {p.key}) for p in board.pipelines),
        (board, {"new_business", "renewals"}),
        (board.unmanaged, {None})]
    for holder, keys in scopes:
        window = next(w for w in holder.closed if w.days == days)
        closed = oracle.closed(keys, days)
        won = [d for d in closed if d.status == "won"]
        lost = [d for d in closed if d.status == "lost"]
        assert (window.won, window.lost) == (len(won), len(lost))
        assert window.won_value == pytest.approx(sum(oracle.value(d) for d in won))
        if closed:
            assert window.win_rate == pytest.approx(len(won) / len(closed))
        else:
            assert window.win_rate is None
        cycles = [(d.closed - d.created).total_seconds() / 86400 for d in won
                  if d.closed is not None]
        if cycles:
            assert window.avg_cycle_days == pytest.approx(sum(cycles) / len(cycles))
        else:
            assert window.avg_cycle_days is None
    assert next(w for w in board.closed if w.days == days).won > 0


def test_handoff_lists(seeded: tuple[Board, Oracle]) -> None:
    board, oracle = seeded
    handoff = board.handoff
    contacts = [p for p in oracle.account.contacts if not p.deleted]
    held = {p.first_name: (p.email is None, p.consent is False) for p in contacts
            if p.email is None or p.consent is False}
    assert {c.name: (c.no_email, c.no_consent) for c in handoff.held_back} == held
    assert handoff.no_email == sum(1 for p in contacts if p.email is None)
    assert handoff.no_consent == sum(1 for p in contacts if p.consent is False)

    sql_value = {"hubspot": "salesqualifiedlead", "pipedrive": "Sales qualified lead"}[
        oracle.account.crm]
    sql_field = {"hubspot": "lifecyclestage", "pipedrive": "lifecycle_stage"}[
        oracle.account.crm]
    qualified = [p for p in contacts if p.properties.get(sql_field) == sql_value]
    assert handoff.qualified == len(qualified)
    waiting = {p.first_name: (AS_OF - oracle.qualified_since(p.properties)).days
               for p in qualified if not oracle.open_deal_for(p.remote_id, p.company)
               and (AS_OF - oracle.qualified_since(p.properties)).days > 14}
    assert {c.name: c.days_waiting for c in handoff.waiting} == waiting
    assert waiting, "the seeded data has contacts waiting"
    assert [c.days_waiting for c in handoff.waiting] == sorted(waiting.values(), reverse=True)

    unlinked = {d.name: (d.contact not in oracle.live_contacts,
                         d.company not in oracle.live_companies)
                for d in oracle.deals if d.status == "open"
                and (d.contact not in oracle.live_contacts
                     or d.company not in oracle.live_companies)}
    assert {d.name: (d.missing_contact, d.missing_company) for d in handoff.unlinked} == unlinked
    assert any(a and b for a, b in unlinked.values()) or len(unlinked) > 3


def test_declared_sales_qualified_and_days(store: Store) -> None:
    account = generate("pipedrive")
    for person in account.contacts:  # a Pipedrive multi-option field, declared by the client
        stage = person.properties.pop("lifecycle_stage")
        person.properties["lead_tags"] = ["Newsletter", "SQL"] if stage != "Lead" else ["Lead"]
    seed(store, "acme", account)
    declared = blueprint("pipedrive", report={
        "sales_qualified": {"field": "lead_tags", "values": ["sql"]}, "handoff_days": 60})
    board = board_for(declared, store, AS_OF)
    oracle = Oracle(account)
    live = [p for p in account.contacts if not p.deleted]
    qualified = [p for p in live if "SQL" in p.properties["lead_tags"]]
    assert board.handoff.qualified == len(qualified)
    assert board.handoff.days == 60
    expected = {p.first_name for p in qualified
                if not oracle.open_deal_for(p.remote_id, p.company)
                and (AS_OF - oracle.qualified_since(p.properties)).days > 60}
    assert {c.name for c in board.handoff.waiting} == expected
    assert board.handoff.field_seen


def test_empty_store_gives_an_empty_board_with_a_note(store: Store) -> None:
    board = board_for(blueprint("hubspot"), store, AS_OF)
    assert board.deals_seen == 0
    assert board.open_deals == 0
    assert all(s.open_deals == 0 and s.avg_days_in_stage is None
               for p in board.pipelines for s in p.stages)
    assert board.closed[0].win_rate is None
    assert board.handoff.waiting == ()
