"""The pull's side of two-way sync: a pulled record meets its queued local edit.

`resolver(rules, policy)` is what `RecordStore.commit_page` calls, inside the page's
transaction, for every pulled record with a local edit: the record's base, local and remote
values in the store's own terms (typed columns and properties by name) go through the pure
merge (`merge.merge_fields`), and the result says what the store keeps, what stays queued
for push and which conflicts to record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.adapters.records import RemoteRecord
from crmsync.store.records import ConflictRow, LocalEdit, RecordRow, Resolution, Resolver
from crmsync.sync.mapping import MappingRules, domain_key, email_key, record_row
from crmsync.sync.merge import ConflictPolicy, apply_decisions, merge_fields

if TYPE_CHECKING:
    from collections.abc import Mapping

# Columns computed from others: never merged, recomputed from the merged values.
DERIVED = frozenset({"email_key", "domain_key"})


def base_values(object_type: str, base: Mapping[str, Any] | None, rules: MappingRules
                ) -> dict[str, Any] | None:
    """A stored merge base (what the CRM said, as JSON) in the store's terms."""
    if base is None:
        return None
    import datetime as dt

    record = RemoteRecord(object_type, "", dt.datetime.min.replace(tzinfo=dt.UTC),  # type: ignore[arg-type]
                          base.get("fields") or {}, base.get("properties") or {})
    row = record_row(record, rules)
    return {**row.properties, **row.columns}


def resolve(row: RecordRow, edit: LocalEdit, *, object_type: str, rules: MappingRules,
            policy: ConflictPolicy) -> Resolution:
    """Merge one pulled record with its local edit (see the module docstring)."""
    columns = [c for c in row.columns if c not in DERIVED]
    base = base_values(object_type, edit.base, rules)
    if base is not None:
        base = {k: v for k, v in base.items() if k not in DERIVED}
    # A pulled record leaves out properties without a value (`mapping.record_row`): one the
    # base had and the pull lacks was emptied in the CRM.
    emptied = dict.fromkeys(base or ())
    remote = {**emptied, **row.properties, **{c: row.columns[c] for c in columns}}
    local = {**edit.properties, **{c: edit.columns.get(c) for c in columns}}
    value_fields = {f for f in edit.fields if not f.startswith("associations:")}
    decisions = merge_fields(base, local, remote, value_fields, policy=policy,
                             local_at=edit.queued_at, remote_at=row.remote_modified_at)
    merged = apply_decisions(local, decisions)
    values = dict(merged.values)
    new_columns = {c: values.get(c) for c in columns}
    if "email" in new_columns:
        new_columns["email_key"] = email_key(new_columns["email"])
    if "domain" in new_columns:
        new_columns["domain_key"] = domain_key(new_columns["domain"])
    properties = {k: v for k, v in values.items() if k not in row.columns}
    pending = merged.still_local | (edit.fields - value_fields)
    conflicts = tuple(ConflictRow(c.field, c.base, c.local, c.remote, c.policy, c.winner)
                      for c in merged.conflicts)
    return Resolution(new_columns, properties, frozenset(pending), conflicts)


def resolver(object_type: str, rules: MappingRules, policy: ConflictPolicy) -> Resolver:
    """`resolve` bound to one object type, client rules and conflict policy."""
    def bound(row: RecordRow, edit: LocalEdit) -> Resolution:
        return resolve(row, edit, object_type=object_type, rules=rules, policy=policy)
    return bound
