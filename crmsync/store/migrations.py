"""Ordered, idempotent schema migrations, run whenever a store is opened.

`schema_version` holds one row per applied migration. Every migration may run twice (two
processes opening a fresh store at once): DDL uses IF NOT EXISTS and the version row is
inserted with ON CONFLICT DO NOTHING. On PostgreSQL an advisory lock serialises openers.
To change the schema, append a `Migration` (never edit an applied one) and update `schema.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.schema import CreateIndex, CreateTable, DropIndex

from crmsync.store.dialects import insert_ignore
from crmsync.store.schema import record_tables, schema_version, two_way_tables

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection, Engine

# Arbitrary constant: the PostgreSQL advisory lock id crmsync takes while migrating.
MIGRATION_LOCK_ID = 0x63726D73


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Connection], None]


def _create(conn: Connection, table: Table) -> None:
    conn.execute(CreateTable(table, if_not_exists=True))
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        conn.execute(CreateIndex(index, if_not_exists=True))


def _v1_provisioning_state(conn: Connection) -> None:
    snapshot = MetaData()
    _create(conn, Table(
        "provisioning_state",
        snapshot,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client", String(64), nullable=False),
        Column("crm", String(32), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("pipeline_key", String(64), nullable=False),
        Column("key", String(64), nullable=False),
        Column("remote_id", String(128), nullable=False),
        Column("label", String(255), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("client", "crm", "kind", "pipeline_key", "key",
                         name="uq_provisioning_state_key"),
        Index("ix_provisioning_state_remote", "client", "crm", "kind", "remote_id"),
    ))


def _v2_accounts_and_leases(conn: Connection) -> None:
    snapshot = MetaData()
    _create(conn, Table(
        "crm_accounts",
        snapshot,
        Column("client", String(64), primary_key=True),
        Column("crm", String(32), primary_key=True),
        Column("account_id", String(64), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Index("ix_crm_accounts_account", "crm", "account_id"),
    ))
    _create(conn, Table(
        "leases",
        snapshot,
        Column("client", String(64), primary_key=True),
        Column("crm", String(32), primary_key=True),
        Column("token", String(32), nullable=False),
        Column("purpose", String(32), nullable=False),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("acquired_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    ))

def _v3_records(conn: Connection) -> None:
    for table in record_tables(MetaData()).values():
        _create(conn, table)


def _v4_two_way(conn: Connection) -> None:
    for table in two_way_tables(MetaData()).values():
        _create(conn, table)


def _v5_links_by_record(conn: Connection) -> None:
    # A record's links whatever their CRM (`records.keep_merge_bases`): the old index put the
    # CRM before the record id.
    before = record_tables(MetaData())["record_links"]  # a copy the old index is made on
    conn.execute(DropIndex(Index("ix_record_links_record", before.c.client, before.c.crm,
                                 before.c.object_type, before.c.record_id), if_exists=True))
    for index in record_tables(MetaData())["record_links"].indexes:
        conn.execute(CreateIndex(index, if_not_exists=True))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "provisioning state: remote ids of pipelines and stages", _v1_provisioning_state),
    Migration(2, "crm accounts the ids belong to; leases per client and CRM",
              _v2_accounts_and_leases),
    Migration(3, "record sync: companies, contacts, deals, links, associations, cursors, runs",
              _v3_records),
    Migration(4, "two-way sync: local changes waiting to be pushed, resolved conflicts",
              _v4_two_way),
    Migration(5, "record links by record whatever the CRM", _v5_links_by_record),
)


def applied_versions(conn: Connection) -> list[int]:
    return sorted(conn.scalars(select(schema_version.c.version)))


def migrate(engine: Engine, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the schema up to date; returns the versions applied by this call."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migration versions must be unique and ascending")
    done: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        _create(conn, schema_version)
        applied = set(applied_versions(conn))
        for migration in migrations:
            if migration.version in applied:
                continue
            migration.upgrade(conn)
            conn.execute(insert_ignore(conn, schema_version, ["version"]).values(
                version=migration.version, name=migration.name,
                applied_at=dt.datetime.now(dt.UTC),
            ))
            done.append(migration.version)
    return done
