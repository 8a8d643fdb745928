"""A real kill: `crmsync apply` in its own process, SIGKILLed half-way, then run again.

The in-process kill switch (`World.kill_after`) still lets cleanup code run; SIGKILL does not.
The killed run is stopped right after it reported its second applied step (read from its
output line by line, no timing), while the sandbox's latency keeps the remaining steps in
flight. The re-run must converge with no duplicate stage and the store must hold the CRM's ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import World

NEW_STAGES = [f"Step {n} completed" for n in range(1, 7)]


def test_apply_killed_by_sigkill_then_rerun_converges(world: World) -> None:
    data = world.example("acme")
    path = world.applied(data)
    stages = list(data["pipelines"][0]["stages"])
    open_stages, outcomes = stages[:-2], stages[-2:]
    added = [{"key": f"step_{n}", "label": label, "probability": 0.8}
             for n, label in enumerate(NEW_STAGES, start=1)]
    data["pipelines"][0]["stages"] = [*open_stages, *added, *outcomes]
    world.write(data)
    world.faults(latency_ms=60)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from crmsync.cli import main; main()", "apply", "--yes",
         str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    assert process.stdout is not None
    progress = 0
    for line in process.stdout:
        if line.startswith("acme (") and "+ stage 'Step" in line:
            progress += 1
            if progress == 2:
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=60)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "the apply finished before it was killed"

    world.faults(latency_ms=0)
    labels_after_kill = world.labels(data["pipelines"][0]["label"])
    assert 2 <= sum(label in NEW_STAGES for label in labels_after_kill) < len(NEW_STAGES)

    rerun = world.cli("apply", "--yes", str(path))
    assert rerun.exit_code == 0, rerun.output
    assert world.cli("diff", str(path)).exit_code == 0

    pipeline = world.pipeline(data["pipelines"][0]["label"])
    labels = [s.label for s in pipeline.stages]
    assert len(labels) == len(set(labels)), f"duplicate stages: {labels}"
    assert all(label in labels for label in NEW_STAGES)
    known = world.known("acme")
    assert {known.stages[("new_business", f"step_{n}")] for n in range(1, 7)} == {
        s.id for s in pipeline.stages if s.label in NEW_STAGES}
