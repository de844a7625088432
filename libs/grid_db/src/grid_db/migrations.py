"""Bring a database up to the current schema, whatever release created it.

A fresh database gets every table as the records describe them today and is marked
with every migration's version. An existing one gets only the migrations it has not
seen, in order, inside one transaction. Adding a field to a record is one
``add_columns`` migration at the end of ``MIGRATIONS``::

    Migration(2, "public_trades.mark_price", add_columns(tables.public_trades, "mark_price"))

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

from grid_db import tables as _tables  # noqa: F401  (registers the data tables on Base)
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


def _baseline(conn: Connection) -> None:
    """The first release's layout, which every table created since then has."""


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "baseline", _baseline),)


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
