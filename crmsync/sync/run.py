"""`crmsync sync` for many clients: the library behind the command (no click here).

Each client is synced under its lease (`Store.lease`), so two runs — two cron lines, two
hosts sharing one PostgreSQL store — never sync one client at once: the second finds the lease
held and skips that client (status `held`). Clients run concurrently (`workers`): each has its
own CRM account and rate limit; clients on one account share that account's adapter and
pacing. Within a client, the object types (and HubSpot's first load, in slices) are pulled
concurrently, `sync_concurrency` requests in flight per account at most.

**Many hosts, one store.** Every host runs the same cron line over the same blueprints. A
host skips a client that another run finished after this run started (`done-elsewhere`) or
is syncing right now (`held`), so the hosts divide the clients between them and each client
is synced once per round; a host that dies mid-client frees its lease (PostgreSQL drops the
advisory lock with the connection) and the client is picked up next round.

**Two ways.** After the pull (which merges records with queued local edits under the
client's `conflict_policy`), the queue is pushed (`push.push_client`) when the adapter can
write records. A record that failed to push makes the client `partial` (exit 3).
**`to`** (`crmsync sync --to hubspot`): every live record the named CRM lacks is created
there — the migration path. When it is the blueprint's CRM (the blueprint was switched to
it and applied), that happens in the client's own push; when it is the other CRM, that CRM
is pulled first (linking what it already has) and seeded after, under its own lease, and
the queue stays with the blueprint's CRM.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from crmsync.adapters.records import RecordAdapter, RecordWriter
from crmsync.errors import BudgetExhaustedError, CrmsyncError, LeaseHeldError, StoreError
from crmsync.names import OBJECT_TYPES
from crmsync.session import Session, session_for
from crmsync.sync.engine import OnPage, PullResult, pull_client, summary_counts
from crmsync.sync.mapping import MappingRules, StageKeys
from crmsync.sync.push import PushResult, PushRules, push_client

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
    pushed: list[PushResult] = field(default_factory=list)  # the client's CRM, then `--to`
    target: PullResult | None = None  # the pull of the `--to` CRM
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


def push_rules_for(blueprint: Blueprint, session: Session, crm: str | None = None
                   ) -> PushRules:
    """How one client's local changes go out to `crm` (default: the blueprint's): stage ids
    from what `apply` recorded there, won/lost stages from the blueprint, its policies."""
    crm = crm or blueprint.crm
    known = session.store.provisioning(blueprint.client, crm).known_ids()
    outcomes: dict[tuple[str, str], str] = {
        (p.key, s.outcome): s.key for p in blueprint.pipelines for s in p.stages
        if s.outcome is not None}
    return PushRules(crm=crm, mapping=_mapping(blueprint, session, crm),
                     delete_policy=blueprint.sync.delete_policy,
                     pipelines=dict(known.pipelines), stages=dict(known.stages),
                     outcome_stages=outcomes, concurrency=session.settings.sync_concurrency)


def defined_properties(adapter: RecordAdapter) -> dict[str, frozenset[str]]:
    """The property names a CRM account defines, per object type (one read per type)."""
    return {t: frozenset(d.name for d in adapter.field_definitions(t)) for t in OBJECT_TYPES}


def _mapping(blueprint: Blueprint, session: Session, crm: str) -> MappingRules:
    known = session.store.provisioning(blueprint.client, crm).known_ids()
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
    to: str | None = None,
) -> list[ClientSync]:
    """Sync every client named by `paths` (files or folders; none: `settings.configs_dir`).

    `on_page(client, object_type, counts)` is called after every committed page (progress).
    A client whose last run finished after this one started, or less than `min_interval`
    seconds ago, is skipped (`done-elsewhere`): that is what makes one cron line on several
    hosts sync each client once per round. One client's failure never stops the others.
    `to` names another CRM to seed from the store (see the module docstring).
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
                             fresh_after=fresh_after, on_page=on_page, to=to)

        with ThreadPoolExecutor(max_workers=max(1, workers),
                                thread_name_prefix="crmsync-sync") as pool:
            return list(pool.map(run, todo))


def _sync_one(outcome: ClientSync, adapter: RecordAdapter, session: Session, *, full: bool,
              dry_run: bool, fresh_after: dt.datetime,
              on_page: Callable[[str, str, object], None] | None,
              to: str | None = None) -> ClientSync:
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
        with session.store.lease(client, crm, purpose="sync"):
            _leased_sync(outcome, adapter, session, full=full, dry_run=dry_run,
                         fresh_after=fresh_after, page_hook=page_hook, to=to)
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


def _leased_sync(outcome: ClientSync, adapter: RecordAdapter, session: Session, *, full: bool,
                 dry_run: bool, fresh_after: dt.datetime, page_hook: OnPage | None,
                 to: str | None) -> None:
    """One client's sync while its lease is held: skip it if another host just synced it,
    check the account, log the run."""
    blueprint = outcome.blueprint
    assert blueprint is not None
    client, crm = blueprint.client, blueprint.crm
    store = session.store
    records = store.records(client)
    finished = records.last_finished(crm)
    if finished is not None and finished >= fresh_after and not full:
        outcome.status = "done-elsewhere"
        return
    account_id = session.check_account(client, crm, adapter)  # type: ignore[arg-type]
    if not dry_run:
        store.accounts(client, crm).record(account_id)
    run_id = None if dry_run else records.start_run(crm)
    try:
        _two_way(outcome, adapter, session, full=full, dry_run=dry_run,
                 page_hook=page_hook, to=to)
    except BudgetExhaustedError as exc:
        _stopped_at_budget(outcome, exc, records, run_id)
        return
    except BaseException as exc:
        if run_id is not None:
            records.finish_run(run_id, "error", {}, error=str(exc)[:2000])
        raise
    failed = sum(p.total("failed") for p in outcome.pushed)
    outcome.status = "partial" if failed and not dry_run else "ok"
    if run_id is not None and outcome.result is not None:
        counts = summary_counts(outcome.result)
        if outcome.pushed:
            counts["pushed"] = [p.as_dict() for p in outcome.pushed]
        records.finish_run(run_id, outcome.status, counts)


def _two_way(outcome: ClientSync, adapter: RecordAdapter, session: Session, *, full: bool,
             dry_run: bool, page_hook: OnPage | None, to: str | None) -> None:
    """Pull (merging local edits), push the queue, then seed the `to` CRM."""
    blueprint = outcome.blueprint
    assert blueprint is not None
    client, crm = blueprint.client, blueprint.crm
    scan_interval = dt.timedelta(minutes=session.settings.sync_removal_scan_minutes)
    outcome.result = pull_client(client, crm, adapter, session.store,
                                 rules_for(blueprint, session), full=full, dry_run=dry_run,
                                 on_page=page_hook, removal_scan_interval=scan_interval,
                                 conflict_policy=blueprint.conflict_policy,
                                 concurrency=session.settings.sync_concurrency)
    if isinstance(adapter, RecordWriter):
        rules = push_rules_for(blueprint, session)
        if to == crm:
            rules = replace(rules, target_properties=defined_properties(adapter))
        outcome.pushed.append(push_client(client, adapter, session.store, rules,
                                          seed=to == crm, dry_run=dry_run))
    elif to == crm:
        raise CrmsyncError(f"the {crm} adapter cannot write records, so `--to {crm}` cannot "
                           "seed it")
    if dry_run:
        return
    if to is not None and to != crm:
        _seed_other(outcome, session, to, full=full)


def _seed_other(outcome: ClientSync, session: Session, to: str, *, full: bool) -> None:
    """`sync --to`: pull the other CRM (linking what it already has), then create there every
    live record it lacks. Its own lease guards it: two runs never write one account at once."""
    blueprint = outcome.blueprint
    assert blueprint is not None
    client = blueprint.client
    target = session.adapter(to, None)
    if not isinstance(target, RecordAdapter) or not isinstance(target, RecordWriter):
        raise CrmsyncError(f"the {to} adapter cannot write records, so `--to {to}` cannot "
                           "seed it")
    with session.store.lease(client, to, purpose="sync"):
        account_id = session.check_account(client, to, target)
        session.store.accounts(client, to).record(account_id)
        outcome.target = pull_client(client, to, target, session.store,
                                     _mapping(blueprint, session, to), full=full,
                                     conflict_policy=blueprint.conflict_policy,
                                     concurrency=session.settings.sync_concurrency)
        rules = replace(push_rules_for(blueprint, session, to),
                        target_properties=defined_properties(target))
        outcome.pushed.append(push_client(client, target, session.store, rules,
                                          queue=False, seed=True))


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
