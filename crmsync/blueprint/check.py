"""`validate` as a library function: load every file, lint the valid ones, report per file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crmsync.blueprint.lint import run_lint, strict
from crmsync.blueprint.loader import LoadedBlueprint, duplicate_client_findings, read_blueprint
from crmsync.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from crmsync.errors import Finding


@dataclass(frozen=True)
class FileReport:
    """The outcome of checking one blueprint file."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    silenced: int = 0
    loaded: LoadedBlueprint | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def failed(self) -> bool:
        return self.count("error") > 0


def check_file(path: str | Path, *, strict_mode: bool = False) -> FileReport:
    """Schema errors of one file, or (if it loads) its lint findings."""
    try:
        loaded = read_blueprint(path)
    except ConfigError as exc:
        return FileReport(str(path), list(exc.findings))
    result = run_lint(loaded.blueprint, loaded.source)
    findings = strict(result.findings) if strict_mode else result.findings
    return FileReport(str(path), findings, len(result.silenced), loaded)


def check_files(paths: Iterable[str | Path], *, strict_mode: bool = False) -> list[FileReport]:
    """`check_file` for each path (a broken file does not stop the others), plus an error
    for a client described by two files."""
    reports = [check_file(path, strict_mode=strict_mode) for path in paths]
    loaded = [r.loaded for r in reports if r.loaded is not None]
    for duplicate in duplicate_client_findings(loaded):
        index = next(i for i, r in enumerate(reports) if r.path == duplicate.path)
        report = reports[index]
        reports[index] = FileReport(report.path, [duplicate, *report.findings], report.silenced,
                                    report.loaded)
    return reports
