"""Field definitions of the Pipedrive emulator (v1 `/dealFields`, `/personFields`,
`/organizationFields`) and validation of v2 `custom_fields` values against them.

Custom fields are keyed by 40-character hex hashes, as in Pipedrive ("All custom fields are
referenced as randomly generated 40-character hashes", openapi-v2.yaml). Keys here are
SHA-1 digests of the entity, name and a sequence number, so a reset account always gets the
same keys (tests and demos can rely on them) while still looking like Pipedrive's.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive_store import is_date

if TYPE_CHECKING:
    from collections.abc import Callable

ENTITIES = ("deal", "person", "organization")

# The v1 field types a client may create (openapi-v1.yaml, createFieldRequest.field_type).
CREATABLE_TYPES = frozenset({
    "address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone",
    "set", "text", "time", "timerange", "user", "varchar", "varchar_auto", "visible_to",
})

# Standard (non-custom) fields per entity: (key, name, field_type, mandatory). A subset of
# what Pipedrive lists, enough for clients to recognise the system fields.
_STANDARD: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "deal": (
        ("id", "ID", "int", False),
        ("title", "Title", "varchar", True),
        ("creator_user_id", "Creator", "user", False),
        ("user_id", "Owner", "user", False),
        ("value", "Value", "monetary", False),
        ("currency", "Currency", "varchar_options", False),
        ("probability", "Probability", "double", False),
        ("org_id", "Organization", "org", False),
        ("pipeline_id", "Pipeline", "pipeline", False),
        ("person_id", "Contact person", "people", False),
        ("stage_id", "Stage", "stage", False),
        ("status", "Status", "status", False),
        ("add_time", "Deal created", "date", False),
        ("update_time", "Update time", "date", False),
        ("stage_change_time", "Last stage change", "date", False),
        ("close_time", "Deal closed on", "date", False),
        ("won_time", "Won time", "date", False),
        ("lost_time", "Lost time", "date", False),
        ("lost_reason", "Lost reason", "varchar", False),
        ("expected_close_date", "Expected close date", "date", False),
        ("visible_to", "Visible to", "visible_to", False),
        ("label", "Label", "set", False),
    ),
    "person": (
        ("id", "ID", "int", False),
        ("name", "Name", "varchar", True),
        ("first_name", "First name", "varchar", False),
        ("last_name", "Last name", "varchar", False),
        ("owner_id", "Owner", "user", False),
        ("org_id", "Organization", "org", False),
        ("email", "Email", "varchar", False),
        ("phone", "Phone", "phone", False),
        ("label", "Label", "set", False),
        ("visible_to", "Visible to", "visible_to", False),
        ("add_time", "Person created", "date", False),
        ("update_time", "Update time", "date", False),
    ),
    "organization": (
        ("id", "ID", "int", False),
        ("name", "Name", "varchar", True),
        ("owner_id", "Owner", "user", False),
        ("address", "Address", "address", False),
        ("label", "Label", "set", False),
        ("visible_to", "Visible to", "visible_to", False),
        ("add_time", "Organization created", "date", False),
        ("update_time", "Update time", "date", False),
    ),
}

# Custom fields every fresh sandbox account has: the ones the method's board and the seed
# data use (the monthly fee is the value the board totals).
_DEFAULT_CUSTOM: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("deal", "Monthly fee", "monetary", ()),
    ("deal", "Lead source", "enum", ("Website", "Referral", "Event", "Outbound", "Partner")),
    ("person", "Marketing consent", "enum", ("Yes", "No")),
    ("organization", "Domain", "varchar", ()),
)


class FieldError(ValueError):
    """A custom field value or definition Pipedrive would reject with 400."""


def v1_time(stored: str) -> str:
    """v1 prints `YYYY-MM-DD HH:MM:SS` (UTC), see the dealFields example in openapi-v1.yaml."""
    return stored.replace("T", " ").rstrip("Z")


class FieldCatalog:
    """The field definitions of one account, for all three entities."""

    def __init__(self, created: str) -> None:
        self.created = created  # account creation time: add_time of the standard fields
        self.fields: dict[str, list[dict[str, Any]]] = {}
        self.next_field_id = 1
        self.next_option_id = 1
        self.reset()

    def reset(self) -> None:
        self.fields = {entity: [] for entity in ENTITIES}
        self.next_field_id = 1
        self.next_option_id = 1
        for entity in ENTITIES:
            for key, name, field_type, mandatory in _STANDARD[entity]:
                self._append(entity, key, name, field_type, None, custom=False,
                             mandatory=mandatory, now=self.created)
        for entity, name, field_type, labels in _DEFAULT_CUSTOM:
            self.add_custom(entity, name, field_type, [{"label": x} for x in labels],
                            now=self.created)

    def _append(
        self, entity: str, key: str, name: str, field_type: str,
        options: list[dict[str, Any]] | None, *, custom: bool, mandatory: bool, now: str,
    ) -> dict[str, Any]:
        definition = {
            "id": self.next_field_id,
            "key": key,
            "name": name,
            "order_nr": len(self.fields[entity]) + 1,
            "field_type": field_type,
            "options": options,
            "custom": custom,
            "mandatory": mandatory,
            "add_time": now,
            "update_time": now,
        }
        self.next_field_id += 1
        self.fields[entity].append(definition)
        return definition

    def add_custom(
        self, entity: str, name: str, field_type: str, options: Any, *, now: str
    ) -> dict[str, Any]:
        """Create a custom field (v1 POST `/…Fields`); FieldError on invalid input."""
        if not isinstance(name, str) or not name.strip():
            raise FieldError("name: must be a non-empty string")
        if field_type not in CREATABLE_TYPES:
            raise FieldError(f"field_type: must be one of {', '.join(sorted(CREATABLE_TYPES))}")
        parsed: list[dict[str, Any]] | None = None
        if field_type in ("enum", "set"):
            # "When field_type is either set or enum, possible options must be supplied"
            if not isinstance(options, list) or not options:
                raise FieldError("options: required for enum and set fields")
            parsed = []
            for option in options:
                label = option.get("label") if isinstance(option, dict) else None
                if not isinstance(label, str) or not label:
                    raise FieldError("options: each option needs a non-empty label")
                parsed.append({"id": self.next_option_id, "label": label})
                self.next_option_id += 1
        sequence = self.next_field_id
        key = hashlib.sha1(f"{entity}:{name}:{sequence}".encode()).hexdigest()  # noqa: S324
        return self._append(entity, key, name, field_type, parsed, custom=True,
                            mandatory=False, now=now)

    def by_id(self, entity: str, field_id: int) -> dict[str, Any] | None:
        """An entity's field definition by id (ids are unique across entities)."""
        return next((f for f in self.fields[entity] if f["id"] == field_id), None)

    def update(self, entity: str, field_id: int, body: dict[str, Any], *,
               now: str) -> dict[str, Any]:
        """Apply a v1 `updateFieldRequest` (name, options, add_visible_flag) to a custom field.

        `options`: "All active items must be supplied and already existing items must have
        their ID supplied. New items only require a label" (openapi-v1.yaml); an existing
        option left out is removed. FieldError on invalid input, KeyError if not found.
        """
        definition = self.by_id(entity, field_id)
        if definition is None:
            raise KeyError(field_id)
        if not definition["custom"]:
            # system fields have `edit_flag: false`
            raise FieldError("this is a system field and cannot be changed")
        changed = dict(definition)
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise FieldError("name: must be a non-empty string")
            changed["name"] = name
        if "add_visible_flag" in body:
            if not isinstance(body["add_visible_flag"], bool):
                raise FieldError("add_visible_flag: must be a boolean")
            changed["add_visible_flag"] = body["add_visible_flag"]
        if "options" in body:
            changed["options"] = self._updated_options(definition, body["options"])
        changed["update_time"] = now
        self.fields[entity] = [changed if f["id"] == field_id else f
                               for f in self.fields[entity]]
        return changed

    def _updated_options(self, definition: dict[str, Any], options: Any) -> list[dict[str, Any]]:
        if definition["field_type"] not in ("enum", "set"):
            raise FieldError("options: only enum and set fields have options")
        if not isinstance(options, list) or not options:
            raise FieldError("options: required for enum and set fields")
        existing = {o["id"]: o for o in definition["options"] or []}
        parsed: list[dict[str, Any]] = []
        for option in options:
            label = option.get("label") if isinstance(option, dict) else None
            if not isinstance(label, str) or not label:
                raise FieldError("options: each option needs a non-empty label")
            option_id = option.get("id")
            if option_id is None:
                parsed.append({"id": self.next_option_id, "label": label})
                self.next_option_id += 1
            elif option_id in existing:
                parsed.append({"id": option_id, "label": label})
            else:
                raise FieldError(f"options: no option with id {option_id}")
        return parsed

    def delete(self, entity: str, field_id: int) -> dict[str, Any]:
        """Remove a custom field; returns its definition. KeyError if not found."""
        definition = self.by_id(entity, field_id)
        if definition is None:
            raise KeyError(field_id)
        if not definition["custom"]:
            raise FieldError("this is a system field and cannot be deleted")
        self.fields[entity] = [f for f in self.fields[entity] if f["id"] != field_id]
        return definition

    def custom(self, entity: str) -> dict[str, dict[str, Any]]:
        """Custom field definitions of an entity by key."""
        return {f["key"]: f for f in self.fields[entity] if f["custom"]}

    def key_of(self, entity: str, name: str) -> str:
        """The hash key of a custom field by name (seeding, tests)."""
        for definition in self.fields[entity]:
            if definition["custom"] and definition["name"] == name:
                return str(definition["key"])
        raise KeyError(name)

    def option_id(self, entity: str, name: str, label: str) -> int:
        """The id of an enum/set option by field name and label (seeding, tests)."""
        for definition in self.fields[entity]:
            if definition["custom"] and definition["name"] == name:
                for option in definition["options"] or []:
                    if option["label"] == label:
                        return int(option["id"])
        raise KeyError(f"{name}: {label}")

    def merge_values(
        self, entity: str, current: dict[str, Any], update: Any, default_currency: str
    ) -> dict[str, Any]:
        """`current` custom values updated by a v2 `custom_fields` input (null clears).

        Unknown keys are rejected: Pipedrive answers a request carrying a deleted or
        foreign field key with ERR_SCHEMA_VALIDATION_FAILED (reported by integrators).
        """
        if not isinstance(update, dict):
            raise FieldError("custom_fields: must be an object")
        known = self.custom(entity)
        merged = dict(current)
        for key, value in update.items():
            definition = known.get(key)
            if definition is None:
                raise FieldError(f"custom_fields.{key}: unknown custom field")
            if value is None:
                merged.pop(key, None)
                continue
            merged[key] = _check_value(definition, value, default_currency)
        return merged

    def to_state(self) -> dict[str, Any]:
        return {
            "fields": {e: [dict(f) for f in fs] for e, fs in self.fields.items()},
            "next_field_id": self.next_field_id,
            "next_option_id": self.next_option_id,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.fields = {e: [dict(f) for f in state["fields"][e]] for e in ENTITIES}
        self.next_field_id = state["next_field_id"]
        self.next_option_id = state["next_option_id"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(where: str, _definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if not isinstance(value, str):
        raise FieldError(f"{where}: must be a string")
    return value


def _double(where: str, _definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if not _is_number(value):
        raise FieldError(f"{where}: must be a number")
    return value


def _monetary(where: str, _definition: dict[str, Any], value: Any, currency: str) -> Any:
    # v2: {"value": 2300, "currency": "EUR"} instead of v1's `<key>` + `<key>_currency`
    if not isinstance(value, dict) or not _is_number(value.get("value")):
        raise FieldError(f"{where}: must be an object with a numeric value")
    code = value.get("currency", currency)
    if not isinstance(code, str) or len(code) != 3:
        raise FieldError(f"{where}.currency: must be a 3-letter currency code")
    extra = set(value) - {"value", "currency"}
    if extra:
        raise FieldError(f"{where}: unexpected {', '.join(sorted(extra))}")
    return {"value": value["value"], "currency": code.upper()}


def _option_ids(definition: dict[str, Any]) -> set[int]:
    return {o["id"] for o in definition["options"] or []}


def _enum(where: str, definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if isinstance(value, bool) or value not in _option_ids(definition):
        raise FieldError(f"{where}: must be the id of one of the field's options")
    return value


def _set(where: str, definition: dict[str, Any], value: Any, _currency: str) -> Any:
    # the spec: an empty array "is not supported and will result in a validation error"
    if not isinstance(value, list) or not value:
        raise FieldError(f"{where}: must be a non-empty array of option ids")
    options = _option_ids(definition)
    if any(isinstance(v, bool) or v not in options for v in value):
        raise FieldError(f"{where}: must contain ids of the field's options")
    return sorted(set(value))


def _date(where: str, _definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if not is_date(value):
        raise FieldError(f"{where}: must be a date YYYY-MM-DD")
    return value


def _reference(where: str, _definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError(f"{where}: must be an integer id")
    return value


def _structured(where: str, _definition: dict[str, Any], value: Any, _currency: str) -> Any:
    if not isinstance(value, dict | str):
        raise FieldError(f"{where}: must be an object")
    return value


_CHECKS: dict[str, Callable[[str, dict[str, Any], Any, str], Any]] = {
    "varchar": _text, "varchar_auto": _text, "text": _text, "phone": _text, "time": _text,
    "double": _double, "monetary": _monetary, "enum": _enum, "set": _set, "date": _date,
    "user": _reference, "org": _reference, "people": _reference,
    "address": _structured, "daterange": _structured, "timerange": _structured,
}


def _check_value(definition: dict[str, Any], value: Any, default_currency: str) -> Any:
    """A validated custom field value in its v2 shape (migration guide, custom fields)."""
    where = f"custom_fields.{definition['key']}"
    check = _CHECKS.get(definition["field_type"])
    if check is None:
        raise FieldError(f"{where}: fields of type {definition['field_type']} cannot be set")
    return check(where, definition, value, default_currency)


def v1_field(definition: dict[str, Any]) -> dict[str, Any]:
    """A field definition in the v1 GetField shape."""
    custom = definition["custom"]
    field: dict[str, Any] = {
        "id": definition["id"],
        "key": definition["key"],
        "name": definition["name"],
        "order_nr": definition["order_nr"],
        "field_type": definition["field_type"],
        "add_time": v1_time(definition["add_time"]),
        "update_time": v1_time(definition["update_time"]),
        "last_updated_by_user_id": 1 if custom else None,
        "created_by_user_id": 1 if custom else None,
        "active_flag": True,
        "edit_flag": custom,
        "index_visible_flag": True,
        "details_visible_flag": True,
        "add_visible_flag": definition.get("add_visible_flag", True),
        "important_flag": False,
        "bulk_edit_allowed": definition["key"] != "id",
        "searchable_flag": definition["field_type"] in ("varchar", "text", "varchar_auto",
                                                        "double", "monetary", "phone"),
        "filtering_allowed": True,
        "sortable_flag": True,
        "mandatory_flag": definition["mandatory"],
        # the spec: options are null "When there are no options"
        "options": definition["options"],
    }
    if custom and definition["field_type"] == "monetary":
        # a monetary custom field carries its currency as a subfield ("Only present when
        # the field has subfields")
        field["subfields"] = [{
            "key": f"{definition['key']}_currency",
            "name": f"Currency of {definition['name']}",
            "field_type": "varchar",
        }]
    return field
