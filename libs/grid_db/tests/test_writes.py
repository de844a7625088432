"""insert_ignore / insert_rows: exact counts, exact values, natural keys, lock waiting."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from grid_db import (
    DatabaseError,
    DatabaseFactory,
    DatabasePathError,
    DatabaseSettings,
    InvalidRowsError,
    Order,
    PrivateExecution,
    PublicTrade,
    TickerSnapshot,
    TradeRepository,
    insert_ignore,
    insert_rows,
)


def _count(factory: DatabaseFactory, model: Any) -> int:
    with factory.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def test_insert_ignore_counts_new_rows(factory: DatabaseFactory, rows: Any) -> None:
    with factory.engine.begin() as connection:
        assert insert_ignore(connection, PublicTrade, [rows.trade(i) for i in range(5)]) == 5
    assert _count(factory, PublicTrade) == 5


def test_batch_that_duplicates_itself(factory: DatabaseFactory, rows: Any) -> None:
    batch = [rows.trade(0), rows.trade(1), rows.trade(0), rows.trade(2), rows.trade(1)]
    with factory.engine.begin() as connection:
        inserted = insert_ignore(connection, PublicTrade, batch)
    assert inserted == 3
    assert len(batch) - inserted == 2
    assert _count(factory, PublicTrade) == 3


def test_batch_that_duplicates_stored_rows(factory: DatabaseFactory, rows: Any) -> None:
    with factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, [rows.trade(i) for i in range(10)])
    with factory.engine.begin() as connection:
        # 5..9 are stored already, 10..14 are new; the REST copy of a WS trade is a duplicate.
        inserted = insert_ignore(
            connection, PublicTrade, [rows.trade(i, source="rest") for i in range(5, 15)]
        )
    assert inserted == 5
    assert _count(factory, PublicTrade) == 15
    stored = TradeRepository(factory.engine).list("linear", "BTCUSDT")
    assert [trade.source for trade in stored] == ["ws"] * 10 + ["rest"] * 5


def test_all_duplicates_count_zero(factory: DatabaseFactory, rows: Any) -> None:
    batch = [rows.trade(i) for i in range(3)]
    with factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, batch)
    with factory.engine.begin() as connection:
        assert insert_ignore(connection, PublicTrade, batch) == 0


def test_count_is_exact_across_insertmanyvalues_batches(
    factory: DatabaseFactory, rows: Any
) -> None:
    """SQLAlchemy splits an executemany into statements of at most 1000 rows.

    Its Result.rowcount then reports only the last statement (500 for this batch), so
    the count must come from somewhere else; insert_ignore counts RETURNING rows.
    """
    with factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, [rows.trade(i) for i in range(0, 3000, 3)])
    # 3500 rows: 0..2999 of which every third (1000) is stored, then 500 self-duplicates.
    batch = [rows.trade(i) for i in range(3000)] + [rows.trade(i) for i in range(1, 1000, 2)]
    with factory.engine.begin() as connection:
        inserted = insert_ignore(connection, PublicTrade, batch)
    assert inserted == 2000
    assert _count(factory, PublicTrade) == 3000


def test_sqlite3_executemany_rowcount_sums_over_executions(tmp_path: Path) -> None:
    """The fallback insert_ignore uses on SQLite < 3.35 (no RETURNING) relies on this."""
    connection = sqlite3.connect(tmp_path / "plain.db")
    connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    cursor = connection.executemany(
        "INSERT INTO t (k) VALUES (?) ON CONFLICT DO NOTHING", [("a",), ("b",), ("a",), ("c",)]
    )
    assert cursor.rowcount == 3
    connection.close()


def test_empty_batch_is_a_no_op(factory: DatabaseFactory) -> None:
    with factory.engine.begin() as connection:
        assert insert_ignore(connection, PublicTrade, []) == 0
        assert insert_rows(connection, TickerSnapshot, []) == 0


def test_insert_ignore_accepts_a_session_and_a_table(factory: DatabaseFactory, rows: Any) -> None:
    with factory.session() as session:
        assert insert_ignore(session, PublicTrade.__table__, [rows.trade(1), rows.trade(1)]) == 1
    assert _count(factory, PublicTrade) == 1


def test_nothing_is_written_when_the_transaction_rolls_back(
    factory: DatabaseFactory, rows: Any
) -> None:
    def insert_then_fail() -> None:
        with factory.engine.begin() as connection:
            insert_ignore(connection, PublicTrade, [rows.trade(1)])
            raise RuntimeError("writer failed after the insert")

    with pytest.raises(RuntimeError, match="writer failed"):
        insert_then_fail()
    assert _count(factory, PublicTrade) == 0


EXACT_DECIMALS = [
    "28560.50",
    "0.000036",
    "1e-8",
    "0.10000000",
    "-0.0",
    "00012.3400",
    "123456789012345678901234567890.123456789012345678",
    "",
]


def test_decimal_strings_round_trip_byte_for_byte(factory: DatabaseFactory, rows: Any) -> None:
    batch = [
        rows.trade(index, price=value, size=value) for index, value in enumerate(EXACT_DECIMALS)
    ]
    with factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, batch)
    with factory.engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT price, size, typeof(price), typeof(trade_time_ms) "
                "FROM public_trades ORDER BY trade_time_ms"
            )
        ).all()
    assert [row.price for row in stored] == EXACT_DECIMALS
    assert [row.size for row in stored] == EXACT_DECIMALS
    # TEXT storage (not REAL): SQLite never converted a value to a number.
    assert {row[2] for row in stored} == {"text"}
    assert {row[3] for row in stored} == {"integer"}
    trades = TradeRepository(factory.engine).list("linear", "BTCUSDT")
    assert [trade.price for trade in trades] == EXACT_DECIMALS


def test_ticker_values_and_json_round_trip(factory: DatabaseFactory, rows: Any) -> None:
    row = rows.ticker(rows.base_ms, last_price="28560.50")
    row["funding_rate"] = "-0.00005000"
    row["data"] = '{"lastPrice":"28560.50", "fundingRate":"-0.00005000"}'
    with factory.engine.begin() as connection:
        insert_rows(connection, TickerSnapshot, [row])
    with factory.engine.connect() as connection:
        stored = connection.execute(text("SELECT funding_rate, data FROM ticker_snapshots")).one()
    assert stored.funding_rate == "-0.00005000"
    assert stored.data == row["data"]


def test_large_millisecond_timestamps_round_trip(factory: DatabaseFactory, rows: Any) -> None:
    row = rows.trade(0)
    row["trade_time_ms"] = 4_102_444_800_000  # 2100-01-01, far beyond 32 bits
    with factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, [row])
    (trade,) = TradeRepository(factory.engine).list("linear", "BTCUSDT")
    assert trade.trade_time_ms == 4_102_444_800_000
    assert trade.is_block_trade is False
    assert trade.is_rpi is None


def test_trade_key_is_category_symbol_trade_id(factory: DatabaseFactory, rows: Any) -> None:
    same_id_other_symbol = rows.trade(1, symbol="ETHUSDT")
    same_id_other_category = {**rows.trade(1), "category": "spot"}
    with factory.engine.begin() as connection:
        inserted = insert_ignore(
            connection,
            PublicTrade,
            [rows.trade(1), same_id_other_symbol, same_id_other_category, rows.trade(1)],
        )
    assert inserted == 3


def test_execution_key_is_exec_id(factory: DatabaseFactory, rows: Any, account_id: str) -> None:
    batch = [rows.execution("e-1", account_id), rows.execution("e-2", account_id)]
    with factory.engine.begin() as connection:
        assert insert_ignore(connection, PrivateExecution, batch) == 2
    with factory.engine.begin() as connection:
        later_copy = rows.execution("e-1", account_id, exec_time_ms=rows.base_ms + 5)
        assert insert_ignore(connection, PrivateExecution, [later_copy]) == 0


def test_order_key_is_order_id_updated_time_status(
    factory: DatabaseFactory, rows: Any, account_id: str
) -> None:
    t = rows.base_ms
    batch = [
        rows.order("o-1", account_id, updated_time_ms=t, order_status="New"),
        rows.order("o-1", account_id, updated_time_ms=t, order_status="PartiallyFilled"),
        rows.order("o-1", account_id, updated_time_ms=t + 1, order_status="PartiallyFilled"),
        rows.order("o-1", account_id, updated_time_ms=t, order_status="New"),
        rows.order("o-2", account_id, updated_time_ms=t, order_status="New"),
    ]
    with factory.engine.begin() as connection:
        assert insert_ignore(connection, Order, batch) == 4


def test_insert_rows_keeps_identical_rows(factory: DatabaseFactory, rows: Any) -> None:
    row = rows.ticker(rows.base_ms, last_price="1.5")
    with factory.engine.begin() as connection:
        assert insert_rows(connection, TickerSnapshot, [row, row]) == 2
    assert _count(factory, TickerSnapshot) == 2


def test_rows_naming_unknown_columns_are_refused(factory: DatabaseFactory, rows: Any) -> None:
    with pytest.raises(InvalidRowsError, match="prcie"), factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, [{**rows.trade(1), "prcie": "1"}])


def test_rows_with_differing_keys_are_refused(factory: DatabaseFactory, rows: Any) -> None:
    # SQLAlchemy would compile from row 0 and silently drop row 1's extra value.
    without_tick = {k: v for k, v in rows.trade(0).items() if k != "tick_direction"}
    with pytest.raises(InvalidRowsError, match="tick_direction"), factory.engine.begin() as conn:
        insert_rows(conn, PublicTrade, [without_tick, rows.trade(1)])


def test_check_constraint_rejects_unknown_source(factory: DatabaseFactory, rows: Any) -> None:
    with pytest.raises(IntegrityError), factory.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, [rows.trade(1, source="carrier-pigeon")])


def test_foreign_keys_are_enforced(factory: DatabaseFactory, rows: Any) -> None:
    with pytest.raises(IntegrityError), factory.engine.begin() as connection:
        insert_ignore(connection, PrivateExecution, [rows.execution("e-1", "no-such-account")])


def test_ten_thousand_trades_insert_well_under_a_second(
    factory: DatabaseFactory, rows: Any, run_id: str
) -> None:
    batch = [rows.trade(i, run_id=run_id) for i in range(10_000)]
    started = time.perf_counter()
    with factory.engine.begin() as connection:
        inserted = insert_ignore(connection, PublicTrade, batch)
    elapsed = time.perf_counter() - started
    assert inserted == 10_000
    assert elapsed < 1.0, f"10k trades took {elapsed:.3f}s"


class _WriteLockHolder:
    """Holds SQLite's write lock from another thread and connection until released."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.acquired = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._hold, name="write-lock-holder")

    def start(self) -> None:
        self._thread.start()
        assert self.acquired.wait(timeout=10), "holder never got the write lock"

    def join(self) -> None:
        self.release.set()
        self._thread.join(timeout=10)
        assert self.error is None

    def _hold(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(
                    "INSERT INTO runs (id, status, started_at_ms, config_json, host, pid, "
                    "software_version) VALUES ('other', 'running', 1, '{}', 'h', 1, 'v')"
                )
                self.acquired.set()
                self.release.wait(timeout=30)
                connection.execute("COMMIT")
            finally:
                connection.close()
        except BaseException as error:
            self.error = error
            self.acquired.set()


def test_a_held_write_lock_delays_but_does_not_fail_an_insert(
    factory: DatabaseFactory, db_path: Path, rows: Any
) -> None:
    holder = _WriteLockHolder(db_path)
    holder.start()
    # Release the lock after ~1 s from a timer; the insert below must wait for it.
    releaser = threading.Timer(1.0, holder.release.set)
    started = time.perf_counter()
    releaser.start()
    try:
        with factory.engine.begin() as connection:
            inserted = insert_ignore(connection, PublicTrade, [rows.trade(i) for i in range(100)])
    finally:
        releaser.cancel()
        holder.join()
    waited = time.perf_counter() - started
    assert inserted == 100
    assert waited >= 0.9, f"insert did not wait for the lock ({waited:.3f}s)"
    assert _count(factory, PublicTrade) == 100


def test_without_enough_busy_timeout_the_insert_fails(db_path: Path, rows: Any) -> None:
    """Control for the test above: the wait is the busy timeout's doing."""
    settings = DatabaseSettings(url=f"sqlite:///{db_path}", busy_timeout_ms=50)
    with DatabaseFactory(settings) as factory:
        factory.create_tables()
        holder = _WriteLockHolder(db_path)
        holder.start()
        try:
            with (
                pytest.raises(OperationalError, match="locked"),
                factory.engine.begin() as connection,
            ):
                insert_ignore(connection, PublicTrade, [rows.trade(1)])
        finally:
            holder.join()


def test_a_lock_held_through_construction_is_not_reported_as_a_path_error(
    factory: DatabaseFactory, db_path: Path
) -> None:
    holder = _WriteLockHolder(db_path)
    holder.start()
    try:
        with pytest.raises(DatabaseError, match="locked") as caught:
            DatabaseFactory(DatabaseSettings(url=f"sqlite:///{db_path}", busy_timeout_ms=50))
    finally:
        holder.join()
    assert not isinstance(caught.value, DatabasePathError)
    assert str(db_path) in str(caught.value)
