"""Rendering hand-built plans: text like an infrastructure plan, JSON as data."""

from __future__ import annotations

import json

from crmsync.adapters.base import StageSpec
from crmsync.plan.changes import (
    AdoptStage,
    ArchivePipeline,
    ArchiveStage,
    Blocked,
    CreatePipeline,
    CreateStage,
    MoveDeals,
    NewStage,
    Note,
    ParkPipeline,
    ParkStage,
    PipelinePlan,
    Plan,
    PlanCounts,
    UpdatePipeline,
    UpdateStage,
)
from crmsync.plan.render import (
    describe_item,
    item_to_dict,
    plan_to_dict,
    render_json,
    render_text,
)

SPEC = StageSpec("Proposal sent", 1, 0.7)

PLAN = Plan("acme", "hubspot", (
    PipelinePlan("sales", "Sales", "p1", (
        UpdatePipeline("sales", "p1", "label", "Sales pipeline", "Sales", "Sales", 0),
        CreateStage("sales", "p1", "demo_held", StageSpec("Demo held", 2, 0.4)),
        UpdateStage("sales", "p1", "proposal_sent", "s2", "label", "Offer sent",
                    "Proposal sent", SPEC),
        UpdateStage("sales", "p1", "proposal_sent", "s2", "probability", 0.6, 0.7, SPEC),
        MoveDeals("sales", "p1", "Thinking it over", "s9", "demo_held", None, 3),
        ArchiveStage("sales", "p1", "s9", "Thinking it over", None, 3),
        Blocked("sales", "stage 'Parked'", "stage-holds-deals", {"label": "Parked", "deals": 2},
                ArchiveStage("sales", "p1", "s8", "Parked", None, 2)),
        Note("sales", "no-rotting", {"crm": "hubspot", "labels": ["Demo held"]}),
    )),
    PipelinePlan("partners", "Partners", None, (
        CreatePipeline("partners", "Partners", 1, (
            NewStage("intro_booked", StageSpec("Intro booked", 0, 0.2)),
            NewStage("won", StageSpec("Won", 1, 1.0, "won")),
        )),
    )),
    PipelinePlan("legacy", "Legacy", "p3", (ArchivePipeline("legacy", "p3", "Legacy", ()),)),
), (Note(None, "unmanaged-pipelines", {"crm": "hubspot", "labels": ["Default"]}),))


def test_text_plan_reads_like_an_infrastructure_plan() -> None:
    assert render_text(PLAN) == """\
acme (hubspot)
  pipeline 'Sales' (sales)
    ~ pipeline label 'Sales pipeline' → 'Sales'
    + stage 'Demo held' (demo_held): probability 0.4
    ~ stage 'Proposal sent' (proposal_sent): label 'Offer sent' → 'Proposal sent'
    ~ stage 'Proposal sent' (proposal_sent): probability 0.6 → 0.7
    > move 3 deals from stage 'Thinking it over' to stage demo_held
    - stage 'Thinking it over': archive
    ! stage 'Parked': stage 'Parked' still holds 2 deals; add it to retired_stages with \
move_deals_to
    · HubSpot has no rotting: rot_after_days ignored ('Demo held')
  + pipeline 'Partners' (partners) with 2 stages
      + stage 'Intro booked' (intro_booked): probability 0.2
      + stage 'Won' (won): probability 1, outcome won
  - pipeline 'Legacy' (legacy): archive
  · 1 pipeline in HubSpot not in the blueprint, left untouched: 'Default'
Plan: 2 to create, 2 to update, 1 to move deals, 2 to archive, 1 blocked."""


def test_clean_plan_is_one_line_plus_notes() -> None:
    assert render_text(Plan("acme", "hubspot")) == (
        "No changes. acme (hubspot) matches its blueprint.")
    plan = Plan("acme", "pipedrive", (PipelinePlan("sales", "Sales", "7", (
        Note("sales", "outcomes-are-statuses", {"crm": "pipedrive", "labels": ["Won", "Lost"]}),
    )),))
    assert plan.is_clean
    assert render_text(plan).splitlines() == [
        "No changes. acme (pipedrive) matches its blueprint.",
        "  · Pipedrive: won/lost are deal statuses, not stages — 2 outcome stages not created "
        "('Won', 'Lost')",
    ]


def test_adopt_and_rotting_and_none_values() -> None:
    spec = StageSpec("Demo held", 2, 0.4, rot_after_days=14)
    plan = Plan("acme", "pipedrive", (PipelinePlan("sales", "Sales", "7", (
        AdoptStage("sales", "7", "demo_held", "71", "Demo held", "label"),
        UpdateStage("sales", "7", "demo_held", "71", "rotting", None, 14, spec),
    )),))
    lines = render_text(plan).splitlines()
    assert lines[2] == "    = stage 'Demo held' (demo_held) is id 71 (matched by label)"
    assert lines[3] == "    ~ stage 'Demo held' (demo_held): rot_after_days none → 14"
    assert lines[-1] == "Plan: 0 to create, 1 to update, 0 to archive, 1 to adopt, 0 blocked."


def test_json_has_the_same_changes_as_data() -> None:
    data = json.loads(render_json([PLAN]))
    [client] = data["clients"]
    assert client["client"] == "acme"
    assert client["status"] == "blocked"
    # Objects, not fields: 'Proposal sent' has a new label and a new probability (one
    # update, two changes), the pipeline a new label (one update).
    assert client["counts"] == {"create": 2, "update": 2, "archive": 2, "move": 1, "adopt": 0,
                                "blocked": 1, "forget": 0}
    actions = [c["action"] for c in client["changes"]]
    assert actions == ["update", "create", "update", "update", "move", "archive", "blocked",
                       "create", "archive"]
    probability = client["changes"][3]
    assert probability == {
        "action": "update",
        "target": {"kind": "stage", "pipeline": "sales", "stage": "proposal_sent",
                   "label": "Proposal sent", "id": "s2"},
        "field": "probability", "old": 0.6, "new": 0.7, "reason": None,
    }
    blocked = client["changes"][6]
    assert blocked["reason"].startswith("stage 'Parked' still holds 2 deals")
    # The reason as data, for programs: a code and its parameters.
    assert (blocked["code"], blocked["params"]) == ("stage-holds-deals",
                                                    {"label": "Parked", "deals": 2})
    assert blocked["change"]["action"] == "archive"
    assert client["notes"][0]["text"].startswith("1 pipeline in HubSpot")
    assert client["notes"][0]["code"] == "unmanaged-pipelines"
    assert client["notes"][0]["params"] == {"crm": "hubspot", "labels": ["Default"]}


def test_json_keeps_non_ascii_readable() -> None:
    item = CreateStage("prodazhi", "1", "zustimu", StageSpec("Зустріч призначено", 0, 0.2))
    assert item_to_dict(item)["new"]["label"] == "Зустріч призначено"
    assert "Зустріч" in render_json([Plan("acme", "pipedrive", (PipelinePlan(
        "prodazhi", "Продажі", "1", (item,)),))])


def test_plan_to_dict_of_a_clean_plan() -> None:
    assert plan_to_dict(Plan("acme", "hubspot"))["status"] == "clean"


def test_an_adopt_only_plan_says_only_ids_are_recorded() -> None:
    plan = Plan("acme", "hubspot", (PipelinePlan("sales", "Sales", "7", (
        AdoptStage("sales", "7", "demo_held", "71", "Demo held", "label"),
        AdoptStage("sales", "7", "won", "72", "Won", "previous label 'Closed won'"),
    )),))
    assert plan.state_only
    assert render_text(plan).splitlines()[-2:] == [
        "Nothing changes in HubSpot: apply only records the ids of 2 matched objects (= above).",
        "Plan: 0 to create, 0 to update, 0 to archive, 2 to adopt, 0 blocked.",
    ]
    assert not PLAN.state_only
    assert "Nothing changes" not in render_text(PLAN)


# --- temporary labels (parks) ---------------------------------------------------------------

FIRST, SECOND = StageSpec("B", 0, 0.2), StageSpec("A", 1, 0.4)  # after the swap
SWAP = Plan("acme", "hubspot", (PipelinePlan("sales", "Sales", "p1", (
    ParkStage("sales", "p1", "first", "s1", "A", "A (renaming)", StageSpec("A (renaming)", 0,
                                                                           0.2)),
    UpdateStage("sales", "p1", "first", "s1", "label", "A", "B", FIRST),
    UpdateStage("sales", "p1", "first", "s1", "probability", 0.1, 0.2, FIRST),
    UpdateStage("sales", "p1", "second", "s2", "label", "B", "A", SECOND),
)),), unique_labels=True)


def test_a_park_is_no_line_of_its_own_but_said_on_the_rename() -> None:
    assert render_text(SWAP).splitlines() == [
        "acme (hubspot)",
        "  pipeline 'Sales' (sales)",
        "    ~ stage 'B' (first): label 'A' → 'B' (via 'A (renaming)')",
        "    ~ stage 'B' (first): probability 0.1 → 0.2",
        "    ~ stage 'A' (second): label 'B' → 'A'",
        "Plan: 0 to create, 2 to update, 0 to archive, 0 blocked.",
    ]


def test_a_park_as_a_step_of_apply_and_as_data() -> None:
    park = SWAP.changes[0]
    assert describe_item(park) == ("~ stage 'A' (first): label 'A' → 'A (renaming)' for now, "
                                   "so another stage can take it (then renamed)")
    pipeline_park = ParkPipeline("sales", "p1", "Sales", "Sales (renaming)", 0)
    assert describe_item(pipeline_park) == (
        "~ pipeline label 'Sales' → 'Sales (renaming)' for now, so another pipeline can take "
        "it (then renamed)")
    data = plan_to_dict(SWAP)
    assert data["changes"][0] == {
        "action": "park",
        "target": {"kind": "stage", "pipeline": "sales", "stage": "first", "label": "A",
                   "id": "s1"},
        "field": "label", "old": "A", "new": "A (renaming)", "then": "rename",
        "reason": "a temporary label, so another stage can take this one in the same apply",
    }
    assert data["counts"]["update"] == 2
    # The order apply runs them in: park, the rename that takes 'A', then the other stage.
    assert data["apply_order"] == [0, 3, 1, 2]
    assert item_to_dict(pipeline_park)["target"]["kind"] == "pipeline"


def test_an_archived_stage_that_stepped_aside_says_so() -> None:
    plan = Plan("acme", "hubspot", (PipelinePlan("sales", "Sales", "p1", (
        CreateStage("sales", "p1", "new", StageSpec("Old", 1, 0.5)),
        ParkStage("sales", "p1", "old", "s9", "Old", "Old (archiving)",
                  StageSpec("Old (archiving)", 1, 0.4), "archive"),
        MoveDeals("sales", "p1", "Old", "s9", "new", None, 2, "Old", "old"),
        ArchiveStage("sales", "p1", "s9", "Old", "old", 2),
    )),), unique_labels=True)
    assert render_text(plan).splitlines()[4] == (
        "    - stage 'Old' (old): archive (its label freed first: renamed 'Old (archiving)')")
    assert plan_to_dict(plan)["apply_order"] == [1, 0, 2, 3]
    assert plan.counts() == PlanCounts(create=1, move=1, archive=1)
