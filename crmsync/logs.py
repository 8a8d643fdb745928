"""Logging set-up from settings: level and format (`text` for people, `json` for cron logs).

Every handler gets a filter that masks the configured tokens, as a last line of defence: no
code path should log a token, but one that did would print `***` instead. Every token read
(settings, a blueprint's own `token_env:`) joins in through `remember_secret`, and
`mask_known` masks them all in any other text that leaves the program (error messages).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

MASK = "***"
_HANDLER_NAME = "crmsync"
# A token is masked where it stands on its own, not inside a longer word: a (test) token
# like "t" or "abc" would otherwise turn every message into confetti ("connec***ion").
_WORD_CHAR = r"[A-Za-z0-9_\-]"
_remembered: set[str] = set()
_remembered_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    """Mask `secret` in every crmsync log handler from now on (a token read after start-up)."""
    if secret:
        with _remembered_lock:
            _remembered.add(secret)


def known_secrets() -> frozenset[str]:
    """Every token crmsync has read so far (settings and blueprints' `token_env:`)."""
    with _remembered_lock:
        return frozenset(_remembered)


def mask_known(text: str) -> str:
    """`text` with every token crmsync has read replaced by `***`: for any message that
    leaves the program (errors, summaries, JSON), not only log records."""
    return mask_secrets(text, known_secrets())


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by `***` wherever it stands as a whole token."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if secret in text:
            text = re.sub(rf"(?<!{_WORD_CHAR}){re.escape(secret)}(?!{_WORD_CHAR})", MASK, text)
    return text


class SecretMaskingFilter(logging.Filter):
    """Replaces every known secret in a record's final message with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        with _remembered_lock:
            secrets = self._secrets | _remembered
        if secrets:
            message = record.getMessage()
            masked = mask_secrets(message, secrets)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info:  # a traceback quotes exception messages too
                text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
                record.exc_text = mask_secrets(text, secrets)
        return True


_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:  # exc_text: as SecretMaskingFilter masked it
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Send crmsync's logs to stderr at `level`, as text or JSON, with secrets masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(SecretMaskingFilter(secrets))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)  # ours from an earlier call; others' (pytest's) stay
    root.addHandler(handler)
    root.setLevel(level)
