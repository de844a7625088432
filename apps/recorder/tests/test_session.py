"""The Recorder session against the simulator and a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from bybit_sim import BybitSimulator
from grid_db import (
    DatabaseFactory,
    DatabaseSettings,
    Gap,
    ReferenceDataRepository,
    RunRepository,
    TickerRepository,
    TradeRepository,
)
from recorder.config import RecorderConfig, compose_config
from recorder.health import format_health
from recorder.session import ACCOUNT_ID, STRATEGY_ID, USER_ID, Recorder
from testkit import wait_until

FAST_CONNECTION = [
    "connection.ping_interval_seconds=0.3",
    "connection.pong_timeout_seconds=0.5",
    "connection.stall_timeout_seconds=2",
    "connection.reconnect_initial_delay_seconds=0.05",
    "connection.reconnect_max_delay_seconds=0.3",
]


def config_for(sim: BybitSimulator, tmp_path: Path, *overrides: str) -> RecorderConfig:
    return compose_config(
        [
            "symbols=btc_eth",
            f"network.rest_url={sim.rest_url}",
            f"network.public_ws_url='{sim.public_ws_url}'",
            f"network.private_ws_url={sim.private_ws_url}",
            f"database_url=sqlite:///{tmp_path / 'recorder.db'}",
            "flush_interval=0.2",
            *FAST_CONNECTION,
            *overrides,
        ],
        output_dir=tmp_path,
    )


@pytest.fixture
def database(tmp_path: Path) -> DatabaseFactory:
    db = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{tmp_path / 'recorder.db'}"))
    yield db  # type: ignore[misc]
    db.dispose()


async def test_start_wires_public_writers_and_collector_and_stop_completes_the_run(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    recorder = Recorder(config_for(sim, tmp_path), database, tmp_path)
    await recorder.start()
    try:
        assert [w.name for w in recorder.writers] == ["trades", "tickers", "rejected"]
        assert recorder.public is not None
        assert recorder.public.symbols == ["BTCUSDT", "ETHUSDT"]
        assert recorder.private is None
        run = RunRepository(database.engine).get(recorder.run_id)
        assert run is not None
        assert run.status == "running"
        await wait_until(lambda: recorder.trades.stats().written > 10)
        await wait_until(lambda: recorder.tickers.stats().written > 5)
    finally:
        await recorder.stop()
    await recorder.stop()  # idempotent
    run = RunRepository(database.engine).get(recorder.run_id)
    assert run is not None
    assert (run.status, run.error) == ("completed", None)
    assert run.ended_at_ms is not None
    assert "api_secret" not in run.config_json
    refs = ReferenceDataRepository(database.engine)
    assert refs.get_user(USER_ID) is not None
    assert refs.get_strategy(STRATEGY_ID) is not None
    assert refs.get_account(ACCOUNT_ID) is None


async def test_trades_and_tickers_are_routed_to_their_tables(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    recorder = Recorder(config_for(sim, tmp_path), database, tmp_path)
    await recorder.start()
    await wait_until(lambda: recorder.public is not None and recorder.public.trades_received > 20)
    await recorder.stop()
    trades = TradeRepository(database.engine)
    tickers = TickerRepository(database.engine)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert trades.count("linear", symbol) > 0
        assert tickers.count("linear", symbol) > 0
        latest = tickers.latest("linear", symbol)
        assert latest is not None
        assert latest.mark_price is not None
    assert trades.count() == recorder.trades.stats().received


async def test_stop_flushes_what_is_buffered(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    config = config_for(
        sim, tmp_path, "batch_size=100000", "flush_interval=3600", "max_buffer_rows=100000"
    )
    recorder = Recorder(config, database, tmp_path)
    await recorder.start()
    await wait_until(lambda: recorder.trades.buffered > 20)
    assert TradeRepository(database.engine).count() == 0
    await recorder.stop()
    assert TradeRepository(database.engine).count() == recorder.trades.stats().received


async def test_an_outage_goes_to_the_gap_reconciler(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    recorder = Recorder(config_for(sim, tmp_path), database, tmp_path)
    await recorder.start()
    try:
        await wait_until(lambda: recorder.trades.stats().received > 10)
        sim.faults.refuse_connections(1.0)
        sim.faults.drop_connections()
        assert recorder.reconciler is not None
        await wait_until(lambda: recorder.reconciler.stats.outages_handled == 1, timeout=15)
        await recorder.reconciler.wait_idle()
    finally:
        await recorder.stop()
    with database.session() as s:
        gaps = list(s.scalars(select(Gap).where(Gap.stream == "publicTrade")))
    assert {g.symbol for g in gaps} == {"BTCUSDT", "ETHUSDT"}
    assert {g.fill_status for g in gaps} == {"filled"}
    assert {g.run_id for g in gaps} == {recorder.run_id}


async def test_health_is_logged_every_interval(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recorder.session")
    recorder = Recorder(config_for(sim, tmp_path, "health_log_interval=0.2"), database, tmp_path)
    await recorder.start()
    try:
        await wait_until(lambda: recorder.health_lines >= 3, timeout=5)
    finally:
        await recorder.stop()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("health ")]
    assert len(lines) >= 3
    last = lines[-1]
    for part in (
        "uptime=",
        "public.linear",
        "reconnects=",
        "trades received=",
        "tickers received=",
        "written=",
        "rss=",
        "tasks=",
        "buffered=",
        "rate=",
        "gaps detected=",
    ):
        assert part in last


async def test_health_shows_a_disconnected_stream(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    recorder = Recorder(config_for(sim, tmp_path), database, tmp_path)
    await recorder.start()
    try:
        await wait_until(lambda: recorder.trades.stats().received > 0)
        sim.faults.refuse_connections(5)
        sim.faults.drop_connections()
        await wait_until(
            lambda: recorder.public is not None and recorder.public.state.value == "reconnecting"
        )
        line = format_health(recorder.health())
        assert "public.linear reconnecting" in line
        assert recorder.health().streams[0].last_message_age_s is not None
    finally:
        sim.faults.clear()
        await recorder.stop()


async def test_private_collector_only_with_an_account(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "sim-key")
    monkeypatch.setenv("BYBIT_API_SECRET", "sim-secret")
    recorder = Recorder(config_for(sim, tmp_path, "account=env"), database, tmp_path)
    await recorder.start()
    try:
        assert recorder.private is not None
        assert {w.name for w in recorder.writers} >= {"executions", "orders", "positions", "wallet"}
        await wait_until(lambda: recorder.private is not None and recorder.private.authenticated)
        await wait_until(lambda: recorder.executions.stats().received > 0, timeout=20)
    finally:
        await recorder.stop()
    assert recorder.positions.stats().written > 0  # REST snapshot at start
    assert ReferenceDataRepository(database.engine).get_account(ACCOUNT_ID) is not None
    run = RunRepository(database.engine).get(recorder.run_id)
    assert run is not None
    assert "sim-secret" not in run.config_json
    assert run.account_id == ACCOUNT_ID


async def test_a_crashed_run_of_this_host_is_marked_aborted(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    from recorder.provenance import host_name

    database.create_tables()
    dead = RunRepository(database.engine).create_run(
        config_json="{}", host=host_name(), pid=2**22 + 12345, software_version="x"
    )
    recorder = Recorder(config_for(sim, tmp_path), database, tmp_path)
    await recorder.start()
    await recorder.stop()
    run = RunRepository(database.engine).get(dead.id)
    assert run is not None
    assert run.status == "aborted"


async def test_run_until_shutdown_honours_duration(
    sim: BybitSimulator, tmp_path: Path, database: DatabaseFactory
) -> None:
    recorder = Recorder(config_for(sim, tmp_path, "duration_seconds=1"), database, tmp_path)
    assert await asyncio.wait_for(recorder.run_until_shutdown(), 10) == 0
    run = RunRepository(database.engine).get(recorder.run_id)
    assert run is not None
    assert run.status == "completed"
