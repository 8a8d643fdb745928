"""The sandbox server: one host:port serving every emulated CRM plus `/_sandbox/` controls."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from crmsync.sandbox.http import Request, Response, Router

log = logging.getLogger(__name__)


class Emulator(Protocol):
    """One emulated CRM: its routes, its auth, its state."""

    crm: str
    path_prefixes: tuple[str, ...]  # requests under these prefixes belong to this CRM

    def register(self, router: Router) -> None: ...

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries an accepted token, else the CRM's own 401."""
        ...

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """A response in this CRM's error shape."""
        ...

    def reset(self) -> None: ...

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]: ...

    def dump_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class Sandbox:
    """The application: routes a `Request` to the right emulator and returns a `Response`."""

    def __init__(self, emulators: list[Emulator]) -> None:
        self.emulators = emulators
        self.router = Router()
        for emulator in emulators:
            emulator.register(self.router)

    def emulator_for(self, path: str) -> Emulator | None:
        return next(
            (e for e in self.emulators if any(path.startswith(p) for p in e.path_prefixes)), None
        )

    def handle(self, request: Request) -> Response:
        emulator = self.emulator_for(request.path)
        if emulator is None:
            return Response(404, {"error": f"no emulated API at {request.path}"})
        denied = emulator.authenticate(request)
        if denied is not None:
            return denied
        route, params, path_known = self.router.match(request.method, request.path)
        if route is None:
            if path_known:
                return emulator.error(405, f"Method {request.method} not allowed")
            return emulator.error(404, f"Unknown path {request.path}")
        request.path_params = params
        request.route = route.template
        try:
            return route.handler(request)
        except ValueError as exc:  # malformed JSON bodies and bad numbers
            return emulator.error(400, f"Invalid input: {exc}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request.build(self.command, self.path, dict(self.headers.items()), body)
        response = self.server.app.handle(request)
        payload = response.encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("sandbox %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Sandbox) -> None:
        self.app = app
        super().__init__(address, _Handler)


class SandboxServer:
    """Runs a `Sandbox` on a port in a background thread (tests) or the foreground (CLI)."""

    def __init__(self, app: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = _Server((host, port), app)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
