"""Batch inserts for the recorder's hot path (SQLAlchemy Core, no ORM objects).

The caller owns the transaction, so one batch is one transaction::

    with factory.engine.begin() as conn:
        inserted = insert_ignore(conn, PublicTrade, rows)
    duplicates = len(rows) - inserted

How ``insert_ignore`` counts (verified against SQLAlchemy 2.1 in the tests):

* ``Result.rowcount`` after an executemany is not a reliable count. With
  insertmanyvalues (SQLAlchemy's default batching of an executemany into multi-row
  ``INSERT ... VALUES`` statements of up to 1000 rows) it reports only the *last*
  batch: 3000 rows of which 2500 are new gives 500. psycopg2 batches this way even
  without RETURNING.
* Plain DB-API executemany (SQLite without RETURNING) does give the right total,
  because ``sqlite3.Cursor.rowcount`` sums the changes of every execution and a row
  skipped by ``ON CONFLICT DO NOTHING`` counts zero.
* ``INSERT ... ON CONFLICT DO NOTHING RETURNING <pk>`` returns one row per row
  actually inserted on SQLite (>= 3.35) and PostgreSQL alike, across all batches.

So ``insert_ignore`` counts RETURNING rows wherever the dialect supports executemany
with RETURNING, and falls back to the summed rowcount only for SQLite builds older
than 3.35.

``insert_values`` is the recorder's hot path: positional rows (tuples in a fixed column
order) go to one DB-API ``executemany`` of a prepared ``INSERT`` on SQLite, counted by
the summed rowcount. Building the rows as tuples and skipping SQLAlchemy's per-row
parameter processing and insertmanyvalues batching makes a batch about twice as cheap
in CPU (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.dml import Insert

from grid_db.errors import InvalidRowsError, UnsupportedDialectError
from grid_db.models import Base

#: One row to write: column name -> value.
Row: TypeAlias = Mapping[str, Any]
#: A Core ``Table`` (``Model.__table__`` is typed as its base, ``FromClause``) or a
#: mapped class from ``grid_db.models``.
TableOrModel: TypeAlias = FromClause | type[Base]
#: Where a batch is executed: a Connection in a transaction, or a Session (whose
#: connection and transaction are used).
Executor: TypeAlias = Connection | Session


def resolve_table(table_or_model: TableOrModel) -> Table:
    """The Core ``Table`` behind a mapped class (or the table itself)."""
    table = table_or_model if isinstance(table_or_model, FromClause) else table_or_model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{table_or_model!r} is not a Table or a class mapped to one")
    return table


def build_insert_ignore(table: TableOrModel, dialect_name: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``table`` in the given dialect.

    Any unique or primary-key conflict skips the row, which is what de-duplication
    against natural keys needs. Raises ``UnsupportedDialectError`` (a
    ``NotImplementedError``) for dialects other than sqlite and postgresql.
    """
    resolved = resolve_table(table)
    if dialect_name == "sqlite":
        return sqlite.insert(resolved).on_conflict_do_nothing()
    if dialect_name == "postgresql":
        return postgresql.insert(resolved).on_conflict_do_nothing()
    raise UnsupportedDialectError(dialect_name, "insert_ignore")


def insert_ignore(executor: Executor, table_or_model: TableOrModel, rows: Sequence[Row]) -> int:
    """Insert ``rows`` in one executemany, skipping rows that collide with a unique key.

    Returns how many rows were actually inserted; ``len(rows) - result`` were
    duplicates, either of rows already stored or of earlier rows in the same batch.
    Does not commit: the caller's transaction decides.
    """
    if not rows:
        return 0
    table = resolve_table(table_or_model)
    _check_row_keys(table, rows)
    connection = _connection_of(executor)
    dialect = connection.dialect
    statement = build_insert_ignore(table, dialect.name)
    if dialect.insert_executemany_returning and dialect.insert_returning:
        returning = statement.returning(*_counting_columns(table))
        return len(connection.execute(returning, list(rows)).all())
    if dialect.name == "sqlite":
        # Only reached on SQLite < 3.35 (no RETURNING): plain executemany, whose
        # sqlite3 rowcount is the sum over all executions (see module docstring).
        return connection.execute(statement, list(rows)).rowcount
    raise UnsupportedDialectError(dialect.name, "insert_ignore without INSERT..RETURNING")


def insert_rows(executor: Executor, table_or_model: TableOrModel, rows: Sequence[Row]) -> int:
    """Insert ``rows`` in one executemany, for tables without a natural key.

    Returns ``len(rows)``: every row is inserted or the statement raises.
    Does not commit: the caller's transaction decides.
    """
    if not rows:
        return 0
    table = resolve_table(table_or_model)
    _check_row_keys(table, rows)
    _connection_of(executor).execute(table.insert(), list(rows))
    return len(rows)


def insert_values(
    executor: Executor,
    table_or_model: TableOrModel,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: bool,
) -> int:
    """Insert positional ``rows`` (values in ``columns`` order) in one executemany.

    With ``ignore_conflicts`` rows colliding with a unique key are skipped as in
    ``insert_ignore``. Returns how many rows were inserted. Does not commit.

    The values go to the driver as they are: they must be what the column types bind
    to without conversion (``str``, ``int``, ``bool``, ``float``, ``None``). On SQLite
    this is a DB-API ``executemany`` of one ``INSERT`` whose text is built once per
    table and columns, so sqlite3 keeps it prepared in its statement cache; the count
    is the rowcount, summed over the rows, 0 for a skipped one. Other dialects get the
    rows as mappings through ``insert_ignore`` / ``insert_rows``.
    """
    if not rows:
        return 0
    table = resolve_table(table_or_model)
    connection = _connection_of(executor)
    if connection.dialect.name != "sqlite":
        names = tuple(columns)
        mappings = [dict(zip(names, row, strict=True)) for row in rows]
        if ignore_conflicts:
            return insert_ignore(connection, table, mappings)
        return insert_rows(connection, table, mappings)
    sql = _sqlite_insert_sql(table, tuple(columns), ignore_conflicts)
    result = connection.exec_driver_sql(sql, list(rows))
    return int(result.rowcount)


@lru_cache(maxsize=64)
def _sqlite_insert_sql(table: Table, columns: tuple[str, ...], ignore_conflicts: bool) -> str:
    if not columns:
        raise InvalidRowsError(f"{table.name}: no columns to insert")
    unknown = set(columns) - set(table.columns.keys())
    if unknown:
        raise InvalidRowsError(f"{table.name}: unknown column(s) {sorted(unknown)}")
    preparer = sqlite.dialect().identifier_preparer
    names = ", ".join(preparer.quote(name) for name in columns)
    marks = ", ".join("?" * len(columns))
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    return f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({marks}){conflict}"


def upsert_rows(
    executor: Executor,
    table_or_model: TableOrModel,
    rows: Sequence[Row],
    *,
    key_columns: Sequence[str],
    update_columns: Sequence[str],
) -> None:
    """Insert ``rows``, or on a conflict over ``key_columns`` overwrite ``update_columns``.

    ``INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col`` on SQLite and
    PostgreSQL; columns not listed in ``update_columns`` (e.g. a creation time) keep
    the value of the first insert. Does not commit.
    """
    if not rows:
        return
    table = resolve_table(table_or_model)
    _check_row_keys(table, rows)
    connection = _connection_of(executor)
    dialect_name = connection.dialect.name
    statement: sqlite.Insert | postgresql.Insert
    if dialect_name == "sqlite":
        statement = sqlite.insert(table)
    elif dialect_name == "postgresql":
        statement = postgresql.insert(table)
    else:
        raise UnsupportedDialectError(dialect_name, "upsert_rows")
    upsert = statement.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={name: statement.excluded[name] for name in update_columns},
    )
    connection.execute(upsert, list(rows))


def _connection_of(executor: Executor) -> Connection:
    if isinstance(executor, Session):
        return executor.connection()
    return executor


def _counting_columns(table: Table) -> list[Any]:
    # Any column works for counting; the primary key is the narrowest one there is.
    primary_key = list(table.primary_key.columns)
    return primary_key[:1] if primary_key else list(table.columns)[:1]


def _check_row_keys(table: Table, rows: Sequence[Row]) -> None:
    """Refuse batches SQLAlchemy would mangle silently.

    An executemany is compiled from the first row's keys: a key that appears only in
    a later row is dropped without error, and a key naming no column is ignored.
    """
    first_keys = rows[0].keys()
    unknown = set(first_keys) - set(table.columns.keys())
    if unknown:
        raise InvalidRowsError(f"{table.name}: unknown column(s) {sorted(unknown)}")
    for index, row in enumerate(rows):
        if row.keys() != first_keys:
            difference = sorted(set(row.keys()) ^ set(first_keys))
            raise InvalidRowsError(
                f"{table.name}: row {index} has keys differing from row 0 in {difference}; "
                "every row of a batch must name the same columns"
            )
