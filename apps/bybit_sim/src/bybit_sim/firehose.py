"""The firehoses: push N pre-generated updates of one symbol as fast as the clients drain them.

For throughput benchmarks. The updates are generated first (the cost of making them is not
part of the push), then each frame goes to every subscriber of the topic through
``WsConnection.send_paced``: the push waits for the socket to drain, so a slow client slows
the firehose down instead of being cut off, and nothing is dropped.

* ``Firehose``: trades, in ``publicTrade`` frames of up to ``batch`` trades like Bybit's
  batched frames during a burst. Each frame goes into ground truth and the REST
  recent-trade window as it is pushed.
* ``BookFirehose`` (``Firehose.books``): ``orderbook.{depth}.{symbol}`` updates, one per
  frame as Bybit frames them: a whole-book ``snapshot`` (a new ``u``, as Bybit re-sends
  one), then ``delta`` frames with ``u`` + 1 each, made by the simulator's own book engine
  (``BookFrames``): each update carries a Poisson number of the engine's add, cancel and
  resize events (mean ``events``), so its changed levels, its deletions (size ``"0"``) and
  the levels entering the top N are those of the simulator's real-paced stream. They are
  the stream's own updates: ``seq`` and ``cts`` from the engine, every state in ground
  truth, and the stream goes on from the last of them once the push is done (its regular
  pushes wait meanwhile). A client must be subscribed before it starts: the frames go to
  the subscribers of that moment, who hold the state they continue.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from bybit_sim.codec import dumps, now_ms
from bybit_sim.connection import WsConnection
from bybit_sim.frames import MAX_TRADES_PER_FRAME
from bybit_sim.market import MarketHub, SymbolMarket
from bybit_sim.orderbook import BookStream, churn, poisson, snapshot_update
from bybit_sim.tasks import cancel_and_wait
from bybit_sim.topics import BOOK_PUSH_MS
from bybit_sim.truth import TruthTrade

FIREHOSE_CATEGORIES = ("linear", "inverse", "spot")
_YIELD_EVERY_FRAMES = 64  # generating a million trades must not starve pongs and REST


@dataclass(slots=True, kw_only=True)
class _Status:
    """What every firehose reports, whatever it pushes: ``state`` idle, waiting (for a
    subscriber), generating, pushing, done or failed."""

    state: str = "idle"
    subscribers: int = 0
    generate_seconds: float = 0.0
    push_seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def running(self) -> bool:
        return self.state in ("waiting", "generating", "pushing")


S = TypeVar("S", bound=_Status)


@dataclass(slots=True, kw_only=True)
class FirehoseStatus(_Status):
    """Progress of the current (or last) trade firehose."""

    category: str = ""
    symbol: str = ""
    trades: int = 0
    batch: int = 0
    frames: int = 0
    frames_sent: int = 0
    trades_sent: int = 0


@dataclass(slots=True, kw_only=True)
class BookFirehoseStatus(_Status):
    """Progress of the current (or last) book firehose. ``first_u``..``last_u``: the
    updates made; ``levels``: changed levels in its deltas; ``frame_bytes``: the frames'
    bytes."""

    category: str = ""
    symbol: str = ""
    depth: int = 0
    updates: int = 0
    events: float = 0.0
    first_u: int | None = None
    last_u: int | None = None
    updates_sent: int = 0
    levels: int = 0
    frame_bytes: int = 0


@contextmanager
def _phase(status: _Status, state: str) -> Iterator[None]:
    """``status`` is in ``state`` meanwhile; its seconds go to ``generate_seconds`` or
    ``push_seconds``."""
    status.state = state
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    if state == "generating":
        status.generate_seconds = seconds
    else:
        status.push_seconds = seconds


async def _reported(status: S, work: Callable[[], Awaitable[None]]) -> S:
    """Run ``work``; ``status`` ends done, or failed with the error (never raised)."""
    try:
        await work()
        status.state = "done"
    except Exception as exc:
        status.state = "failed"
        status.error = f"{type(exc).__name__}: {exc}"
    return status


async def _wait_subscriber(hub: MarketHub, category: str, topic: str, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not hub.subscribers(category, topic):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody subscribed {topic} within {timeout}s")
        await asyncio.sleep(0.02)


async def _push_frame(status: _Status, conns: list[WsConnection], frame: bytes, topic: str) -> None:
    """One frame to each of ``conns`` in turn, each as soon as its socket takes it."""
    status.subscribers = len(conns)
    for conn in conns:
        await conn.send_paced(frame, topic)


class _Job(Generic[S]):
    """One background run at a time: its status, its task."""

    def __init__(self, status: S) -> None:
        self.status = status
        self._task: asyncio.Task[S] | None = None

    def _launch(self, status: S, work: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[S]:
        self.status = status
        self._task = asyncio.get_running_loop().create_task(_reported(status, work), name=name)
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            await cancel_and_wait(task)
            self.status.state = "failed"
            self.status.error = "simulator stopped"


def _symbol_market(hub: MarketHub, category: str, symbol: str) -> SymbolMarket:
    if category not in FIREHOSE_CATEGORIES:
        raise ValueError(f"category must be one of {FIREHOSE_CATEGORIES}")
    market = hub.ensure_market(category, symbol)
    if not isinstance(market, SymbolMarket):
        raise ValueError(f"unknown market {category}/{symbol}")
    return market


class Firehose(_Job[FirehoseStatus]):
    """The trade firehose, one at a time per simulator; ``books``: the book firehose."""

    def __init__(self, hub: MarketHub) -> None:
        super().__init__(FirehoseStatus())
        self._hub = hub
        self.books = BookFirehose(hub)

    def start(
        self,
        category: str,
        symbol: str,
        trades: int,
        batch: int = MAX_TRADES_PER_FRAME,
        wait_subscriber_s: float = 10.0,
    ) -> asyncio.Task[FirehoseStatus]:
        """``trades`` new trades in frames of ``batch``, as fast as the clients drain them,
        once ``publicTrade.<symbol>`` has a subscriber (waiting ``wait_subscriber_s`` at
        most); every trade goes to ground truth.

        Checks the request, then runs it in the background: await the task for the final
        status. ``ValueError`` if refused."""
        if self.status.running:
            raise ValueError("a firehose is already running")
        if trades < 1:
            raise ValueError("trades must be at least 1")
        if not 1 <= batch <= MAX_TRADES_PER_FRAME:
            raise ValueError(f"batch must be within 1..{MAX_TRADES_PER_FRAME}")
        market = _symbol_market(self._hub, category, symbol)
        return self._launch(
            FirehoseStatus(
                category=category, symbol=symbol, trades=trades, batch=batch, state="generating"
            ),
            lambda: self._run(market, wait_subscriber_s),
            f"firehose-{category}-{symbol}",
        )

    async def stop(self) -> None:
        await self.books.stop()
        await super().stop()

    async def _run(self, market: SymbolMarket, wait_subscriber_s: float) -> None:
        status = self.status
        with _phase(status, "generating"):
            frames = await self._generate(market, status.trades, status.batch)
            status.frames = len(frames)
        topic = f"publicTrade.{market.key}"
        await _wait_subscriber(self._hub, market.category, topic, wait_subscriber_s)
        with _phase(status, "pushing"):
            await self._push(market, frames, topic)

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

    async def _push(
        self, market: SymbolMarket, frames: list[tuple[list[TruthTrade], bytes]], topic: str
    ) -> None:
        status = self.status
        frames.reverse()  # pop from the end: sent frames are freed as we go
        while frames:
            trades, frame = frames.pop()
            market.record_trades(trades)
            await _push_frame(
                status, list(self._hub.subscribers(market.category, topic)), frame, topic
            )
            status.frames_sent += 1
            status.trades_sent += len(trades)


# ---------------------------------------------------------------------------- order books


def default_book_events(rate: float, category: str, depth: int) -> float:
    """Mean engine events per update at the simulator's pace: ``rate`` events/s over
    Bybit's push interval of that depth (depth 200: 100 ms)."""
    return rate * BOOK_PUSH_MS[category][depth] / 1000


class BookFrames:
    """Updates of one book stream, made one after another by the engine, as encoded frames.

    Each update first applies a Poisson number (mean ``events``) of the engine's events at
    once (``orderbook.churn``), until the stream's top N changed, then takes the stream's
    own next frame: ``BookStream.push`` (a ``delta`` of the changed levels, ``u`` + 1), or
    ``snapshot_update`` (the whole top N under the next ``u``). Works without a running
    simulator (the bench makes the same frames in its own process).
    """

    def __init__(self, stream: BookStream, events: float, rng: random.Random) -> None:
        if not events > 0:
            raise ValueError("events must be positive")
        self.stream = stream
        self.events = events
        self._rng = rng
        #: changed levels sent in deltas so far
        self.levels = 0

    def _churn(self, ts: int) -> None:
        churn(self.stream.full, poisson(self._rng, self.events), ts)

    def snapshot(self, ts: int) -> bytes:
        self._churn(ts)
        return dumps(snapshot_update(self.stream, ts))

    def delta(self, ts: int) -> bytes:
        while True:
            self._churn(ts)
            frame = self.stream.push(ts)
            if frame is not None:  # else the events all fell below the top N: more
                break
        data = frame["data"]
        self.levels += len(data["b"]) + len(data["a"])
        return dumps(frame)

    def make(self, n: int, clock: Callable[[], int] = now_ms) -> list[bytes]:
        """``n`` frames: a snapshot, then deltas, each stamped ``clock()`` when made."""
        return [self.snapshot(clock()), *(self.delta(clock()) for _ in range(n - 1))]


class BookFirehose(_Job[BookFirehoseStatus]):
    """The book firehose, one at a time per simulator (see the module docstring)."""

    def __init__(self, hub: MarketHub) -> None:
        super().__init__(BookFirehoseStatus())
        self._hub = hub

    def start(
        self,
        category: str,
        symbol: str,
        updates: int,
        depth: int = 200,
        events: float | None = None,
        wait_subscriber_s: float = 10.0,
    ) -> asyncio.Task[BookFirehoseStatus]:
        """Check the request, then run it in the background; ``ValueError`` if refused.

        ``events``: mean engine events per update (default: ``default_book_events``)."""
        if self.status.running:
            raise ValueError("a book firehose is already running")
        if updates < 1:
            raise ValueError("updates must be at least 1")
        market = _symbol_market(self._hub, category, symbol)
        if depth not in BOOK_PUSH_MS[category]:
            raise ValueError(f"depth must be one of {sorted(BOOK_PUSH_MS[category])}")
        if events is None:
            events = default_book_events(self._hub.cfg.book_update_rate, category, depth)
        stream = market.book(symbol, depth)
        assert stream is not None  # a symbol market has a book of its own symbol
        frames = BookFrames(stream, events, self._hub.rng_for(category, symbol, "book-firehose"))
        return self._launch(
            BookFirehoseStatus(
                category=category,
                symbol=symbol,
                depth=depth,
                updates=updates,
                events=events,
                state="waiting",
            ),
            lambda: self._run(market, frames, wait_subscriber_s),
            f"book-firehose-{category}-{symbol}-{depth}",
        )

    async def _run(self, market: SymbolMarket, frames: BookFrames, wait_s: float) -> None:
        status, stream = self.status, frames.stream
        await _wait_subscriber(self._hub, status.category, stream.topic, wait_s)
        # the frames continue the state these subscribers hold
        conns = list(self._hub.subscribers(status.category, stream.topic))
        stream.next_push = math.inf  # the stream's own pushes wait until the push is done
        try:
            with _phase(status, "generating"):
                made = await self._generate(frames, status.updates)
            with _phase(status, "pushing"):
                await self._push(made, conns, stream.topic)
        finally:
            stream.next_push = asyncio.get_running_loop().time() + stream.interval_s
            market.poke()

    async def _generate(self, frames: BookFrames, n: int) -> list[bytes]:
        status = self.status
        made = [frames.snapshot(now_ms())]
        status.first_u = frames.stream.u
        while len(made) < n:
            made.append(frames.delta(now_ms()))
            if len(made) % _YIELD_EVERY_FRAMES == 0:
                await asyncio.sleep(0)
        status.last_u = frames.stream.u
        status.levels = frames.levels
        status.frame_bytes = sum(map(len, made))
        return made

    async def _push(self, made: list[bytes], conns: list[WsConnection], topic: str) -> None:
        status = self.status
        made.reverse()  # pop from the end: sent frames are freed as we go
        while made:
            await _push_frame(status, [c for c in conns if not c.closed], made.pop(), topic)
            status.updates_sent += 1
