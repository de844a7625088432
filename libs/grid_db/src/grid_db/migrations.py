"""Bring a database up to the current schema, whatever release created it.

A fresh database gets every table as the records describe them today and is marked
with every migration's version. An existing one gets only the migrations it has not
seen, in order, inside one transaction. Adding a field to a record is one
``add_columns`` migration at the end of ``MIGRATIONS``::

    Migration(5, "public_trades.mark_price", add_columns(tables.public_trades, "mark_price"))

(a column added to an existing table must allow NULL: old rows have no value for it).
Schema preparation is safe when several recorders start at once on one database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, String, Table, inspect
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.schema import CreateColumn

from grid_db import tables as _tables
from grid_db.models import Base
from grid_db.record_table import RecordTable
from grid_db.repositories import now_ms

schema_migrations = Table(
    "schema_migrations",
    Base.metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False),
    Column("applied_at_ms", BigInteger, nullable=False),
)

#: Any constant: PostgreSQL serialises concurrent schema preparations on it.
_ADVISORY_LOCK_KEY = 0x67726964_6462  # "griddb"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def add_columns(table: RecordTable[Any], *names: str) -> Callable[[Connection], None]:
    """A migration adding ``names`` to ``table`` as its record declares them now."""

    def apply(conn: Connection) -> None:
        existing = {column["name"] for column in inspect(conn).get_columns(table.name)}
        quoted = conn.dialect.identifier_preparer.format_table(table.table)
        for name in names:
            if name not in existing:
                definition = CreateColumn(table.table.c[name]).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD COLUMN {definition}")

    return apply


#: How a column of today that an older table lacks is computed from the old row.
_DERIVED = {"run_ref": "(SELECT ref FROM run_refs WHERE run_refs.run_id = {old}.run_id)"}


def rebuild(table: RecordTable[Any]) -> Callable[[Connection], None]:
    """A migration giving ``table`` its layout of today (keys, indexes), rows kept.

    The old table is renamed and loses its indexes (their names are the new ones'),
    today's table is created, the rows are copied over in key order (a record stored
    twice under the old key and once under the new one is kept once; a ``run_ref``
    found from the old ``run_id``), and the old table is dropped. It takes as long as
    copying the table; readers wait for it.
    """

    def apply(conn: Connection) -> None:
        quote = conn.dialect.identifier_preparer.quote
        old = f"{table.name}_old"
        conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} RENAME TO {quote(old)}")
        if conn.dialect.name == "postgresql":
            # Unique and primary keys are indexes too, whose names the new table takes.
            keys = inspect(conn)
            names = [c["name"] for c in keys.get_unique_constraints(old)]
            names.append(keys.get_pk_constraint(old)["name"])
            for name in filter(None, names):
                conn.exec_driver_sql(f"ALTER TABLE {quote(old)} DROP CONSTRAINT {quote(name)}")
        inspector = inspect(conn)  # a fresh one: an inspector caches what it read
        for index in inspector.get_indexes(old):
            conn.exec_driver_sql(f"DROP INDEX {quote(str(index['name']))}")
        table.table.create(conn)
        stored = {column["name"] for column in inspector.get_columns(old)}
        kept = [c.name for c in table.table.columns if c.name in stored]
        derived = {
            name: _DERIVED[name].format(old=quote(old))
            for name in table.column_names
            if name not in stored and name in _DERIVED
        }
        columns = ", ".join(quote(name) for name in [*kept, *derived])
        values = ", ".join([*(quote(name) for name in kept), *derived.values()])
        order = ", ".join(quote(name) for name in table.natural_key or ("id",))
        conn.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({columns}) SELECT {values} FROM {quote(old)} "
            f"WHERE true ORDER BY {order} ON CONFLICT DO NOTHING"
        )
        if "id" in kept and conn.dialect.name == "postgresql":
            # The ids were copied, not drawn: the next one drawn must come after them.
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"coalesce(max(id), 0) + 1, false) FROM {quote(table.name)}"
            )
        conn.exec_driver_sql(f"DROP TABLE {quote(old)}")

    return apply


def _baseline(conn: Connection) -> None:
    """The first release's layout, which every table created since then has."""


def _number_the_runs(conn: Connection) -> None:
    """Every run gets its number (``run_refs``, created empty just before), in the order
    the runs started."""
    conn.exec_driver_sql(
        "INSERT INTO run_refs (run_id) SELECT id FROM runs "
        "WHERE id NOT IN (SELECT run_id FROM run_refs) ORDER BY started_at_ms, id"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline", _baseline),
    Migration(2, "run_refs", _number_the_runs),
    Migration(3, "public_trades clustered by time, with run_ref", rebuild(_tables.public_trades)),
    Migration(4, "ticker_snapshots with run_ref", rebuild(_tables.ticker_snapshots)),
)


def prepare_schema(engine: Engine) -> list[int]:
    """Create missing tables and apply pending migrations; returns the versions applied."""
    try:
        return _prepare(engine)
    except (OperationalError, ProgrammingError) as exc:
        # Another process created a table between our check and our CREATE (SQLite has
        # no lock to take for that): everything it made is there now, try once more.
        if "already exists" not in str(exc):
            raise
        return _prepare(engine)


def _prepare(engine: Engine) -> list[int]:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
        elif conn.dialect.name == "sqlite":
            # sqlite3 opens a transaction before DML only: without this, each CREATE and
            # ALTER below would commit on its own (a failed migration half applied) and a
            # concurrent preparation would interleave with ours. BEGIN IMMEDIATE takes the
            # write lock now (others wait up to the busy timeout) and makes it all one
            # transaction.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        fresh = not inspect(conn).has_table("runs")
        Base.metadata.create_all(conn, checkfirst=True)
        applied = set(
            conn.execute(
                schema_migrations.select().with_only_columns(schema_migrations.c.version)
            ).scalars()
        )
        done = []
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            if not fresh:
                migration.apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at_ms=now_ms()
                )
            )
            done.append(migration.version)
        return done
