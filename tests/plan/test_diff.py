"""`diff` data in, data out: every kind of change, for both CRMs' capabilities. No I/O."""

from __future__ import annotations

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
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.diff import diff, quantize_probability, stage_candidates_for_removal
from crmsync.plan.render import plan_to_dict
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
