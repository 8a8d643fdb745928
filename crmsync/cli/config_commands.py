"""Commands registered on the `crmsync` group (see crmsync/cli/__init__.py): validate, init."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import EXIT_ERROR, describe, echo_error, exit_with
from crmsync.errors import ConfigError, CrmsyncError, Finding
from crmsync.names import CRM_NAMES
from crmsync.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crmsync.blueprint.check import FileReport

_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}
_NOUNS = {"error": ("error", "errors"), "warning": ("warning", "warnings"),
          "info": ("note", "notes")}


def _plural(count: int, severity: str) -> str:
    one, many = _NOUNS[severity]
    return f"{count} {one if count == 1 else many}"


def _echo_finding(finding: Finding) -> None:
    severity = click.style(f"{finding.severity:<8}", fg=_COLOURS.get(finding.severity), bold=True)
    click.echo(f"  {severity} {printable(str(finding))}")
    if finding.hint:
        click.echo(printable(f"           hint: {finding.hint}"))


def _findings_json(findings: Iterable[Finding]) -> str:
    keys = ("path", "line", "column", "field", "severity", "rule", "message", "hint")
    rows = [{key: asdict(f)[key] for key in keys} for f in findings]
    return json.dumps(rows, indent=2, ensure_ascii=False)


def _summary(report: FileReport) -> str:
    counts = [_plural(n, s) for s in ("error", "warning", "info") if (n := report.count(s))]
    if report.silenced:
        counts.append(f"{report.silenced} silenced")
    if report.failed or report.loaded is None:
        return click.style(", ".join(counts), fg="red", bold=True)
    blueprint = report.loaded.blueprint
    stages = sum(len(p.stages) for p in blueprint.pipelines)
    pipelines = len(blueprint.pipelines)
    what = (f"{blueprint.crm}, {pipelines} pipeline{'s' if pipelines != 1 else ''}, "
            f"{stages} stages")
    return ", ".join([click.style("ok", fg="green", bold=True) + f" ({what})", *counts])


def _render_reports(reports: list[FileReport]) -> None:
    for report in reports:
        click.echo(f"{printable(str(report.path))}: {_summary(report)}")
        for finding in report.findings:
            _echo_finding(finding)
    failed = sum(1 for r in reports if r.failed)
    warned = sum(1 for r in reports if not r.failed and r.count("warning"))
    files = f"{len(reports)} file{'s' if len(reports) != 1 else ''}"
    click.echo(f"\nChecked {files}: {failed} with errors, {warned} with warnings only.")


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat lint warnings as errors (exit 1 on any).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the findings as a JSON list (path, line, column, field, severity, "
                   "rule, message, hint).")
@pass_app
def validate(app: App, paths: tuple[Path, ...], strict: bool, as_json: bool) -> None:
    """Check blueprints for errors and for the method's lint rules.

    PATHS are blueprint files or folders; without any, every *.yaml in the configs
    folder (CRMSYNC_CONFIGS_DIR, default configs/) is checked. Every problem is reported
    with file:line:column, the field and a hint. Lint findings are warnings: stage labels in
    the past tense from the buyer's side, no to-dos, no passive states, rising
    probabilities, one won and one lost stage at the end, unique labels, CRM limits. Silence
    a rule with `silence: [{rule: ID, reason: "..."}]` in the file or on a stage.

    Exit code 0: valid (warnings allowed); 1: errors (or warnings with --strict).

    \b
    Examples:
      crmsync validate
      crmsync validate configs/acme.yaml --strict
      crmsync validate configs/ --json
    """
    from crmsync.blueprint.check import check_files
    from crmsync.provision import config_files

    try:
        # Settings are only read when needed, so explicit paths work even with a broken .env.
        files = config_files(paths, None if paths else app.settings.configs_dir)
    except CrmsyncError as exc:
        if not as_json:
            raise  # reported like every error, by crmsync.cli.failures
        # --json: the findings are the output; an error without any (e.g. invalid settings)
        # is one finding without a file, and the message goes to stderr as usual.
        findings = exc.findings if isinstance(exc, ConfigError) and exc.findings else [
            Finding(path="", line=None, column=None, field="", message=describe(exc))]
        click.echo(_findings_json(findings))
        if not isinstance(exc, ConfigError):
            echo_error(exc, debug=app.debug)
        exit_with(EXIT_ERROR)
    reports = check_files(files, strict_mode=strict)
    if as_json:
        click.echo(_findings_json(f for r in reports for f in r.findings))
    else:
        _render_reports(reports)
    if any(r.failed for r in reports):
        exit_with(EXIT_ERROR)


@click.command("init")
@click.argument("client")
@click.option("--crm", type=click.Choice(CRM_NAMES), required=True,
              help="The client's CRM.")
@click.option("--configs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write to (default: CRMSYNC_CONFIGS_DIR, else configs/).")
@pass_app
def init(app: App, client: str, crm: str, configs_dir: Path | None) -> None:
    """Scaffold configs/CLIENT.yaml: a commented blueprint that follows the method.

    One pipeline from "Needs-assessment meeting booked" to "Contract signed" (won) and
    "Lost", every stage named in the past tense from the buyer's side. CLIENT is the
    client's key: lowercase letters, digits and underscores. An existing file is never
    overwritten.

    \b
    Examples:
      crmsync init acme --crm hubspot
      crmsync init nordwind --crm pipedrive --configs-dir clients/
    """
    from crmsync.blueprint.scaffold import write_scaffold

    path = write_scaffold(client, crm, configs_dir or app.settings.configs_dir)
    click.echo(f"Created {path} ({crm}). Edit the stages to the client's process, then check:")
    click.echo(f"  crmsync validate {path} --strict")


COMMANDS: list[click.Command] = [validate, init]
