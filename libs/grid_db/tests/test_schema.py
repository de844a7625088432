"""The schema is built from the records: columns, keys, constraints, DDL on both dialects."""

from __future__ import annotations

import enum
from typing import Any

import msgspec
import pytest
from sqlalchemy import BigInteger, Boolean, CheckConstraint, String, Table, Text, inspect
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from bybit_records import (
    BookUpdate,
    DataSource,
    Execution,
    FillStatus,
    FrameType,
    Gap,
    Order,
    Position,
    RejectedFrame,
    Ticker,
    Trade,
    Wallet,
    record_fields,
)
from grid_db import (
    RECORD_TABLES,
    Base,
    DatabaseFactory,
    RecordTable,
    UnsupportedDialectError,
    User,
    table_of,
    tables,
)
from grid_db.record_table import ContextColumn
from grid_db.repositories import _upsert
from grid_db.writes import insert_sql

POSTGRESQL_IDENTIFIER_LIMIT = 63
ALL_TABLES = sorted(Base.metadata.tables.values(), key=lambda table: table.name)
DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}  # type: ignore[no-untyped-call]
by_name = pytest.mark.parametrize("table", RECORD_TABLES, ids=lambda t: t.name)

EXPECTED = {
    Trade: ("public_trades", ("category", "symbol", "trade_time_ms", "trade_id"), ("run_ref",)),
    Ticker: ("ticker_snapshots", None, ("run_ref",)),
    BookUpdate: (
        "orderbook_updates",
        ("category", "symbol", "depth", "exchange_ts_ms", "update_id", "kind"),
        ("run_ref",),
    ),
    Execution: ("private_executions", ("exec_id",), ("account_id", "run_id")),
    Order: ("orders", ("order_id", "updated_time_ms", "order_status"), ("account_id", "run_id")),
    Position: ("position_snapshots", None, ("account_id", "run_id")),
    Wallet: ("wallet_snapshots", None, ("account_id", "run_id")),
    Gap: ("gaps", None, ("run_id",)),
    RejectedFrame: ("rejected_frames", None, ("run_id",)),
}


def test_one_table_per_record_type() -> None:
    assert {t.record: (t.name, t.natural_key) for t in RECORD_TABLES} == {
        record: (name, key) for record, (name, key, _) in EXPECTED.items()
    }
    for record in EXPECTED:
        assert table_of(record).record is record
    assert table_of(Trade) is tables.public_trades
    assert {t.name for t in RECORD_TABLES} | {
        "users",
        "bybit_accounts",
        "strategies",
        "runs",
        "run_refs",
        "schema_migrations",
    } == set(Base.metadata.tables)


@by_name
def test_columns_are_the_record_fields_then_the_context(table: RecordTable[Any]) -> None:
    fields = [f.name for f in record_fields(table.record)]
    context = list(EXPECTED[table.record][2])
    assert fields == [f.name for f in msgspec.structs.fields(table.record)]
    assert list(table.column_names) == fields + context
    surrogate = [] if table.clustered else ["id"]
    assert [c.name for c in table.table.columns] == [*surrogate, *fields, *context]
    for info in record_fields(table.record):
        column = table.table.c[info.name]
        assert column.nullable is info.nullable, info.name
        assert isinstance(column.type, _expected_type(info.type)), info.name
    key = table.natural_key if table.clustered else ("id",)
    assert tuple(c.name for c in table.table.primary_key.columns) == key


def _expected_type(field_type: Any) -> type[Any]:
    if field_type is bool:
        return Boolean
    if field_type is int:
        return BigInteger
    origin = getattr(field_type, "__origin__", field_type)
    if origin in (dict, list):
        return Text
    return String


@by_name
def test_context_columns_reference_runs_and_accounts(table: RecordTable[Any]) -> None:
    by_ref = ContextColumn.RUN_REF in table.context
    run = table.table.c.run_ref if by_ref else table.table.c.run_id
    assert run.nullable
    ((run_fk),) = run.foreign_keys
    target = "run_refs.ref" if by_ref else "runs.id"
    assert (run_fk.target_fullname, run_fk.ondelete) == (target, "SET NULL")
    assert by_ref is (table.name in ("public_trades", "ticker_snapshots", "orderbook_updates"))
    if ContextColumn.ACCOUNT in table.context:
        account = table.table.c.account_id
        assert not account.nullable
        ((account_fk),) = account.foreign_keys
        assert (account_fk.target_fullname, account_fk.ondelete) == (
            "bybit_accounts.id",
            "RESTRICT",
        )
    else:
        assert "account_id" not in table.table.c


@by_name
def test_the_natural_key_is_a_unique_constraint(table: RecordTable[Any]) -> None:
    """... or, in a clustered table, the primary key."""
    uniques = [
        tuple(c.name for c in constraint.columns)
        for constraint in table.table.constraints
        if type(constraint).__name__ == "UniqueConstraint"
    ]
    primary = tuple(c.name for c in table.table.primary_key.columns)
    if table.natural_key is None:
        assert uniques == []
        assert not table.ignores_duplicates
    elif table.clustered:
        assert (uniques, primary) == ([], table.natural_key)
        assert table.ignores_duplicates
    else:
        assert uniques == [table.natural_key]
        assert table.ignores_duplicates
        # NULLs never collide in a UNIQUE constraint: a key column must be NOT NULL.
        assert not any(table.table.c[name].nullable for name in table.natural_key)


def _checks(table: Table) -> dict[str, str]:
    return {
        str(c.name): str(c.sqltext) for c in table.constraints if isinstance(c, CheckConstraint)
    }


def test_check_constraints_on_the_values_this_project_defines() -> None:
    source = "source IN ('ws', 'rest')"
    for table in (
        tables.public_trades,
        tables.private_executions,
        tables.orders,
        tables.position_snapshots,
        tables.wallet_snapshots,
    ):
        assert _checks(table.table) == {f"ck_{table.name}_source": source}
    assert _checks(tables.ticker_snapshots.table) == {
        "ck_ticker_snapshots_frame_type": "frame_type IN ('snapshot', 'delta')"
    }
    assert _checks(tables.gaps.table) == {
        "ck_gaps_fill_status": "fill_status IN ('filled', 'partial', 'unfillable')"
    }
    # Open vocabularies (category, topic, outage cause) are not constrained.
    assert _checks(tables.rejected_frames.table) == {}
    assert {m.value for m in DataSource} == {"ws", "rest"}
    assert {m.value for m in FrameType} == {"snapshot", "delta"}
    assert {m.value for m in FillStatus} == {"filled", "partial", "unfillable"}


@pytest.mark.parametrize("dialect_name", DIALECTS)
@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_ddl_compiles_on_both_dialects(table: Table, dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    ddl = str(CreateTable(table).compile(dialect=dialect))
    assert f"CREATE TABLE {table.name}" in ddl
    for index in table.indexes:
        assert "CREATE INDEX" in str(CreateIndex(index).compile(dialect=dialect))
    for column in table.columns:
        if column.name.endswith("_ms"):
            assert isinstance(column.type, BigInteger), column.name
            assert f"{column.name} BIGINT" in ddl
    for name, sqltext in _checks(table).items():
        assert f"CONSTRAINT {name} CHECK ({sqltext})" in ddl


@pytest.mark.parametrize(
    "table", [t for t in RECORD_TABLES if not t.clustered], ids=lambda t: t.name
)
def test_autoincrement_ids_are_bigint_on_postgresql_and_the_rowid_on_sqlite(
    table: RecordTable[Any],
) -> None:
    assert "id BIGSERIAL NOT NULL" in str(
        CreateTable(table.table).compile(dialect=DIALECTS["postgresql"])
    )
    assert "id INTEGER NOT NULL" in str(
        CreateTable(table.table).compile(dialect=DIALECTS["sqlite"])
    )


def test_trades_are_clustered_by_time_without_a_rowid() -> None:
    """SQLite stores the trades in key order (WITHOUT ROWID), so a trade arriving in time
    order is appended instead of updating a random page of a second, unique index."""
    ddl = str(CreateTable(tables.public_trades.table).compile(dialect=DIALECTS["sqlite"]))
    assert ddl.rstrip().endswith("WITHOUT ROWID")
    assert "PRIMARY KEY (category, symbol, trade_time_ms, trade_id)" in ddl
    assert list(tables.public_trades.table.indexes) == []
    assert [t.name for t in RECORD_TABLES if t.clustered] == ["public_trades", "orderbook_updates"]


def test_constraint_and_index_names_fit_postgresql() -> None:
    for table in ALL_TABLES:
        names = [index.name for index in table.indexes]
        names += [constraint.name for constraint in table.constraints]
        for name in names:
            assert isinstance(name, str)
            assert len(name) <= POSTGRESQL_IDENTIFIER_LIMIT, name


def test_no_credential_columns_anywhere() -> None:
    for table in ALL_TABLES:
        for column in table.columns:
            for word in ("secret", "api_key", "password", "token"):
                assert word not in column.name, (table.name, column.name)


# ---- the one INSERT of each table ----------------------------------------------------


def test_insert_statements() -> None:
    table = tables.public_trades
    columns = ", ".join(table.column_names)
    assert insert_sql(table, "sqlite") == (
        f"INSERT INTO public_trades ({columns}) VALUES ({', '.join('?' * len(table.column_names))})"
        " ON CONFLICT DO NOTHING"
    )
    assert insert_sql(table, "postgresql") == (
        f"INSERT INTO public_trades ({columns}) VALUES "
        f"({', '.join(['%s'] * len(table.column_names))}) ON CONFLICT DO NOTHING"
    )
    # Without a natural key there is nothing to conflict on: a plain INSERT.
    assert "ON CONFLICT" not in insert_sql(tables.ticker_snapshots, "postgresql")
    for each in RECORD_TABLES:
        for dialect in DIALECTS:
            assert insert_sql(each, dialect) is insert_sql(each, dialect)  # built once


def test_other_dialects_are_refused() -> None:
    with pytest.raises(UnsupportedDialectError, match="mysql") as caught:
        insert_sql(tables.public_trades, mysql.dialect().name)
    assert isinstance(caught.value, NotImplementedError)
    with pytest.raises(UnsupportedDialectError, match="mysql"):
        _upsert("mysql")


def test_reference_upsert_compiles_for_postgresql() -> None:
    statement = _upsert("postgresql")(User, {"id": "u", "name": "n", "created_at_ms": 1})
    sql = str(statement.compile(dialect=DIALECTS["postgresql"]))
    assert "ON CONFLICT (id) DO UPDATE SET name = excluded.name" in sql


# ---- on a real database: the created schema, and records back from rows --------------


def test_the_created_schema_matches_the_records(database: DatabaseFactory) -> None:
    inspector = inspect(database.engine)
    assert set(inspector.get_table_names()) == set(Base.metadata.tables)
    for table in RECORD_TABLES:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        surrogate = [] if table.clustered else ["id"]
        assert list(columns) == [*surrogate, *table.column_names]
        for info in record_fields(table.record):
            assert columns[info.name]["nullable"] is info.nullable, (table.name, info.name)
        uniques = [tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)]
        primary = tuple(inspector.get_pk_constraint(table.name)["constrained_columns"])
        if table.clustered:
            assert (uniques, primary) == ([], table.natural_key), table.name
        else:
            assert uniques == ([] if table.natural_key is None else [table.natural_key])
            assert primary == ("id",)
        checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert checks == set(_checks(table.table)), table.name
        indexes = {
            i["name"]
            for i in inspector.get_indexes(table.name)
            if not i.get("duplicates_constraint")  # PostgreSQL lists the UNIQUE's index too
        }
        assert indexes == {i.name for i in table.table.indexes}


def test_record_of_round_trips_every_record_type(
    database: DatabaseFactory, records: Any, db: Any, account_id: str, run_id: str
) -> None:
    written = records.one_of_each()
    assert [type(batch[0]) for batch in written] == [t.record for t in RECORD_TABLES]
    for batch in written:
        assert db.write(database.engine, batch, account_id=account_id, run_id=run_id) == 2
    for batch in written:
        table = table_of(type(batch[0]))
        stored = db.stored(database.engine, table)
        assert stored == batch
        for record in stored:
            # The enums come back as enums, the JSON fields as Python values.
            for info in record_fields(table.record):
                value = getattr(record, info.name)
                if value is None:
                    assert info.nullable
                elif isinstance(info.type, type) and issubclass(info.type, enum.StrEnum):
                    assert type(value) is info.type
                elif info.type is bool:
                    assert type(value) is bool
                elif info.type is int:
                    assert type(value) is int


def test_record_of_reads_plain_sql_rows_too(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    """A row read without SQLAlchemy types (SQLite hands back 0/1 and JSON text)."""
    for batch in records.one_of_each():
        db.write(database.engine, batch, account_id=account_id)
        table = table_of(type(batch[0]))
        names = ", ".join(table.column_names)
        order = ", ".join(c.name for c in table.storage_order)
        with database.engine.connect() as connection:
            rows = connection.exec_driver_sql(f"SELECT {names} FROM {table.name} ORDER BY {order}")
            assert [table.record_of(row) for row in rows] == batch
            mappings = connection.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY {order}")
            assert [table.record_of(dict(row._mapping)) for row in mappings] == batch
