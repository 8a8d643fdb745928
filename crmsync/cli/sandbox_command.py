"""`crmsync sandbox`: serve the local HubSpot + Pipedrive emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crmsync.errors import CrmsyncError

if TYPE_CHECKING:
    from crmsync.sandbox import SandboxConfig

COMMANDS: list[click.Command] = []


def _exports(base_url: str, token: str, search_lag: float = 0.0) -> str:
    return (
        f"export CRMSYNC_HUBSPOT_BASE_URL={base_url} CRMSYNC_PIPEDRIVE_BASE_URL={base_url} "
        f"CRMSYNC_HUBSPOT_TOKEN={token} CRMSYNC_PIPEDRIVE_TOKEN={token} "
        f"CRMSYNC_HUBSPOT_SEARCH_LAG_SECONDS={search_lag:g}"
    )


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--token", default=None,
              help="Accept only this token: a single account per CRM (default: any non-empty "
                   "token, each its own account).")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Load data from FILE at start and save it there on exit.")
@click.option("--seed-contacts", default=0, show_default=True, type=click.IntRange(0),
              help="Synthetic contacts/persons to add at start to each CRM's account of the "
                   "printed token.")
@click.option("--seed-companies", default=0, show_default=True, type=click.IntRange(0),
              help="Synthetic companies/organizations to add likewise.")
@click.option("--seed-deals", default=0, show_default=True, type=click.IntRange(0),
              help="Synthetic deals to add likewise.")
@click.option("--seed", "seed_value", default=0, show_default=True, type=int,
              help="Random seed for the synthetic data and the fault injection.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Added latency per request.")
@click.option("--jitter-ms", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Random extra latency per request, up to this much.")
@click.option("--rate-limits/--no-rate-limits", default=False, show_default=True,
              help="Enforce each CRM's rate limits (HubSpot 10 s window, Pipedrive 2 s burst).")
@click.option("--hubspot-limit", default=100, show_default=True,
              type=click.Choice(["100", "190", "250"]),
              help="HubSpot requests per rolling 10 s (Free/Starter 100, Pro/Enterprise 190).")
@click.option("--pipedrive-plan", default="lite", show_default=True,
              type=click.Choice(["lite", "growth", "premium", "ultimate"]),
              help="Pipedrive plan, which sets the 2 s burst limit.")
@click.option("--search-lag-seconds", default=0.0, show_default=True,
              type=click.FloatRange(0, 3600),
              help="HubSpot search index lag: a created or changed record reaches search this "
                   "long after the write (lists and gets see it at once).")
def sandbox(  # noqa: PLR0917 - click passes every option positionally
    host: str, port: int, token: str | None, state_file: Path | None, seed_contacts: int,
    seed_companies: int, seed_deals: int, seed_value: int, latency_ms: float, jitter_ms: float,
    rate_limits: bool, hubspot_limit: str, pipedrive_plan: str, search_lag_seconds: float,
) -> None:
    """Serve a local emulator of the HubSpot and Pipedrive APIs.

    Both CRMs share one base URL; point crmsync at it with the printed `export` line. Each
    token is its own CRM account, as each client's real portal or company is: give each
    client its own token (`token_env:` in its blueprint). The `/_sandbox/` control endpoints
    (stats, reset, seed, faults) are documented in crmsync/sandbox/control.py. Stop with
    Ctrl-C (or SIGTERM); with --state the data is saved then.

    \b
    Examples:
      crmsync sandbox                          # http://127.0.0.1:8765, any token
      crmsync sandbox --port 0 --state sandbox.json --seed-deals 50
      crmsync sandbox --token secret --rate-limits --hubspot-limit 190
    """
    from crmsync.sandbox import SandboxConfig

    config = SandboxConfig(
        latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed_value,
        rate_limits_enabled=rate_limits, hubspot_limit_per_10s=int(hubspot_limit),
        pipedrive_plan=pipedrive_plan,  # type: ignore[arg-type]
        search_lag_seconds=search_lag_seconds,
    )
    if state_file is not None:
        _check_state_writable(state_file)
    # SIGTERM from here on is a Ctrl-C: one that comes while seeding still stops the server
    # through the `finally` below, which saves the state.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _serve(host, port, token=token, state_file=state_file, config=config,
               seed_counts={"contacts": seed_contacts, "companies": seed_companies,
                            "deals": seed_deals}, seed_value=seed_value)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _serve(host: str, port: int, *, token: str | None, state_file: Path | None,
           config: SandboxConfig, seed_counts: dict[str, int], seed_value: int) -> None:
    """Start the sandbox, seed and announce it, and serve until interrupted."""
    from crmsync.sandbox import start_sandbox

    try:
        server = start_sandbox(host, port, token=token, state_file=state_file, config=config)
    except OSError as exc:
        if state_file is not None and exc.filename and Path(exc.filename) == state_file:
            raise CrmsyncError(f"cannot read the sandbox state {state_file}: {exc.strerror}",
                               hint=_STATE_HINT) from exc
        raise _listen_error(host, port, exc) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if state_file is None:
            raise
        raise CrmsyncError(
            f"cannot load the sandbox state from {state_file}: it is not a state file that "
            f"crmsync sandbox saved ({type(exc).__name__}: {exc})", hint=_STATE_HINT,
        ) from exc
    app = server.app
    try:
        if any(seed_counts.values()):
            created = {crm: app.seed(crm, contacts=seed_counts["contacts"],
                                     companies=seed_counts["companies"],
                                     deals=seed_counts["deals"], seed=seed_value)
                       for crm in app.accounts.crms}
            click.echo(f"seeded the printed token's accounts: {created}")
        base_url = server.base_url
        click.echo(f"crmsync sandbox serving HubSpot and Pipedrive at {base_url}")
        if state_file is not None:
            click.echo(f"state: {state_file} (saved on exit)")
        click.echo("Point crmsync at it:")
        click.echo(f"  {_exports(base_url, app.default_token, config.search_lag_seconds)}")
        if token is None:
            click.echo("Each token is its own CRM account, as each client's real one is: give "
                       "each client its own token (token_env: in its blueprint).")
        else:
            click.echo("Only this token is accepted: one account per CRM.")
        click.echo(f"Controls: {base_url}/_sandbox/stats, /_sandbox/reset, /_sandbox/seed, "
                   "/_sandbox/faults. Ctrl-C to stop.")
        _wait_for_stop()
    finally:
        try:
            server.stop()
        except OSError as exc:
            raise CrmsyncError(
                f"sandbox stopped, but its state could not be saved to {state_file}: "
                f"{exc.strerror or exc}",
                hint="The data of this run is lost; pass a --state FILE in a writable folder",
            ) from exc
        click.echo("sandbox stopped" + (f"; state saved to {state_file}" if state_file else ""))


_STATE_HINT = ("Move the file away (or pass another --state FILE) to start with an empty "
               "sandbox")


def _listen_error(host: str, port: int, exc: OSError) -> CrmsyncError:
    """Why the sandbox cannot serve at host:port, and what to do instead."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        hint = ("Another program (perhaps another crmsync sandbox) uses that port: pick another "
                "with --port N, or --port 0 for a free one")
    elif exc.errno == errno.EACCES:
        hint = "Ports below 1024 need administrator rights: pick one above, e.g. --port 8765"
    else:
        hint = "Check --host: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
    return CrmsyncError(f"cannot listen on {host}:{port}: {reason}", hint=hint)


def _check_state_writable(state_file: Path) -> None:
    """Refuse to start when the state could not be saved on exit: better than losing it then."""
    folder = state_file.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CrmsyncError(
            f"cannot save the sandbox state to {state_file}: "
            f"{existing} is {'not a folder' if not existing.is_dir() else 'not writable'}",
            hint="Pass a --state FILE in a folder you can write to",
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (both end in a clean stop and a state save)."""
    never = threading.Event()
    try:
        while not never.wait(0.5):  # a timed wait keeps Ctrl-C deliverable on every platform
            pass
    except KeyboardInterrupt:
        pass


COMMANDS.append(sandbox)
