"""`crmsync demo`: provisioning, sync and the board, end to end on an embedded sandbox."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import EXIT_ERROR, exit_with


def _run_cli(args: list[str]) -> int:
    from crmsync.cli import cli

    try:
        code = cli.main(args=args, prog_name="crmsync", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return code if isinstance(code, int) else 0


@click.command("demo")
@click.option("--configs-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Blueprints to demonstrate (default: CRMSYNC_CONFIGS_DIR, i.e. configs/).")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the copies, the demo store and the export go (default: a temp dir).")
@pass_app
def demo_command(app: App, configs_dir: Path | None, workdir: Path | None) -> None:
    """Run the whole workflow on an embedded sandbox — no CRM account needed.

    Copies the blueprints, starts a local HubSpot + Pipedrive emulator on a free port with a
    throwaway SQLite store, and runs the commands a consultant would type: validate, diff,
    apply, diff, a stage rename, export; then, once the clients' CRMs fill with records, sync,
    sync again, the board in the terminal and as HTML, and a last diff. Your configs and your
    store are not touched.

    \b
    Examples:
      crmsync demo
      crmsync demo --configs-dir configs --workdir /tmp/crmsync-demo
    """
    from crmsync.demo import DemoStep, run_demo

    source = configs_dir or app.settings.configs_dir
    target = workdir or Path(tempfile.mkdtemp(prefix="crmsync-demo-"))
    target.mkdir(parents=True, exist_ok=True)

    def announce(number: int, step: DemoStep, edit: str | None) -> None:
        click.echo()
        click.secho(f"── {number}. {step.title}", bold=True)
        if edit:
            click.secho(f"({edit})", dim=True)
        click.secho(f"$ crmsync {' '.join(step.args)}", fg="cyan")

    results = run_demo(source, target, _run_cli, announce)
    failed = [r for r in results if not r.ok]
    click.echo()
    if failed:
        for result in failed:
            click.secho(f"demo step '{' '.join(result.step.args)}' exited {result.exit_code}, "
                        f"expected {result.step.expected_exit}", fg="red", err=True)
        exit_with(EXIT_ERROR)
    click.secho(f"Demo complete: {len(results)} steps as expected. Files in {target}", bold=True)


COMMANDS: list[click.Command] = [demo_command]
