"""A slow database and hostile frame orders: the pipeline loses nothing and stores nothing twice."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from sqlalchemy import event

from bybit_records import Trade
from event_saver import WriterSettings
from grid_db import DatabaseFactory
from testkit import FAST_STREAM, settled_violations, wait_until

from .conftest import SYMBOLS


def check_invariant(sim: Any, db: DatabaseFactory) -> None:
    problems = settled_violations(sim, db.engine, SYMBOLS)
    assert not problems, problems[:5]


async def test_slow_commits_do_not_delay_pings_and_lose_nothing(
    sim: Any, db: DatabaseFactory, start: Any
) -> None:
    slow = {"on": False}

    @event.listens_for(db.engine, "before_cursor_execute")
    def crawl(*_: Any) -> None:
        if slow["on"]:
            time.sleep(0.4)  # every statement takes as long as the pong timeout

    settings = dataclasses.replace(FAST_STREAM, ping_interval=0.2, pong_timeout=0.5)
    p = await start(
        public=settings, writer=WriterSettings(batch_size=20, flush_interval=0.1, max_buffer=5000)
    )
    trades = p.writer(Trade)
    stream = p.public
    assert stream is not None
    await wait_until(lambda: trades.stats().written > 10)
    slow["on"] = True
    pongs, flushes = stream.stats.pongs, trades.stats().flushes
    # While every statement crawls, the loop keeps answering pings (every 0.2 s) and
    # no connection is lost: the database works on its own thread.
    await wait_until(lambda: trades.stats().flushes >= flushes + 3, timeout=15)
    await wait_until(lambda: stream.stats.pongs >= pongs + 8, timeout=15)
    assert stream.stats.losses == {}
    assert stream.stats.outages == 0
    assert trades.stats().peak_buffered > 20
    slow["on"] = False
    await wait_until(lambda: trades.buffered < 20, timeout=20)
    await p.stop()
    check_invariant(sim, db)


async def test_replayed_and_reordered_frames_are_stored_once(
    sim: Any, db: DatabaseFactory, start: Any
) -> None:
    p = await start()
    stream = p.public
    assert stream is not None
    seen: list[tuple[str | bytes, int]] = []
    handle = stream._frame  # the raw frame as read from the socket

    def tap(raw: str | bytes, received_ns: int) -> None:
        seen.append((raw, received_ns))
        handle(raw, received_ns)

    stream._frame = tap  # type: ignore[method-assign]
    trade_frames = lambda: [(r, n) for r, n in seen if b"publicTrade" in _bytes(r)]  # noqa: E731
    await wait_until(lambda: len(trade_frames()) > 20)
    frames = trade_frames()
    for raw, ns in reversed(frames):  # every trade frame again, newest first
        handle(raw, ns)
    for raw, ns in frames[:5]:  # and some a third time
        handle(raw, ns)
    trades = p.writer(Trade)
    await wait_until(lambda: trades.buffered == 0)
    await p.stop()
    replayed = sum(_trades_in(raw) for raw, _ in frames) + sum(
        _trades_in(raw) for raw, _ in frames[:5]
    )
    assert trades.stats().duplicates == replayed
    assert stream.stats.rejected_frames == 0
    assert stream.stats.outages == 0
    check_invariant(sim, db)


def _bytes(raw: str | bytes) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def _trades_in(raw: str | bytes) -> int:
    return len(json.loads(raw)["data"])
