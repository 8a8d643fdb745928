"""The board: one client's pipelines stage by stage, the won and lost, and the handoff.

`compute_board` is pure: a blueprint, the client's deal and contact rows (`queries.py`) and
"today" in, a frozen `Board` out. Renderers (`render.py`, `html.py`) and `--json` read the
same object, so every format shows the same numbers.

Definitions (what the tests check independently):
- an **open** deal is status `open` (or none); it sits on the board when its pipeline and
  stage are an open stage of the blueprint, otherwise on the *unmanaged* line;
- **value** is the deal's amount when its currency is the blueprint's (or unset); amounts
  in another currency are counted as deals but left out of every sum (`foreign_currency`);
- **weighted** value is value × the stage's probability; the forecast is their sum;
- **days in stage** count whole days from the date the deal entered its stage (else was
  created) to `as_of`; a deal is **stuck** when that exceeds the stage's `rot_after_days`;
- **won / lost in the last N days**: closed on a date d with `as_of - N < d <= as_of`;
  win rate = won / (won + lost); **cycle** = closed − created in days, averaged over the won;
- the **handoff**: a contact is sales-qualified when the declared field holds one of the
  declared values; it *waits* when no open deal names it or its company and it qualified
  more than `handoff_days` days ago. Open deals missing a contact or a company are listed;
  contacts without an email, or whose consent is False, are held back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crmsync.report import words
from crmsync.report.words import format_money, language_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from crmsync.blueprint.models import Blueprint, Pipeline, SalesQualified, Stage
    from crmsync.report.queries import ContactRow, DealRow

WINDOWS = (30, 90)
# The method's reading of the board (DESIGN.md, "Then look at the board"), as thresholds:
# the first stage is "thin" when it holds fewer deals than the later open stages on average;
# "late" stages are the second half of the open stages, "many" is 40 % of open deals or more.
LATE_SHARE = 0.4


@dataclass(frozen=True)
class StuckDeal:
    deal_id: int
    name: str
    pipeline_key: str
    stage_key: str
    stage_label: str
    owner_id: str | None
    days_in_stage: int
    limit_days: int
    amount: float | None


@dataclass(frozen=True)
class StageColumn:
    key: str
    label: str
    probability: float
    rot_after_days: int | None
    open_deals: int
    total_value: float
    weighted_value: float
    avg_days_in_stage: float | None
    stuck: tuple[StuckDeal, ...]


@dataclass(frozen=True)
class ClosedWindow:
    days: int
    won: int
    lost: int
    won_value: float
    win_rate: float | None  # won / (won + lost); None when nothing closed
    avg_cycle_days: float | None  # over the won deals


@dataclass(frozen=True)
class PipelineBoard:
    key: str
    label: str
    stages: tuple[StageColumn, ...]
    open_deals: int
    total_value: float
    weighted_value: float
    closed: tuple[ClosedWindow, ...]


@dataclass(frozen=True)
class Unmanaged:
    """Deals in pipelines or stages no blueprint manages: counted, never dropped."""

    open_deals: int
    total_value: float
    closed: tuple[ClosedWindow, ...]


@dataclass(frozen=True)
class WaitingContact:
    contact_id: int
    name: str
    email: str | None
    owner_id: str | None
    qualified_on: dt.date | None
    days_waiting: int


@dataclass(frozen=True)
class UnlinkedDeal:
    deal_id: int
    name: str
    pipeline_key: str | None
    stage_key: str | None
    amount: float | None
    missing_contact: bool
    missing_company: bool


@dataclass(frozen=True)
class HeldBackContact:
    contact_id: int
    name: str
    email: str | None
    no_email: bool
    no_consent: bool


@dataclass(frozen=True)
class Handoff:
    field: str
    values: tuple[str, ...]
    days: int
    field_seen: bool  # some contact has the declared field at all
    qualified: int  # sales-qualified contacts, waiting or not
    waiting: tuple[WaitingContact, ...]
    unlinked: tuple[UnlinkedDeal, ...]
    held_back: tuple[HeldBackContact, ...]
    contacts: int = 0  # live contacts read

    @property
    def no_email(self) -> int:
        return sum(1 for c in self.held_back if c.no_email)

    @property
    def no_consent(self) -> int:
        return sum(1 for c in self.held_back if c.no_consent)


@dataclass(frozen=True)
class Hint:
    kind: str  # acquisition | strong | call | waiting | unlinked | held | no_field
    text: str


@dataclass(frozen=True)
class Board:
    client: str
    crm: str
    currency: str
    language: str
    as_of: dt.date
    pipelines: tuple[PipelineBoard, ...]
    open_deals: int  # on the board (managed pipelines)
    total_value: float
    weighted_value: float  # the weighted forecast
    closed: tuple[ClosedWindow, ...]  # over the managed pipelines
    unmanaged: Unmanaged
    foreign_currency: tuple[tuple[str, int], ...]  # (currency, deals) left out of the sums
    handoff: Handoff
    hints: tuple[Hint, ...] = ()
    deals_seen: int = 0  # live deals read, every status and pipeline

    def money(self, value: float) -> str:
        return format_money(value, self.currency, self.language)


# --- building blocks ---------------------------------------------------------------------------

@dataclass
class _Closed:
    won: int = 0
    lost: int = 0
    won_value: float = 0.0
    cycles: list[float] = field(default_factory=list)

    def frozen(self, days: int) -> ClosedWindow:
        closed = self.won + self.lost
        return ClosedWindow(days, self.won, self.lost, self.won_value,
                            self.won / closed if closed else None,
                            sum(self.cycles) / len(self.cycles) if self.cycles else None)


@dataclass
class _Stage:
    stage: Stage
    count: int = 0
    value: float = 0.0
    days: list[int] = field(default_factory=list)
    stuck: list[StuckDeal] = field(default_factory=list)


def _windows() -> dict[int, _Closed]:
    return {days: _Closed() for days in WINDOWS}


def _deal_name(deal: DealRow) -> str:
    return deal.name or f"#{deal.id}"


def _contact_name(contact: ContactRow) -> str:
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return name or contact.email or f"#{contact.id}"


def days_between(earlier: dt.date, as_of: dt.date) -> int:
    return (as_of - earlier).days


def parse_moment(value: Any) -> dt.datetime | None:
    """A property's date or time: ISO text, a `date`/`datetime`, or epoch milliseconds."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raw = str(value).strip()
    try:
        if raw.isdigit():  # HubSpot date properties may come as epoch milliseconds
            return dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def qualifies(value: Any, wanted: Iterable[str]) -> bool:
    """Whether a property value is one of `wanted` (case-insensitive; any option of a list)."""
    targets = {w.strip().casefold() for w in wanted}
    items = value if isinstance(value, list | tuple) else [value]
    return any(item is not None and str(item).strip().casefold() in targets for item in items)


# Where each CRM keeps a contact's creation time among its properties.
_CREATED = ("createdate", "add_time")


def qualified_on(contact: ContactRow, rule: SalesQualified) -> dt.date | None:
    """When the contact became sales-qualified: the declared date field, else its creation
    time in the CRM, else when the store first saw it."""
    props: Mapping[str, Any] = contact.properties
    names = ((rule.since_field,) if rule.since_field else ()) + _CREATED
    for name in names:
        moment = parse_moment(props.get(name))
        if moment is not None:
            return moment.date()
    return contact.created_at.date() if contact.created_at else None


# --- the board ---------------------------------------------------------------------------------

def compute_board(blueprint: Blueprint, deals: Iterable[DealRow],
                  contacts: Iterable[ContactRow], as_of: dt.date) -> Board:
    """The board of one client on `as_of` (see the module docstring for every definition)."""
    currency = blueprint.currency
    stages: dict[tuple[str, str], _Stage] = {
        (p.key, s.key): _Stage(s) for p in blueprint.pipelines for s in p.open_stages}
    closed: dict[str | None, dict[int, _Closed]] = {p.key: _windows() for p in blueprint.pipelines}
    closed[None] = _windows()  # unmanaged
    unmanaged_open, unmanaged_value = 0, 0.0
    foreign: Counter[str] = Counter()
    unlinked: list[UnlinkedDeal] = []
    seen = 0

    for deal in deals:
        seen += 1
        if deal.currency and deal.currency != currency:
            foreign[deal.currency] += 1
            value = 0.0
        else:
            value = deal.amount or 0.0
        if deal.status in ("won", "lost"):
            _count_closed(deal, value, closed.get(deal.pipeline_key, closed[None]), as_of)
            continue
        if not (deal.has_contact and deal.has_company):
            unlinked.append(UnlinkedDeal(deal.id, _deal_name(deal), deal.pipeline_key,
                                         deal.stage_key, deal.amount, not deal.has_contact,
                                         not deal.has_company))
        column = stages.get((deal.pipeline_key or "", deal.stage_key or ""))
        if column is None:
            unmanaged_open += 1
            unmanaged_value += value
            continue
        column.count += 1
        column.value += value
        entered = deal.stage_changed_at or deal.remote_created_at
        if entered is None:
            continue
        days = max(0, days_between(entered.date(), as_of))
        column.days.append(days)
        limit = column.stage.rot_after_days
        if limit is not None and days > limit:
            column.stuck.append(StuckDeal(
                deal.id, _deal_name(deal), deal.pipeline_key or "", column.stage.key,
                column.stage.label, deal.owner_id, days, limit, deal.amount))

    pipelines = tuple(_pipeline_board(p, stages, closed[p.key]) for p in blueprint.pipelines)
    client_closed = _sum_windows(closed, blueprint)
    unlinked.sort(key=lambda d: (-(d.amount or 0.0), d.deal_id))
    board = Board(
        client=blueprint.client, crm=blueprint.crm, currency=currency,
        language=language_of(blueprint.language), as_of=as_of, pipelines=pipelines,
        open_deals=sum(p.open_deals for p in pipelines),
        total_value=sum(p.total_value for p in pipelines),
        weighted_value=sum(p.weighted_value for p in pipelines),
        closed=client_closed,
        unmanaged=Unmanaged(unmanaged_open, unmanaged_value,
                            tuple(w.frozen(d) for d, w in closed[None].items())),
        foreign_currency=tuple(sorted(foreign.items())),
        handoff=_handoff(blueprint, contacts, tuple(unlinked), as_of),
        deals_seen=seen,
    )
    return _with_hints(board)


def _count_closed(deal: DealRow, value: float, windows: dict[int, _Closed],
                  as_of: dt.date) -> None:
    if deal.closed_at is None:
        return
    age = days_between(deal.closed_at.date(), as_of)
    for days, window in windows.items():
        if not 0 <= age < days:
            continue
        if deal.status == "lost":
            window.lost += 1
            continue
        window.won += 1
        window.won_value += value
        if deal.remote_created_at is not None:
            window.cycles.append(
                (deal.closed_at - deal.remote_created_at).total_seconds() / 86400)


def _pipeline_board(pipeline: Pipeline, stages: Mapping[tuple[str, str], _Stage],
                    windows: dict[int, _Closed]) -> PipelineBoard:
    columns = []
    for stage in pipeline.open_stages:
        acc = stages[(pipeline.key, stage.key)]
        columns.append(StageColumn(
            key=stage.key, label=stage.label, probability=stage.probability,
            rot_after_days=stage.rot_after_days, open_deals=acc.count, total_value=acc.value,
            weighted_value=acc.value * stage.probability,
            avg_days_in_stage=sum(acc.days) / len(acc.days) if acc.days else None,
            stuck=tuple(sorted(acc.stuck, key=lambda s: (-s.days_in_stage, s.deal_id)))))
    return PipelineBoard(
        key=pipeline.key, label=pipeline.label, stages=tuple(columns),
        open_deals=sum(c.open_deals for c in columns),
        total_value=sum(c.total_value for c in columns),
        weighted_value=sum(c.weighted_value for c in columns),
        closed=tuple(w.frozen(d) for d, w in windows.items()))


def _sum_windows(closed: dict[str | None, dict[int, _Closed]], blueprint: Blueprint
                 ) -> tuple[ClosedWindow, ...]:
    result = []
    for days in WINDOWS:
        total = _Closed()
        for pipeline in blueprint.pipelines:
            window = closed[pipeline.key][days]
            total.won += window.won
            total.lost += window.lost
            total.won_value += window.won_value
            total.cycles.extend(window.cycles)
        result.append(total.frozen(days))
    return tuple(result)


def _handoff(blueprint: Blueprint, contacts: Iterable[ContactRow],
             unlinked: tuple[UnlinkedDeal, ...], as_of: dt.date) -> Handoff:
    rule = blueprint.report.sales_qualified_for(blueprint.crm)
    limit = blueprint.report.handoff_days
    waiting: list[WaitingContact] = []
    held: list[HeldBackContact] = []
    field_seen = False
    qualified = seen = 0
    for contact in contacts:
        seen += 1
        no_email = not (contact.email and contact.email.strip())
        no_consent = contact.consent is False
        if no_email or no_consent:
            held.append(HeldBackContact(contact.id, _contact_name(contact), contact.email,
                                        no_email, no_consent))
        value = contact.properties.get(rule.field)
        if value is not None and value not in ("", []):
            field_seen = True
        if not qualifies(value, rule.values):
            continue
        qualified += 1
        if contact.has_open_deal:
            continue
        since = qualified_on(contact, rule)
        days = days_between(since, as_of) if since else None
        if days is not None and days > limit:
            waiting.append(WaitingContact(contact.id, _contact_name(contact), contact.email,
                                          contact.owner_id, since, days))
    waiting.sort(key=lambda c: (-c.days_waiting, c.contact_id))
    return Handoff(rule.field, rule.values, limit, field_seen, qualified, tuple(waiting),
                   unlinked, tuple(held), seen)


def _with_hints(board: Board) -> Board:
    return replace(board, hints=tuple(hints_for(board)))


def hints_for(board: Board) -> list[Hint]:
    """One-line hints drawn from the method, in the board's language."""
    lang = board.language
    hints: list[Hint] = []
    several = len(board.pipelines) > 1
    for pipeline in board.pipelines:
        prefix = f"{pipeline.label}: " if several else ""
        counts = [s.open_deals for s in pipeline.stages]
        if (len(counts) >= 2 and pipeline.open_deals
                and counts[0] < sum(counts[1:]) / len(counts[1:])):
            hints.append(Hint("acquisition", prefix + words.text(
                "hint_acquisition", lang, stage=pipeline.stages[0].label, count=counts[0])))
        late = pipeline.stages[math.ceil(len(counts) / 2):] if len(counts) >= 2 else ()
        late_count = sum(s.open_deals for s in late)
        if pipeline.open_deals and late_count / pipeline.open_deals >= LATE_SHARE:
            hints.append(Hint("strong", prefix + words.text(
                "hint_strong", lang, count=late_count, total=pipeline.open_deals,
                weighted=board.money(sum(s.weighted_value for s in late)))))
    owners = Counter(d.owner_id for p in board.pipelines for s in p.stages for d in s.stuck)
    if owners:
        listed = ", ".join(words.text("owner_count", lang, owner=owner, count=n) if owner
                           else words.text("no_owner_count", lang, count=n)
                           for owner, n in sorted(owners.items(),
                                                  key=lambda o: (-o[1], o[0] or "")))
        hints.append(Hint("call", words.text("hint_call", lang, owners=listed)))
    handoff = board.handoff
    if handoff.waiting:
        hints.append(Hint("waiting", words.text("hint_waiting", lang,
                                                count=len(handoff.waiting), days=handoff.days)))
    elif not handoff.field_seen and handoff.contacts:
        hints.append(Hint("no_field", words.text("hint_no_field", lang, field=handoff.field)))
    if handoff.unlinked:
        hints.append(Hint("unlinked", words.text("hint_unlinked", lang,
                                                 count=len(handoff.unlinked))))
    if handoff.held_back:
        hints.append(Hint("held", words.text("hint_held", lang, count=len(handoff.held_back))))
    return hints
