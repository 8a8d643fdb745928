"""The `crmsync` command line: thin click commands over the library.

Each command parses options, calls one library function, renders the result and exits.
Errors from the library (`CrmsyncError`) become a one-paragraph message and an exit code
here and only here; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click

from crmsync import __version__
from crmsync.errors import CrmsyncError
from crmsync.settings import Settings, load_settings


@dataclass
class App:
    """What every command gets through `ctx.obj`: settings (read lazily) and the debug flag."""

    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(**self.overrides)
            self._configure_logging(self._settings)
        return self._settings

    def _configure_logging(self, settings: Settings) -> None:
        from crmsync.logs import configure_logging

        tokens = [t.get_secret_value() for t in (settings.hubspot_token, settings.pipedrive_token)
                  if t is not None]
        configure_logging("DEBUG" if self.debug else settings.log_level, settings.log_format,
                          secrets=tokens)


pass_app = click.make_pass_decorator(App)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="crmsync")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Sales pipelines as code for HubSpot and Pipedrive.

    Describe each client's pipelines and deal stages in configs/CLIENT.yaml, check them
    (validate), preview the changes against the live CRM (diff), make them so (apply), or
    adopt an existing CRM (export). `crmsync sandbox` serves a local emulator of both CRMs.
    """
    ctx.obj = App(debug=debug)
    if debug:  # until settings are read (see App.settings), which also masks tokens
        from crmsync.logs import configure_logging

        configure_logging("DEBUG", "text")


def _register_commands() -> None:
    from crmsync.cli import (
        config_commands,
        demo_command,
        provision_commands,
        sandbox_command,
    )

    for module in (config_commands, provision_commands, sandbox_command, demo_command):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning crmsync errors into exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click returns (not raises) the code given to ctx.exit().
        exit_code = cli.main(args=argv, prog_name="crmsync", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CrmsyncError as exc:
        if debug:
            raise
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
