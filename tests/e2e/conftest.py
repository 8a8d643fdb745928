"""End-to-end fixtures: one CRM account, store and configs folder per test, once per CRM.

The CLI is driven through click's runner against the sandbox over real HTTP. Adapters are the
real ones, built by `crmsync.session.default_adapter_factory` with a recording sleeper so
retries cost no time, and wrapped so that every write is recorded and a write can "die" right
after the CRM answered it (the kill switch: `World.kill_after`).
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import yaml
from click.testing import CliRunner, Result
from pydantic import SecretStr
from sqlalchemy import create_engine, text

import crmsync.session
from crmsync.adapters.registry import create_adapter
from crmsync.cli import cli
from crmsync.settings import Settings
from crmsync.store import open_store
from tests.conftest import POSTGRES_URL, postgres_problem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from crmsync.adapters.base import CrmAdapter, RemotePipeline
    from crmsync.plan.state import KnownIds

CRMS = ["hubspot", "pipedrive"]
EXAMPLES = Path(__file__).resolve().parents[2] / "configs"
WRITES = ("create_pipeline", "update_pipeline", "archive_pipeline", "create_stage",
          "update_stage", "archive_stage", "move_deals")
MAX_RETRIES = 12  # 10% 429 + 5% 5xx: 13 failures in a row is a 1-in-10^10 event


class Killed(KeyboardInterrupt):
    """What the kill switch raises: Ctrl-C. No `except Exception` in crmsync catches it."""


@dataclass
class World:
    """One test's CRM account, store and configs folder, and the ways to look at them."""

    crm: str
    sandbox: str
    token: str
    root: Path
    monkeypatch: pytest.MonkeyPatch
    sleeps: list[float] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)  # (method, label or id)
    # Raise `Killed` once this many writes have returned, or right after a write of this kind.
    kill_after: int | str | None = None
    killed: bool = False

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def store_url(self) -> str:
        return os.environ["CRMSYNC_STORE_URL"]

    # -- the command line ---------------------------------------------------------------------

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    def diff_json(self, *paths: str) -> tuple[int, list[dict[str, Any]]]:
        """The exit code and the clients of `crmsync diff --json PATHS`."""
        result = self.cli("diff", "--json", *paths)
        assert result.exit_code in (0, 2), result.output
        return result.exit_code, json.loads(result.stdout)["clients"]

    def diff_client(self, path: Path) -> tuple[int, dict[str, Any]]:
        """The exit code and the one client of `crmsync diff --json PATH`."""
        code, [client] = self.diff_json(str(path))
        return code, client

    # -- blueprints ---------------------------------------------------------------------------

    def example(self, name: str) -> dict[str, Any]:
        """An example config from configs/, targeting this test's CRM."""
        data: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text("utf-8"))
        data["crm"] = self.crm
        return data

    def write(self, data: dict[str, Any], name: str | None = None, *,
              token: str | None = None) -> Path:
        """`data` written to configs/, with the token variable it names set."""
        if data.get("token_env"):
            self.monkeypatch.setenv(data["token_env"], token or self.token)
        path = self.configs / f"{name or data['client']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        # A copy, so a list used twice is written out twice: blueprints refuse YAML aliases.
        plain = json.loads(json.dumps(data))
        path.write_text(yaml.safe_dump(plain, allow_unicode=True, sort_keys=False), "utf-8")
        return path

    def applied(self, data: dict[str, Any]) -> Path:
        """`data` written and applied; the writes list starts empty after it."""
        path = self.write(data)
        result = self.cli("apply", "--yes", str(path))
        assert result.exit_code == 0, result.output
        self.writes.clear()
        return path

    # -- the CRM, read through the adapter and the sandbox API --------------------------------

    def settings(self) -> Settings:
        return Settings(
            hubspot_base_url=self.sandbox, pipedrive_base_url=self.sandbox,
            hubspot_token=self.token, pipedrive_token=self.token,  # type: ignore[arg-type]
            max_retries=MAX_RETRIES, http_timeout_seconds=10.0,
        )

    def pipelines(self, token: str | None = None) -> list[RemotePipeline]:
        settings = self.settings()
        if token is not None:
            settings = settings.model_copy(update={f"{self.crm}_token": SecretStr(token)})
        adapter = create_adapter(self.crm, settings, sleep=self.sleeps.append)
        try:
            return adapter.list_pipelines()
        finally:
            adapter.close()

    def pipeline(self, label: str) -> RemotePipeline:
        found = [p for p in self.pipelines() if p.label == label]
        assert len(found) == 1, f"{len(found)} pipelines labelled {label!r}"
        return found[0]

    def labels(self, pipeline: str) -> list[str]:
        """The stage labels of the pipeline labelled `pipeline`, in CRM order."""
        return [s.label for s in self.pipeline(pipeline).stages]

    def known(self, client: str) -> KnownIds:
        with open_store(self.store_url) as store:
            return store.provisioning(client, self.crm).known_ids()

    def stats(self) -> dict[str, Any]:
        response = requests.get(f"{self.sandbox}/_sandbox/stats", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stage_writes(self) -> dict[str, int]:
        """Write requests the sandbox served since the last reset, by route."""
        routes: dict[str, int] = self.stats()["by_route"]
        return {r: n for r, n in routes.items() if not r.startswith("GET ")}

    def reset_stats(self) -> None:
        requests.post(f"{self.sandbox}/_sandbox/stats/reset", timeout=10).raise_for_status()

    def faults(self, **config: Any) -> None:
        requests.post(f"{self.sandbox}/_sandbox/faults", json=config,
                      timeout=10).raise_for_status()

    def create_deal(self, pipeline_id: str, stage_id: str, name: str) -> str:
        """A deal in the stage, made through the CRM's own API (as a salesperson would)."""
        if self.crm == "hubspot":
            response = requests.post(
                f"{self.sandbox}/crm/v3/objects/deals",
                json={"properties": {"dealname": name, "pipeline": pipeline_id,
                                     "dealstage": stage_id}},
                headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
            response.raise_for_status()
            return str(response.json()["id"])
        response = requests.post(
            f"{self.sandbox}/api/v2/deals",
            json={"title": name, "pipeline_id": int(pipeline_id), "stage_id": int(stage_id)},
            headers={"x-api-token": self.token}, timeout=10)
        response.raise_for_status()
        return str(response.json()["data"]["id"])

    def deal_stage(self, deal_id: str) -> str:
        if self.crm == "hubspot":
            response = requests.get(
                f"{self.sandbox}/crm/v3/objects/deals/{deal_id}",
                params={"properties": "dealstage"},
                headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
            response.raise_for_status()
            return str(response.json()["properties"]["dealstage"])
        response = requests.get(f"{self.sandbox}/api/v2/deals/{deal_id}",
                                headers={"x-api-token": self.token}, timeout=10)
        response.raise_for_status()
        return str(response.json()["data"]["stage_id"])

    def set_display_order(self, pipeline_id: str, stage_id: str, order: int) -> None:
        """What a user's drag in HubSpot (or another tool) may leave: any integer order."""
        response = requests.patch(
            f"{self.sandbox}/crm/v3/pipelines/deals/{pipeline_id}/stages/{stage_id}",
            json={"displayOrder": order},
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        response.raise_for_status()

    # -- the adapters the CLI gets: real ones, writes recorded, a kill switch ----------------

    def adapter_factory(self, settings: Settings, **_: Any) -> crmsync.session.AdapterFactory:
        """Stands in for `default_adapter_factory`: real adapters, a recording sleeper."""
        real = _REAL_FACTORY(settings, sleep=self.sleeps.append, clock=self._clock)

        def factory(crm: str, token_env: str | None) -> CrmAdapter:
            adapter = real(crm, token_env)
            for name in WRITES:
                # An instance attribute, so the adapter's own inner calls (Pipedrive creates a
                # pipeline's stages one by one through `self.create_stage`) are seen too.
                setattr(adapter, name, self._watch(name, getattr(adapter, name)))
            return adapter

        return factory

    def _clock(self) -> float:
        return time.monotonic() + sum(self.sleeps)  # sleeping moves the policy's clock on

    def _watch(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def watched(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            spec = kwargs.get("stage") or next((a for a in args if hasattr(a, "label")), None)
            if spec is not None:
                what = spec.label
            elif name == "create_pipeline":
                what = args[0]
            else:  # a pipeline's new label, or the id of the stage archived / deals moved
                what = kwargs.get("label") or args[-1]
            self.writes.append((name, str(what)))
            if self.kill_after == name or (
                isinstance(self.kill_after, int) and len(self.writes) >= self.kill_after
            ):
                self.kill_after = None
                self.killed = True
                raise Killed  # the CRM did it; the store never hears of it
            return result

        return watched


_REAL_FACTORY = crmsync.session.default_adapter_factory


@pytest.fixture(params=CRMS)
def world(request: pytest.FixtureRequest, sandbox: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A fresh account (its own token) on the sandbox, with the CLI's settings pointing at it."""
    crm: str = request.param
    token = f"e2e-{crm}-{uuid.uuid4().hex}"  # one account per token, where the sandbox splits
    world = World(crm, sandbox, token, tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {
        "CRMSYNC_HUBSPOT_BASE_URL": sandbox, "CRMSYNC_PIPEDRIVE_BASE_URL": sandbox,
        "CRMSYNC_HUBSPOT_TOKEN": token, "CRMSYNC_PIPEDRIVE_TOKEN": token,
        "CRMSYNC_STORE_URL": f"sqlite:///{tmp_path / 'state' / 'crmsync.db'}",
        "CRMSYNC_CONFIGS_DIR": str(world.configs),
        "CRMSYNC_MAX_RETRIES": str(MAX_RETRIES),
        "CRMSYNC_HTTP_TIMEOUT_SECONDS": "10",
        "CRMSYNC_HUBSPOT_SEARCH_LAG_SECONDS": "0",  # the sandbox's search has no lag
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(crmsync.session, "default_adapter_factory", world.adapter_factory)
    yield world
    world.faults(rate_429=0.0, rate_5xx=0.0)


@pytest.fixture
def postgres_store(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the CLI's store at a fresh schema on the PostgreSQL server."""
    problem = postgres_problem()
    if problem:
        pytest.skip(f"!!! POSTGRESQL UNREACHABLE at {POSTGRES_URL}: {problem} — "
                    "the sync e2e ran on SQLite only !!!")
    schema = f"crmsync_e2e_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("CRMSYNC_STORE_URL", url)
    yield url
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
