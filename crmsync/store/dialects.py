"""INSERT … ON CONFLICT for the dialects the store supports (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite

from crmsync.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy import Connection, Table
    from sqlalchemy.sql.dml import Insert


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's own INSERT (with `on_conflict_do_*`) for `table`."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database '{name}': use SQLite or PostgreSQL")


def insert_ignore(conn: Connection, table: Table, conflict: Sequence[str]) -> Insert:
    """INSERT that does nothing when a row with the same `conflict` columns exists."""
    stmt: Insert = dialect_insert(conn, table).on_conflict_do_nothing(index_elements=list(conflict))
    return stmt


def upsert(conn: Connection, table: Table, values: Mapping[str, Any],
           conflict: Sequence[str]) -> Insert:
    """INSERT … ON CONFLICT (conflict) DO UPDATE the other columns: atomic, race-free."""
    stmt = dialect_insert(conn, table).values(**values)
    updates = {k: stmt.excluded[k] for k in values if k not in conflict}
    result: Insert = stmt.on_conflict_do_update(index_elements=list(conflict), set_=updates)
    return result
