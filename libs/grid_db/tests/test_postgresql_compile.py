"""Nothing in the schema or the write statements is SQLite-only: it all compiles for PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import BigInteger, Table
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from grid_db import (
    Base,
    PublicTrade,
    UnsupportedDialectError,
    User,
    build_insert_ignore,
    insert_ignore,
    upsert_rows,
)

POSTGRESQL_IDENTIFIER_LIMIT = 63
TABLES = sorted(Base.metadata.tables.values(), key=lambda table: table.name)


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_ddl_compiles_for_postgresql(table: Table) -> None:
    dialect = postgresql.dialect()
    ddl = str(CreateTable(table).compile(dialect=dialect))
    assert f"CREATE TABLE {table.name}" in ddl
    for index in table.indexes:
        assert "CREATE INDEX" in str(CreateIndex(index).compile(dialect=dialect))
    for column in table.columns:
        if column.name.endswith("_ms"):
            assert isinstance(column.type, BigInteger), column.name
            assert f"{column.name} BIGINT" in ddl


def test_autoincrement_ids_are_bigint_on_postgresql() -> None:
    ddl = str(CreateTable(PublicTrade.__table__).compile(dialect=postgresql.dialect()))
    assert "id BIGSERIAL NOT NULL" in ddl


def test_constraint_and_index_names_fit_postgresql() -> None:
    for table in TABLES:
        names = [index.name for index in table.indexes]
        names += [constraint.name for constraint in table.constraints]
        for name in names:
            assert isinstance(name, str)
            assert len(name) <= POSTGRESQL_IDENTIFIER_LIMIT, name


def test_insert_ignore_statement_compiles_for_postgresql() -> None:
    statement = build_insert_ignore(PublicTrade, "postgresql").returning(PublicTrade.id)
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert sql.startswith("INSERT INTO public_trades")
    assert sql.endswith("ON CONFLICT DO NOTHING RETURNING public_trades.id")


class _RecordingConnection:
    """Stands in for a PostgreSQL Connection: records what insert_ignore executes."""

    def __init__(self, returned_rows: int) -> None:
        self.dialect = postgresql.dialect()
        self.executed: list[tuple[Any, list[dict[str, Any]]]] = []
        self._returned_rows = returned_rows

    def execute(self, statement: Any, parameters: list[dict[str, Any]]) -> Any:
        self.executed.append((statement, parameters))
        returned = [(index,) for index in range(self._returned_rows)]

        class _Result:
            def all(self) -> list[tuple[int]]:
                return returned

        return _Result()


def test_insert_ignore_on_postgresql_counts_returning_rows(rows: Any) -> None:
    connection = _RecordingConnection(returned_rows=2)
    batch = [rows.trade(i) for i in range(3)]
    assert insert_ignore(connection, PublicTrade, batch) == 2  # type: ignore[arg-type]
    ((statement, parameters),) = connection.executed
    assert parameters == batch
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT DO NOTHING RETURNING public_trades.id" in sql


def test_upsert_on_postgresql(rows: Any) -> None:
    connection = _RecordingConnection(returned_rows=0)
    upsert_rows(
        connection,  # type: ignore[arg-type]
        User,
        [{"id": "u", "name": "n", "created_at_ms": 1}],
        key_columns=["id"],
        update_columns=["name"],
    )
    ((statement, _),) = connection.executed
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (id) DO UPDATE SET name = excluded.name" in sql


def test_other_dialects_are_refused() -> None:
    with pytest.raises(NotImplementedError):
        build_insert_ignore(PublicTrade, "mysql")
    with pytest.raises(UnsupportedDialectError, match="mysql"):
        build_insert_ignore(PublicTrade, mysql.dialect().name)
