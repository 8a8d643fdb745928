"""Every dispatch over change types is exhaustive: a type nobody handles fails, loudly.

`apply` once had no default branch, so an unknown change was reported as applied without a
call to the CRM. Now each `match` over changes ends in `assert_never`: mypy flags a missing
case of the `Change` union, and at run time the unknown change raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pytest
from plan_fakes import FakeCrm

from crmsync.adapters.base import StageSpec
from crmsync.plan.apply import _Runner, apply
from crmsync.plan.changes import Change, CreateStage, PipelinePlan, Plan
from crmsync.plan.render import describe_item, item_to_dict, render_text
from crmsync.plan.state import MemoryState
from tests.mypy_dispatch import mypy_on_a_dispatch_missing_one

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class RenameAccount:
    """A change type added to the planner but forgotten in the runner and the renderer."""

    pipeline: str
    label: str
    action: ClassVar[str] = "update"


def _plan_with(new: object) -> Plan:
    create = CreateStage("sales", "p1", "won", StageSpec("Won", 0, 1.0, "won"))
    return Plan("acme", "hubspot", (PipelinePlan("sales", "Sales", "p1", (create, new)),))  # type: ignore[arg-type]


def test_apply_refuses_a_change_type_it_does_not_know_before_any_call() -> None:
    crm, state = FakeCrm(), MemoryState()
    pipeline = crm.seed("Sales", [("Proposal sent", 0.5)])
    plan = _plan_with(RenameAccount("sales", "New name"))
    plan = Plan(plan.client, plan.crm, (PipelinePlan("sales", "Sales", pipeline.id,
                                                     plan.pipelines[0].items),))
    calls = list(crm.calls)
    with pytest.raises(TypeError, match="RenameAccount"):
        apply(plan, crm, state)
    assert crm.calls == calls  # nothing sent, nothing reported as applied
    assert state.known_ids().stages == {}


def test_the_runner_has_no_silent_default() -> None:
    crm, state = FakeCrm(), MemoryState()
    calls = list(crm.calls)
    with pytest.raises(AssertionError, match="RenameAccount"):
        _Runner(crm, state).run(RenameAccount("sales", "New name"))  # type: ignore[arg-type]
    assert crm.calls == calls


def test_rendering_refuses_a_change_type_it_does_not_know() -> None:
    new = RenameAccount("sales", "New name")
    with pytest.raises(AssertionError, match="RenameAccount"):
        describe_item(new)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="RenameAccount"):
        item_to_dict(new)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="RenameAccount"):
        render_text(_plan_with(new))


def test_mypy_flags_a_dispatch_that_misses_a_change_type(tmp_path: Path) -> None:
    out, status, missing = mypy_on_a_dispatch_missing_one(tmp_path, "crmsync.plan.changes",
                                                          "Change", Change)
    assert status == 1, out
    assert f'"{missing}"' in out
    assert "assert_never" in out or "Never" in out
