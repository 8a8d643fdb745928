"""Logging from settings: level, JSON format, and tokens masked even if some code logged one."""

from __future__ import annotations

import json
import logging

import pytest

from crmsync.logs import SecretMaskingFilter, configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("crmsync.test").info("applied %d changes", 3)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "crmsync.test"
    assert entry["message"] == "applied 3 changes"


def test_level_filters_lower_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "text")
    logging.getLogger("crmsync.test").info("quiet")
    logging.getLogger("crmsync.test").warning("loud")
    err = capsys.readouterr().err
    assert "loud" in err
    assert "quiet" not in err


def test_tokens_are_masked_in_log_output(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "text", secrets=["pat-na1-SECRET"])
    logging.getLogger("crmsync.test").debug("header Authorization: Bearer %s", "pat-na1-SECRET")
    err = capsys.readouterr().err
    assert "pat-na1-SECRET" not in err
    assert "Bearer ***" in err


def test_masking_filter_ignores_empty_secrets() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("abc",), None)
    assert SecretMaskingFilter(["", "zzz"]).filter(record)
    assert record.getMessage() == "value abc"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_tokens_are_masked_in_logged_tracebacks(capsys: pytest.CaptureFixture[str],
                                                fmt: str) -> None:
    token = "pat-na1-traceback-0f1e2d3c"
    configure_logging("DEBUG", fmt, secrets=[token])
    try:
        raise ValueError(f"Invalid header value {token!r}")
    except ValueError:
        logging.getLogger("crmsync.test").debug("diff failed", exc_info=True)
    err = capsys.readouterr().err
    assert "Invalid header value '***'" in err
    assert token not in err
