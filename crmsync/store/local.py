"""Changing one client's records from Python: validated writes that queue themselves for sync.

The store is the hub other tools write to — a consultant's script, a data team's job,
`crmsync import`. Every write here is validated per record, lands in one transaction with
its entry in `local_changes` (the queue the next `crmsync sync` pushes), and names the record
and field when it is refused::

    from crmsync.store import open_store

    with open_store("sqlite:///crmsync.db") as store:
        local = store.local("acme")
        ada = local.create("contacts", {"email": "Ada@Example.com", "consent": True},
                           {"lead_source": "fair 2026"})
        firm = local.create("companies", {"name": "Example Ltd", "domain": "example.com"})
        local.associate("contacts", ada, "companies", firm, primary=True)
        deal = local.create("deals", {"name": "Example – retainer", "amount": 1200,
                                      "currency": "EUR", "pipeline_key": "sales",
                                      "stage_key": "meeting_booked"})
        local.update("deals", deal, {"stage_key": "proposal_received"})
        local.delete("contacts", ada)          # a tombstone; the push decides what it means
        local.pending()                        # the queue, oldest first

Rules:
- Fields are the canonical columns of each object type (`WRITABLE_FIELDS`); anything else is
  a property (`properties={name: value}`, text, number, bool or None). A field set to None is
  cleared; a field not given is left as it is.
- Identity: `create` of a contact whose email matches a live contact of the client (case and
  whitespace ignored) updates that contact and returns its id; companies likewise by domain
  (scheme, `www.`, path and case ignored); deals never match.
- The queue holds one row per record: op `upsert` or `delete` and the union of the names
  changed since the last push (canonical fields, property names, `associations:<to_type>` on
  the owning side: contact→company, deal→contact, deal→company). A write that changes nothing
  queues nothing.
- Pipelines and stages are named by blueprint key; whether the key exists is checked when
  the deal is pushed, against the client's blueprint.
- `apply_rows` is the batch form: one transaction per call, set-based statements, each row's
  errors collected in its outcome instead of raised (`BatchResult`); `dry_run=True` reports
  what it would do and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, bindparam, delete, insert, select, update

from crmsync.errors import CrmsyncError, RecordError
from crmsync.keys import domain_key, email_key
from crmsync.store.dialects import dialect_insert
from crmsync.store.records import OWNED_ASSOCIATIONS, keep_merge_bases
from crmsync.store.schema import RECORD_TABLES, associations, local_changes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from sqlalchemy import Connection, Table

    from crmsync.store.store import Store

# The canonical fields a local write may set, per object type (the typed columns, less what
# the store derives or only a CRM can say: matching keys, remote ids, CRM timestamps).
WRITABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "first_name", "last_name", "phone", "consent", "owner_id"),
    "companies": ("name", "domain", "owner_id"),
    "deals": ("name", "amount", "currency", "pipeline_key", "stage_key", "status",
              "close_date", "owner_id"),
}
_DERIVED = {"email": "email_key", "domain": "domain_key"}
_MATCH_KEY = {"contacts": "email_key", "companies": "domain_key"}
_SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DOMAIN = re.compile(r"^[^\s/:@.]+(?:\.[^\s/:@.]+)+$")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")  # the blueprint's key syntax (blueprint/models.py)
_CURRENCY = re.compile(r"^[A-Z]{3}$")

Status = Literal["new", "updated", "unchanged", "rejected"]


class _InvalidValueError(ValueError):
    """A value a field cannot take (message only; the caller names record and field)."""


# --- field validators: value in, normalised column value out ---------------------------------

def _text(limit: int) -> Callable[[Any], Any]:
    def check(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _InvalidValueError(f"must be text, not {type(value).__name__}")
        text = value.strip()
        if len(text) > limit:
            raise _InvalidValueError(f"is longer than {limit} characters")
        return text or None

    return check


def _owner(value: Any) -> str | None:
    # Owner ids are text in the store (HubSpot and Pipedrive ids alike); a whole number is
    # accepted as what a script naturally passes.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(64)(value)


def _email(value: Any) -> str | None:
    text = _text(320)(value)
    if text is not None and not _EMAIL.match(text):
        raise _InvalidValueError(f"'{text}' is not an email address")
    return text


def _domain(value: Any) -> str | None:
    text = _text(255)(value)
    if text is not None and not _DOMAIN.match(domain_key(text) or ""):
        raise _InvalidValueError(f"'{text}' is not a domain (e.g. example.com)")
    return text


def _consent(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _InvalidValueError(f"must be true or false, not {value!r}")


def _amount(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise _InvalidValueError(f"must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _InvalidValueError(f"must be a finite number, not {value!r}")
    return number


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _InvalidValueError(f"must be a date (YYYY-MM-DD), not {value!r}")


def _choice(*allowed: str) -> Callable[[Any], Any]:
    def check(value: Any) -> str | None:
        text = _text(16)(value)
        if text is not None and text.lower() not in allowed:
            raise _InvalidValueError(f"must be one of {', '.join(allowed)}, not '{text}'")
        return text.lower() if text is not None else None

    return check


def _currency(value: Any) -> str | None:
    text = _text(8)(value)
    if text is not None:
        text = text.upper()
        if not _CURRENCY.match(text):
            raise _InvalidValueError(f"must be a 3-letter currency code such as EUR, not '{text}'")
    return text


def _key(value: Any) -> str | None:
    text = _text(64)(value)
    if text is not None and not _KEY.match(text):
        raise _InvalidValueError(f"'{text}' is not a blueprint key (lowercase letters, digits and "
                       "underscores, starting with a letter)")
    return text


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "email": _email, "first_name": _text(255), "last_name": _text(255), "phone": _text(64),
    "consent": _consent, "owner_id": _owner, "name": _text(512), "domain": _domain,
    "amount": _amount, "currency": _currency, "pipeline_key": _key, "stage_key": _key,
    "status": _choice("open", "won", "lost"), "close_date": _date,
}


def _property(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _InvalidValueError(f"must be a finite number, not {value!r}")
        return value
    raise _InvalidValueError(
        f"must be text, a number, true/false or None, not {type(value).__name__}")


# --- batch form --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalRow:
    """One record to write in a batch: an update when `record_id` is given, else a create
    (which may match an existing contact or company, see the module docstring)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] | None = None
    record_id: int | None = None
    label: str | None = None  # how errors name the record (e.g. "row 7"); default by id


@dataclass(frozen=True)
class RowOutcome:
    """What a batch did (or, dry, would do) with one row."""

    index: int  # the row's position in the batch
    status: Status
    record_id: int | None  # None when rejected, or new in a dry run
    values: Mapping[str, Any]  # what the row sets, normalised: fields, `properties.<name>`
    errors: tuple[RecordError, ...] = ()
    same_as: int | None = None  # an earlier row of the batch that created the same record


@dataclass
class BatchResult:
    """Per-row outcomes of `LocalRecords.apply_rows`, in row order."""

    outcomes: list[RowOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def errors(self) -> list[RecordError]:
        return [e for o in self.outcomes for e in o.errors]


@dataclass(eq=False)
class _Target:
    """A record the batch writes: its current values and what the batch changed."""

    record_id: int | None  # None: created by this batch
    first_index: int
    columns: dict[str, Any]
    properties: dict[str, Any]
    changed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Checked:
    label: str
    columns: dict[str, Any]
    properties: dict[str, Any]
    errors: tuple[RecordError, ...]


@dataclass
class _Current:
    rows: dict[int, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)  # matching key → oldest live id


class LocalRecords:
    """Validated local writes to one client's records, each queued for the next sync."""

    def __init__(self, store: Store, client: str) -> None:
        self.store = store
        self.client = client

    # --- one record ---------------------------------------------------------------------------

    def create(self, object_type: str, fields: Mapping[str, Any],
               properties: Mapping[str, Any] | None = None) -> int:
        """Create a record (or update the contact/company it matches); returns its id.

        Raises `RecordError` naming the field when a value is refused.
        """
        outcome = self._one(object_type, LocalRow(fields, properties))
        assert outcome.record_id is not None
        return outcome.record_id

    def update(self, object_type: str, record_id: int, fields: Mapping[str, Any] | None = None,
               properties: Mapping[str, Any] | None = None) -> None:
        """Change the given fields and properties of a live record (others stay as they are)."""
        self._one(object_type, LocalRow(fields or {}, properties, record_id=record_id))

    def delete(self, object_type: str, record_id: int) -> None:
        """Tombstone a record (`deleted_reason` "local") and queue its deletion.

        Whether the CRM's record is archived too is the push's decision (the blueprint's
        delete policy). Deleting a record already deleted changes nothing.
        """
        table = _table(object_type)
        label = f"{object_type} #{record_id}"
        now = self.store.clock()
        with self.store.engine.begin() as conn:
            row = conn.execute(select(table.c.deleted_at, table.c.stub).where(
                table.c.id == record_id, table.c.client == self.client)).first()
            if row is None or row.stub:
                raise RecordError(label, "", f"no such record for client {self.client}")
            if row.deleted_at is not None:
                return
            conn.execute(update(table).where(table.c.id == record_id).values(
                deleted_at=now, deleted_reason="local", updated_at=now))
            self._queue(conn, object_type, {record_id: set()}, now, op="delete")

    def associate(self, from_type: str, from_id: int, to_type: str, to_id: int,
                  primary: bool = False) -> None:
        """Link two live records (either order); `primary` makes it the owner's primary one
        of that type (HubSpot's primary company). Queued on the owning side."""
        owner_type, owner_id, other_type, other_id = self._owning(from_type, from_id, to_type,
                                                                  to_id)
        now = self.store.clock()
        with self.store.engine.begin() as conn:
            self._require_live(conn, owner_type, owner_id)
            self._require_live(conn, other_type, other_id)
            scope = and_(associations.c.client == self.client,
                         associations.c.from_type == owner_type,
                         associations.c.from_id == owner_id,
                         associations.c.to_type == other_type)
            current = conn.execute(select(associations.c.is_primary).where(
                scope, associations.c.to_id == other_id)).first()
            if current is not None and bool(current.is_primary) == primary:
                return
            if primary:
                conn.execute(update(associations).where(scope, associations.c.to_id != other_id)
                             .values(is_primary=False, updated_at=now))
            if current is None:
                conn.execute(insert(associations).values(
                    client=self.client, from_type=owner_type, from_id=owner_id,
                    to_type=other_type, to_id=other_id, is_primary=primary, crm=None,
                    updated_at=now))
            else:
                conn.execute(update(associations).where(scope, associations.c.to_id == other_id)
                             .values(is_primary=primary, updated_at=now))
            self._queue(conn, owner_type, {owner_id: {f"associations:{other_type}"}}, now)

    def dissociate(self, from_type: str, from_id: int, to_type: str, to_id: int) -> None:
        """Remove the link between two records (either order), if there is one."""
        owner_type, owner_id, other_type, other_id = self._owning(from_type, from_id, to_type,
                                                                  to_id)
        now = self.store.clock()
        with self.store.engine.begin() as conn:
            removed = conn.execute(delete(associations).where(
                associations.c.client == self.client, associations.c.from_type == owner_type,
                associations.c.from_id == owner_id, associations.c.to_type == other_type,
                associations.c.to_id == other_id)).rowcount
            if removed:
                self._queue(conn, owner_type, {owner_id: {f"associations:{other_type}"}}, now)

    # --- reading ------------------------------------------------------------------------------

    def get(self, object_type: str, record_id: int) -> dict[str, Any] | None:
        """The record's row (live or deleted), or None if the client has no such record."""
        table = _table(object_type)
        with self.store.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == record_id,
                                                   table.c.client == self.client)).first()
        return dict(row._mapping) if row is not None else None

    def find_contact(self, email: str) -> dict[str, Any] | None:
        """The live contact with this email (case and whitespace ignored), if any."""
        key = email_key(email)
        if key is None:
            return None
        table = RECORD_TABLES["contacts"]
        with self.store.engine.connect() as conn:
            row = conn.execute(select(table).where(
                table.c.client == self.client, table.c.email_key == key,
                table.c.deleted_at.is_(None), table.c.stub.is_(False),
            ).order_by(table.c.id).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    def pending(self) -> list[dict[str, Any]]:
        """The client's queue of local changes not pushed yet, oldest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(local_changes).where(
                local_changes.c.client == self.client,
            ).order_by(local_changes.c.queued_at, local_changes.c.id))
            return [dict(r._mapping) for r in rows]

    # --- the batch ----------------------------------------------------------------------------

    def apply_rows(self, object_type: str, rows: Iterable[LocalRow], *,
                   dry_run: bool = False) -> BatchResult:
        """Write a batch of rows in one transaction; a refused row is reported, not raised.

        Rows are applied in order: a later row that matches the same record (same id, email
        or domain) changes it further. With `dry_run` nothing is written and new records
        have no id.
        """
        table = _table(object_type)
        singular = _SINGULAR[object_type]
        batch = list(rows)
        checked = [self._validate(object_type, row, _label(row, object_type, singular))
                   for row in batch]
        now = self.store.clock()
        plan: list[tuple[Status, _Target | None, tuple[RecordError, ...], int | None]] = []
        with (self.store.engine.connect() if dry_run else self.store.engine.begin()) as conn:
            current = self._current(conn, table, object_type, batch, checked)
            targets: dict[tuple[str, Any], _Target] = {}
            for index, (row, check) in enumerate(zip(batch, checked, strict=True)):
                if check.errors:
                    plan.append(("rejected", None, check.errors, None))
                    continue
                key = self._target_key(object_type, index, row, check.columns, current)
                target = targets.get(key)
                same_as = None
                if target is None:
                    existing = current.rows.get(key[1]) if key[0] == "id" else None
                    if existing is None and key[0] == "id":
                        plan.append(("rejected", None, (RecordError(
                            check.label, "", f"no live {singular} #{key[1]} for client "
                                             f"{self.client}"),), None))
                        continue
                    target = (_Target(key[1], index, *existing) if existing is not None
                              else _Target(None, index, {}, {}))
                    targets[key] = target
                elif target.record_id is None:
                    same_as = target.first_index
                changed = _apply(target, check.columns, check.properties)
                status: Status = ("new" if target.record_id is None and same_as is None
                                  else "updated" if changed else "unchanged")
                plan.append((status, target, (), same_as))
            if not dry_run:
                self._write(conn, table, object_type, list(targets.values()), now)
        result = BatchResult()
        for index, (status, target, errors, same_as) in enumerate(plan):
            check = checked[index]
            values = {k: v for k, v in check.columns.items() if k not in _DERIVED.values()}
            values.update({f"properties.{k}": v for k, v in check.properties.items()})
            result.outcomes.append(RowOutcome(
                index, status, target.record_id if target is not None else None, values,
                errors, same_as))
        return result

    # --- internals ----------------------------------------------------------------------------

    def _one(self, object_type: str, row: LocalRow) -> RowOutcome:
        outcome = self.apply_rows(object_type, [row]).outcomes[0]
        if outcome.errors:
            raise outcome.errors[0]
        return outcome

    def _validate(self, object_type: str, row: LocalRow, label: str) -> _Checked:
        """The row's normalised columns and properties, and every error it has."""
        allowed = WRITABLE_FIELDS[object_type]
        errors: list[RecordError] = []
        columns: dict[str, Any] = {}
        for name, value in row.fields.items():
            if name not in allowed:
                errors.append(RecordError(label, str(name), (
                    f"unknown field; {object_type} have {', '.join(allowed)} (anything else "
                    "is a property)")))
                continue
            try:
                columns[name] = _VALIDATORS[name](value)
            except _InvalidValueError as exc:
                errors.append(RecordError(label, name, str(exc)))
                continue
            if name == "email":
                columns["email_key"] = email_key(columns[name])
            elif name == "domain":
                columns["domain_key"] = domain_key(columns[name])
        reserved = set(RECORD_TABLES[object_type].c.keys())
        properties: dict[str, Any] = {}
        for name, value in (row.properties or {}).items():
            if not isinstance(name, str) or not name.strip():
                errors.append(RecordError(label, repr(name), "a property needs a name"))
                continue
            if name in reserved or name.startswith("associations:"):
                errors.append(RecordError(label, name, (
                    "a column of the store, not a property: set it as a field"
                    if name in allowed else "reserved by the store; use another name")))
                continue
            try:
                properties[name] = _property(value)
            except _InvalidValueError as exc:
                errors.append(RecordError(label, name, str(exc)))
        return _Checked(label, columns, properties, tuple(errors))

    def _current(self, conn: Connection, table: Table, object_type: str,
                 batch: list[LocalRow], checked: list[_Checked]) -> _Current:
        """The live records the batch may touch: by id, and by matching key."""
        pairs = [(row, check) for row, check in zip(batch, checked, strict=True)
                 if not check.errors]
        ids = {row.record_id for row, _ in pairs if row.record_id is not None}
        key_column = _MATCH_KEY.get(object_type)
        keys = {check.columns[key_column] for row, check in pairs if key_column
                and row.record_id is None and check.columns.get(key_column)}
        found = _Current()
        live = and_(table.c.client == self.client, table.c.deleted_at.is_(None),
                    table.c.stub.is_(False))
        writable = _columns(object_type)
        selected = [table.c.id, *(table.c[c] for c in writable), table.c.properties]
        for chunk in _chunks(sorted(ids)):
            for r in conn.execute(select(*selected).where(live, table.c.id.in_(chunk))):
                found.rows[r.id] = _snapshot(r, writable)
        if key_column is not None:
            for chunk in _chunks(sorted(keys)):
                query = (select(*selected).where(live, table.c[key_column].in_(chunk))
                         .order_by(table.c.id))
                for r in conn.execute(query):
                    key = getattr(r, key_column)
                    if key not in found.keys:  # the oldest record with the key
                        found.keys[key] = r.id
                        found.rows[r.id] = _snapshot(r, writable)
        return found

    def _target_key(self, object_type: str, index: int, row: LocalRow,
                    columns: Mapping[str, Any], current: _Current) -> tuple[str, Any]:
        if row.record_id is not None:
            return ("id", row.record_id)
        key_column = _MATCH_KEY.get(object_type)
        key = columns.get(key_column) if key_column else None
        if key is None:
            return ("new", index)  # deals, and records without email/domain, never match
        if key in current.keys:
            return ("id", current.keys[key])
        return ("key", key)

    def _write(self, conn: Connection, table: Table, object_type: str, targets: list[_Target],
               now: dt.datetime) -> None:
        writable = _columns(object_type)
        fresh = [t for t in targets if t.record_id is None]
        changed = [t for t in targets if t.record_id is not None and t.changed]
        if fresh:
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids = conn.execute(stmt, [{
                "client": self.client, **{c: t.columns.get(c) for c in writable},
                "properties": t.properties, "stub": False, "created_at": now,
                "updated_at": now,
            } for t in fresh]).scalars().all()
            for target, record_id in zip(fresh, ids, strict=True):
                target.record_id = record_id
        if changed:
            keep_merge_bases(conn, self.client, object_type,
                             [t.record_id for t in changed if t.record_id is not None])
            change = (update(table).where(table.c.id == bindparam("_id"))
                      .values({c: bindparam(c) for c in [*writable, "properties", "updated_at"]}))
            conn.execute(change, [{"_id": t.record_id, **{c: t.columns.get(c) for c in writable},
                                 "properties": t.properties, "updated_at": now}
                                for t in changed])
        # A new record is queued even with nothing set: it exists locally and not remotely.
        queued = {t.record_id: t.changed for t in [*fresh, *changed] if t.record_id is not None}
        if queued:
            self._queue(conn, object_type, queued, now)

    def _queue(self, conn: Connection, object_type: str, changes: Mapping[int, set[str]],
               now: dt.datetime, *, op: str = "upsert") -> None:
        """Insert or coalesce the queue rows of these records: op, union of names, now."""
        before: dict[int, tuple[str, list[str]]] = {}
        for chunk in _chunks(sorted(changes)):
            for r in conn.execute(select(local_changes.c.record_id, local_changes.c.op,
                                         local_changes.c.fields).where(
                    local_changes.c.client == self.client,
                    local_changes.c.object_type == object_type,
                    local_changes.c.record_id.in_(chunk))):
                before[r.record_id] = (r.op, list(r.fields or ()))
        rows = []
        for record_id, names in changes.items():
            old_op, old_fields = before.get(record_id, ("upsert", []))
            rows.append({
                "client": self.client, "object_type": object_type, "record_id": record_id,
                # A queued delete stays one: the record is a tombstone until it is restored.
                "op": "delete" if "delete" in (op, old_op) else "upsert",
                "fields": sorted(set(old_fields) | names), "queued_at": now, "attempts": 0,
            })
        stmt = dialect_insert(conn, local_changes)
        # attempts and last_error stay: a record that keeps failing shows how often it has.
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["client", "object_type", "record_id"],
            set_={"op": stmt.excluded.op, "fields": stmt.excluded.fields,
                  "queued_at": stmt.excluded.queued_at}), rows)

    def _owning(self, from_type: str, from_id: int, to_type: str, to_id: int
                ) -> tuple[str, int, str, int]:
        _table(from_type)
        _table(to_type)
        if to_type in OWNED_ASSOCIATIONS[from_type]:
            return from_type, from_id, to_type, to_id
        if from_type in OWNED_ASSOCIATIONS[to_type]:
            return to_type, to_id, from_type, from_id
        raise RecordError(f"{from_type} #{from_id}", f"associations:{to_type}", (
            "crmsync links contacts to companies, and deals to contacts and companies only"))

    def _require_live(self, conn: Connection, object_type: str, record_id: int) -> None:
        table = RECORD_TABLES[object_type]
        found = conn.scalar(select(table.c.id).where(
            table.c.id == record_id, table.c.client == self.client,
            table.c.deleted_at.is_(None), table.c.stub.is_(False)))
        if found is None:
            raise RecordError(f"{object_type} #{record_id}", "",
                              f"no live {_SINGULAR[object_type]} #{record_id} for client "
                              f"{self.client}")


def _table(object_type: str) -> Table:
    if object_type not in RECORD_TABLES:
        raise CrmsyncError(f"unknown object type '{object_type}': use one of "
                           f"{', '.join(RECORD_TABLES)}")
    return RECORD_TABLES[object_type]


def _label(row: LocalRow, object_type: str, singular: str) -> str:
    if row.label:
        return row.label
    return f"{object_type} #{row.record_id}" if row.record_id is not None else f"new {singular}"


def _columns(object_type: str) -> list[str]:
    fields = WRITABLE_FIELDS[object_type]
    return [*fields, *(derived for name, derived in _DERIVED.items() if name in fields)]


def _snapshot(row: Any, writable: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {c: getattr(row, c) for c in writable}, dict(row.properties or {})


def _apply(target: _Target, columns: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """Apply one row's values to its target, noting the names it changes; True if any."""
    before = len(target.changed)
    changed = False
    for name, value in columns.items():
        if name in _DERIVED.values():
            target.columns[name] = value
        elif target.columns.get(name) != value:
            target.columns[name] = value
            target.changed.add(name)
            changed = True
    for name, value in properties.items():
        if target.properties.get(name) != value:
            target.properties[name] = value
            target.changed.add(name)
            changed = True
    return changed or len(target.changed) > before


def _chunks(items: list[Any], size: int = 900) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
