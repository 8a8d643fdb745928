"""INSERT … ON CONFLICT for the dialects the store supports (SQLite and PostgreSQL), and bulk
writes of a whole page in one round trip."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Boolean, String, any_, bindparam, func, literal_column, select
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


# --- bulk writes ------------------------------------------------------------------------------
# A page of thousands of rows through SQLAlchemy's executemany spends most of its time turning
# each row's parameters into driver values in Python. These write the same values the Core
# statement would (each column's own bind processor, JSON already serialised by the caller)
# straight to the driver: one `executemany` on SQLite, one COPY on PostgreSQL.


def _qualified(conn: Connection, table: Table) -> str:
    """The table's name as the driver sees it (the store's PostgreSQL schema, if any)."""
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    preparer = conn.dialect.identifier_preparer
    name = preparer.quote(table.name)
    return f"{preparer.quote_schema(schema)}.{name}" if schema else name


def _processors(conn: Connection, table: Table, columns: Sequence[str],
                json_columns: frozenset[str]) -> list[Any]:
    # Booleans need none: both drivers take Python's (SQLite stores 1 and 0, as the
    # processor would).
    dialect = conn.dialect
    return [None if name in json_columns or isinstance(table.c[name].type, Boolean)
            else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in columns]


def bulk_insert(conn: Connection, table: Table, constants: Mapping[str, Any],
                columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                json_columns: frozenset[str] = frozenset(), ids: bool = False
                ) -> list[int]:
    """INSERT `rows` (values of `columns`, then `constants` on every row) in one round trip,
    inside the connection's transaction. Values of `json_columns` are JSON text already.

    With `ids` the table's new primary keys come back in the order of `rows`: on PostgreSQL
    drawn from its sequence first (safe under concurrent writers), on SQLite the consecutive
    rowids the insert took (it holds the database's write lock until commit; checked).
    """
    if not rows:
        return []
    const_names = list(constants)
    names = [*columns, *const_names]
    processors = _processors(conn, table, names, json_columns)
    const_values = tuple(p(v) if p else v for p, v in
                         zip(processors[len(columns):], constants.values(), strict=True))
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # COPY sends text: a constant date written out once, not once per row
        const_values = tuple(v.isoformat() if isinstance(v, dt.date) else v
                             for v in const_values)
    per_row = [(i, p) for i, p in enumerate(processors[:len(columns)]) if p is not None]
    if per_row:
        processed: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for i, processor in per_row:
                values[i] = processor(values[i])
            processed.append((*values, *const_values))
    else:
        processed = [(*row, *const_values) for row in rows]
    name = _qualified(conn, table)
    quote = conn.dialect.identifier_preparer.quote
    if postgres:
        new_ids: list[int] = []
        if ids:
            sequence = conn.exec_driver_sql(
                "SELECT pg_get_serial_sequence(%s, 'id')", (name,)).scalar_one()
            new_ids = list(conn.exec_driver_sql(
                "SELECT nextval(%s) FROM generate_series(1, %s)",
                (sequence, len(processed))).scalars())
            names = ["id", *names]
            processed = [(i, *row) for i, row in zip(new_ids, processed, strict=True)]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(
                f"COPY {name} ({', '.join(quote(n) for n in names)}) FROM STDIN") as copy:
            for row in processed:
                copy.write_row(row)
        return new_ids
    placeholders = ", ".join("?" for _ in names)
    conn.exec_driver_sql(  # names from the table's metadata, quoted; values bound
        f"INSERT INTO {name} ({', '.join(quote(n) for n in names)}) "  # noqa: S608
        f"VALUES ({placeholders})", processed)
    if not ids:
        return []
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    first = last - len(processed) + 1
    low, count = conn.execute(select(func.min(table.c.id), func.count())
                              .where(table.c.id >= first)).one()
    if (low, count) != (first, len(processed)):
        raise StoreError(f"unexpected ids in {table.name} after a bulk insert")
    return list(range(first, last + 1))


def relaxed_commit(conn: Connection) -> None:
    """This transaction's commit returns before PostgreSQL has flushed it to disk
    (`synchronous_commit` off): for a pulled page and its cursor, which commit together, so a
    server crash loses at most the last pages — read again by the next run — never half of
    one, and a crash of crmsync itself loses nothing. Not for pushes: a lost push commit
    would forget what the CRM made. SQLite's WAL with synchronous=NORMAL is alike already."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def any_of(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values` as the dialect takes a long list best: one parameter either way, so
    the statement is short and compiled once — an array on PostgreSQL, a JSON array read by
    `json_each` on SQLite (built in from 3.38; older ones bind each value)."""
    if conn.dialect.name == "postgresql":
        # Text without the column's length: a cast to VARCHAR(n)[] would cut longer values.
        element = String() if isinstance(column.type, String) else column.type
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    if _SQLITE_JSON:
        listed = func.json_each(bindparam(None, json.dumps(list(values)), type_=String()))
        return column.in_(select(literal_column("value")).select_from(listed))
    return column.in_(values)


_SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38)


def in_chunk_size(conn: Connection) -> int:
    """How many values one `any_of` takes."""
    return 50_000 if conn.dialect.name == "postgresql" or _SQLITE_JSON else 900


def refresh_statistics(conn: Connection, tables: Sequence[Table]) -> None:
    """ANALYZE `tables` on PostgreSQL, whose planner otherwise keeps planning a table filled
    by a bulk load as the empty one it last sampled (scanning it for every lookup by remote
    id). SQLite needs none: without statistics it takes the unique index anyway."""
    if conn.dialect.name == "postgresql" and tables:
        conn.exec_driver_sql("ANALYZE " + ", ".join(_qualified(conn, t) for t in tables))
