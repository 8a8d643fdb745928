"""One contract, every adapter: the same tests run against HubSpot and Pipedrive in the sandbox.

Where the CRMs really differ, the test asks the adapter's `capabilities` rather than its name,
so a new adapter inherits the whole suite by adding one parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crmsync.adapters.base import CrmAdapter, RemotePipeline, StageSpec
from crmsync.adapters.registry import create_adapter
from crmsync.errors import FatalRemoteError

from .sandbox_helpers import create_deal, sandbox_crms, set_faults, settings_for, stats

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .conftest import FakeTime

STAGES = (
    StageSpec("Meeting booked", 0, 0.1),
    StageSpec("Needs assessed", 1, 0.3, rot_after_days=14),
    StageSpec("Proposal received", 2, 0.6),
    StageSpec("Won", 3, 1.0, outcome="won"),
    StageSpec("Lost", 4, 0.0, outcome="lost"),
)
OPEN_LABELS = ["Meeting booked", "Needs assessed", "Proposal received"]


@pytest.fixture(params=["hubspot", "pipedrive"])
def adapter(request: pytest.FixtureRequest, sandbox: str,
            fake_time: FakeTime) -> Iterator[CrmAdapter]:
    crm: str = request.param
    if crm not in sandbox_crms(sandbox):
        pytest.skip(f"the sandbox does not emulate {crm} yet")
    adapter = create_adapter(crm, settings_for(sandbox), sleep=fake_time.sleep,
                             clock=fake_time.clock)
    yield adapter
    adapter.close()


def find(adapter: CrmAdapter, pipeline_id: str) -> RemotePipeline:
    found = [p for p in adapter.list_pipelines() if p.id == pipeline_id]
    assert len(found) == 1, f"pipeline {pipeline_id} listed {len(found)} times"
    return found[0]


def open_stage_ids(pipeline: RemotePipeline) -> list[str]:
    return [s.id for s in pipeline.stages if s.outcome is None]


def test_list_on_a_fresh_account(adapter: CrmAdapter) -> None:
    pipelines = adapter.list_pipelines()
    assert all(isinstance(p, RemotePipeline) for p in pipelines)
    for pipeline in pipelines:
        orders = [s.order for s in pipeline.stages]
        assert orders == sorted(orders)
        assert all(s.probability is None or 0.0 <= s.probability <= 1.0
                   for s in pipeline.stages)
    assert len({p.id for p in pipelines}) == len(pipelines)


def test_create_pipeline_with_stages(adapter: CrmAdapter) -> None:
    created = adapter.create_pipeline("Neukunden", 5, STAGES)

    listed = find(adapter, created.id)
    assert listed == created  # what create returned is what the CRM now says
    assert listed.label == "Neukunden"
    assert [s.label for s in listed.stages if s.outcome is None] == OPEN_LABELS
    assert [s.probability for s in listed.stages if s.outcome is None] == [0.1, 0.3, 0.6]
    outcomes = {s.label: (s.outcome, s.probability) for s in listed.stages if s.outcome}
    if adapter.capabilities.outcome_stages:
        assert outcomes == {"Won": ("won", 1.0), "Lost": ("lost", 0.0)}
    else:
        assert outcomes == {}
        assert [s.label for s in listed.stages] == OPEN_LABELS  # won/lost are not stages
    needs = listed.stages[1]
    assert needs.rot_after_days == (14 if adapter.capabilities.rotting else None)


def test_rename_stage_keeps_its_id(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)
    stage = pipeline.stages[1]

    updated = adapter.update_stage(pipeline.id, stage.id,
                                   StageSpec("Bedarf ermittelt", 1, 0.3, rot_after_days=14))

    assert updated.id == stage.id
    listed = find(adapter, pipeline.id)
    assert listed.stage_by_id(stage.id) is not None
    assert listed.stage_by_id(stage.id).label == "Bedarf ermittelt"  # type: ignore[union-attr]
    assert [s.id for s in listed.stages] == [s.id for s in pipeline.stages]


def test_change_probability(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)
    stage = pipeline.stages[0]

    adapter.update_stage(pipeline.id, stage.id, StageSpec(stage.label, stage.order, 0.4))

    assert find(adapter, pipeline.id).stage_by_id(stage.id).probability == 0.4  # type: ignore[union-attr]


def test_rotting_where_the_crm_has_it(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES[:1])
    stage = pipeline.stages[0]

    adapter.update_stage(pipeline.id, stage.id, StageSpec(stage.label, 0, 0.1, rot_after_days=5))
    after_on = find(adapter, pipeline.id).stages[0].rot_after_days
    adapter.update_stage(pipeline.id, stage.id, StageSpec(stage.label, 0, 0.1))
    after_off = find(adapter, pipeline.id).stages[0].rot_after_days

    assert after_on == (5 if adapter.capabilities.rotting else None)
    assert after_off is None


def test_add_stage(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)

    added = adapter.create_stage(pipeline.id, StageSpec("Contract signed", 3, 0.9))

    assert added is not None
    listed = find(adapter, pipeline.id)
    open_labels = [s.label for s in listed.stages if s.outcome is None]
    # HubSpot places it by displayOrder; Pipedrive can only add it last: same result here
    assert open_labels == [*OPEN_LABELS, "Contract signed"]
    assert listed.stage_by_id(added.id) == added


def test_add_outcome_stage_only_where_outcomes_are_stages(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES[:3])

    added = adapter.create_stage(pipeline.id, StageSpec("Won", 3, 1.0, outcome="won"))

    listed = find(adapter, pipeline.id)
    if adapter.capabilities.outcome_stages:
        assert added is not None
        assert added.outcome == "won"
        assert listed.stage_by_id(added.id) is not None
    else:
        assert added is None
        assert len(listed.stages) == 3


def test_reorder_stages_where_writable(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES[:3])
    first, second = pipeline.stages[0], pipeline.stages[1]
    if not adapter.capabilities.stage_order_writable:
        assert adapter.capabilities.order_note  # the plan can say why, and what to do
        return

    adapter.update_stage(pipeline.id, first.id, StageSpec(first.label, 1, 0.1))
    adapter.update_stage(pipeline.id, second.id, StageSpec(second.label, 0, 0.3))

    assert [s.label for s in find(adapter, pipeline.id).stages[:2]] == [
        "Needs assessed", "Meeting booked"]


def test_archive_stage(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)
    doomed = pipeline.stages[2]

    adapter.archive_stage(pipeline.id, doomed.id)

    listed = find(adapter, pipeline.id)
    assert listed.stage_by_id(doomed.id) is None
    assert [s.label for s in listed.stages if s.outcome is None] == OPEN_LABELS[:2]


def test_update_pipeline(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES[:2])

    adapter.update_pipeline(pipeline.id, label="Vertrieb", order=3)

    listed = find(adapter, pipeline.id)
    assert listed.label == "Vertrieb"
    if adapter.capabilities.pipeline_order_writable:
        assert listed.order == 3
    assert [s.id for s in listed.stages] == [s.id for s in pipeline.stages]  # no stage lost


def test_count_and_move_deals(adapter: CrmAdapter, sandbox: str) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)
    old, new = open_stage_ids(pipeline)[:2]
    for n in range(3):
        create_deal(sandbox, adapter.crm, pipeline.id, old, f"Deal {n}")
    create_deal(sandbox, adapter.crm, pipeline.id, new, "Deal in new")

    assert adapter.count_deals(pipeline.id, old) == 3
    assert adapter.move_deals(pipeline.id, old, new) == 3
    assert adapter.count_deals(pipeline.id, old) == 0
    assert adapter.count_deals(pipeline.id, new) == 4


def test_move_deals_over_several_pages(adapter: CrmAdapter, sandbox: str) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)
    old, new = open_stage_ids(pipeline)[:2]
    for n in range(105):  # more than one HubSpot search page / batch of 100
        create_deal(sandbox, adapter.crm, pipeline.id, old, f"Deal {n}")

    assert adapter.move_deals(pipeline.id, old, new) == 105
    assert adapter.count_deals(pipeline.id, old) == 0
    assert adapter.count_deals(pipeline.id, new) == 105


def test_archive_pipeline(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES)

    adapter.archive_pipeline(pipeline.id)

    assert pipeline.id not in {p.id for p in adapter.list_pipelines()}


def test_non_ascii_labels_round_trip(adapter: CrmAdapter) -> None:
    stages = (
        StageSpec("Зустріч призначено", 0, 0.1),
        StageSpec("Bedarf geprüft – Größe bestätigt", 1, 0.5),
        StageSpec("Пропозицію отримано", 2, 0.7),
    )
    pipeline = adapter.create_pipeline("Продажі · Neukunden Süd", 1, stages)
    renamed = adapter.update_stage(pipeline.id, pipeline.stages[0].id,
                                   StageSpec("Зустріч відбулася – Übergabe", 0, 0.1))

    listed = find(adapter, pipeline.id)
    assert listed.label == "Продажі · Neukunden Süd"
    assert [s.label for s in listed.stages] == [
        "Зустріч відбулася – Übergabe", "Bedarf geprüft – Größe bestätigt",
        "Пропозицію отримано"]
    assert renamed.label == "Зустріч відбулася – Übergabe"


def test_unknown_ids_are_fatal_errors(adapter: CrmAdapter) -> None:
    pipeline = adapter.create_pipeline("Sales", 1, STAGES[:1])
    with pytest.raises(FatalRemoteError) as raised:
        adapter.archive_stage(pipeline.id, "999999999")
    assert raised.value.status in (400, 404)


def test_same_end_state_with_faults(adapter: CrmAdapter, sandbox: str,
                                    fake_time: FakeTime) -> None:
    """429s, 5xx and dropped connections: retries hide them, and nothing is created twice."""
    adapter = create_adapter(adapter.crm, settings_for(sandbox, max_retries=10),
                             sleep=fake_time.sleep, clock=fake_time.clock)
    set_faults(sandbox, rate_429=0.25, rate_5xx=0.15, rate_drop=0.10, seed=6)

    pipeline = adapter.create_pipeline("Faulty", 1, STAGES)
    added = adapter.create_stage(pipeline.id, StageSpec("Contract signed", 3, 0.9))
    adapter.update_stage(pipeline.id, pipeline.stages[0].id, StageSpec("Meeting held", 0, 0.2))
    adapter.archive_stage(pipeline.id, pipeline.stages[1].id)
    listed = [p for p in adapter.list_pipelines() if p.label == "Faulty"]

    injected = stats(sandbox)["faults_injected"]
    set_faults(sandbox, rate_429=0.0, rate_5xx=0.0, rate_drop=0.0)
    assert injected["total"] >= 3  # the run really met faults
    assert len(listed) == 1
    assert [s.label for s in listed[0].stages if s.outcome is None] == [
        "Meeting held", "Proposal received", "Contract signed"]
    assert added is not None
    assert len(fake_time.sleeps) == injected["total"]  # every fault cost exactly one retry
