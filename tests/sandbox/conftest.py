"""Fixtures of the Pipedrive emulator tests; the helpers behind them are in `pipedrive_support`.

Tests that need Pipedrive's published specs (those using the `spec` fixture, or marked
`pipedrive_specs`) are skipped when the specs are not in the default folder, as in a plain
clone, and the summary shows them as ONE line with the reason, which names the setting
(`pipedrive_support.missing_specs_reason`). A folder named explicitly that lacks them fails
those tests instead (`pipedrive_support.load_spec`), so a misconfigured CI is never green.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pipedrive_support import (
    SPECS_EXPLICIT,
    PipedriveSandbox,
    SpecValidator,
    build_validator,
    missing_specs_reason,
    start_pipedrive_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

_SKIP_REASON = None if SPECS_EXPLICIT else missing_specs_reason()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pipedrive_specs: needs Pipedrive's OpenAPI specs (CRMSYNC_PIPEDRIVE_SPECS_DIR)"
    )


def needs_specs(item: pytest.Item) -> bool:
    """The test validates against the specs, or is marked as depending on tests that do."""
    return "spec" in getattr(item, "fixturenames", ()) or (
        item.get_closest_marker("pipedrive_specs") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _SKIP_REASON is None:
        return
    skip = pytest.mark.skip(reason=_SKIP_REASON)
    for item in items:
        if needs_specs(item):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every skip for missing specs reported from here: the summary folds them into one line."""
    report = yield
    if (_SKIP_REASON is not None and report.skipped and isinstance(report.longrepr, tuple)
            and _SKIP_REASON in str(report.longrepr[2])):
        report.longrepr = (__file__, None, _SKIP_REASON)  # type: ignore[assignment]
    return report


@pytest.fixture(scope="module")
def pd() -> Iterator[PipedriveSandbox]:
    """A Pipedrive-only sandbox with a manual clock, private to the test module."""
    yield from start_pipedrive_sandbox()


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    """Pipedrive's specs with their errata, loaded once per module (about a second)."""
    return build_validator()
