"""The store's tables as they are now (SQLAlchemy Core), for queries.

`migrations.py` builds them step by step; a new table or column is added there as a new
migration *and* here. Each migration keeps its own snapshot of what it creates, so an old
migration never creates a table in today's shape.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
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

# --- record sync ------------------------------------------------------------------------------
# Built by a function so migration 3 creates exactly these tables; a later migration that
# changes one copies this function's shape into itself first (the snapshot rule above).

def record_tables(md: MetaData) -> dict[str, Table]:
    """The record-sync tables in `md`, by name."""
    tz = DateTime(timezone=True)

    def record_table(name: str, *columns: Column[Any], indexes: tuple[Index, ...] = ()) -> Table:
        # Every record row: the store's own id, its client, the typed columns of its kind,
        # every other property by name (JSON), and its tombstone.
        return Table(
            name, md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            *columns,
            Column("properties", JSON, nullable=False),
            # Known so far only as the target of an association (its page has not come yet):
            # hidden from live queries until pulled.
            Column("stub", Boolean, nullable=False, default=False),
            Column("created_at", tz, nullable=False),
            Column("updated_at", tz, nullable=False),
            Column("deleted_at", tz),
            Column("deleted_reason", String(16)),  # archived | deleted | merged | missing
            Column("merged_into", Integer),  # the surviving record's id (same table)
            Index(f"ix_{name}_client", "client", "deleted_at"),
            *indexes,
        )

    return {
        "companies": record_table(
            "companies",
            Column("name", String(512)),
            Column("domain", String(255)),
            Column("domain_key", String(255)),  # normalised for matching: lower, no www.
            Column("owner_id", String(64)),
            indexes=(Index("ix_companies_domain", "client", "domain_key"),),
        ),
        "contacts": record_table(
            "contacts",
            Column("email", String(320)),
            Column("email_key", String(320)),  # normalised for matching: stripped, lower
            Column("first_name", String(255)),
            Column("last_name", String(255)),
            Column("phone", String(64)),
            Column("consent", Boolean),  # marketing consent, from the client's declared field
            Column("owner_id", String(64)),
            indexes=(Index("ix_contacts_email", "client", "email_key"),),
        ),
        "deals": record_table(
            "deals",
            Column("name", String(512)),
            Column("amount", Numeric(20, 4, asdecimal=False)),
            Column("currency", String(8)),
            # By blueprint key through the ids `apply` recorded; NULL for a pipeline no
            # blueprint manages (the remote ids below still say where the deal is).
            Column("pipeline_key", String(64)),
            Column("stage_key", String(64)),
            Column("remote_pipeline_id", String(64)),
            Column("remote_stage_id", String(64)),
            Column("status", String(8)),  # open | won | lost
            Column("close_date", Date),
            Column("closed_at", tz),
            Column("stage_changed_at", tz),
            Column("owner_id", String(64)),
            Column("remote_created_at", tz),
            indexes=(Index("ix_deals_stage", "client", "pipeline_key", "stage_key"),),
        ),
        # Which remote record (per client, CRM and object type) each store record is, and the
        # fields as last agreed with that CRM: the merge base of two-way sync.
        "record_links": Table(
            "record_links", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("remote_id", String(64), nullable=False),
            Column("record_id", Integer, nullable=False),
            Column("remote_modified_at", tz),
            Column("base", JSON),
            Column("seen_pass", String(40)),  # the last full pass that listed it
            Column("pulled_at", tz, nullable=False),
            Column("removed_at", tz),
            UniqueConstraint("client", "crm", "object_type", "remote_id",
                             name="uq_record_links_remote"),
            # By record whatever the CRM: a record's links, one per CRM (migration 5).
            Index("ix_record_links_by_record", "client", "object_type", "record_id"),
        ),
        # Between store records, whichever CRM reported them. `from` is the owning side
        # (contact→company, deal→contact, deal→company).
        "associations": Table(
            "associations", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("from_type", String(16), nullable=False),
            Column("from_id", Integer, nullable=False),
            Column("to_type", String(16), nullable=False),
            Column("to_id", Integer, nullable=False),
            Column("is_primary", Boolean, nullable=False, default=False),
            Column("crm", String(32)),
            Column("updated_at", tz, nullable=False),
            UniqueConstraint("client", "from_type", "from_id", "to_type", "to_id",
                             name="uq_associations"),
            Index("ix_associations_to", "client", "to_type", "to_id"),
        ),
        "sync_cursors": Table(
            "sync_cursors", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("cursor", JSON, nullable=False),
            Column("removals_scanned_at", tz),
            Column("updated_at", tz, nullable=False),
            UniqueConstraint("client", "crm", "object_type", name="uq_sync_cursors"),
        ),
        "field_definitions": Table(
            "field_definitions", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("definitions", JSON, nullable=False),
            Column("fetched_at", tz, nullable=False),
            UniqueConstraint("client", "crm", "object_type", name="uq_field_definitions"),
        ),
        "sync_runs": Table(
            "sync_runs", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("host", String(255), nullable=False),
            Column("pid", Integer, nullable=False),
            Column("started_at", tz, nullable=False),
            Column("finished_at", tz),
            Column("status", String(16), nullable=False),  # running | ok | partial | error
            Column("counts", JSON),
            Column("error", Text),
            Index("ix_sync_runs_client", "client", "crm", "finished_at"),
        ),
        # A record that could not be stored or pushed: kept, retried next run, listed.
        "sync_failures": Table(
            "sync_failures", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("direction", String(8), nullable=False),  # pull | push
            Column("record_key", String(64), nullable=False),  # remote id (pull), store id (push)
            Column("error", Text, nullable=False),
            Column("attempts", Integer, nullable=False, default=1),
            Column("first_seen", tz, nullable=False),
            Column("last_seen", tz, nullable=False),
            UniqueConstraint("client", "crm", "object_type", "direction", "record_key",
                             name="uq_sync_failures"),
        ),
    }


def two_way_tables(md: MetaData) -> dict[str, Table]:
    """The two-way sync tables in `md`, by name (migration 4)."""
    tz = DateTime(timezone=True)
    return {
        # A record changed locally (the store API, `crmsync import`) and not yet pushed: one
        # row per record, coalescing edits. `fields` names what changed since the merge base
        # (canonical columns, property names, `associations:<type>`); the push that lands
        # deletes the row in the same transaction that moves the base.
        "local_changes": Table(
            "local_changes", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("record_id", Integer, nullable=False),
            Column("op", String(8), nullable=False),  # upsert | delete
            Column("fields", JSON, nullable=False),
            Column("queued_at", tz, nullable=False),
            Column("attempts", Integer, nullable=False, default=0),
            Column("last_error", Text),
            UniqueConstraint("client", "object_type", "record_id", name="uq_local_changes"),
            Index("ix_local_changes_queue", "client", "object_type", "queued_at"),
        ),
        # Every field changed on both sides since the merge base, and how the client's
        # policy resolved it.
        "conflicts": Table(
            "conflicts", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("client", String(64), nullable=False),
            Column("crm", String(32), nullable=False),
            Column("object_type", String(16), nullable=False),
            Column("record_id", Integer, nullable=False),
            Column("field", String(255), nullable=False),
            Column("base_value", JSON),
            Column("local_value", JSON),
            Column("remote_value", JSON),
            Column("policy", String(16), nullable=False),
            Column("winner", String(8), nullable=False),  # local | remote
            Column("resolved_at", tz, nullable=False),
            Index("ix_conflicts_client", "client", "resolved_at"),
        ),
    }


_records = record_tables(metadata)
_two_way = two_way_tables(metadata)
local_changes = _two_way["local_changes"]
conflicts = _two_way["conflicts"]
companies = _records["companies"]
contacts = _records["contacts"]
deals = _records["deals"]
record_links = _records["record_links"]
associations = _records["associations"]
sync_cursors = _records["sync_cursors"]
field_definitions = _records["field_definitions"]
sync_runs = _records["sync_runs"]
sync_failures = _records["sync_failures"]
RECORD_TABLES: dict[str, Table] = {"companies": companies, "contacts": contacts, "deals": deals}
