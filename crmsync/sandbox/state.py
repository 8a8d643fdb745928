"""Saving and loading the sandbox's data between runs (`crmsync sandbox --state FILE`).

The file is JSON, every account of every CRM::

    {"format": 2,
     "crms": {"hubspot": {"<account key>": {...}, ...}, "pipedrive": {...}}}

An account key is the SHA-256 of the account's token (`accounts.account_key`), so the file
holds no token: the same token finds its account again after a restart, and a file shared
by mistake leaks nothing usable. Each account is its emulator's `dump_state()`.

A format-1 file (one account per CRM, from before accounts were per token) loads as the
account of the sandbox's default token (`Sandbox.default_token`).

Written atomically (temp file + rename) so an interrupted save never leaves a truncated file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.accounts import account_key

if TYPE_CHECKING:
    from crmsync.sandbox.server import Sandbox

STATE_FORMAT = 2
_SINGLE_ACCOUNT_FORMAT = 1


def dump_sandbox(sandbox: Sandbox) -> dict[str, Any]:
    with sandbox.lock:
        return {"format": STATE_FORMAT, "crms": sandbox.accounts.dump()}


def load_sandbox(sandbox: Sandbox, state: dict[str, Any]) -> None:
    """Load every account of `state` into `sandbox`, replacing accounts with the same key."""
    version = state.get("format")
    crms: dict[str, Any] = state.get("crms", {})
    if version == _SINGLE_ACCOUNT_FORMAT:
        key = account_key(sandbox.default_token)
        crms = {crm: {key: part} for crm, part in crms.items()}
    elif version != STATE_FORMAT:
        raise ValueError(f"unsupported sandbox state format {version!r}")
    with sandbox.lock:
        for crm in sandbox.accounts.crms:
            for key, account in crms.get(crm, {}).items():
                sandbox.accounts.load(crm, key, account)


def save_state(sandbox: Sandbox, path: str | Path) -> None:
    """Write every account to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dump_sandbox(sandbox)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(sandbox: Sandbox, path: str | Path) -> bool:
    """Load `path` into the sandbox; False when the file does not exist yet."""
    path = Path(path)
    if not path.is_file():
        return False
    load_sandbox(sandbox, json.loads(path.read_text(encoding="utf-8")))
    return True
