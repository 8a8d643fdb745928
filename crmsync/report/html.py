"""The board as one self-contained HTML file, fit to send to a client.

No network and no external assets: inline CSS, an inline SVG funnel per pipeline, no
scripts. Every text from the blueprint or the CRM is HTML-escaped. The layout is a grid of
stage columns that wraps to one column on a phone.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from crmsync.report import words
from crmsync.report.render import unlinked_line, waiting_line
from crmsync.report.words import format_days, format_number, format_percent

if TYPE_CHECKING:
    from crmsync.report.board import Board, ClosedWindow, PipelineBoard

HTML_LIST = 50  # rows of each list in the file (--json has them all)

_CSS = """
:root{--ink:#1d2433;--muted:#5b6475;--line:#dde2ea;--card:#fff;--bg:#f4f6f9;--accent:#2f6fdb;
--warn:#c0392b;--ok:#1e8e5a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:20px 16px 40px}
header.client{margin:8px 0 16px}
h1{font-size:1.5rem;margin:0}
h2{font-size:1.2rem;margin:28px 0 10px}
h3{font-size:1rem;margin:18px 0 8px}
.sub{color:var(--muted)}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;
margin:14px 0}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px}
.kpi b{display:block;font-size:1.25rem}
.kpi span{color:var(--muted);font-size:.85rem}
.board{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.col{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px;
border-top:4px solid var(--accent);display:flex;flex-direction:column;gap:4px}
.col h4{margin:0 0 4px;font-size:.95rem;overflow-wrap:anywhere}
.col .n{font-size:1.6rem;font-weight:600}
.col dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:2px 8px;font-size:.85rem}
.col dt{color:var(--muted)}
.col dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.col ul{margin:6px 0 0;padding-left:16px;font-size:.8rem;color:var(--warn)}
.col.stuck{border-top-color:var(--warn)}
.funnel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:8px;
margin:10px 0}
.funnel svg{max-width:600px;margin:0 auto}
.funnel svg{width:100%;height:auto;display:block}
.total{margin:10px 0;font-weight:600}
ul.list{background:var(--card);border:1px solid var(--line);border-radius:10px;margin:0;
padding:8px 12px 8px 28px}
ul.list li{margin:2px 0;overflow-wrap:anywhere}
.hints li{color:var(--ink)}
.hints{border-left:4px solid var(--ok)}
.none{color:var(--muted)}
section.client+section.client{border-top:2px solid var(--line);margin-top:32px}
@media (max-width:600px){body{font-size:14px}main{padding:12px 10px 28px}
.board{grid-template-columns:1fr}.col .n{font-size:1.3rem}}
@media print{body{background:#fff}.col,.kpi,.funnel,ul.list{break-inside:avoid}}
"""


def _funnel_svg(board: Board, pipeline: PipelineBoard) -> str:
    """One bar per stage, centred on one axis (widest = most open deals), its label above:
    narrow enough to stay legible on a phone."""
    rows = pipeline.stages
    width, label_h, bar_h, gap = 400, 18, 24, 8
    row_h = label_h + bar_h + gap
    height = len(rows) * row_h + gap
    widest = max((s.open_deals for s in rows), default=0) or 1
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(words.text("funnel", board.language))}: '
             f'{escape(pipeline.label)}">']
    for i, stage in enumerate(rows):
        y = gap + i * row_h
        bar = max(3.0, stage.open_deals / widest * width)
        shade = 1.0 - 0.6 * i / max(1, len(rows) - 1)
        label = stage.label if len(stage.label) <= 48 else stage.label[:47] + "…"
        figures = f"{stage.open_deals} · {board.money(stage.total_value)}"
        parts.append(
            f'<text x="{width / 2}" y="{y + 13}" text-anchor="middle" font-size="13" '
            f'fill="#1d2433">{escape(label)}</text>'
            f'<rect x="{(width - bar) / 2:.1f}" y="{y + label_h}" width="{bar:.1f}" '
            f'height="{bar_h}" rx="4" fill="#2f6fdb" fill-opacity="{shade:.2f}"/>'
            f'<text x="{width / 2}" y="{y + label_h + 17}" text-anchor="middle" '
            f'font-size="13" font-weight="600" fill="{"#fff" if shade >= 0.7 else "#1d2433"}">'
            f"{escape(figures)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _column(board: Board, stage_index: int, pipeline: PipelineBoard) -> str:
    stage = pipeline.stages[stage_index]
    lang = board.language
    t = words.text
    avg = (format_days(stage.avg_days_in_stage, lang) if stage.avg_days_in_stage is not None
           else t("none", lang))
    stuck = "".join(
        "<li>" + escape(t("stuck_card", lang, name=d.name, days=d.days_in_stage,
                          owner=d.owner_id or t("no_owner", lang))) + "</li>"
        for d in stage.stuck[:5])
    if len(stage.stuck) > 5:
        stuck += f"<li>{escape(t('more', lang, count=len(stage.stuck) - 5))}</li>"
    return (
        f'<div class="col{" stuck" if stage.stuck else ""}">'
        f"<h4>{escape(stage.label)}</h4>"
        f'<div class="n">{stage.open_deals}</div>'
        f"<dl><dt>{escape(t('value', lang))}</dt><dd>{escape(board.money(stage.total_value))}</dd>"
        f"<dt>{escape(t('weighted', lang))}</dt>"
        f"<dd>{escape(board.money(stage.weighted_value))}</dd>"
        f"<dt>{escape(t('probability', lang))}</dt>"
        f"<dd>{escape(format_percent(stage.probability, lang))}</dd>"
        f"<dt>{escape(t('avg_days', lang))}</dt><dd>{escape(avg)}</dd>"
        f"<dt>{escape(t('stuck', lang))}</dt><dd>{len(stage.stuck)}</dd></dl>"
        f"{f'<ul>{stuck}</ul>' if stuck else ''}</div>")


def _closed_kpi(board: Board, window: ClosedWindow) -> str:
    lang = board.language
    rate = (format_percent(window.win_rate, lang) if window.win_rate is not None
            else words.text("none", lang))
    cycle = (words.text("days_unit", lang, days=format_days(window.avg_cycle_days, lang))
             if window.avg_cycle_days is not None else words.text("none", lang))
    label = words.text("closed_kpi", lang, days=window.days, rate=rate, cycle=cycle)
    return (f'<div class="kpi"><b>{window.won} / {window.lost}</b>'
            f"<span>{escape(label)}</span></div>")


def _list(items: list[str], total: int, lang: str, cls: str = "list") -> str:
    if not items:
        return f'<p class="none">{escape(words.text("nothing", lang))}</p>'
    body = "".join(f"<li>{escape(i)}</li>" for i in items)
    if total > len(items):
        more = words.text("more", lang, count=format_number(total - len(items), lang))
        body += f"<li>{escape(more)}</li>"
    return f'<ul class="{cls}">{body}</ul>'


def _client_section(board: Board) -> str:
    lang = board.language
    t = words.text
    out = [f'<section class="client" id="{escape(board.client)}">',
           f'<header class="client"><h1>{escape(board.client)} · {escape(t("title", lang))}</h1>'
           f'<div class="sub">{escape(board.crm)} · '
           f"{escape(t('as_of', lang, date=board.as_of.isoformat()))}</div></header>"]
    out.append('<div class="kpis">'
               f'<div class="kpi"><b>{board.open_deals}</b><span>{escape(t("deals", lang))}'
               "</span></div>"
               f'<div class="kpi"><b>{escape(board.money(board.total_value))}</b>'
               f'<span>{escape(t("value", lang))}</span></div>'
               f'<div class="kpi"><b>{escape(board.money(board.weighted_value))}</b>'
               f'<span>{escape(t("forecast", lang))}</span></div>'
               + "".join(_closed_kpi(board, w) for w in board.closed) + "</div>")
    if board.hints:
        out.append(f"<h2>{escape(t('hints', lang))}</h2>"
                   + _list([h.text for h in board.hints], len(board.hints), lang,
                           "list hints"))
    if not board.deals_seen:
        out.append(f'<p class="none">{escape(t("no_deals", lang))}</p>')
    for pipeline in board.pipelines:
        out.append(f"<h2>{escape(pipeline.label)}</h2>")
        out.append(f'<div class="funnel">{_funnel_svg(board, pipeline)}</div>')
        out.append('<div class="board">' + "".join(
            _column(board, i, pipeline) for i in range(len(pipeline.stages))) + "</div>")
        out.append(f'<p class="total">{escape(t("total", lang))}: {pipeline.open_deals} · '
                   f"{escape(board.money(pipeline.total_value))} · {escape(t('weighted', lang))} "
                   f"{escape(board.money(pipeline.weighted_value))}</p>")
    notes = []
    if board.unmanaged.open_deals:
        notes.append(t("unmanaged_line", lang, deals=board.unmanaged.open_deals,
                       value=board.money(board.unmanaged.total_value)))
    notes.extend(t("foreign_currency", lang, deals=n, currency=c)
                 for c, n in board.foreign_currency)
    if notes:
        out.append("".join(f'<p class="none">{escape(n)}</p>' for n in notes))
    handoff = board.handoff
    out.append(f"<h2>{escape(t('handoff', lang))}</h2>")
    out.append(f"<h3>{escape(t('waiting_title', lang, days=handoff.days))}: "
               f"{len(handoff.waiting)}</h3>")
    out.append(_list([waiting_line(board, c) for c in handoff.waiting[:HTML_LIST]],
                     len(handoff.waiting), lang))
    out.append(f"<h3>{escape(t('unlinked_title', lang))}: {len(handoff.unlinked)}</h3>")
    out.append(_list([unlinked_line(board, d) for d in handoff.unlinked[:HTML_LIST]],
                     len(handoff.unlinked), lang))
    out.append(f"<h3>{escape(t('held_title', lang))}</h3>")
    held = t("held_line", lang, total=len(handoff.held_back), no_email=handoff.no_email,
             no_consent=handoff.no_consent)
    out.append(f"<p>{escape(held)}</p>")
    out.append("</section>")
    return "".join(out)


def render_html(boards: list[Board]) -> str:
    """One HTML document holding the given boards (normally one client's)."""
    lang = boards[0].language if boards else "en"
    title = " · ".join(f"{b.client} {words.text('title', b.language)}" for b in boards)
    return (
        f'<!DOCTYPE html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title or 'crmsync report')}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(_client_section(b) for b in boards)}</main></body></html>\n")
