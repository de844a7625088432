"""TableWriter against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bybit_records import BookKind
from event_saver import DatabaseWorker, FlowGate, TableWriter, WriteDeferred, WriterSettings
from event_saver.pipeline import book_update_weight
from grid_db import DatabaseFactory, DatabaseSettings, RowContext, tables
from testkit import make_book_update, make_trade, wait_until

HOLD = WriterSettings(batch_size=1000, flush_interval=3600)


def count(db: DatabaseFactory) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(tables.public_trades.table)).scalar_one()
        )


def trades_writer(
    db: DatabaseFactory,
    worker: DatabaseWorker,
    settings: WriterSettings | None = None,
    gate: FlowGate | None = None,
) -> TableWriter:  # type: ignore[type-arg]
    return TableWriter(tables.public_trades, db.engine, worker, RowContext(), settings, gate)


async def test_size_triggered_flush(db: DatabaseFactory, worker: DatabaseWorker) -> None:
    writer = trades_writer(db, worker, WriterSettings(batch_size=10, flush_interval=3600))
    await writer.start()
    writer.add_many([make_trade() for _ in range(9)])
    assert writer.stats().buffered == 9
    writer.add(make_trade())
    await wait_until(lambda: writer.stats().written == 10)
    assert (count(db), writer.stats().flushes) == (10, 1)
    await writer.stop()


async def test_time_triggered_flush(db: DatabaseFactory, worker: DatabaseWorker) -> None:
    writer = trades_writer(db, worker, WriterSettings(batch_size=1000, flush_interval=0.2))
    await writer.start()
    writer.add_many([make_trade() for _ in range(3)])
    await wait_until(lambda: writer.stats().written == 3, timeout=5)
    assert count(db) == 3
    stats = writer.stats()
    assert (stats.buffered, stats.written) == (0, 3)
    assert stats.last_flush_latency_ms is not None
    await writer.stop()


async def test_stop_flushes_everything_and_is_idempotent(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(db, worker, HOLD)
    await writer.start()
    writer.add_many([make_trade() for _ in range(250)])
    await writer.stop()
    await writer.stop()
    assert count(db) == 250


async def test_stop_without_start_still_flushes(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(db, worker)
    writer.add(make_trade())
    await writer.stop()
    assert count(db) == 1


async def test_duplicates_are_counted_and_ignored(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(db, worker, HOLD)
    first = make_trade(trade_id="same")
    writer.add_many([first, make_trade(trade_id="other")])
    assert await writer.flush()
    writer.add_many([first, make_trade(trade_id="same"), make_trade(trade_id="new")])
    assert await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.duplicates) == (3, 2)
    assert count(db) == 3
    await writer.stop()


async def test_values_are_stored_exactly(db: DatabaseFactory, worker: DatabaseWorker) -> None:
    writer = trades_writer(db, worker)
    trade = make_trade(price="0.000036", size="115000.10")
    writer.add(trade)
    await writer.stop()
    with db.engine.connect() as conn:
        (row,) = conn.execute(tables.public_trades.table.select()).all()
    assert tables.public_trades.record_of(row) == trade


async def test_refills_go_through_the_same_path_and_count_only_new_rows(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(db, worker, HOLD)
    live = [make_trade() for _ in range(5)]
    writer.add_many(live)
    # the buffered live rows are written first: a refill overlapping them counts only
    # the rows that were really missing
    refill = [*live[3:], make_trade(), make_trade()]
    assert await writer.write_now(refill) == 2
    stats = writer.stats()
    assert (stats.buffered, stats.written, stats.duplicates) == (0, 7, 2)
    assert count(db) == 7
    await writer.stop()


async def test_a_bad_row_does_not_take_its_batch_down(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(db, worker, HOLD)
    writer.add_many([make_trade(), make_trade(price=None), make_trade()])
    assert await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.rows_rejected, stats.buffered) == (2, 1, 0)
    assert count(db) == 2
    await writer.stop()


async def test_a_rejected_row_is_logged_with_its_column_names(
    db: DatabaseFactory, worker: DatabaseWorker, caplog: pytest.LogCaptureFixture
) -> None:
    writer = trades_writer(db, worker, HOLD)
    writer.add(make_trade(trade_id="bad-one", symbol=None))
    with caplog.at_level(logging.ERROR):
        assert await writer.flush()
    (line,) = [r.getMessage() for r in caplog.records if "row not stored" in r.getMessage()]
    assert "'trade_id': 'bad-one'" in line
    await writer.stop()


async def test_full_buffer_closes_the_gate_until_the_database_catches_up(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    gate = FlowGate()
    writer = trades_writer(
        db, worker, WriterSettings(batch_size=10, max_buffer=20, flush_interval=3600), gate
    )
    writer.add_many([make_trade() for _ in range(25)])
    assert not gate.is_open
    assert writer.stats().backpressure_active
    assert await writer.flush()
    assert gate.is_open
    assert count(db) == 25
    await writer.stop()


async def test_a_weighed_buffer_closes_the_gate_at_its_weight(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    """Deep book updates close the gate long before ``max_buffer`` of them are held."""
    gate = FlowGate()
    settings = WriterSettings(batch_size=10, max_buffer=100, flush_interval=3600)
    writer = TableWriter(
        tables.orderbook_updates,
        db.engine,
        worker,
        RowContext(),
        settings,
        gate,
        weigh=book_update_weight,
    )
    deep = [(str(60_000 - i), "1") for i in range(30)]  # 60 levels: weighs 21
    updates = [
        make_book_update(BookKind.DELTA, n, 1_000 + n, bids=deep, asks=deep) for n in range(5)
    ]
    writer.add_many(updates[:4])
    assert gate.is_open, "84 of 100"
    writer.add(updates[4])
    assert not gate.is_open
    assert writer.stats().buffered == 5
    assert await writer.flush()
    assert gate.is_open
    assert writer.stats().written == 5
    await writer.stop()


async def test_a_long_buffer_is_written_in_transactions_of_at_most_max_batch_rows(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = trades_writer(
        db, worker, WriterSettings(batch_size=10, flush_interval=3600, max_batch_rows=25)
    )
    committed: list[int] = []
    writer.on_commit = lambda batch: committed.append(len(batch))
    writer.add_many([make_trade() for _ in range(55)])
    assert await writer.flush()
    assert committed == [25]
    assert writer.stats().buffered == 30
    await writer.start()  # the loop keeps flushing while a batch is waiting
    await wait_until(lambda: writer.stats().buffered < 10)
    assert committed == [25, 25]
    await writer.stop()
    assert committed == [25, 25, 5]
    assert count(db) == 55


def test_settings_refuse_impossible_values() -> None:
    with pytest.raises(ValueError, match="max_batch_rows"):
        WriterSettings(max_batch_rows=0)
    with pytest.raises(ValueError, match="max_buffer"):
        WriterSettings(batch_size=10, max_buffer=5)


# ---- SQLite's write lock ------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> tuple[DatabaseFactory, Path]:
    path = tmp_path / "locked.db"
    factory = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}", busy_timeout_ms=200))
    factory.create_tables()
    return factory, path


def hold_write_lock(path: Path, locked: threading.Event, release: threading.Event) -> None:
    other = sqlite3.connect(path, timeout=5)
    other.execute("BEGIN IMMEDIATE")
    locked.set()
    release.wait(10)
    other.rollback()
    other.close()


async def test_a_locked_database_delays_but_loses_nothing(
    sqlite_db: tuple[DatabaseFactory, Path], worker: DatabaseWorker
) -> None:
    db, path = sqlite_db
    settings = WriterSettings(batch_size=10, flush_interval=0.1, retry_initial=0.05, retry_max=0.2)
    writer = trades_writer(db, worker, settings)
    await writer.start()
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, locked, release))
    holder.start()
    try:
        locked.wait(5)
        writer.add_many([make_trade() for _ in range(50)])
        await wait_until(lambda: writer.stats().failed_flushes >= 2)
        assert writer.stats().buffered == 50
    finally:
        release.set()
        holder.join()
    await wait_until(lambda: writer.stats().written == 50)
    await writer.stop()
    assert count(db) == 50
    db.dispose()


async def test_a_refill_that_cannot_be_written_in_time_waits_in_the_buffer(
    sqlite_db: tuple[DatabaseFactory, Path], worker: DatabaseWorker
) -> None:
    db, path = sqlite_db
    settings = WriterSettings(
        batch_size=1000, flush_interval=3600, retry_initial=0.05, retry_max=0.1, stop_deadline=0.6
    )
    writer = trades_writer(db, worker, settings)
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, locked, release))
    holder.start()
    try:
        locked.wait(5)
        with pytest.raises(WriteDeferred):
            await writer.write_now([make_trade() for _ in range(4)])
        assert writer.stats().buffered == 4
    finally:
        release.set()
        holder.join()
    await writer.stop()
    assert count(db) == 4
    db.dispose()
