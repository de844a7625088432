"""write_records: exact counts, natural keys, exact values, constraints, lock waiting.

Every test taking ``database`` runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from bybit_records import Category, DataSource, Execution, FillStatus, FrameType
from grid_db import (
    DatabaseError,
    DatabaseFactory,
    DatabasePathError,
    DatabaseSettings,
    RowContext,
    RunRepository,
    tables,
    write_records,
    write_rows,
)
from grid_db.models import BybitAccount, Run, User

trades = tables.public_trades


# ---- counting: new rows only, exactly ------------------------------------------------


def test_counts_new_rows(database: DatabaseFactory, records: Any, db: Any) -> None:
    assert db.write(database.engine, [records.trade(i) for i in range(5)]) == 5
    assert db.count(database.engine, trades) == 5


def test_batch_that_duplicates_itself(database: DatabaseFactory, records: Any, db: Any) -> None:
    batch = [records.trade(i) for i in (0, 1, 0, 2, 1)]
    inserted = db.write(database.engine, batch)
    assert inserted == 3
    assert len(batch) - inserted == 2
    assert db.count(database.engine, trades) == 3


def test_batch_that_duplicates_stored_rows(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    db.write(database.engine, [records.trade(i) for i in range(10)])
    # 5..9 are stored already, 10..14 are new; the REST copy of a WS trade is a duplicate.
    rest = [records.trade(i, source=DataSource.REST) for i in range(5, 15)]
    assert db.write(database.engine, rest) == 5
    stored = db.stored(database.engine, trades)
    assert len(stored) == 15
    assert [t.source for t in stored] == [DataSource.WS] * 10 + [DataSource.REST] * 5


def test_all_duplicates_count_zero(database: DatabaseFactory, records: Any, db: Any) -> None:
    batch = [records.trade(i) for i in range(3)]
    db.write(database.engine, batch)
    assert db.write(database.engine, batch) == 0
    assert db.write(database.engine, batch + batch) == 0


def test_count_is_exact_above_a_thousand_rows(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    """SQLAlchemy would split a compiled executemany into statements of 1,000 rows and report
    only the last one's rowcount; the driver's own executemany sums over every row."""
    assert db.write(database.engine, [records.trade(i) for i in range(0, 3000, 3)]) == 1000
    # 3,500 rows: 0..2999 of which every third (1,000) is stored, then 500 self-duplicates.
    batch = [records.trade(i) for i in range(3000)] + [records.trade(i) for i in range(1, 1000, 2)]
    assert db.write(database.engine, batch) == 2000
    assert db.count(database.engine, trades) == 3000


def test_empty_batch_is_a_no_op(database: DatabaseFactory) -> None:
    with database.engine.begin() as connection:
        assert write_records(connection, trades, [], RowContext()) == 0
        assert write_rows(connection, tables.ticker_snapshots, []) == 0


def test_write_rows_takes_rows_in_column_order(
    database: DatabaseFactory, records: Any, db: Any, run_id: str
) -> None:
    batch = [records.trade(1), records.trade(2), records.trade(1)]
    ref = RunRepository(database.engine).ref_of(run_id)
    rows = trades.rows(batch, RowContext(run_id=run_id, run_ref=ref))
    assert all(len(row) == len(trades.column_names) for row in rows)
    assert trades.column_names[-1] == "run_ref"
    with database.engine.begin() as connection:
        assert write_rows(connection, trades, rows) == 2
    assert db.stored(database.engine, trades) == batch[:2]
    assert {row.run_ref for row in db.rows(database.engine, trades)} == {ref}


def test_nothing_is_written_when_the_transaction_rolls_back(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    def write_then_fail() -> None:
        with database.engine.begin() as connection:
            assert db.write(connection, [records.trade(1)]) == 1
            raise RuntimeError("writer failed after the insert")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_then_fail()
    assert db.count(database.engine, trades) == 0


def test_a_failing_row_fails_the_whole_batch(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    bad = records.trade(3, source="carrier-pigeon")
    with pytest.raises(IntegrityError):
        db.write(database.engine, [records.trade(1), records.trade(2), bad])
    assert db.count(database.engine, trades) == 0


# ---- natural keys ----------------------------------------------------------------------


def test_trade_key_is_category_symbol_time_trade_id(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    same_id_other_symbol = records.trade(1, symbol="ETHUSDT")
    same_id_other_category = records.trade(1, category=Category.SPOT)
    # Same key, every other field different: still the same trade.
    same_key = msgspec.structs.replace(
        records.trade(1, price="1.0", size="2.0"), seq=7, source=DataSource.REST
    )
    batch = [records.trade(1), same_id_other_symbol, same_id_other_category, same_key]
    assert db.write(database.engine, batch) == 3
    assert db.stored(database.engine, trades) == batch[:3]


def test_execution_key_is_exec_id(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    batch = [records.execution("e-1"), records.execution("e-2")]
    assert db.write(database.engine, batch, account_id=account_id) == 2
    later_copy = records.execution("e-1", exec_time_ms=records.base_ms + 5)
    assert db.write(database.engine, [later_copy], account_id=account_id) == 0
    assert db.stored(database.engine, tables.private_executions) == batch


def test_order_key_is_order_id_updated_time_status(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    t = records.base_ms
    batch = [
        records.order("o-1", updated_time_ms=t, order_status="New"),
        records.order("o-1", updated_time_ms=t, order_status="PartiallyFilled"),
        records.order("o-1", updated_time_ms=t + 1, order_status="PartiallyFilled"),
        records.order("o-1", updated_time_ms=t, order_status="New"),
        records.order("o-2", updated_time_ms=t, order_status="New"),
    ]
    assert db.write(database.engine, batch, account_id=account_id) == 4
    assert db.write(database.engine, batch, account_id=account_id) == 0


def test_tables_without_a_natural_key_keep_identical_records(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    for record in (
        records.ticker(records.base_ms),
        records.position(),
        records.wallet(),
        records.gap(),
        records.rejected(),
    ):
        table = tables.table_of(type(record))
        assert not table.ignores_duplicates
        assert db.write(database.engine, [record, record], account_id=account_id) == 2
        assert db.write(database.engine, [record], account_id=account_id) == 1
        assert db.stored(database.engine, table) == [record] * 3


# ---- exact values ----------------------------------------------------------------------

#: Prices and sizes as Bybit sends them: kept as text, never turned into a number.
EXACT_DECIMALS = [
    "28560.50",
    "0.000036",
    "0.10000000",
    "-0.0",
    "00012.3400",
    "123456789012345678901234567890.123456789012345678",
    "0",
]
#: Free-form exchange strings (a fee, a rate) are not constrained to decimals at all.
EXACT_STRINGS = ["1e-8", "", " 0.1 ", "NaN", "0.01713630"]


def test_decimal_strings_round_trip_exactly(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    batch = [
        records.trade(index, price=value, size=value) for index, value in enumerate(EXACT_DECIMALS)
    ]
    db.write(database.engine, batch)
    stored = db.stored(database.engine, trades)
    assert [t.price for t in stored] == EXACT_DECIMALS
    assert [t.size for t in stored] == EXACT_DECIMALS
    fills = [records.execution(f"e-{i}", exec_fee=v) for i, v in enumerate(EXACT_STRINGS)]
    db.write(database.engine, fills, account_id=account_id)
    assert [
        e.exec_fee for e in db.stored(database.engine, tables.private_executions)
    ] == EXACT_STRINGS


def test_decimals_are_text_and_times_integers_in_sqlite(
    factory: DatabaseFactory, records: Any, db: Any
) -> None:
    db.write(factory.engine, [records.trade(i, price=v) for i, v in enumerate(EXACT_DECIMALS)])
    with factory.engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT price, typeof(price), typeof(size), typeof(trade_time_ms) "
                "FROM public_trades ORDER BY trade_time_ms"
            )
        ).all()
    assert [row.price for row in stored] == EXACT_DECIMALS
    # TEXT storage (not REAL): SQLite never converted a value to a number.
    assert {(row[1], row[2], row[3]) for row in stored} == {("text", "text", "integer")}


def test_json_fields_round_trip(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    ticker = msgspec.structs.replace(
        records.ticker(records.base_ms),
        data={"lastPrice": "28560.50", "fundingRate": "-0.00005000", "list": [1, "x", None]},
    )
    wallet = records.wallet()
    execution = msgspec.structs.replace(
        records.execution("e-1"), raw={"execId": "e-1", "unicode": "é✓", "float": 0.1, "n": None}
    )
    db.write(database.engine, [ticker])
    db.write(database.engine, [wallet], account_id=account_id)
    db.write(database.engine, [execution], account_id=account_id)
    assert db.stored(database.engine, tables.ticker_snapshots) == [ticker]
    assert db.stored(database.engine, tables.wallet_snapshots) == [wallet]
    assert db.stored(database.engine, tables.private_executions) == [execution]
    # The column holds the JSON document itself (json_extract / ::jsonb read it).
    (row,) = db.rows(database.engine, tables.ticker_snapshots)
    assert msgspec.json.decode(row.data) == ticker.data
    assert row.funding_rate == "-0.00005"
    (row,) = db.rows(database.engine, tables.wallet_snapshots)
    assert msgspec.json.decode(row.coins) == wallet.coins


def test_large_millisecond_timestamps_round_trip(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    trade = records.trade(0, trade_time_ms=4_102_444_800_000)  # 2100-01-01, beyond 32 bits
    huge_seq = msgspec.structs.replace(records.trade(1), seq=2**63 - 1)
    db.write(database.engine, [trade, huge_seq])
    stored = db.stored(database.engine, trades)
    assert stored == [huge_seq, trade]  # in the order of their times
    assert stored[1].trade_time_ms == 4_102_444_800_000
    assert (stored[1].is_block_trade, stored[1].is_rpi) == (False, None)


def test_enum_members_are_stored_as_their_values(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    db.write(database.engine, [records.trade(1, source=DataSource.REST)])
    db.write(database.engine, [records.ticker(1, frame_type=FrameType.SNAPSHOT)])
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT category, source FROM public_trades")).one() == (
            "linear",
            "rest",
        )
        assert connection.execute(text("SELECT frame_type FROM ticker_snapshots")).scalar() == (
            "snapshot"
        )


def test_context_columns_record_the_run_and_the_account(
    database: DatabaseFactory, records: Any, db: Any, account_id: str, run_id: str
) -> None:
    db.write(database.engine, [records.trade(1)], run_id=run_id)
    db.write(database.engine, [records.trade(2)])
    db.write(database.engine, [records.execution("e-1")], account_id=account_id, run_id=run_id)
    # Trades hold the run's number (run_refs), the other tables its id.
    ref = RunRepository(database.engine).ref_of(run_id)
    assert isinstance(ref, int)
    assert [r.run_ref for r in db.rows(database.engine, trades)] == [ref, None]
    (execution,) = db.rows(database.engine, tables.private_executions)
    assert (execution.account_id, execution.run_id) == (account_id, run_id)
    assert db.count(database.engine, trades, trades.table.c.run_ref == ref) == 1


# ---- constraints -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda r: r.trade(1, source="carrier-pigeon"), id="trade-source"),
        pytest.param(lambda r: r.ticker(1, frame_type="partial"), id="ticker-frame_type"),
        pytest.param(lambda r: r.gap(fill_status="mostly"), id="gap-fill_status"),
        pytest.param(lambda r: r.wallet(source="smoke-signal"), id="wallet-source"),
    ],
)
def test_check_constraints_reject_unknown_values(
    database: DatabaseFactory, records: Any, db: Any, account_id: str, bad: Any
) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)check"):
        db.write(database.engine, [bad(records)], account_id=account_id)


def test_private_rows_need_an_existing_account(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    with pytest.raises(IntegrityError):
        db.write(database.engine, [records.execution("e-1")], account_id="no-such-account")
    with pytest.raises(IntegrityError):
        db.write(database.engine, [records.execution("e-1")], account_id=None)
    with pytest.raises(IntegrityError):
        db.write(database.engine, [records.gap()], run_id="no-such-run")
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        write_records(connection, trades, [records.trade(1)], RowContext(run_ref=999))
    assert db.count(database.engine, tables.private_executions) == 0
    assert db.count(database.engine, trades) == 0


def test_deleting_a_run_keeps_its_data(
    database: DatabaseFactory, records: Any, db: Any, account_id: str, run_id: str
) -> None:
    db.write(database.engine, [records.trade(1)], run_id=run_id)
    db.write(database.engine, [records.gap()], run_id=run_id)
    db.write(database.engine, [records.execution("e-1")], account_id=account_id, run_id=run_id)
    with database.engine.begin() as connection:
        connection.execute(delete(Run).where(Run.id == run_id))
    for table in (trades, tables.gaps, tables.private_executions):
        (row,) = db.rows(database.engine, table)
        # ON DELETE SET NULL (trades: through run_refs, whose row goes with the run)
        assert (row.run_ref if table is trades else row.run_id) is None


def test_an_account_with_private_data_cannot_be_deleted(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    db.write(database.engine, [records.wallet()], account_id=account_id)
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.execute(delete(BybitAccount).where(BybitAccount.id == account_id))
    # Deleting the user would cascade to the account: refused as well.
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.execute(delete(User))
    assert db.count(database.engine, tables.wallet_snapshots) == 1


def test_a_user_without_private_data_is_deleted_with_its_accounts(
    database: DatabaseFactory, account_id: str
) -> None:
    with database.engine.begin() as connection:
        connection.execute(delete(User))
        assert connection.execute(select(BybitAccount)).all() == []


# ---- SQLite: the driver's count, speed, and the write lock ------------------------------


def test_sqlite3_executemany_rowcount_sums_over_the_rows(tmp_path: Path) -> None:
    """What write_records' count relies on, on SQLite."""
    connection = sqlite3.connect(tmp_path / "plain.db")
    connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    cursor = connection.executemany(
        "INSERT INTO t (k) VALUES (?) ON CONFLICT DO NOTHING", [("a",), ("b",), ("a",), ("c",)]
    )
    assert cursor.rowcount == 3
    connection.close()


def test_ten_thousand_trades_insert_well_under_a_second(
    factory: DatabaseFactory, records: Any
) -> None:
    batch = [records.trade(i) for i in range(10_000)]
    started = time.perf_counter()
    with factory.engine.begin() as connection:
        inserted = write_records(connection, trades, batch, RowContext())
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


def test_a_held_write_lock_delays_but_does_not_fail_a_write(
    factory: DatabaseFactory, db_path: Path, records: Any, db: Any
) -> None:
    holder = _WriteLockHolder(db_path)
    holder.start()
    # Release the lock after ~1 s from a timer; the write below must wait for it.
    releaser = threading.Timer(1.0, holder.release.set)
    started = time.perf_counter()
    releaser.start()
    try:
        inserted = db.write(factory.engine, [records.trade(i) for i in range(100)])
    finally:
        releaser.cancel()
        holder.join()
    waited = time.perf_counter() - started
    assert inserted == 100
    assert waited >= 0.9, f"the write did not wait for the lock ({waited:.3f}s)"
    assert db.count(factory.engine, trades) == 100


def test_without_enough_busy_timeout_the_write_fails(db_path: Path, records: Any, db: Any) -> None:
    """Control for the test above: the wait is the busy timeout's doing."""
    settings = DatabaseSettings(url=f"sqlite:///{db_path}", busy_timeout_ms=50)
    with DatabaseFactory(settings) as factory:
        factory.create_tables()
        holder = _WriteLockHolder(db_path)
        holder.start()
        try:
            with pytest.raises(OperationalError, match="locked"):
                db.write(factory.engine, [records.trade(1)])
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


def test_records_are_what_the_rows_hold(records: Any) -> None:
    """``rows`` is the record in field order, JSON fields encoded, then the context."""
    execution: Execution = records.execution("e-1")
    (row,) = tables.private_executions.rows([execution], RowContext("run", "account"))
    as_tuple = msgspec.structs.astuple(execution)
    raw_at = tables.private_executions.column_names.index("raw")
    assert row[:raw_at] == as_tuple[:raw_at]
    assert msgspec.json.decode(row[raw_at]) == execution.raw
    assert row[-2:] == ("account", "run")
    assert (
        tables.gaps.rows([records.gap(fill_status=FillStatus.FILLED)], RowContext())[0][-1] is None
    )
