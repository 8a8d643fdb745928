"""`apply` through an in-memory CRM: safe order, state after each step, crash and resume."""

from __future__ import annotations

import pytest
from plan_fakes import CrashError, FakeCrm, blueprint, sales, with_stage

from crmsync.plan.apply import apply, ordered_changes
from crmsync.plan.changes import (
    AdoptStage,
    ArchiveStage,
    CreateStage,
    MoveDeals,
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
