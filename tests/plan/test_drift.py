"""Drift: a hand edit in the CRM since the last apply is said so in the plan.

For pipelines the blueprint is the desired state (as in Terraform): `apply` reverts a hand-made
rename and archives a hand-made stage, and `diff` says that is what it does. The labels the
last apply recorded (`KnownIds.*_labels`, the store's `provisioning_state.label`) tell a hand
edit from a blueprint change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plan_fakes import HUBSPOT, FakeCrm, blueprint, sales

from crmsync.adapters.base import RemotePipeline, RemoteStage, StageSpec
from crmsync.known_ids import KnownIds
from crmsync.plan.apply import apply
from crmsync.plan.changes import ArchiveStage, Drift, UpdatePipeline, UpdateStage
from crmsync.plan.diff import diff
from crmsync.plan.render import plan_to_dict, render_text
from crmsync.provision import plan_client
from crmsync.store import open_store

if TYPE_CHECKING:
    from pathlib import Path

IDS = {("sales", "meeting_booked"): "s1", ("sales", "proposal_sent"): "s2",
       ("sales", "won"): "s3", ("sales", "lost"): "s4"}
LABELS = {("sales", "meeting_booked"): "Meeting booked", ("sales", "proposal_sent"):
          "Proposal sent", ("sales", "won"): "Won", ("sales", "lost"): "Lost"}
APPLIED = KnownIds({"sales": "p1"}, IDS, {"sales": "Sales"}, LABELS)


def remote(proposal: str = "Proposal sent", pipeline: str = "Sales",
           extra: tuple[RemoteStage, ...] = ()) -> RemotePipeline:
    return RemotePipeline("p1", pipeline, 0, (
        RemoteStage("s1", "Meeting booked", 0, 0.2), *extra,
        RemoteStage("s2", proposal, 1, 0.6),
        RemoteStage("s3", "Won", 2, 1.0, "won"), RemoteStage("s4", "Lost", 3, 0.0, "lost"),
    ))


def test_a_stage_renamed_by_hand_is_drift() -> None:
    plan = diff(blueprint("hubspot"), [remote("Hand edit")], APPLIED, HUBSPOT)
    [change] = plan.changes
    assert isinstance(change, UpdateStage)
    assert change.drift == Drift("hubspot", "renamed", "Proposal sent")
    assert render_text(plan).splitlines()[2] == (
        "    ~ stage 'Proposal sent' (proposal_sent): label 'Hand edit' → 'Proposal sent' "
        "(drift: renamed in HubSpot since the last apply)")
    [data] = plan_to_dict(plan)["changes"]
    assert data["drift"] == {"kind": "renamed", "crm": "hubspot",
                             "recorded_label": "Proposal sent"}


def test_a_rename_in_the_blueprint_is_no_drift() -> None:
    data = sales(stages=[{"key": "meeting_booked", "label": "Meeting booked",
                          "probability": 0.2},
                         {"key": "proposal_sent", "label": "Offer sent", "probability": 0.6},
                         {"key": "won", "label": "Won", "probability": 1.0, "outcome": "won"},
                         {"key": "lost", "label": "Lost", "probability": 0.0,
                          "outcome": "lost"}])
    plan = diff(blueprint("hubspot", data), [remote()], APPLIED, HUBSPOT)
    [change] = plan.changes
    assert isinstance(change, UpdateStage)
    assert change.drift is None
    assert "drift" not in render_text(plan)
    assert "drift" not in plan_to_dict(plan)["changes"][0]


def test_without_recorded_labels_nothing_is_called_drift() -> None:
    plan = diff(blueprint("hubspot"), [remote("Hand edit")], KnownIds({"sales": "p1"}, IDS),
                HUBSPOT)
    assert [getattr(c, "drift", None) for c in plan.changes] == [None]


def test_a_pipeline_renamed_by_hand_is_drift() -> None:
    plan = diff(blueprint("hubspot"), [remote(pipeline="Vertrieb")], APPLIED, HUBSPOT)
    [change] = plan.changes
    assert isinstance(change, UpdatePipeline)
    assert change.drift == Drift("hubspot", "renamed", "Sales")
    assert render_text(plan).splitlines()[2] == (
        "    ~ pipeline label 'Vertrieb' → 'Sales' (drift: renamed in HubSpot since the last "
        "apply)")


def test_a_stage_added_by_hand_that_apply_archives_is_drift() -> None:
    hand_made = RemoteStage("s9", "Thinking it over", 1, 0.4)
    plan = diff(blueprint("hubspot"), [remote(extra=(hand_made,))], APPLIED, HUBSPOT,
                {"s9": 0})
    [change] = plan.changes
    assert isinstance(change, ArchiveStage)
    assert change.drift == Drift("hubspot", "added")
    assert render_text(plan).splitlines()[2] == (
        "    - stage 'Thinking it over': archive (drift: added in HubSpot by hand; not in the "
        "blueprint)")
    assert plan_to_dict(plan)["changes"][0]["drift"]["kind"] == "added"


def test_a_stage_of_an_adopted_pipeline_is_no_drift() -> None:
    """First apply (ids not recorded yet): an extra stage is not the blueprint's, not drift."""
    hand_made = RemoteStage("s9", "Thinking it over", 1, 0.4)
    plan = diff(blueprint("hubspot"), [remote(extra=(hand_made,))], KnownIds(), HUBSPOT,
                {"s9": 0})
    archive = next(c for c in plan.changes if isinstance(c, ArchiveStage))
    assert archive.drift is None


def test_hand_edits_through_the_store_are_drift_and_apply_reverts_them(tmp_path: Path
                                                                       ) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'crmsync.db'}")
    try:
        state = store.provisioning("acme", "hubspot")
        crm = FakeCrm("hubspot")
        assert apply(plan_client(blueprint("hubspot"), crm, state.known_ids()), crm, state).ok
        [pipeline] = crm.list_pipelines()
        stage = next(s for s in pipeline.stages if s.label == "Proposal sent")
        crm.update_stage(pipeline.id, stage.id, StageSpec("Hand edit", stage.order, 0.6))
        crm.create_stage(pipeline.id, StageSpec("Thinking it over", 1, 0.4))

        plan = plan_client(blueprint("hubspot"), crm, state.known_ids())
        text = render_text(plan)
        assert ("label 'Hand edit' → 'Proposal sent' (drift: renamed in HubSpot since the "
                "last apply)") in text
        assert ("- stage 'Thinking it over': archive (drift: added in HubSpot by hand; not in "
                "the blueprint)") in text
        assert apply(plan, crm, state).ok
        assert plan_client(blueprint("hubspot"), crm, state.known_ids()).is_clean
    finally:
        store.close()
