"""Show a `Plan` to people (text, like an infrastructure plan) or to programs (JSON data).

Text markers: `+` create, `~` update (old → new), `>` move deals, `-` archive, `=` adopt an
existing object (its id is recorded, nothing is sent), `!` blocked with the reason, `·` note.
A temporary label (a park, see `crmsync.plan.labels`) is no line of its own in a plan: the
rename or archive it belongs to says "via '<temporary>'"; `describe_item` still describes
it as a step, for progress output, and the JSON lists it as a change with action "park".
Colour is not added here: the CLI styles lines by their marker, so piped output stays plain.
Every text line passes through `crmsync.safe_text.printable` (labels come from the CRM and
the blueprint); the JSON keeps the data as it is.

Blocked changes and notes carry a code and parameters (`crmsync.plan.changes.BlockedCode`,
`NoteCode`); their sentences are built here, from the parameters the JSON carries too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, assert_never

from crmsync.names import crm_title
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
    Note,
    ParkPipeline,
    ParkStage,
    PipelinePlan,
    Plan,
    PlanCounts,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.order import apply_order
from crmsync.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crmsync.adapters.base import StageSpec

MARKERS = {"create": "+", "update": "~", "move": ">", "archive": "-", "adopt": "=",
           "forget": "=", "park": "~", "blocked": "!", "note": "·"}
FIELD_NAMES = {"rotting": "rot_after_days"}


def describe_client(plan: Plan) -> str:
    return f"{plan.client} ({plan.crm})"


def format_value(value: object) -> str:
    """A value as shown after a field name: labels quoted, numbers short, None as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _stage_name(label: str, key: str | None) -> str:
    return f"stage '{label}' ({key})" if key else f"stage '{label}'"


def _spec_text(spec: StageSpec) -> str:
    parts = [f"probability {spec.probability:g}"]
    if spec.outcome:
        parts.append(f"outcome {spec.outcome}")
    if spec.rot_after_days is not None:
        parts.append(f"rots after {spec.rot_after_days} days")
    return ", ".join(parts)


def _forgotten(item: ForgetStage | ForgetPipeline) -> tuple[str, str, str]:
    """(kind, key, remote id) of a stale id to forget."""
    if isinstance(item, ForgetStage):
        return "stage", item.stage, item.stage_id
    return "pipeline", item.pipeline, item.pipeline_id


def _quote_list(labels: Sequence[str]) -> str:
    return ", ".join(f"'{label}'" for label in labels)


def _deals_text(n: int) -> str:
    return f"{n} deal" if n == 1 else f"{n} deals"


def blocked_reason(item: Blocked) -> str:  # noqa: PLR0911 -- one return per code
    """Why a change is blocked, as a sentence, from its code and parameters."""
    p = item.params
    match item.code:
        case "order-read-only":
            return (f"the blueprint lists {_quote_list(p['desired'])}; {crm_title(p['crm'])} "
                    f"will show {_quote_list(p['after'])}. {p.get('how', '')}").strip()
        case "pipeline-holds-deals":
            return (f"pipeline '{p['label']}' still holds {_deals_text(p['deals'])}; move them "
                    "to another pipeline in the CRM, or keep the pipeline in the blueprint")
        case "stage-holds-deals":
            return (f"stage '{p['label']}' still holds {_deals_text(p['deals'])}; add it to "
                    "retired_stages with move_deals_to")
        case "too-many-stages":
            return (f"{p['count']} stages, but {crm_title(p['crm'])} allows at most "
                    f"{p['limit']} per pipeline")
        case "move-target-unknown":
            return f"move_deals_to '{p['target']}' is not a stage of this pipeline"
        case "move-target-is-outcome":
            return (f"move_deals_to '{p['target']}' is an outcome; in {crm_title(p['crm'])} "
                    "won/lost is a deal status, not a stage — move the deals to an open stage")
        case "move-target-blocked":
            return (f"its deals cannot move to stage {p['target']}, which cannot be created "
                    "(see above)")
        case "deals-stranded":
            return "not archived: its deals have nowhere to go (see above)"
        case "label-taken":
            kind, scope = p["kind"], ("pipeline" if p["kind"] == "stage" else "account")
            what = ("cannot be created" if p["action"] == "create"
                    else f"cannot be renamed to '{p['new']}'")
            return (f"{what}: {kind} '{p['holder']}' keeps that label (this plan neither "
                    f"renames nor archives it) and {crm_title(p['crm'])} allows each {kind} "
                    f"label once per {scope}")
        case _:
            assert_never(item.code)


def note_text(item: Note) -> str:
    """A note as a sentence, from its code and parameters."""
    p = item.params
    match item.code:
        case "recreated":
            return (f"{p['kind']} '{p['label']}' was applied as id {p['id']}, which no longer "
                    f"exists in {crm_title(p['crm'])}; it is created again")
        case "unmanaged-pipelines":
            n = len(p["labels"])
            return (f"{n} pipeline{'' if n == 1 else 's'} in {crm_title(p['crm'])} not in the "
                    f"blueprint, left untouched: {_quote_list(p['labels'])}")
        case "outcomes-are-statuses":
            n = len(p["labels"])
            return (f"{crm_title(p['crm'])}: won/lost are deal statuses, not stages — {n} "
                    f"outcome {'stage' if n == 1 else 'stages'} not created "
                    f"({_quote_list(p['labels'])})")
        case "no-rotting":
            return (f"{crm_title(p['crm'])} has no rotting: rot_after_days ignored "
                    f"({_quote_list(p['labels'])})")
        case "probability-step":
            shown = ", ".join(f"'{s['label']}' {s['probability']:g} → {s['stored']:g}"
                              for s in p["stages"])
            return (f"{crm_title(p['crm'])} stores probabilities in steps of "
                    f"{p['step']:g}: {shown}")
        case _:
            assert_never(item.code)


def _drift_text(drift: Drift | None) -> str:
    if drift is None:
        return ""
    if drift.kind == "renamed":
        return f" (drift: renamed in {crm_title(drift.crm)} since the last apply)"
    return f" (drift: added in {crm_title(drift.crm)} by hand; not in the blueprint)"


def _describe(item: Item) -> str:
    return _describe_change(item) + _drift_text(getattr(item, "drift", None))


def _describe_change(item: Item) -> str:  # noqa: PLR0911, PLR0912 -- one branch per type
    match item:
        case CreateStage(stage=key, spec=spec):
            return f"{_stage_name(spec.label, key)}: {_spec_text(spec)}"
        case UpdateStage(stage=key, field=field, old=old, new=new, spec=spec):
            return (f"{_stage_name(spec.label, key)}: {FIELD_NAMES.get(field, field)} "
                    f"{format_value(old)} → {format_value(new)}")
        case UpdatePipeline(field=field, old=old, new=new):
            return f"pipeline {field} {format_value(old)} → {format_value(new)}"
        case MoveDeals(from_label=from_label, to_stage=to_key, count=count, to_label=to_label,
                       from_stage=from_key):
            deals = f"{count} deal{'' if count == 1 else 's'}" if count else "all deals"
            target = _stage_name(to_label, to_key) if to_label else f"stage {to_key}"
            return f"move {deals} from {_stage_name(from_label, from_key)} to {target}"
        case ArchiveStage(label=label, stage=key):
            return f"{_stage_name(label, key)}: archive"
        case ArchivePipeline(pipeline=key, label=label):
            return f"pipeline '{label}' ({key}): archive"
        case AdoptStage(stage=key, stage_id=rid, label=label, matched_by=how):
            return f"{_stage_name(label, key)} is id {rid} (matched by {how})"
        case AdoptPipeline(pipeline_id=rid, label=label, matched_by=how):
            return f"pipeline '{label}' is id {rid} (matched by {how})"
        case CreatePipeline(pipeline=key, label=label, stages=stages):
            return f"pipeline '{label}' ({key}) with {len(stages)} stages"
        case ParkStage(stage=key, label=label, temporary=temporary, then=then):
            return (f"{_stage_name(label, key)}: label {format_value(label)} → "
                    f"{format_value(temporary)} for now, so another stage can take it "
                    f"(then {'renamed' if then == 'rename' else 'archived'})")
        case ParkPipeline(label=label, temporary=temporary):
            return (f"pipeline label {format_value(label)} → {format_value(temporary)} for "
                    "now, so another pipeline can take it (then renamed)")
        case ForgetStage() | ForgetPipeline():
            kind, key, rid = _forgotten(item)
            return f"{kind} ({key}): id {rid} no longer exists in the CRM; forget it"
        case Blocked(target=target):
            return f"{target}: {blocked_reason(item)}"
        case Note():
            return note_text(item)
        case _:
            assert_never(item)


def describe_item(item: Item) -> str:
    """One line (without indentation) for a change, a blocked change or a note; control
    characters in labels are escaped (see `crmsync.safe_text`)."""
    return printable(f"{MARKERS[item.action]} {_describe(item)}")


def _state_work(counts: PlanCounts) -> str:
    parts = []
    if counts.adopt:
        parts.append(f"records the id{'' if counts.adopt == 1 else 's'} of {counts.adopt} "
                     f"matched object{'' if counts.adopt == 1 else 's'}")
    if counts.forget:
        parts.append(f"forgets {counts.forget} stale id{'' if counts.forget == 1 else 's'}")
    return " and ".join(parts)


def format_counts(counts: PlanCounts) -> str:
    parts = [f"{counts.create} to create", f"{counts.update} to update"]
    if counts.move:
        parts.append(f"{counts.move} to move deals")
    parts.append(f"{counts.archive} to archive")
    if counts.adopt:
        parts.append(f"{counts.adopt} to adopt")
    if counts.forget:
        parts.append(f"{counts.forget} to forget")
    parts.append(f"{counts.blocked} blocked")
    return "Plan: " + ", ".join(parts) + "."


def _with_parks(items: Sequence[Item]) -> list[str]:
    """Lines for items, each park folded into the rename or archive it belongs to."""
    stages = {i.stage_id: i for i in items if isinstance(i, ParkStage)}
    pipelines = {i.pipeline_id: i for i in items if isinstance(i, ParkPipeline)}
    lines = []
    for item in items:
        if isinstance(item, ParkStage | ParkPipeline):
            continue
        line = describe_item(item)
        match item:
            case UpdateStage(field="label", stage_id=sid) if sid in stages:
                line += printable(f" (via {format_value(stages[sid].temporary)})")
            case ArchiveStage(stage_id=sid) if sid in stages:
                line += printable(
                    f" (its label freed first: renamed {format_value(stages[sid].temporary)})")
            case UpdatePipeline(field="label", pipeline_id=pid) if pid in pipelines:
                line += printable(f" (via {format_value(pipelines[pid].temporary)})")
        lines.append(line)
    return lines


def _pipeline_lines(pipeline: PipelinePlan) -> list[str]:
    items = pipeline.items
    if not pipeline.key:  # account-wide blocked changes such as pipeline order
        return [f"  {describe_item(i)}" for i in items]
    creates = [i for i in items if isinstance(i, CreatePipeline)]
    if creates:
        lines = [f"  {describe_item(creates[0])}"]
        lines += [f"      {describe_item(CreateStage(pipeline.key, '', s.key, s.spec))}"
                  for s in creates[0].stages]
        lines += [f"    {describe_item(i)}" for i in items if i is not creates[0]]
        return lines
    if len(items) == 1 and isinstance(items[0], ArchivePipeline | ForgetPipeline | Blocked) and (
        not isinstance(items[0], Blocked) or isinstance(items[0].change, ArchivePipeline)
    ):
        return [f"  {describe_item(items[0])}"]
    lines = [printable(f"  pipeline '{pipeline.label}' ({pipeline.key})")]
    lines += [f"    {line}" for line in _with_parks(items)]
    return lines


def render_text(plan: Plan, *, title: str | None = None) -> str:
    """The plan for one client as text; one line when the CRM already matches."""
    name = printable(title or describe_client(plan))
    if plan.is_clean:
        lines = [f"No changes. {name} matches its blueprint."]
        lines += [f"  {describe_item(n)}" for n in plan.all_notes]
        return "\n".join(lines)
    lines = [name]
    for pipeline in plan.pipelines:
        lines += _pipeline_lines(pipeline)
    lines += [f"  {describe_item(n)}" for n in plan.notes]
    if plan.state_only:
        lines.append(f"Nothing changes in {crm_title(plan.crm)}: apply only "
                     f"{_state_work(plan.counts())} (= above).")
    lines.append(format_counts(plan.counts()))
    return "\n".join(lines)


# --- JSON ------------------------------------------------------------------------------------


def _spec_dict(spec: StageSpec, key: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"key": key} if key is not None else {}
    data.update(asdict(spec))
    return data


def _target(kind: str, pipeline: str | None, stage: str | None = None,
            label: str | None = None, remote_id: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "pipeline": pipeline, "stage": stage, "label": label, "id": remote_id}


def item_to_dict(item: Item) -> dict[str, Any]:  # noqa: PLR0912 -- one branch per type
    """One change as data: action, target, field, old, new, reason (and a few extras)."""
    data: dict[str, Any] = {"action": item.action, "target": None, "field": None,
                            "old": None, "new": None, "reason": None}
    match item:
        case CreatePipeline():
            data["target"] = _target("pipeline", item.pipeline, label=item.label)
            data["new"] = {"label": item.label, "order": item.order,
                           "stages": [_spec_dict(s.spec, s.key) for s in item.stages]}
        case UpdatePipeline():
            data["target"] = _target("pipeline", item.pipeline, label=item.label,
                                     remote_id=item.pipeline_id)
            data.update(field=item.field, old=item.old, new=item.new)
        case ArchivePipeline():
            data["target"] = _target("pipeline", item.pipeline, label=item.label,
                                     remote_id=item.pipeline_id)
        case CreateStage():
            data["target"] = _target("stage", item.pipeline, item.stage, item.spec.label)
            data["new"] = _spec_dict(item.spec, item.stage)
        case UpdateStage():
            data["target"] = _target("stage", item.pipeline, item.stage, item.spec.label,
                                     item.stage_id)
            data.update(field=FIELD_NAMES.get(item.field, item.field), old=item.old,
                        new=item.new)
        case MoveDeals():
            data["target"] = _target("stage", item.pipeline, item.from_stage, item.from_label,
                                     item.from_stage_id)
            data.update(field="deals", old=item.from_label, new=item.to_stage, count=item.count)
        case ArchiveStage():
            data["target"] = _target("stage", item.pipeline, item.stage, item.label,
                                     item.stage_id)
            data["deals"] = item.deals
        case AdoptPipeline():
            data["target"] = _target("pipeline", item.pipeline, label=item.label,
                                     remote_id=item.pipeline_id)
            data.update(field="id", new=item.pipeline_id, reason=f"matched by {item.matched_by}")
        case AdoptStage():
            data["target"] = _target("stage", item.pipeline, item.stage, item.label,
                                     item.stage_id)
            data.update(field="id", new=item.stage_id, reason=f"matched by {item.matched_by}")
        case ParkStage() | ParkPipeline() | ForgetStage() | ForgetPipeline():
            data.update(_aside_dict(item))
        case Blocked():
            data["target"] = {"kind": "blocked", "pipeline": item.pipeline,
                              "description": item.target}
            data.update(reason=blocked_reason(item), code=item.code, params=dict(item.params))
            data["change"] = item_to_dict(item.change) if item.change else None
        case Note():
            data["target"] = {"kind": "note", "pipeline": item.pipeline}
            data.update(reason=note_text(item), code=item.code, params=dict(item.params))
        case _:
            assert_never(item)
    drift = getattr(item, "drift", None)
    if drift is not None:
        data["drift"] = {"kind": drift.kind, "crm": drift.crm, "recorded_label": drift.recorded}
    return data


def _aside_dict(item: ParkStage | ParkPipeline | ForgetStage | ForgetPipeline
                ) -> dict[str, Any]:
    if isinstance(item, ForgetStage | ForgetPipeline):
        kind, key, rid = _forgotten(item)
        stage = key if kind == "stage" else None
        return {"target": _target(kind, item.pipeline, stage, remote_id=rid), "field": "id",
                "old": rid, "reason": "no longer exists in the CRM"}
    if isinstance(item, ParkStage):
        target = _target("stage", item.pipeline, item.stage, item.label, item.stage_id)
        kind, then = "stage", item.then
    else:
        target = _target("pipeline", item.pipeline, label=item.label, remote_id=item.pipeline_id)
        kind, then = "pipeline", "rename"
    return {"target": target, "field": "label", "old": item.label, "new": item.temporary,
            "then": then, "reason": f"a temporary label, so another {kind} can take this one "
            "in the same apply"}


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data; `changes` include the blocked ones."""
    status = "clean" if plan.is_clean else ("blocked" if plan.has_blocked else "pending")
    listed = [i for i in plan.items() if not isinstance(i, Note)]
    index = {id(item): n for n, item in enumerate(listed)}
    return {
        "client": plan.client,
        "crm": plan.crm,
        "crm_title": crm_title(plan.crm),
        "status": status,
        # objects per action (a stage with two changed fields is one update)
        "counts": asdict(plan.counts()),
        "changes": [item_to_dict(i) for i in listed],
        # the positions in `changes` in the order `apply` runs them (blocked ones never run)
        "apply_order": [index[id(c)] for c in apply_order(plan.changes,
                                                          unique_labels=plan.unique_labels)],
        "notes": [{"pipeline": n.pipeline, "code": n.code, "params": dict(n.params),
                   "text": note_text(n)} for n in plan.all_notes],
    }


def render_json(plans: Sequence[Plan]) -> str:
    return json.dumps({"clients": [plan_to_dict(p) for p in plans]}, indent=2,
                      ensure_ascii=False)
