"""Saving and loading the sandbox's data between runs (`crmsync sandbox --state FILE`).

The file is JSON: ``{"format": 1, "crms": {"hubspot": {...}, "pipedrive": {...}}}``, each
part produced by that emulator's `dump_state()`. Written atomically (temp file + rename) so
an interrupted save never leaves a truncated file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmsync.sandbox.server import Sandbox

STATE_FORMAT = 1


def dump_sandbox(sandbox: Sandbox) -> dict[str, Any]:
    with sandbox.lock:
        return {
            "format": STATE_FORMAT,
            "crms": {e.crm: e.dump_state() for e in sandbox.emulators},
        }


def load_sandbox(sandbox: Sandbox, state: dict[str, Any]) -> None:
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unsupported sandbox state format {state.get('format')!r}")
    with sandbox.lock:
        for emulator in sandbox.emulators:
            part = state.get("crms", {}).get(emulator.crm)
            if part is not None:
                emulator.load_state(part)


def save_state(sandbox: Sandbox, path: str | Path) -> None:
    """Write the state of every emulator to `path` atomically."""
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
