"""Normalisers every layer shares: matching keys and marketing consent.

Pure functions at the bottom of the house (beside `names.py`, importing nothing from crmsync),
so the store (`store/local.py`), the sync (`sync/mapping.py`, `sync/push.py`) and the
adapters (`pipedrive_writes.py`) match and read consent by the same rules.
"""

from __future__ import annotations

import re
from typing import Any

_TRUE = frozenset({"true", "yes", "y", "1", "granted", "opted in", "opt-in", "ja", "так"})
_FALSE = frozenset({"false", "no", "n", "0", "", "denied", "withdrawn", "opted out", "nein",
                    "ні"})


def email_key(email: str | None) -> str | None:
    """Contacts match by email, case- and whitespace-insensitively."""
    if not email:
        return None
    key = "".join(email.split()).lower()
    return key or None


_DOMAIN_PREFIX = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?")


def domain_key(domain: str | None) -> str | None:
    """Companies match by normalised domain: lower case, no scheme, `www.`, path or port."""
    if not domain:
        return None
    key = _DOMAIN_PREFIX.sub("", domain.strip().lower())
    key = key.split("/", 1)[0].split(":", 1)[0].rstrip(".")
    return key or None


def consent_value(value: Any) -> bool | None:
    """Marketing consent from a property's value; None when it says neither yes nor no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None
