"""HubSpot CRM search semantics as pure functions (no HTTP, no state).

Follows developers.hubspot.com/docs/api/crm/search:
- ``filterGroups`` are ORed, the filters inside a group ANDed; at most 5 groups, 10 filters
  per group and 25 filters in all;
- operators EQ, NEQ, LT, LTE, GT, GTE, BETWEEN (``value``..``highValue`` inclusive), IN,
  NOT_IN (``values``), HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN
  (``*`` wildcards allowed in the token);
- string comparisons are case-insensitive; date-time properties compare as instants and
  accept epoch milliseconds or ISO-8601 values;
- one sort at most, given as ``{"propertyName", "direction"}`` or — as the published spec
  types it — a plain string (``"createdate"``, ``"-createdate"`` for descending).
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
    "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})
_TOKEN_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


class SearchError(ValueError):
    """An invalid search request (HubSpot answers 400 VALIDATION_ERROR)."""


def parse_instant(value: str) -> int | None:
    """Epoch milliseconds from an epoch-ms string or an ISO-8601 date/date-time."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class PropertyKinds:
    """Which properties compare as instants or numbers; everything else is a string."""

    datetimes: frozenset[str]
    numbers: frozenset[str]
    datetime_prefixes: tuple[str, ...] = ()  # names starting so are date-times too

    def key(self, name: str, value: str) -> tuple[int, Any]:
        """A sortable, comparable key: (kind, normalised value)."""
        if name in self.datetimes or (self.datetime_prefixes
                                      and name.startswith(self.datetime_prefixes)):
            instant = parse_instant(value)
            if instant is not None:
                return (0, instant)
        elif name in self.numbers:
            try:
                return (0, float(value))
            except ValueError:
                pass
        return (1, value.lower())


def _tokens(value: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(value.lower()) if t]


def _contains_token(value: str, token: str) -> bool:
    token = token.lower().strip()
    if "*" in token:
        return any(fnmatch.fnmatchcase(t, token) for t in _tokens(value)) or fnmatch.fnmatchcase(
            value.lower(), token)
    return token in _tokens(value)


Predicate = Callable[[dict[str, str]], bool]


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq, "NEQ": operator.ne, "LT": operator.lt, "LTE": operator.le,
    "GT": operator.gt, "GTE": operator.ge,
}


def _presence_predicate(name: str, op: str, flt: dict[str, Any],
                        kinds: PropertyKinds) -> Predicate | None:
    """Operators that need no single comparable value (None for the others)."""
    if op == "HAS_PROPERTY":
        return lambda props: bool(props.get(name))
    if op == "NOT_HAS_PROPERTY":
        return lambda props: not props.get(name)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", ""))
        negate = op == "NOT_CONTAINS_TOKEN"
        return lambda props: (
            bool(props.get(name)) and _contains_token(props[name], token)) != negate
    if op in ("IN", "NOT_IN"):
        values = flt.get("values")
        if not isinstance(values, list) or not values:
            raise SearchError(f"operator {op} on {name} needs a non-empty `values` list")
        wanted = {kinds.key(name, str(v)) for v in values}
        negate = op == "NOT_IN"
        return lambda props: (
            bool(props.get(name)) and kinds.key(name, props[name]) in wanted) != negate
    return None


def _filter_predicate(flt: Any, kinds: PropertyKinds) -> Predicate:
    if not isinstance(flt, dict):
        raise SearchError("each filter must be an object")
    name, op = flt.get("propertyName"), flt.get("operator")
    if not isinstance(name, str) or not name:
        raise SearchError("filter is missing propertyName")
    if op not in OPERATORS:
        raise SearchError(f"Unsupported filter operator: {op!r}")
    special = _presence_predicate(name, op, flt, kinds)
    if special is not None:
        return special

    def scalar(field: str) -> tuple[int, Any]:
        raw = flt.get(field)
        if raw is None:
            raise SearchError(f"operator {op} on {name} needs `{field}`")
        return kinds.key(name, str(raw).lower() if isinstance(raw, bool) else str(raw))

    low = scalar("value")
    high = scalar("highValue") if op == "BETWEEN" else low
    compare = _COMPARISONS.get(op)
    # Records without the property match only NEQ; a number never equals a non-number.
    missing = op == "NEQ"

    def predicate(props: dict[str, str]) -> bool:
        raw = props.get(name)
        if not raw:
            return missing
        have = kinds.key(name, raw)
        if have[0] != low[0]:
            return missing
        if compare is None:  # BETWEEN, inclusive
            return low <= have <= high
        return compare(have, low)

    return predicate


def compile_filter_groups(groups: Any, kinds: PropertyKinds) -> Predicate:
    """One predicate for a request's `filterGroups` (OR of ANDs); validates the limits."""
    if groups in (None, []):
        return lambda props: True
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list")
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups ({len(groups)}); the maximum is {MAX_GROUPS}")
    compiled: list[list[Predicate]] = []
    total = 0
    for group in groups:
        filters = group.get("filters", []) if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise SearchError("each filter group needs a `filters` list")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(
                f"Too many filters in a group ({len(filters)}); the maximum is "
                f"{MAX_FILTERS_PER_GROUP}")
        total += len(filters)
        compiled.append([_filter_predicate(f, kinds) for f in filters])
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters ({total}); the maximum is {MAX_FILTERS}")
    return lambda props: any(all(p(props) for p in group) for group in compiled)


def parse_sorts(sorts: Any) -> list[tuple[str, bool]]:
    """[(property, descending)] from objects or strings; HubSpot allows one sort."""
    if sorts in (None, []):
        return []
    if not isinstance(sorts, list):
        raise SearchError("sorts must be a list")
    if len(sorts) > 1:
        raise SearchError("Only one sort is supported")
    out: list[tuple[str, bool]] = []
    for sort in sorts:
        if isinstance(sort, str):
            # the spec types sorts as strings; "-prop" sorts descending
            out.append((sort.lstrip("-"), sort.startswith("-")))
        elif isinstance(sort, dict) and isinstance(sort.get("propertyName"), str):
            direction = str(sort.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise SearchError(f"Invalid sort direction {direction!r}")
            out.append((sort["propertyName"], direction == "DESCENDING"))
        else:
            raise SearchError("each sort needs a propertyName")
    return out


def query_predicate(query: Any, searchable: tuple[str, ...]) -> Predicate:
    """The free-text `query`: every word prefixes a token of a default searchable property."""
    if not query:
        return lambda props: True
    words = _tokens(str(query))

    def predicate(props: dict[str, str]) -> bool:
        tokens = [t for name in searchable for t in _tokens(props.get(name) or "")]
        return all(any(t.startswith(w) for t in tokens) for w in words)

    return predicate
