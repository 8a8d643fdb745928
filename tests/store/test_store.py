"""The store on SQLite and PostgreSQL: migrations, provisioning state, concurrent upserts."""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.schema import CreateTable

from crmsync.errors import StoreError
from crmsync.plan.state import KnownIds
from crmsync.store import Store, describe_url, open_store
from crmsync.store.migrations import MIGRATIONS, Migration, applied_versions, migrate
from crmsync.store.schema import provisioning_state

if TYPE_CHECKING:
    from pathlib import Path


def test_open_creates_the_schema_and_records_the_version(store: Store) -> None:
    assert store.schema_version() == MIGRATIONS[-1].version
    tables = set(inspect(store.engine).get_table_names(
        schema=store.engine.get_execution_options().get("schema_translate_map", {}).get(None)
    ))
    assert {"schema_version", "provisioning_state"} <= tables


def test_migrations_are_idempotent(open_test_store: object, store: Store) -> None:
    again = open_test_store()  # type: ignore[operator]
    assert migrate(again.engine) == []  # nothing left to do
    with again.engine.connect() as conn:
        assert applied_versions(conn) == [m.version for m in MIGRATIONS]


def test_a_later_migration_runs_once(store: Store) -> None:
    def add_sync_table(conn: object) -> None:
        table = Table("sync_cursor", MetaData(), Column("id", Integer, primary_key=True),
                      Column("name", String(50)))
        conn.execute(CreateTable(table, if_not_exists=True))  # type: ignore[attr-defined]

    later = (*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "sync cursors", add_sync_table))
    assert migrate(store.engine, later) == [later[-1].version]
    assert migrate(store.engine, later) == []
    with pytest.raises(ValueError, match="ascending"):
        migrate(store.engine, (later[1], later[0]))


def test_record_and_read_ids(store: Store) -> None:
    state = store.provisioning("acme", "hubspot")
    state.record_pipeline("sales", "p1", "Sales")
    state.record_stage("sales", "meeting_booked", "s1", "Meeting booked")
    state.record_stage("sales", "proposal_sent", "s2", "Proposal sent")
    store.provisioning("acme", "pipedrive").record_pipeline("sales", "7", "Sales")
    store.provisioning("beta", "hubspot").record_pipeline("sales", "p9", "Sales")
    assert state.known_ids() == KnownIds(
        {"sales": "p1"}, {("sales", "meeting_booked"): "s1", ("sales", "proposal_sent"): "s2"}
    )
    # Upsert: the same key again replaces the id and label, no second row.
    state.record_stage("sales", "proposal_sent", "s3", "Offer sent")
    assert state.known_ids().stages[("sales", "proposal_sent")] == "s3"
    assert [r.label for r in state.rows() if r.key == "proposal_sent"] == ["Offer sent"]


def test_a_renamed_key_takes_the_remote_id_over(store: Store) -> None:
    state = store.provisioning("acme", "hubspot")
    state.record_stage("sales", "old_key", "s1", "Meeting booked")
    state.record_stage("sales", "new_key", "s1", "Meeting booked")
    assert state.known_ids().stages == {("sales", "new_key"): "s1"}


def test_forget(store: Store) -> None:
    state = store.provisioning("acme", "hubspot")
    state.record_many([("sales", "p1", "Sales"), ("partners", "p2", "Partners")],
                      [("sales", "a", "s1", "A"), ("sales", "b", "s2", "B"),
                       ("partners", "a", "s3", "A")])
    state.forget_stage("sales", "b")
    assert set(state.known_ids().stages) == {("sales", "a"), ("partners", "a")}
    state.forget_pipeline("sales")
    assert state.known_ids() == KnownIds({"partners": "p2"}, {("partners", "a"): "s3"})


def test_concurrent_upserts_of_the_same_key_leave_one_row(store: Store) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.provisioning("acme", "hubspot").record_stage(
                    "sales", "proposal_sent", f"s{n}-{i}", "Proposal sent")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.engine.connect() as conn:
        rows = conn.execute(select(provisioning_state.c.key)).all()
    assert len(rows) == 1


def test_updated_at_comes_from_the_clock(tmp_path: Path) -> None:
    moment = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)
    store = open_store(f"sqlite:///{tmp_path / 'clock.db'}", clock=lambda: moment)
    store.provisioning("acme", "hubspot").record_pipeline("sales", "p1", "Sales")
    with store.engine.connect() as conn:
        stamp = conn.execute(select(provisioning_state.c.updated_at)).scalar_one()
    assert stamp.replace(tzinfo=dt.UTC) == moment
    store.close()


def test_bad_urls_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid store URL"):
        open_store("not a url")
    with pytest.raises(StoreError, match="cannot open the store at postgresql") as caught:
        open_store("postgresql+psycopg://u:secret@127.0.0.1:1/nowhere")
    assert "secret" not in str(caught.value)
    assert "secret" not in describe_url("postgresql+psycopg://u:secret@h/db")


def test_sqlite_in_memory_works() -> None:
    store = open_store("sqlite://")
    store.provisioning("acme", "hubspot").record_pipeline("sales", "p1", "Sales")
    assert store.provisioning("acme", "hubspot").known_ids().pipelines == {"sales": "p1"}
    store.close()


def _locked_first(times: int, message: str = "database is locked") -> tuple[list[int], object]:
    """A `migrate` that SQLite refuses `times` times before it runs the real one."""
    from sqlalchemy.exc import OperationalError

    from crmsync.store import store as store_module

    calls: list[int] = []
    real = store_module.migrate

    def migrate(engine: object, migrations: object) -> object:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("PRAGMA journal_mode=WAL", {}, Exception(message))
        return real(engine, migrations)  # type: ignore[arg-type]

    return calls, migrate


def test_a_store_another_process_is_creating_is_opened_after_it_is_unlocked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync.store import store as store_module

    calls, migrate = _locked_first(2)
    waits: list[float] = []
    monkeypatch.setattr(store_module, "migrate", migrate)
    monkeypatch.setattr(store_module.time, "sleep", waits.append)
    with open_store(f"sqlite:///{tmp_path / 'new.db'}") as opened:
        assert opened.schema_version() >= 4
    assert len(calls) == 3
    assert waits == [0.05, 0.1]


def test_a_store_that_stays_locked_or_fails_otherwise_is_a_store_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync.store import store as store_module

    monkeypatch.setattr(store_module.time, "sleep", lambda _seconds: None)
    calls, migrate = _locked_first(99)
    monkeypatch.setattr(store_module, "migrate", migrate)
    with pytest.raises(StoreError, match="database is locked"):
        open_store(f"sqlite:///{tmp_path / 'locked.db'}")
    assert len(calls) == store_module.SQLITE_OPEN_ATTEMPTS
    calls, migrate = _locked_first(99, "disk I/O error")
    monkeypatch.setattr(store_module, "migrate", migrate)
    with pytest.raises(StoreError, match="disk I/O error"):
        open_store(f"sqlite:///{tmp_path / 'broken.db'}")
    assert len(calls) == 1  # not a lock: not tried again
