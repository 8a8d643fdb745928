"""`crmsync diff`, `crmsync apply`, `crmsync export`: thin commands over `crmsync.provision`.

Exit codes — diff: 0 no changes, 2 changes pending (blocked ones included), 1 any error.
apply: 0 applied and clean, 3 blocked changes remain, 1 any error (or a CRM that still differs
after applying). Several clients: the worst outcome decides; one failing does not stop others.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import (
    EXIT_ERROR,
    EXIT_LEASE_HELD,
    describe,
    echo_error,
    echo_message,
    exit_with,
)
from crmsync.errors import ConfigError, CrmsyncError
from crmsync.names import CRM_NAMES
from crmsync.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crmsync.plan.changes import Change
    from crmsync.provision import ClientApply, ClientPlan

EXIT_OK, EXIT_PENDING, EXIT_BLOCKED = 0, 2, 3

_STYLES: dict[str, dict[str, Any]] = {
    "+": {"fg": "green"}, "~": {"fg": "yellow"}, "-": {"fg": "red"}, ">": {"fg": "cyan"},
    "=": {"fg": "blue"}, "!": {"fg": "red", "bold": True}, "·": {"dim": True},
}


def _echo_styled(text: str) -> None:
    """Colour plan lines by their marker; click drops the colour when output is piped.
    Control characters (in labels, messages) are escaped."""
    for line in (printable(line) for line in text.splitlines()):
        stripped = line.lstrip()
        style = _STYLES.get(stripped[:1]) if stripped[1:2] == " " else None
        if line.startswith(("Plan:", "No changes.")):
            style = {"bold": True}
        click.echo(click.style(line, **style) if style else line)


def _echo_error(app: App, name: str, message: str, exc: BaseException | None) -> None:
    """`error: NAME: message`; a config's findings (which name their file) one per line."""
    if exc is not None:
        echo_error(exc, debug=app.debug, name=name, message=message)
    else:
        echo_message(message, name=name)


def _error_json(exc: BaseException) -> dict[str, Any]:
    """A failure that ended the run before any client's result, as data."""
    data: dict[str, Any] = {"type": type(exc).__name__, "message": describe(exc)}
    if isinstance(exc, ConfigError) and exc.findings:
        data["findings"] = [
            {"path": f.path, "line": f.line, "column": f.column, "field": f.field,
             "severity": f.severity, "rule": f.rule, "message": f.message, "hint": f.hint}
            for f in exc.findings
        ]
    return data


@contextmanager
def _json_on_failure(app: App, as_json: bool) -> Iterator[None]:
    """With --json, a run that fails early (bad paths, settings, store) still prints a JSON
    document — `{"clients": [], "error": {...}}` — as well as the message on stderr."""
    try:
        yield
    except Exception as exc:
        if not as_json:
            raise
        click.echo(json.dumps({"clients": [], "error": _error_json(exc)}, indent=2,
                              ensure_ascii=False))
        echo_error(exc, debug=app.debug)
        exit_with(exc.exit_code if isinstance(exc, CrmsyncError) else EXIT_ERROR)


def _short(message: str | None, width: int = 90) -> str:
    first = (message or "").strip().splitlines()[0] if message and message.strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def _client_json(client: ClientPlan) -> dict[str, Any]:
    from crmsync.plan.render import plan_to_dict

    data: dict[str, Any] = {
        "path": str(client.path),
        "client": client.blueprint.client if client.blueprint else None,
        "crm": client.blueprint.crm if client.blueprint else None,
        "status": client.status,
        "error": client.error,
    }
    if client.plan is not None:
        plan = plan_to_dict(client.plan)
        data.update(counts=plan["counts"], changes=plan["changes"], notes=plan["notes"],
                    apply_order=plan["apply_order"])
    return data


def _diff_summary(client: ClientPlan) -> str:
    if client.status == "error" or client.plan is None:
        return f"{client.name}: error: {_short(client.error)}"
    if client.status == "clean":
        return f"{client.name}: no changes"
    counts = client.plan.counts()
    # Objects, as the plan's own "Plan: …" line counts them (not per field or temporary label).
    pending, blocked = counts.pending, counts.blocked
    if client.plan.state_only:
        return f"{client.name}: matches; {pending} stored id{'' if pending == 1 else 's'} to update"
    parts = [f"{pending} change{'' if pending == 1 else 's'} pending"] if pending else []
    if blocked:
        parts.append(f"{blocked} blocked")
    return f"{client.name}: {', '.join(parts)}"


def _show_plans(app: App, clients: list[ClientPlan]) -> None:
    from crmsync.plan.render import render_text

    shown = 0
    for client in clients:
        if client.plan is None:
            _echo_error(app, client.name, client.error or "no plan", client.exception)
            continue
        if shown:
            click.echo()
        _echo_styled(render_text(client.plan))
        shown += 1


def _diff_exit(clients: list[ClientPlan]) -> int:
    statuses = {c.status for c in clients}
    if "error" in statuses:
        return EXIT_ERROR
    return EXIT_PENDING if statuses & {"pending", "blocked"} else EXIT_OK


@click.command("diff")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON data.")
@pass_app
def diff_command(app: App, paths: tuple[Path, ...], as_json: bool) -> None:
    """Show what apply would change in each client's CRM; change nothing.

    PATHS are blueprint files or folders; without PATHS, every *.yaml/*.yml in CRMSYNC_CONFIGS_DIR
    (default: ./configs). Markers: + create, ~ update (old → new), > move deals, - archive,
    = adopt (only the id is recorded), ! blocked (with the reason), · note.

    \b
    Examples:
      crmsync diff                       # every client in CRMSYNC_CONFIGS_DIR
      crmsync diff configs/acme.yaml     # one client
      crmsync diff --json configs/ | jq '.clients[].status'

    \b
    Exit codes:
      0  no changes: every CRM matches its blueprint
      2  changes pending (blocked changes and ids to record included)
      1  an error (a client's failure does not stop the others)
    """
    from crmsync.provision import diff_clients

    with _json_on_failure(app, as_json):
        clients = diff_clients(list(paths), app.settings)
    if as_json:
        click.echo(json.dumps({"clients": [_client_json(c) for c in clients]}, indent=2,
                              ensure_ascii=False))
    else:
        _show_plans(app, clients)
        if len(clients) > 1:
            click.echo()
            click.echo("Summary:")
            for client in clients:
                click.echo(printable(f"  {_diff_summary(client)}"))
    exit_with(_diff_exit(clients))


# --- apply -----------------------------------------------------------------------------------


def _done_text(outcome: ClientApply) -> str:
    """"3 changes applied", "8 ids recorded", "1 id forgotten" or several: adopting an object
    or forgetting a stale id sends nothing to the CRM."""
    applied = outcome.result.applied if outcome.result else ()
    adopted = sum(1 for c in applied if c.action == "adopt")
    forgotten = sum(1 for c in applied if c.action == "forget")
    changed = len(applied) - adopted - forgotten
    parts = [f"{changed} change{'' if changed == 1 else 's'} applied"] if changed or not (
        adopted or forgotten) else []
    if adopted:
        parts.append(f"{adopted} id{'' if adopted == 1 else 's'} recorded")
    if forgotten:
        parts.append(f"{forgotten} stale id{'' if forgotten == 1 else 's'} forgotten")
    return ", ".join(parts)


def _apply_summary(outcome: ClientApply) -> str:
    if outcome.result is None and outcome.error is not None:
        # No plan (diff failed): nothing was tried. Otherwise the apply itself broke off.
        status = "not applied" if outcome.client.error is not None else "apply failed"
        return f"{outcome.name}: {status}; error: {_short(outcome.error)}"
    done = _done_text(outcome)
    match outcome.status:
        case "clean":
            return f"{outcome.name}: {done}; the CRM matches its blueprint"
        case "blocked":
            blocked = len(outcome.after.blocked) if outcome.after else 0
            return f"{outcome.name}: {done}; {blocked} blocked (see above)"
        case "unconverged":
            return f"{outcome.name}: {done}; but the CRM still differs (see above)"
    return f"{outcome.name}: {done}; error: {_short(outcome.error)}"


def _apply_exit(outcomes: list[ClientApply]) -> int:
    from crmsync.errors import LeaseHeldError, PlanStaleError

    statuses = {o.status for o in outcomes}
    failed = [o for o in outcomes if o.status in ("error", "unconverged")]
    # Only other runs of the same clients stood in the way: 4, so cron can tell it apart.
    if failed and all(isinstance(o.exception, LeaseHeldError | PlanStaleError) for o in failed):
        return EXIT_LEASE_HELD
    if statuses & {"error", "unconverged"}:
        return EXIT_ERROR
    return EXIT_BLOCKED if "blocked" in statuses else EXIT_OK


def _show_outcome(app: App, outcome: ClientApply) -> None:
    from crmsync.plan.render import describe_item, render_text

    # A client whose diff failed was reported with the plans already: only the summary
    # line repeats it, in short.
    already_shown = outcome.client.error is not None and outcome.error == outcome.client.error
    if outcome.error is not None and not already_shown:
        _echo_error(app, outcome.name, outcome.error, outcome.exception)
    if outcome.status == "unconverged" and outcome.after is not None:
        click.secho(printable(f"{outcome.name}: after applying, diff still shows:"), fg="red",
                    err=True)
        _echo_styled(render_text(outcome.after))
    elif outcome.status == "blocked" and outcome.after is not None:
        click.echo(printable(f"{outcome.name}: not applied, blocked:"))
        _echo_styled("\n".join(f"  {describe_item(b)}" for b in outcome.after.blocked))


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm(count: int) -> bool:
    if not _stdin_is_terminal():
        raise CrmsyncError("refusing to apply without confirmation: input is not a terminal (a "
                           "script, cron or CI), so nothing was changed; pass --yes to apply "
                           "without asking")
    try:
        return click.confirm(
            f"Apply these changes to {count} client{'' if count == 1 else 's'}?", err=True
        )
    except click.Abort:  # Ctrl-D or Ctrl-C at the question: as good as "no"
        click.echo(err=True)
        return False


@click.command("apply")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print plans and results as JSON.")
@pass_app
def apply_command(app: App, paths: tuple[Path, ...], yes: bool, as_json: bool) -> None:
    """Make each client's CRM match its blueprint, then diff again to prove it.

    PATHS are blueprint files or folders; without PATHS, every *.yaml/*.yml in CRMSYNC_CONFIGS_DIR
    (default: ./configs). Shows the plan and asks first (unless --yes). Blocked changes are
    not applied. Each step's ids are recorded as soon as it succeeds, so an interrupted
    apply resumes cleanly when run again.

    \b
    Examples:
      crmsync apply configs/acme.yaml    # show the plan, ask, apply
      crmsync apply --yes                # every client, no question (cron, CI)
      crmsync apply --yes --json configs/acme.yaml > result.json

    \b
    Exit codes:
      0  applied, and diff is now clean
      3  blocked changes remain (not applied; the reasons are shown)
      4  another apply of the same client is running, or changed it since the plan was
         made (nothing of that client was changed; run again)
      1  an error, a cancelled apply, or a CRM that still differs after applying
    """
    from crmsync.plan.render import describe_item
    from crmsync.provision import apply_clients, diff_clients
    from crmsync.session import Session

    def progress(client: ClientPlan, change: Change) -> None:
        if not as_json:
            click.echo(printable(f"{client.name}: {describe_item(change)}"))

    with _json_on_failure(app, as_json), Session(app.settings) as session:
        # the diff's store and connections serve the apply
        clients = diff_clients(list(paths), app.settings, session=session)
        if not as_json:
            _show_plans(app, clients)
        to_apply = [c for c in clients if c.plan is not None and c.plan.changes]
        if to_apply and not yes:
            if not as_json:
                click.echo()
            if not _confirm(len(to_apply)):
                click.echo("Apply cancelled; nothing was changed.", err=True)
                exit_with(EXIT_ERROR)
        if to_apply and not as_json:
            click.echo()
        try:
            outcomes = apply_clients(clients, app.settings, session=session, on_step=progress)
        except KeyboardInterrupt:
            click.echo("\nApply interrupted. Every step that finished is recorded in the store: "
                       "run the same apply again to finish the rest.", err=True)
            raise
    if as_json:
        click.echo(json.dumps({"clients": [_outcome_json(o) for o in outcomes]}, indent=2,
                              ensure_ascii=False))
    else:
        click.echo()
        for outcome in outcomes:
            _show_outcome(app, outcome)
        for outcome in outcomes:
            click.echo(printable(_apply_summary(outcome)))
    exit_with(_apply_exit(outcomes))


def _outcome_json(outcome: ClientApply) -> dict[str, Any]:
    from crmsync.plan.render import item_to_dict, plan_to_dict

    data = _client_json(outcome.client)
    data["status"] = outcome.status
    data["error"] = outcome.error
    data["applied"] = ([item_to_dict(c) for c in outcome.result.applied]
                       if outcome.result else [])
    data["after"] = plan_to_dict(outcome.after) if outcome.after is not None else None
    return data


# --- export ----------------------------------------------------------------------------------


@click.command("export")
@click.option("--client", "client", required=True, help="Client key, e.g. acme.")
@click.option("--crm", type=click.Choice(CRM_NAMES), required=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the blueprint here (default: standard output).")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--token-env", metavar="VAR",
              help="Read the CRM token from this environment variable (written into the "
                   "blueprint as token_env).")
@pass_app
def export_command(app: App, *, client: str, crm: str, output: Path | None, force: bool,
                   token_env: str | None) -> None:
    """Write a blueprint of the CRM's live pipelines, and remember their ids.

    Keys are derived from labels (Ukrainian and German transliterated) or taken from the
    store where earlier applies recorded them; later renames in the file are then updates,
    not new stages. The file diffs clean against the same account.

    \b
    Examples:
      crmsync export --client acme --crm hubspot -o configs/acme.yaml
      crmsync export --client nordwind --crm pipedrive --token-env NORDWIND_TOKEN \\
          -o configs/nordwind.yaml      # the file keeps `token_env: NORDWIND_TOKEN`
      crmsync diff configs/acme.yaml     # exit 0: the export matches

    \b
    Exit codes:
      0  written (to --output, or to standard output)
      4  an apply of the same client is running
      1  an error (e.g. --output exists without --force, no pipelines, a CRM error)
    """
    from crmsync.provision import export_blueprint

    text = export_blueprint(client, crm, app.settings, output=output, force=force,
                            token_env=token_env)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Wrote {output}; run `crmsync diff {output}` to check it matches.", err=True)


# --- forget ----------------------------------------------------------------------------------


@click.command("forget")
@click.argument("client")
@click.option("--crm", type=click.Choice(CRM_NAMES), required=True)
@pass_app
def forget_command(app: App, *, client: str, crm: str) -> None:
    """Drop the ids and the account recorded for CLIENT's CRM (the CRM is not touched).

    For a client that has moved to another CRM account: the store refuses to apply ids
    recorded in one account to another. After `forget`, the blueprint's pipelines match the
    new account's by label (as for a new client); the next apply or export records the new
    account.

    \b
    Examples:
      crmsync forget nordwind --crm pipedrive
      crmsync diff configs/nordwind.yaml     # now planned against the new account

    \b
    Exit codes:
      0  forgotten (or nothing was recorded)
      4  an apply of the client is running
      1  an error
    """
    from crmsync.provision import forget_client

    dropped = forget_client(client, crm, app.settings)
    click.echo(f"{client} ({crm}): {dropped} recorded id{'' if dropped == 1 else 's'} and the "
               "recorded account forgotten; its pipelines now match by label")


COMMANDS: list[click.Command] = [diff_command, apply_command, export_command, forget_command]
