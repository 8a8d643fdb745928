"""The `crmsync` command line: thin click commands over the library.

Each command parses options, calls one library function, renders the result and exits.
Every failure — a `CrmsyncError` from the library, a usage error, Ctrl-C, a bug — leaves
through `CrmsyncGroup.main`, which prints one paragraph and picks the exit code
(`crmsync.cli.failures`); `--debug` adds the traceback. The same path serves the console
script, `main()`, and click's test runner.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from crmsync import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crmsync.settings import Settings


@dataclass
class App:
    """What every command gets through `ctx.obj`: settings (read lazily) and the debug flag."""

    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The runtime settings, read (and logging configured) on first use.

        Imported here, not at the top: pydantic-settings is most of the start-up time, and
        `crmsync --help` or `validate PATHS` never need it.
        """
        if self._settings is None:
            from crmsync.settings import load_settings

            self._settings = load_settings()
            self._configure_logging(self._settings)
        return self._settings

    def _configure_logging(self, settings: Settings) -> None:
        from crmsync.logs import configure_logging

        tokens = [t.get_secret_value() for t in (settings.hubspot_token, settings.pipedrive_token)
                  if t is not None]
        configure_logging("DEBUG" if self.debug else settings.log_level, settings.log_format,
                          secrets=tokens)


pass_app = click.make_pass_decorator(App)


def _wants_debug(argv: Sequence[str]) -> bool:
    # Read from the arguments: the failure may come before (or instead of) the group callback.
    return "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv


class CrmsyncGroup(click.Group):
    """The `crmsync` group: every failure becomes one message and an exit code, here."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI. Standalone (the console script, CliRunner) it always exits; otherwise
        it returns a success's exit code and raises `SystemExit` for a failure."""
        from crmsync.cli.failures import report_failure

        argv = list(sys.argv[1:] if args is None else args)
        try:
            # Without standalone mode click leaves every exception to us, and returns (not
            # raises) the code given to ctx.exit().
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 -- the one place
            sys.exit(report_failure(exc, debug=_wants_debug(argv)))
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(name="crmsync", cls=CrmsyncGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="crmsync")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Sales pipelines as code for HubSpot and Pipedrive.

    Describe each client's pipelines and deal stages in configs/CLIENT.yaml, check them
    (validate), preview the changes against the live CRM (diff), make them so (apply), or
    adopt an existing CRM (export). `crmsync sandbox` serves a local emulator of both CRMs.
    Settings come from CRMSYNC_* environment variables or a .env file (see .env.example).

    \b
    Examples:
      crmsync demo                                 # the whole workflow on a local sandbox
      crmsync init acme --crm hubspot              # scaffold configs/acme.yaml
      crmsync validate --strict && crmsync diff    # check, then preview against the CRM
      crmsync apply configs/acme.yaml              # make it so (asks first)

    Each command has its own --help with examples and exit codes.
    """
    ctx.obj = App(debug=debug)
    if debug:  # until settings are read (see App.settings), which also masks tokens
        from crmsync.logs import configure_logging

        configure_logging("DEBUG", "text")
    if ctx.invoked_subcommand is None:  # plain `crmsync`: the help, not an error
        click.echo(ctx.get_help())
        ctx.exit(0)


def _register_commands() -> None:
    from crmsync.cli import (
        config_commands,
        demo_command,
        import_command,
        provision_commands,
        report_command,
        sandbox_command,
        sync_command,
    )

    for module in (config_commands, provision_commands, sync_command, import_command,
                   report_command, sandbox_command, demo_command):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with its code (never returns)."""
    cli.main(args=argv, prog_name="crmsync")
