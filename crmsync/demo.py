"""`crmsync demo`: the whole product against an embedded sandbox, on a copy.

It runs the very commands a consultant would type — `validate`, `diff`, `apply`, `export`,
`sync`, `report` — in-process, against a sandbox on a free loopback port and a throwaway
SQLite store, so a fresh machine needs no CRM account and the user's own store never sees
sandbox ids. Between steps it plays the client's sales team: it fills the CRMs with a few
thousand records, as months of selling would.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from crmsync.blueprint.loader import expand_paths, load_blueprint
from crmsync.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from crmsync.sandbox.server import SandboxServer

SANDBOX_TOKEN = "sandbox-token"  # noqa: S105 -- the sandbox's public fake token
# Left in the demo's copy of the configs: only a folder carrying it is ever replaced.
DEMO_MARKER = ".crmsync-demo-copy"
ADOPTED_CLIENT = "newco"
ADOPTED_TOKEN_ENV = "NEWCO_HUBSPOT_TOKEN"  # noqa: S105 -- a variable name, not a token


@dataclass(frozen=True)
class DemoStep:
    title: str
    args: tuple[str, ...]
    expected_exit: int
    prepare: Callable[[], str | None] | None = None  # an edit made before the step runs


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
    a client naming `token_env:` gets a token of its own there.
    """
    env = {
        "CRMSYNC_HUBSPOT_BASE_URL": base_url,
        "CRMSYNC_PIPEDRIVE_BASE_URL": base_url,
        "CRMSYNC_HUBSPOT_TOKEN": SANDBOX_TOKEN,
        "CRMSYNC_PIPEDRIVE_TOKEN": SANDBOX_TOKEN,
        "CRMSYNC_HUBSPOT_SEARCH_LAG_SECONDS": "0",  # the embedded sandbox's search has no lag
        "CRMSYNC_STORE_URL": f"sqlite:///{workdir / 'demo-store.db'}",
        "CRMSYNC_CONFIGS_DIR": str(workdir / "configs"),
        ADOPTED_TOKEN_ENV: f"sandbox-{ADOPTED_CLIENT}",
    }
    for path in configs:
        blueprint = load_blueprint(path)
        if blueprint.token_env:
            env[blueprint.token_env] = f"sandbox-{blueprint.client}"
    return env


def rename_first_open_stage(path: Path) -> str | None:
    """The consultant's edit in the demo: rename a stage in place, keeping its key."""
    blueprint = load_blueprint(path)
    stage = next(iter(blueprint.pipelines[0].open_stages), None)
    target = f"label: {stage.label}\n" if stage else ""
    text = path.read_text(encoding="utf-8")
    if stage is None or target not in text:
        return None
    new_label = f"{stage.label} (confirmed)"
    path.write_text(text.replace(target, f"label: {new_label}\n", 1), encoding="utf-8")
    return f"edited {path.name}: stage '{stage.label}' renamed to '{new_label}'"


# What the demo's "sales team" puts in each client's CRM: a few thousand records in all.
DEMO_RECORDS = {"contacts": 900, "companies": 180, "deals": 500}


def seed_clients(server: SandboxServer, configs: list[Path]) -> str:
    """Fill each client's CRM account with synthetic records (the demo's sales team)."""
    total = 0
    for number, path in enumerate(configs, start=1):
        blueprint = load_blueprint(path)
        token = f"sandbox-{blueprint.client}" if blueprint.token_env else SANDBOX_TOKEN
        created = server.app.seed(blueprint.crm, token=token, seed=number, **DEMO_RECORDS)
        total += sum(created.get(kind, 0) for kind in DEMO_RECORDS)
    return (f"the clients' sales teams have been busy: {total:,} contacts, companies and "
            f"deals in {len(configs)} CRMs")


_POLICY_WORDS = {"remote_wins": "the CRM's value wins", "local_wins": "the store's value wins",
                 "newest_wins": "the later edit wins"}


def _crm_request(base_url: str, crm: str, token: str, path: str, body: Any) -> Any:
    """One PATCH through the CRM's own API (the sandbox's), as a salesperson's edit."""
    if crm == "hubspot":
        url, headers = base_url + path, {"Authorization": f"Bearer {token}"}
    else:
        url, headers = f"{base_url}/api/v2{path}", {"x-api-token": token}
    response = requests.patch(url, json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()


def edit_both_sides(base_url: str, store_url: str, path: Path) -> str:
    """Between two syncs: a salesperson edits one contact in the CRM, a script edits another
    in the store (`Store.local`), and a third contact's last name is changed on both sides."""
    from crmsync.store import open_store

    blueprint = load_blueprint(path)
    client, crm = blueprint.client, blueprint.crm
    token = f"sandbox-{client}" if blueprint.token_env else SANDBOX_TOKEN
    with open_store(store_url) as store:
        records = store.records(client)
        remote = {v: k for k, v in records.remote_ids(crm, "contacts").items()}
        chosen = []
        for row in records.live("contacts"):
            if row["id"] in remote and row["email"] and row["first_name"] and row["last_name"]:
                chosen.append(row)
            if len(chosen) == 3:
                break
        in_crm, in_store, on_both = chosen
        local = store.local(client)
        local.update("contacts", in_store["id"], {"phone": "+49 30 1234567"})
        local.update("contacts", on_both["id"], {"last_name": "Local-Edit"})
    if crm == "hubspot":
        _crm_request(base_url, crm, token, f"/crm/v3/objects/contacts/{remote[in_crm['id']]}",
                     {"properties": {"firstname": "Renamed-in-CRM"}})
        _crm_request(base_url, crm, token,
                     f"/crm/v3/objects/contacts/{remote[on_both['id']]}",
                     {"properties": {"lastname": "CRM-Edit"}})
    else:
        _crm_request(base_url, crm, token, f"/persons/{remote[in_crm['id']]}",
                     {"name": f"Renamed-in-CRM {in_crm['last_name']}"})
        _crm_request(base_url, crm, token, f"/persons/{remote[on_both['id']]}",
                     {"name": f"{on_both['first_name']} CRM-Edit"})
    return (f"in {crm}: {in_crm['email']}'s first name → 'Renamed-in-CRM'; in the store: "
            f"{in_store['email']}'s phone → '+49 30 1234567'; on both sides: "
            f"{on_both['email']}'s last name → 'CRM-Edit' in {crm}, 'Local-Edit' locally")


def demo_steps(configs_dir: Path, workdir: Path,
               seed: Callable[[], str | None] | None = None,
               edit: Callable[[], str | None] | None = None) -> list[DemoStep]:
    """validate → diff → apply → diff → rename → apply → adopt by export → diff → (records
    arrive) sync → sync again → (both sides edit) sync both ways → the board, in the
    terminal and as HTML → diff."""
    first = expand_paths([], configs_dir)[0]
    blueprint = load_blueprint(first)
    policy = blueprint.conflict_policy
    return [
        DemoStep("Check the blueprints against the method", ("validate", "--strict"), 0),
        DemoStep("Preview what apply would create in the clients' empty CRMs", ("diff",), 2),
        DemoStep("Apply every client's blueprint", ("apply", "--yes"), 0),
        DemoStep("Prove there is no drift left", ("diff",), 0),
        DemoStep("A consultant renames a stage: an update in place, not delete + create",
                 ("diff", str(first)), 2, prepare=lambda: rename_first_open_stage(first)),
        DemoStep("Apply the rename", ("apply", "--yes", str(first)), 0),
        DemoStep(f"Adopt a new client's existing HubSpot: export it as {ADOPTED_CLIENT}.yaml",
                 ("export", "--client", ADOPTED_CLIENT, "--crm", "hubspot",
                  "--token-env", ADOPTED_TOKEN_ENV,
                  "--output", str(configs_dir / f"{ADOPTED_CLIENT}.yaml")), 0),
        DemoStep("Every client, the adopted one included, matches its CRM", ("diff",), 0),
        DemoStep("Bring every client's contacts, companies, deals and associations into the "
                 "local store", ("sync",), 0, prepare=seed),
        DemoStep("Sync again: nothing changed, so one API call per object type",
                 ("sync",), 0),
        DemoStep(f"Both sides edit, then sync {blueprint.client} both ways: the CRM's edit is "
                 f"pulled, the store's pushed, and the last name changed on both sides is a "
                 f"conflict the client's policy resolves ({policy}: "
                 f"{_POLICY_WORDS.get(policy, policy)})", ("sync", str(first)), 0, prepare=edit),
        DemoStep("The board: deals, value and weighted value per stage, and the handoff",
                 ("report", str(first)), 0),
        DemoStep("The same board as one HTML file to send to the client",
                 ("report", "--html", str(workdir / "board.html"), str(first)), 0),
        DemoStep("Syncing records changed nothing in the pipelines", ("diff",), 0),
    ]


def run_demo(
    configs_dir: Path,
    workdir: Path,
    run_cli: Callable[[list[str]], int],
    announce: Callable[[int, DemoStep, str | None], None],
) -> list[StepResult]:
    """Copy the blueprints of `configs_dir` into `workdir`, start a sandbox and run the demo
    steps through `run_cli` (runs one crmsync command line, returns its exit code)."""
    from crmsync.sandbox import start_sandbox

    sources = expand_paths([], configs_dir)
    if not sources:
        raise ConfigError(message=f"no blueprints in {configs_dir}: run `crmsync init` first")
    demo_configs = workdir / "configs"
    if demo_configs.exists():
        if not (demo_configs / DEMO_MARKER).is_file():
            # Someone's real blueprints (e.g. `--workdir .` in a project): never replace them.
            raise ConfigError(message=(
                f"{demo_configs} exists and is not a copy an earlier demo made, so the demo "
                "will not replace it"
            ), hint="Pass another --workdir (or none: a new temporary folder is used)")
        shutil.rmtree(demo_configs)
    demo_configs.mkdir(parents=True)
    for source in sources:
        shutil.copy2(source, demo_configs / source.name)
    (demo_configs / DEMO_MARKER).write_text(
        "Copies made by `crmsync demo`; the demo replaces this folder on its next run.\n",
        encoding="utf-8")
    (workdir / "demo-store.db").unlink(missing_ok=True)

    copies = sorted(expand_paths([], demo_configs))
    results: list[StepResult] = []
    server = start_sandbox(host="127.0.0.1", port=0)
    try:
        with patched_environ(demo_environment(server.base_url, workdir, copies)):
            first = expand_paths([], demo_configs)[0]
            steps = demo_steps(demo_configs, workdir,
                               seed=lambda: seed_clients(server, copies),
                               edit=lambda: edit_both_sides(
                                   server.base_url, f"sqlite:///{workdir / 'demo-store.db'}",
                                   first))
            for number, step in enumerate(steps, start=1):
                edit = step.prepare() if step.prepare else None
                announce(number, step, edit)
                results.append(StepResult(step, run_cli(list(step.args))))
    finally:
        server.stop()
    return results
