"""Provisioning plans: `diff` a blueprint against the CRM, `render` the plan, `apply` it.

Pure planning lives in `diff` (no I/O); `apply` talks to the CRM only through the
`CrmAdapter` protocol and records ids through a `StateRecorder`.
"""

from __future__ import annotations

from crmsync.plan.apply import ApplyResult, apply
from crmsync.plan.changes import Blocked, Change, Note, PipelinePlan, Plan
from crmsync.plan.diff import diff, stage_candidates_for_removal
from crmsync.plan.render import plan_to_dict, render_json, render_text
from crmsync.plan.state import KnownIds, MemoryState, StateRecorder

__all__ = [
    "ApplyResult", "Blocked", "Change", "KnownIds", "MemoryState", "Note", "PipelinePlan",
    "Plan", "StateRecorder", "apply", "diff", "plan_to_dict", "render_json", "render_text",
    "stage_candidates_for_removal",
]
