"""Storage for the Pipedrive emulator: tables with sorted indexes and keyset cursors.

Rows are plain dicts in the v2 response shape and are never mutated in place: an update
replaces the row with a new dict (nested lists/dicts are replaced too). Responses can then
reference stored rows directly and be JSON-encoded outside the sandbox's lock.

Timestamps are stored as RFC 3339 strings at second resolution, `YYYY-MM-DDTHH:MM:SSZ`, as
the v2 API returns them (migration guide: "All timestamps in the v2 API are now in RFC 3339
format (e.g. 2024-01-01T00:00:00Z)"). Fixed width and always UTC, they sort as text in time
order, so indexes and `updated_since` comparisons work on the strings themselves.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_left, bisect_right, insort
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

Row = dict[str, Any]

# Pipedrive's v2 `updated_since`/`updated_until` parser accepts whole-second RFC 3339 only: a
# fractional part is rejected with ERR_SCHEMA_VALIDATION_FAILED "not a valid datetime"
# (reported as verified live by an integration's source; the spec's own example is
# `2025-01-01T10:20:00Z`). Offsets other than Z are valid RFC 3339 and accepted.
_RFC3339_SECONDS = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_time(moment: datetime) -> str:
    """A datetime as Pipedrive v2 prints it: UTC, whole seconds, `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> str | None:
    """An RFC 3339 whole-second timestamp normalised to the stored form, or None if invalid."""
    if not _RFC3339_SECONDS.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return format_time(moment)


def is_date(text: object) -> bool:
    """True for a valid `YYYY-MM-DD` string."""
    if not isinstance(text, str) or not _DATE.match(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d")  # a calendar date, no zone
    except ValueError:
        return False
    return True


class CursorError(ValueError):
    """A cursor that was not issued for this listing."""


def encode_cursor(field: str, value: Any, direction: str, row_id: int) -> str:
    """An opaque cursor naming the first item of the next page.

    The shape mirrors the decoded example in the spec
    (`{"field":"id","fieldValue":7,"sortDirection":"asc","id":7}`, base64url, unpadded).
    """
    raw = json.dumps(
        {"field": field, "fieldValue": value, "sortDirection": direction, "id": row_id},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str, direction: str) -> tuple[Any, int]:
    """(field value, id) of the cursor's item; CursorError if malformed or for another sort."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError("Invalid cursor") from exc
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise CursorError("Invalid cursor")
    if data.get("field") != field or data.get("sortDirection") != direction:
        # a cursor is bound to the sort it was issued for; mixing them would skip rows
        raise CursorError("Cursor does not match sort_by/sort_direction")
    value = data.get("fieldValue")
    if field in ("id", "order_nr") and not isinstance(value, int):
        raise CursorError("Invalid cursor")
    if field not in ("id", "order_nr") and not isinstance(value, str):
        raise CursorError("Invalid cursor")
    return value, data["id"]


class Table:
    """Rows by id plus one ascending `(value, id)` index per sortable field.

    The `(value, id)` pairs give a strict total order even when many rows share a
    second-resolution `update_time`, so a keyset cursor never skips or repeats a tie.
    """

    def __init__(self, sort_fields: tuple[str, ...] = ("id", "update_time", "add_time")) -> None:
        self.sort_fields = sort_fields
        self.rows: dict[int, Row] = {}
        self.next_id = 1
        self._index: dict[str, list[tuple[Any, int]]] = {f: [] for f in sort_fields}

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, row_id: int) -> Row | None:
        return self.rows.get(row_id)

    def allocate_id(self) -> int:
        row_id = self.next_id
        self.next_id += 1
        return row_id

    def insert(self, row: Row) -> Row:
        """Store a new row (its `id` must be set)."""
        row_id = row["id"]
        self.rows[row_id] = row
        self.next_id = max(self.next_id, row_id + 1)
        for field, index in self._index.items():
            entry = (row[field], row_id)
            if not index or index[-1] < entry:
                index.append(entry)  # the common case: new ids and new times go last
            else:
                insort(index, entry)
        return row

    def replace(self, row: Row) -> Row:
        """Swap in a new version of an existing row, keeping the indexes in step."""
        row_id = row["id"]
        old = self.rows[row_id]
        for field, index in self._index.items():
            if old[field] != row[field]:
                position = bisect_left(index, (old[field], row_id))
                del index[position]
                insort(index, (row[field], row_id))
        self.rows[row_id] = row
        return row

    def load(self, rows: Iterable[Row], next_id: int | None = None) -> None:
        """Replace the whole content at once (seeding, load_state): one sort per index."""
        self.rows = {row["id"]: row for row in rows}
        for field in self.sort_fields:
            self._index[field] = sorted((r[field], i) for i, r in self.rows.items())
        self.next_id = max(next_id or 1, max(self.rows, default=0) + 1)

    def clear(self) -> None:
        self.load([], 1)

    def scan(
        self,
        *,
        sort_by: str,
        descending: bool,
        start: tuple[Any, int] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[Row]:
        """Rows in `(sort_by, id)` order from `start` (inclusive).

        With `sort_by="update_time"` the `since`/`until` window is cut by bisection;
        otherwise the caller filters on it.
        """
        index = self._index[sort_by]
        lo, hi = 0, len(index)
        if sort_by == "update_time":
            if since is not None:
                lo = bisect_left(index, (since,))
            if until is not None:
                hi = bisect_left(index, (until,))
        rows = self.rows
        if not descending:
            if start is not None:
                lo = max(lo, bisect_left(index, start))
            for position in range(lo, hi):
                yield rows[index[position][1]]
        else:
            if start is not None:
                hi = min(hi, bisect_right(index, start))
            for position in range(hi - 1, lo - 1, -1):
                yield rows[index[position][1]]


def paginate(
    table: Table,
    *,
    sort_by: str,
    sort_direction: str,
    limit: int,
    cursor: str | None,
    keep: Callable[[Row], bool],
    since: str | None = None,
    until: str | None = None,
) -> tuple[list[Row], str | None]:
    """One page of matching rows and the cursor of the next page's first row (or None)."""
    start = decode_cursor(cursor, sort_by, sort_direction) if cursor else None
    page: list[Row] = []
    for row in table.scan(
        sort_by=sort_by,
        descending=sort_direction == "desc",
        start=start,
        since=since,
        until=until,
    ):
        if not keep(row):
            continue
        if len(page) == limit:
            return page, encode_cursor(sort_by, row[sort_by], sort_direction, row["id"])
        page.append(row)
    return page, None
