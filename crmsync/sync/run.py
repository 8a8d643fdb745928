"""`crmsync sync` for many clients: the library behind the command (no click here).

Each client is synced under its lease (`Store.lease`), so two runs — two cron lines, two
hosts sharing one PostgreSQL store — never sync one client at once: the second finds the lease
held and skips that client (status `held`). Clients run concurrently (`workers`): each has its
own CRM account and rate limit, so this is where wall time is won; clients on one account
share that account's adapter and pacing.

**Many hosts, one store.** Every host runs the same cron line over the same blueprints. A
host skips a client that another run finished after this run started (`done-elsewhere`) or
is syncing right now (`held`), so the hosts divide the clients between them and each client
is synced once per round; a host that dies mid-client frees its lease (PostgreSQL drops the
advisory lock with the connection) and the client is picked up next round.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from crmsync.adapters.records import RecordAdapter
from crmsync.errors import BudgetExhaustedError, CrmsyncError, LeaseHeldError, StoreError
from crmsync.session import Session, session_for
from crmsync.sync.engine import OnPage, PullResult, pull_client, summary_counts
from crmsync.sync.mapping import MappingRules, StageKeys

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from crmsync.blueprint.models import Blueprint
    from crmsync.settings import Settings

log = logging.getLogger(__name__)

SyncStatus = Literal["ok", "partial", "error", "held", "done-elsewhere"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ClientSync:
    """One client's outcome of `sync`."""

    path: Path
    blueprint: Blueprint | None
    status: SyncStatus = "error"
    result: PullResult | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    seconds: float = 0.0
    calls: int = 0
    throttled: int = 0  # 429s drawn
    notes: list[str] = field(default_factory=list)  # e.g. how a full pass was read

    @property
    def name(self) -> str:
        if self.blueprint is not None:
            return f"{self.blueprint.client} ({self.blueprint.crm})"
        return str(self.path)


def rules_for(blueprint: Blueprint, session: Session) -> MappingRules:
    """How one client's records map onto the store: stage keys from the ids `apply`
    recorded, and the blueprint's declared consent field."""
    known = session.store.provisioning(blueprint.client, blueprint.crm).known_ids()
    return MappingRules(StageKeys.from_known(known.pipelines, known.stages),
                        consent_field=blueprint.sync.consent_field)


def sync_clients(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    full: bool = False,
    dry_run: bool = False,
    workers: int = 4,
    min_interval: float = 0.0,
    session: Session | None = None,
    on_page: Callable[[str, str, object], None] | None = None,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> list[ClientSync]:
    """Sync every client named by `paths` (files or folders; none: `settings.configs_dir`).

    `on_page(client, object_type, counts)` is called after every committed page (progress).
    A client whose last run finished after this one started, or less than `min_interval`
    seconds ago, is skipped (`done-elsewhere`): that is what makes one cron line on several
    hosts sync each client once per round. One client's failure never stops the others.
    """
    from crmsync.provision import load_blueprints

    round_started = clock()
    loaded = load_blueprints(paths, settings)
    with session_for(settings, session) as active:
        todo: list[tuple[ClientSync, RecordAdapter | None]] = []
        for entry in loaded:
            outcome = ClientSync(entry.path, entry.blueprint, error=entry.error,
                                 exception=entry.exception)
            adapter = None
            if entry.blueprint is not None and entry.error is None:
                try:  # built here, one thread: clients on one account share it
                    built = active.adapter(entry.blueprint.crm, entry.blueprint.token_env)
                except CrmsyncError as exc:
                    outcome.error, outcome.exception = str(exc), exc
                else:
                    if isinstance(built, RecordAdapter):
                        adapter = built
                    else:
                        outcome.error = (f"the {entry.blueprint.crm} adapter cannot sync "
                                         "records")
            todo.append((outcome, adapter))

        def run(item: tuple[ClientSync, RecordAdapter | None]) -> ClientSync:
            outcome, adapter = item
            if adapter is None:
                return outcome
            fresh_after = min(round_started, clock() - dt.timedelta(seconds=min_interval))
            _configure(adapter, active.settings)
            return _sync_one(outcome, adapter, active, full=full, dry_run=dry_run,
                             fresh_after=fresh_after, on_page=on_page)

        with ThreadPoolExecutor(max_workers=max(1, workers),
                                thread_name_prefix="crmsync-sync") as pool:
            return list(pool.map(run, todo))


def _sync_one(outcome: ClientSync, adapter: RecordAdapter, session: Session, *, full: bool,
              dry_run: bool, fresh_after: dt.datetime,
              on_page: Callable[[str, str, object], None] | None) -> ClientSync:
    blueprint = outcome.blueprint
    assert blueprint is not None
    client, crm = blueprint.client, blueprint.crm
    started = time.monotonic()
    policy = getattr(adapter, "policy", None)
    calls_before = getattr(policy, "requests_sent", 0)
    throttled_before = getattr(policy, "throttled", 0)
    page_hook: OnPage | None = None
    if on_page is not None:
        def page_hook(object_type: str, counts: object) -> None:
            on_page(client, object_type, counts)
    try:
        store = session.store
        with store.lease(client, crm, purpose="sync"):
            records = store.records(client)
            finished = records.last_finished(crm)
            if finished is not None and finished >= fresh_after and not full:
                outcome.status = "done-elsewhere"
                return outcome
            account_id = session.check_account(client, crm, adapter)  # type: ignore[arg-type]
            if not dry_run:
                store.accounts(client, crm).record(account_id)
            run_id = None if dry_run else records.start_run(crm)
            scan_interval = dt.timedelta(minutes=session.settings.sync_removal_scan_minutes)
            try:
                outcome.result = pull_client(client, crm, adapter, store,
                                             rules_for(blueprint, session), full=full,
                                             dry_run=dry_run, on_page=page_hook,
                                             removal_scan_interval=scan_interval)
            except BudgetExhaustedError as exc:
                return _stopped_at_budget(outcome, exc, records, run_id)
            except BaseException as exc:
                if run_id is not None:
                    records.finish_run(run_id, "error", {}, error=str(exc)[:2000])
                raise
            outcome.status = "ok"
            if run_id is not None:
                records.finish_run(run_id, outcome.status, summary_counts(outcome.result))
    except LeaseHeldError as exc:
        outcome.status, outcome.error, outcome.exception = "held", str(exc), exc
    except StoreError:
        raise  # every client shares the store: one error for the command
    except Exception as exc:
        log.debug("sync failed for %s", outcome.name, exc_info=True)
        outcome.status = "error"
        outcome.exception = exc
        outcome.error = (str(exc) if isinstance(exc, CrmsyncError)
                         else f"unexpected {type(exc).__name__}: {exc}")
    finally:
        outcome.seconds = time.monotonic() - started
        outcome.calls = getattr(policy, "requests_sent", 0) - calls_before
        outcome.throttled = getattr(policy, "throttled", 0) - throttled_before
        _take_notes(outcome, adapter)
    return outcome


def _configure(adapter: RecordAdapter, settings: Settings) -> None:
    """Sync settings the adapter acts on: the daily-budget share, the initial-load strategy."""
    policy = getattr(adapter, "policy", None)
    if policy is not None:  # a sync leaves the client's team its share of today's budget
        policy.daily_share = settings.sync_max_daily_share
    if hasattr(adapter, "initial_load"):
        adapter.initial_load = settings.sync_initial_load


def _stopped_at_budget(outcome: ClientSync, exc: BudgetExhaustedError, records: Any,
                       run_id: int | None) -> ClientSync:
    # Pages read so far are committed with their cursors: the next run resumes after them.
    outcome.status, outcome.exception = "partial", exc
    outcome.error = "stopped at the daily budget: resumes next run"
    if run_id is not None:
        records.finish_run(run_id, "partial", {}, error=str(exc)[:2000])
    return outcome


def _take_notes(outcome: ClientSync, adapter: RecordAdapter) -> None:
    notes = getattr(adapter, "pull_notes", None)  # e.g. how a full pass was read
    if notes:
        outcome.notes.extend(notes)
        notes.clear()
