"""Provisioning for many clients: the library behind `crmsync diff`, `apply` and `export`.

Each function mirrors a command so a scheduler or a notebook can call it without click.
One client's failure (a bad config, a missing token, an error from its CRM) is recorded on
that client's result and never stops the others.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from crmsync.blueprint.models import ENV_NAME_PATTERN, KEY_PATTERN, Blueprint, to_key
from crmsync.errors import ConfigError, CrmsyncError, PlanStaleError, StoreError
from crmsync.plan.apply import ApplyResult, apply
from crmsync.plan.diff import diff, stage_candidates_for_removal
from crmsync.plan.export import blueprint_from_remote, to_yaml
from crmsync.session import (  # noqa: F401 -- re-exported: callers import them from here
    AdapterFactory,
    Session,
    default_adapter_factory,
    session_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from crmsync.adapters.base import CrmAdapter, RemotePipeline
    from crmsync.plan.changes import Change, Plan
    from crmsync.plan.state import KnownIds
    from crmsync.settings import Settings
    from crmsync.store import Store

log = logging.getLogger(__name__)

# How long a second `apply` of the same client waits for the first one's lease.
APPLY_LEASE_WAIT_SECONDS = 0.0
Status = Literal["clean", "pending", "blocked", "error"]


@dataclass(frozen=True, kw_only=True)
class ClientFailure:
    """What stopped one client, if anything: the message for people, the exception for --debug.

    Shared by `ClientPlan` and `ClientApply`; keyword-only, so each keeps its own positional
    fields first.
    """

    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


class _Failure(TypedDict):
    error: str
    exception: BaseException


def _failure(exc: BaseException) -> _Failure:
    """The `ClientFailure` fields for a client stopped by `exc` (tokens masked in its text)."""
    from crmsync.logs import mask_known

    error = str(exc) if isinstance(exc, CrmsyncError) else f"unexpected {type(exc).__name__}: {exc}"
    return {"error": mask_known(error), "exception": exc}


@dataclass(frozen=True)
class ClientPlan(ClientFailure):
    """One config file's outcome of `diff`: its plan, or the error that prevented one."""

    path: Path
    blueprint: Blueprint | None = None
    plan: Plan | None = None

    @property
    def name(self) -> str:
        if self.blueprint is not None:
            return f"{self.blueprint.client} ({self.blueprint.crm})"
        return str(self.path)

    @property
    def status(self) -> Status:
        if self.error is not None or self.plan is None:
            return "error"
        if self.plan.is_clean:
            return "clean"
        return "blocked" if self.plan.has_blocked else "pending"


ApplyStatus = Literal["clean", "blocked", "unconverged", "error"]


@dataclass(frozen=True)
class ClientApply(ClientFailure):
    """One client's outcome of `apply`: what ran, and the diff taken afterwards."""

    client: ClientPlan
    result: ApplyResult | None = None
    after: Plan | None = None

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def status(self) -> ApplyStatus:
        if self.error is not None or self.after is None:
            return "error"
        if self.after.is_clean:
            return "clean"
        # Anything still pending after an apply (other than blocked changes) did not converge.
        return "unconverged" if self.after.changes else "blocked"


def plan_client(blueprint: Blueprint, adapter: CrmAdapter, known: KnownIds, *,
                remote: list[RemotePipeline] | None = None) -> Plan:
    """Read the CRM (unless `remote` is its pipelines already), count deals in the stages
    that would go, and `diff`."""
    if remote is None:
        remote = adapter.list_pipelines()
    caps = adapter.capabilities
    counts = {
        stage_id: adapter.count_deals(pipeline_id, stage_id)
        for pipeline_id, stage_id in stage_candidates_for_removal(blueprint, remote, known, caps)
    }
    return diff(blueprint, remote, known, caps, counts)


def config_files(paths: Sequence[str | Path], configs_dir: Path | None) -> list[Path]:
    """The blueprint files `paths` name (files or folders); without any, those in `configs_dir`.

    Raises `ConfigError` for a missing path; when the folder was the default one, it says
    where that came from and how to make a first blueprint.
    """
    from crmsync.blueprint.loader import expand_paths

    try:
        return expand_paths(paths, configs_dir or Path())
    except ConfigError as exc:
        if not paths and not any(f.hint for f in exc.findings):
            exc.hint = (f"Without PATHS crmsync reads the blueprints in {configs_dir} "
                        "(CRMSYNC_CONFIGS_DIR): create one with `crmsync init CLIENT --crm "
                        "hubspot`, or name the files to use")
        raise


def _load(paths: Sequence[str | Path], settings: Settings) -> list[ClientPlan]:
    """One entry per file: a blueprint, or the reason it could not be loaded."""
    from crmsync.blueprint.loader import load_blueprint

    loaded: list[ClientPlan] = []
    seen: dict[str, Path] = {}
    for path in config_files(paths, None if paths else settings.configs_dir):
        try:
            blueprint = load_blueprint(path)
        except ConfigError as exc:
            loaded.append(ClientPlan(path, **_failure(exc)))
            continue
        if blueprint.client in seen:
            loaded.append(ClientPlan(path, error=(
                f"client '{blueprint.client}' is already described in {seen[blueprint.client]};"
                " keep one file per client"
            )))
            continue
        seen[blueprint.client] = path
        loaded.append(ClientPlan(path, blueprint))
    return loaded


def diff_clients(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    session: Session | None = None,
) -> list[ClientPlan]:
    """Plan every client named by `paths` (files or folders; none: `settings.configs_dir`).

    A path that does not exist raises `ConfigError`; everything else is per client.
    """
    clients = _load(paths, settings)
    with session_for(settings, session) as active:
        return [_diff_one(client, active) for client in clients]


def _diff_one(client: ClientPlan, session: Session) -> ClientPlan:
    blueprint = client.blueprint
    if blueprint is None:
        return client
    try:
        plan = _plan_checked(blueprint, session)
    except StoreError:
        raise  # every client shares the store: one error for the command, not one per client
    except Exception as exc:
        log.debug("diff failed for %s", client.name, exc_info=True)
        return ClientPlan(client.path, blueprint, **_failure(exc))
    return ClientPlan(client.path, blueprint, plan)


def _plan_checked(blueprint: Blueprint, session: Session) -> Plan:
    """`plan_client`, once the CRM account is known to be the one the client's ids belong
    to, and none of its pipelines is another client's."""
    adapter = session.adapter(blueprint.crm, blueprint.token_env)
    account = session.check_account(blueprint.client, blueprint.crm, adapter)
    known = session.store.provisioning(blueprint.client, blueprint.crm).known_ids()
    remote = adapter.list_pipelines()
    session.check_shared_account(blueprint.client, blueprint.crm, account,
                                 _pipeline_targets(blueprint, remote, known))
    return plan_client(blueprint, adapter, known, remote=remote)


def _pipeline_targets(blueprint: Blueprint, remote: list[RemotePipeline],
                      known: KnownIds) -> dict[str, str | None]:
    """Each blueprint pipeline's label -> the remote id it acts on: its recorded id, else a
    live pipeline it would adopt by label (or a previous label); None for a new one."""
    targets: dict[str, str | None] = {}
    for pipeline in blueprint.pipelines:
        labels = (pipeline.label, *pipeline.previous_labels)
        adopted = next((p.id for p in remote if p.label in labels), None)
        targets[pipeline.label] = known.pipelines.get(pipeline.key) or adopted
    return targets


def apply_clients(
    clients: Sequence[ClientPlan],
    settings: Settings,
    *,
    session: Session | None = None,
    on_step: Callable[[ClientPlan, Change], None] | None = None,
) -> list[ClientApply]:
    """Apply the plans `diff_clients` made, then diff each client again to prove the result.

    Clients whose diff failed are passed through as errors; clean ones cost no API call.
    Pass the `session` the diff used to reuse its store and connections.
    """
    with session_for(settings, session) as active:
        return [_apply_one(client, active, on_step) for client in clients]


def _apply_one(client: ClientPlan, session: Session,
               on_step: Callable[[ClientPlan, Change], None] | None) -> ClientApply:
    blueprint, plan = client.blueprint, client.plan
    if client.error is not None or blueprint is None or plan is None:
        return ClientApply(client, error=client.error or "no plan", exception=client.exception)
    if not plan.changes:
        return ClientApply(client, ApplyResult((), plan.blocked), after=plan)
    try:
        with session.store.lease(blueprint.client, blueprint.crm, purpose="apply",
                                 wait_seconds=APPLY_LEASE_WAIT_SECONDS):
            return _apply_leased(client, blueprint, plan, session, on_step)
    except Exception as exc:
        log.debug("apply failed for %s", client.name, exc_info=True)
        return ClientApply(client, **_failure(exc))


def _apply_leased(client: ClientPlan, blueprint: Blueprint, plan: Plan, session: Session,
                  on_step: Callable[[ClientPlan, Change], None] | None) -> ClientApply:
    adapter = session.adapter(blueprint.crm, blueprint.token_env)
    # The plan was made before the lease: another run may have applied since. Applying a
    # stale plan would create its pipelines and stages a second time.
    if _plan_checked(blueprint, session).changes != plan.changes:
        raise PlanStaleError(blueprint.client, blueprint.crm)
    session.store.accounts(blueprint.client, blueprint.crm).record(adapter.account_id())
    state = session.store.provisioning(blueprint.client, blueprint.crm)
    result = apply(plan, adapter, state,
                   on_step=(lambda change: on_step(client, change)) if on_step else None)
    try:
        after = plan_client(blueprint, adapter, state.known_ids())
    except Exception as exc:  # applied, but the proving diff failed: keep what was done
        log.debug("diff after apply failed for %s", client.name, exc_info=True)
        failure = _failure(exc)
        return ClientApply(client, result,
                           error=result.error or f"diff after apply: {failure['error']}",
                           exception=exc)
    return ClientApply(client, result, after, error=result.error)


# --- export ----------------------------------------------------------------------------------


def export_blueprint(
    client: str,
    crm: str,
    settings: Settings,
    *,
    output: str | Path | None = None,
    force: bool = False,
    token_env: str | None = None,
    store: Store | None = None,
    adapter: CrmAdapter | None = None,
) -> str:
    """A blueprint YAML of the CRM's live pipelines; records each key's id in the store.

    Written to `output` if given (an existing file only with `force`); returned either way.
    """
    if not re.match(KEY_PATTERN, client) or len(client) > 64:
        suggestion = to_key(client)
        raise ConfigError(message=(
            f"--client '{client}' must be a key: lowercase letters, digits and underscores, "
            "starting with a letter" + (f"; try '{suggestion}'" if suggestion else "")
        ))
    if token_env is not None and not re.match(ENV_NAME_PATTERN, token_env):
        # Not echoed: what was given may be a pasted token.
        raise ConfigError(message=(
            "--token-env must be an environment variable name (uppercase letters, digits and "
            "underscores, e.g. ACME_HUBSPOT_TOKEN): the variable that holds the token, never "
            "the token itself"
        ))
    target = Path(output) if output is not None else None
    if target is not None and target.exists() and not force:
        raise ConfigError(message=f"{target} already exists; pass --force to overwrite it")
    with Session(settings, store=store) as session:
        crm_adapter = adapter or session.adapter(crm, token_env)  # a missing token: no store
        with session.store.lease(client, crm, purpose="export"):
            return _export_leased(client, crm, session, crm_adapter, target=target,
                                  token_env=token_env)


def _export_leased(client: str, crm: str, session: Session, crm_adapter: CrmAdapter, *,
                   target: Path | None, token_env: str | None) -> str:
    account = session.check_account(client, crm, crm_adapter)
    remote = crm_adapter.list_pipelines()
    state = session.store.provisioning(client, crm)
    export = blueprint_from_remote(client, crm, remote, state.known_ids(),
                                   crm_adapter.capabilities, token_env=token_env)
    if not export.data["pipelines"]:
        raise ConfigError(message=f"the {crm} account has no deal pipelines to export")
    Blueprint.model_validate(export.data)  # the file must load as it is written
    text = to_yaml(export.data, crm=crm)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    session.store.accounts(client, crm).record(account)
    state.record_many(export.pipelines, export.stages)
    return text


# --- forget ----------------------------------------------------------------------------------


def forget_client(client: str, crm: str, settings: Settings, *,
                  store: Store | None = None) -> int:
    """Drop the ids and the account recorded for one client's CRM; returns how many ids.

    The deliberate way to move a client to another account: its pipelines then match the
    new account's by label. Holds the client's lease, so no apply is half-way meanwhile.
    """
    with Session(settings, store=store) as session, \
            session.store.lease(client, crm, purpose="forget"):
        return session.store.accounts(client, crm).forget()
