"""Text from outside (CRM labels, blueprint values, error messages) made safe for a terminal.

A label may carry control characters — an escape sequence that recolours or clears the screen,
a carriage return that overwrites the line, a newline that fakes a plan line, a bidi override
that reverses what is shown. Every text renderer passes its lines through `printable`; JSON
output keeps the data as it is (its encoder escapes control characters itself).

Nothing here imports anything from crmsync.
"""

from __future__ import annotations

import unicodedata

# Unicode format characters that reorder or hide text ("Trojan Source", CVE-2021-42574),
# and the line and paragraph separators that terminals may break lines at.
_INVISIBLE = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                       "\u2028\u2029")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character (and bidi override) shown as an escape, `\\x1b`.

    Apply it to one line at a time: a newline inside is escaped too, so a value cannot start a
    line of its own.
    """
    if text.isprintable() and not _INVISIBLE.intersection(text):
        return text  # the common case, fast
    return "".join(
        _escape(c) if unicodedata.category(c) == "Cc" or c in _INVISIBLE else c for c in text
    )


def printable_lines(text: str) -> str:
    """Each line of `text` made `printable`, the line breaks (\\n only) kept."""
    return "\n".join(printable(line) for line in text.split("\n"))
