"""Helpers shared by the tests of every workspace member."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from bybit_adapter import TradeEvent

_ids = itertools.count(1)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def make_trade(symbol: str = "BTCUSDT", trade_id: str | None = None, **kw: object) -> TradeEvent:
    n = next(_ids)
    fields: dict[str, object] = {
        "category": "linear",
        "symbol": symbol,
        "trade_id": trade_id or f"id-{n}",
        "trade_time_ms": 1_700_000_000_000 + n,
        "side": "Buy",
        "price": "28560.50",
        "size": "0.001",
        "tick_direction": "PlusTick",
        "is_block_trade": False,
        "is_rpi": False,
        "seq": n,
        "exchange_ts_ms": 1_700_000_000_000 + n,
        "received_ns": time.time_ns(),
    }
    fields.update(kw)
    return TradeEvent(**fields)  # type: ignore[arg-type]
