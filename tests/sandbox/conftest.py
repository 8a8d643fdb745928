"""Fixtures of the Pipedrive emulator tests; the helpers behind them are in `pipedrive_support`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pipedrive_support import (
    PipedriveSandbox,
    SpecValidator,
    build_validator,
    start_pipedrive_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def pd() -> Iterator[PipedriveSandbox]:
    """A Pipedrive-only sandbox with a manual clock, private to the test module."""
    yield from start_pipedrive_sandbox()


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    """Pipedrive's specs with their errata, loaded once per module (about a second)."""
    return build_validator()
