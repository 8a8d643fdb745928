"""Request parsing for the Pipedrive emulator: query parameters, JSON bodies, errors.

API v2 validates strictly (migration guide: "Numeric fields no longer coerce string input
to number and instead throw a validation error"; booleans are only `true`/`false`), so the
helpers here check JSON types exactly and raise `ApiError(400, …)` in Pipedrive's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive_store import parse_time

if TYPE_CHECKING:
    from crmsync.sandbox.http import Request

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
MAX_LIMIT = 500  # "Please note that a maximum value of 500 is allowed." (every v2 list)
DEFAULT_LIMIT = 100  # "If not provided, 100 items will be returned."
# Decision (unconfirmed): a body property the spec does not list is a 400 (see json_body).
REJECT_UNKNOWN_PROPERTIES = True


class ApiError(Exception):
    """An error response: HTTP status, Pipedrive's `error` text and extra body fields."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def invalid(message: str) -> ApiError:
    """A 400 as v2 reports schema violations."""
    return ApiError(400, f"Validation failed: {message}", code="ERR_SCHEMA_VALIDATION_FAILED")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


# ---- query parameters ---------------------------------------------------------------------

def int_param(request: Request, name: str, *, minimum: int = 1) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name}: must be an integer") from None
    if value < minimum:
        raise invalid(f"{name}: must be >= {minimum}")
    return value


def bool_param(request: Request, name: str) -> bool:
    raw = request.arg(name)
    if raw is None or raw == "":
        return False
    if raw not in ("true", "false"):
        raise invalid(f"{name}: must be true or false")
    return raw == "true"


def enum_param(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise invalid(f"{name}: must be one of {', '.join(allowed)}")
    return raw


def csv_enum_param(request: Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated list of enum values (`status=open,won`, search `fields`)."""
    values = request.args(name)
    for value in values:
        if value not in allowed:
            raise invalid(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return values


def limit_param(request: Request) -> int:
    """`limit`: default 100, at most 500.

    Above 500 the emulator answers 400 rather than clamping: the docs state the maximum
    without saying what happens past it, v2 rejects out-of-schema input elsewhere, and a
    400 makes a client's wrong page size visible instead of silently shrinking pages.
    """
    value = int_param(request, "limit")
    if value is None:
        return DEFAULT_LIMIT
    if value > MAX_LIMIT:
        raise invalid(f"limit: must be <= {MAX_LIMIT}")
    return value


def time_param(request: Request, name: str) -> str | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    parsed = parse_time(raw)
    if parsed is None:
        raise invalid(f"{name}: {raw!r} is not a valid datetime (RFC 3339, whole seconds)")
    return parsed


def ids_param(request: Request) -> set[int] | None:
    """`ids`: "comma separated string array of up to 100 entity ids"."""
    values = request.args("ids")
    if not values:
        return None
    if len(values) > 100:
        raise invalid("ids: at most 100 ids")
    try:
        return {int(v) for v in values}
    except ValueError:
        raise invalid("ids: must be integers") from None


def path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or int(raw) < 1:
        raise invalid(f"{name}: must be a positive integer")
    return int(raw)


# ---- JSON bodies --------------------------------------------------------------------------

def json_body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object body; 400 for malformed JSON, non-objects and unknown properties.

    Unknown properties are refused (decision, unconfirmed): v2 "now [has] significantly
    stricter input validation", and refusing them catches a client's misspelt field
    instead of silently dropping it.
    """
    try:
        body = request.json()
    except ValueError:
        raise ApiError(400, "Invalid JSON in request body") from None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    if not REJECT_UNKNOWN_PROPERTIES:
        body = {k: v for k, v in body.items() if k in allowed}
    unknown = sorted(set(body) - set(allowed))
    if unknown and REJECT_UNKNOWN_PROPERTIES:
        raise invalid(f"unknown properties: {', '.join(unknown)}")
    return body


def non_null(body: dict[str, Any], names: tuple[str, ...]) -> None:
    """400 for an explicit null in a property the spec does not mark `nullable`, where null
    has no meaning to fall back on (a flag, a probability, a name, a pipeline)."""
    for name in names:
        if name in body and body[name] is None:
            raise invalid(f"{name}: must not be null")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A non-empty string property (None when absent and not required)."""
    if name not in body or body[name] is None:
        if required:
            raise invalid(f"{name}: is required")
        return None
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name}: must be a non-empty string")
    return value.strip()


def optional_text(body: dict[str, Any], name: str) -> str | None:
    """A string property that may be null to clear it."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name}: must be a string or null")
    return value


def integer(body: dict[str, Any], name: str, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_int(value):
        raise invalid(f"{name}: must be an integer")
    if minimum is not None and value < minimum:
        raise invalid(f"{name}: must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(f"{name}: must be <= {maximum}")
    return int(value)


def number(body: dict[str, Any], name: str) -> float | int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_number(value):
        raise invalid(f"{name}: must be a number")
    return value


def boolean(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{name}: must be true or false")
    return value


def int_list(body: dict[str, Any], name: str) -> list[int] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(is_int(v) for v in value):
        raise invalid(f"{name}: must be an array of integers")
    return list(value)


def body_time(body: dict[str, Any], name: str) -> str | None:
    """An RFC 3339 timestamp property (v1's `YYYY-MM-DD HH:MM:SS` also accepted)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        parsed = parse_time(value) or parse_time(value.replace(" ", "T") + "Z")
        if parsed is not None:
            return parsed
    raise invalid(f"{name}: must be an RFC 3339 date-time")


VISIBLE_TO = (1, 3, 5, 7)  # owner, owner's group, group + sub-groups, entire company


def visible_to(body: dict[str, Any]) -> int | None:
    value = body.get("visible_to")
    if value is None:
        return None
    if not is_int(value) or value not in VISIBLE_TO:
        raise invalid("visible_to: must be one of 1, 3, 5, 7")
    return int(value)


def contact_list(body: dict[str, Any], name: str) -> list[dict[str, Any]] | None:
    """`emails`/`phones`: arrays of `{value, primary, label}`; exactly one primary kept."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(f"{name}: must be an array")
    items: list[dict[str, Any]] = []
    for position, item in enumerate(value):
        where = f"{name}[{position}]"
        if not isinstance(item, dict) or set(item) - {"value", "primary", "label"}:
            raise invalid(f"{where}: must be an object with value, primary, label")
        entry = item.get("value")
        if not isinstance(entry, str) or not entry.strip():
            raise invalid(f"{where}.value: must be a non-empty string")
        primary = item.get("primary", False)
        label = item.get("label", "work")
        if not isinstance(primary, bool):
            raise invalid(f"{where}.primary: must be true or false")
        if not isinstance(label, str):
            raise invalid(f"{where}.label: must be a string")
        items.append({"value": entry.strip(), "primary": primary, "label": label})
    primaries = [i for i, item in enumerate(items) if item["primary"]]
    if len(primaries) > 1:
        raise invalid(f"{name}: only one item can be primary")
    if items and not primaries:
        items[0]["primary"] = True  # Pipedrive always shows one primary address
    return items


def address(body: dict[str, Any], name: str, parts: tuple[str, ...]) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(parts):
        raise invalid(f"{name}: must be an object with {', '.join(parts)}")
    if not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{name}: every part must be a string")
    return dict(value)
