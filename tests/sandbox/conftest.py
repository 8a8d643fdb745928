"""Fixtures of the Pipedrive emulator tests; the helpers behind them are in `pipedrive_support`.

Tests that need Pipedrive's published specs (those using the `spec` fixture, or marked
`pipedrive_specs`) are skipped with one reason when the specs are not in the default folder,
as in a plain clone; see `pipedrive_support.missing_specs_reason`.
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
    from collections.abc import Iterator


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
    reason = missing_specs_reason()
    if reason is None or SPECS_EXPLICIT:  # named explicitly: let `load_spec` fail loudly
        return
    # A skip marker (not pytest.skip in the fixture): the summary then folds every such test
    # of a file into one line with the reason.
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if needs_specs(item):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def pd() -> Iterator[PipedriveSandbox]:
    """A Pipedrive-only sandbox with a manual clock, private to the test module."""
    yield from start_pipedrive_sandbox()


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    """Pipedrive's specs with their errata, loaded once per module (about a second)."""
    return build_validator()
