"""`crmsync sync`: a thin command over `crmsync.sync.run.sync_clients`.

Exit codes: 0 every client synced (or synced by another run this round), 1 an error,
3 partial (some records failed: named in the output and the run log, retried next run),
4 a client was skipped because another run holds its lease.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import EXIT_ERROR, echo_message, exit_with

if TYPE_CHECKING:
    from crmsync.sync.run import ClientSync

EXIT_OK, EXIT_PARTIAL, EXIT_LEASE_HELD = 0, 3, 4


def _summary(outcome: ClientSync) -> str:
    """One line per client for the cron log."""
    if outcome.status == "held":
        return f"{outcome.name}: skipped: {outcome.error}"
    if outcome.status == "done-elsewhere":
        return f"{outcome.name}: skipped: already synced this round by another run"
    notes = "".join(f"; {note}" for note in outcome.notes)
    if outcome.result is None:
        return f"{outcome.name}: {outcome.status}: {outcome.error}{notes}"
    result = outcome.result
    verb = "would pull" if result.dry_run else "pulled"
    text = (f"{outcome.name}: {verb} {result.total('pulled')}, "
            f"created {result.total('created')}, updated {result.total('updated')}, "
            f"tombstoned {result.total('tombstoned')}; {result.total('calls')} API calls, "
            f"{outcome.throttled} 429s, {outcome.seconds:.1f}s")
    for pushed in outcome.pushed:
        text += (f"; {'would push' if result.dry_run else 'pushed'} to {pushed.crm}: "
                 f"created {pushed.total('created')}, "
                 f"updated {pushed.total('updated')}, archived {pushed.total('archived')}")
        if pushed.total("failed"):
            text += f", failed {pushed.total('failed')} (crmsync sync --failures)"
        if pushed.held_back:
            # GDPR (no email or consent), or a second contact with an email the CRM has
            duplicates = sum(1 for h in pushed.held_back
                             if str(h.get("reason", "")).startswith("same email"))
            parts = []
            if len(pushed.held_back) > duplicates:
                parts.append(f"{len(pushed.held_back) - duplicates} contacts without "
                             "email/consent")
            if duplicates:
                parts.append(f"{duplicates} sharing another contact's email")
            text += "; held back: " + ", ".join(parts)
        if pushed.kept_remote:
            text += (f"; {len(pushed.kept_remote)} local deletes kept in {pushed.crm} "
                     "(sync.delete_policy: keep_remote)")
    conflicts = result.total("conflicts")
    if conflicts:
        noun = "conflict" if conflicts == 1 else "conflicts"
        text += f"; {conflicts} {noun} resolved" + (
            f" ({outcome.blueprint.conflict_policy})" if outcome.blueprint else "")
    if outcome.status == "error":
        text += f"; error: {outcome.error}"
    return text + notes


def _as_json(outcome: ClientSync) -> dict[str, Any]:
    from crmsync.sync.engine import summary_counts

    data: dict[str, Any] = {
        "path": str(outcome.path),
        "client": outcome.blueprint.client if outcome.blueprint else None,
        "crm": outcome.blueprint.crm if outcome.blueprint else None,
        "status": outcome.status, "error": outcome.error,
        "seconds": round(outcome.seconds, 3), "throttled": outcome.throttled,
        "notes": outcome.notes,
    }
    if outcome.result is not None:
        data.update(dry_run=outcome.result.dry_run, full=outcome.result.full,
                    **summary_counts(outcome.result))
        data["conflicts"] = {
            "count": outcome.result.total("conflicts"),
            "policy": outcome.blueprint.conflict_policy if outcome.blueprint else None}
        data["pushed"] = [p.as_dict() for p in outcome.pushed]
    return data


def _exit_code(outcomes: list[ClientSync]) -> int:
    statuses = {o.status for o in outcomes}
    if "error" in statuses:
        return EXIT_ERROR
    if "partial" in statuses:
        return EXIT_PARTIAL
    return EXIT_LEASE_HELD if "held" in statuses else EXIT_OK


class _Progress:
    """A rich progress line per client and object type, on a terminal only. `update` is
    called from every client's and object type's thread."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._tasks: dict[tuple[str, str], Any] = {}
        self._progress: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                                      transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, client: str, object_type: str, counts: Any) -> None:
        if self._progress is None:
            return
        key = (client, object_type)
        text = (f"{counts.pulled} pulled, {counts.created} new, {counts.updated} changed, "
                f"{counts.tombstoned} gone")
        with self._lock:
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(f"{client} {object_type}",
                                                           total=None, counts=text)
            self._progress.update(self._tasks[key], counts=text)


@click.command("sync")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--full", is_flag=True,
              help="Re-read everything (and reconcile records deleted without a trace).")
@click.option("--dry-run", is_flag=True, help="Read and report what would change; write nothing.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Clients synced at once (each has its own CRM rate limit).")
@click.option("--min-interval", type=click.FloatRange(0), default=0.0, show_default=True,
              metavar="SECONDS",
              help="Skip a client synced less than this long ago (several hosts, one cron line).")
@click.option("--initial-load", type=click.Choice(["export", "list", "auto"]), default=None,
              help="How a HubSpot full pass reads: the Exports API (needs the crm.export "
                   "scope), the list API, or auto (export for big accounts when allowed). "
                   "Default: CRMSYNC_SYNC_INITIAL_LOAD (auto).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (for logs).")
@click.option("--failures", "show_failures", is_flag=True,
              help="List records that failed and wait to be retried; sync nothing.")
@click.option("--to", "to", type=click.Choice(["hubspot", "pipedrive"]), default=None,
              help="Also create in this CRM every live record it lacks (moving a client "
                   "from one CRM to the other; run `crmsync apply` for it first).")
@pass_app
def sync_command(app: App, *, paths: tuple[Path, ...], full: bool, dry_run: bool, workers: int,
                 min_interval: float, as_json: bool, show_failures: bool,
                 to: str | None, initial_load: str | None = None) -> None:
    """Sync each client's contacts, companies, deals and associations with the local store,
    both ways.

    Incremental: each run reads only what changed since the last (one API call per object
    type when nothing did), page by page, committing each page with its cursor, so a killed
    run resumes where it stopped; then local changes are pushed. A field changed on both
    sides is resolved by the blueprint's conflict_policy. Safe to overlap: a client another
    run is syncing is skipped. PATHS are blueprint files or folders; without PATHS, every
    blueprint in CRMSYNC_CONFIGS_DIR.

    \b
    Examples:
      crmsync sync                          # every client, incrementally
      crmsync sync configs/acme.yaml --full # re-read one client whole
      crmsync sync --json >> sync.log       # for cron
      crmsync sync configs/acme.yaml --to hubspot  # copy the store into HubSpot

    \b
    Exit codes:
      0  every client synced (or already synced this round by another host)
      1  an error (one client's failure does not stop the others)
      3  partial: some records failed (listed, retried next run: --failures), or the
         run stopped at its share of the CRM's daily budget (resumes next run)
      4  skipped: another run holds a client's lease
    """
    if show_failures:
        _show_failures(app, paths, as_json)
        return
    from crmsync.sync.run import sync_clients

    settings = app.settings
    if initial_load is not None:
        settings = settings.model_copy(update={"sync_initial_load": initial_load})
    with _Progress(enabled=not as_json and sys.stderr.isatty()) as progress:
        outcomes = sync_clients(list(paths), settings, full=full, dry_run=dry_run,
                                workers=workers, min_interval=min_interval,
                                on_page=progress.update, to=to)
    if as_json:
        click.echo(json.dumps({"clients": [_as_json(o) for o in outcomes]}, indent=2,
                              ensure_ascii=False))
    else:
        for outcome in outcomes:
            line = _summary(outcome)
            if outcome.status == "error":
                echo_message(line)
            else:
                click.echo(line)
    exit_with(_exit_code(outcomes))


def _show_failures(app: App, paths: tuple[Path, ...], as_json: bool) -> None:
    from crmsync.provision import load_blueprints
    from crmsync.session import Session

    rows: list[dict[str, Any]] = []
    with Session(app.settings) as session:
        for entry in load_blueprints(list(paths), app.settings):
            if entry.blueprint is None:
                continue
            rows.extend(session.store.records(entry.blueprint.client).failures(
                entry.blueprint.crm))
    if as_json:
        click.echo(json.dumps({"failures": rows}, indent=2, default=str, ensure_ascii=False))
        return
    if not rows:
        click.echo("No failed records waiting.")
        return
    for row in rows:
        click.echo(f"{row['client']} ({row['crm']}) {row['object_type']} {row['record_key']} "
                   f"[{row['direction']}, {row['attempts']} attempts]: {row['error']}")


COMMANDS = [sync_command]
