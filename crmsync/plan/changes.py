"""Change objects: what `diff` decides and what `render` and `apply` work from.

Every change is a frozen dataclass naming its pipeline (and stage) by blueprint key and, where
the object already exists, by remote id. Changes that write carry the complete desired value
(`StageSpec`, or the pipeline's label and order) because the adapters write whole objects.

Where the CRM refuses two objects with one label (HubSpot: stage labels within a pipeline,
pipeline labels within the account), a label that changes hands inside one apply is given up
before it is taken (see `crmsync.plan.order`); when the hand-overs form a cycle (two stages
swapping labels), `diff` adds a `ParkStage`/`ParkPipeline`: the object steps aside under a
temporary label first, and its real rename (or archive) follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, assert_never

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from crmsync.adapters.base import StageSpec

PipelineField = Literal["label", "order"]
StageField = Literal["label", "probability", "order", "rotting", "outcome"]


@dataclass(frozen=True)
class Drift:
    """The CRM differs from what the last apply left there: a hand edit, which the plan reverts.

    For pipelines the blueprint is the desired state (as in Terraform); the blueprint's
    `conflict_policy` is about record sync only. `renamed`: the label recorded at the last
    apply (`recorded`) is not the CRM's any more; `added`: a stage crmsync never recorded,
    in a pipeline it applied, that the blueprint does not name.
    """

    crm: str
    kind: Literal["renamed", "added"]
    recorded: str | None = None


@dataclass(frozen=True)
class NewStage:
    """A stage created together with its pipeline: its key and what to write."""

    key: str
    spec: StageSpec


@dataclass(frozen=True)
class CreatePipeline:
    pipeline: str
    label: str
    order: int
    stages: tuple[NewStage, ...]
    action: ClassVar[str] = "create"


@dataclass(frozen=True)
class UpdatePipeline:
    """One field of a pipeline differs; `label`/`order` are the full desired values to write."""

    pipeline: str
    pipeline_id: str
    field: PipelineField
    old: str | int
    new: str | int
    label: str
    order: int
    drift: Drift | None = None  # a label changed in the CRM since the last apply
    action: ClassVar[str] = "update"


@dataclass(frozen=True)
class ArchivePipeline:
    pipeline: str
    pipeline_id: str
    label: str
    stage_ids: tuple[str, ...] = ()  # re-checked for deals just before archiving
    action: ClassVar[str] = "archive"


@dataclass(frozen=True)
class CreateStage:
    pipeline: str
    pipeline_id: str
    stage: str
    spec: StageSpec
    action: ClassVar[str] = "create"


@dataclass(frozen=True)
class UpdateStage:
    """One field of a stage differs; `spec` is the whole stage as it should be."""

    pipeline: str
    pipeline_id: str
    stage: str
    stage_id: str
    field: StageField
    old: str | float | int | None
    new: str | float | int | None
    spec: StageSpec
    drift: Drift | None = None  # a label changed in the CRM since the last apply
    action: ClassVar[str] = "update"


@dataclass(frozen=True)
class MoveDeals:
    """Move every deal of a retired stage to the stage the blueprint names, before archiving."""

    pipeline: str
    pipeline_id: str
    from_label: str
    from_stage_id: str
    to_stage: str  # a stage key of the same pipeline
    to_stage_id: str | None  # None: the target is created earlier in the same apply
    count: int
    to_label: str = ""
    from_stage: str | None = None  # the retired stage's key, when known (state or blueprint)
    action: ClassVar[str] = "move"


@dataclass(frozen=True)
class ArchiveStage:
    pipeline: str
    pipeline_id: str
    stage_id: str
    label: str
    stage: str | None = None  # the key it was applied as, when the store knows it
    deals: int = 0  # deals it held when planned (moved away first)
    drift: Drift | None = None  # added in the CRM by hand, in a pipeline crmsync applied
    action: ClassVar[str] = "archive"


@dataclass(frozen=True)
class ParkStage:
    """Give a stage a temporary label so another stage can take its label in the same apply.

    Not a change of its own in the counts: a step of the stage's rename (or archive), which
    follows later in the apply. Killed in between, the stage keeps the temporary label under
    its known id, and the next `diff` plans a plain rename (or the archive) again.
    """

    pipeline: str
    pipeline_id: str
    stage: str | None  # the key, when known
    stage_id: str
    label: str  # the label it gives up
    temporary: str
    spec: StageSpec  # what is written: the stage under its temporary label
    then: Literal["rename", "archive"] = "rename"
    action: ClassVar[str] = "park"


@dataclass(frozen=True)
class ParkPipeline:
    """Give a pipeline a temporary label so another pipeline can take its label (see
    `ParkStage`); its real rename follows."""

    pipeline: str
    pipeline_id: str
    label: str
    temporary: str
    order: int
    action: ClassVar[str] = "park"


@dataclass(frozen=True)
class AdoptPipeline:
    """An existing pipeline matched by label: only its id is recorded, nothing is sent."""

    pipeline: str
    pipeline_id: str
    label: str
    matched_by: str
    action: ClassVar[str] = "adopt"


@dataclass(frozen=True)
class AdoptStage:
    pipeline: str
    pipeline_id: str
    stage: str
    stage_id: str
    label: str
    matched_by: str
    action: ClassVar[str] = "adopt"


@dataclass(frozen=True)
class ForgetPipeline:
    """The store remembers a pipeline the blueprint no longer names and the CRM no longer has
    (e.g. an apply killed between archiving it and recording that): drop the stale ids."""

    pipeline: str
    pipeline_id: str
    action: ClassVar[str] = "forget"


@dataclass(frozen=True)
class ForgetStage:
    """The store remembers a stage the blueprint no longer names and the CRM no longer has."""

    pipeline: str
    stage: str
    stage_id: str
    action: ClassVar[str] = "forget"


Change = (
    CreatePipeline | UpdatePipeline | ArchivePipeline | CreateStage | UpdateStage | MoveDeals
    | ArchiveStage | AdoptPipeline | AdoptStage | ForgetPipeline | ForgetStage | ParkStage
    | ParkPipeline
)
STATE_ONLY: tuple[type, ...] = (AdoptPipeline, AdoptStage, ForgetPipeline, ForgetStage)


def changed_object(change: Change) -> tuple[str, ...]:
    """Which pipeline or stage a change is about, for counting objects rather than fields."""
    match change:
        case CreateStage():
            return ("stage", change.pipeline, "new", change.stage)
        case UpdateStage() | ArchiveStage() | AdoptStage() | ParkStage() | ForgetStage():
            return ("stage", change.pipeline, change.stage_id)
        case MoveDeals():
            return ("stage", change.pipeline, change.from_stage_id)
        case (CreatePipeline() | UpdatePipeline() | ArchivePipeline() | AdoptPipeline()
              | ForgetPipeline() | ParkPipeline()):
            return ("pipeline", change.pipeline)
        case _:
            assert_never(change)


# Why a change is blocked, and what a note is about: codes plus parameters (JSON-ready
# values); `crmsync.plan.render` builds the sentences, so the JSON plan carries data.
BlockedCode = Literal[
    "order-read-only",        # crm, desired, after (labels), how (the adapter's advice)
    "pipeline-holds-deals",   # label, deals
    "stage-holds-deals",      # label, deals
    "too-many-stages",        # crm, count, limit
    "move-target-unknown",    # target (a stage key)
    "move-target-is-outcome",  # crm, target
    "move-target-blocked",    # target: deals would move into a stage that cannot be created
    "deals-stranded",         # (none): the stage's deals have nowhere to go
    "label-taken",            # kind (stage|pipeline), action (create|rename), new, holder, crm
]
NoteCode = Literal[
    "recreated",              # kind (stage|pipeline), label, id, crm
    "unmanaged-pipelines",    # crm, labels
    "outcomes-are-statuses",  # crm, labels
    "no-rotting",             # crm, labels
    "probability-step",       # crm, step, stages: [{label, probability, stored}]
]


@dataclass(frozen=True)
class Blocked:
    """A change the plan wants but will not make, and why (a code and its parameters)."""

    pipeline: str | None
    target: str  # what it is about, e.g. "stage 'Lost interest'" or "stage order"
    code: BlockedCode
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    change: Change | None = None
    action: ClassVar[str] = "blocked"

    @property
    def reason(self) -> str:
        """The reason as a sentence (built by `crmsync.plan.render`)."""
        from crmsync.plan.render import blocked_reason

        return blocked_reason(self)


@dataclass(frozen=True)
class Note:
    """Something the user should know that is not a change (said once, plainly)."""

    pipeline: str | None
    code: NoteCode
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    action: ClassVar[str] = "note"

    @property
    def text(self) -> str:
        """The note as a sentence (built by `crmsync.plan.render`)."""
        from crmsync.plan.render import note_text

        return note_text(self)


Item = Change | Blocked | Note


@dataclass(frozen=True)
class PipelinePlan:
    """The changes for one blueprint pipeline (or a remote one it no longer names)."""

    key: str
    label: str
    pipeline_id: str | None
    items: tuple[Item, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(i for i in self.items if not isinstance(i, Blocked | Note))

    @property
    def blocked(self) -> tuple[Blocked, ...]:
        return tuple(i for i in self.items if isinstance(i, Blocked))

    @property
    def notes(self) -> tuple[Note, ...]:
        return tuple(i for i in self.items if isinstance(i, Note))


@dataclass(frozen=True)
class Plan:
    """Every change for one client's CRM, grouped by pipeline, in the order `diff` found them."""

    client: str
    crm: str
    pipelines: tuple[PipelinePlan, ...] = ()
    notes: tuple[Note, ...] = ()  # about the account as a whole (e.g. unmanaged pipelines)
    # The CRM refuses two objects with one label (HubSpot): `apply` then orders the changes
    # so that a label is given up before another object takes it (`crmsync.plan.order`).
    unique_labels: bool = False

    def items(self) -> Iterator[Item]:
        for pipeline in self.pipelines:
            yield from pipeline.items

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for p in self.pipelines for c in p.changes)

    @property
    def blocked(self) -> tuple[Blocked, ...]:
        return tuple(b for p in self.pipelines for b in p.blocked)

    @property
    def all_notes(self) -> tuple[Note, ...]:
        return self.notes + tuple(n for p in self.pipelines for n in p.notes)

    @property
    def has_pending(self) -> bool:
        """True when applying would do something (including recording adopted ids)."""
        return bool(self.changes)

    @property
    def has_blocked(self) -> bool:
        return bool(self.blocked)

    @property
    def state_only(self) -> bool:
        """The CRM already matches: applying only records (or forgets) ids in the store."""
        return bool(self.changes) and not self.blocked and all(
            isinstance(c, STATE_ONLY) for c in self.changes
        )

    @property
    def is_clean(self) -> bool:
        """The CRM matches the blueprint: nothing to apply and nothing blocked."""
        return not self.changes and not self.blocked

    def counts(self) -> PlanCounts:
        """Objects per action: a stage with a new label and a new probability is one update
        (its lines and JSON changes keep one entry per field); a temporary label (park) is a
        step of its object's rename or archive, not counted apart."""
        counts = PlanCounts()
        seen: set[tuple[str, ...]] = set()
        for change in self.changes:
            if isinstance(change, ParkStage | ParkPipeline):
                continue
            key = (change.action, *changed_object(change))
            if key not in seen:
                seen.add(key)
                counts = counts.add(change.action)
        return counts.add("blocked", len(self.blocked))


@dataclass(frozen=True)
class PlanCounts:
    """How many objects a plan changes, per action (see `Plan.counts`)."""

    create: int = 0
    update: int = 0
    archive: int = 0
    move: int = 0
    adopt: int = 0
    blocked: int = 0
    forget: int = 0

    @property
    def pending(self) -> int:
        """Objects that applying would change or record: every action but blocked."""
        return self.create + self.update + self.archive + self.move + self.adopt + self.forget

    def add(self, action: str, n: int = 1) -> PlanCounts:
        """These counts with `n` more for `action`."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values[action] += n
        return PlanCounts(**values)
