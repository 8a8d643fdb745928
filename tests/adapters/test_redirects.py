"""No token crosses origins: a CRM base URL that answers with a redirect to another host is
a clean fatal error naming the setting to check, and the other host never sees the token.

Two loopback servers on different ports are two origins: the first answers every request
with a redirect to the second, which records what it received.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.adapters.registry import create_adapter
from crmsync.cli import main
from crmsync.errors import FatalRemoteError

from .sandbox_helpers import settings_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "redirect-test-token-4b5c6d7e"


@dataclass
class Origins:
    redirecting: str  # the base URL crmsync is pointed at
    elsewhere: str  # where it redirects to
    received: list[dict[str, str]] = field(default_factory=list)  # headers seen elsewhere


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(params=[302, 307])
def origins(request: pytest.FixtureRequest) -> Iterator[Origins]:
    status: int = request.param
    received: list[dict[str, str]] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            received.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"success": true, "data": [], "results": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _answer  # noqa: N815 -- http.server's naming

        def log_message(self, *_: Any) -> None:
            pass

    elsewhere = _serve(Elsewhere)
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}"

    class Redirecting(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(status)
            self.send_header("Location", f"{target}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = _answer  # noqa: N815

        def log_message(self, *_: Any) -> None:
            pass

    redirecting = _serve(Redirecting)
    try:
        yield Origins(f"http://127.0.0.1:{redirecting.server_address[1]}", target, received)
    finally:
        for server in (redirecting, elsewhere):
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_a_redirect_to_another_origin_is_fatal_and_the_token_stays(origins: Origins,
                                                                   crm: str) -> None:
    settings = settings_for(origins.redirecting, hubspot_token=TOKEN, pipedrive_token=TOKEN)
    adapter = create_adapter(crm, settings, sleep=lambda _: None)

    with pytest.raises(FatalRemoteError) as caught:
        adapter.list_pipelines()

    message = str(caught.value)
    assert f"another origin, {origins.elsewhere}), which crmsync does not follow" in message
    assert f"Check CRMSYNC_{crm.upper()}_BASE_URL (now {origins.redirecting})" in message
    assert TOKEN not in message
    assert origins.received == []  # not followed at all: one request, nothing elsewhere


def test_the_pipedrive_session_drops_its_token_on_a_cross_origin_redirect(
        origins: Origins) -> None:
    """Any other request made on the adapter's session (record sync will add some) follows
    redirects as requests does by default, but without the token."""
    adapter = PipedriveAdapter(origins.redirecting, TOKEN)
    session = adapter._session  # the guard under test
    response = session.get(f"{origins.redirecting}/api/v2/deals", timeout=5)
    assert response.status_code == 200
    (headers,) = origins.received
    assert "x-api-token" not in headers
    assert TOKEN not in str(headers)


def test_the_cli_reports_a_redirecting_base_url_cleanly(
        origins: Origins, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("CRMSYNC_") or name.endswith("_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRMSYNC_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("CRMSYNC_HUBSPOT_BASE_URL", origins.redirecting)
    monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", TOKEN)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "acme.yaml").write_text(
        "client: acme\ncrm: hubspot\npipelines:\n  - key: sales\n    label: Sales\n"
        "    stages:\n      - key: booked\n        label: Meeting booked\n"
        "        probability: 0.1\n", encoding="utf-8")

    with pytest.raises(SystemExit) as exited:
        main(["diff"])
    err = capsys.readouterr().err

    assert exited.value.code == 1
    assert "hubspot answered 30" in err
    assert "unexpected" not in err
    assert "Check CRMSYNC_HUBSPOT_BASE_URL" in err
    assert TOKEN not in err
    assert origins.received == []
