"""The board as data (`board_to_json`) and as a terminal view (`render_terminal`, rich)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from crmsync.report import words
from crmsync.report.words import format_days, format_number, format_percent

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from crmsync.report.board import (
        Board,
        ClosedWindow,
        PipelineBoard,
        StuckDeal,
        UnlinkedDeal,
        WaitingContact,
    )

BAR_WIDTH = 20
TERMINAL_LIST = 10  # rows of each list shown in the terminal (--json has them all)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def board_to_json(board: Board) -> dict[str, Any]:
    """Every figure of the board, JSON-ready (money as numbers in the board's currency)."""
    data = dataclasses.asdict(board)
    data["foreign_currency"] = [{"currency": c, "deals": n} for c, n in board.foreign_currency]
    data["handoff"]["no_email"] = board.handoff.no_email
    data["handoff"]["no_consent"] = board.handoff.no_consent
    return dict(_plain(data))


# --- terminal ---------------------------------------------------------------------------------

def _bar(count: int, widest: int) -> str:
    if widest <= 0:
        return ""
    cells = count / widest * BAR_WIDTH
    full = int(cells)
    # eighth blocks so that small differences still show
    part = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < BAR_WIDTH else ""
    return ("█" * full + part.strip()) or ("▏" if count else "")


def _days(board: Board, days: float | None) -> str:
    if days is None:
        return words.text("none", board.language)
    return format_days(days, board.language)


def _closed_line(board: Board, window: ClosedWindow) -> str:
    lang = board.language
    rate = (format_percent(window.win_rate, lang) if window.win_rate is not None
            else words.text("none", lang))
    cycle = (words.text("days_unit", lang, days=format_days(window.avg_cycle_days, lang))
             if window.avg_cycle_days is not None else words.text("none", lang))
    return words.text("closed_line", lang, days=window.days, won=window.won,
                      won_value=board.money(window.won_value), lost=window.lost, rate=rate,
                      cycle=cycle)


def _pipeline_table(board: Board, pipeline: PipelineBoard) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    lang = board.language
    t = words.text
    table = Table(title=escape(f"{pipeline.label} ({pipeline.key})"), title_justify="left",
                  title_style="bold", show_footer=True, header_style="bold", expand=False)
    widest = max((s.open_deals for s in pipeline.stages), default=0)
    table.add_column(t("stage", lang), t("total", lang), max_width=40)
    table.add_column(t("prob_short", lang), "", justify="right", style="dim")
    table.add_column(t("deals", lang), str(pipeline.open_deals), justify="right")
    table.add_column("", "", no_wrap=True, style="cyan")
    table.add_column(t("value", lang), board.money(pipeline.total_value), justify="right")
    table.add_column(t("weighted", lang), board.money(pipeline.weighted_value),
                     justify="right")
    table.add_column(t("avg_days", lang), "", justify="right")
    stuck_total = sum(len(s.stuck) for s in pipeline.stages)
    table.add_column(t("stuck", lang), str(stuck_total) if stuck_total else "",
                     justify="right", style="red")
    for stage in pipeline.stages:
        table.add_row(escape(stage.label), format_percent(stage.probability, lang),
                      str(stage.open_deals),
                      _bar(stage.open_deals, widest), board.money(stage.total_value),
                      board.money(stage.weighted_value), _days(board, stage.avg_days_in_stage),
                      str(len(stage.stuck)) if stage.stuck else "")
    return table


def _more(lines: list[str], total: int, lang: str, indent: str) -> list[str]:
    if total > len(lines):
        more = words.text("more", lang, count=format_number(total - len(lines), lang))
        lines.append(f"{indent}{more}")
    return lines


def board_lines(board: Board) -> list[str]:
    """The board's text below the tables: won/lost, stuck deals, handoff, hints (plain)."""
    lang = board.language
    t = words.text
    lines: list[str] = []
    if board.unmanaged.open_deals:
        lines.append(t("unmanaged_line", lang, deals=board.unmanaged.open_deals,
                       value=board.money(board.unmanaged.total_value)))
    for currency, deals in board.foreign_currency:
        lines.append(t("foreign_currency", lang, deals=deals, currency=currency))
    lines.append(f"{t('forecast', lang)}: {board.money(board.weighted_value)} "
                 f"({t('total', lang)} {board.money(board.total_value)}, "
                 f"{t('deals', lang)} {board.open_deals})")
    lines.append(f"{t('closed_title', lang)}:")
    lines.extend(f"  {_closed_line(board, w)}" for w in board.closed)
    stuck = sorted((d for p in board.pipelines for s in p.stages for d in s.stuck),
                   key=lambda d: (-d.days_in_stage, d.deal_id))
    if stuck:
        lines.append(f"{t('stuck_title', lang)} ({len(stuck)}):")
        lines.extend(_more([f"  {stuck_line(board, d)}" for d in stuck[:TERMINAL_LIST]],
                           len(stuck), lang, "  "))
    handoff = board.handoff
    lines.append(f"{t('handoff', lang)}:")
    lines.append(f"  {t('waiting_title', lang, days=handoff.days)}: {len(handoff.waiting)}")
    lines.extend(_more([f"    {waiting_line(board, c)}" for c in
                        handoff.waiting[:TERMINAL_LIST]], len(handoff.waiting), lang, "    "))
    lines.append(f"  {t('unlinked_title', lang)}: {len(handoff.unlinked)}")
    lines.extend(_more([f"    {unlinked_line(board, d)}" for d in
                        handoff.unlinked[:TERMINAL_LIST]], len(handoff.unlinked), lang,
                       "    "))
    lines.append(f"  {t('held_title', lang)}: " + t(
        "held_line", lang, total=len(handoff.held_back), no_email=handoff.no_email,
        no_consent=handoff.no_consent))
    if board.hints:
        lines.append(f"{t('hints', lang)}:")
        lines.extend(f"  → {h.text}" for h in board.hints)
    return lines


def stuck_line(board: Board, deal: StuckDeal) -> str:
    lang = board.language
    return words.text(
        "stuck_line", lang, name=deal.name, stage=deal.stage_label,
        days=words.text("days_unit", lang, days=deal.days_in_stage),
        limit=deal.limit_days, owner=deal.owner_id or words.text("no_owner", lang))


def waiting_line(board: Board, contact: WaitingContact) -> str:
    lang = board.language
    who = contact.name if not contact.email or contact.email == contact.name else (
        f"{contact.name} <{contact.email}>")
    return words.text("waiting_line", lang, name=who, days=contact.days_waiting)


def unlinked_line(board: Board, deal: UnlinkedDeal) -> str:
    lang = board.language
    missing = [words.text(k, lang) for k, flag in
               (("missing_contact", deal.missing_contact),
                ("missing_company", deal.missing_company)) if flag]
    amount = f", {board.money(deal.amount)}" if deal.amount else ""
    return f"{deal.name}{amount}: {', '.join(missing)}"


def render_terminal(board: Board, console: Console) -> None:
    """Print one client's board: a table per pipeline with a bar per stage, then the rest."""
    from rich.markup import escape

    lang = board.language
    console.print(f"[bold]{escape(board.client)} ({board.crm})[/bold] — "
                  f"{words.text('title', lang)}, "
                  f"{words.text('as_of', lang, date=board.as_of.isoformat())}")
    if not board.deals_seen:
        console.print(words.text("no_deals", lang))
    for pipeline in board.pipelines:
        console.print(_pipeline_table(board, pipeline))
    for line in board_lines(board):
        console.print(escape(line), highlight=False, soft_wrap=True)
