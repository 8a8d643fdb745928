"""Optional response parts of the Pipedrive emulator's v2 record reads: `include_fields`,
`include_option_labels` and the `custom_fields` key selection.

`include_fields` is "Optional comma separated string array of additional fields to include";
its enum per operation is copied from openapi-v2.yaml. The emulator keeps no activities,
notes, files, emails, products, followers or leads, so the counts of those are 0 and their
ids and times null - exactly what a company without them answers. The deal counts of a person
or organization are counted from the account's deals (deleted ones excluded).

Decisions (unconfirmed upstream, easy to change here):
- `followers_count` is 1: Pipedrive makes a record's owner its follower.
- `participants_count` of a deal is 1 when it has a contact person (the person takes part).
- the `related_*` and `participant_*` deal counts are 0: the emulator keeps no participants
  beyond the linked person and organization, which the plain counts already cover.
- `smart_bcc_email` is a per-record address at a sandbox domain.
- `marketing_status` is the person's, else "no_consent"; `doi_status` is null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive_input import invalid

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crmsync.sandbox.http import Request
    from crmsync.sandbox.pipedrive_fields import FieldCatalog
    from crmsync.sandbox.pipedrive_store import Row

_ACTIVITY = ("next_activity_id", "last_activity_id")
_COUNTS = ("email_messages_count", "activities_count", "done_activities_count",
           "undone_activities_count", "files_count", "notes_count")
_MAIL = ("last_incoming_mail_time", "last_outgoing_mail_time")

# the `include_fields` enums of the v2 list and get operations, per entity
INCLUDE_FIELDS: dict[str, tuple[str, ...]] = {
    "deals": (*_ACTIVITY, "first_won_time", "products_count", "files_count", "notes_count",
              "followers_count", "email_messages_count", "activities_count",
              "done_activities_count", "undone_activities_count", "participants_count",
              *_MAIL, "smart_bcc_email", "source_lead_id"),
    "persons": (*_ACTIVITY, "open_deals_count", "related_open_deals_count",
                "closed_deals_count", "related_closed_deals_count",
                "participant_open_deals_count", "participant_closed_deals_count",
                "email_messages_count", "activities_count", "done_activities_count",
                "undone_activities_count", "files_count", "notes_count", "followers_count",
                "won_deals_count", "related_won_deals_count", "lost_deals_count",
                "related_lost_deals_count", *_MAIL, "marketing_status", "doi_status",
                "smart_bcc_email"),
    "organizations": (*_ACTIVITY, "open_deals_count", "related_open_deals_count",
                      "closed_deals_count", "related_closed_deals_count",
                      "email_messages_count", "people_count", "activities_count",
                      "done_activities_count", "undone_activities_count", "files_count",
                      "notes_count", "followers_count", "won_deals_count",
                      "related_won_deals_count", "lost_deals_count",
                      "related_lost_deals_count", "smart_bcc_email"),
}
_DEAL_COUNTS = ("open_deals_count", "closed_deals_count", "won_deals_count",
                "lost_deals_count")
# answers that do not depend on the record: nothing of the kind exists in the emulator
_FIXED: dict[str, Any] = {
    **dict.fromkeys((*_ACTIVITY, *_MAIL, "source_lead_id", "doi_status")),
    **dict.fromkeys((*_COUNTS, "products_count"), 0),
    "followers_count": 1,
}
_ENTITY = {"deals": "deal", "persons": "person", "organizations": "organization"}
MAX_CUSTOM_KEYS = 15  # "A maximum of 15 keys is allowed."


class Shaper:
    """How one read request shapes the records it returns."""

    def __init__(self, name: str, request: Request, *, option_labels: bool = True) -> None:
        self.name = name
        allowed = INCLUDE_FIELDS[name]
        self.include = request.args("include_fields")
        for value in self.include:
            if value not in allowed:
                raise invalid(f"include_fields: {value!r} is not one of {', '.join(allowed)}")
        keys = request.args("custom_fields")
        if len(keys) > MAX_CUSTOM_KEYS:
            raise invalid(f"custom_fields: at most {MAX_CUSTOM_KEYS} keys")
        self.custom_keys: list[str] | None = keys or None
        raw = request.arg("include_option_labels")
        if raw not in (None, "", "true", "false"):
            raise invalid("include_option_labels: must be true or false")
        self.option_labels = option_labels and raw == "true"
        self._deal_counts: dict[int, dict[str, int]] | None = None
        self._people: dict[int, int] | None = None

    @property
    def plain(self) -> bool:
        return not (self.include or self.custom_keys or self.option_labels)

    def shape(self, row: Row, *, catalog: FieldCatalog, first_won: dict[int, str],
              deals: Iterable[Row], persons: Iterable[Row]) -> Row:
        """`row` as this request shows it (the stored row itself when nothing is asked)."""
        if self.plain:
            return row
        shaped = dict(row)
        values = row["custom_fields"]
        if self.custom_keys is not None:
            values = {k: values[k] for k in self.custom_keys if k in values}
        if self.option_labels:
            values = _with_labels(values, catalog.custom(_ENTITY[self.name]))
        shaped["custom_fields"] = values
        for field in self.include:
            shaped[field] = self._extra(field, row, first_won, deals, persons)
        return shaped

    def _extra(self, field: str, row: Row, first_won: dict[int, str], deals: Iterable[Row],
               persons: Iterable[Row]) -> Any:
        if field in _FIXED:
            return _FIXED[field]
        if field.startswith(("related_", "participant_")):
            return 0
        value: Any = None
        if field in _DEAL_COUNTS:
            value = self._counts(deals).get(row["id"], {}).get(field, 0)
        elif field == "people_count":
            value = self._people_count(persons).get(row["id"], 0)
        elif field == "first_won_time":
            value = first_won.get(row["id"])
        elif field == "participants_count":
            value = 1 if row.get("person_id") else 0
        elif field == "smart_bcc_email":
            value = f"sandbox+{_ENTITY[self.name]}{row['id']}@pipedrivemail.example"
        elif field == "marketing_status":
            value = row.get("marketing_status") or "no_consent"
        return value

    def _people_count(self, persons: Iterable[Row]) -> dict[int, int]:
        if self._people is None:
            self._people = {}
            for person in persons:
                if not person["is_deleted"] and person["org_id"] is not None:
                    org = person["org_id"]
                    self._people[org] = self._people.get(org, 0) + 1
        return self._people

    def _counts(self, deals: Iterable[Row]) -> dict[int, dict[str, int]]:
        """Deal counts per person or organization, from one pass over the deals."""
        if self._deal_counts is None:
            link = "person_id" if self.name == "persons" else "org_id"
            counts: dict[int, dict[str, int]] = {}
            for deal in deals:
                owner = deal[link]
                if owner is None or deal["is_deleted"]:
                    continue
                mine = counts.setdefault(owner, dict.fromkeys(_DEAL_COUNTS, 0))
                if deal["status"] == "open":
                    mine["open_deals_count"] += 1
                else:
                    mine["closed_deals_count"] += 1
                    mine[f"{deal['status']}_deals_count"] += 1
            self._deal_counts = counts
        return self._deal_counts


def _with_labels(values: dict[str, Any], definitions: dict[str, dict[str, Any]]
                 ) -> dict[str, Any]:
    """Option ids as `{id, label}` ("single option and multiple option custom fields values
    contain objects in the form of '{ id: number, label: string }' instead of plain id")."""
    shown = dict(values)
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None or definition["field_type"] not in ("enum", "set"):
            continue
        labels = {o["id"]: o["label"] for o in definition["options"] or []}
        if definition["field_type"] == "enum":
            shown[key] = {"id": value, "label": labels.get(value)}
        else:
            shown[key] = [{"id": v, "label": labels.get(v)} for v in value]
    return shown
