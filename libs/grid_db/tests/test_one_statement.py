"""One fixed INSERT per table, whatever the batch: the driver prepares it once and keeps it.

A statement rendered per batch size (multi-row ``VALUES (...), (...)``) would fill the
driver's statement cache with one statement per distinct size; here every size, with or
without duplicates, executes the same text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from bybit_records import BookKind, Record
from grid_db import (
    RECORD_TABLES,
    DatabaseFactory,
    DatabaseSettings,
    RecordTable,
    RowContext,
    tables,
    write_records,
    writes,
)
from grid_db.writes import insert_sql

#: Every batch size from 1 to 300 for trades; a spread of them for the other tables.
TRADE_SIZES = range(1, 301)
OTHER_SIZES = [*range(1, 300, 23), 300]


def _makers(records: Any) -> dict[RecordTable[Any], Callable[[int], Record]]:
    return {
        tables.public_trades: records.trade,
        tables.ticker_snapshots: records.ticker,
        tables.orderbook_updates: lambda i: records.book(records.base_ms + i, BookKind.DELTA, i),
        tables.private_executions: lambda i: records.execution(f"e-{i}"),
        tables.orders: lambda i: records.order(f"o-{i}", updated_time_ms=records.base_ms + i),
        tables.position_snapshots: records.position,
        tables.wallet_snapshots: records.wallet,
        tables.gaps: records.gap,
        tables.rejected_frames: records.rejected,
    }


def test_one_insert_text_per_table_whatever_the_batch_size(
    database: DatabaseFactory,
    records: Any,
    account_id: str,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The executemany path (on PostgreSQL, large batches take COPY: see the test below).
    monkeypatch.setattr(writes, "COPY_MIN_ROWS", 10**9)
    dialect = database.dialect_name
    executed: list[tuple[str, bool]] = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def capture(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool
    ) -> None:
        executed.append((statement, many))

    context = RowContext(run_id=run_id, account_id=account_id)
    makers = _makers(records)
    sizes_written: list[int] = []
    prepared_per_table: Counter[str] = Counter()
    assert set(makers) == set(RECORD_TABLES)
    with database.engine.connect() as connection:
        for table, make in makers.items():
            sizes = TRADE_SIZES if table is tables.public_trades else OTHER_SIZES
            key = 0
            for size in sizes:
                # Two thirds new records, one third repeats of them within the batch, and
                # (after the first batch) one record already stored.
                fresh = [make(key + i) for i in range(size - size // 3)]
                repeats = fresh[: size // 3]
                if repeats and key:
                    repeats[0] = make(key - 1)
                key += len(fresh)
                batch = fresh + repeats
                assert len(batch) == size
                with connection.begin():
                    new = write_records(connection, table, batch, context)
                sizes_written.append(size)
                assert new == (len(fresh) if table.ignores_duplicates else size), (table, size)
        if dialect == "postgresql":
            prepared = connection.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements WHERE left(statement, 6) = 'INSERT'"
            ).scalars()
            prepared_per_table = Counter(s.split()[2] for s in prepared)

    inserts = [(s, many) for s, many in executed if s.startswith("INSERT")]
    per_table = Counter(s.split()[2] for s, _ in inserts)
    # One distinct text per table: the one insert_sql built, and built once.
    assert set(s for s, _ in inserts) == {insert_sql(t, dialect) for t in RECORD_TABLES}
    assert per_table == {
        t.name: len(TRADE_SIZES if t is tables.public_trades else OTHER_SIZES)
        for t in RECORD_TABLES
    }
    assert all(insert_sql(t, dialect) is insert_sql(t, dialect) for t in RECORD_TABLES)
    # One execution per batch: an executemany from two records up, never a row at a time.
    assert [many for _, many in inserts] == [size > 1 for size in sizes_written]
    if dialect == "postgresql":
        # psycopg prepared each text once on the server (the connection kept it), not once
        # per batch size. (It keys a prepared statement by text and parameter types: see
        # test_postgresql_live for what varying integer magnitudes do.)
        assert prepared_per_table == {t.name: 1 for t in RECORD_TABLES}


@pytest.mark.postgresql
def test_large_postgresql_batches_take_copy_with_fixed_statements(
    postgres_url: str, records: Any
) -> None:
    database = DatabaseFactory(DatabaseSettings(url=postgres_url))
    database.create_tables()
    trades = tables.public_trades
    try:
        with database.engine.connect() as connection:
            key = 0
            for size in (writes.COPY_MIN_ROWS, 100, 777, 2_000, 5_000):
                fresh = [records.trade(key + i) for i in range(size)]
                stored = [records.trade(key - 1)] if key else []
                key += size
                with connection.begin():
                    new = write_records(
                        connection, trades, fresh + fresh[:10] + stored, RowContext()
                    )
                assert new == size
            prepared = (
                connection.exec_driver_sql(
                    "SELECT statement FROM pg_prepared_statements WHERE left(statement, 6) = 'INSERT'"
                )
                .scalars()
                .all()
            )
            total = connection.exec_driver_sql("SELECT count(*) FROM public_trades").scalar()
        assert total == key
        # the staging statements are fixed texts, built once: at most one prepared INSERT
        assert writes.copy_sql(trades) is writes.copy_sql(trades)
        assert len([p for p in prepared if "public_trades" in p]) <= 1
    finally:
        database.dispose()
