"""Ticker sampling (``PipelineConfig.ticker_min_interval_ms``) against the simulator and a
real database.

The ground truth is a second subscriber of the simulator's tickers, connected before the
pipeline: the simulator sends every subscriber the same push (same ``cs``, same ``ts``), so
what it saw after the pipeline's own first snapshot is every push the pipeline received.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, select

from bybit_records import Category, FrameType, Ticker
from event_saver import PipelineConfig, RecordingPipeline, TickerSampler
from grid_db import DatabaseFactory, tables
from testkit import wait_until

from .conftest import SYMBOLS, Start


@dataclass(frozen=True, slots=True)
class Push:
    cross_seq: int
    exchange_ts_ms: int


class TickerObserver:
    """Every ticker push of ``SYMBOLS`` the simulator sends one more subscriber."""

    def __init__(self) -> None:
        self.pushes: dict[str, list[Push]] = {symbol: [] for symbol in SYMBOLS}

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            frame = json.loads(message.data)
            if str(frame.get("topic", "")).startswith("tickers."):
                push = Push(int(frame["cs"]), int(frame["ts"]))
                self.pushes[frame["data"]["symbol"]].append(push)

    def newest(self, symbol: str) -> int:
        return max((p.cross_seq for p in self.pushes[symbol]), default=-1)


@pytest.fixture
async def observer(sim: Any) -> AsyncIterator[TickerObserver]:
    seen = TickerObserver()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.public_ws_url.format(category="linear")) as ws,
    ):
        await ws.send_json({"op": "subscribe", "args": [f"tickers.{s}" for s in SYMBOLS]})
        reader = asyncio.create_task(seen.read(ws))
        try:
            await wait_until(lambda: all(seen.pushes[s] for s in SYMBOLS))
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def stored(db: DatabaseFactory, symbol: str) -> list[Any]:
    t = tables.ticker_snapshots.table
    query = (
        select(t.c.cross_seq, t.c.exchange_ts_ms, t.c.frame_type)
        .where(t.c.symbol == symbol)
        .order_by(t.c.cross_seq)
    )
    with db.engine.connect() as conn:
        return list(conn.execute(query).all())


def tickers_written(p: RecordingPipeline) -> int:
    return p.writer(Ticker).stats().written


async def record(
    start: Start, observer: TickerObserver, min_interval_ms: int, rows: int
) -> RecordingPipeline:
    """A pipeline that recorded with ``min_interval_ms``, stopped once it wrote ``rows``
    ticker rows."""
    p = await start(ticker_min_interval_ms=min_interval_ms)
    await wait_until(lambda: tickers_written(p) >= rows, timeout=20)
    await p.stop()
    return p


def expected_rows(
    first: Any, observer: TickerObserver, symbol: str, min_interval_ms: int, last: int
) -> list[tuple[int, int]]:
    """(cs, exchange ts) of the states the rule keeps of what the pipeline received: its own
    first snapshot, then every push after it, up to the last stored one (``last``)."""
    feed = [Push(first.cross_seq, first.exchange_ts_ms)] + [
        p for p in observer.pushes[symbol] if first.cross_seq < p.cross_seq <= last
    ]
    kept, previous = [], None
    for push in feed:
        if previous is None or abs(push.exchange_ts_ms - previous) >= min_interval_ms:
            kept.append((push.cross_seq, push.exchange_ts_ms))
            previous = push.exchange_ts_ms
    return kept


async def test_sampled_rows_are_the_rule_applied_to_every_push_and_spaced_by_the_interval(
    db: DatabaseFactory, start: Start, observer: TickerObserver
) -> None:
    interval = 300  # the simulator pushes a changed ticker every 100 ms
    p = await record(start, observer, interval, rows=2 * 6)
    sampled_out = p.health().tickers_sampled_out
    assert sampled_out is not None
    assert sampled_out > 0
    for symbol in SYMBOLS:
        rows = stored(db, symbol)
        assert rows[0].frame_type == FrameType.SNAPSHOT  # the first state is kept
        await wait_until(lambda s=symbol, r=rows: observer.newest(s) >= r[-1].cross_seq)
        times = [row.exchange_ts_ms for row in rows]
        spacing = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert spacing
        assert min(spacing) >= interval, spacing
        want = expected_rows(rows[0], observer, symbol, interval, rows[-1].cross_seq)
        assert [(row.cross_seq, row.exchange_ts_ms) for row in rows] == want
        pushes = [q for q in observer.pushes[symbol] if rows[0].cross_seq < q.cross_seq]
        assert len(pushes) > len(rows), "the test needs pushes that were sampled out"
    written = sum(len(stored(db, s)) for s in SYMBOLS)
    assert p.writer(Ticker).stats().received == written


async def test_zero_keeps_every_push(
    db: DatabaseFactory, start: Start, observer: TickerObserver
) -> None:
    p = await record(start, observer, 0, rows=2 * 10)
    assert p.ticker_sampler is None
    assert p.health().tickers_sampled_out is None
    for symbol in SYMBOLS:
        rows = stored(db, symbol)
        first, last = rows[0].cross_seq, rows[-1].cross_seq
        await wait_until(lambda s=symbol, c=last: observer.newest(s) >= c)
        pushed = [
            (q.cross_seq, q.exchange_ts_ms)
            for q in observer.pushes[symbol]
            if first < q.cross_seq <= last
        ]
        assert [(row.cross_seq, row.exchange_ts_ms) for row in rows[1:]] == pushed
        assert len(pushed) >= 5


async def test_after_a_reconnect_rows_resume_and_stay_spaced_by_the_interval(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    """The resubscribe snapshots go through the same rule: no two rows of a symbol closer
    than the interval, across the reconnect too, and recording goes on after it."""
    interval = 300
    p = await start(ticker_min_interval_ms=interval)
    await wait_until(lambda: tickers_written(p) >= 2 * 3)
    assert p.public is not None
    dropped_at = max(row.exchange_ts_ms for s in SYMBOLS for row in stored(db, s))
    sim.faults.drop_connections()
    await wait_until(lambda: p.public is not None and p.public.reconnects >= 1)
    resumed = tickers_written(p)
    await wait_until(lambda: tickers_written(p) >= resumed + 2 * 3)
    await p.stop()
    for symbol in SYMBOLS:
        times = sorted(row.exchange_ts_ms for row in stored(db, symbol))
        assert min(b - a for a, b in itertools.pairwise(times)) >= interval, times
        assert max(times) > dropped_at + interval


def test_a_negative_interval_is_refused_before_anything_starts() -> None:
    config = PipelineConfig(
        Category.LINEAR, SYMBOLS, "ws://127.0.0.1:1/{category}", "http://127.0.0.1:1"
    )
    engine = create_engine("sqlite://")
    assert RecordingPipeline(engine, config).ticker_sampler is None
    with pytest.raises(ValueError, match="min_interval_ms must be >= 0"):
        RecordingPipeline(engine, dataclasses.replace(config, ticker_min_interval_ms=-1))
    sampler = RecordingPipeline(engine, dataclasses.replace(config, ticker_min_interval_ms=250))
    assert isinstance(sampler.ticker_sampler, TickerSampler)
    assert sampler.ticker_sampler.min_interval_ms == 250
