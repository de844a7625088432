"""The firehose: push N pre-generated trades of one symbol as fast as the clients drain them.

For throughput benchmarks. The trades are generated first (the cost of making them is not
part of the push), in ``publicTrade`` frames of up to ``batch`` trades like Bybit's batched
frames during a burst. Then each frame goes into ground truth and the REST recent-trade
window, and to every subscriber of the topic through ``WsConnection.send_paced``: the push
waits for the socket to drain, so a slow client slows the firehose down instead of being
cut off, and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from bybit_sim.codec import now_ms
from bybit_sim.frames import MAX_TRADES_PER_FRAME
from bybit_sim.market import MarketHub, SymbolMarket
from bybit_sim.tasks import cancel_and_wait
from bybit_sim.truth import TruthTrade

FIREHOSE_CATEGORIES = ("linear", "inverse", "spot")
_YIELD_EVERY_FRAMES = 64  # generating a million trades must not starve pongs and REST


@dataclass(slots=True)
class FirehoseStatus:
    """Progress of the current (or last) firehose; ``state`` idle/generating/pushing/done/failed."""

    category: str = ""
    symbol: str = ""
    trades: int = 0
    batch: int = 0
    state: str = "idle"
    frames: int = 0
    frames_sent: int = 0
    trades_sent: int = 0
    subscribers: int = 0
    generate_seconds: float = 0.0
    push_seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def running(self) -> bool:
        return self.state in ("generating", "pushing")


class Firehose:
    """One firehose at a time per simulator."""

    def __init__(self, hub: MarketHub) -> None:
        self._hub = hub
        self.status = FirehoseStatus()
        self._task: asyncio.Task[FirehoseStatus] | None = None

    def start(
        self,
        category: str,
        symbol: str,
        trades: int,
        batch: int = MAX_TRADES_PER_FRAME,
        wait_subscriber_s: float = 10.0,
    ) -> asyncio.Task[FirehoseStatus]:
        """Check the request, then run it in the background; ``ValueError`` if refused."""
        if self.status.running:
            raise ValueError("a firehose is already running")
        if category not in FIREHOSE_CATEGORIES:
            raise ValueError(f"category must be one of {FIREHOSE_CATEGORIES}")
        if trades < 1:
            raise ValueError("trades must be at least 1")
        if not 1 <= batch <= MAX_TRADES_PER_FRAME:
            raise ValueError(f"batch must be within 1..{MAX_TRADES_PER_FRAME}")
        market = self._hub.ensure_market(category, symbol)
        if not isinstance(market, SymbolMarket):
            raise ValueError(f"unknown market {category}/{symbol}")
        self.status = FirehoseStatus(category, symbol, trades, batch, state="generating")
        self._task = asyncio.get_running_loop().create_task(
            self._run(market, wait_subscriber_s), name=f"firehose-{category}-{symbol}"
        )
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            await cancel_and_wait(task)
            self.status.state = "failed"
            self.status.error = "simulator stopped"

    async def _run(self, market: SymbolMarket, wait_subscriber_s: float) -> FirehoseStatus:
        status = self.status
        try:
            started = time.perf_counter()
            frames = await self._generate(market, status.trades, status.batch)
            status.frames = len(frames)
            status.generate_seconds = time.perf_counter() - started
            await self._wait_subscriber(market, wait_subscriber_s)
            status.state = "pushing"
            started = time.perf_counter()
            await self._push(market, frames)
            status.push_seconds = time.perf_counter() - started
            status.state = "done"
        except Exception as exc:
            status.state = "failed"
            status.error = f"{type(exc).__name__}: {exc}"
        return status

    async def _generate(
        self, market: SymbolMarket, total: int, batch: int
    ) -> list[tuple[list[TruthTrade], bytes]]:
        frames: list[tuple[list[TruthTrade], bytes]] = []
        left = total
        while left > 0:
            ts = now_ms()
            trades = market.make_trades(min(batch, left), ts)
            frames.append((trades, market.encode_trade_frame(trades, ts)))
            left -= len(trades)
            if len(frames) % _YIELD_EVERY_FRAMES == 0:
                await asyncio.sleep(0)
        return frames

    async def _wait_subscriber(self, market: SymbolMarket, timeout: float) -> None:  # noqa: ASYNC109
        topic = f"publicTrade.{market.key}"
        deadline = time.monotonic() + timeout
        while not self._hub.subscribers(market.category, topic):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody subscribed {topic} within {timeout}s")
            await asyncio.sleep(0.02)

    async def _push(
        self, market: SymbolMarket, frames: list[tuple[list[TruthTrade], bytes]]
    ) -> None:
        status = self.status
        topic = f"publicTrade.{market.key}"
        frames.reverse()  # pop from the end: sent frames are freed as we go
        while frames:
            trades, frame = frames.pop()
            market.record_trades(trades)
            subscribers = list(self._hub.subscribers(market.category, topic))
            status.subscribers = len(subscribers)
            for conn in subscribers:
                await conn.send_paced(frame, topic)
            status.frames_sent += 1
            status.trades_sent += len(trades)
