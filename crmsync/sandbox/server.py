"""The sandbox server: one host:port serving every emulated CRM plus `/_sandbox/` controls.

Request pipeline for an emulated CRM (see `Sandbox.handle`):
auth (the token the CRM's own scheme carries; the CRM's own 401) → rate limits per token
(429 when enforced; headers always when enabled) → injected faults (decided before the
handler, so a faulted request has no effect) → the handler of the token's account (created
on first use, see `accounts.py`; serialised by one lock: emulator state needs no locking of
its own) → stats.
The pure part returns a `Response` whose `delay`/`drop` the socket layer acts on, so tests
can drive `Sandbox.handle` directly without sleeping.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.sandbox.accounts import DEFAULT_TOKEN, Accounts
from crmsync.sandbox.clock import Clock, system_clock
from crmsync.sandbox.config import SandboxConfig
from crmsync.sandbox.control import UNMATCHED
from crmsync.sandbox.faults import FaultDecision, FaultInjector
from crmsync.sandbox.http import Request, Response, Route, Router
from crmsync.sandbox.limits import RateLimits, hubspot_limit_body, pipedrive_limit_body

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crmsync.sandbox.accounts import EmulatorFactory
    from crmsync.sandbox.control import Stats

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox/"


class Emulator(Protocol):
    """One account of one emulated CRM: its state and the routes that serve it.

    The sandbox builds one per (CRM, token) with the CRM's factory (`accounts.py`), plus one
    prototype per CRM that answers before any account is involved: which paths are the CRM's,
    its routes, how a request carries its token, its 401 and error shapes.
    """

    crm: str
    path_prefixes: tuple[str, ...]  # requests under these prefixes belong to this CRM

    def register(self, router: Router) -> None:
        """Add every route of the CRM; each handler takes the account and the request."""
        ...

    def token_of(self, request: Request) -> str:
        """The token `request` carries by this CRM's auth scheme; "" when none."""
        ...

    def unauthorized(self) -> Response:
        """This CRM's 401 for a missing or rejected token."""
        ...

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """A response in this CRM's error shape."""
        ...

    def reset(self) -> None: ...

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]: ...

    def dump_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class Sandbox:
    """The application: routes a `Request` to the account of its token and returns a `Response`.

    `factories` build one emulator (an empty account) each, one factory per CRM. `token`:
    None accepts any non-empty token, each its own account; a string accepts only that one.
    """

    def __init__(
        self,
        factories: Iterable[EmulatorFactory],
        *,
        token: str | None = None,
        config: SandboxConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        from crmsync.sandbox.control import ControlApi, Stats

        self.token = token
        self.accounts = Accounts(factories)
        self.clock: Clock = clock or system_clock
        self.router = Router()  # every CRM's routes, registered once by its prototype
        for prototype in self.accounts.prototypes():
            prototype.register(self.router)
        self.lock = threading.RLock()  # serialises every emulator handler and control action
        self.stats: Stats = Stats()
        self.config = config or SandboxConfig()
        self.limits = RateLimits(self.config)
        self.faults = FaultInjector(self.config)
        self.control = ControlApi(self)

    # -- configuration -------------------------------------------------------------------
    def configure(self, config: SandboxConfig) -> None:
        """Swap latency, fault and rate-limit settings (windows and the fault RNG restart)."""
        self.config = config
        self.limits.configure(config)
        self.faults = FaultInjector(config)

    # -- accounts ------------------------------------------------------------------------
    @property
    def default_token(self) -> str:
        """The token whose account seeding targets by default: `--token`, or DEFAULT_TOKEN."""
        return self.token or DEFAULT_TOKEN

    def accepts(self, token: str) -> bool:
        return bool(token) and (self.token is None or token == self.token)

    def account(self, crm: str, token: str | None = None) -> Emulator:
        """`token`'s account on `crm` (default: `default_token`), created when new.

        KeyError for a CRM the sandbox does not emulate.
        """
        with self.lock:
            return self.accounts.get(crm, token or self.default_token)

    def seed(self, crm: str, *, token: str | None = None, contacts: int = 0,
             companies: int = 0, deals: int = 0, seed: int = 0) -> dict[str, int]:
        """Add synthetic records to `token`'s account on `crm` (see `synthetic.py`)."""
        with self.lock:
            return self.account(crm, token).seed(
                contacts=contacts, companies=companies, deals=deals, seed=seed)

    def reset(self) -> None:
        """Drop every account, switch realism off and zero the stats."""
        with self.lock:
            self.accounts.clear()
            self.configure(SandboxConfig())
            self.stats.clear()

    # -- the pipeline --------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return self.control.handle(request)  # not counted: stats describe CRM traffic
        crm = self.accounts.prototype_for(request.path)
        if crm is None:
            response = Response(404, {"error": f"no emulated API at {request.path}"})
            self.stats.record(None, request.method, None, response, None, path=request.path)
            return response
        route, params, path_known = self.router.match(request.method, request.path)
        request.path_params = params
        request.route = route.template if route is not None else UNMATCHED
        response, injected = self._dispatch(crm, request, route, path_known)
        self.stats.record(crm.crm, request.method, route.template if route else None,
                          response, injected, path=request.path)
        return response

    def _dispatch(
        self, crm: Emulator, request: Request, route: Route | None, path_known: bool
    ) -> tuple[Response, str | None]:
        token = crm.token_of(request)
        if not self.accepts(token):
            return crm.unauthorized(), None
        limit = self.limits.check(crm.crm, token, request, self.clock())
        if limit.refused is not None:
            headers = {**limit.headers, "Retry-After": str(limit.retry_after)}
            return Response(429, limit.refused, headers), None
        fault = self.faults.decide(crm.crm, request.path)
        if fault.short_circuits:
            return self._faulted(crm, fault, limit.headers), fault.kind
        if route is None:
            status = 405 if path_known else 404
            message = (
                f"Method {request.method} not allowed" if path_known
                else f"Unknown path {request.path}"
            )
            response = crm.error(status, message)
        else:
            with self.lock:
                try:
                    response = route.handler(self.accounts.get(crm.crm, token), request)
                except ValueError as exc:  # malformed JSON bodies and bad numbers
                    response = crm.error(400, f"Invalid input: {exc}")
        response.headers.update(limit.headers)
        response.delay = fault.delay_s
        return response, (fault.kind if fault.kind == "slow" else None)

    def _faulted(
        self, emulator: Emulator, fault: FaultDecision, headers: dict[str, str]
    ) -> Response:
        if fault.kind == "drop":
            return Response(0, None, delay=fault.delay_s, drop=True)
        if fault.kind == "429":
            body = (
                hubspot_limit_body(
                    "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING",
                    "publicapi:private-app:injected")
                if emulator.crm == "hubspot" else pipedrive_limit_body("Request over limit")
            )
            return Response(429, body, {**headers, "Retry-After": "1"}, delay=fault.delay_s)
        response = emulator.error(int(fault.kind), _FAULT_MESSAGES[fault.kind])
        response.headers.update(headers)
        response.delay = fault.delay_s
        return response


_REASONS = {status.value: status.phrase for status in HTTPStatus}

_FAULT_MESSAGES = {
    "500": "Internal Server Error (injected by the sandbox)",
    "502": "Bad Gateway (injected by the sandbox)",
    "503": "Service Unavailable (injected by the sandbox)",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small replies must not wait for delayed ACKs
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request.build(self.command, self.path, dict(self.headers.items()), body)
        response = self.server.app.handle(request)
        if response.delay > 0:
            self.server.sleep(response.delay)
        if response.drop:
            self.close_connection = True  # the server closes the socket; no bytes sent
            return
        payload = response.encode()
        self.log_request(response.status)
        reason = _REASONS.get(response.status, "")
        head = [
            f"{self.protocol_version} {response.status} {reason}",
            f"Date: {self.date_time_string()}",
        ]
        if response.body is not None and "Content-Type" not in response.headers:
            head.append("Content-Type: application/json;charset=utf-8")
        head.extend(f"{name}: {value}" for name, value in response.headers.items())
        head.append(f"Content-Length: {len(payload)}")
        # one write for head and body: fewer syscalls and no Nagle stall between them
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if log.isEnabledFor(logging.DEBUG):
            super().log_request(code, size)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("sandbox %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Sandbox) -> None:
        import time

        self.app = app
        self.sleep = time.sleep
        super().__init__(address, _Handler)


class SandboxServer:
    """Runs a `Sandbox` on a port in a background thread (tests) or the foreground (CLI).

    With `state_file`, `stop()` saves every account there (see `state.py`).
    """

    def __init__(
        self,
        app: Sandbox,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_file: str | Path | None = None,
    ) -> None:
        self.app = app
        self.state_file = Path(state_file) if state_file is not None else None
        self._server = _Server((host, port), app)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="crmsync-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        """Stop serving (callable from another thread or a signal handler's thread)."""
        self._server.shutdown()

    def stop(self) -> None:
        """Stop serving, close the socket and save the state file if one is set."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        if self.state_file is not None:
            from crmsync.sandbox.state import save_state

            save_state(self.app, self.state_file)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
