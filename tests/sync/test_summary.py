"""The sync command's summary line, JSON and exit code for a two-way run (built by hand)."""

from __future__ import annotations

from pathlib import Path

from crmsync.cli.sync_command import _as_json, _exit_code, _summary
from crmsync.sync.engine import PullResult, TypeCounts
from crmsync.sync.push import PushCounts, PushResult
from crmsync.sync.run import ClientSync


def _outcome(status: str, *, failed: int = 0) -> ClientSync:
    result = PullResult("acme", "hubspot", counts={"contacts": TypeCounts(pulled=4, conflicts=2)})
    pushed = PushResult("hubspot", counts={"contacts": PushCounts(created=3, updated=1,
                                                                  held_back=2, failed=failed)})
    pushed.held_back = [{"object_type": "contacts", "record_id": 7, "email": None,
                         "reason": "no email"},
                        {"object_type": "contacts", "record_id": 8, "email": "x@y.example",
                         "reason": "no marketing consent"}]
    pushed.kept_remote = [{"object_type": "deals", "record_id": 9, "remote_id": "90"}]
    if failed:
        pushed.failures = [{"object_type": "contacts", "record_id": 5, "error": "bad email"}]
    return ClientSync(Path("configs/acme.yaml"), None, status=status,  # type: ignore[arg-type]
                      result=result, pushed=[pushed])


def test_summary_names_pushes_conflicts_held_back_and_kept_deletes() -> None:
    line = _summary(_outcome("partial", failed=1))
    assert "pushed to hubspot: created 3, updated 1, archived 0, failed 1" in line
    assert "held back: 2 contacts without email/consent" in line
    assert "1 local deletes kept in hubspot" in line
    assert "2 conflicts resolved" in line


def test_summary_tells_a_shared_email_from_a_missing_consent() -> None:
    outcome = _outcome("ok")
    outcome.pushed[0].held_back.append({"object_type": "contacts", "record_id": 10,
                                        "email": "x@y.example",
                                        "reason": "same email as contact 8: one contact in "
                                                  "hubspot"})
    line = _summary(outcome)
    assert ("held back: 2 contacts without email/consent, 1 sharing another contact's email"
            in line)


def test_json_lists_failures_and_held_back_records() -> None:
    data = _as_json(_outcome("partial", failed=1))
    [pushed] = data["pushed"]
    assert pushed["totals"]["failed"] == 1
    assert pushed["failures"] == [{"object_type": "contacts", "record_id": 5,
                                   "error": "bad email"}]
    assert [h["reason"] for h in pushed["held_back"]] == ["no email", "no marketing consent"]
    assert data["conflicts"]["count"] == 2


def test_a_failed_push_exits_3() -> None:
    assert _exit_code([_outcome("ok"), _outcome("partial", failed=1)]) == 3
    assert _exit_code([_outcome("ok")]) == 0
