"""A slow disk delays writes but never the event loop: pings are answered, nothing is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bybit_sim import BybitSimulator
from grid_db import DatabaseFactory, DatabaseSettings
from recorder.completeness import TruthTrade, check_completeness
from recorder.config import compose_config
from recorder.session import Recorder
from testkit import wait_until


async def test_slow_commits_do_not_delay_pings_and_lose_nothing(
    sim: BybitSimulator, tmp_path: Path
) -> None:
    config = compose_config(
        [
            "symbols=btc_eth",
            f"network.rest_url={sim.rest_url}",
            f"network.public_ws_url='{sim.public_ws_url}'",
            f"database_url=sqlite:///{tmp_path / 'recorder.db'}",
            "connection.ping_interval_seconds=0.2",
            "connection.pong_timeout_seconds=0.5",
            "batch_size=20",
            "flush_interval=0.1",
            "max_buffer_rows=5000",
        ],
        output_dir=tmp_path,
    )
    db = DatabaseFactory(DatabaseSettings(url=config.database_url))
    slow = {"on": False}

    @event.listens_for(db.engine, "before_cursor_execute")
    def crawl(*_: Any) -> None:
        if slow["on"]:
            time.sleep(0.4)  # every statement takes as long as two pong timeouts

    recorder = Recorder(config, db, tmp_path)
    await recorder.start()
    try:
        assert recorder.public is not None
        client = recorder.public.client
        await wait_until(lambda: recorder.trades.stats().written > 10)
        slow["on"] = True
        pongs = client.stats.pongs
        await asyncio.sleep(3)
        assert client.stats.pongs >= pongs + 8, "the loop kept answering pings"
        assert client.stats.losses == {}
        assert recorder.trades.stats().peak_buffered > 20
        assert recorder.trades.buffered <= config.max_buffer_rows
        slow["on"] = False
        await wait_until(lambda: recorder.trades.buffered < 20, timeout=20)
    finally:
        slow["on"] = False
        await recorder.stop()
    truth = [
        TruthTrade(t.category, t.symbol, t.trade_id, t.time_ms, t.price, t.size, t.side)
        for symbol in ("BTCUSDT", "ETHUSDT")
        for t in sim.ground_truth.trades("linear", symbol)
    ]
    report = check_completeness(tmp_path / "recorder.db", truth)
    assert report.ok, report.format_text()
    db.dispose()
