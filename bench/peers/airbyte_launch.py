"""Run one Airbyte connector's entrypoint against the sandbox instead of the real CRM.

    python bench/peers/airbyte_launch.py hubspot|pipedrive SANDBOX_BASE read --config … \
        --catalog … [--state …]

The connectors hard-code their hosts (`https://api.hubapi.com`, `https://api.pipedrive.com`);
every request they send goes through `requests.adapters.HTTPAdapter.send`, so rewriting the
scheme and host there points the whole connector (its declarative streams, its own `API`
session, the CDK's cached sessions) at the sandbox without editing an installed file.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests.adapters

REAL_HOSTS = ("api.hubapi.com", "api.pipedrive.com")
API_TOKEN_PARAM = re.compile(r"([?&]api_token=)[^&]*")


def rewrite_url(url: str, base: str) -> str:
    """`url` with the sandbox's scheme and host when it is aimed at a real CRM host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in REAL_HOSTS and not host.endswith(".pipedrive.com"):
        return url
    target = urlsplit(base)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def point_requests_at(base: str, log_path: str | None = None) -> None:
    """Make every `requests` call to a real CRM host go to `base` instead; with `log_path`,
    append each request's method, URL and body there (to see what a connector asks)."""
    original_send = requests.adapters.HTTPAdapter.send

    def send(self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest,
             *args: Any, **kwargs: Any) -> requests.Response:
        request.url = rewrite_url(request.url or "", base)
        if log_path:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            url = API_TOKEN_PARAM.sub(r"\1***", request.url or "")  # Pipedrive's query token
            with Path(log_path).open("a", encoding="utf-8") as log:
                log.write(f"{request.method} {url} {body or ''}\n")
        return original_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]


def allow_decoder_default() -> None:
    """Let airbyte-source-pipedrive 2.3.7 import on Python 3.11+.

    Its `NullCheckedDpathExtractor` dataclass has a `JsonDecoder(...)` instance as a field
    default; since 3.11 `dataclasses` refuses an unhashable default ("mutable default ... is
    not allowed"), and `JsonDecoder`, a dataclass with `eq`, is unhashable. Identity hashing
    restores what 3.10 allowed; the default object is never mutated.
    """
    from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder

    JsonDecoder.__hash__ = object.__hash__


def main() -> None:
    crm, base, *connector_args = sys.argv[1:]
    point_requests_at(base, os.environ.get("PEERS_LOG_REQUESTS"))
    sys.argv = [f"source-{crm}", *connector_args]
    if crm == "hubspot":
        from source_hubspot.run import run
    else:
        allow_decoder_default()
        from source_pipedrive.run import run
    run()


if __name__ == "__main__":
    main()
