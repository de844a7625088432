"""Collectors, writers and the gap reconciler against the simulator and a real SQLite file."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from bybit_adapter import BybitRestClient, Outage, RestSettings, WebSocketSettings
from bybit_sim import BybitSimulator
from event_saver import (
    AccountContext,
    DatabaseWorker,
    ExecutionWriter,
    GapReconciler,
    OrderWriter,
    PositionWriter,
    PrivateCollector,
    PublicCollector,
    RejectedFrameWriter,
    TickerWriter,
    TradeWriter,
    WalletWriter,
    WriterSettings,
)
from grid_db import (
    DatabaseFactory,
    Gap,
    PositionSnapshot,
    PrivateExecution,
    PublicTrade,
    ReferenceDataRepository,
    RunRepository,
    TradeRepository,
    WalletSnapshot,
)
from testkit import wait_until

FAST_WS = WebSocketSettings(
    ping_interval=0.3, pong_timeout=0.5, stall_timeout=2.0, backoff_initial=0.05, backoff_max=0.3
)
FAST_REST = RestSettings(timeout=2.0, max_retries=2, retry_initial=0.05, retry_max=0.1)
WRITER = WriterSettings(batch_size=50, flush_interval=0.2)
ACCOUNT = "00000000-0000-0000-0000-0000000000a1"


@dataclass
class Pipeline:
    run_id: str
    trades: TradeWriter
    tickers: TickerWriter
    rejected: RejectedFrameWriter
    reconciler: GapReconciler
    collector: PublicCollector
    rest: BybitRestClient

    async def stop(self) -> None:
        await self.collector.stop()
        await self.reconciler.stop()
        for writer in (self.trades, self.tickers, self.rejected):
            await writer.stop()
        await self.rest.stop()


def new_run(db: DatabaseFactory, with_account: bool = False) -> str:
    if with_account:
        ReferenceDataRepository(db.engine).upsert_reference_rows(
            "00000000-0000-0000-0000-0000000000u1", ACCOUNT, None, testnet=False
        )
    run = RunRepository(db.engine).create_run(
        config_json="{}", host="test", pid=1, software_version="test"
    )
    return run.id


@pytest.fixture
async def pipeline(
    sim: BybitSimulator, db: DatabaseFactory, worker: DatabaseWorker
) -> AsyncIterator[Pipeline]:
    run_id = new_run(db)
    trades = TradeWriter(db.engine, worker, run_id, WRITER)
    tickers = TickerWriter(db.engine, worker, run_id, WRITER)
    rejected = RejectedFrameWriter(db.engine, worker, run_id, WRITER)
    rest = BybitRestClient(sim.rest_url, settings=FAST_REST)
    await rest.start()
    reconciler = GapReconciler(rest, db.engine, worker, run_id, delay=0.1)
    collector = PublicCollector(
        sim.public_ws_url,
        ["BTCUSDT", "ETHUSDT"],
        category="linear",
        on_trades=trades.add_many,
        on_ticker=tickers.add,
        on_outage=reconciler.submit_public,
        on_rejected=rejected.add,
        settings=FAST_WS,
    )
    p = Pipeline(run_id, trades, tickers, rejected, reconciler, collector, rest)
    for writer in (trades, tickers, rejected):
        await writer.start()
    await reconciler.start()
    await collector.start()
    yield p
    await p.stop()


def db_trades(db: DatabaseFactory, symbol: str) -> list[PublicTrade]:
    return TradeRepository(db.engine).list("linear", symbol)


def gaps(db: DatabaseFactory, stream: str = "publicTrade") -> list[Gap]:
    with db.session() as s:
        return list(s.scalars(select(Gap).where(Gap.stream == stream).order_by(Gap.id)))


async def outage_handled(p: Pipeline, count: int = 1) -> None:
    await wait_until(lambda: p.reconciler.stats.outages_handled >= count, timeout=20)
    await p.reconciler.wait_idle()


def assert_exactly_once_up_to_stop(sim: BybitSimulator, db: DatabaseFactory, symbol: str) -> None:
    stored = db_trades(db, symbol)
    ids = [t.trade_id for t in stored]
    assert len(ids) == len(set(ids)), "duplicates stored"
    last = max(t.trade_time_ms for t in stored)
    truth = [t for t in sim.ground_truth.trades("linear", symbol) if t.time_ms <= last]
    missing = {t.trade_id for t in truth} - set(ids)
    assert not missing, f"{len(missing)} trades missing"
    by_id = {t.trade_id: t for t in stored}
    for t in truth:
        row = by_id[t.trade_id]
        assert (row.price, row.size, row.side, row.trade_time_ms) == (
            t.price,
            t.size,
            t.side,
            t.time_ms,
        )


async def test_trades_printed_while_disconnected_are_filled_exactly_once(
    sim: BybitSimulator, db: DatabaseFactory, pipeline: Pipeline
) -> None:
    await wait_until(lambda: pipeline.collector.trades_received > 20)
    sim.faults.refuse_connections(1.5)
    sim.faults.drop_connections()
    await outage_handled(pipeline)
    await wait_until(
        lambda: pipeline.collector.trades_received > 0 and pipeline.trades.buffered == 0
    )
    await pipeline.stop()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert_exactly_once_up_to_stop(sim, db, symbol)
    trade_gaps = gaps(db)
    assert {(g.symbol, g.fill_status, g.cause) for g in trade_gaps} == {
        ("BTCUSDT", "filled", "disconnect"),
        ("ETHUSDT", "filled", "disconnect"),
    }
    assert sum(g.rows_recovered for g in trade_gaps) > 0
    recovered = [t for s in ("BTCUSDT", "ETHUSDT") for t in db_trades(db, s) if t.source == "rest"]
    assert len(recovered) == sum(g.rows_recovered for g in trade_gaps)
    # every recovered row lies in a gap of its symbol, up to its first live trade
    outside = [
        (t.symbol, t.trade_time_ms)
        for t in recovered
        if not any(g.symbol == t.symbol and g.start_ts_ms <= t.trade_time_ms for g in trade_gaps)
    ]
    assert not outside
    assert {g.fill_status for g in gaps(db, "tickers")} == {"unfillable"}


async def test_outage_longer_than_the_rest_window_leaves_a_partial_gap_covering_the_loss(
    sim: BybitSimulator, db: DatabaseFactory, pipeline: Pipeline
) -> None:
    await wait_until(lambda: pipeline.collector.trades_received > 20)
    sim.faults.recent_trade_limit(3)
    sim.faults.refuse_connections(2.0)
    sim.faults.drop_connections()
    await outage_handled(pipeline)
    await pipeline.stop()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        symbol_gaps = [g for g in gaps(db) if g.symbol == symbol]
        assert symbol_gaps[0].fill_status == "partial"
        assert symbol_gaps[0].recovered_from_ts_ms is not None
        stored = {t.trade_id for t in db_trades(db, symbol)}
        last = max(t.trade_time_ms for t in db_trades(db, symbol))
        missing = [
            t
            for t in sim.ground_truth.trades("linear", symbol)
            if t.time_ms <= last and t.trade_id not in stored
        ]
        assert missing, "the test needs trades beyond the REST window"
        # every missing trade lies in the unrecovered range of a partial gap
        unexcused = [
            t.time_ms
            for t in missing
            if not any(
                g.fill_status == "partial"
                and g.recovered_from_ts_ms is not None
                and g.start_ts_ms <= t.time_ms <= g.recovered_from_ts_ms
                for g in symbol_gaps
            )
        ]
        assert not unexcused, (
            unexcused,
            [(g.start_ts_ms, g.recovered_from_ts_ms) for g in symbol_gaps],
        )


async def test_rest_failure_records_an_unfillable_gap(
    sim: BybitSimulator, db: DatabaseFactory, pipeline: Pipeline
) -> None:
    await wait_until(lambda: pipeline.collector.trades_received > 5)
    sim.faults.rest_errors("http500", 100)
    sim.faults.drop_connections()
    await outage_handled(pipeline)
    await pipeline.stop()
    statuses = {g.fill_status for g in gaps(db)}
    assert statuses == {"unfillable"}
    assert all("500" in (g.detail or "") for g in gaps(db))


async def test_malformed_frames_are_kept_in_rejected_frames(
    sim: BybitSimulator, db: DatabaseFactory, pipeline: Pipeline
) -> None:
    await wait_until(lambda: pipeline.collector.trades_received > 5)
    sim.faults.malformed_frames(4)
    await wait_until(lambda: pipeline.collector.rejected_frames >= 4)
    received = pipeline.collector.trades_received
    await wait_until(lambda: pipeline.collector.trades_received > received + 5)
    await pipeline.stop()
    from grid_db import RejectedFrameRepository

    rows = RejectedFrameRepository(db.engine).list()
    assert len(rows) >= 4
    assert all(r.reason and r.payload for r in rows)


async def test_private_outage_recovers_every_execution(
    sim: BybitSimulator, db: DatabaseFactory, worker: DatabaseWorker
) -> None:
    run_id = new_run(db, with_account=True)
    context = AccountContext(ACCOUNT, run_id, ("linear",))
    writers = [
        ExecutionWriter(db.engine, worker, run_id, ACCOUNT, WRITER),
        OrderWriter(db.engine, worker, run_id, ACCOUNT, WRITER),
        PositionWriter(db.engine, worker, run_id, ACCOUNT, WRITER),
        WalletWriter(db.engine, worker, run_id, ACCOUNT, WRITER),
        RejectedFrameWriter(db.engine, worker, run_id, WRITER),
    ]
    executions, orders, positions, wallets, rejected = writers
    rest = BybitRestClient(sim.rest_url, "sim-key", "sim-secret", settings=FAST_REST)
    await rest.start()
    reconciler = GapReconciler(rest, db.engine, worker, run_id, account=context, delay=0.1)
    outages: list[Outage] = []

    def on_outage(outage: Outage) -> None:
        outages.append(outage)
        reconciler.submit_private(outage)

    collector = PrivateCollector(
        sim.private_ws_url,
        "sim-key",
        "sim-secret",
        context,
        on_execution=executions.add,  # type: ignore[arg-type]
        on_order=orders.add,  # type: ignore[arg-type]
        on_position=positions.add,  # type: ignore[arg-type]
        on_wallet=wallets.add,  # type: ignore[arg-type]
        on_outage=on_outage,
        on_rejected=rejected.add,  # type: ignore[arg-type]
        settings=WebSocketSettings(
            ping_interval=0.3,
            pong_timeout=0.5,
            stall_timeout=None,
            backoff_initial=0.05,
            backoff_max=0.3,
        ),
    )
    for w in writers:
        await w.start()
    await reconciler.start()
    await collector.start()
    await reconciler.refresh_private_state()
    try:
        await wait_until(lambda: collector.events_received > 0, timeout=20)
        count = len(sim.ground_truth.executions())
        sim.faults.refuse_connections(2.0)
        sim.faults.drop_connections()
        await wait_until(lambda: len(sim.ground_truth.executions()) > count, timeout=20)
        await wait_until(lambda: reconciler.stats.outages_handled >= 1, timeout=20)
        await reconciler.wait_idle()
    finally:
        await collector.stop()
        await reconciler.stop()
        for w in writers:
            await w.stop()
        await rest.stop()
    cutoff = time.time_ns() // 1_000_000
    with db.session() as s:
        stored = list(s.scalars(select(PrivateExecution.exec_id)))
    assert len(stored) == len(set(stored))
    truth = [
        e["execId"] for e in sim.ground_truth.executions() if int(e["execTime"]) <= cutoff - 2000
    ]
    assert set(truth) <= set(stored)
    assert any(g.fill_status == "filled" for g in gaps(db, "execution"))
    # the REST snapshot at start plus whatever the stream pushed
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PositionSnapshot)) > 0
        assert s.scalar(select(func.count()).select_from(WalletSnapshot)) > 0
