"""The Pipedrive adapter and the shared HTTP policy, against a stateful fake over `responses`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import requests
import responses

from crmsync.adapters.base import CrmAdapter, StageSpec
from crmsync.adapters.http_policy import PIPEDRIVE, HttpPolicy
from crmsync.adapters.pipedrive import PipedriveAdapter
from crmsync.errors import FatalRemoteError, RetriableRemoteError

from .fake_pipedrive import BASE_URL, TOKEN, FakePipedrive

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


@pytest.fixture
def fake() -> Iterator[FakePipedrive]:
    fake = FakePipedrive()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        yield fake


def make_adapter(fake_time: FakeTime, *, max_retries: int = 4, jitter: float = 0.0,
                 page_size: int = 500) -> PipedriveAdapter:
    policy = HttpPolicy(PIPEDRIVE, max_retries=max_retries, sleep=fake_time.sleep,
                        clock=fake_time.clock, secrets=[TOKEN], jitter=jitter)
    return PipedriveAdapter(BASE_URL, TOKEN, policy=policy, page_size=page_size)


@pytest.fixture
def adapter(fake: FakePipedrive, fake_time: FakeTime) -> PipedriveAdapter:
    return make_adapter(fake_time)


# -- the interface ----------------------------------------------------------------------------


def test_is_a_crm_adapter_with_honest_capabilities(adapter: PipedriveAdapter) -> None:
    assert isinstance(adapter, CrmAdapter)
    caps = adapter.capabilities
    assert not caps.stage_order_writable
    assert not caps.pipeline_order_writable
    assert not caps.outcome_stages
    assert caps.rotting
    assert caps.probability_step == 0.01
    assert caps.max_stages_per_pipeline is None
    assert "read-only" in caps.order_note
    assert "drag" in caps.order_note.lower()


def test_create_pipeline_skips_outcome_stages_and_enables_probability(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = adapter.create_pipeline("Neukunden", 0, STAGES)

    assert [s.label for s in pipeline.stages] == [
        "Meeting booked", "Needs assessed", "Proposal received"]
    [created] = fake.calls_to("POST", "/api/v2/pipelines")
    assert created.body == {"name": "Neukunden", "is_deal_probability_enabled": True}
    assert created.headers["x-api-token"] == TOKEN
    bodies = [c.body for c in fake.calls_to("POST", "/api/v2/stages")]
    assert bodies[1] == {"name": "Needs assessed", "pipeline_id": int(pipeline.id),
                         "deal_probability": 30, "is_deal_rot_enabled": True,
                         "days_to_rotten": 14}
    assert bodies[0]["is_deal_rot_enabled"] is False
    assert "days_to_rotten" not in bodies[0]
    assert len(bodies) == 3  # won and lost are deal statuses, never stages


def test_create_stage_returns_none_for_an_outcome(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = fake.add_pipeline("Sales")
    assert adapter.create_stage(str(pipeline["id"]), StageSpec("Won", 9, 1.0, "won")) is None
    assert fake.calls == []


def test_list_pipelines_maps_fields_skips_deleted_and_pages(
    fake: FakePipedrive, fake_time: FakeTime
) -> None:
    second = fake.add_pipeline("Partner", order_nr=2)
    first = fake.add_pipeline("Sales", order_nr=1)
    fake.add_pipeline("Old", is_deleted=True)
    fake.add_stage(first["id"], "Angebot erhalten", deal_probability=60, order_nr=2)
    fake.add_stage(first["id"], "Zustimmung", deal_probability=5, order_nr=1,
                   is_deal_rot_enabled=True, days_to_rotten=7)
    fake.add_stage(first["id"], "Gone", is_deleted=True)
    fake.add_stage(second["id"], "Only", deal_probability=40)
    adapter = make_adapter(fake_time, page_size=2)

    pipelines = adapter.list_pipelines()

    assert [p.label for p in pipelines] == ["Sales", "Partner"]
    sales = pipelines[0]
    assert [(s.label, s.order, s.probability, s.rot_after_days, s.outcome)
            for s in sales.stages] == [("Zustimmung", 1, 0.05, 7, None),
                                       ("Angebot erhalten", 2, 0.6, None, None)]
    # page size 2 forced several pages, following next_cursor until null
    assert len(fake.calls_to("GET", "/api/v2/stages")) == 2  # 4 stages
    assert len(fake.calls_to("GET", "/api/v2/pipelines")) == 2  # 3 pipelines


def test_probability_is_none_where_the_pipeline_has_it_off_and_writing_turns_it_on(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = fake.add_pipeline("Sales", is_deal_probability_enabled=False)
    stage = fake.add_stage(pipeline["id"], "Qualified", deal_probability=100)
    [listed] = adapter.list_pipelines()
    assert listed.stages[0].probability is None

    updated = adapter.update_stage(listed.id, str(stage["id"]), StageSpec("Qualified", 1, 0.2))

    assert updated.probability == 0.2
    assert fake.pipelines[pipeline["id"]]["is_deal_probability_enabled"] is True
    assert adapter.list_pipelines()[0].stages[0].probability == 0.2


def test_update_stage_keeps_its_id_and_writes_only_writable_fields(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = adapter.create_pipeline("Sales", 0, STAGES[:2])
    stage = pipeline.stages[1]

    updated = adapter.update_stage(pipeline.id, stage.id,
                                   StageSpec("Bedarf ermittelt", 7, 0.35, rot_after_days=None))

    assert updated.id == stage.id
    assert (updated.label, updated.probability, updated.rot_after_days) == (
        "Bedarf ermittelt", 0.35, None)
    [patch] = fake.calls_to("PATCH", r"/api/v2/stages/\d+")
    assert patch.body == {"name": "Bedarf ermittelt", "deal_probability": 35,
                          "is_deal_rot_enabled": False}  # no order_nr: read-only in v2


def test_update_pipeline_renames_only(adapter: PipedriveAdapter, fake: FakePipedrive) -> None:
    pipeline = fake.add_pipeline("Sales")
    adapter.update_pipeline(str(pipeline["id"]), label="Vertrieb", order=5)
    [patch] = fake.calls_to("PATCH", r"/api/v2/pipelines/\d+")
    assert patch.body == {"name": "Vertrieb"}


def test_archive_stage_and_pipeline(adapter: PipedriveAdapter, fake: FakePipedrive) -> None:
    pipeline = adapter.create_pipeline("Sales", 0, STAGES[:2])
    adapter.archive_stage(pipeline.id, pipeline.stages[0].id)
    assert [s.label for s in adapter.list_pipelines()[0].stages] == ["Needs assessed"]
    adapter.archive_pipeline(pipeline.id)
    assert adapter.list_pipelines() == []


def test_count_and_move_deals(fake: FakePipedrive, fake_time: FakeTime) -> None:
    adapter = make_adapter(fake_time, page_size=2)
    pipeline = fake.add_pipeline("Sales")
    old = fake.add_stage(pipeline["id"], "Old")
    new = fake.add_stage(pipeline["id"], "New")
    for status in ("open", "open", "won", "lost", "open"):
        fake.add_deal(old["id"], status)
    archived = fake.add_deal(old["id"], "won", archived=True)
    fake.add_deal(new["id"])

    # won, lost and archived deals keep their stage in Pipedrive: they count too
    assert adapter.count_deals(str(pipeline["id"]), str(old["id"])) == 6
    assert adapter.move_deals(str(pipeline["id"]), str(old["id"]), str(new["id"])) == 6
    assert adapter.count_deals(str(pipeline["id"]), str(old["id"])) == 0
    assert adapter.count_deals(str(pipeline["id"]), str(new["id"])) == 7
    assert fake.deals[archived["id"]]["stage_id"] == new["id"]
    assert {c.body["stage_id"] for c in fake.calls_to("PATCH", r"/api/v2/deals/\d+")} == {
        new["id"]}


# -- retries ----------------------------------------------------------------------------------


def test_429_then_200_honours_retry_after(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    fake.fail_next(429, headers={"Retry-After": "7"})
    fake.fail_next(429, headers={"Retry-After": "3"})

    assert adapter.list_pipelines() == []

    assert fake_time.sleeps == [7.0, 3.0]
    assert len(fake.calls_to("GET", "/api/v2/stages")) == 3


def test_429_without_retry_after_waits_for_the_rate_limit_window(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    fake.fail_next(429, headers={"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": "2"})

    adapter.list_pipelines()

    # one wait for the window; the (rolling) pacer adds at most the time the refused request
    # took to answer (0.1 s here), as its slot is counted from its answer
    assert fake_time.sleeps[0] == 2.0
    assert sum(fake_time.sleeps[1:]) <= 0.1 + 1e-9


def test_5xx_is_retried_with_exponential_backoff(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    fake.fail_next(503)
    fake.fail_next(502)
    fake.fail_next(500)

    adapter.list_pipelines()

    assert fake_time.sleeps == [0.5, 1.0, 2.0]


def test_backoff_has_jitter_within_bounds(fake: FakePipedrive, fake_time: FakeTime) -> None:
    adapter = make_adapter(fake_time, jitter=0.5)
    fake.fail_next(503)
    fake.fail_next(503)
    adapter.list_pipelines()
    first, second = fake_time.sleeps
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 1.5


@pytest.mark.parametrize("exception", [
    requests.ConnectionError("Connection aborted: RemoteDisconnected"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ChunkedEncodingError("connection broken"),
])
def test_dropped_connections_and_timeouts_are_retried(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime,
    exception: Exception,
) -> None:
    fake.fail_next(exception=exception)
    assert adapter.list_pipelines() == []
    assert len(fake_time.sleeps) == 1


def test_retries_are_bounded(fake: FakePipedrive, fake_time: FakeTime) -> None:
    adapter = make_adapter(fake_time, max_retries=2)
    for _ in range(5):
        fake.fail_next(503)

    with pytest.raises(RetriableRemoteError) as raised:
        adapter.list_pipelines()

    assert raised.value.status == 503
    assert len(fake.calls) == 3  # one try + max_retries
    assert len(fake_time.sleeps) == 2


def test_a_retry_after_of_hours_is_not_slept_through(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    fake.fail_next(429, headers={"Retry-After": "3600"})
    with pytest.raises(RetriableRemoteError) as raised:
        adapter.list_pipelines()
    assert raised.value.retry_after == 3600
    assert fake_time.sleeps == []
    assert len(fake.calls) == 1


def test_400_is_fatal_at_once_with_pipedrives_message(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    pipeline = fake.add_pipeline("Sales")
    with pytest.raises(FatalRemoteError) as raised:
        adapter.create_stage(str(pipeline["id"]), StageSpec("", 0, 0.5))

    error = raised.value
    assert error.status == 400
    assert "Parameter 'name' is required" in str(error)
    assert "Please check developers.pipedrive.com" in str(error)  # error_info
    assert "pipedrive answered 400" in str(error)
    assert len(fake.calls_to("POST", "/api/v2/stages")) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404, 409, 422])
def test_other_4xx_are_fatal(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime, status: int
) -> None:
    fake.fail_next(status)
    with pytest.raises(FatalRemoteError):
        adapter.list_pipelines()
    assert len(fake.calls) == 1
    assert fake_time.sleeps == []


def test_a_create_whose_answer_was_lost_is_not_sent_twice(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    pipeline = fake.add_pipeline("Sales")
    # the stage is created, then the connection drops before the answer arrives
    fake.fail_next(exception=requests.ConnectionError("Connection aborted"), after_handler=True)

    stage = adapter.create_stage(str(pipeline["id"]), StageSpec("Qualified", 0, 0.2))

    assert stage is not None
    assert stage.label == "Qualified"
    live = [s for s in fake.stages.values() if s["name"] == "Qualified"]
    assert len(live) == 1
    assert stage.id == str(live[0]["id"])
    assert len(fake.calls_to("POST", "/api/v2/stages")) == 1


def test_a_create_refused_with_429_is_simply_sent_again(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = fake.add_pipeline("Sales")
    adapter.list_pipelines()  # as diff does before apply: the adapter knows the pipeline
    fake.fail_next(429, headers={"Retry-After": "1"})
    adapter.create_stage(str(pipeline["id"]), StageSpec("Qualified", 0, 0.2))
    assert len(fake.calls_to("POST", "/api/v2/stages")) == 2
    assert len(fake.calls_to("GET", "/api/v2/stages")) == 1  # the listing; none after the 429


def test_writing_a_probability_switches_it_on_in_a_pipeline_not_listed_before(
    adapter: PipedriveAdapter, fake: FakePipedrive
) -> None:
    pipeline = fake.add_pipeline("Sales", is_deal_probability_enabled=False)
    adapter.create_stage(str(pipeline["id"]), StageSpec("Qualified", 0, 0.2))
    assert len(fake.calls_to("GET", r"/api/v2/pipelines/\d+")) == 1
    assert [c.body for c in fake.calls_to("PATCH", r"/api/v2/pipelines/\d+")] == [
        {"is_deal_probability_enabled": True}]
    assert fake.pipelines[pipeline["id"]]["is_deal_probability_enabled"] is True
    adapter.create_stage(str(pipeline["id"]), StageSpec("Proposal sent", 1, 0.5))
    assert len(fake.calls_to("GET", r"/api/v2/pipelines/\d+")) == 1  # remembered


# -- pacing -----------------------------------------------------------------------------------


def test_pacing_waits_for_the_window_when_nothing_remains(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    fake.headers = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": "2"}
    pipeline_id = str(fake.add_pipeline("Sales")["id"])
    adapter.update_pipeline(pipeline_id, label="A", order=0)
    assert fake_time.sleeps == []  # the first request has nothing to pace by

    adapter.update_pipeline(pipeline_id, label="B", order=0)

    assert fake_time.sleeps == [pytest.approx(2.0)]


def test_pacing_spaces_the_last_requests_at_the_sustainable_rate(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    pipeline_id = str(fake.add_pipeline("Sales")["id"])
    fake.headers = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "3",
                    "x-ratelimit-reset": "2"}
    adapter.update_pipeline(pipeline_id, label="A", order=0)
    adapter.update_pipeline(pipeline_id, label="B", order=0)
    fake_time.advance(0.4)  # a slow caller: the window has freed slots since
    adapter.update_pipeline(pipeline_id, label="C", order=0)

    # 3 left (≤ 20 % of 20) in the rolling 2 s window: requests go out 2 s / 20 = 0.1 s
    # apart, counted from the previous request; a caller slower than that never waits.
    assert fake_time.sleeps == [pytest.approx(0.1)]


def test_no_pacing_while_plenty_remain(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    pipeline_id = str(fake.add_pipeline("Sales")["id"])
    fake.headers = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "12",
                    "x-ratelimit-reset": "2"}
    for label in ("A", "B", "C"):
        adapter.update_pipeline(pipeline_id, label=label, order=0)
    assert fake_time.sleeps == []


def test_pacing_stops_once_the_window_has_passed(
    adapter: PipedriveAdapter, fake: FakePipedrive, fake_time: FakeTime
) -> None:
    pipeline_id = str(fake.add_pipeline("Sales")["id"])
    fake.headers = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": "2"}
    adapter.update_pipeline(pipeline_id, label="A", order=0)
    fake_time.advance(2.5)
    adapter.update_pipeline(pipeline_id, label="B", order=0)
    assert fake_time.sleeps == []


# -- secrets ----------------------------------------------------------------------------------


def test_the_token_never_shows_in_errors_or_logs(
    fake: FakePipedrive, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(fake_time, max_retries=1)
    echo = {"success": False, "error": f"token {TOKEN} is not allowed here",
            "error_info": f"api_token={TOKEN}", "data": None}
    fake.fail_next(503, body=echo)
    fake.fail_next(403, body=echo)

    with caplog.at_level(logging.DEBUG), pytest.raises(FatalRemoteError) as raised:
        adapter.list_pipelines()

    assert TOKEN not in str(raised.value)
    assert "***" in str(raised.value)
    assert caplog.records  # the retry was logged...
    assert all(TOKEN not in r.getMessage() for r in caplog.records)  # ...without the token
    assert TOKEN not in repr(adapter)
    assert TOKEN not in repr(adapter.policy)
