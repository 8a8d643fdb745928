"""Tokens never leave the program: not through a stray line break, an unexpected error, a
redirect to another host or a plain-http base URL."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from crmsync.adapters import registry
from crmsync.cli import main

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from crmsync.adapters.base import CrmAdapter
    from crmsync.adapters.registry import Connection

GUARD = "sandbox-guard-7f3a9c"  # the one token the guarded sandbox accepts
LEAKY = "pd-leaky-5e6f7a8b9c0d"

BLUEPRINT = """\
client: kyivsoft
crm: pipedrive
pipelines:
  - key: sales
    label: Sales
    stages:
      - key: booked
        label: Meeting booked
        probability: 0.1
"""
HUBSPOT_BLUEPRINT = BLUEPRINT.replace("kyivsoft", "acme").replace(
    "crm: pipedrive", "crm: hubspot\ntoken_env: ACME_HUBSPOT_TOKEN")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CRMSYNC_") or name.endswith("_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRMSYNC_MAX_RETRIES", "0")
    monkeypatch.setenv("CRMSYNC_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "kyivsoft.yaml").write_text(BLUEPRINT, encoding="utf-8")
    return tmp_path


@pytest.fixture
def guarded() -> Iterator[str]:
    from crmsync.sandbox import start_sandbox

    server = start_sandbox(port=0, token=GUARD)
    try:
        yield server.base_url
    finally:
        server.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize("stray", ["\r\n", "\n", " ", "\t"])
def test_a_token_with_surrounding_whitespace_is_used_stripped(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch,
        guarded: str, stray: str) -> None:
    """A secret piped through base64 or read from a CRLF file: it works, and is never shown
    (requests' InvalidHeader used to quote it in an "unexpected … bug" message)."""
    (isolated / "configs" / "acme.yaml").write_text(HUBSPOT_BLUEPRINT, encoding="utf-8")
    for crm in ("HUBSPOT", "PIPEDRIVE"):
        monkeypatch.setenv(f"CRMSYNC_{crm}_BASE_URL", guarded)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", GUARD + stray)
    monkeypatch.setenv("ACME_HUBSPOT_TOKEN", stray + GUARD + stray)

    code, out, err = run(capsys, "diff")

    assert code == 2, out + err  # a plan: both CRMs accepted the stripped token
    assert "unexpected" not in err
    assert GUARD not in out + err


@pytest.mark.parametrize("bad", ["pd-token two", "pd-token\ttwo", "pd-token\x07two",
                                 "pd-token\r\ntwo"])
def test_a_token_with_inner_whitespace_is_refused_naming_the_variable(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch,
        bad: str) -> None:
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", bad)
    code, out, err = run(capsys, "diff")
    assert code == 1
    assert "CRMSYNC_PIPEDRIVE_TOKEN: the token contains whitespace or control characters" in err
    assert "two" not in out + err
    assert "Traceback" not in err

    (isolated / "configs" / "kyivsoft.yaml").unlink()
    (isolated / "configs" / "acme.yaml").write_text(HUBSPOT_BLUEPRINT, encoding="utf-8")
    monkeypatch.delenv("CRMSYNC_PIPEDRIVE_TOKEN")
    monkeypatch.setenv("ACME_HUBSPOT_TOKEN", bad)
    code, out, err = run(capsys, "diff")
    assert code == 1
    assert "$ACME_HUBSPOT_TOKEN: the token contains whitespace" in err
    assert "two" not in out + err


def test_an_unexpected_error_quoting_the_token_is_masked_everywhere(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (here: an adapter that quotes its token) reaches the "unexpected … this is a bug"
    message, the summary and the JSON plan: the token is masked in each."""

    def leaky(connection: Connection) -> CrmAdapter:
        raise ValueError(f"Invalid header value {connection.token.get_secret_value()!r}")

    monkeypatch.setitem(registry._FACTORIES, "pipedrive", leaky)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", LEAKY)

    for args in (["diff"], ["--debug", "diff"], ["apply", "--yes"]):
        code, out, err = run(capsys, *args)
        assert code == 1, out + err
        assert "unexpected ValueError: Invalid header value '***'" in err
        assert LEAKY not in out + err

    code, out, err = run(capsys, "diff", "--json")
    assert LEAKY not in out + err
    (client,) = json.loads(out)["clients"]
    assert "'***'" in client["error"]
