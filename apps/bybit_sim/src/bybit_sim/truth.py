"""Ground truth: every trade and execution the simulator ever generated, in order.

Order books: per ``(category, symbol, depth)`` stream, the top-N book after every pushed
frame that changed it (see :class:`BookHistory`), bounded in time and count.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from bybit_sim.instruments import book_size_format, fmt

#: a book stream records its full top-N state every this many frames (replay cost bound)
BOOK_CHECKPOINT_EVERY = 200
_COMPACT_MIN = 4096


@dataclass(frozen=True, slots=True)
class TruthTrade:
    """One generated public trade exactly as it was published (strings as on the wire)."""

    category: str
    symbol: str
    trade_id: str
    time_ms: int
    side: str
    price: str
    size: str
    tick_direction: str | None  # ``L``; None on spot where Bybit omits it
    is_block_trade: bool
    seq: int
    is_rpi: bool = False
    option_marks: tuple[str, str, str, str] | None = None  # option mP, iP, mIv, iv

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Levels = list[tuple[str, str]]


class TruthBook(NamedTuple):
    """A stream's top-N book as the simulator pushed it: ``u``, bids (best first), asks."""

    u: int
    bids: Levels
    asks: Levels


class TruthBookUpdate(NamedTuple):
    """One recorded frame of a book stream (no levels): push time, ids, engine time."""

    ts: int
    u: int
    seq: int
    cts: int
    type: str  # "snapshot" | "delta"

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass(slots=True)
class _BookRecord:
    u: int
    seq: int
    cts: int
    kind: str
    full: bool  # bids/asks are the whole top-N state (else the changed levels, 0 = delete)
    bids: dict[int, int]
    asks: dict[int, int]
    checkpoint: int  # absolute index of the full record this one builds on


class BookHistory:
    """The top-N states of one book stream after each frame that changed it.

    Every frame is stored as the changed levels, every :data:`BOOK_CHECKPOINT_EVERY`-th
    (and every snapshot) as the full state, so a lookup replays at most that many deltas.
    Memory is bounded: records older than ``window_ms`` (measured from the newest) or
    beyond ``max_frames`` are dropped, a whole checkpoint segment at a time, always
    keeping enough to answer for any instant inside the window. Depth-1 re-sends with an
    unchanged book (same ``u``, same content) are not recorded: they change nothing.
    """

    def __init__(
        self, category: str, price_scale: int, qty_scale: int, window_ms: int, max_frames: int
    ) -> None:
        self.price_scale = price_scale
        self.qty_scale = qty_scale
        self._size_text = book_size_format(category)
        self.window_ms = window_ms
        self.max_frames = max(1, max_frames)
        self._ts: list[int] = []
        self._recs: list[_BookRecord] = []
        self._start = 0  # first live index in the lists
        self._dropped = 0  # absolute index of list index 0
        self._last_checkpoint = -1  # absolute index

    def __len__(self) -> int:
        return len(self._recs) - self._start

    def record(
        self,
        ts: int,
        u: int,
        seq: int,
        cts: int,
        kind: str,
        state: tuple[dict[int, int], dict[int, int]],
        changes: tuple[dict[int, int], dict[int, int]] | None,
    ) -> None:
        """Record a pushed frame. ``state`` must not be mutated afterwards (it is kept)."""
        n_abs = self._dropped + len(self._recs)
        full = (
            changes is None
            or self._last_checkpoint < 0
            or n_abs - self._last_checkpoint >= BOOK_CHECKPOINT_EVERY
        )
        if full:
            bids, asks = state
            self._last_checkpoint = n_abs
        else:
            assert changes is not None
            bids, asks = changes
        self._ts.append(ts)
        self._recs.append(_BookRecord(u, seq, cts, kind, full, bids, asks, self._last_checkpoint))
        self._trim()

    def _trim(self) -> None:
        newest = self._ts[-1]
        keep_from = len(self._recs) - self.max_frames
        if self._ts[self._start] < newest - self.window_ms:
            # the state at the window's start is the last record at or before it
            keep_from = max(keep_from, bisect.bisect_right(self._ts, newest - self.window_ms) - 1)
        if keep_from <= self._start:
            return
        start = self._recs[keep_from].checkpoint - self._dropped
        if start <= self._start:
            return
        self._start = start
        if self._start >= _COMPACT_MIN and self._start * 2 >= len(self._recs):
            del self._ts[: self._start]
            del self._recs[: self._start]
            self._dropped += self._start
            self._start = 0

    def at(self, ts_ms: int) -> TruthBook | None:
        """The book after the last recorded frame with ``ts <= ts_ms`` (None: none kept)."""
        i = bisect.bisect_right(self._ts, ts_ms) - 1
        if i < self._start:
            return None
        rec = self._recs[i]
        j = rec.checkpoint - self._dropped
        base = self._recs[j]
        bids, asks = dict(base.bids), dict(base.asks)
        for k in range(j + 1, i + 1):
            step = self._recs[k]
            if step.full:
                bids, asks = dict(step.bids), dict(step.asks)
                continue
            _apply(bids, step.bids)
            _apply(asks, step.asks)
        ps, qs, size = self.price_scale, self.qty_scale, self._size_text
        return TruthBook(
            rec.u,
            [(fmt(p, ps), size(bids[p], qs)) for p in sorted(bids, reverse=True)],
            [(fmt(p, ps), size(asks[p], qs)) for p in sorted(asks)],
        )

    def updates(self) -> list[TruthBookUpdate]:
        return [
            TruthBookUpdate(ts, r.u, r.seq, r.cts, r.kind)
            for ts, r in zip(self._ts[self._start :], self._recs[self._start :], strict=True)
        ]


def _apply(book: dict[int, int], changes: dict[int, int]) -> None:
    for price, size in changes.items():
        if size:
            book[price] = size
        else:
            book.pop(price, None)


@dataclass(slots=True)
class _Waiter:
    category: str  # "" waits for executions
    symbol: str
    n: int
    future: asyncio.Future[None]


class GroundTruth:
    """Append-only record of generated data with async waiting helpers.

    Trades are stored per (category, market key). The market key is the symbol, except for
    options where public trades are keyed by base coin (``publicTrade.BTC``); asking for an
    option contract symbol filters the base coin's list.
    """

    def __init__(self, book_window_ms: int = 300_000, book_max_frames: int = 200_000) -> None:
        self._trades: dict[tuple[str, str], list[TruthTrade]] = {}
        self._executions: list[dict[str, Any]] = []
        self._waiters: list[_Waiter] = []
        self._books: dict[tuple[str, str, int], BookHistory] = {}
        self.book_window_ms = book_window_ms
        self.book_max_frames = book_max_frames

    # -- writers ------------------------------------------------------------------------
    def add_trades(self, category: str, key: str, trades: list[TruthTrade]) -> None:
        self._trades.setdefault((category, key), []).extend(trades)
        if self._waiters:
            self._wake(category)

    def add_execution(self, item: dict[str, Any]) -> None:
        self._executions.append(item)
        if self._waiters:
            self._wake("")

    # -- readers ------------------------------------------------------------------------
    def trades(self, category: str, symbol: str) -> list[TruthTrade]:
        """Every trade generated for (category, symbol), oldest first."""
        found = self._trades.get((category, symbol))
        if found is not None:
            return list(found)
        if category == "option" and "-" in symbol:
            base = symbol.split("-", 1)[0]
            return [t for t in self._trades.get((category, base), ()) if t.symbol == symbol]
        return []

    def trade_count(self, category: str, symbol: str) -> int:
        found = self._trades.get((category, symbol))
        if found is not None:
            return len(found)
        return len(self.trades(category, symbol))

    def markets(self) -> list[tuple[str, str]]:
        return sorted(self._trades)

    # -- order books --------------------------------------------------------------------
    def book_history(
        self, category: str, symbol: str, depth: int, price_scale: int, qty_scale: int
    ) -> BookHistory:
        """The history a book stream records into (created on first use)."""
        key = (category, symbol, depth)
        found = self._books.get(key)
        if found is None:
            found = BookHistory(
                category, price_scale, qty_scale, self.book_window_ms, self.book_max_frames
            )
            self._books[key] = found
        return found

    def book_at(self, category: str, symbol: str, depth: int, ts_ms: int) -> TruthBook | None:
        """The ``orderbook.{depth}.{symbol}`` book after its last frame with ``ts <= ts_ms``.

        ``(u, bids, asks)``; levels are ``(price, size)`` strings as on the wire, bids best
        (highest) first, asks best (lowest) first. ``None`` when the stream never pushed
        before ``ts_ms`` or that instant fell out of the kept window.
        """
        history = self._books.get((category, symbol, depth))
        return None if history is None else history.at(ts_ms)

    def book_updates(self, category: str, symbol: str, depth: int) -> list[TruthBookUpdate]:
        """The kept frames of a book stream, oldest first (``ts``, ``u``, ``seq``, ...)."""
        history = self._books.get((category, symbol, depth))
        return [] if history is None else history.updates()

    def book_streams(self) -> list[tuple[str, str, int]]:
        return sorted(self._books)

    def executions(self) -> list[dict[str, Any]]:
        """Every private execution generated (WS ``execution`` items, with ``category``)."""
        return copy.deepcopy(self._executions)

    def execution_count(self) -> int:
        return len(self._executions)

    def executions_view(self) -> list[dict[str, Any]]:
        """The live list (no copy) for internal readers such as REST; do not mutate."""
        return self._executions

    # -- waiting ------------------------------------------------------------------------
    async def wait_for_trades(
        self,
        category: str,
        symbol: str,
        n: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[TruthTrade]:
        """Wait until at least ``n`` trades exist for (category, symbol); TimeoutError else."""
        await self._wait(_Waiter(category, symbol, n, _future()), timeout)
        return self.trades(category, symbol)

    async def wait_for_executions(
        self,
        n: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until at least ``n`` executions exist; TimeoutError else."""
        await self._wait(_Waiter("", "", n, _future()), timeout)
        return self.executions()

    def _count(self, waiter: _Waiter) -> int:
        if not waiter.category:
            return len(self._executions)
        return self.trade_count(waiter.category, waiter.symbol)

    async def _wait(self, waiter: _Waiter, timeout: float) -> None:  # noqa: ASYNC109
        if self._count(waiter) >= waiter.n:
            return
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self, category: str) -> None:
        for waiter in list(self._waiters):
            if waiter.category != category or waiter.future.done():
                continue
            if self._count(waiter) >= waiter.n:
                waiter.future.set_result(None)
                self._waiters.remove(waiter)


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()
