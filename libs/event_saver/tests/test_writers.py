"""Writers against a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from event_saver import DatabaseWorker, FlowGate, TradeWriter, WriterSettings
from grid_db import DatabaseFactory, TradeRepository
from testkit import make_trade, wait_until


def count(db: DatabaseFactory) -> int:
    return TradeRepository(db.engine).count()


async def test_size_triggered_flush(db: DatabaseFactory, worker: DatabaseWorker) -> None:
    writer = TradeWriter(
        db.engine, worker, None, WriterSettings(batch_size=10, flush_interval=3600)
    )
    await writer.start()
    writer.add_many([make_trade() for _ in range(9)])
    assert writer.stats().buffered == 9
    writer.add(make_trade())
    await wait_until(lambda: count(db) == 10)
    assert writer.stats().written == 10
    assert writer.stats().flushes == 1
    await writer.stop()


async def test_time_triggered_flush(db: DatabaseFactory, worker: DatabaseWorker) -> None:
    writer = TradeWriter(
        db.engine, worker, None, WriterSettings(batch_size=1000, flush_interval=0.2)
    )
    await writer.start()
    writer.add_many([make_trade() for _ in range(3)])
    await wait_until(lambda: count(db) == 3, timeout=5)
    stats = writer.stats()
    assert (stats.buffered, stats.written) == (0, 3)
    assert stats.last_flush_latency_ms is not None
    await writer.stop()


async def test_stop_flushes_everything_and_is_idempotent(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(
        db.engine, worker, None, WriterSettings(batch_size=1000, flush_interval=3600)
    )
    await writer.start()
    writer.add_many([make_trade() for _ in range(250)])
    await writer.stop()
    await writer.stop()
    assert count(db) == 250


async def test_stop_without_start_still_flushes(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(db.engine, worker, None)
    writer.add(make_trade())
    await writer.stop()
    assert count(db) == 1


async def test_duplicates_are_counted_and_ignored(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(
        db.engine, worker, None, WriterSettings(batch_size=1000, flush_interval=3600)
    )
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
    writer = TradeWriter(db.engine, worker, None)
    trade = make_trade(price="0.000036", size="115000.10")
    writer.add(trade)
    await writer.stop()
    (row,) = TradeRepository(db.engine).list("linear", "BTCUSDT")
    assert (row.price, row.size, row.trade_time_ms) == (
        "0.000036",
        "115000.10",
        trade.trade_time_ms,
    )
    assert row.received_ts_ms == trade.received_ns // 1_000_000
    assert row.source == "ws"


async def test_a_bad_row_does_not_take_its_batch_down(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(
        db.engine, worker, None, WriterSettings(batch_size=1000, flush_interval=3600)
    )
    writer.add_many([make_trade(), make_trade(price=None), make_trade()])
    assert await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.rows_rejected, stats.buffered) == (2, 1, 0)
    assert count(db) == 2
    await writer.stop()


async def test_a_locked_database_delays_but_loses_nothing(
    db: DatabaseFactory, worker: DatabaseWorker, db_path: Path
) -> None:
    writer = TradeWriter(
        db.engine,
        worker,
        None,
        WriterSettings(batch_size=10, flush_interval=0.1, retry_initial=0.05, retry_max=0.2),
    )
    await writer.start()
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        other = sqlite3.connect(db_path, timeout=5)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        other.rollback()
        other.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(5)
        writer.add_many([make_trade() for _ in range(50)])
        await wait_until(lambda: writer.stats().failed_flushes >= 2)
        assert writer.stats().buffered == 50
    finally:
        release.set()
        holder.join()
    await wait_until(lambda: count(db) == 50)
    await writer.stop()
    assert writer.stats().written == 50


async def test_full_buffer_closes_the_gate_until_the_database_catches_up(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    gate = FlowGate()
    writer = TradeWriter(
        db.engine,
        worker,
        None,
        WriterSettings(batch_size=10, max_buffer=20, flush_interval=3600),
        gate,
    )
    writer.add_many([make_trade() for _ in range(25)])
    assert not gate.is_open
    assert writer.stats().backpressure_active
    assert await writer.flush()
    assert gate.is_open
    assert count(db) == 25
    await writer.stop()
