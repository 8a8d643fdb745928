"""The daily budget: a sync spends at most its share of what the CRM says is left today."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from click.testing import CliRunner

from crmsync.adapters.http_policy import HUBSPOT, PIPEDRIVE, DailyBudget, HttpPolicy, Reply
from crmsync.cli import cli
from crmsync.errors import BudgetExhaustedError
from crmsync.sandbox import start_sandbox
from crmsync.store import open_store

if TYPE_CHECKING:
    from collections.abc import Callable

EXAMPLES = Path(__file__).resolve().parents[2] / "configs"


def replies(header: str, start: int, cost: int) -> Callable[[], Reply[str]]:
    left = [start]

    def send() -> Reply[str]:
        left[0] -= cost
        return Reply(200, {header: str(left[0])}, value="ok")

    return send


def spend_until_stopped(policy: HttpPolicy, send: Callable[[], Reply[str]]) -> int:
    with pytest.raises(BudgetExhaustedError, match="daily budget") as stopped:  # noqa: PT012
        for _ in range(1_000):
            policy.call(send, what="list contacts")
    assert "CRMSYNC_SYNC_MAX_DAILY_SHARE" in str(stopped.value)
    return policy.requests_sent


def test_hubspot_stops_before_crossing_the_share() -> None:
    policy = HttpPolicy(HUBSPOT, sleep=lambda _s: None)
    policy.daily_share = 0.5
    sent = spend_until_stopped(policy, replies("X-HubSpot-RateLimit-Daily-Remaining", 101, 1))
    # 100 left after the first request: 50 more may go, then it stops before the 52nd.
    assert sent == 51
    assert policy.budget.spent == 50


def test_pipedrive_counts_tokens_at_the_cost_it_has_seen() -> None:
    policy = HttpPolicy(PIPEDRIVE, sleep=lambda _s: None)
    policy.daily_share = 0.5
    sent = spend_until_stopped(policy, replies("x-daily-requests-left", 1_010, 10))
    # 1,000 tokens left after the first list call (10 each): 500 → 50 more calls.
    assert sent == 51
    assert policy.budget.spent == 500


def test_no_share_means_no_limit_of_our_own() -> None:
    policy = HttpPolicy(HUBSPOT, sleep=lambda _s: None)
    send = replies("X-HubSpot-RateLimit-Daily-Remaining", 10, 1)
    for _ in range(9):
        policy.call(send, what="list contacts")
    assert policy.requests_sent == 9


def test_a_new_day_restarts_the_baseline() -> None:
    policy = HttpPolicy(HUBSPOT, sleep=lambda _s: None)
    policy.daily_share = 0.5
    left = iter([100, 99, 98, 250, 249])  # 250: the budget was reset at midnight

    def send() -> Reply[str]:
        return Reply(200, {"X-HubSpot-RateLimit-Daily-Remaining": str(next(left))}, value="")

    for _ in range(5):
        policy.call(send, what="list contacts")
    assert policy.budget.spent == 1


@pytest.fixture
def limited_sandbox() -> Any:
    server = start_sandbox(config={"rate_limits_enabled": True, "hubspot_limit_per_10s": 190,
                                   "hubspot_daily_limit": 16})
    try:
        yield server
    finally:
        server.stop()


def test_sync_stops_at_the_budget_with_exit_3_and_resumes(
        limited_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "budget-token"
    # Far more pages than the budget allows (8 of the day's 16 calls): the stop never
    # depends on how many calls the pass's overheads take.
    limited_sandbox.app.seed("hubspot", token=token, contacts=1_000, companies=30, deals=30,
                             seed=2)
    configs = tmp_path / "configs"
    configs.mkdir()
    data = yaml.safe_load((EXAMPLES / "acme.yaml").read_text("utf-8"))
    data["crm"] = "hubspot"
    data.pop("token_env", None)
    (configs / "acme.yaml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    monkeypatch.chdir(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'crmsync.db'}"
    for name, value in {"CRMSYNC_HUBSPOT_BASE_URL": limited_sandbox.base_url,
                        "CRMSYNC_HUBSPOT_TOKEN": token, "CRMSYNC_STORE_URL": store_url,
                        "CRMSYNC_CONFIGS_DIR": str(configs), "CRMSYNC_MAX_RETRIES": "0",
                        "CRMSYNC_SYNC_INITIAL_LOAD": "export"}.items():
        monkeypatch.setenv(name, value)

    # --initial-load beats the setting: the list API, page by page, so the stop is mid-pass
    first = CliRunner().invoke(cli, ["sync", "--json", "--initial-load", "list"],
                               catch_exceptions=False)
    assert first.exit_code == 3, first.output
    [client] = json.loads(first.stdout)["clients"]
    assert client["status"] == "partial"
    assert client["error"] == "stopped at the daily budget: resumes next run"
    with open_store(store_url) as store:
        records = store.records(data["client"])
        saved = {t: records.cursor("hubspot", t) for t in ("companies", "contacts", "deals")}
        landed = sum(len(records.remote_ids("hubspot", t)) for t in saved)
    assert any(c is not None for c in saved.values())  # pages read so far are committed
    assert 0 < landed < 1_060
    assert client["throttled"] == 0  # it stopped itself, before HubSpot's daily 429

    limited_sandbox.app.configure(limited_sandbox.app.config.merged(
        {"hubspot_daily_limit": 100_000}))  # the next day
    second = CliRunner().invoke(cli, ["sync", "--json", "--initial-load", "list"],
                                catch_exceptions=False)
    assert second.exit_code == 0, second.output
    with open_store(store_url) as store:
        records = store.records(data["client"])
        ids = {t: set(records.remote_ids("hubspot", t)) for t in ("companies", "contacts",
                                                                  "deals")}
    account = limited_sandbox.app.account("hubspot", token)
    for object_type, got in ids.items():
        live = {str(r.id) for r in account.objects[object_type].records.values()
                if not r.archived}
        assert live <= got, object_type
    shutil.rmtree(configs)


def test_reports_arriving_out_of_order_neither_undercount_nor_restart_the_day() -> None:
    """Four list calls in flight (10 tokens each): the CRM counts them in another order than
    they were sent, and their answers come back in yet another one."""
    budget = DailyBudget("pipedrive", share=0.5)
    first = budget.sent()
    budget.observe(30_000, first)  # the baseline
    orders = [budget.sent() for _ in range(4)]
    # Counted by the CRM in the order 1, 0, 3, 2 (of these four): what each answer says.
    left = {orders[1]: 29_990, orders[0]: 29_980, orders[3]: 29_970, orders[2]: 29_960}
    for order in (orders[0], orders[1], orders[2], orders[3]):  # answered in this order
        budget.observe(left[order], order)
        assert budget.spent >= 30_000 - left[order]
    assert budget.spent == 40
    later = budget.sent()
    budget.observe(29_950, later)
    assert budget.spent == 50
    midnight = budget.sent()
    budget.observe(60_000, midnight)  # a new day: the whole allowance again
    assert budget.spent == 0
