"""The store's tables as they are now (SQLAlchemy Core), for queries.

`migrations.py` builds them step by step; a new table or column is added there as a new
migration *and* here. Each migration keeps its own snapshot of what it creates, so an old
migration never creates a table in today's shape.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

# Per client and CRM: the remote id each blueprint key was applied as. For a pipeline row,
# pipeline_key equals key (a NULL would not take part in the unique constraint).
provisioning_state = Table(
    "provisioning_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client", String(64), nullable=False),
    Column("crm", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # pipeline | stage
    Column("pipeline_key", String(64), nullable=False),
    Column("key", String(64), nullable=False),
    Column("remote_id", String(128), nullable=False),
    Column("label", String(255), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("client", "crm", "kind", "pipeline_key", "key",
                     name="uq_provisioning_state_key"),
    Index("ix_provisioning_state_remote", "client", "crm", "kind", "remote_id"),
)

# Per client and CRM: the CRM account (HubSpot portal id, Pipedrive company id) that the
# client's provisioning_state ids belong to, recorded at its first apply or export.
crm_accounts = Table(
    "crm_accounts",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("crm", String(32), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_crm_accounts_account", "crm", "account_id"),
)

# Per client and CRM: the run that may write (see lease.py). On SQLite the row is the lease;
# on PostgreSQL an advisory lock is, and the row only describes its holder.
leases = Table(
    "leases",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("crm", String(32), primary_key=True),
    Column("token", String(32), nullable=False),  # this holder's id, for renew and release
    Column("purpose", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
