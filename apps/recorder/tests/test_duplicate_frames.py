"""Duplicate and out-of-order frames: every trade still stored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

from bybit_sim import BybitSimulator
from grid_db import DatabaseFactory, DatabaseSettings
from recorder.completeness import TruthTrade, check_completeness
from recorder.config import compose_config
from recorder.session import Recorder
from testkit import wait_until


def trade_frames(seen: list[tuple[str | bytes, int]]) -> list[tuple[str | bytes, int]]:
    return [(raw, ns) for raw, ns in seen if b"publicTrade" in _bytes(raw)]


def trades_in(raw: str | bytes) -> int:
    return len(json.loads(raw)["data"])


def _bytes(raw: str | bytes) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


async def test_replayed_and_reordered_frames_are_stored_once(
    sim: BybitSimulator, tmp_path: Path
) -> None:
    config = compose_config(
        [
            "symbols=btc_eth",
            f"network.rest_url={sim.rest_url}",
            f"network.public_ws_url='{sim.public_ws_url}'",
            f"database_url=sqlite:///{tmp_path / 'recorder.db'}",
            "flush_interval=0.1",
        ],
        output_dir=tmp_path,
    )
    db = DatabaseFactory(DatabaseSettings(url=config.database_url))
    recorder = Recorder(config, db, tmp_path)
    await recorder.start()
    assert recorder.public is not None
    client = recorder.public.client
    seen: list[tuple[str | bytes, int]] = []
    handle = client._handle_frame  # the raw frame as read from the socket

    def tap(raw: str | bytes, received_ns: int) -> None:
        seen.append((raw, received_ns))
        handle(raw, received_ns)

    client._handle_frame = tap  # type: ignore[method-assign]
    try:
        await wait_until(lambda: len(trade_frames(seen)) > 20)
        frames = trade_frames(seen)
        for raw, ns in reversed(frames):  # every trade frame again, newest first
            handle(raw, ns)
        for raw, ns in frames[:5]:  # and some a third time
            handle(raw, ns)
        await wait_until(lambda: recorder.trades.buffered == 0)
    finally:
        await recorder.stop()
    stats = recorder.trades.stats()
    replayed = sum(trades_in(raw) for raw, _ in frames) + sum(
        trades_in(raw) for raw, _ in frames[:5]
    )
    assert stats.duplicates == replayed
    truth = [
        TruthTrade(t.category, t.symbol, t.trade_id, t.time_ms, t.price, t.size, t.side)
        for symbol in ("BTCUSDT", "ETHUSDT")
        for t in sim.ground_truth.trades("linear", symbol)
    ]
    report = check_completeness(tmp_path / "recorder.db", truth)
    assert report.ok, report.format_text()
    assert recorder.public.rejected_frames == 0
    db.dispose()
