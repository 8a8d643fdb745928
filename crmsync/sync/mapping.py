"""From a CRM's records to the store's rows: pure functions, no I/O.

The adapters already speak canonical fields (`adapters.records.CANONICAL_FIELDS`); this turns
them into typed store columns — deals' pipeline and stage by blueprint key through the ids
`apply` recorded, contacts' marketing consent from the client's declared field, normalised
keys for matching — and keeps what the CRM said as the merge base. Mapping is lenient: a value
that does not fit its column (an amount that is not a number, a malformed date) leaves the
column empty and stays, as the CRM sent it, in the record's properties and its base — nothing
a CRM sends is dropped. A property without a value (the CRM's null) is simply absent from the
properties and the base (both read it as None): an account's records name hundreds of
properties, most of them empty, and storing every one as null doubled what a load writes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.keys import consent_value, domain_key, email_key
from crmsync.store.records import (
    AssociationTuple,
    PackedRows,
    RecordRow,
    RemovalRow,
    json_text,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from crmsync.adapters.records import RecordPage, RemoteRecord, RemoteRemoval

@dataclass(frozen=True)
class StageKeys:
    """Blueprint keys by remote id, from the provisioning state of one client's CRM."""

    pipelines: Mapping[str, str] = field(default_factory=dict)  # remote pipeline id → key
    stages: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # stage id → keys

    @classmethod
    def from_known(cls, pipelines: Mapping[str, str],
                   stages: Mapping[tuple[str, str], str]) -> StageKeys:
        """From `KnownIds`-shaped maps (key → remote id)."""
        return cls({rid: key for key, rid in pipelines.items()},
                   {rid: keys for keys, rid in stages.items()})


@dataclass(frozen=True)
class MappingRules:
    """What mapping needs to know about one client."""

    stage_keys: StageKeys = field(default_factory=StageKeys)
    consent_field: str | None = None  # the property that holds marketing consent


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit] if text else None


def _amount(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(decimal.Decimal(str(value).strip()))
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        text = str(value).strip()
        if text.isdigit():  # HubSpot sends dates as epoch milliseconds in some places
            return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC).date()
        return dt.date.fromisoformat(text[:10])
    except (ValueError, OverflowError, OSError):
        return None


def _instant(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip().replace(" ", "T", 1)
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _columns(record: RemoteRecord, rules: MappingRules) -> dict[str, Any]:
    f = record.fields
    if record.object_type == "contacts":
        email = _text(f.get("email"), 320)
        consent = (consent_value(record.properties.get(rules.consent_field))
                   if rules.consent_field else None)
        return {"email": email, "email_key": email_key(email),
                "first_name": _text(f.get("first_name"), 255),
                "last_name": _text(f.get("last_name"), 255),
                "phone": _text(f.get("phone"), 64), "consent": consent,
                "owner_id": _text(f.get("owner_id"), 64)}
    if record.object_type == "companies":
        domain = _text(f.get("domain"), 255)
        return {"name": _text(f.get("name"), 512), "domain": domain,
                "domain_key": domain_key(domain), "owner_id": _text(f.get("owner_id"), 64)}
    pipeline_id = _text(f.get("pipeline_id"), 64)
    stage_id = _text(f.get("stage_id"), 64)
    keys = rules.stage_keys
    pipeline_key = keys.pipelines.get(pipeline_id) if pipeline_id else None
    stage_keys = keys.stages.get(stage_id) if stage_id else None
    status = f.get("status")
    return {
        "name": _text(f.get("name"), 512), "amount": _amount(f.get("amount")),
        "currency": _text(f.get("currency"), 8),
        "pipeline_key": pipeline_key,
        # A stage key only where it belongs to the deal's pipeline (ids are per CRM account).
        "stage_key": stage_keys[1] if stage_keys and stage_keys[0] == pipeline_key else None,
        "remote_pipeline_id": pipeline_id, "remote_stage_id": stage_id,
        "status": status if status in ("open", "won", "lost") else None,
        "close_date": _date(f.get("close_date")), "closed_at": _instant(f.get("closed_at")),
        "stage_changed_at": _instant(f.get("stage_changed_at")),
        "owner_id": _text(f.get("owner_id"), 64),
        "remote_created_at": _instant(f.get("created_at")),
    }


def _stored_properties(record: RemoteRecord) -> dict[str, Any]:
    """The record's properties that have a value (the others are not stored)."""
    return {name: value for name, value in record.properties.items() if value is not None}


def _association_rows(record: RemoteRecord) -> tuple[AssociationTuple, ...] | None:
    if record.associations is None:
        return None
    return tuple([(a.to_type, a.to_id, a.primary) for a in record.associations])


def record_row(record: RemoteRecord, rules: MappingRules) -> RecordRow:
    """The store row for one remote record."""
    # One copy serves as the row's properties and its base's (the store then writes their
    # JSON once); nothing mutates either.
    properties = _stored_properties(record)
    return RecordRow(
        remote_id=record.id,
        remote_modified_at=record.modified_at,
        columns=_columns(record, rules),
        properties=properties,
        base={"fields": dict(record.fields), "properties": properties},
        associations=_association_rows(record),
    )


def removal_row(removal: RemoteRemoval) -> RemovalRow:
    return RemovalRow(removal.id, removal.reason, removal.removed_at, removal.merged_into)


def prepare_page(rules: MappingRules, page: RecordPage) -> PreparedPage:
    """A page's store rows and removals: what the engine commits. A row's JSON is worked out
    only if it is inserted (an update or an unchanged record never needs it). A page made in
    a worker process is prepared there by `pack_page` instead."""
    return PreparedPage([record_row(r, rules) for r in page.records],
                        [removal_row(r) for r in page.removals])


def pack_page(rules: MappingRules, page: RecordPage) -> PreparedPage:
    """`prepare_page` for a page a worker process sends on: its rows made straight into
    `PackedRows` (no `RecordRow` apiece, the JSON text worked out here), the same rows
    `record_row` makes."""
    records = page.records
    columns = [_columns(record, rules) for record in records]
    # `_columns` names one type's columns in one order.
    names = list(columns[0]) if columns else []
    return PreparedPage(PackedRows(
        names, remote_ids=[record.id for record in records],
        modified=[record.modified_at for record in records],
        values=[tuple(values.values()) for values in columns],
        properties=[json_text(_stored_properties(record)) for record in records],
        fields=[json_text(record.fields) for record in records],
        associations=[_association_rows(record) for record in records]),
        [removal_row(r) for r in page.removals])


class PreparedPage:
    """`prepare_page`'s or `pack_page`'s answer: the rows the engine commits, and the
    removals."""

    def __init__(self, rows: Sequence[RecordRow], removals: list[RemovalRow]) -> None:
        self.rows = rows
        self.removals = removals
