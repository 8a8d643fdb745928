"""Provisioning for many clients: the library behind `crmsync diff`, `apply` and `export`.

Each function mirrors a command so a scheduler or a notebook can call it without click.
One client's failure (a bad config, a missing token, an error from its CRM) is recorded on
that client's result and never stops the others.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from crmsync.blueprint.models import ENV_NAME_PATTERN, KEY_PATTERN, Blueprint, to_key
from crmsync.errors import ConfigError, CrmsyncError, StoreError
from crmsync.plan.apply import ApplyResult, apply
from crmsync.plan.diff import diff, stage_candidates_for_removal
from crmsync.plan.export import blueprint_from_remote, to_yaml

if TYPE_CHECKING:
    from crmsync.adapters.base import CrmAdapter
    from crmsync.adapters.http_policy import Clock, Sleep
    from crmsync.plan.changes import Change, Plan
    from crmsync.plan.state import KnownIds
    from crmsync.settings import Settings
    from crmsync.store import Store

log = logging.getLogger(__name__)

AdapterFactory = Callable[[str, "str | None"], "CrmAdapter"]  # (crm, token_env) -> adapter
Status = Literal["clean", "pending", "blocked", "error"]


@dataclass(frozen=True, kw_only=True)
class Outcome:
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
    """The `Outcome` fields for a client stopped by `exc` (tokens masked in its text)."""
    from crmsync.logs import mask_known

    error = str(exc) if isinstance(exc, CrmsyncError) else f"unexpected {type(exc).__name__}: {exc}"
    return {"error": mask_known(error), "exception": exc}


@dataclass(frozen=True)
class ClientPlan(Outcome):
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
class ClientApply(Outcome):
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


def default_adapter_factory(
    settings: Settings, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic
) -> AdapterFactory:
    """Adapters from the registry, with the blueprint's own token variable if it names one.

    `sleep` and `clock` reach every adapter's retry and pacing policy: the one seam where a
    test (or a notebook) swaps in a fast sleeper without touching the commands.
    """

    def factory(crm: str, token_env: str | None) -> CrmAdapter:
        from crmsync.adapters.registry import create_adapter

        return create_adapter(crm, settings, token_env=token_env, sleep=sleep, clock=clock)

    return factory


def plan_client(blueprint: Blueprint, adapter: CrmAdapter, known: KnownIds) -> Plan:
    """Read the CRM, count deals in the stages that would go, and `diff`."""
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


class Session:
    """The store and the CRM adapters that commands share, opened on first use and closed
    together (`with Session(settings) as session:`).

    One adapter per CRM account (CRM and token variable): `apply`, sharing its session with
    the `diff` it shows first, opens the store once and connects to each account once, and
    clients on one account share its rate-limit pacing. A `store` passed in is the caller's
    to close.
    """

    def __init__(self, settings: Settings, *, store: Store | None = None,
                 adapter_factory: AdapterFactory | None = None) -> None:
        self.settings = settings
        self._store = store
        self._own_store = store is None
        self._store_error: StoreError | None = None
        self._factory = adapter_factory or default_adapter_factory(settings)
        self._adapters: dict[tuple[str, str | None], CrmAdapter] = {}

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The store, opened on first use; a store that cannot be opened is tried only once."""
        if self._store_error is not None:
            raise self._store_error
        if self._store is None:
            from crmsync.store import open_store

            try:
                self._store = open_store(self.settings.store_url)
            except StoreError as exc:
                self._store_error = exc
                raise
        return self._store

    def adapter(self, crm: str, token_env: str | None) -> CrmAdapter:
        """The adapter for one CRM account, built on first use."""
        key = (crm, token_env)
        if key not in self._adapters:
            self._adapters[key] = self._factory(crm, token_env)
        return self._adapters[key]

    def close(self) -> None:
        """Close every adapter, and the store if this session opened it."""
        for adapter in self._adapters.values():
            try:
                adapter.close()
            except Exception:
                log.debug("closing %s adapter failed", adapter.crm, exc_info=True)
        if self._own_store and self._store is not None:
            self._store.close()


@contextmanager
def _session(settings: Settings, session: Session | None) -> Iterator[Session]:
    """The caller's `session` (the caller closes it), else a new one closed at the end."""
    if session is not None:
        yield session
        return
    with Session(settings) as own:
        yield own


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
    with _session(settings, session) as active:
        return [_diff_one(client, active) for client in clients]


def _diff_one(client: ClientPlan, session: Session) -> ClientPlan:
    blueprint = client.blueprint
    if blueprint is None:
        return client
    try:
        adapter = session.adapter(blueprint.crm, blueprint.token_env)
        known = session.store.provisioning(blueprint.client, blueprint.crm).known_ids()
        plan = plan_client(blueprint, adapter, known)
    except StoreError:
        raise  # every client shares the store: one error for the command, not one per client
    except Exception as exc:
        log.debug("diff failed for %s", client.name, exc_info=True)
        return ClientPlan(client.path, blueprint, **_failure(exc))
    return ClientPlan(client.path, blueprint, plan)


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
    with _session(settings, session) as active:
        return [_apply_one(client, active, on_step) for client in clients]


def _apply_one(client: ClientPlan, session: Session,
               on_step: Callable[[ClientPlan, Change], None] | None) -> ClientApply:
    blueprint, plan = client.blueprint, client.plan
    if client.error is not None or blueprint is None or plan is None:
        return ClientApply(client, error=client.error or "no plan", exception=client.exception)
    if not plan.changes:
        return ClientApply(client, ApplyResult((), plan.blocked), after=plan)
    try:
        adapter = session.adapter(blueprint.crm, blueprint.token_env)
        state = session.store.provisioning(blueprint.client, blueprint.crm)
        result = apply(plan, adapter, state,
                       on_step=(lambda change: on_step(client, change)) if on_step else None)
    except Exception as exc:
        log.debug("apply failed for %s", client.name, exc_info=True)
        return ClientApply(client, **_failure(exc))
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
        crm_adapter = adapter or session.adapter(crm, token_env)
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
        state.record_many(export.pipelines, export.stages)
    return text
