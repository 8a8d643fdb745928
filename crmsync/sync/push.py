"""The push side of two-way sync: queued local changes out to one CRM, in batches.

For each object type (companies, contacts, deals: associations point at records pushed
before them), batch by batch from the queue (`local_changes`):

    decisions ← merge.plan_push(each queued change)     # pure
    results   ← writer.write(type, the writes)            # HubSpot batches of 100, 207s
    bases     ← result.record, else writer.read(ids)      # what the CRM now holds
    store.commit_push(type, answers)                      # one transaction

so a landed write moves its link's base and leaves the queue in the same transaction; a
failed one keeps its queue row (attempts + 1, last error) and a `sync_failures` row, is
retried next run and makes the run `partial` (exit 3). A run killed between the CRM's answer
and the commit re-pushes on the next run: updates are idempotent, and creates are not
repeated because the pull before the push links the record the CRM now has (contacts by
email, companies by domain) and the writer upserts/looks before it creates.

Deals name their pipeline and stage by blueprint key: the CRM's ids come from the state
`crmsync apply` recorded; won/lost is HubSpot's closed stage of the pipeline (the stage whose
`outcome` it is) or Pipedrive's status. A key the CRM has no id for is that record's error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.adapters.records import Association, RecordWrite
from crmsync.keys import email_key
from crmsync.names import OBJECT_TYPES, ObjectType
from crmsync.store.records import PushedRecord, QueuedChange
from crmsync.sync.mapping import MappingRules, consent_value, record_row
from crmsync.sync.merge import (
    ArchiveRemote,
    CreateRemote,
    DeletePolicy,
    Discard,
    HoldBack,
    KeepRemote,
    PushDecision,
    UpdateRemote,
    assert_never,
    plan_push,
)

if TYPE_CHECKING:
    from crmsync.adapters.records import RecordWriter, WriteResult
    from crmsync.store import Store
    from crmsync.store.records import RecordStore

log = logging.getLogger(__name__)

HUBSPOT_BATCH = 100  # HubSpot's batch endpoints take 100 inputs

# Store columns → the canonical fields a write carries, per object type. Columns not named
# here are derived (email_key, domain_key) or read-only in the CRM (created / closed times).
WRITABLE: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "first_name", "last_name", "phone", "owner_id"),
    "companies": ("name", "domain", "owner_id"),
    "deals": ("name", "amount", "currency", "close_date", "owner_id"),
}
DEAL_PLACEMENT = frozenset({"pipeline_key", "stage_key", "status"})
_NAME = frozenset({"first_name", "last_name"})
ROW_COLUMNS = frozenset({"id", "client", "properties", "stub", "created_at", "updated_at",
                         "deleted_at", "deleted_reason", "merged_into", "email_key",
                         "domain_key", "consent", "pipeline_key", "stage_key",
                         "remote_pipeline_id", "remote_stage_id", "status", "closed_at",
                         "stage_changed_at", "remote_created_at", "amount", "name", "email",
                         "first_name", "last_name", "phone", "owner_id", "domain", "currency",
                         "close_date"})


class PushRecordError(Exception):
    """One record cannot be written as it stands (its error, not the run's)."""


@dataclass(frozen=True)
class PushRules:
    """What push needs to know about one client and the CRM it writes to."""

    crm: str
    mapping: MappingRules = field(default_factory=MappingRules)
    delete_policy: DeletePolicy = "keep_remote"
    pipelines: Mapping[str, str] = field(default_factory=dict)  # pipeline key → remote id
    stages: Mapping[tuple[str, str], str] = field(default_factory=dict)  # keys → stage id
    # (pipeline key, "won" | "lost") → the key of the stage with that outcome (HubSpot)
    outcome_stages: Mapping[tuple[str, str], str] = field(default_factory=dict)
    batch_size: int = HUBSPOT_BATCH
    # Seeding another CRM (`--to`): the property names it defines, per object type. A record's
    # other properties came from the CRM it was pulled from (Pipedrive's `add_time`, …) and
    # would be refused as unknown, so they stay behind. None: send every property.
    target_properties: Mapping[str, frozenset[str]] | None = None


@dataclass
class PushCounts:
    """What a push did to one object type."""

    created: int = 0
    updated: int = 0
    archived: int = 0
    kept_remote: int = 0  # local deletes not propagated (delete_policy keep_remote)
    held_back: int = 0  # contacts without email or consent
    failed: int = 0
    calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class PushResult:
    """One client's push to one CRM."""

    crm: str
    counts: dict[str, PushCounts] = field(default_factory=dict)
    held_back: list[dict[str, Any]] = field(default_factory=list)  # record id, email, reason
    kept_remote: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # type, record id, error

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        names = list(PushCounts().as_dict())
        return {"crm": self.crm, "totals": {n: self.total(n) for n in names},
                "by_type": {t: c.as_dict() for t, c in self.counts.items()},
                "held_back": self.held_back, "kept_remote": self.kept_remote,
                "failures": self.failures}


# Called after the CRM answered a batch and before the store commits it: the kill point of
# the crash-safety tests.
OnAnswered = Callable[[str, Sequence["WriteResult"]], None]


def push_client(
    client: str,
    writer: RecordWriter,
    store: Store,
    rules: PushRules,
    *,
    queue: bool = True,
    seed: bool = False,
    object_types: Sequence[ObjectType] = OBJECT_TYPES,
    on_answered: OnAnswered | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Push one client's queued local changes to `rules.crm` (see the module docstring).

    `seed` (`crmsync sync --to`) also creates there every live record it has no link for,
    leaving the queue to the client's own CRM (`queue=False`). Raises `RemoteError` only when
    a whole call fails; per-record failures are in the result and the store. `dry_run`
    decides and counts (created / updated / archived: what would be) and writes nothing.
    """
    result = PushResult(rules.crm)
    records = store.records(client)
    for object_type in object_types:
        counts = result.counts[object_type] = PushCounts()
        batches = []
        if queue:
            batches.append(records.queued(rules.crm, object_type, batch=rules.batch_size))
        if seed:
            batches.append(records.unlinked(rules.crm, object_type, batch=rules.batch_size))
        for source in batches:
            for batch in source:
                _Batch(records, writer, rules, object_type, counts, result,
                       on_answered=on_answered, dry_run=dry_run).run(batch)
    return result


@dataclass
class _Batch:
    """One batch of one object type: decide, write, record the answers."""

    records: RecordStore
    writer: RecordWriter
    rules: PushRules
    object_type: ObjectType
    counts: PushCounts
    result: PushResult
    on_answered: OnAnswered | None = None
    dry_run: bool = False
    writes: list[RecordWrite] = field(default_factory=list)
    answers: list[PushedRecord] = field(default_factory=list)

    def run(self, batch: Sequence[QueuedChange]) -> None:
        by_id = {change.record_id: change for change in batch}
        owned = self.records.owned_associations(self.object_type, list(by_id))
        targets = _target_ids(self.records, self.rules.crm, owned)
        decisions = [(change, _decide(self.object_type, change, self.rules))
                     for change in batch]
        if self.object_type == "contacts":
            decisions = self.one_contact_per_email(decisions)
        for change, decision in decisions:
            self.dispatch(change, decision, owned.get(change.record_id, []), targets)
        if self.dry_run:
            for write in self.writes:
                name = {"create": "created", "update": "updated", "archive": "archived"}
                setattr(self.counts, name[write.op], getattr(self.counts, name[write.op]) + 1)
            self.counts.failed += sum(1 for a in self.answers if not a.ok)
            return
        if self.writes:
            creates = [int(w.key) for w in self.writes if w.op == "create"]
            if creates:
                self.records.mark_in_flight(self.object_type, creates)
            answered = self.writer.write(self.object_type, self.writes)
            self.counts.calls += -(-len(self.writes) // self.rules.batch_size)
            if self.on_answered is not None:
                self.on_answered(self.object_type, answered)
            self.answers.extend(_answers(self.writer, self.rules, self.object_type,
                                         self.writes, answered, by_id=by_id,
                                         counts=self.counts))
        for answer in self.answers:
            if not answer.ok:
                self.counts.failed += 1
                self.result.failures.append({"object_type": self.object_type,
                                             "record_id": answer.record_id,
                                             "error": answer.error})
        if self.answers:
            self.records.commit_push(self.rules.crm, self.object_type, self.answers)

    def one_contact_per_email(self, decisions: list[tuple[QueuedChange, PushDecision]]
                              ) -> list[tuple[QueuedChange, PushDecision]]:
        """Creates of contacts whose email the CRM already has from another store record
        (duplicates pulled from Pipedrive, which allows them) are held back: HubSpot's upsert
        by email and Pipedrive's look-before-create would make both one contact, and the
        store cannot link two records to it."""
        creates = {c.record_id: email_key(c.row.get("email")) for c, d in decisions
                   if isinstance(d, CreateRemote)}
        taken = self.records.contacts_linked_by_email(
            self.rules.crm, [k for k in creates.values() if k])
        out: list[tuple[QueuedChange, PushDecision]] = []
        for change, decision in decisions:
            key = creates.get(change.record_id)
            if key and key in taken and taken[key] != change.record_id:
                out.append((change, HoldBack(change.record_id, f"same email as contact "
                                             f"{taken[key]}: one contact in {self.rules.crm}")))
                continue
            if key:
                taken[key] = change.record_id
            out.append((change, decision))
        return out

    def dispatch(self, change: QueuedChange, decision: PushDecision,
                 links: Sequence[tuple[str, int, bool]],
                 targets: Mapping[str, Mapping[int, str]]) -> None:
        object_type, rules = self.object_type, self.rules
        match decision:
            case CreateRemote():
                self.build(change, lambda: _create(object_type, change, rules, links, targets))
            case UpdateRemote():
                self.build(change, lambda: _update(object_type, change, decision, rules,
                                                   links=links, targets=targets))
            case ArchiveRemote(remote_id=remote_id):
                self.writes.append(RecordWrite(object_type, "archive", str(change.record_id),
                                               remote_id=remote_id))
            case KeepRemote(remote_id=remote_id):
                self.counts.kept_remote += 1
                self.result.kept_remote.append({"object_type": object_type,
                                                "record_id": change.record_id,
                                                "remote_id": remote_id})
                self.answers.append(PushedRecord(change.record_id, change.queued_at, ok=True))
            case HoldBack(reason=reason):
                # Stays queued (a later edit may add the email or the consent).
                self.counts.held_back += 1
                self.result.held_back.append({"object_type": object_type,
                                              "record_id": change.record_id,
                                              "email": change.row.get("email"),
                                              "reason": reason})
            case Discard():
                self.answers.append(PushedRecord(change.record_id, change.queued_at, ok=True))
            case _:
                assert_never(decision)

    def build(self, change: QueuedChange, make: Callable[[], RecordWrite]) -> None:
        try:
            self.writes.append(make())
        except PushRecordError as exc:
            self.answers.append(PushedRecord(change.record_id, change.queued_at, ok=False,
                                             error=str(exc),
                                             dequeue=change.queued_at is not None))


def _decide(object_type: str, change: QueuedChange, rules: PushRules) -> PushDecision:
    row = change.row
    deleted = change.op == "delete" or row.get("deleted_at") is not None
    return plan_push(record_id=change.record_id, object_type=object_type,
                     op="delete" if deleted else change.op, remote_id=change.remote_id,
                     fields=change.fields, delete_policy=rules.delete_policy,
                     email=row.get("email"), consent=row.get("consent"),
                     migrating=change.queued_at is None)


def _answers(writer: RecordWriter, rules: PushRules, object_type: ObjectType,
             writes: Sequence[RecordWrite], answered: Sequence[WriteResult], *,
             by_id: Mapping[int, QueuedChange], counts: PushCounts) -> list[PushedRecord]:
    """The store's record of each write's result; bases read back where the answer lacked
    the record (one batch read)."""
    results = {r.key: r for r in answered}
    unread = [results[w.key].remote_id for w in writes
              if w.key in results and results[w.key].ok and w.op != "archive"
              and results[w.key].record is None and results[w.key].remote_id]
    read_back = {}
    if unread:
        read_back = {r.id: r for r in writer.read(object_type, [i for i in unread if i])}
        counts.calls += 1
    answers: list[PushedRecord] = []
    for write in writes:
        change = by_id[int(write.key)]
        dequeue = change.queued_at is not None
        res = results.get(write.key)
        if res is None:
            answers.append(PushedRecord(change.record_id, change.queued_at, ok=False,
                                        error="the CRM gave no result for this record",
                                        dequeue=dequeue))
            continue
        if not res.ok:
            answers.append(PushedRecord(change.record_id, change.queued_at, ok=False,
                                        error=res.error or "rejected by the CRM",
                                        dequeue=dequeue))
            continue
        if write.op == "archive":
            counts.archived += 1
            answers.append(PushedRecord(change.record_id, change.queued_at, ok=True,
                                        remote_id=write.remote_id, archived=True,
                                        dequeue=dequeue))
            continue
        remote = res.record or read_back.get(res.remote_id or "")
        row = record_row(remote, rules.mapping) if remote is not None else None
        if write.op == "create":
            counts.created += 1
        else:
            counts.updated += 1
        answers.append(PushedRecord(
            change.record_id, change.queued_at, ok=True,
            remote_id=res.remote_id or write.remote_id,
            remote_modified_at=res.modified_at or (remote.modified_at if remote else None),
            base=row.base if row is not None else None, dequeue=dequeue,
            associations=(row.associations if row is not None
                          and write.associations is not None else None)))
    return answers


# --- building writes --------------------------------------------------------------------------

def _target_ids(records: RecordStore, crm: str,
                owned: Mapping[int, list[tuple[str, int, bool]]]
                ) -> dict[str, dict[int, str]]:
    wanted: dict[str, set[int]] = {}
    for links in owned.values():
        for to_type, to_id, _primary in links:
            wanted.setdefault(to_type, set()).add(to_id)
    return {t: records.remote_ids_for(crm, t, sorted(ids)) for t, ids in wanted.items()}


def _associations(links: Sequence[tuple[str, int, bool]],
                  targets: Mapping[str, Mapping[int, str]]) -> tuple[Association, ...]:
    # A target the CRM does not have (held back, failed) is left out; it follows once pushed.
    return tuple(Association(to_type, targets[to_type][to_id], primary)  # type: ignore[arg-type]
                 for to_type, to_id, primary in links
                 if to_id in targets.get(to_type, {}))


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _create(object_type: ObjectType, change: QueuedChange, rules: PushRules,
            links: Sequence[tuple[str, int, bool]],
            targets: Mapping[str, Mapping[int, str]]) -> RecordWrite:
    row = change.row
    fields = {c: _value(row.get(c)) for c in WRITABLE[object_type] if row.get(c) is not None}
    if change.queued_at is None:
        # Seeding another CRM (`--to`): owner ids belong to the CRM they came from.
        fields.pop("owner_id", None)
    properties = {k: v for k, v in (row.get("properties") or {}).items() if v is not None}
    if change.queued_at is None and rules.target_properties is not None:
        known = rules.target_properties.get(object_type, frozenset())
        properties = {k: v for k, v in properties.items() if k in known}
    if object_type == "contacts":
        properties.update(_consent(row, rules, foreign=change.queued_at is None))
    if object_type == "deals":
        fields.update(_placement(row, rules))
    # No links: None, not (): a create that meets a record the CRM already has (HubSpot's
    # upsert by email, Pipedrive's look-before-create) leaves that record's associations as
    # they are, and HubSpot is spared reading them (a call per batch).
    associations = _associations(links, targets) or None
    return RecordWrite(object_type, "create", str(change.record_id), fields=fields,
                       properties=properties, associations=associations)


def _update(object_type: ObjectType, change: QueuedChange, decision: UpdateRemote,
            rules: PushRules, *, links: Sequence[tuple[str, int, bool]],
            targets: Mapping[str, Mapping[int, str]]) -> RecordWrite:
    row = change.row
    named = decision.fields
    if object_type == "contacts" and named & _NAME:
        # Both halves of the name: Pipedrive writes a person's `name` whole, and would read
        # the person first to learn the other half (a second call per record).
        named = named | _NAME
    fields = {c: _value(row.get(c)) for c in WRITABLE[object_type] if c in named}
    props = row.get("properties") or {}
    properties = {n: props.get(n) for n in named
                  if n not in ROW_COLUMNS and not n.startswith("associations:")}
    if object_type == "contacts" and "consent" in named:
        properties.update(_consent(row, rules))
    if object_type == "deals" and named & DEAL_PLACEMENT:
        fields.update(_placement(row, rules))
    associations = (_associations(links, targets)
                    if any(n.startswith("associations:") for n in named) else None)
    return RecordWrite(object_type, "update", str(change.record_id), remote_id=decision.remote_id,
                       fields=fields, properties=properties, associations=associations)


def _consent(row: Mapping[str, Any], rules: PushRules, *, foreign: bool = False
             ) -> dict[str, Any]:
    """The declared consent field as the store holds it (withdrawn consent is written, never
    turned into a delete). `foreign`: the property's value came from another CRM (`--to`),
    whose vocabulary ("Yes", an option id) this one may not share: true/false instead."""
    name = rules.mapping.consent_field
    consent = row.get("consent")
    if name is None or consent is None:
        return {}
    current = (row.get("properties") or {}).get(name)
    if not foreign and current is not None and consent_value(current) == consent:
        return {name: current}
    return {name: "true" if consent else "false"}


def _placement(row: Mapping[str, Any], rules: PushRules) -> dict[str, Any]:
    """A deal's pipeline, stage and status in the CRM's ids, from blueprint keys."""
    pipeline_key, stage_key, status = row.get("pipeline_key"), row.get("stage_key"), \
        row.get("status") or "open"
    if pipeline_key is None:
        raise PushRecordError(
            f"deal {row.get('name')!r} names no pipeline: set its pipeline_key and stage_key "
            "to keys of the blueprint")
    pipeline_id = rules.pipelines.get(pipeline_key)
    if pipeline_id is None:
        raise PushRecordError(
            f"pipeline '{pipeline_key}' has no id in {rules.crm}: run `crmsync apply` first")
    placement: dict[str, Any] = {"pipeline_id": pipeline_id, "status": status}
    if rules.crm == "hubspot" and status in ("won", "lost"):
        # HubSpot has no deal status: won and lost are the pipeline's closed stages.
        outcome_key = rules.outcome_stages.get((pipeline_key, status))
        if outcome_key is None:
            raise PushRecordError(
                f"pipeline '{pipeline_key}' has no {status} stage in the blueprint")
        stage_key = outcome_key
    if stage_key is None:
        raise PushRecordError(f"deal {row.get('name')!r} names no stage of '{pipeline_key}'")
    stage_id = rules.stages.get((pipeline_key, stage_key))
    if stage_id is None:
        raise PushRecordError(
            f"stage '{pipeline_key}/{stage_key}' has no id in {rules.crm}: run `crmsync "
            "apply` first")
    placement["stage_id"] = stage_id
    return placement
