"""`crmsync report`: the board, from the local store (no CRM call at all).

`report_clients(paths, settings, as_of=…)` is the library function behind the command: one
`ClientReport` per blueprint, holding its `Board` or the reason there is none. The numbers
come from `board.compute_board` over rows read by `queries.py`; `render.py` prints them,
`html.py` writes them as one self-contained file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmsync.errors import CrmsyncError, StoreError
from crmsync.report.board import Board, compute_board
from crmsync.report.queries import contact_rows, deal_rows
from crmsync.session import session_for

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from crmsync.blueprint.models import Blueprint
    from crmsync.session import Session
    from crmsync.settings import Settings
    from crmsync.store import Store

__all__ = ["Board", "ClientReport", "board_for", "compute_board", "report_clients"]


@dataclass
class ClientReport:
    """One config file's outcome of `report`: its board, or why there is none."""

    path: Path
    blueprint: Blueprint | None = None
    board: Board | None = None
    error: str | None = None
    exception: BaseException | None = None

    @property
    def name(self) -> str:
        if self.blueprint is not None:
            return f"{self.blueprint.client} ({self.blueprint.crm})"
        return str(self.path)


def board_for(blueprint: Blueprint, store: Store, as_of: dt.date) -> Board:
    """One client's board on `as_of`, from the store."""
    return compute_board(blueprint, deal_rows(store, blueprint.client),
                         contact_rows(store, blueprint.client), as_of)


def report_clients(paths: Sequence[str | Path], settings: Settings, *,
                   as_of: dt.date | None = None, session: Session | None = None
                   ) -> list[ClientReport]:
    """The board of every client named by `paths` (files or folders; none:
    `settings.configs_dir`) on `as_of` (default: today, UTC). One client's failure does not
    stop the others; a store that cannot be opened stops them all (`StoreError`)."""
    from crmsync.provision import load_blueprints

    today = as_of or dt.datetime.now(dt.UTC).date()
    reports: list[ClientReport] = []
    with session_for(settings, session) as active:
        for entry in load_blueprints(paths, settings):
            report = ClientReport(entry.path, entry.blueprint, error=entry.error,
                                  exception=entry.exception)
            reports.append(report)
            if entry.blueprint is None or entry.error is not None:
                continue
            try:
                report.board = board_for(entry.blueprint, active.store, today)
            except StoreError:
                raise
            except CrmsyncError as exc:
                report.error, report.exception = str(exc), exc
    return reports
