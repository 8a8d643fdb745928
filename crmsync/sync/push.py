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
email, companies by domain, creates marked in flight by name too) and the writer
upserts/looks before it creates. A writer that can use it is told where the store's pull
of each type stands (`PullAwareWriter`): Pipedrive then looks for a create's record in one
listing of what changed since, not with a search per record.

Writes go out concurrently (`PushRules.concurrency` requests in flight, all paced by the
writer's one rate limiter): a batch's calls (HubSpot's batches of 100, Pipedrive's single
records) and the next batches' run on worker threads while this thread decides the next
batch, marks its creates in flight before they are sent, and commits answers batch by batch
in queue order. Object types still go one after another, and a batch that names a record
identity still on its way waits for it (`_Line`), so the CRM and the store end as a
sequential push leaves them.

Deals name their pipeline and stage by blueprint key: the CRM's ids come from the state
`crmsync apply` recorded; won/lost is HubSpot's closed stage of the pipeline (the stage whose
`outcome` it is) or Pipedrive's status. A key the CRM has no id for is that record's error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.adapters.records import (
    Association,
    PullAwareWriter,
    PullCursor,
    RecordWrite,
    WriteResult,
)
from crmsync.errors import RemoteError, RetriableRemoteError
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
    from crmsync.adapters.records import RecordWriter, RemoteRecord
    from crmsync.store import Store
    from crmsync.store.records import RecordStore

log = logging.getLogger(__name__)

HUBSPOT_BATCH = 100  # HubSpot's batch endpoints take 100 inputs
QUEUED_PER_THREAD = 4  # write calls handed to the sender per thread, in flight or waiting

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
    # Write requests in flight at once (`CRMSYNC_SYNC_CONCURRENCY`), all paced by the
    # writer's one rate limiter for the account; 1: one after another, in this thread.
    concurrency: int = 1


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
    writer = _after_pull(writer, records, rules.crm, object_types, seeding=seed)
    with _Sender(rules.concurrency) as sender:
        for object_type in object_types:
            counts = result.counts[object_type] = PushCounts()
            line = _Line(records, writer, rules, object_type, counts, result, sender,
                         on_answered=on_answered, dry_run=dry_run)
            sources = []
            if queue:
                sources.append(records.queued(rules.crm, object_type, batch=rules.batch_size))
            if seed:
                sources.append(records.unlinked(rules.crm, object_type, batch=rules.batch_size))
            for source in sources:
                for batch in source:
                    if line.halted is not None:
                        break
                    line.add(batch)
            # Every batch of a type is committed before the next type is decided: its
            # records' associations point at these.
            line.drain()
    return result


def _after_pull(writer: RecordWriter, records: RecordStore, crm: str,
                object_types: Sequence[ObjectType], *, seeding: bool) -> RecordWriter:
    """The writer for this push, told how far the store's pull of each type reaches (a
    Pipedrive create then looks only at what changed in the CRM since, not a search each)."""
    if not isinstance(writer, PullAwareWriter):
        return writer
    pulled: dict[ObjectType, PullCursor | None] = {}
    for object_type in object_types:
        stored = records.cursor(crm, object_type)
        pulled[object_type] = PullCursor.from_json(stored.cursor) if stored else None
    return writer.after_pull(pulled, seeding=seeding)


# --- concurrent writes ------------------------------------------------------------------------

class _Sender:
    """Runs write calls on `concurrency` threads (all through the writer's one shared rate
    limiter), or in the caller's own thread when it is 1."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._pool = (ThreadPoolExecutor(max_workers=self.concurrency,
                                         thread_name_prefix="crmsync-push")
                      if self.concurrency > 1 else None)

    def submit(self, call: Callable[[], _Sent]) -> Future[_Sent]:
        if self._pool is not None:
            return self._pool.submit(call)
        future: Future[_Sent] = Future()
        try:
            future.set_result(call())
        except Exception as exc:  # noqa: BLE001 -- handed to the caller through the future
            future.set_exception(exc)
        return future

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._pool is not None:
            # Leaving on an error: calls not started yet are never sent.
            self._pool.shutdown(wait=True, cancel_futures=kind is not None)


@dataclass(frozen=True)
class _Sent:
    """One write call's answer, and the records read back for it."""

    answered: Sequence[WriteResult]
    read_back: Mapping[str, RemoteRecord]
    reads: int  # calls spent reading back


@dataclass
class _Call:
    """Writes that go to the CRM in one `write` call (one request, or a chain of requests
    that must keep their order); `future` None: not sent."""

    writes: list[RecordWrite]
    future: Future[_Sent] | None = None


@dataclass
class _Pending:
    """A batch whose calls are on their way; `sealed` once every call was handed over."""

    batch: _Batch
    calls: list[_Call]
    keys: frozenset[tuple[str, str]]
    sealed: bool = False


@dataclass
class _Line:
    """One object type's batches on their way: each decided and its creates marked in flight
    in this thread, its write calls sent concurrently, its answers committed in this thread
    in batch order (so the store is written by one thread and ends as a sequential push
    leaves it).

    A batch that names a record identity (email, domain, name, remote id) that a batch still
    on its way names too waits for that one's commit before it is decided, as it would
    sequentially: `one_contact_per_email` then sees the link, the CRM's look-before-create
    finds what the other made. Within a batch, writes sharing an identity go in one call,
    in order. The first call of a type goes alone (it fills the writer's caches: field
    definitions, pipelines), the rest at up to `concurrency` at once.
    """

    records: RecordStore
    writer: RecordWriter
    rules: PushRules
    object_type: ObjectType
    counts: PushCounts
    result: PushResult
    sender: _Sender
    on_answered: OnAnswered | None = None
    dry_run: bool = False
    pending: deque[_Pending] = field(default_factory=deque)
    halted: BaseException | None = None  # the error that stopped sending
    _failed: BaseException | None = None  # the error drain() raises
    _warm: bool = False

    @property
    def per_call(self) -> int:
        # Records one write request takes (HubSpot's batches 100, Pipedrive 1): a writer
        # that does not say gets the whole batch in one call.
        return max(1, int(getattr(self.writer, "records_per_request", 0) or
                          self.rules.batch_size))

    def add(self, changes: Sequence[QueuedChange]) -> None:
        keys = frozenset(k for change in changes for k in _identities(self.object_type, change))
        while any(keys & p.keys for p in self.pending):
            self.settle(self.pending[0])
        batch = _Batch(self.records, self.writer, self.rules, self.object_type, self.counts,
                       self.result, on_answered=self.on_answered, dry_run=self.dry_run)
        batch.decide(changes)
        if self.dry_run or not batch.writes:
            batch.finish([], {})
            return
        creates = [int(w.key) for w in batch.writes if w.op == "create"]
        if creates:
            self.records.mark_in_flight(self.object_type, creates)
        pending = _Pending(batch, [_Call(c) for c in _calls(
            batch.writes, self.per_call, lambda w: _identities(
                self.object_type, batch.by_id[int(w.key)]))], keys)
        self.pending.append(pending)
        for call in pending.calls:
            self.send(call)
        pending.sealed = True
        self.collect()

    def send(self, call: _Call) -> None:
        # Calls queued beyond those in flight keep every thread busy while this one decides
        # and commits a batch (a commit of 100 records takes about as long as 8 calls of
        # one record); more would only hold answers longer.
        while self.outstanding() >= QUEUED_PER_THREAD * self.sender.concurrency:
            wait(self.futures(), return_when=FIRST_COMPLETED)
            self.collect()
        if self.halted is not None:
            return
        writer, object_type = self.writer, self.object_type

        def write() -> _Sent:
            answered = writer.write(object_type, call.writes)
            return _Sent(answered, *_read_back(writer, object_type, call.writes, answered))

        call.future = self.sender.submit(write)
        if not self._warm:
            wait([call.future])
            self._warm = True

    def futures(self) -> list[Future[_Sent]]:
        return [c.future for p in self.pending for c in p.calls
                if c.future is not None and not c.future.done()]

    def outstanding(self) -> int:
        return len(self.futures())

    def collect(self) -> None:
        """Commit the batches at the head whose calls have all been answered."""
        for pending in self.pending:
            for call in pending.calls:
                if call.future is not None and call.future.done() and self.halted is None:
                    self.halted = call.future.exception()
        while self.pending and self.pending[0].sealed and all(
                c.future is None or c.future.done() for c in self.pending[0].calls):
            self.finish(self.pending.popleft())

    def settle(self, pending: _Pending) -> None:
        """Wait for `pending`'s calls and commit every batch up to it."""
        wait([c.future for c in pending.calls if c.future is not None])
        while pending in self.pending:
            head = self.pending[0]
            wait([c.future for c in head.calls if c.future is not None])
            self.collect()

    def drain(self) -> None:
        """Wait for every call, commit every batch; raise the error that stopped the line."""
        while self.pending:
            self.settle(self.pending[-1])
        failed = self._failed or self.halted
        if failed is not None:
            raise failed

    def finish(self, pending: _Pending) -> None:
        answered: list[WriteResult] = []
        read_back: dict[str, RemoteRecord] = {}
        errors: list[BaseException] = []
        for call in pending.calls:
            error = call.future.exception() if call.future is not None else self.halted
            if error is None and call.future is not None:
                sent = call.future.result()
                answered.extend(sent.answered)
                read_back.update(sent.read_back)
                self.counts.calls += sent.reads
                continue
            if error is not None and call.future is not None:
                errors.append(error)
                self.halted = self.halted or error
            reason = error.message if isinstance(error, RemoteError) else "stopped"
            answered.extend(WriteResult(w.key, ok=False, remote_id=w.remote_id,
                                        error=f"not sent: {reason}") for w in call.writes)
        fatal = next((e for e in errors if not isinstance(e, RetriableRemoteError)), None)
        if fatal is not None or (errors and not any(r.ok for r in answered)):
            # As a sequential push: a call that failed whole (nothing of the batch written,
            # or a refused token) is the run's error; the batch's queue rows stay as they
            # are, its creates marked in flight.
            self._failed = self._failed or fatal or errors[0]
            return
        pending.batch.finish(answered, read_back)


def _identities(object_type: str, change: QueuedChange) -> set[tuple[str, str]]:
    """What identifies the record a change writes, in the CRM: its remote id, and for one
    that may be created what the CRM matches a create on (contacts by email, companies by
    domain, Pipedrive organizations by name)."""
    keys = {("id", change.remote_id)} if change.remote_id else set()
    if change.remote_id is None:
        row = change.row
        if object_type == "contacts" and email_key(row.get("email")):
            keys.add(("email", str(email_key(row.get("email")))))
        if object_type == "companies":
            domain = str(row.get("domain") or "").strip().lower().removeprefix("www.")
            name = str(row.get("name") or "").strip().lower()
            keys |= {k for k in (("domain", domain), ("name", name)) if k[1]}
    return keys


def _calls(writes: Sequence[RecordWrite], per_call: int,
           identities: Callable[[RecordWrite], set[tuple[str, str]]]
           ) -> list[list[RecordWrite]]:
    """`writes` in calls of up to `per_call`, in order; writes that share an identity stay
    in one call (a call of their own size if need be), so they reach the CRM in order."""
    group_of: dict[tuple[str, str], int] = {}
    groups: list[list[RecordWrite]] = []
    for write in writes:
        found = sorted({group_of[k] for k in identities(write) if k in group_of})
        if not found:
            groups.append([])
            found = [len(groups) - 1]
        home = found[0]
        for other in found[1:]:  # a write joining two groups: one group, in order
            groups[home].extend(groups[other])
            groups[other] = []
            group_of.update({k: home for k, g in group_of.items() if g == other})
        groups[home].append(write)
        group_of.update(dict.fromkeys(identities(write), home))
    order = {id(w): n for n, w in enumerate(writes)}
    calls: list[list[RecordWrite]] = []
    for group in (sorted(g, key=lambda w: order[id(w)]) for g in groups if g):
        if calls and len(calls[-1]) + len(group) <= per_call:
            calls[-1].extend(group)
        else:
            calls.append(group)
    return calls


def _read_back(writer: RecordWriter, object_type: ObjectType, writes: Sequence[RecordWrite],
               answered: Sequence[WriteResult]) -> tuple[dict[str, RemoteRecord], int]:
    """The records of landed writes whose answer lacked them (one batch read)."""
    results = {r.key: r for r in answered}
    unread = [results[w.key].remote_id for w in writes
              if w.key in results and results[w.key].ok and w.op != "archive"
              and results[w.key].record is None and results[w.key].remote_id]
    if not unread:
        return {}, 0
    return {r.id: r for r in writer.read(object_type, [i for i in unread if i])}, 1


@dataclass
class _Batch:
    """One batch of one object type: decide, then record the answers."""

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
    by_id: dict[int, QueuedChange] = field(default_factory=dict)

    def decide(self, batch: Sequence[QueuedChange]) -> None:
        """The batch's writes, and the answers that need no call (kept, discarded, refused)."""
        self.by_id = {change.record_id: change for change in batch}
        owned = self.records.owned_associations(self.object_type, list(self.by_id))
        targets = _target_ids(self.records, self.rules.crm, owned)
        decisions = [(change, _decide(self.object_type, change, self.rules))
                     for change in batch]
        if self.object_type == "contacts":
            decisions = self.one_contact_per_email(decisions)
        for change, decision in decisions:
            self.dispatch(change, decision, owned.get(change.record_id, []), targets)

    def finish(self, answered: Sequence[WriteResult],
               read_back: Mapping[str, RemoteRecord]) -> None:
        """Count, report and commit the batch, from every write's result."""
        if self.dry_run:
            for write in self.writes:
                name = {"create": "created", "update": "updated", "archive": "archived"}
                setattr(self.counts, name[write.op], getattr(self.counts, name[write.op]) + 1)
            self.counts.failed += sum(1 for a in self.answers if not a.ok)
            return
        if self.writes:
            self.counts.calls += -(-len(self.writes) // self.rules.batch_size)
            if self.on_answered is not None:
                self.on_answered(self.object_type, answered)
            self.answers.extend(_answers(self.rules, self.object_type, self.writes, answered,
                                         read_back, by_id=self.by_id, counts=self.counts))
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


def _answers(rules: PushRules, object_type: ObjectType, writes: Sequence[RecordWrite],
             answered: Sequence[WriteResult], read_back: Mapping[str, RemoteRecord], *,
             by_id: Mapping[int, QueuedChange], counts: PushCounts) -> list[PushedRecord]:
    """The store's record of each write's result (bases from the answer, else from the
    records read back)."""
    results = {r.key: r for r in answered}
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
