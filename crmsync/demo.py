"""`crmsync demo`: the whole provisioning workflow against an embedded sandbox, on a copy.

It runs the very commands a consultant would type (`validate`, `diff`, `apply`, `export`),
in-process, against a sandbox on a free loopback port and a throwaway SQLite store, so a fresh
machine needs no CRM account and the user's own store never sees sandbox ids.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crmsync.blueprint.loader import expand_paths, load_blueprint
from crmsync.errors import ConfigError

DEMO_TOKEN = "sandbox-token"


@dataclass(frozen=True)
class DemoStep:
    title: str
    args: tuple[str, ...]
    expected_exit: int


@dataclass(frozen=True)
class StepResult:
    step: DemoStep
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == self.step.expected_exit


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the demo, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def demo_environment(base_url: str, workdir: Path, configs: list[Path]) -> dict[str, str]:
    """Settings that point crmsync at the sandbox, with one token per client account.

    The sandbox keeps one account per token, as each client's real CRM is its own account;
    clients naming `token_env:` get a token of their own there.
    """
    env = {
        "CRMSYNC_HUBSPOT_BASE_URL": base_url,
        "CRMSYNC_PIPEDRIVE_BASE_URL": base_url,
        "CRMSYNC_HUBSPOT_TOKEN": DEMO_TOKEN,
        "CRMSYNC_PIPEDRIVE_TOKEN": DEMO_TOKEN,
        "CRMSYNC_STORE_URL": f"sqlite:///{workdir / 'demo-store.db'}",
        "CRMSYNC_CONFIGS_DIR": str(workdir / "configs"),
    }
    for path in configs:
        blueprint = load_blueprint(path)
        if blueprint.token_env:
            env[blueprint.token_env] = f"sandbox-{blueprint.client}"
    return env


def rename_first_open_stage(path: Path) -> str | None:
    """The consultant's edit of the demo: rename a stage in place (its key stays).

    Returns a description of the edit, or None when the file has no open stage to rename.
    """
    blueprint = load_blueprint(path)
    stage = next(iter(blueprint.pipelines[0].open_stages), None)
    if stage is None:
        return None
    text = path.read_text(encoding="utf-8")
    new_label = f"{stage.label} (confirmed)"
    target = f"label: {stage.label}\n"
    if target not in text:
        return None
    path.write_text(text.replace(target, f"label: {new_label}\n", 1), encoding="utf-8")
    return f"renamed stage '{stage.label}' to '{new_label}' in {path.name}"


def plan_steps(configs_dir: Path, edited: Path | None, export_client: tuple[str, str] | None
               ) -> list[DemoStep]:
    steps = [
        DemoStep("Check the blueprints against the method", ("validate", "--strict"), 0),
        DemoStep("Preview what apply would create in the empty CRMs", ("diff",), 2),
        DemoStep("Apply every client's blueprint", ("apply", "--yes"), 0),
        DemoStep("Prove there is no drift left", ("diff",), 0),
    ]
    if edited is not None:
        steps += [
            DemoStep("A consultant renames a stage: an update, not delete + create",
                     ("diff", str(edited)), 2),
            DemoStep("Apply the rename", ("apply", "--yes", str(edited)), 0),
        ]
    if export_client is not None:
        client, crm = export_client
        steps.append(DemoStep(f"Adopt an existing CRM: export {client}'s live {crm} pipelines",
                              ("export", "--client", client, "--crm", crm,
                               "--output", str(configs_dir.parent / f"exported-{client}.yaml")),
                              0))
    steps.append(DemoStep("Everything still matches", ("diff",), 0))
    return steps


def run_demo(
    configs_dir: Path,
    workdir: Path,
    run_cli: Callable[[list[str]], int],
    announce: Callable[[int, DemoStep], None],
) -> list[StepResult]:
    """Copy `configs_dir` into `workdir`, start a sandbox, and run the demo steps through
    `run_cli` (which runs one crmsync command line and returns its exit code)."""
    from crmsync.sandbox import start_sandbox

    sources = expand_paths([], configs_dir)
    if not sources:
        raise ConfigError(message=f"no blueprints in {configs_dir}: run `crmsync init` first")
    demo_configs = workdir / "configs"
    if demo_configs.exists():
        shutil.rmtree(demo_configs)
    demo_configs.mkdir(parents=True)
    for source in sources:
        shutil.copy2(source, demo_configs / source.name)
    (workdir / "demo-store.db").unlink(missing_ok=True)
    for old in workdir.glob("exported-*.yaml"):
        old.unlink()
    copies = sorted(demo_configs.iterdir())

    edited = copies[0]
    edit = rename_first_open_stage(edited)
    first = load_blueprint(edited)
    results: list[StepResult] = []
    server = start_sandbox(host="127.0.0.1", port=0)
    try:
        with patched_environ(demo_environment(server.base_url, workdir, copies)):
            # The edit is made after the first apply, as a consultant would: restore the
            # original for the first steps, then re-apply the edit before its step.
            edited_text = edited.read_text(encoding="utf-8")
            if edit is not None:
                shutil.copy2(sources[0], edited)
            steps = plan_steps(demo_configs, edited if edit else None,
                               (first.client, first.crm))
            for number, step in enumerate(steps, start=1):
                if edit is not None and step.args[:1] == ("diff",) and str(edited) in step.args:
                    edited.write_text(edited_text, encoding="utf-8")
                announce(number, step)
                results.append(StepResult(step, run_cli(list(step.args))))
    finally:
        server.stop()
    return results
