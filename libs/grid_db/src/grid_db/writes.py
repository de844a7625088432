"""The one write path of every record table: a fixed statement, one executemany per batch.

Live rows and REST refills, every writer and every tool that copies records, go
through ``write_records``. The caller owns the transaction::

    with engine.begin() as conn:
        new = write_records(conn, tables.public_trades, trades, RowContext(run_id, run_ref=ref))
    duplicates = len(trades) - new

Why one fixed statement per table and dialect: the statement text never depends on
the batch, so the driver prepares it once and keeps it (sqlite3's statement cache,
psycopg's prepared statements). A statement rendered per batch size, as multi-row
``VALUES (...), (...)`` is, fills those caches with one statement per distinct size
and grows memory with every gap refill.

How the count is taken: a plain DB-API ``executemany`` whose rowcount is the number of
rows changed, summed over the rows (sqlite3 and psycopg 3 both sum it); a row skipped
by ``ON CONFLICT DO NOTHING`` counts zero. On PostgreSQL a batch of ``COPY_MIN_ROWS`` or
more is COPYed into a staging table and moved with one ``INSERT ... SELECT ... ON
CONFLICT DO NOTHING`` (its rowcount is the count): about twice the rows per second.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from bybit_records import Record
from grid_db.errors import UnsupportedDialectError
from grid_db.record_table import RecordTable, RowContext

if TYPE_CHECKING:
    import psycopg

R = TypeVar("R", bound=Record)
#: From this many rows a PostgreSQL batch goes through COPY (below, one executemany of
#: the fixed INSERT is cheaper than the staging round trips).
COPY_MIN_ROWS = 64


def write_records(
    conn: Connection, table: RecordTable[R], records: Sequence[R], context: RowContext
) -> int:
    """Insert ``records`` into their table; returns how many rows were new.

    A table whose record has a natural key skips a record already stored (or repeated
    in the batch); the others store every record. Does not commit.
    """
    if not records:
        return 0
    return write_rows(conn, table, table.rows(records, context))


def write_rows(conn: Connection, table: RecordTable[Any], rows: Sequence[Sequence[Any]]) -> int:
    """``write_records`` for rows already in ``table.column_names`` order."""
    if not rows:
        return 0
    if len(rows) >= COPY_MIN_ROWS and conn.dialect.driver == "psycopg":
        return _copy_rows(conn, table, rows)
    sql = insert_sql(table, conn.dialect.name)
    result = conn.exec_driver_sql(sql, list(rows))
    return int(result.rowcount)


def _copy_rows(conn: Connection, table: RecordTable[Any], rows: Sequence[Sequence[Any]]) -> int:
    """PostgreSQL: COPY, PostgreSQL's fast path (no statement per row).

    A batch that collides with stored rows cannot be COPYed as it is. So a table with a
    natural key first tries a plain COPY under a savepoint (live batches rarely collide);
    when it does collide, the batch is COPYed into a session-local staging table instead
    and moved with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, whose rowcount is
    the number of new rows, and the next batches of that table take that way directly
    for a while (a refill overlapping live rows, a redundant recorder writing the same
    trades).
    """
    dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    base_error = conn.dialect.loaded_dbapi.Error
    statements = copy_sql(table)
    try:
        with dbapi.cursor() as cursor:
            if table.natural_key is None:
                _copy(cursor, statements.direct, rows)
                return len(rows)
            colliding = _colliding.setdefault(conn.engine, {})
            left = colliding.get(table.name, 0)
            # In key order, as the staging INSERT locks them: recorders writing the same
            # trades into one database (a redundant fleet) then never deadlock.
            rows = sorted(rows, key=_key_of(table))
            if left <= 0 and _direct(cursor, statements, rows):
                return len(rows)
            colliding[table.name] = _STAGE_AFTER_COLLISION if left <= 0 else left - 1
            cursor.execute(statements.create)
            _copy(cursor, statements.stage, rows)
            cursor.execute(statements.insert)
            inserted = int(cursor.rowcount)
            cursor.execute(statements.empty)
            return inserted
    except base_error as exc:
        # Raised as SQLAlchemy raises a driver error (OperationalError for a lost server,
        # IntegrityError for a bad row ...), so callers judge it as they judge any other.
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statements.stage,
            None,
            exc,
            base_error,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from exc


def _direct(cursor: Any, statements: CopyStatements, rows: Sequence[Sequence[Any]]) -> bool:
    """COPY straight into the table; False (and nothing written) when a row collides."""
    import psycopg.errors

    cursor.execute("SAVEPOINT grid_db_copy")
    try:
        _copy(cursor, statements.direct, rows)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
        cursor.execute("ROLLBACK TO SAVEPOINT grid_db_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT grid_db_copy")
    return True


def _copy(cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    with cursor.copy(statement) as stream:
        for row in rows:
            stream.write_row(row)


#: batches of a table that take the staging way after one collided
_STAGE_AFTER_COLLISION = 50
#: per database (engine), per table: batches left to stage
_colliding: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()


@cache
def _key_of(table: RecordTable[Any]) -> Callable[[Sequence[Any]], Any]:
    """A row's natural key, for sorting rows as they are inserted."""
    assert table.natural_key is not None
    return itemgetter(*(table.column_names.index(name) for name in table.natural_key))


@dataclass(frozen=True, slots=True)
class CopyStatements:
    direct: str
    create: str
    stage: str
    insert: str
    empty: str


@cache
def copy_sql(table: RecordTable[Any]) -> CopyStatements:
    """The COPY statements of a table on PostgreSQL (fixed texts, built once)."""
    preparer = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
    target = preparer.format_table(table.table)
    stage = preparer.quote(f"stage_{table.name}")
    names = ", ".join(preparer.quote(name) for name in table.column_names)
    conflict = ""
    if table.natural_key is not None:
        # In key order: recorders writing overlapping batches into one database (a
        # redundant fleet) then lock their rows in the same order, so they never deadlock.
        key = ", ".join(preparer.quote(name) for name in table.natural_key)
        conflict = f" ORDER BY {key} ON CONFLICT DO NOTHING"
    return CopyStatements(
        direct=f"COPY {target} ({names}) FROM STDIN",
        create=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {target} WITH NO DATA"
        ),
        stage=f"COPY {stage} ({names}) FROM STDIN",
        insert=f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage}{conflict}",
        empty=f"TRUNCATE {stage}",
    )


@cache
def insert_sql(table: RecordTable[Any], dialect_name: str) -> str:
    """The table's one INSERT statement for a dialect (positional parameters)."""
    if dialect_name == "sqlite":
        preparer, mark = sqlite.dialect().identifier_preparer, "?"
    elif dialect_name == "postgresql":
        preparer, mark = postgresql.dialect().identifier_preparer, "%s"  # type: ignore[no-untyped-call]
    else:
        raise UnsupportedDialectError(dialect_name, "write_records")
    names = ", ".join(preparer.quote(name) for name in table.column_names)
    marks = ", ".join([mark] * len(table.column_names))
    conflict = " ON CONFLICT DO NOTHING" if table.ignores_duplicates else ""
    return f"INSERT INTO {preparer.format_table(table.table)} ({names}) VALUES ({marks}){conflict}"
