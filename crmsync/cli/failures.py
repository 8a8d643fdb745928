"""How a failure leaves the CLI: one paragraph on stderr and an exit code. The one place.

Library code raises `CrmsyncError`s whose text already says what is wrong and what to do;
here they are printed as `error: …`, a config's findings one per line with their hints.
`--debug` adds the traceback. Anything else that escapes a command is a bug in crmsync: it
gets a short message that says so (and how to see the traceback), never a raw traceback.
"""

from __future__ import annotations

import traceback
from typing import NoReturn

import click

from crmsync.errors import ConfigError, CrmsyncError
from crmsync.logs import mask_known

EXIT_ERROR = 1
EXIT_LEASE_HELD = 4  # another run holds the client's lease (`apply`, later `sync`)
# Ctrl-C is a failure like any other for a script: 1, within the documented codes (0/1, diff
# 2, apply 3), rather than the shell's 130.
EXIT_INTERRUPTED = EXIT_ERROR


def exit_with(code: int) -> NoReturn:
    """End the command with exit status `code`."""
    # Not click's ctx.exit(): under standalone_mode=False (how CrmsyncGroup.main runs the
    # group) click returns that code instead of raising it, and the exit status would be lost.
    raise SystemExit(code)


def describe(exc: BaseException) -> str:
    """One paragraph for `exc`; findings of a ConfigError are joined one per line."""
    if isinstance(exc, CrmsyncError):
        return mask_known(str(exc))
    # A library's exception may quote what it was given (requests' InvalidHeader quotes the
    # header value): every token crmsync has read is masked.
    return mask_known(f"unexpected {type(exc).__name__}: {exc}. This is a bug in crmsync: run "
                      "the same command with --debug to see the traceback, and please report it")


def _secho(text: str, **style: object) -> None:
    """`click.secho` to stderr with every known token masked: the one way out for errors."""
    click.secho(mask_known(text), err=True, **style)  # type: ignore[arg-type]


def echo_error(exc: BaseException, *, debug: bool = False, name: str | None = None,
               message: str | None = None) -> None:
    """Print `exc` as `error: [NAME: ]message` on stderr (and its traceback with --debug).

    `message` replaces the exception's own text where the caller knows more (e.g. "diff
    after apply: …"); a config's findings are always shown one per line.
    """
    if debug:
        _secho("".join(traceback.format_exception(exc)).rstrip())
    if isinstance(exc, ConfigError) and exc.findings:
        if name:
            _secho(f"error: {name}: invalid blueprint", fg="red")
        for finding in exc.findings:
            _secho(f"  {finding}" if name else f"error: {finding}", fg="red")
            if finding.hint:
                _secho(f"{'    ' if name else '  '}hint: {finding.hint}")
        if exc.hint:
            _secho(f"{'    ' if name else '  '}hint: {exc.hint}")
        return
    echo_message(message or describe(exc), name=name)


def echo_message(message: str, *, name: str | None = None) -> None:
    """`error: [NAME: ]first line`, further lines indented under it (tokens masked)."""
    first, *rest = message.splitlines() or [""]
    _secho(f"error: {name}: {first}" if name else f"error: {first}", fg="red")
    for line in rest:
        _secho(f"  {line}", fg="red")


def report_failure(exc: BaseException, *, debug: bool) -> int:
    """Print what went wrong and return the exit code for it."""
    if isinstance(exc, click.exceptions.UsageError):
        exc.show()  # usage, "Try 'crmsync X --help'", the problem
        # 1, not click's 2: `crmsync diff` exits 2 for "changes pending", so a mistyped option
        # must not look like a plan to a script.
        return EXIT_ERROR
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code or EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt) or (
            isinstance(exc, click.exceptions.Abort)
            and isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)):
        if debug:
            _secho("".join(traceback.format_exception(exc)).rstrip())
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, click.exceptions.Abort):  # end of input at a prompt
        click.echo("Aborted: no answer was given.", err=True)
        return EXIT_ERROR
    echo_error(exc, debug=debug)
    return exc.exit_code if isinstance(exc, CrmsyncError) else EXIT_ERROR
