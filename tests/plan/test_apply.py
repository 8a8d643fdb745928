"""`apply` through an in-memory CRM: safe order, state after each step, crash and resume."""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_fakes import CrashError, FakeCrm, blueprint, sales, with_stage

from crmsync.plan.apply import apply, ordered_changes
from crmsync.plan.changes import (
    AdoptStage,
    ArchiveStage,
    CreateStage,
    MoveDeals,
    ParkStage,
    UpdateStage,
)
from crmsync.plan.state import KnownIds, MemoryState
from crmsync.provision import plan_client


def converge(bp: object, crm: FakeCrm, state: MemoryState) -> object:
    plan = plan_client(bp, crm, state.known_ids())  # type: ignore[arg-type]
    return apply(plan, crm, state)


@pytest.mark.parametrize("crm_name", ["hubspot", "pipedrive"])
def test_apply_to_an_empty_account_then_diff_is_clean(crm_name: str) -> None:
    crm, state = FakeCrm(crm_name), MemoryState()
    result = converge(blueprint(crm_name), crm, state)
    assert result.ok  # type: ignore[attr-defined]
    after = plan_client(blueprint(crm_name), crm, state.known_ids())
    assert after.is_clean
    [pipeline] = crm.list_pipelines()
    expected = 4 if crm_name == "hubspot" else 2
    assert len(pipeline.stages) == expected
    assert state.known_ids().pipelines == {"sales": pipeline.id}
    assert set(state.known_ids().stages.values()) == {s.id for s in pipeline.stages}


def test_state_is_recorded_after_each_step() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    converge(blueprint("hubspot"), crm, state)
    data = sales()
    data["stages"][2:2] = [  # type: ignore[index]
        {"key": "demo_held", "label": "Demo held", "probability": 0.7},
        {"key": "signed", "label": "Signed", "probability": 0.9},
    ]
    plan = plan_client(blueprint("hubspot", data), crm, state.known_ids())
    seen: list[int] = []
    apply(plan, crm, state, on_step=lambda change: seen.append(len(state.stages)))
    # Each create is recorded before the next step runs.
    creates = [c for c in ordered_changes(plan) if isinstance(c, CreateStage)]
    assert len(creates) == 2
    assert seen[:2] == [5, 6]


def test_safe_order_moves_deals_before_archiving() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    old = crm.seed("Sales", [("Meeting booked", 0.2), ("Thinking it over", 0.4),
                             ("Proposal sent", 0.6), ("Won", 1.0), ("Lost", 0.0)])
    thinking = old.stages[1].id
    crm.deals[thinking] = 3
    data = sales(retired_stages=[{"label": "Thinking it over", "move_deals_to": "negotiated"}])
    data["stages"].insert(2, {"key": "negotiated", "label": "Negotiated",  # type: ignore[attr-defined]
                              "probability": 0.8})
    plan = plan_client(blueprint("hubspot", data), crm, KnownIds())
    kinds = [type(c).__name__ for c in ordered_changes(plan)]
    assert kinds.index("CreateStage") < kinds.index("MoveDeals") < kinds.index("ArchiveStage")
    result = apply(plan, crm, state)
    assert result.ok, result.error
    negotiated = state.known_ids().stages[("sales", "negotiated")]
    assert crm.deals == {negotiated: 3}
    assert thinking not in crm.stage_ids()
    assert plan_client(blueprint("hubspot", data), crm, state.known_ids()).is_clean


def test_blocked_changes_are_skipped_and_reported() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    old = crm.seed("Sales", [("Meeting booked", 0.2), ("Thinking it over", 0.4),
                             ("Proposal sent", 0.6), ("Won", 1.0), ("Lost", 0.0)])
    crm.deals[old.stages[1].id] = 2
    result = converge(with_stage_probability(0.7), crm, state)
    assert result.ok  # type: ignore[attr-defined]
    assert len(result.blocked) == 1  # type: ignore[attr-defined]
    assert old.stages[1].id in crm.stage_ids()  # never removed while it holds deals
    after = plan_client(with_stage_probability(0.7), crm, state.known_ids())
    assert after.changes == ()
    assert len(after.blocked) == 1


def with_stage_probability(p: float) -> object:
    return blueprint("hubspot", with_stage(sales(), 1, probability=p))


def test_a_stage_that_gained_deals_since_the_plan_is_not_archived() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    old = crm.seed("Sales", [("Meeting booked", 0.2), ("Thinking it over", 0.4),
                             ("Proposal sent", 0.6), ("Won", 1.0), ("Lost", 0.0)])
    plan = plan_client(blueprint("hubspot"), crm, KnownIds())
    assert any(isinstance(c, ArchiveStage) for c in plan.changes)
    crm.deals[old.stages[1].id] = 1  # a deal arrives between diff and apply
    result = apply(plan, crm, state)
    assert not result.ok
    assert "holds 1 deal now; not archived" in (result.error or "")
    assert old.stages[1].id in crm.stage_ids()


def test_rename_keeps_the_remote_id() -> None:
    crm, state = FakeCrm("pipedrive"), MemoryState()
    converge(blueprint("pipedrive"), crm, state)
    before = dict(state.known_ids().stages)
    renamed = blueprint("pipedrive", with_stage(sales(), 1, label="Offer received"))
    plan = plan_client(renamed, crm, state.known_ids())
    assert [type(c) for c in plan.changes] == [UpdateStage]
    apply(plan, crm, state)
    assert state.known_ids().stages == before
    assert [s.label for s in crm.list_pipelines()[0].stages] == ["Meeting booked",
                                                                  "Offer received"]


@pytest.mark.parametrize("after_effect", [False, True], ids=["before-effect", "after-effect"])
@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_killed_apply_converges_on_rerun_without_duplicates(crash_at: int,
                                                            after_effect: bool) -> None:
    """A kill at any write — before the CRM acted, or after it acted but before we recorded."""
    crm = FakeCrm("hubspot")
    state = MemoryState()
    converge(blueprint("hubspot"), crm, state)
    data = sales(label="New business")
    data["stages"][1:1] = [  # type: ignore[index]
        {"key": "needs_assessed", "label": "Needs assessed", "probability": 0.3},
        {"key": "demo_held", "label": "Demo held", "probability": 0.4},
    ]
    target = blueprint("hubspot", data)
    ids_before = dict(state.known_ids().stages)

    crm.crash_at, crm.crash_after_effect = crm._writes + crash_at, after_effect
    plan = plan_client(target, crm, state.known_ids())
    first = apply(plan, crm, state)
    assert not first.ok
    assert "simulated kill" in (first.error or "")
    crm.crash_at = None

    second = plan_client(target, crm, state.known_ids())
    if after_effect:  # the CRM made the object but we never heard: found again by label
        assert not any(isinstance(c, CreateStage) and c.spec.label in
                       {s.label for s in crm.list_pipelines()[0].stages}
                       for c in second.changes)
    assert apply(second, crm, state).ok
    assert plan_client(target, crm, state.known_ids()).is_clean
    labels = [s.label for s in crm.list_pipelines()[0].stages]
    assert len(labels) == len(set(labels)) == 6
    for key, stage_id in ids_before.items():  # existing stages kept their ids
        assert state.known_ids().stages[key] == stage_id


def test_crash_error_is_a_remote_error() -> None:
    crm = FakeCrm("hubspot", crash_at=1)
    with pytest.raises(CrashError):
        crm.create_pipeline("x", 0, [])


def test_adopt_records_without_calls() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    crm.seed("Sales", [("Meeting booked", 0.2), ("Proposal sent", 0.6), ("Won", 1.0),
                       ("Lost", 0.0)])
    plan = plan_client(blueprint("hubspot"), crm, KnownIds())
    assert sum(isinstance(c, AdoptStage) for c in plan.changes) == 4
    assert apply(plan, crm, state).ok
    assert crm.calls == []
    assert len(state.known_ids().stages) == 4
    assert plan_client(blueprint("hubspot"), crm, state.known_ids()).is_clean


def test_move_deals_to_a_stage_created_in_the_same_apply_resolves_its_id() -> None:
    crm, state = FakeCrm("pipedrive"), MemoryState()
    old = crm.seed("Sales", [("Meeting booked", 0.2), ("Proposal sent", 0.6), ("Stalled", 0.1)])
    crm.deals[old.stages[2].id] = 4
    data = sales(retired_stages=[{"label": "Stalled", "move_deals_to": "revived"}])
    data["stages"].insert(2, {"key": "revived", "label": "Revived", "probability": 0.3})  # type: ignore[attr-defined]
    plan = plan_client(blueprint("pipedrive", data), crm, KnownIds())
    move = next(c for c in plan.changes if isinstance(c, MoveDeals))
    assert move.to_stage_id is None
    assert apply(plan, crm, state).ok
    assert crm.deals == {state.known_ids().stages[("sales", "revived")]: 4}


# --- labels changing hands: the fake refuses duplicates on HubSpot, like the CRM ---------------


def _applied(crm_name: str) -> tuple[FakeCrm, MemoryState]:
    crm, state = FakeCrm(crm_name), MemoryState()
    assert converge(blueprint(crm_name), crm, state).ok  # type: ignore[attr-defined]
    crm.calls.clear()
    return crm, state


def _swapped() -> object:
    return blueprint("hubspot", with_stage(with_stage(sales(), 0, label="Proposal sent"), 1,
                                           label="Meeting booked"))


def _labels(crm: FakeCrm) -> list[str]:
    return [s.label for s in crm.list_pipelines()[0].stages]


def test_without_ordering_a_swap_fails_half_way_on_hubspot() -> None:
    """What happened before labels were handed over in order: the second write is refused."""
    crm, state = _applied("hubspot")
    plan = plan_client(_swapped(), crm, state.known_ids())  # type: ignore[arg-type]
    naive = replace(plan, pipelines=tuple(
        replace(p, items=tuple(i for i in p.items if not isinstance(i, ParkStage)))
        for p in plan.pipelines))
    result = apply(naive, crm, state)
    assert not result.ok
    assert "duplicate stage label" in (result.error or "")


def test_a_swap_applies_through_a_temporary_label_and_keeps_ids() -> None:
    crm, state = _applied("hubspot")
    ids = dict(state.known_ids().stages)
    result = converge(_swapped(), crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["update_stage"] * 3  # park, rename, rename
    assert _labels(crm)[:2] == ["Proposal sent", "Meeting booked"]
    assert state.known_ids().stages == ids
    assert plan_client(_swapped(), crm, state.known_ids()).is_clean  # type: ignore[arg-type]


def test_pipedrive_swaps_without_a_temporary_label() -> None:
    crm, state = _applied("pipedrive")
    swapped = blueprint("pipedrive", with_stage(with_stage(sales(), 0, label="Proposal sent"),
                                                1, label="Meeting booked"))
    assert converge(swapped, crm, state).ok  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["update_stage"] * 2
    assert plan_client(swapped, crm, state.known_ids()).is_clean


@pytest.mark.parametrize("after_effect", [False, True], ids=["before-effect", "after-effect"])
@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_swap_killed_at_any_write_converges_on_rerun(crash_at: int,
                                                      after_effect: bool) -> None:
    crm, state = _applied("hubspot")
    ids = dict(state.known_ids().stages)
    crm.crash_at, crm.crash_after_effect = crm._writes + crash_at, after_effect
    assert not converge(_swapped(), crm, state).ok  # type: ignore[attr-defined]
    crm.crash_at = None
    rerun = plan_client(_swapped(), crm, state.known_ids())  # type: ignore[arg-type]
    if crash_at == 1 and after_effect:  # parked, then killed: a plain rename from there on
        assert "Meeting booked (renaming)" in _labels(crm)
        assert not any(isinstance(c, ParkStage) for c in rerun.changes)
    assert apply(rerun, crm, state).ok
    assert plan_client(_swapped(), crm, state.known_ids()).is_clean  # type: ignore[arg-type]
    assert state.known_ids().stages == ids
    assert len(crm.stage_ids()) == 4


def test_rename_into_a_label_freed_by_rename_and_archive_in_one_apply() -> None:
    """A chain: 'Thinking it over' is archived, proposal_sent takes its label, and a new
    stage takes 'Proposal sent'."""
    crm, state = FakeCrm("hubspot"), MemoryState()
    before = sales()
    before["stages"].insert(1, {"key": "thinking", "label": "Thinking it over",  # type: ignore[attr-defined]
                                "probability": 0.4})
    assert converge(blueprint("hubspot", before), crm, state).ok  # type: ignore[attr-defined]
    thinking = state.known_ids().stages[("sales", "thinking")]
    proposal = state.known_ids().stages[("sales", "proposal_sent")]
    data = with_stage(sales(), 1, label="Thinking it over")
    data["stages"].insert(2, {"key": "resent", "label": "Proposal sent",  # type: ignore[attr-defined]
                              "probability": 0.7})
    crm.calls.clear()
    result = converge(blueprint("hubspot", data), crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    labelled = [c for c in crm.calls if c[0] != "update_stage" or c[1] == proposal]
    assert labelled == [("archive_stage", thinking),
                        ("update_stage", proposal, "Thinking it over"),
                        ("create_stage", crm.list_pipelines()[0].id, "Proposal sent")]
    assert _labels(crm) == ["Meeting booked", "Thinking it over", "Proposal sent", "Won", "Lost"]
    assert plan_client(blueprint("hubspot", data), crm, state.known_ids()).is_clean


def _retiring_into_its_own_label(deals: int) -> tuple[FakeCrm, MemoryState, object, str]:
    crm, state = FakeCrm("hubspot"), MemoryState()
    data = sales()
    data["stages"].insert(1, {"key": "thinking", "label": "Thinking it over",  # type: ignore[attr-defined]
                              "probability": 0.4})
    assert converge(blueprint("hubspot", data), crm, state).ok  # type: ignore[attr-defined]
    old = state.known_ids().stages[("sales", "thinking")]
    crm.deals[old] = deals
    crm.calls.clear()
    data["retired_stages"] = [{"key": "thinking", "move_deals_to": "considering"}]
    data["stages"][1] = {"key": "considering", "label": "Thinking it over",  # type: ignore[index]
                         "probability": 0.5}
    return crm, state, blueprint("hubspot", data), old


def test_a_retired_stage_without_deals_is_archived_before_its_label_is_reused() -> None:
    crm, state, target, old = _retiring_into_its_own_label(0)
    result = converge(target, crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["archive_stage", "create_stage"]
    assert old not in crm.stage_ids()
    assert plan_client(target, crm, state.known_ids()).is_clean  # type: ignore[arg-type]


def test_deals_move_into_a_new_stage_that_takes_their_old_stages_label() -> None:
    crm, state, target, old = _retiring_into_its_own_label(3)
    result = converge(target, crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["update_stage", "create_stage", "move_deals",
                                         "archive_stage"]
    new = state.known_ids().stages[("sales", "considering")]
    assert crm.deals == {new: 3}
    assert old not in crm.stage_ids()
    assert plan_client(target, crm, state.known_ids()).is_clean  # type: ignore[arg-type]


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_retiring_into_its_own_label_killed_at_any_write_converges(crash_at: int) -> None:
    crm, state, target, _ = _retiring_into_its_own_label(3)
    crm.crash_at, crm.crash_after_effect = crm._writes + crash_at, True
    assert not converge(target, crm, state).ok  # type: ignore[attr-defined]
    crm.crash_at = None
    assert converge(target, crm, state).ok  # type: ignore[attr-defined]
    assert plan_client(target, crm, state.known_ids()).is_clean  # type: ignore[arg-type]
    assert sum(crm.deals.values()) == 3
    assert _labels(crm).count("Thinking it over") == 1


def test_the_only_stage_replaced_by_a_new_one_with_its_label() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    one = {"key": "sales", "label": "Sales",
           "stages": [{"key": "old", "label": "Qualified", "probability": 0.2}]}
    assert converge(blueprint("hubspot", one), crm, state).ok  # type: ignore[attr-defined]
    crm.calls.clear()
    replaced = {**one, "stages": [{"key": "qualified", "label": "Qualified",
                                   "probability": 0.3}],
                "retired_stages": [{"key": "old", "move_deals_to": "qualified"}]}
    result = converge(blueprint("hubspot", replaced), crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    # Archiving first would leave the pipeline without a stage, which HubSpot refuses.
    assert [c[0] for c in crm.calls] == ["update_stage", "create_stage", "archive_stage"]


def test_pipelines_swap_labels_on_hubspot() -> None:
    crm, state = FakeCrm("hubspot"), MemoryState()
    partners = {"key": "partners", "label": "Partners",
                "stages": [{"key": "intro", "label": "Intro", "probability": 0.1}]}
    assert converge(blueprint("hubspot", sales(), partners), crm, state).ok  # type: ignore[attr-defined]
    ids = dict(state.known_ids().pipelines)
    crm.calls.clear()
    swapped = blueprint("hubspot", sales(label="Partners"), {**partners, "label": "Sales"})
    result = converge(swapped, crm, state)
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["update_pipeline"] * 3
    assert state.known_ids().pipelines == ids
    assert plan_client(swapped, crm, state.known_ids()).is_clean


# --- order values -----------------------------------------------------------------------------


def _spread_orders(crm: FakeCrm) -> None:
    """Order values with room between them (HubSpot's UI or another tool may leave these)."""
    pipeline = crm._pipelines[0]
    pipeline.stages = [replace(s, order=10 * i) for i, s in enumerate(
        sorted(pipeline.stages, key=lambda s: s.order))]


def test_inserting_a_stage_mid_pipeline_is_one_write() -> None:
    crm, state = _applied("hubspot")
    _spread_orders(crm)
    assert plan_client(blueprint("hubspot"), crm, state.known_ids()).is_clean
    data = sales()
    data["stages"].insert(1, {"key": "demo_held", "label": "Demo held", "probability": 0.4})
    assert converge(blueprint("hubspot", data), crm, state).ok  # type: ignore[attr-defined]
    assert [c[0] for c in crm.calls] == ["create_stage"]  # it carries its displayOrder
    assert _labels(crm) == ["Meeting booked", "Demo held", "Proposal sent", "Won", "Lost"]


@pytest.mark.parametrize("spread", [False, True], ids=["dense", "spread"])
def test_swapping_two_adjacent_stages_is_at_most_two_order_writes(spread: bool) -> None:
    crm, state = _applied("hubspot")
    if spread:
        _spread_orders(crm)
    data = sales()
    data["stages"] = [data["stages"][i] for i in (1, 0, 2, 3)]  # type: ignore[index]
    assert converge(blueprint("hubspot", data), crm, state).ok  # type: ignore[attr-defined]
    assert len(crm.calls) == (1 if spread else 2)
    assert _labels(crm) == ["Proposal sent", "Meeting booked", "Won", "Lost"]
