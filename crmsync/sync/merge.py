"""The three-way merge of two-way sync: pure functions from (base, local, remote) to decisions.

Per field, against the merge base (what the store and the CRM last agreed on):

- only the CRM changed it → `TakeRemote`;
- only the store changed it (it is named in the record's `local_changes.fields`) → `PushLocal`;
- both changed it to different values → `Conflict`, resolved by the client's
  `conflict_policy` (`remote_wins`, `local_wins`, or `newest_wins`: the local edit time —
  when the change was queued — against the CRM's modification time; a tie goes to the CRM);
- both changed it to the same value → `TakeRemote` (agreed: nothing to push).

Per record, what push does with a queued local change (`plan_push`): `CreateRemote`,
`UpdateRemote`, `ArchiveRemote` (a local delete where `delete_policy: propagate`),
`KeepRemote` (a local delete kept remote, the default: a note in the summary), `HoldBack`
(a new contact without email or marketing consent: never pushed, counted), `Discard`
(nothing remote to do). Remote removals stay `Tombstone`s, as the pull writes them.

Decisions are frozen data; every consumer dispatches over them with `match` ending in
`assert_never`, so a decision nobody handles is a mypy error and a failing test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Never, NoReturn

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection, Mapping

ConflictPolicy = Literal["remote_wins", "local_wins", "newest_wins"]
DeletePolicy = Literal["keep_remote", "propagate"]
Side = Literal["local", "remote"]


# --- per field --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TakeRemote:
    """The CRM's value goes into the store (changed there only, or agreed)."""

    field: str
    value: Any


@dataclass(frozen=True)
class PushLocal:
    """The store's value goes to the CRM (changed locally only)."""

    field: str
    value: Any


@dataclass(frozen=True)
class Conflict:
    """Changed on both sides to different values; `winner` is the policy's choice."""

    field: str
    base: Any
    local: Any
    remote: Any
    policy: ConflictPolicy
    winner: Side

    @property
    def value(self) -> Any:
        return self.local if self.winner == "local" else self.remote


FieldDecision = TakeRemote | PushLocal | Conflict


def winner(policy: ConflictPolicy, local_at: dt.datetime | None,
           remote_at: dt.datetime | None) -> Side:
    """Which side a conflict goes to under `policy`."""
    if policy == "local_wins":
        return "local"
    if policy == "remote_wins":
        return "remote"
    if local_at is None or remote_at is None:
        return "remote"  # an unknown time cannot be newer; the CRM stays the reference
    return "local" if local_at > remote_at else "remote"


def merge_fields(
    base: Mapping[str, Any] | None,
    local: Mapping[str, Any],
    remote: Mapping[str, Any],
    changed_locally: Collection[str],
    *,
    policy: ConflictPolicy,
    local_at: dt.datetime | None = None,
    remote_at: dt.datetime | None = None,
) -> tuple[FieldDecision, ...]:
    """One decision per field that changed on either side, sorted by field name.

    `base` None means the two sides never agreed (a record created on both sides): every
    field where they differ counts as changed on both. Fields absent from a mapping are None.
    """
    names = set(changed_locally) | set(remote) | set(base or {})
    decisions: list[FieldDecision] = []
    for name in sorted(names):
        remote_value = remote.get(name)
        local_value = local.get(name)
        if base is None:
            remote_changed = name in remote
            local_changed = name in changed_locally
        else:
            remote_changed = name in remote and base.get(name) != remote_value
            local_changed = name in changed_locally and base.get(name) != local_value
        if local_changed and remote_changed:
            if local_value == remote_value or (base is None and local_value is None):
                decisions.append(TakeRemote(name, remote_value))
            elif base is None and remote_value is None:
                decisions.append(PushLocal(name, local_value))
            else:
                decisions.append(Conflict(
                    name, None if base is None else base.get(name), local_value,
                    remote_value, policy, winner(policy, local_at, remote_at)))
        elif local_changed:
            decisions.append(PushLocal(name, local_value))
        elif remote_changed:
            decisions.append(TakeRemote(name, remote_value))
    return tuple(decisions)


@dataclass(frozen=True)
class MergedRecord:
    """A pulled record merged with its local edits: what the store keeps, what stays queued."""

    values: Mapping[str, Any]  # the store's values after the merge (every field named)
    still_local: frozenset[str]  # fields the CRM must still be told (stay queued)
    conflicts: tuple[Conflict, ...]


def apply_decisions(local: Mapping[str, Any], decisions: tuple[FieldDecision, ...]
                    ) -> MergedRecord:
    """The store's side of a merge: remote values applied, local ones kept for push."""
    values = dict(local)
    pending: set[str] = set()
    conflicts: list[Conflict] = []
    for decision in decisions:
        match decision:
            case TakeRemote(field=name, value=value):
                values[name] = value
            case PushLocal(field=name):
                pending.add(name)
            case Conflict():
                conflicts.append(decision)
                if decision.winner == "local":
                    pending.add(decision.field)
                else:
                    values[decision.field] = decision.remote
            case _:
                assert_never(decision)
    return MergedRecord(values, frozenset(pending), tuple(conflicts))


# --- per record: what push does ---------------------------------------------------------------

@dataclass(frozen=True)
class CreateRemote:
    """A local record the CRM does not have yet."""

    record_id: int


@dataclass(frozen=True)
class UpdateRemote:
    """A linked record changed locally: the named fields go out."""

    record_id: int
    remote_id: str
    fields: frozenset[str]


@dataclass(frozen=True)
class ArchiveRemote:
    """A local delete, propagated (`delete_policy: propagate`)."""

    record_id: int
    remote_id: str


@dataclass(frozen=True)
class KeepRemote:
    """A local delete not propagated (`delete_policy: keep_remote`): a note, no call."""

    record_id: int
    remote_id: str


@dataclass(frozen=True)
class HoldBack:
    """A new contact without an email or marketing consent: the method keeps it out."""

    record_id: int
    reason: str


@dataclass(frozen=True)
class Discard:
    """Nothing for the CRM to do (a local delete of a record it never had)."""

    record_id: int


@dataclass(frozen=True)
class Tombstone:
    """The CRM removed the record: the store tombstones it (written by the pull)."""

    record_id: int
    reason: str


PushDecision = CreateRemote | UpdateRemote | ArchiveRemote | KeepRemote | HoldBack | Discard
RecordDecision = PushDecision | Tombstone


def gdpr_reason(email: str | None, consent: bool | None) -> str | None:
    """Why a new contact may not enter the CRM, or None when it may (DESIGN.md, the method)."""
    if not email or not email.strip():
        return "no email"
    if consent is not True:
        return "no marketing consent" if consent is False else "marketing consent unknown"
    return None


def plan_push(
    *,
    record_id: int,
    object_type: str,
    op: str,
    remote_id: str | None,
    fields: Collection[str],
    delete_policy: DeletePolicy,
    email: str | None = None,
    consent: bool | None = None,
    migrating: bool = False,
) -> PushDecision:
    """What push does with one queued local change.

    `migrating` (`sync --to`): the record already lives in the client's other CRM, so a
    contact's consent travels as it is; one without an email is still held back.
    """
    if op == "delete":
        if remote_id is None:
            return Discard(record_id)
        if delete_policy == "propagate":
            return ArchiveRemote(record_id, remote_id)
        return KeepRemote(record_id, remote_id)
    if remote_id is None:
        if object_type == "contacts":
            reason = gdpr_reason(email, True if migrating else consent)
            if reason is not None:
                return HoldBack(record_id, reason)
        return CreateRemote(record_id)
    # A linked contact whose consent is withdrawn is updated (the consent field written),
    # never deleted: it goes out like any other update.
    return UpdateRemote(record_id, remote_id, frozenset(fields))


def assert_never(value: Never) -> NoReturn:
    """Ends every `match` over decisions: mypy flags a missing case, run time raises."""
    raise AssertionError(f"unhandled decision {type(value).__name__}: {value!r}")
