"""`crmsync report`: a thin command over `crmsync.report.report_clients`.

Exit codes: 0 every board shown, 1 an error (one client's failure does not stop the others).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import EXIT_ERROR, echo_error, echo_message, exit_with

if TYPE_CHECKING:
    from crmsync.report import Board, ClientReport

TERMINAL_WIDTH = 120  # when the output is not a terminal (a pipe, a log file)


def html_paths(target: Path, boards: list[Board]) -> list[tuple[Path, Board]]:
    """Where each client's HTML goes: `target` itself for one client; for several, each its
    own file (`{client}` in the name is replaced, else `-CLIENT` is added before the
    suffix), so a file sent to one client never holds another's board."""
    if "{client}" in target.name:
        return [(target.with_name(target.name.replace("{client}", b.client)), b)
                for b in boards]
    if len(boards) == 1:
        return [(target, boards[0])]
    return [(target.with_name(f"{target.stem}-{b.client}{target.suffix or '.html'}"), b)
            for b in boards]


def _as_of(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date; write it as YYYY-MM-DD",
                                 param_hint="--as-of") from None


@click.command("report")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE",
              help="Also write the board as one self-contained HTML file (no network).")
@click.option("--as-of", "as_of", metavar="DATE",
              help="Count days up to this date (YYYY-MM-DD) instead of today.")
@pass_app
def report_command(app: App, *, paths: tuple[Path, ...], as_json: bool,
                   html_file: Path | None, as_of: str | None) -> None:
    """Show each client's pipeline board from the local store (filled by `crmsync sync`).

    Per pipeline and stage in blueprint order: open deals with a bar for the funnel's
    shape, total and weighted value, average days in stage and deals stuck past the stage's
    rot_after_days; the weighted forecast; won and lost in the last 30 and 90 days with win
    rate and cycle length. Then the handoff: sales-qualified contacts still without an open
    deal (report.sales_qualified in the blueprint), open deals without a contact or company,
    contacts held back for a missing email or consent — and one-line hints. No CRM is
    called. PATHS are blueprint files or folders; without PATHS, every blueprint in
    CRMSYNC_CONFIGS_DIR.

    \b
    Examples:
      crmsync report                                 # every client's board
      crmsync report configs/acme.yaml --html acme.html
      crmsync report --html 'board-{client}.html'    # one file per client
      crmsync report --json --as-of 2026-03-31       # the figures, for a fixed day

    \b
    Exit codes:
      0  every board shown
      1  an error (one client's failure does not stop the others)
    """
    from rich.console import Console

    from crmsync.report import report_clients
    from crmsync.report.render import board_to_json, render_terminal

    reports = report_clients(list(paths), app.settings, as_of=_as_of(as_of))
    boards = [r.board for r in reports if r.board is not None]
    if as_json:
        click.echo(json.dumps({"boards": [board_to_json(b) for b in boards]}, indent=2,
                              ensure_ascii=False))
    else:
        console = Console(width=None if sys.stdout.isatty() else TERMINAL_WIDTH,
                          highlight=False)
        for board in boards:
            render_terminal(board, console)
            console.print()
    failed = [r for r in reports if r.board is None]
    for report in failed:
        _echo_failure(app, report)
    if html_file is not None and boards:
        _write_html(html_file, boards, quiet=as_json)
    exit_with(EXIT_ERROR if failed else 0)


def _echo_failure(app: App, report: ClientReport) -> None:
    message = report.error or "no board"
    if report.exception is not None:
        echo_error(report.exception, debug=app.debug, name=report.name, message=message)
    else:
        echo_message(message, name=report.name)


def _write_html(target: Path, boards: list[Board], *, quiet: bool) -> None:
    from crmsync.errors import CrmsyncError
    from crmsync.report.html import render_html

    for path, board in html_paths(target, boards):
        try:
            path.write_text(render_html([board]), encoding="utf-8")
        except OSError as exc:
            raise CrmsyncError(f"cannot write the HTML report to {path}: "
                               f"{exc.strerror or exc}",
                               hint="Check that the folder exists and is writable") from None
        click.echo(f"Wrote {path} ({board.client})", err=quiet)


COMMANDS = [report_command]
