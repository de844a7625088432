"""The Recorder session against the simulator and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from bybit_records import Ticker, Trade
from grid_db import DatabaseFactory, ReferenceDataRepository, RunRepository, RunStatus, tables
from recorder.health import format_health
from recorder.provenance import host_name
from recorder.session import ACCOUNT_ID, Recorder
from testkit import wait_until


def received(recorder: Recorder, record: type[Any]) -> int:
    return recorder.pipeline.writer(record).stats().received


def count(db: DatabaseFactory, table: Any, **where: Any) -> int:
    query = (
        select(func.count()).select_from(table).where(*(table.c[k] == v for k, v in where.items()))
    )
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


async def test_books_depths_records_the_books_of_every_symbol(
    make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config("books.depths=[50,1]"), db)
    books = tables.orderbook_updates.table
    assert "books" in [w.name for w in recorder.pipeline.writers]
    assert "books" in format_health(recorder.health())
    every_book = [(s, d) for s in ("BTCUSDT", "ETHUSDT") for d in (50, 1)]
    await wait_until(lambda: all(count(db, books, symbol=s, depth=d) > 3 for s, d in every_book))
    await recorder.stop()
    run = RunRepository(db.engine).get(recorder.run_id)
    assert run is not None
    assert (run.status, run.error) == ("completed", None)
    assert json.loads(run.config_json)["books"]["depths"] == [50, 1]


async def test_a_session_records_and_closes_its_run(
    make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config(), db)
    assert [w.name for w in recorder.pipeline.writers] == [
        "trades",
        "tickers",
        "rejected",
        "gaps",
    ]
    assert recorder.pipeline.private is None
    run = RunRepository(db.engine).get(recorder.run_id)
    assert run is not None
    assert run.status == "running"
    await wait_until(lambda: received(recorder, Trade) > 20 and received(recorder, Ticker) > 5)
    await recorder.stop()
    await recorder.stop()  # idempotent
    run = RunRepository(db.engine).get(recorder.run_id)
    assert run is not None
    assert (run.status, run.error) == ("completed", None)
    assert run.ended_at_ms is not None
    trades, tickers = tables.public_trades.table, tables.ticker_snapshots.table
    for symbol in ("BTCUSDT", "ETHUSDT"):
        # trades and tickers name their run by its number
        run_ref = RunRepository(db.engine).ref_of(recorder.run_id)
        assert count(db, trades, symbol=symbol, run_ref=run_ref) > 0
        assert count(db, tickers, symbol=symbol, run_ref=run_ref) > 0
    # everything received was written before the run was closed
    assert count(db, trades) == received(recorder, Trade)
    assert ReferenceDataRepository(db.engine).get_account(ACCOUNT_ID) is None


async def test_stop_flushes_what_is_buffered(
    make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    config = make_config("batch_size=100000", "flush_interval=3600", "max_buffer_rows=100000")
    recorder = await recording(config, db)
    await wait_until(lambda: recorder.pipeline.writer(Trade).buffered > 20)
    assert count(db, tables.public_trades.table) == 0
    await recorder.stop()
    assert count(db, tables.public_trades.table) == received(recorder, Trade)


async def test_health_shows_a_disconnected_stream_and_its_outage(
    sim: Any, make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config(), db)
    await wait_until(lambda: received(recorder, Trade) > 0)
    sim.faults.refuse_connections(30)
    sim.faults.drop_connections()
    await wait_until(lambda: "public.linear reconnecting" in format_health(recorder.health()))
    assert recorder.health().streams[0].last_message_age_s is not None
    sim.faults.clear()
    await wait_until(lambda: "causes=disconnect:1" in format_health(recorder.health()), 15)
    await recorder.stop()
    gaps = tables.gaps.table
    assert count(db, gaps, stream="publicTrade", run_id=recorder.run_id) == 2


async def test_private_streams_only_with_an_account(
    account_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(account_config("sim-secret"), db)
    private = recorder.pipeline.private
    assert private is not None
    names = {w.name for w in recorder.pipeline.writers}
    assert names >= {"executions", "orders", "positions", "wallet"}
    await wait_until(lambda: private.authenticated)
    await wait_until(lambda: private.stats.data_frames > 0, timeout=20)
    await recorder.stop()
    account_id = ACCOUNT_ID
    assert count(db, tables.position_snapshots.table, account_id=account_id) > 0
    assert ReferenceDataRepository(db.engine).get_account(account_id) is not None
    run = RunRepository(db.engine).get(recorder.run_id)
    assert run is not None
    assert "sim-secret" not in run.config_json
    assert "sim-key" not in run.config_json
    assert run.account_id == account_id
    assert (run.status, run.error) == ("completed", None)


async def test_a_dead_run_of_this_host_is_marked_aborted(
    make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    runs = RunRepository(db.engine)
    dead = runs.create_run(
        config_json="{}", host=host_name(), pid=2**22 + 12345, software_version="x"
    )
    elsewhere = runs.create_run(config_json="{}", host="other-host", pid=1, software_version="x")
    recorder = await recording(make_config(), db)
    await recorder.stop()
    assert (runs.get(dead.id) or dead).status == RunStatus.ABORTED
    # a pid means nothing on another host: its run is left alone
    assert (runs.get(elsewhere.id) or elsewhere).status == RunStatus.RUNNING
