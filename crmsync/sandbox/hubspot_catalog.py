"""Property definitions of one portal: HubSpot's standard ones and those created through the
properties API, and the checks a record's values pass against them.

Shapes follow the Properties v3 spec (`Property`, `Option`, `PropertyGroup`) and the SDK's
`hubspot.crm.properties` models. Types and field types are the spec's enums: type string,
number, date, datetime, enumeration, bool; fieldType text, textarea, number, date, select,
radio, checkbox, booleancheckbox, calculation_equation, file.

Values as HubSpot stores them (properties guide, "Property values"): numbers as decimal
strings; `date` as midnight UTC, rendered ``YYYY-MM-DD``; `datetime` as an instant; `bool` as
``true``/``false``; enumerations as option values, several separated by ``;``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync.sandbox.hubspot_model import (
    DATETIMES,
    NUMBERS,
    OBJECT_TYPES,
    PROPERTIES,
    STAGE_DATE_PREFIXES,
    iso,
)
from crmsync.sandbox.hubspot_search import PropertyKinds, parse_instant

TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = ("textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
               "booleancheckbox", "calculation_equation")
_DEFAULT_FIELD_TYPE = {"string": "text", "number": "number", "date": "date",
                       "datetime": "date", "enumeration": "select", "bool": "booleancheckbox"}
_DAY_MS = 86_400_000
# Loose on purpose: HubSpot refuses what lacks a local part, an @ or a dotted domain.
_EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Enumerations of standard properties whose options HubSpot fixes (contacts/deals guides).
_LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
              "opportunity", "customer", "evangelist", "other")
_STANDARD_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("contacts", "lifecyclestage"): _LIFECYCLE,
    ("companies", "lifecyclestage"): _LIFECYCLE,
    ("contacts", "hs_lead_status"): ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                                     "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"),
    ("deals", "dealtype"): ("newbusiness", "existingbusiness"),
    ("deals", "hs_priority"): ("low", "medium", "high"),
    ("companies", "type"): ("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"),
}
_BOOLS = frozenset({"hs_email_optout", "hs_is_closed", "hs_is_closed_won"})
# HubSpot-calculated or system-maintained: readable, never writable.
READ_ONLY = frozenset({"hs_object_id", "lastmodifieddate", "hs_lastmodifieddate",
                       "hs_merged_object_ids", "hs_is_closed", "hs_is_closed_won"})
# Standard group of each type (the group HubSpot's own properties belong to).
STANDARD_GROUP = {"contacts": "contactinformation", "companies": "companyinformation",
                  "deals": "dealinformation"}
_GROUP_LABELS = {"contactinformation": "Contact information",
                 "companyinformation": "Company information",
                 "dealinformation": "Deal information"}


class PropertyValueError(ValueError):
    """One invalid value: HubSpot's `{isValid, name, error, message}` entry."""

    def __init__(self, name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.entry = {"isValid": False, "message": message, "error": code, "name": name}


def _label(name: str) -> str:
    return name.replace("hs_", "").replace("_", " ").strip().capitalize()


def _option(value: str, order: int, label: str | None = None) -> dict[str, Any]:
    return {"label": label or value, "value": value, "displayOrder": order, "hidden": False}


@dataclass
class PropertyCatalog:
    """Every object type's property definitions and groups (one portal)."""

    now_ms: int
    definitions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _kinds: dict[str, PropertyKinds] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.definitions:
            return
        for object_type in OBJECT_TYPES:
            group = STANDARD_GROUP[object_type]
            self.groups[object_type] = {group: self.new_group(group, _GROUP_LABELS[group], 0)}
            self.definitions[object_type] = {
                name: self._standard(object_type, name) for name in sorted(PROPERTIES[object_type])
            }

    # -- definitions ----------------------------------------------------------------------
    def _standard(self, object_type: str, name: str) -> dict[str, Any]:
        options = _STANDARD_OPTIONS.get((object_type, name))
        if options is not None:
            kind = "enumeration"
        elif name in _BOOLS:
            kind = "bool"
        elif name in DATETIMES:
            kind = "datetime"
        elif name in NUMBERS and name != "hubspot_owner_id":
            kind = "number"
        elif name == "hubspot_owner_id":
            kind = "enumeration"  # options are the portal's owners (checked by the owners store)
        else:
            kind = "string"
        definition = self.new_definition(
            name=name, label=_label(name), kind=kind, field_type=_DEFAULT_FIELD_TYPE[kind],
            group=STANDARD_GROUP[object_type],
            options=[_option(v, i) for i, v in enumerate(options or ())], created=0)
        definition["hubspotDefined"] = True
        definition["modificationMetadata"]["readOnlyValue"] = name in READ_ONLY
        definition["modificationMetadata"]["readOnlyDefinition"] = True
        definition["modificationMetadata"]["archivable"] = False
        if name in ("hs_object_id", "email"):
            definition["hasUniqueValue"] = name == "hs_object_id"
        return definition

    def new_definition(self, *, name: str, label: str, kind: str, field_type: str, group: str,
                       options: list[dict[str, Any]], created: int | None = None,
                       description: str = "", display_order: int = -1) -> dict[str, Any]:
        """A `Property` as stored (timestamps in ms; `render` makes them ISO)."""
        when = self.now_ms if created is None else created
        return {
            "name": name, "label": label, "type": kind, "fieldType": field_type,
            "groupName": group, "description": description, "options": options,
            "displayOrder": display_order, "hidden": False, "formField": kind != "datetime",
            "hasUniqueValue": False, "calculated": False, "externalOptions": False,
            "hubspotDefined": False, "archived": False, "createdAt": when, "updatedAt": when,
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False,
                                     "readOnlyValue": False, "readOnlyOptions": False},
        }

    def new_group(self, name: str, label: str, order: int) -> dict[str, Any]:
        """A `PropertyGroup`."""
        return {"name": name, "label": label, "displayOrder": order, "archived": False}

    def stage_dates(self, stages: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The calculated `hs_date_entered_/hs_date_exited_<stageId>` deal properties of
        `stages` ([(id, label)]); read-only date-times."""
        out = {}
        for stage_id, label in stages:
            for prefix, verb in zip(STAGE_DATE_PREFIXES, ("entered", "exited"), strict=True):
                definition = self.new_definition(
                    name=prefix + stage_id, label=f"Date {verb} {label!r}", kind="datetime",
                    field_type="date", group=STANDARD_GROUP["deals"], options=[], created=0)
                definition.update(hubspotDefined=True, calculated=True, formField=False)
                definition["modificationMetadata"].update(
                    readOnlyValue=True, readOnlyDefinition=True, archivable=False)
                out[definition["name"]] = definition
        return out

    def active(self, object_type: str) -> dict[str, dict[str, Any]]:
        return {n: d for n, d in self.definitions[object_type].items() if not d["archived"]}

    def get(self, object_type: str, name: str) -> dict[str, Any] | None:
        definition = self.definitions[object_type].get(name)
        return definition if definition is not None and not definition["archived"] else None

    def changed(self) -> None:
        """Drop what is derived from the definitions (after a create/update/archive)."""
        self._kinds.clear()

    def kinds(self, object_type: str) -> PropertyKinds:
        """Which properties search compares as instants or numbers."""
        kinds = self._kinds.get(object_type)
        if kinds is None:
            active = self.active(object_type).values()
            kinds = self._kinds[object_type] = PropertyKinds(
                datetimes=frozenset(d["name"] for d in active if d["type"] in ("date",
                                                                               "datetime")),
                numbers=frozenset(d["name"] for d in active if d["type"] == "number")
                | {"hubspot_owner_id"},
                datetime_prefixes=STAGE_DATE_PREFIXES if object_type == "deals" else ())
        return kinds

    # -- values ---------------------------------------------------------------------------
    def check_value(self, definition: dict[str, Any], text: str) -> str:
        """`text` as HubSpot stores it for this property; `PropertyValueError` if invalid."""
        name, kind = definition["name"], definition["type"]
        if name == "email":  # the one property HubSpot checks as an address
            if not _EMAIL.match(text.strip()):
                raise PropertyValueError(name, "INVALID_EMAIL", f"Email address {text} is invalid")
            return text.strip()
        if kind == "number":
            try:
                float(text)
            except ValueError:
                raise PropertyValueError(name, "INVALID_DECIMAL",
                                      f"{text} was not a valid number.") from None
            return text
        if kind in ("date", "datetime"):
            return _check_instant(name, kind, text)
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise PropertyValueError(name, "INVALID_BOOLEAN",
                                      f"{text} was not a valid boolean (true or false).")
            return text.lower()
        if kind == "enumeration" and definition["options"]:
            allowed = [o["value"] for o in definition["options"]]
            for value in text.split(";"):
                if value not in allowed:
                    raise PropertyValueError(
                        name, "INVALID_OPTION",
                        f"{value} was not one of the allowed options: {allowed}")
        return text

    # -- rendering ------------------------------------------------------------------------
    @staticmethod
    def render(definition: dict[str, Any]) -> dict[str, Any]:
        out = {**definition, "createdAt": iso(definition["createdAt"]),
               "updatedAt": iso(definition["updatedAt"])}
        if definition.get("archivedAt"):
            out["archivedAt"] = iso(definition["archivedAt"])
        else:
            out.pop("archivedAt", None)
        return out

    @staticmethod
    def render_v2(definition: dict[str, Any]) -> dict[str, Any]:
        """The legacy v2 shape (`/properties/v2/{objectType}/properties`)."""
        meta = definition["modificationMetadata"]
        return {
            "name": definition["name"], "label": definition["label"],
            "description": definition["description"], "groupName": definition["groupName"],
            "type": definition["type"], "fieldType": definition["fieldType"],
            "options": [{**o, "readOnly": False, "doubleData": None, "description": None}
                        for o in definition["options"]],
            "displayOrder": definition["displayOrder"], "hidden": definition["hidden"],
            "formField": definition["formField"], "calculated": definition["calculated"],
            "externalOptions": definition["externalOptions"],
            "hubspotDefined": definition["hubspotDefined"],
            "readOnlyValue": meta["readOnlyValue"],
            "readOnlyDefinition": meta["readOnlyDefinition"],
            "mutableDefinitionNotDeletable": not meta["archivable"],
            "hasUniqueValue": definition["hasUniqueValue"], "deleted": definition["archived"],
            "createdAt": definition["createdAt"], "updatedAt": definition["updatedAt"],
        }

    # -- persistence ----------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"definitions": self.definitions, "groups": self.groups}

    @classmethod
    def load(cls, state: dict[str, Any], now_ms: int) -> PropertyCatalog:
        return cls(now_ms=now_ms, definitions=state["definitions"], groups=state["groups"])


def _check_instant(name: str, kind: str, text: str) -> str:
    instant = parse_instant(text)
    if instant is None:
        raise PropertyValueError(name, "INVALID_DATE", f"{text} was not a valid date.")
    if kind == "datetime":
        return iso(instant)
    if instant % _DAY_MS:
        # "date properties … must be set to midnight UTC" (properties guide)
        raise PropertyValueError(
            name, "INVALID_DATE",
            f"{text} is at {iso(instant)}, not midnight UTC; date properties store dates only.")
    return datetime.fromtimestamp(instant // 1000, tz=UTC).strftime("%Y-%m-%d")


def valid_name(name: Any) -> bool:
    """Internal names: lower-case letters, digits and underscores, starting with a letter."""
    return isinstance(name, str) and bool(_NAME.match(name)) and len(name) <= 100
