"""`diff` data in, data out: every kind of change, for both CRMs' capabilities. No I/O."""

from __future__ import annotations

import itertools
import random

from plan_fakes import HUBSPOT, PIPEDRIVE, blueprint, sales, with_stage

from crmsync.adapters.base import RemotePipeline, RemoteStage, StageSpec
from crmsync.plan.changes import (
    AdoptPipeline,
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    Blocked,
    CreatePipeline,
    CreateStage,
    ForgetPipeline,
    ForgetStage,
    MoveDeals,
    NewStage,
    Note,
    ParkPipeline,
    ParkStage,
    Plan,
    PlanCounts,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.diff import (
    _final_orders,
    diff,
    quantize_probability,
    stage_candidates_for_removal,
)
from crmsync.plan.labels import temporary_label, unparked
from crmsync.plan.order import apply_order
from crmsync.plan.render import plan_to_dict, render_text
from crmsync.plan.state import KnownIds


def hubspot_sales(*, stages: list[RemoteStage] | None = None, label: str = "Sales",
                  pipeline_id: str = "p1") -> RemotePipeline:
    return RemotePipeline(pipeline_id, label, 0, tuple(stages if stages is not None else [
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Proposal sent", 1, 0.6),
        RemoteStage("s3", "Won", 2, 1.0, "won"),
        RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ]))


def pipedrive_sales(*, stages: list[RemoteStage] | None = None) -> RemotePipeline:
    return RemotePipeline("7", "Sales", 1, tuple(stages if stages is not None else [
        RemoteStage("71", "Meeting booked", 1, 0.2),
        RemoteStage("72", "Proposal sent", 2, 0.6),
    ]))


HUBSPOT_STATE = KnownIds(
    {"sales": "p1"},
    {("sales", "meeting_booked"): "s1", ("sales", "proposal_sent"): "s2",
     ("sales", "won"): "s3", ("sales", "lost"): "s4"},
)
PIPEDRIVE_STATE = KnownIds(
    {"sales": "7"}, {("sales", "meeting_booked"): "71", ("sales", "proposal_sent"): "72"},
)


def kinds(plan: object) -> list[str]:
    return [type(i).__name__ for i in plan.items()]  # type: ignore[attr-defined]


# --- create ----------------------------------------------------------------------------------


def test_missing_pipeline_is_created_with_all_stages_on_hubspot() -> None:
    plan = diff(blueprint("hubspot"), [], KnownIds(), HUBSPOT)
    [create] = plan.changes
    assert create == CreatePipeline("sales", "Sales", 0, (
        NewStage("meeting_booked", StageSpec("Meeting booked", 0, 0.2)),
        NewStage("proposal_sent", StageSpec("Proposal sent", 1, 0.6)),
        NewStage("won", StageSpec("Won", 2, 1.0, "won")),
        NewStage("lost", StageSpec("Lost", 3, 0.0, "lost")),
    ))
    assert plan.has_pending
    assert not plan.has_blocked


def test_pipedrive_creates_open_stages_only_and_says_so_once() -> None:
    plan = diff(blueprint("pipedrive"), [], KnownIds(), PIPEDRIVE)
    [create] = plan.changes
    assert isinstance(create, CreatePipeline)
    assert [s.key for s in create.stages] == ["meeting_booked", "proposal_sent"]
    notes = [n.text for n in plan.all_notes]
    assert notes == ["Pipedrive: won/lost are deal statuses, not stages — 2 outcome stages "
                     "not created ('Won', 'Lost')"]


def test_clean_when_state_and_remote_match() -> None:
    assert diff(blueprint("hubspot"), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT).is_clean
    plan = diff(blueprint("pipedrive"), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    assert plan.is_clean
    assert len(plan.all_notes) == 1  # the outcome note still explains itself


def test_added_stage_is_created_in_the_existing_pipeline() -> None:
    data = sales()
    data["stages"].insert(2, {"key": "negotiated", "label": "Negotiated",  # type: ignore[attr-defined]
                              "probability": 0.8})
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    creates = [c for c in plan.changes if isinstance(c, CreateStage)]
    assert creates == [CreateStage("sales", "p1", "negotiated", StageSpec("Negotiated", 2, 0.8))]
    # Won and Lost shift down one place to make room.
    orders = {(c.stage, c.old, c.new) for c in plan.changes
              if isinstance(c, UpdateStage) and c.field == "order"}
    assert orders == {("won", 2, 3), ("lost", 3, 4)}


# --- rename ----------------------------------------------------------------------------------


def test_rename_by_state_is_an_update_never_delete_and_create() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Offer mailed", 1, 0.6),
        RemoteStage("s3", "Won", 2, 1.0, "won"),
        RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ])
    plan = diff(blueprint("hubspot"), [remote], HUBSPOT_STATE, HUBSPOT)
    assert plan.changes == (UpdateStage(
        "sales", "p1", "proposal_sent", "s2", "label", "Offer mailed", "Proposal sent",
        StageSpec("Proposal sent", 1, 0.6),
    ),)


def test_rename_by_previous_labels_without_state() -> None:
    data = with_stage(sales(), 1, previous_labels=["Offer mailed"])
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "meeting  BOOKED ", 0, 0.2),
        RemoteStage("s2", "Offer mailed", 1, 0.6),
        RemoteStage("s3", "Won", 2, 1.0, "won"),
        RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ], label="sales")
    plan = diff(blueprint("hubspot", data), [remote], KnownIds(), HUBSPOT)
    assert kinds(plan) == [
        "AdoptPipeline", "UpdatePipeline",
        "AdoptStage", "UpdateStage",  # case and spacing differ: matched, label corrected
        "AdoptStage", "UpdateStage",
        "AdoptStage", "AdoptStage",
    ]
    adopt = plan.changes[4]
    assert adopt == AdoptStage("sales", "p1", "proposal_sent", "s2", "Offer mailed",
                               "previous label 'Offer mailed'")
    assert plan.changes[1] == UpdatePipeline("sales", "p1", "label", "sales", "Sales", "Sales", 0)
    assert not any(isinstance(c, CreateStage | ArchiveStage) for c in plan.changes)


def test_current_label_wins_over_someone_elses_previous_label() -> None:
    data = with_stage(sales(), 0, previous_labels=["Proposal sent"])
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], KnownIds({"sales": "p1"}),
                HUBSPOT)
    adopted = {c.stage: c.stage_id for c in plan.changes if isinstance(c, AdoptStage)}
    assert adopted == {"meeting_booked": "s1", "proposal_sent": "s2", "won": "s3", "lost": "s4"}


def test_pipeline_rename_by_state() -> None:
    plan = diff(blueprint("hubspot", sales(label="New business")), [hubspot_sales()],
                HUBSPOT_STATE, HUBSPOT)
    assert plan.changes == (UpdatePipeline("sales", "p1", "label", "Sales", "New business",
                                           "New business", 0),)


# --- probability, rotting, outcome -----------------------------------------------------------


def test_probability_change_and_tolerance() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2000001),
        RemoteStage("s2", "Proposal sent", 1, 0.5),
        RemoteStage("s3", "Won", 2, 1.0, "won"),
        RemoteStage("s4", "Lost", 3, None, "lost"),
    ])
    plan = diff(blueprint("hubspot"), [remote], HUBSPOT_STATE, HUBSPOT)
    assert [(c.stage, c.field, c.old, c.new) for c in plan.changes] == [  # type: ignore[union-attr]
        ("proposal_sent", "probability", 0.5, 0.6),
        ("lost", "probability", None, 0.0),
    ]


def test_probability_is_quantized_to_the_crm_step() -> None:
    assert quantize_probability(0.25, 0.1) == 0.3
    assert quantize_probability(0.333, 0.01) == 0.33
    data = with_stage(sales(), 1, probability=0.55)
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    assert plan.changes == ()  # 0.55 is written as 0.6, which HubSpot already has
    assert [n.text for n in plan.all_notes] == [
        "HubSpot stores probabilities in steps of 0.1: 'Proposal sent' 0.55 → 0.6"]
    # Pipedrive keeps whole percent: 0.55 is exact there.
    plan = diff(blueprint("pipedrive", data), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    assert [(c.field, c.old, c.new) for c in plan.changes] == [  # type: ignore[union-attr]
        ("probability", 0.6, 0.55)]


def test_rotting_is_updated_on_pipedrive_and_noted_on_hubspot() -> None:
    data = with_stage(sales(), 0, rot_after_days=14)
    plan = diff(blueprint("pipedrive", data), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    [change] = plan.changes
    assert isinstance(change, UpdateStage)
    assert (change.field, change.old, change.new) == ("rotting", None, 14)
    assert change.spec.rot_after_days == 14

    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    assert plan.changes == ()
    assert [n.text for n in plan.all_notes] == [
        "HubSpot has no rotting: rot_after_days ignored ('Meeting booked')"]


def test_outcome_change_on_hubspot() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Proposal sent", 1, 0.6),
        RemoteStage("s3", "Won", 2, 1.0),  # open stage by mistake
        RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ])
    plan = diff(blueprint("hubspot"), [remote], HUBSPOT_STATE, HUBSPOT)
    [change] = plan.changes
    assert (change.stage, change.field, change.old, change.new) == (  # type: ignore[union-attr]
        "won", "outcome", None, "won")


# --- order -----------------------------------------------------------------------------------


def test_reorder_on_hubspot_updates_display_order() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s2", "Proposal sent", 0, 0.6),
        RemoteStage("s1", "Meeting booked", 1, 0.2),
        RemoteStage("s3", "Won", 2, 1.0, "won"),
        RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ])
    plan = diff(blueprint("hubspot"), [remote], HUBSPOT_STATE, HUBSPOT)
    assert [(c.stage, c.field, c.old, c.new) for c in plan.changes] == [  # type: ignore[union-attr]
        ("meeting_booked", "order", 1, 0), ("proposal_sent", "order", 0, 1)]


def test_sparse_orders_keep_their_values_and_move_only_what_moved() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Proposal sent", 100, 0.6),
        RemoteStage("s3", "Won", 200, 1.0, "won"),
        RemoteStage("s4", "Lost", 300, 0.0, "lost"),
    ])
    assert diff(blueprint("hubspot"), [remote], HUBSPOT_STATE, HUBSPOT).is_clean
    data = sales()
    data["stages"] = [data["stages"][i] for i in (0, 1, 3, 2)]  # type: ignore[index]
    plan = diff(blueprint("hubspot", data), [remote], HUBSPOT_STATE, HUBSPOT)
    # Renumbering 0..3 would write three stages; moving Won after Lost writes one.
    assert [(c.stage, c.old, c.new) for c in plan.changes] == [  # type: ignore[union-attr]
        ("won", 200, 301)]


def test_reorder_on_pipedrive_is_blocked_with_the_reason() -> None:
    remote = pipedrive_sales(stages=[
        RemoteStage("72", "Proposal sent", 1, 0.6),
        RemoteStage("71", "Meeting booked", 2, 0.2),
    ])
    plan = diff(blueprint("pipedrive"), [remote], PIPEDRIVE_STATE, PIPEDRIVE)
    assert plan.changes == ()
    [blocked] = plan.blocked
    assert blocked.target == "stage order"
    assert blocked.reason == (
        "the blueprint lists 'Meeting booked', 'Proposal sent'; Pipedrive will show "
        "'Proposal sent', 'Meeting booked'. " + PIPEDRIVE.order_note)


def test_pipeline_reorder_on_pipedrive_is_one_blocked_change_for_the_account() -> None:
    partners = RemotePipeline("8", "Partners", 0, (RemoteStage("81", "Intro", 1, 0.1),))
    intro = {"key": "intro", "label": "Intro", "probability": 0.1}
    data = blueprint("pipedrive", sales(), {"key": "partners", "label": "Partners",
                                            "stages": [intro]})
    state = KnownIds({**PIPEDRIVE_STATE.pipelines, "partners": "8"},
                     {**PIPEDRIVE_STATE.stages, ("partners", "intro"): "81"})
    plan = diff(data, [pipedrive_sales(), partners], state, PIPEDRIVE)
    assert plan.changes == ()
    [blocked] = plan.blocked
    assert (blocked.pipeline, blocked.target) == (None, "pipeline order")
    assert blocked.reason == (
        "the blueprint lists 'Sales', 'Partners'; Pipedrive will show 'Partners', 'Sales'. "
        + PIPEDRIVE.order_note)
    assert (plan.pipelines[-1].key, plan.pipelines[-1].label) == ("", "pipeline order")


def test_pipedrive_new_stage_goes_last() -> None:
    at_end = sales()
    at_end["stages"].insert(2, {"key": "signed", "label": "Signed", "probability": 0.9})  # type: ignore[attr-defined]
    plan = diff(blueprint("pipedrive", at_end), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    assert kinds(plan) == ["CreateStage", "Note"]

    first = sales()
    first["stages"].insert(0, {"key": "lead_in", "label": "Lead in", "probability": 0.1})  # type: ignore[attr-defined]
    plan = diff(blueprint("pipedrive", first), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    assert kinds(plan) == ["CreateStage", "Blocked", "Note"]
    assert "'Meeting booked', 'Proposal sent', 'Lead in'" in plan.blocked[0].reason


# --- removal ---------------------------------------------------------------------------------


def _with_extra_remote_stage() -> RemotePipeline:
    return hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s9", "Thinking it over", 1, 0.4),
        RemoteStage("s2", "Proposal sent", 2, 0.6),
        RemoteStage("s3", "Won", 3, 1.0, "won"),
        RemoteStage("s4", "Lost", 4, 0.0, "lost"),
    ])


def test_empty_stage_not_in_blueprint_is_archived() -> None:
    state = KnownIds(HUBSPOT_STATE.pipelines,
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9"})
    plan = diff(blueprint("hubspot"), [_with_extra_remote_stage()], state, HUBSPOT, {"s9": 0})
    archive = [c for c in plan.changes if isinstance(c, ArchiveStage)]
    assert archive == [ArchiveStage("sales", "p1", "s9", "Thinking it over", "thinking", 0)]
    # The others keep their relative order, so no order updates are needed.
    assert not [c for c in plan.changes if isinstance(c, UpdateStage)]


def test_stage_holding_deals_is_not_removed_without_move_deals_to() -> None:
    plan = diff(blueprint("hubspot"), [_with_extra_remote_stage()], HUBSPOT_STATE, HUBSPOT,
                {"s9": 3})
    assert plan.changes == ()
    [blocked] = plan.blocked
    assert blocked.reason == ("stage 'Thinking it over' still holds 3 deals; add it to "
                              "retired_stages with move_deals_to")
    assert isinstance(blocked.change, ArchiveStage)


def test_retired_stage_by_label_moves_deals_first() -> None:
    data = sales(retired_stages=[{"label": "thinking it over", "move_deals_to": "proposal_sent"}])
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], HUBSPOT_STATE,
                HUBSPOT, {"s9": 3})
    assert plan.changes == (
        MoveDeals("sales", "p1", "Thinking it over", "s9", "proposal_sent", "s2", 3,
                  "Proposal sent"),
        ArchiveStage("sales", "p1", "s9", "Thinking it over", None, 3),
    )


def test_retired_stage_by_key_via_state_into_a_new_stage() -> None:
    data = sales(retired_stages=[{"key": "thinking", "move_deals_to": "negotiated"}])
    data["stages"].insert(2, {"key": "negotiated", "label": "Negotiated",  # type: ignore[attr-defined]
                              "probability": 0.8})
    state = KnownIds(HUBSPOT_STATE.pipelines,
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9"})
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], state, HUBSPOT,
                {"s9": 2})
    move = next(c for c in plan.changes if isinstance(c, MoveDeals))
    assert move == MoveDeals("sales", "p1", "Thinking it over", "s9", "negotiated", None, 2,
                            "Negotiated", "thinking")


def test_deals_cannot_move_to_an_outcome_on_pipedrive() -> None:
    data = sales(retired_stages=[{"label": "Stalled", "move_deals_to": "lost"}])
    remote = pipedrive_sales(stages=[*pipedrive_sales().stages,
                                     RemoteStage("79", "Stalled", 3, 0.1)])
    plan = diff(blueprint("pipedrive", data), [remote], PIPEDRIVE_STATE, PIPEDRIVE, {"79": 5})
    [blocked] = plan.blocked
    assert "won/lost is a deal status" in blocked.reason
    assert plan.changes == ()


def test_candidates_for_removal_are_only_the_unmatched() -> None:
    found = stage_candidates_for_removal(blueprint("hubspot"), [_with_extra_remote_stage()],
                                         HUBSPOT_STATE, HUBSPOT)
    assert found == [("p1", "s9")]


# --- pipelines not in the blueprint ----------------------------------------------------------


def test_unmanaged_pipelines_are_left_alone_and_said_so() -> None:
    other = RemotePipeline("default", "Sales Pipeline", 0, (RemoteStage("x", "Appt", 0, 0.2),))
    plan = diff(blueprint("hubspot"), [other, hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    assert plan.is_clean
    assert [n.text for n in plan.notes] == [
        "1 pipeline in HubSpot not in the blueprint, left untouched: 'Sales Pipeline'"]
    assert stage_candidates_for_removal(blueprint("hubspot"), [other], HUBSPOT_STATE,
                                        HUBSPOT) == []


def test_pipeline_removed_from_blueprint_is_archived_unless_it_holds_deals() -> None:
    old = RemotePipeline("p2", "Partners", 1, (RemoteStage("q1", "Intro", 0, 0.1),))
    state = KnownIds({**HUBSPOT_STATE.pipelines, "partners": "p2"}, HUBSPOT_STATE.stages)
    plan = diff(blueprint("hubspot"), [hubspot_sales(), old], state, HUBSPOT, {"q1": 0})
    assert plan.changes == (ArchivePipeline("partners", "p2", "Partners", ("q1",)),)
    plan = diff(blueprint("hubspot"), [hubspot_sales(), old], state, HUBSPOT, {"q1": 4})
    assert plan.changes == ()
    assert "still holds 4 deals" in plan.blocked[0].reason


def test_stale_state_id_creates_again_with_a_note() -> None:
    plan = diff(blueprint("hubspot"), [], HUBSPOT_STATE, HUBSPOT)
    assert kinds(plan) == ["Note", "CreatePipeline"]
    assert "no longer exists in HubSpot" in plan.pipelines[0].items[0].text  # type: ignore[union-attr]


def test_too_many_stages_is_blocked() -> None:
    caps = HUBSPOT.__class__(**{**HUBSPOT.__dict__, "max_stages_per_pipeline": 3})
    plan = diff(blueprint("hubspot"), [], KnownIds(), caps)
    assert plan.changes == ()
    assert "at most 3" in plan.blocked[0].reason


def test_adopting_everything_by_label() -> None:
    plan = diff(blueprint("hubspot"), [hubspot_sales()], KnownIds(), HUBSPOT)
    assert plan.changes[0] == AdoptPipeline("sales", "p1", "Sales", "label")
    assert all(isinstance(c, AdoptPipeline | AdoptStage) for c in plan.changes)
    assert plan.has_pending  # recording the ids is the pending work


def test_diff_is_deterministic() -> None:
    data = sales(retired_stages=[{"label": "Thinking it over", "move_deals_to": "won"}])
    args = (blueprint("hubspot", data), [_with_extra_remote_stage()], KnownIds(), HUBSPOT,
            {"s9": 1})
    first = diff(*args)
    assert all(diff(*args) == first for _ in range(5))
    assert plan_to_dict(diff(*args)) == plan_to_dict(first)
    assert not any(isinstance(i, Blocked) for i in first.items())
    assert any(isinstance(i, Note) for i in first.items()) is False


def test_ties_in_the_crm_sort_by_label_and_diff_clean() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Proposal sent", 0, 0.6),  # HubSpot sorts the tie by label
        RemoteStage("s3", "Won", 1, 1.0, "won"),
        RemoteStage("s4", "Lost", 2, 0.0, "lost"),
    ])
    data = sales()
    data["stages"] = [data["stages"][i] for i in (0, 1, 2, 3)]  # type: ignore[index]
    assert diff(blueprint("hubspot", data), [remote], HUBSPOT_STATE, HUBSPOT).is_clean


def test_a_value_off_the_grid_already_in_the_crm_is_kept() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.25),
        *hubspot_sales().stages[1:],
    ])
    data = with_stage(sales(), 0, probability=0.25)
    assert diff(blueprint("hubspot", data), [remote], HUBSPOT_STATE, HUBSPOT).changes == ()


# --- stale state -----------------------------------------------------------------------------


def test_ids_of_dropped_keys_gone_from_the_crm_are_forgotten() -> None:
    # An apply killed after archiving `thinking` and `legacy` but before recording it.
    state = KnownIds({**HUBSPOT_STATE.pipelines, "legacy": "p9"},
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9",
                      ("legacy", "intro"): "s90"})
    plan = diff(blueprint("hubspot"), [hubspot_sales()], state, HUBSPOT)
    assert plan.changes == (ForgetStage("sales", "thinking", "s9"), ForgetPipeline("legacy", "p9"))
    assert plan.state_only
    assert plan.counts().forget == 2
    # A key still in the blueprint whose object is gone is created again, not forgotten.
    gone = hubspot_sales(stages=list(hubspot_sales().stages[1:]))
    plan = diff(blueprint("hubspot"), [gone], HUBSPOT_STATE, HUBSPOT)
    assert [type(c).__name__ for c in plan.changes] == ["CreateStage"]


# --- labels changing hands (HubSpot: unique per pipeline / account) ---------------------------


def _changes_in_apply_order(plan: Plan) -> list[tuple[str, ...]]:
    """(kind, stage key or label, …) of each change, in the order apply runs them."""
    out: list[tuple[str, ...]] = []
    for c in apply_order(plan.changes, unique_labels=plan.unique_labels):
        match c:
            case ParkStage():
                out.append(("park", c.label, c.temporary))
            case UpdateStage(field="label"):
                out.append(("rename", str(c.old), str(c.new)))
            case CreateStage():
                out.append(("create", c.spec.label))
            case ArchiveStage():
                out.append(("archive", c.label))
            case MoveDeals():
                out.append(("move", c.from_label, c.to_stage))
            case ParkPipeline():
                out.append(("park pipeline", c.label, c.temporary))
            case UpdatePipeline(field="label"):
                out.append(("rename pipeline", str(c.old), str(c.new)))
            case _:
                out.append((type(c).__name__,))
    return out


def _swapped() -> dict[str, object]:
    return with_stage(with_stage(sales(), 0, label="Proposal sent"), 1, label="Meeting booked")


def test_two_stages_swapping_labels_go_through_a_temporary_label() -> None:
    plan = diff(blueprint("hubspot", _swapped()), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    park = ParkStage("sales", "p1", "meeting_booked", "s1", "Meeting booked",
                     "Meeting booked (renaming)", StageSpec("Meeting booked (renaming)", 0, 0.2))
    assert park in plan.changes
    assert _changes_in_apply_order(plan) == [
        ("park", "Meeting booked", "Meeting booked (renaming)"),
        ("rename", "Proposal sent", "Meeting booked"),
        ("rename", "Meeting booked", "Proposal sent"),
    ]
    # Two real renames, two objects to update: the park is a step of the first one.
    assert plan.counts().update == 2
    lines = render_text(plan).splitlines()
    assert lines[2:4] == [
        "    ~ stage 'Proposal sent' (meeting_booked): label 'Meeting booked' → 'Proposal "
        "sent' (via 'Meeting booked (renaming)')",
        "    ~ stage 'Meeting booked' (proposal_sent): label 'Proposal sent' → 'Meeting booked'",
    ]


def test_a_chain_of_renames_needs_no_temporary_label_only_order() -> None:
    # meeting_booked takes 'Proposal sent', which proposal_sent gives up for 'Offer signed'.
    data = with_stage(with_stage(sales(), 0, label="Proposal sent"), 1, label="Offer signed")
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    assert not any(isinstance(c, ParkStage) for c in plan.changes)
    assert _changes_in_apply_order(plan) == [
        ("rename", "Proposal sent", "Offer signed"),
        ("rename", "Meeting booked", "Proposal sent"),
    ]


def test_a_create_waits_for_the_rename_that_frees_its_label() -> None:
    data = with_stage(sales(), 1, label="Offer signed")
    data["stages"].insert(2, {"key": "resent", "label": "Proposal sent",  # type: ignore[attr-defined]
                              "probability": 0.7})
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    order = _changes_in_apply_order(plan)
    assert order.index(("rename", "Proposal sent", "Offer signed")) < order.index(
        ("create", "Proposal sent"))


def test_a_rename_waits_for_the_archive_that_frees_its_label() -> None:
    # 'Thinking it over' (dropped from the blueprint, no deals) goes; proposal_sent takes it.
    state = KnownIds(HUBSPOT_STATE.pipelines,
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9"})
    data = with_stage(sales(), 1, label="Thinking it over")
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], state, HUBSPOT,
                {"s9": 0})
    assert not any(isinstance(c, ParkStage) for c in plan.changes)
    order = [c for c in _changes_in_apply_order(plan) if c[0] in ("archive", "rename")]
    assert order == [("archive", "Thinking it over"),
                     ("rename", "Proposal sent", "Thinking it over")]


def test_a_new_stage_taking_a_retired_stages_label_waits_for_the_archive() -> None:
    # Retired by key: the new stage does not adopt it by label; with no deals to move, the
    # old one is archived first and the new one created with the label.
    state = KnownIds(HUBSPOT_STATE.pipelines,
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9"})
    data = sales(retired_stages=[{"key": "thinking", "move_deals_to": "proposal_sent"}])
    data["stages"].insert(1, {"key": "considering", "label": "Thinking it over",  # type: ignore[attr-defined]
                              "probability": 0.4})
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], state, HUBSPOT,
                {"s9": 0})
    assert [(c.stage, c.stage_id) for c in plan.changes if isinstance(c, AdoptStage)] == []
    assert _changes_in_apply_order(plan) == [("archive", "Thinking it over"),
                                             ("create", "Thinking it over")]


def test_deals_moving_into_a_new_stage_that_takes_their_stages_label() -> None:
    # The cycle: create needs the label → archive → deals moved → create. The retired stage
    # steps aside under a temporary label first.
    state = KnownIds(HUBSPOT_STATE.pipelines,
                     {**HUBSPOT_STATE.stages, ("sales", "thinking"): "s9"})
    data = sales(retired_stages=[{"key": "thinking", "move_deals_to": "considering"}])
    data["stages"].insert(1, {"key": "considering", "label": "Thinking it over",  # type: ignore[attr-defined]
                              "probability": 0.4})
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], state, HUBSPOT,
                {"s9": 3})
    assert _changes_in_apply_order(plan) == [
        ("park", "Thinking it over", "Thinking it over (archiving)"),
        ("create", "Thinking it over"),
        ("move", "Thinking it over", "considering"),
        ("archive", "Thinking it over"),
    ]
    park = next(c for c in plan.changes if isinstance(c, ParkStage))
    assert park.then == "archive"
    assert park.spec == StageSpec("Thinking it over (archiving)", 1, 0.4)  # only the label
    assert "(its label freed first: renamed 'Thinking it over (archiving)')" in render_text(plan)
    assert plan.counts() == PlanCounts(create=1, move=1, archive=1)


def test_a_pipeline_is_never_left_without_stages() -> None:
    # HubSpot refuses to archive a pipeline's last stage: the retired stage is parked instead
    # of being archived before the new one (which takes its label) is created.
    remote = hubspot_sales(stages=[RemoteStage("s9", "Qualified", 0, 0.2)])
    data = sales(stages=[{"key": "qualified", "label": "Qualified", "probability": 0.3}],
                 retired_stages=[{"key": "old", "move_deals_to": "qualified"}])
    state = KnownIds({"sales": "p1"}, {("sales", "old"): "s9"})
    plan = diff(blueprint("hubspot", data), [remote], state, HUBSPOT, {"s9": 0})
    assert _changes_in_apply_order(plan) == [
        ("park", "Qualified", "Qualified (archiving)"),
        ("create", "Qualified"),
        ("archive", "Qualified"),
    ]


def test_a_label_kept_by_a_stage_that_stays_blocks_the_rename_only() -> None:
    # 'Thinking it over' holds deals and is not retired: it stays, with its label.
    data = with_stage(sales(), 1, label="Thinking it over", probability=0.7)
    plan = diff(blueprint("hubspot", data), [_with_extra_remote_stage()], HUBSPOT_STATE,
                HUBSPOT, {"s9": 2})
    reasons = [b.reason for b in plan.blocked]
    assert reasons[0] == (
        "cannot be renamed to 'Thinking it over': stage 'Thinking it over' keeps that label "
        "(this plan neither renames nor archives it) and HubSpot allows each stage label once "
        "per pipeline")
    # The probability still changes, under the label the stage has now.
    [update] = [c for c in plan.changes if isinstance(c, UpdateStage)]
    assert (update.field, update.spec.label) == ("probability", "Proposal sent")


def test_pipelines_swapping_labels_go_through_a_temporary_label() -> None:
    partners = RemotePipeline("p2", "Partners", 1, (RemoteStage("q1", "Intro", 0, 0.1),))
    state = KnownIds({"sales": "p1", "partners": "p2"},
                     {**HUBSPOT_STATE.stages, ("partners", "intro"): "q1"})
    data = blueprint("hubspot", sales(label="Partners"), {
        "key": "partners", "label": "Sales", "stages": [
            {"key": "intro", "label": "Intro", "probability": 0.1}]})
    plan = diff(data, [hubspot_sales(), partners], state, HUBSPOT)
    assert _changes_in_apply_order(plan) == [
        ("park pipeline", "Sales", "Sales (renaming)"),
        ("rename pipeline", "Partners", "Sales"),
        ("rename pipeline", "Sales", "Partners"),
    ]
    assert render_text(plan).splitlines()[2] == (
        "    ~ pipeline label 'Sales' → 'Partners' (via 'Sales (renaming)')")


def test_a_pipeline_label_held_by_an_unmanaged_pipeline_is_blocked() -> None:
    other = RemotePipeline("default", "Sales Pipeline", 0, (RemoteStage("x", "Appt", 0, 0.2),))
    plan = diff(blueprint("hubspot", sales(label="Sales Pipeline")), [hubspot_sales(), other],
                HUBSPOT_STATE, HUBSPOT)
    assert plan.changes == ()
    [blocked] = plan.blocked
    assert blocked.reason.startswith("cannot be renamed to 'Sales Pipeline': pipeline 'Sales "
                                     "Pipeline' keeps that label")


def test_pipedrive_allows_duplicate_labels_so_a_swap_is_two_plain_renames() -> None:
    data = with_stage(with_stage(sales(), 0, label="Proposal sent"), 1, label="Meeting booked")
    plan = diff(blueprint("pipedrive", data), [pipedrive_sales()], PIPEDRIVE_STATE, PIPEDRIVE)
    assert not plan.unique_labels
    assert [type(c).__name__ for c in plan.changes] == ["UpdateStage", "UpdateStage"]


def test_a_temporary_label_left_by_a_killed_apply_is_a_plain_rename() -> None:
    remote = hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked (renaming)", 0, 0.2),  # parked, then killed
        *hubspot_sales().stages[1:],
    ])
    plan = diff(blueprint("hubspot", _swapped()), [remote], HUBSPOT_STATE, HUBSPOT)
    assert _changes_in_apply_order(plan) == [
        ("rename", "Proposal sent", "Meeting booked"),
        ("rename", "Meeting booked (renaming)", "Proposal sent"),
    ]


def test_a_retired_stage_found_by_label_under_its_temporary_label() -> None:
    data = sales(retired_stages=[{"label": "Thinking it over", "move_deals_to": "won"}])
    remote = hubspot_sales(stages=[*hubspot_sales().stages,
                                   RemoteStage("s9", "Thinking it over (archiving)", 5, 0.4)])
    plan = diff(blueprint("hubspot", data), [remote], HUBSPOT_STATE, HUBSPOT, {"s9": 2})
    assert [type(c).__name__ for c in plan.changes] == ["MoveDeals", "ArchiveStage"]


def test_the_temporary_label_collides_with_nothing() -> None:
    assert temporary_label("Won", "rename", ["Won", "won (renaming)"]) == "Won (renaming 2)"
    assert temporary_label("Won (renaming)", "archive", []) == "Won (archiving)"
    assert unparked("Won (renaming 2)") == "Won"
    assert len(temporary_label("x" * 255, "rename", [])) == 255
    assert unparked("Won (renamed)") == "Won (renamed)"


# --- order values: as few writes as possible ---------------------------------------------------


def _sparse_sales() -> RemotePipeline:
    return hubspot_sales(stages=[
        RemoteStage("s1", "Meeting booked", 0, 0.2),
        RemoteStage("s2", "Proposal sent", 10, 0.6),
        RemoteStage("s3", "Won", 20, 1.0, "won"),
        RemoteStage("s4", "Lost", 30, 0.0, "lost"),
    ])


def test_a_stage_inserted_where_there_is_room_costs_no_order_write() -> None:
    data = sales()
    data["stages"].insert(2, {"key": "negotiated", "label": "Negotiated",  # type: ignore[attr-defined]
                              "probability": 0.8})
    plan = diff(blueprint("hubspot", data), [_sparse_sales()], HUBSPOT_STATE, HUBSPOT)
    # Only the create, and it carries its displayOrder: between 10 and 20.
    assert plan.changes == (CreateStage("sales", "p1", "negotiated",
                                        StageSpec("Negotiated", 15, 0.8)),)


def test_swapping_two_adjacent_stages_writes_one_order() -> None:
    for remote in (hubspot_sales(), _sparse_sales()):
        data = sales()
        data["stages"] = [data["stages"][i] for i in (1, 0, 2, 3)]  # type: ignore[index]
        plan = diff(blueprint("hubspot", data), [remote], HUBSPOT_STATE, HUBSPOT)
        orders = [c for c in plan.changes if isinstance(c, UpdateStage) and c.field == "order"]
        assert len(orders) <= 2
        assert len(orders) == (2 if remote == hubspot_sales() else 1)


def _final_value_sorts(desired: list[str], orders: dict[str, int], existing: dict[str, int],
                       labels: dict[str, str]) -> bool:
    shown = sorted(desired, key=lambda k: (orders[k], labels[k]))
    written = [k for k in desired if k not in existing or orders[k] != existing[k]]
    fresh_ties = any(orders[a] == orders[b] and (a in written or b in written)
                     for a in desired for b in desired if a != b)
    return shown == desired and min(orders.values()) >= 0 and not fresh_ties


def _fewest_writes(desired: list[str], existing: dict[str, int], labels: dict[str, str]) -> int:
    """Brute force: the smallest number of existing values to change (greedy placement)."""
    present = [k for k in desired if k in existing]
    best = len(present)
    for size in range(len(present), 0, -1):
        for kept in itertools.combinations(present, size):
            low, ok = -1, True
            for i, key in enumerate(desired):
                if key in kept:
                    value = existing[key]
                    previous = desired[i - 1] if i else None
                    tie = (value == low and previous in kept
                           and labels[previous] <= labels[key]
                           and labels[previous].casefold() <= labels[key].casefold())
                    if value <= low and not tie:
                        ok = False
                        break
                    low = value
                else:
                    low += 1
                    nxt = next((existing[k] for k in desired[i + 1:] if k in kept), None)
                    if nxt is not None and low >= nxt:
                        ok = False
                        break
            if ok:
                return len(present) - size
    return best


def test_final_orders_sort_right_with_the_fewest_writes() -> None:
    rng = random.Random(4)
    for _ in range(400):
        n = rng.randint(1, 6)
        keys = [f"k{i}" for i in range(n)]
        labels = {k: rng.choice("ABCab") + k for k in keys}
        existing = {k: rng.randint(0, 12) for k in keys if rng.random() < 0.8}
        desired = rng.sample(keys, n)
        orders = _final_orders(desired, existing, labels)
        assert _final_value_sorts(desired, orders, existing, labels), (desired, existing)
        writes = sum(1 for k in desired if k in existing and orders[k] != existing[k])
        assert writes == _fewest_writes(desired, existing, labels), (desired, existing, orders)


def test_counts_are_per_object_and_lines_per_field() -> None:
    data = with_stage(sales(), 1, label="Offer sent", probability=0.7)
    data = with_stage(data, 0, label="Meeting held", probability=0.3)
    plan = diff(blueprint("hubspot", data), [hubspot_sales()], HUBSPOT_STATE, HUBSPOT)
    assert len(plan.changes) == 4  # two fields each
    assert plan.counts().update == 2
    assert render_text(plan).splitlines()[-1] == (
        "Plan: 0 to create, 2 to update, 0 to archive, 0 blocked.")
    assert len(plan_to_dict(plan)["changes"]) == 4
