"""Transaction sizes and the tuple-row hot path of the buffered writers."""

from __future__ import annotations

import logging
import time

import pytest

from bybit_adapter import TickerEvent
from event_saver import DatabaseWorker, TickerWriter, TradeWriter, WriterSettings
from event_saver.rows import TICKER_COLUMNS, TRADE_COLUMNS, ticker_row, ticker_values, trade_row
from grid_db import DatabaseFactory, TickerRepository, TradeRepository
from testkit import make_trade, wait_until


def test_settings_refuse_a_batch_cap_below_one() -> None:
    with pytest.raises(ValueError, match="max_batch_rows"):
        WriterSettings(max_batch_rows=0)


async def test_a_long_buffer_is_written_in_transactions_of_at_most_max_batch_rows(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(
        db.engine,
        worker,
        None,
        WriterSettings(batch_size=10, flush_interval=3600, max_batch_rows=25),
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
    assert TradeRepository(db.engine).count() == 55


async def test_the_cap_never_splits_below_batch_size(
    db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    writer = TradeWriter(
        db.engine,
        worker,
        None,
        WriterSettings(batch_size=50, flush_interval=3600, max_batch_rows=5),
    )
    committed: list[int] = []
    writer.on_commit = lambda batch: committed.append(len(batch))
    writer.add_many([make_trade() for _ in range(60)])
    await writer.stop()
    assert committed == [50, 10]


def test_tuple_rows_hold_the_values_of_the_mapping_rows() -> None:
    trade = make_trade(tick_direction=None, seq=None)
    assert dict(zip(TRADE_COLUMNS, TradeWriter.row_builder(None, "run")(trade), strict=True)) == (  # type: ignore[arg-type]
        trade_row("run")(trade)
    )
    ticker = TickerEvent(
        category="linear",
        symbol="BTCUSDT",
        frame_type="snapshot",
        exchange_ts_ms=1,
        received_ns=time.time_ns(),
        cross_seq=7,
        state={"symbol": "BTCUSDT", "lastPrice": "1.5", "fundingRate": 0.0001, "bid1Size": None},
    )
    values = ticker_values("run")(ticker)
    assert dict(zip(TICKER_COLUMNS, values, strict=True)) == ticker_row("run")(ticker)
    assert values[TICKER_COLUMNS.index("funding_rate")] == "0.0001"


async def test_a_rejected_tuple_row_is_logged_with_its_column_names(
    db: DatabaseFactory, worker: DatabaseWorker, caplog: pytest.LogCaptureFixture
) -> None:
    writer = TickerWriter(db.engine, worker, None)
    good = TickerEvent("linear", "BTCUSDT", "snapshot", 1, time.time_ns(), None, {"symbol": "X"})
    bad = TickerEvent("linear", "BTCUSDT", "bogus", 2, time.time_ns(), None, {"symbol": "X"})
    writer.add_many([good, bad, good])
    with caplog.at_level(logging.ERROR):
        assert await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.rows_rejected) == (2, 1)
    assert TickerRepository(db.engine).count("linear", "BTCUSDT") == 2
    assert "'frame_type': 'bogus'" in caplog.text
    await writer.stop()
