"""`diff`: compare a blueprint with a snapshot of the CRM and return a `Plan`. Pure: no I/O.

Identity comes first from state (key -> remote id); without it, a pipeline or stage matches
by label (case-insensitive, whitespace trimmed) and then by `previous_labels`. A matched object
with another label is renamed, never deleted and created again. Where the CRM allows each
label only once (HubSpot), labels changing hands in one plan are made safe by
`crmsync.plan.labels` (order, a temporary label for cycles, or a blocked change).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, TypeVar

from crmsync.adapters.base import (
    AdapterCapabilities,
    RemotePipeline,
    RemoteStage,
    StageSpec,
)
from crmsync.plan.changes import (
    AdoptPipeline,
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    Blocked,
    CreatePipeline,
    CreateStage,
    Drift,
    ForgetPipeline,
    ForgetStage,
    Item,
    MoveDeals,
    NewStage,
    Note,
    PipelinePlan,
    Plan,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.labels import settle_pipeline_labels, settle_stage_labels, unparked
from crmsync.plan.state import KnownIds

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from crmsync.blueprint.models import Blueprint, Pipeline, RetiredStage, Stage

R = TypeVar("R", RemotePipeline, RemoteStage)


def normalize_label(label: str) -> str:
    """Labels match case-insensitively, ignoring surrounding and repeated whitespace."""
    return " ".join(label.split()).casefold()


def quantize_probability(value: float, step: float) -> float:
    """`value` rounded half-up to the CRM's step (HubSpot 0.1, Pipedrive 0.01)."""
    if step <= 0:
        return value
    steps = (Decimal(str(value)) / Decimal(str(step))).quantize(Decimal(1), ROUND_HALF_UP)
    return float(steps * Decimal(str(step)))


def same_probability(a: float | None, b: float | None, step: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < max(step, 1e-9) / 2


@dataclass(frozen=True)
class _Wanted:
    key: str
    label: str
    previous_labels: tuple[str, ...]


def _match(
    wanted: Sequence[_Wanted], remote: Sequence[R], state_ids: Mapping[str, str],
    retired_ids: Collection[str] = (),
) -> dict[str, tuple[R, str]]:
    """key -> (remote object, how it matched): by state, then label, then previous label.

    `retired_ids` are never matched by label: the blueprint retires them by key.
    """
    by_id = {r.id: r for r in remote}
    matched: dict[str, tuple[R, str]] = {}
    claimed: set[str] = set(retired_ids)

    def claim(key: str, item: R, how: str) -> None:
        matched[key] = (item, how)
        claimed.add(item.id)

    for w in wanted:
        rid = state_ids.get(w.key)
        if rid is not None and rid in by_id and rid not in claimed:
            claim(w.key, by_id[rid], "state")

    def by_label(label: str) -> R | None:
        norm = normalize_label(label)
        return next(
            (r for r in remote if r.id not in claimed and normalize_label(r.label) == norm), None
        )

    # Current labels before previous ones, so an old name never steals a current one.
    for w in wanted:
        if w.key not in matched and (found := by_label(w.label)) is not None:
            claim(w.key, found, "label")
    for w in wanted:
        for previous in w.previous_labels:
            if w.key in matched:
                break
            if (found := by_label(previous)) is not None:
                claim(w.key, found, f"previous label '{previous}'")
    return matched


def _final_orders(desired: Sequence[str], existing: Mapping[str, int],
                  labels: Mapping[str, str]) -> dict[str, int]:
    """The order value each key should end with, writing as few existing ones as possible.

    Keeps the largest set of existing values that already sort in the blueprint's order and
    leave room (distinct integers, none below 0) for everything between them; the others —
    moved or new — get values in those gaps, spread out to leave room for later inserts.
    Only when no existing value can stay is everything renumbered 0..n-1. The CRM sorts ties
    by label (HubSpot's `displayOrder`, an int32): a tie between two kept values is accepted
    when their labels sort the right way (so an account with ties diffs clean); a tie is
    never planned. New objects carry their value in the create, so they cost no write.
    """
    position = {key: i for i, key in enumerate(desired)}
    candidates = [k for k in desired if k in existing and existing[k] >= 0]

    def fits(a: str, b: str) -> bool:
        """`b` can be kept right after kept `a` with everything between them placed."""
        between = position[b] - position[a] - 1
        if existing[a] == existing[b]:
            return between == 0 and _tie_sorts(labels[a], labels[b])
        return existing[b] - existing[a] - 1 >= between

    # chain[k]: (kept count, previous kept key) of the best chain of kept keys ending at k.
    chain: dict[str, tuple[int, str | None]] = {}
    for k in candidates:
        best: tuple[int, str | None] | None = (1, None) if existing[k] >= position[k] else None
        for j in candidates[:candidates.index(k)]:
            if j in chain and fits(j, k) and (best is None or chain[j][0] + 1 > best[0]):
                best = (chain[j][0] + 1, j)
        if best is not None:
            chain[k] = best
    if not chain:
        return {key: index for index, key in enumerate(desired)}
    end = max(chain, key=lambda k: (chain[k][0], -position[k]))
    kept: list[str] = []
    at: str | None = end
    while at is not None:
        kept.append(at)
        at = chain[at][1]
    kept.reverse()

    orders = {k: existing[k] for k in kept}
    bounds = [-1, *(existing[k] for k in kept)]
    starts = [0, *(position[k] + 1 for k in kept)]
    stops = [*(position[k] for k in kept), len(desired)]
    for low, start, stop, high in zip(bounds, starts, stops, [*bounds[1:], None], strict=True):
        gap = desired[start:stop]
        for n, key in enumerate(gap, start=1):
            # Between two kept values: spread evenly; after the last one: one apart.
            orders[key] = low + n if high is None else low + n * (high - low) // (len(gap) + 1)
    return orders


def _tie_sorts(first: str, second: str) -> bool:
    """Equal order values sort by label: `first` comes first (both ways of comparing)."""
    return first <= second and first.casefold() <= second.casefold()


def _order_after_apply(desired: Sequence[str], existing: Mapping[str, int]) -> list[str]:
    """Where order is read-only: existing keep their place, new ones are appended in order."""
    kept = sorted((k for k in desired if k in existing), key=lambda k: existing[k])
    return kept + [k for k in desired if k not in existing]


def _planned_orders(desired: Sequence[str], existing: Mapping[str, int],
                    labels: Mapping[str, str], *, writable: bool) -> dict[str, int]:
    """The order value each key ends with: as few writes as possible where the CRM lets us
    write order (`_final_orders`); where it does not, what the CRM has (new: the position)."""
    if writable:
        return _final_orders(desired, existing, labels)
    return {k: existing.get(k, i) for i, k in enumerate(desired)}


def stage_candidates_for_removal(
    blueprint: Blueprint,
    remote: Sequence[RemotePipeline],
    state: KnownIds,
    capabilities: AdapterCapabilities,
) -> list[tuple[str, str]]:
    """(pipeline id, stage id) of every remote stage the plan would remove.

    Count the deals in these (and only these) and pass the counts to `diff`.
    """
    found: list[tuple[str, str]] = []
    pipelines = _match(_wanted_pipelines(blueprint), remote, state.pipelines)
    for pipeline in blueprint.pipelines:
        if pipeline.key not in pipelines:
            continue
        rp = pipelines[pipeline.key][0]
        stages = _match_stages(pipeline, rp, state, capabilities)
        claimed = {r.id for r, _ in stages.values()}
        found.extend((rp.id, s.id) for s in rp.stages if s.id not in claimed)
    for rp in _pipelines_to_archive(blueprint, remote, state, pipelines):
        found.extend((rp.id, s.id) for s in rp.stages)
    return found


def _wanted_pipelines(blueprint: Blueprint) -> list[_Wanted]:
    return [_Wanted(p.key, p.label, p.previous_labels) for p in blueprint.pipelines]


def _eligible_stages(pipeline: Pipeline, capabilities: AdapterCapabilities) -> tuple[Stage, ...]:
    return pipeline.stages if capabilities.outcome_stages else pipeline.open_stages


def _match_stages(
    pipeline: Pipeline, remote: RemotePipeline, state: KnownIds,
    capabilities: AdapterCapabilities,
) -> dict[str, tuple[RemoteStage, str]]:
    wanted = [_Wanted(s.key, s.label, s.previous_labels)
              for s in _eligible_stages(pipeline, capabilities)]
    state_ids = {key: sid for (pkey, key), sid in state.stages.items() if pkey == pipeline.key}
    # A stage the blueprint retires by key stays retired even if a new stage takes its label:
    # its deals move to the stage `move_deals_to` names, then it is archived.
    retired = {state_ids[r.key] for r in pipeline.retired_stages
               if r.key is not None and r.key in state_ids}
    return _match(wanted, remote.stages, state_ids, retired)


def _pipelines_to_archive(
    blueprint: Blueprint, remote: Sequence[RemotePipeline], state: KnownIds,
    matched: Mapping[str, tuple[RemotePipeline, str]],
) -> list[RemotePipeline]:
    """Remote pipelines the store says we applied, under keys the blueprint no longer has."""
    claimed = {r.id for r, _ in matched.values()}
    retired_ids = {rid for key, rid in state.pipelines.items() if blueprint.pipeline(key) is None}
    return [rp for rp in remote if rp.id in retired_ids and rp.id not in claimed]


def diff(
    blueprint: Blueprint,
    remote: Sequence[RemotePipeline],
    state: KnownIds | None = None,
    capabilities: AdapterCapabilities | None = None,
    deal_counts: Mapping[str, int] | None = None,
) -> Plan:
    """The changes that make the CRM match `blueprint`.

    `remote` is the CRM's live pipelines; `state` the ids earlier applies recorded;
    `deal_counts` maps stage id -> live deals for the stages that would be removed (see
    `stage_candidates_for_removal`); a stage missing from it counts as unknown, and `apply`
    then checks it before archiving.
    """
    state = state or KnownIds()
    caps = capabilities or _DEFAULT_CAPABILITIES
    planner = _Planner(blueprint, caps, state, deal_counts)
    return planner.plan(remote)


_DEFAULT_CAPABILITIES = AdapterCapabilities(
    pipeline_order_writable=True, stage_order_writable=True, outcome_stages=True,
    rotting=True, probability_step=0.01, max_stages_per_pipeline=None, unique_labels=True,
)


class _Planner:
    def __init__(self, blueprint: Blueprint, caps: AdapterCapabilities, state: KnownIds,
                 deal_counts: Mapping[str, int] | None) -> None:
        self.blueprint = blueprint
        self.caps = caps
        self.state = state
        self.deal_counts = deal_counts

    # --- pipelines ---------------------------------------------------------------------------

    def plan(self, remote: Sequence[RemotePipeline]) -> Plan:
        matched = _match(_wanted_pipelines(self.blueprint), remote, self.state.pipelines)
        keys = [p.key for p in self.blueprint.pipelines]
        existing_orders = {k: rp.order for k, (rp, _) in matched.items()}
        labels = {p.key: p.label for p in self.blueprint.pipelines}
        writable = self.caps.pipeline_order_writable
        pipeline_orders = _planned_orders(keys, existing_orders, labels, writable=writable)
        forgotten_pipelines, forgotten_stages = self._stale_state(remote)
        plans: list[PipelinePlan] = []
        for pipeline in self.blueprint.pipelines:
            forget = forgotten_stages.get(pipeline.key, [])
            if pipeline.key in matched:
                rp, how = matched[pipeline.key]
                items = self._existing_pipeline(pipeline, rp, how, pipeline_orders[pipeline.key])
                plans.append(PipelinePlan(pipeline.key, pipeline.label, rp.id,
                                          (*items, *forget)))
            else:
                items = self._new_pipeline(pipeline, pipeline_orders[pipeline.key])
                plans.append(PipelinePlan(pipeline.key, pipeline.label, None,
                                          (*items, *forget)))
        plans.extend(self._archived_pipelines(remote, matched))
        plans.extend(PipelinePlan(f.pipeline, f.pipeline, None, (f,))
                     for f in forgotten_pipelines)
        if self.caps.unique_labels:
            plans = settle_pipeline_labels(plans, remote, self.blueprint.crm)
        order_blocked = None if writable else self._order_blocked(
            None, "pipeline order", keys, existing_orders, labels)
        if order_blocked is not None:
            plans.append(PipelinePlan("", "pipeline order", None, (order_blocked,)))
        return Plan(
            client=self.blueprint.client,
            crm=self.blueprint.crm,
            pipelines=tuple(p for p in plans if p.items),
            notes=self._unmanaged_note(remote, matched),
            unique_labels=self.caps.unique_labels,
        )

    def _stale_state(self, remote: Sequence[RemotePipeline]
                     ) -> tuple[list[ForgetPipeline], dict[str, list[ForgetStage]]]:
        """Ids the store remembers for keys the blueprint dropped and the CRM no longer has.

        An apply killed between archiving in the CRM and recording it leaves these behind;
        so does an object deleted by hand. Keys still in the blueprint need no forgetting:
        they are created again and their new id replaces the old one.
        """
        pipeline_ids = {rp.id for rp in remote}
        stage_ids = {s.id for rp in remote for s in rp.stages}
        pipelines = [ForgetPipeline(key, rid) for key, rid in sorted(self.state.pipelines.items())
                     if self.blueprint.pipeline(key) is None and rid not in pipeline_ids]
        stages: dict[str, list[ForgetStage]] = {}
        for (pkey, key), sid in sorted(self.state.stages.items()):
            pipeline = self.blueprint.pipeline(pkey)
            if pipeline is None or sid in stage_ids or any(
                s.key == key for s in _eligible_stages(pipeline, self.caps)
            ):
                continue
            stages.setdefault(pkey, []).append(ForgetStage(pkey, key, sid))
        return pipelines, stages

    def _order_blocked(self, pipeline_key: str | None, target: str, desired: Sequence[str],
                       existing: Mapping[str, int], labels: Mapping[str, str]) -> Blocked | None:
        """Where order is read-only: the order the CRM will show, if not the blueprint's."""
        after = _order_after_apply(desired, existing)
        if after == list(desired):
            return None
        return Blocked(pipeline_key, target, "order-read-only", {
            "crm": self.blueprint.crm, "desired": [labels[k] for k in desired],
            "after": [labels[k] for k in after], "how": self.caps.order_note,
        })

    def _new_pipeline(self, pipeline: Pipeline, order: int) -> list[Item]:
        items: list[Item] = []
        if self.state.pipelines.get(pipeline.key):
            items.append(Note(pipeline.key, "recreated", {
                "kind": "pipeline", "label": pipeline.label,
                "id": self.state.pipelines[pipeline.key], "crm": self.blueprint.crm,
            }))
        stages = _eligible_stages(pipeline, self.caps)
        too_many = self._too_many(pipeline, len(stages))
        if too_many:
            return [too_many]
        new_stages = tuple(NewStage(s.key, self._spec(s, i)) for i, s in enumerate(stages))
        items.append(CreatePipeline(pipeline.key, pipeline.label, order, new_stages))
        items.extend(self._pipeline_notes(pipeline))
        return items

    def _existing_pipeline(self, pipeline: Pipeline, rp: RemotePipeline, how: str,
                           order: int) -> list[Item]:
        items: list[Item] = []
        if how != "state":
            items.append(AdoptPipeline(pipeline.key, rp.id, rp.label, how))
        if rp.label.strip() != pipeline.label:
            drift = self._renamed(how, self.state.pipeline_labels.get(pipeline.key), rp.label)
            items.append(UpdatePipeline(pipeline.key, rp.id, "label", rp.label, pipeline.label,
                                        pipeline.label, order, drift))
        if self.caps.pipeline_order_writable and rp.order != order:
            items.append(UpdatePipeline(pipeline.key, rp.id, "order", rp.order, order,
                                        pipeline.label, order))
        stages = _eligible_stages(pipeline, self.caps)
        too_many = self._too_many(pipeline, len(stages))
        if too_many:
            return [*items, too_many]
        items.extend(_StagePlanner(self, pipeline, rp).items())
        items.extend(self._pipeline_notes(pipeline))
        return items

    def _archived_pipelines(self, remote: Sequence[RemotePipeline],
                            matched: Mapping[str, tuple[RemotePipeline, str]]
                            ) -> list[PipelinePlan]:
        plans: list[PipelinePlan] = []
        keys_by_id = {rid: key for key, rid in sorted(self.state.pipelines.items())}
        for rp in _pipelines_to_archive(self.blueprint, remote, self.state, matched):
            key = keys_by_id[rp.id]
            change = ArchivePipeline(key, rp.id, rp.label, tuple(s.id for s in rp.stages))
            counts = [self._deals(s.id) for s in rp.stages]
            held = sum(c or 0 for c in counts)
            item: Item = change
            if held:
                item = Blocked(key, f"pipeline '{rp.label}'", "pipeline-holds-deals",
                               {"label": rp.label, "deals": held}, change)
            plans.append(PipelinePlan(key, rp.label, rp.id, (item,)))
        return plans

    def _unmanaged_note(self, remote: Sequence[RemotePipeline],
                        matched: Mapping[str, tuple[RemotePipeline, str]]) -> tuple[Note, ...]:
        known = {r.id for r, _ in matched.values()} | set(self.state.pipelines.values())
        unmanaged = [rp.label for rp in remote if rp.id not in known]
        if not unmanaged:
            return ()
        return (Note(None, "unmanaged-pipelines",
                     {"crm": self.blueprint.crm, "labels": unmanaged}),)

    def _too_many(self, pipeline: Pipeline, count: int) -> Blocked | None:
        limit = self.caps.max_stages_per_pipeline
        if limit is None or count <= limit:
            return None
        return Blocked(pipeline.key, f"pipeline '{pipeline.label}'", "too-many-stages",
                       {"crm": self.blueprint.crm, "count": count, "limit": limit})

    def _pipeline_notes(self, pipeline: Pipeline) -> list[Note]:
        notes: list[Note] = []
        if not self.caps.outcome_stages:
            outcomes = [s for s in pipeline.stages if s.outcome]
            if outcomes:
                notes.append(Note(pipeline.key, "outcomes-are-statuses", {
                    "crm": self.blueprint.crm, "labels": [s.label for s in outcomes]}))
        if not self.caps.rotting:
            rotting = [s for s in pipeline.stages if s.rot_after_days is not None]
            if rotting:
                notes.append(Note(pipeline.key, "no-rotting", {
                    "crm": self.blueprint.crm, "labels": [s.label for s in rotting]}))
        off_grid = [s for s in _eligible_stages(pipeline, self.caps)
                    if not same_probability(self._probability(s), s.probability, 1e-9)]
        if off_grid:
            notes.append(Note(pipeline.key, "probability-step", {
                "crm": self.blueprint.crm, "step": self.caps.probability_step,
                "stages": [{"label": s.label, "probability": s.probability,
                            "stored": self._probability(s)} for s in off_grid],
            }))
        return notes

    # --- helpers shared with the stage planner -----------------------------------------------

    def _renamed(self, how: str, recorded: str | None, current: str) -> Drift | None:
        """Drift when an object known by its id shows another label than the one recorded
        at the last apply (renamed by hand in the CRM since)."""
        if how != "state" or not recorded or recorded.strip() == current.strip():
            return None
        return Drift(self.blueprint.crm, "renamed", recorded)

    def _probability(self, stage: Stage) -> float:
        return quantize_probability(stage.probability, self.caps.probability_step)

    def _spec(self, stage: Stage, order: int) -> StageSpec:
        return StageSpec(
            label=stage.label,
            order=order,
            probability=self._probability(stage),
            outcome=stage.outcome if self.caps.outcome_stages else None,
            rot_after_days=stage.rot_after_days if self.caps.rotting else None,
        )

    def _deals(self, stage_id: str) -> int | None:
        if self.deal_counts is None:
            return None
        return self.deal_counts.get(stage_id)


class _StagePlanner:
    """The stage changes inside one pipeline that exists on both sides."""

    def __init__(self, planner: _Planner, pipeline: Pipeline, remote: RemotePipeline) -> None:
        self.p = planner
        self.pipeline = pipeline
        self.remote = remote
        self.stages = _eligible_stages(pipeline, planner.caps)
        self.matched = _match_stages(pipeline, remote, planner.state, planner.caps)
        self.claimed = {r.id for r, _ in self.matched.values()}

    def items(self) -> list[Item]:
        keys = [s.key for s in self.stages]
        existing = {k: r.order for k, (r, _) in self.matched.items()}
        labels = {s.key: s.label for s in self.stages}
        writable = self.p.caps.stage_order_writable
        orders = _planned_orders(keys, existing, labels, writable=writable)
        items: list[Item] = []
        for stage in self.stages:
            items.extend(self._stage(stage, orders[stage.key]))
        items.extend(self._removals())
        if self.p.caps.unique_labels:
            items = settle_stage_labels(items, self.remote, self.p.blueprint.crm)
        order_blocked = None if writable else self.p._order_blocked(
            self.pipeline.key, "stage order", keys, existing, labels)
        if order_blocked is not None:
            items.append(order_blocked)
        return items

    def _stage(self, stage: Stage, order: int) -> list[Item]:
        pkey, pid = self.pipeline.key, self.remote.id
        spec = self.p._spec(stage, order)
        if stage.key not in self.matched:
            items: list[Item] = []
            if self.p.state.stages.get((pkey, stage.key)):
                items.append(Note(pkey, "recreated", {
                    "kind": "stage", "label": stage.label,
                    "id": self.p.state.stages[(pkey, stage.key)], "crm": self.p.blueprint.crm,
                }))
            items.append(CreateStage(pkey, pid, stage.key, spec))
            return items
        rs, how = self.matched[stage.key]
        items = []
        if how != "state":
            items.append(AdoptStage(pkey, pid, stage.key, rs.id, rs.label, how))

        def update(field: str, old: object, new: object, drift: Drift | None = None) -> None:
            items.append(UpdateStage(pkey, pid, stage.key, rs.id, field, old, new, spec,  # type: ignore[arg-type]
                                     drift))

        if rs.label.strip() != stage.label:
            recorded = self.p.state.stage_labels.get((pkey, stage.key))
            update("label", rs.label, stage.label, self.p._renamed(how, recorded, rs.label))
        step = self.p.caps.probability_step
        # A value the CRM already holds exactly is kept, even if it is off the CRM's grid.
        if not same_probability(rs.probability, spec.probability, step) and not (
            same_probability(rs.probability, stage.probability, 1e-6)
        ):
            update("probability", rs.probability, spec.probability)
        if self.p.caps.outcome_stages and rs.outcome != stage.outcome:
            update("outcome", rs.outcome, stage.outcome)
        if self.p.caps.rotting and rs.rot_after_days != stage.rot_after_days:
            update("rotting", rs.rot_after_days, stage.rot_after_days)
        if self.p.caps.stage_order_writable and rs.order != order:
            update("order", rs.order, order)
        return items

    def _removals(self) -> list[Item]:
        items: list[Item] = []
        pkey, pid = self.pipeline.key, self.remote.id
        for rs in self.remote.stages:
            if rs.id in self.claimed:
                continue
            key = self.p.state.stage_key_for(pkey, rs.id)
            count = self.p._deals(rs.id)
            retired = self._retired_for(rs)
            # A stage crmsync never recorded, in a pipeline it applied, that the blueprint
            # neither names nor retires: made by hand in the CRM.
            drift = Drift(self.p.blueprint.crm, "added") if (
                key is None and retired is None
                and self.p.state.pipelines.get(pkey) == self.remote.id
            ) else None
            archive = ArchiveStage(pkey, pid, rs.id, rs.label, key, count or 0, drift)
            if count == 0 or (count is None and retired is None):
                items.append(archive)
            elif retired is not None:
                items.extend(self._retire(rs, retired, count, archive))
            else:
                items.append(Blocked(pkey, f"stage '{rs.label}'", "stage-holds-deals",
                                     {"label": rs.label, "deals": count or 0}, archive))
        return items

    def _retired_for(self, rs: RemoteStage) -> RetiredStage | None:
        state = self.p.state.stages
        for retired in self.pipeline.retired_stages:
            if retired.key and state.get((self.pipeline.key, retired.key)) == rs.id:
                return retired
        # By label, also under the temporary label an apply killed half-way left on it.
        labels = {normalize_label(rs.label), normalize_label(unparked(rs.label))}
        for retired in self.pipeline.retired_stages:
            if retired.label and normalize_label(retired.label) in labels:
                return retired
        return None

    def _retire(self, rs: RemoteStage, retired: RetiredStage, count: int | None,
                archive: ArchiveStage) -> list[Item]:
        pkey, pid = self.pipeline.key, self.remote.id
        target = self.pipeline.stage(retired.move_deals_to)
        what = f"stage '{rs.label}'"
        if target is None:
            return [Blocked(pkey, what, "move-target-unknown",
                            {"target": retired.move_deals_to}, archive)]
        if target.outcome and not self.p.caps.outcome_stages:
            return [Blocked(pkey, what, "move-target-is-outcome",
                            {"crm": self.p.blueprint.crm, "target": target.key}, archive)]
        to_id = self.matched[target.key][0].id if target.key in self.matched else None
        key = archive.stage or retired.key
        move = MoveDeals(pkey, pid, rs.label, rs.id, target.key, to_id, count or 0, target.label,
                         key)
        return [move, replace(archive, stage=key)]


