"""The emulator's tiny HTTP toolkit: request and response objects and a route table.

Kept dependency-free (the standard library's server underneath) so the sandbox starts
anywhere crmsync installs. Each emulated CRM registers its routes on one `Router`, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    route: str = ""  # the matched route template, for stats

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        path, _, query_string = target.partition("?")
        return cls(
            method=method.upper(),
            path=path,
            query=parse_qs(query_string, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """All values of a query parameter, CSV-split (`properties=a,b&properties=c`)."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out

    def json(self) -> Any:
        """The parsed JSON body; raises ValueError on malformed JSON."""
        if not self.body:
            return None
        return json.loads(self.body)


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer …` header; "" when there is none."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-able, bytes, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    # Set by the sandbox's realism knobs, acted on by the socket layer only:
    delay: float = 0.0  # seconds to wait before replying (latency, slow responses)
    drop: bool = False  # close the connection without any reply

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return _JSON.encode(self.body).encode()


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one for every response


# A route's handler serves one request from the account it is given: routes are registered
# once per CRM, and the sandbox passes the emulator of the request's token (`accounts.py`).
Handler = Callable[[Any, Request], Response]
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    crm: str
    pattern: re.Pattern[str]


class Router:
    """Maps (method, path) to a handler; templates use `{name}` segments; the first route
    added that matches wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        # A `{name}` matches exactly one segment, so only templates with as many slashes as
        # the path can match it: each request tries a handful of patterns, not all of them.
        self._by_slashes: dict[int, list[Route]] = {}

    def add(self, method: str, template: str, handler: Handler, *, crm: str) -> None:
        regex = "^" + _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(
            r"\}", "}")) + "$"
        route = Route(method.upper(), template, handler, crm, re.compile(regex))
        if any((r.method, r.template) == (route.method, template) for r in self._routes):
            raise ValueError(f"{crm}: route {route.method} {template} registered twice")
        self._routes.append(route)
        self._by_slashes.setdefault(template.count("/"), []).append(route)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path_known). path_known without a route means 405."""
        path_known = False
        for route in self._by_slashes.get(path.count("/"), ()):
            found = route.pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method:
                # path segments arrive percent-encoded (an email as an id: a%40b.c)
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
        return None, {}, path_known

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)
