"""GapReconciler.stop when a database write hangs past every deadline: the outages in
hand are still recorded, as unfillable gaps, and stop returns within its bound.

A write that hangs cannot be made on a real database on demand (a failing one makes
``write_now`` give up after ``stop_deadline``), hence fakes for the writers and REST.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from bybit_adapter import Outage, OutageTracker
from bybit_records import Category, FillStatus, Gap, OutageCause, Record, Trade
from event_saver import WriterSettings
from event_saver.reconciler import NOT_REFILLED, GapReconciler, Writers
from testkit import make_trade

DRAIN = 0.1
WRITE_DEADLINE = 0.1


class FakeWriter:
    """A table writer's refill side; ``hang``: its ``write_now`` never returns."""

    def __init__(self, record: type[Record], hang: bool = False) -> None:
        self.table = SimpleNamespace(record=record)
        self.settings = WriterSettings(stop_deadline=WRITE_DEADLINE)
        self.hang = hang
        self.written: list[Any] = []
        self.added: list[Any] = []

    async def write_now(self, records: list[Any]) -> int:
        if self.hang:
            await asyncio.Event().wait()
        self.written += records
        return len(records)

    def add_many(self, records: list[Any]) -> None:
        self.added += records


class FakeRest:
    async def recent_trades(self, category: Category, symbol: str, limit: int) -> list[Trade]:
        return [make_trade(symbol, trade_time_ms=1_000)]


def outage(symbol: str) -> Outage:
    """A disconnect of ``symbol``'s stream, as its tracker reports it."""
    tracker = OutageTracker("public.linear", Category.LINEAR, [symbol], silence_seconds=None)
    tracker.data(symbol, 1_000, time.time_ns(), [make_trade(symbol, trade_time_ms=900)])
    tracker.lost(OutageCause.DISCONNECT)
    tracker.connected()
    tracker.data(symbol, 3_000, time.time_ns(), [make_trade(symbol, trade_time_ms=2_900)])
    reported = tracker.resolve(subscriptions_complete=True)
    assert reported is not None
    return reported


async def test_a_hung_write_at_stop_still_leaves_gap_rows_and_stop_is_bounded() -> None:
    trades, gaps = FakeWriter(Trade, hang=True), FakeWriter(Gap)
    reconciler = GapReconciler(
        FakeRest(),  # type: ignore[arg-type]
        Writers([trades, gaps]),  # type: ignore[list-item]
        delay=0,
        drain_timeout=DRAIN,
    )
    await reconciler.start()
    reconciler.submit(outage("BTCUSDT"))  # its trade write hangs
    reconciler.submit(outage("ETHUSDT"))  # queued behind it
    while reconciler.stats.outages_handled < 1:
        await asyncio.sleep(0.01)
    began = time.monotonic()
    await reconciler.stop()
    assert time.monotonic() - began < DRAIN + WRITE_DEADLINE + 5.0 + 1.0
    recorded = [(g.stream.value, g.symbol, g.fill_status, g.detail) for g in gaps.added]
    assert sorted(r for r in recorded if r[0] == "publicTrade") == [
        ("publicTrade", s, FillStatus.UNFILLABLE, NOT_REFILLED) for s in ("BTCUSDT", "ETHUSDT")
    ]
    assert {r[1] for r in recorded if r[0] == "tickers"} == {"BTCUSDT", "ETHUSDT"}
    assert reconciler.pending == 0
    assert reconciler.stats.not_refilled == 2
    await reconciler.stop()  # idempotent


async def test_stop_without_outages_returns_at_once() -> None:
    reconciler = GapReconciler(
        FakeRest(),  # type: ignore[arg-type]
        Writers([FakeWriter(Trade), FakeWriter(Gap)]),  # type: ignore[list-item]
        drain_timeout=30.0,
    )
    await reconciler.start()
    began = time.monotonic()
    await reconciler.stop()
    assert time.monotonic() - began < 1.0
