"""Whose ids, whose pipelines, whose turn: accounts, shared accounts and the apply lease.

Against the sandbox on both CRMs, with the store on SQLite and on PostgreSQL:
- a store whose ids were recorded in one account refuses to apply them to another, until the
  client's ids are deliberately forgotten;
- two clients of one store in one account never adopt (and so flip-flop) each other's
  pipelines;
- two `crmsync apply` processes racing for one client create every pipeline and stage once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from crmsync.adapters.base import StageSpec
from crmsync.adapters.registry import create_adapter
from tests.store.conftest import POSTGRES_URL, _postgres_reachable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import World


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest, world: World) -> Iterator[str]:
    """The world's store on SQLite (as set up) or in a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    problem = _postgres_reachable()
    if problem:
        pytest.skip(f"!!! POSTGRESQL UNREACHABLE at {POSTGRES_URL}: {problem} !!!")
    schema = f"crmsync_e2e_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    world.monkeypatch.setenv("CRMSYNC_STORE_URL",
                             f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    yield "postgres"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _their_own_pipeline(world: World, token: str) -> str:
    """A pipeline made by the other account's own people; its id is one the store knows
    from the first account (ids are numbered per account)."""
    settings = world.settings().model_copy(update={f"{world.crm}_token": SecretStr(token)})
    adapter = create_adapter(world.crm, settings, sleep=world.sleeps.append)
    try:
        made = adapter.create_pipeline("Their own pipeline", 5, [
            StageSpec("Their first stage", 0, 0.1), StageSpec("Their second stage", 1, 0.5)])
    finally:
        adapter.close()
    return made.id


def test_a_store_never_applies_one_accounts_ids_to_another(world: World,
                                                           store_kind: str) -> None:
    acme = world.example("acme")
    path = world.applied(acme)
    recorded = world.known("acme")
    other_token = f"e2e-{world.crm}-other-{uuid.uuid4().hex}"
    theirs = _their_own_pipeline(world, other_token)
    assert theirs in set(recorded.pipelines.values())  # the same ids exist in both accounts

    world.write(acme, token=other_token)  # the client "moved": its token reaches account B
    diff = world.cli("diff", str(path))
    assert diff.exit_code == 1, diff.output
    assert "belong to account" in diff.output
    assert f"forget acme --crm {world.crm}" in diff.output
    applied = world.cli("apply", "--yes", str(path))
    assert applied.exit_code == 1, applied.output
    assert world.writes == []
    labels = {p.label: p for p in world.pipelines(token=other_token)}
    assert labels["Their own pipeline"].id == theirs  # not renamed
    assert [s.label for s in labels["Their own pipeline"].stages] == [
        "Their first stage", "Their second stage"]

    forgot = world.cli("forget", "acme", "--crm", world.crm)
    assert forgot.exit_code == 0, forgot.output
    assert world.known("acme").pipelines == {}
    moved = world.cli("apply", "--yes", str(path))
    assert moved.exit_code == 0, moved.output
    after = {p.label: p for p in world.pipelines(token=other_token)}
    assert after["Their own pipeline"].id == theirs
    assert {p["label"] for p in acme["pipelines"]} <= set(after)
    assert world.cli("diff", str(path)).exit_code == 0
    # The first account is untouched by all of this, and now the other one's: refused.
    world.write(acme)
    assert world.cli("diff", str(path)).exit_code == 1


def test_two_clients_in_one_account_never_take_each_others_pipelines(
        world: World, store_kind: str) -> None:
    acme = world.example("acme")
    acme_path = world.applied(acme)
    first = acme["pipelines"][0]
    before = world.labels(first["label"])

    stages = [{"key": "rival_stage", "label": "Rival stage", "probability": 0.3},
              *(s for s in first["stages"] if s.get("outcome"))]
    rival: dict[str, Any] = {**acme, "client": "rival", "token_env": "RIVAL_TOKEN",
                             "pipelines": [{"key": "rival_sales", "label": "Rival sales",
                                            "stages": stages}]}
    world.applied(rival)  # a pipeline of its own in the same account is fine
    # Now it also names acme's pipeline (with other stages): adopting it by label would
    # archive acme's stages, and acme's next run would archive rival's.
    rival["pipelines"] = [*rival["pipelines"], {**first, "stages": stages}]
    refused = world.cli("apply", "--yes", str(world.write(rival)))
    assert refused.exit_code == 1, refused.output
    assert f"'{first['label']}' is managed by client acme" in refused.output
    assert world.writes == []
    assert world.labels(first["label"]) == before
    assert world.cli("diff", str(acme_path)).exit_code == 0  # acme still clean: no flip-flop


BLUEPRINT_RACE = "acme"


def _racing_apply(world: World, path: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", "from crmsync.cli import main; main()",
                             "apply", "--yes", path],
                            env=env, cwd=world.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_applies_at_once_create_everything_once(world: World, store_kind: str) -> None:
    for trial in range(2):
        token = f"e2e-{world.crm}-race-{trial}-{uuid.uuid4().hex}"
        world.token = token
        data = world.example(BLUEPRINT_RACE)
        data["client"] = f"race{trial}"
        path = str(world.write(data, token=token))
        runs = [_racing_apply(world, path) for _ in range(2)]
        results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
        codes = sorted(code for code, _, _ in results)
        assert codes[0] == 0, results
        assert codes[1] in (0, 4), results
        for code, _out, err in results:
            if code == 4:
                assert "another run" in err, err
        pipelines = world.pipelines(token=token)
        counts = Counter(p.label for p in pipelines)
        assert all(n == 1 for n in counts.values()), counts
        for pipeline in pipelines:
            stage_counts = Counter(s.label for s in pipeline.stages)
            assert all(n == 1 for n in stage_counts.values()), (pipeline.label, stage_counts)
        assert world.cli("diff", path).exit_code == 0


def test_apply_while_another_run_holds_the_lease_exits_4_and_changes_nothing(
        world: World, store_kind: str) -> None:
    from crmsync.store import open_store

    path = world.write(world.example("acme"))
    with open_store(world.store_url) as store, \
            store.lease("acme", world.crm, purpose="apply") as held:
        result = world.cli("apply", "--yes", str(path))
        assert result.exit_code == 4, result.output
        assert f"another run holds its lease ({held.holder})" in result.output
        assert world.writes == []
        forget = world.cli("forget", "acme", "--crm", world.crm)
        assert forget.exit_code == 4, forget.output
    assert world.cli("apply", "--yes", str(path)).exit_code == 0  # released: the next run goes
