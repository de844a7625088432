"""Refill outages from REST and record every gap, recovered or not.

One outage at a time on its own task, so REST is never stormed. Refilled records go
through the same table writers as live ones (``TableWriter.write_now``), and every
gap becomes a ``gaps`` row through the gaps writer.

Public: the newest trades per symbol (Bybit's ``recent-trade``, at most 1000, 60 on
spot) are filtered to the symbol's window and written. ``filled`` when the list
reaches back past the window start, ``partial`` when it does not, ``unfillable`` when
REST failed. Tickers have no history: their gap is always ``unfillable``.

Private: executions and order history of the window are paged (complete), then
positions, wallet and open orders are re-read, since private streams send no snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bybit_adapter import BybitRestClient, BybitRestError, Outage
from bybit_records import (
    Category,
    Execution,
    FillStatus,
    Gap,
    Order,
    OutageCause,
    Position,
    Record,
    Topic,
    Trade,
    Wallet,
)
from event_saver.table_writer import TableWriter, WriteDeferred

_log = logging.getLogger("event_saver.gaps")

# Bybit's recent-trade endpoint returns at most this many trades, newest first, with
# no time filter: it is the whole reach of a public refill.
RECENT_TRADE_LIMIT = {Category.SPOT: 60}
DEFAULT_RECENT_TRADE_LIMIT = 1000
# Private windows are on the local clock; widen them to absorb clock skew.
PRIVATE_WINDOW_MARGIN_MS = 60_000
MAX_DETAIL = 500


@dataclass(slots=True)
class ReconcilerStats:
    #: trade and execution gaps by fill status
    gaps: Counter[FillStatus] = field(default_factory=Counter)
    #: outages by cause
    causes: Counter[OutageCause] = field(default_factory=Counter)
    #: ticker gaps: always unfillable, Bybit keeps no ticker history
    ticker_gaps: int = 0
    rows_recovered: int = 0
    outages_handled: int = 0

    @property
    def gaps_detected(self) -> int:
        return sum(self.gaps.values())


class Writers:
    """The table writers a reconciler writes through, by record type."""

    def __init__(self, writers: Sequence[TableWriter[Any]]) -> None:
        self._by_record = {w.table.record: w for w in writers}

    def __getitem__(self, record: type[Record]) -> TableWriter[Any]:
        return self._by_record[record]

    def __contains__(self, record: type[Record]) -> bool:
        return record in self._by_record


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class GapReconciler:
    def __init__(
        self,
        rest: BybitRestClient,
        writers: Writers,
        *,
        private_categories: Sequence[Category] = (),
        delay: float = 0.5,
        recent_trade_limit: int | None = None,
        book_depths: Sequence[int] = (),
    ) -> None:
        self._rest = rest
        self._book_depths = tuple(book_depths)
        self._writers = writers
        self._private_categories = tuple(private_categories)
        self._delay = delay
        self._limit_override = recent_trade_limit
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = ReconcilerStats()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gap-reconciler")

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Finish queued work (for at most ``drain_timeout``), then stop; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(drain_timeout):
                await self.wait_idle()
        except TimeoutError:
            _log.error(
                "gap refills still pending at shutdown: %d outage(s) not recorded", self.pending
            )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait_idle(self) -> None:
        """Until every submitted outage has been refilled and recorded."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (1 if self._busy else 0)

    def submit(self, outage: Outage) -> None:
        """Refill and record ``outage`` (public or private) on the reconciler's task."""
        if outage.category is None:
            self._enqueue(lambda: self.reconcile_private(outage))
        else:
            self._enqueue(lambda: self.reconcile_public(outage))

    def _enqueue(self, job: Callable[[], Awaitable[object]]) -> None:
        self._idle.clear()
        self._queue.put_nowait(job)

    async def _loop(self) -> None:
        while True:
            job = await self._queue.get()
            self._busy = True
            try:
                await asyncio.sleep(self._delay)  # let REST catch up with the matching engine
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("gap reconciliation failed unexpectedly")
            finally:
                self._busy = False
                if self._queue.empty():
                    self._idle.set()

    # ---- public -------------------------------------------------------------

    def _limit(self, category: Category) -> int:
        if self._limit_override is not None:
            return self._limit_override
        return RECENT_TRADE_LIMIT.get(category, DEFAULT_RECENT_TRADE_LIMIT)

    async def reconcile_public(self, outage: Outage) -> list[Gap]:
        assert outage.category is not None
        self.stats.outages_handled += 1
        self.stats.causes[outage.cause] += 1
        gaps: list[Gap] = []
        for symbol, window in outage.symbols.items():
            gaps.append(
                await self._refill_trades(outage, symbol, window.start_ms, window.first_after_ms)
            )
            gaps.append(self._ticker_gap(outage, symbol, window.start_ms))
            gaps += [self._book_gap(outage, symbol, window.start_ms, d) for d in self._book_depths]
        await self._record(gaps)
        return gaps

    async def _refill_trades(
        self, outage: Outage, symbol: str, start_ms: int, first_live_ms: int | None
    ) -> Gap:
        category = outage.category
        assert category is not None
        end_ms = outage.end_ms
        limit = self._limit(category)
        # Every outcome is a gap of ``symbol``'s trades from ``start_ms``: (end, status, ...)
        gap = functools.partial(self._gap, outage, Topic.PUBLIC_TRADE, symbol, start_ms)
        try:
            trades = await self._rest.recent_trades(category, symbol, limit)
        except BybitRestError as exc:
            return gap(end_ms, FillStatus.UNFILLABLE, 0, detail=f"REST refill failed: {exc}")
        # Bounded by the symbol's first live trade, not by the outage's end: a topic
        # subscribed in a later request goes live later than that.
        in_window = [
            t
            for t in trades
            if t.trade_time_ms >= start_ms
            and (first_live_ms is None or t.trade_time_ms <= first_live_ms)
        ]
        recovered, note = await self._write(Trade, in_window)
        oldest = min((t.trade_time_ms for t in trades), default=None)
        reached_back = (
            oldest is None or oldest < start_ms or (oldest == start_ms and len(trades) < limit)
        )
        if reached_back:
            return gap(end_ms, FillStatus.FILLED, recovered, detail=note)
        assert oldest is not None
        # What is missing ends where REST begins, or where the symbol's trades flowed
        # again on the socket.
        unrecovered_until = oldest if first_live_ms is None else min(oldest, first_live_ms)
        return gap(
            max(end_ms, unrecovered_until),
            FillStatus.PARTIAL,
            recovered,
            recovered_from_ts_ms=unrecovered_until,
            detail=(
                f"REST holds only the newest {len(trades)} trades; trades in "
                f"[{start_ms}, {unrecovered_until}] may be missing" + (f"; {note}" if note else "")
            ),
        )

    def _ticker_gap(self, outage: Outage, symbol: str, start_ms: int) -> Gap:
        self.stats.ticker_gaps += 1
        return self._gap(
            outage,
            Topic.TICKERS,
            symbol,
            outage.last_exchange_ts_ms or start_ms,
            outage.end_ms,
            FillStatus.UNFILLABLE,
            0,
            detail="Bybit keeps no ticker history",
            count=False,
        )

    def _book_gap(self, outage: Outage, symbol: str, start_ms: int, depth: int) -> Gap:
        return self._gap(
            outage,
            Topic.ORDERBOOK,
            symbol,
            outage.last_exchange_ts_ms or start_ms,
            outage.end_ms,
            FillStatus.UNFILLABLE,
            0,
            detail=f"orderbook.{depth}.{symbol}: Bybit keeps no book history; the book "
            "restarts from the snapshot after the outage",
            count=False,
        )

    # ---- private ------------------------------------------------------------

    async def reconcile_private(self, outage: Outage) -> list[Gap]:
        self.stats.outages_handled += 1
        self.stats.causes[outage.cause] += 1
        start_ms = outage.start_ns // 1_000_000 - PRIVATE_WINDOW_MARGIN_MS
        end_ms = _now_ms()
        gaps = []
        for category in self._private_categories:
            status, recovered, detail = FillStatus.FILLED, 0, None
            try:
                recovered = await self._refill_private(category, start_ms, end_ms)
            except BybitRestError as exc:
                status, detail = FillStatus.UNFILLABLE, f"REST refill failed: {exc}"
            gaps.append(
                self._gap(
                    outage,
                    Topic.EXECUTION,
                    None,
                    start_ms,
                    end_ms,
                    status,
                    recovered,
                    category=category,
                    detail=detail,
                )
            )
        await self._record(gaps)
        return gaps

    async def _refill_private(self, category: Category, start_ms: int, end_ms: int) -> int:
        recovered, _ = await self._write(
            Execution, await self._rest.executions(category, start_ms, end_ms)
        )
        orders = await self._rest.order_history(category, start_ms, end_ms)
        orders += await self._rest.open_orders(category)
        await self._write(Order, orders)
        await self._refresh_positions(category)
        return recovered

    async def refresh_private_state(self) -> None:
        """Read positions, wallet and open orders once: private streams send no snapshot."""
        try:
            for category in self._private_categories:
                await self._refresh_positions(category)
                await self._write(Order, await self._rest.open_orders(category))
        except BybitRestError as exc:
            _log.error("private state refresh failed: %s", exc)

    async def _refresh_positions(self, category: Category) -> None:
        await self._write(Position, await self._rest.positions(category))
        await self._write(Wallet, await self._rest.wallet_balance())

    # ---- writing --------------------------------------------------------------

    async def _write(
        self, record: type[Record], records: Sequence[Record]
    ) -> tuple[int, str | None]:
        """Write through the table's writer: (rows new, or all of them if deferred; a note)."""
        if not records:
            return 0, None
        try:
            return await self._writers[record].write_now(records), None
        except WriteDeferred as exc:
            _log.error("%s", exc)
            return len(
                records
            ), "the database was unavailable: rows written later, count is an upper bound"

    def _gap(
        self,
        outage: Outage,
        stream: Topic,
        symbol: str | None,
        start_ms: int,
        end_ms: int,
        status: FillStatus,
        recovered: int,
        *,
        category: Category | None = None,
        recovered_from_ts_ms: int | None = None,
        detail: str | None = None,
        count: bool = True,
    ) -> Gap:
        gap = Gap(
            stream=stream,
            category=category or outage.category,
            symbol=symbol,
            start_ts_ms=start_ms,
            end_ts_ms=end_ms,
            cause=outage.cause,
            fill_status=status,
            rows_recovered=recovered,
            recovered_from_ts_ms=recovered_from_ts_ms,
            detail=detail[:MAX_DETAIL] if detail else None,
            detected_at_ms=outage.detected_ns // 1_000_000,
            resolved_at_ms=_now_ms(),
        )
        if count:
            self.stats.gaps[status] += 1
            self.stats.rows_recovered += recovered
            _log_gap(gap)
        return gap

    async def _record(self, gaps: list[Gap]) -> None:
        try:
            await self._writers[Gap].write_now(gaps)
        except WriteDeferred as exc:
            _log.error("%s", exc)


def _log_gap(gap: Gap) -> None:
    """One line per gap: ``gap linear BTCUSDT disconnect: filled, 12 row(s) ...``."""
    level = logging.WARNING if gap.fill_status is FillStatus.FILLED else logging.ERROR
    _log.log(
        level,
        "gap %s %s %s %s: %s, %d row(s) recovered over %.1fs%s",
        gap.stream.value,
        gap.category.value if gap.category else "-",
        gap.symbol or "-",
        gap.cause.value,
        gap.fill_status.value,
        gap.rows_recovered,
        (gap.end_ts_ms - gap.start_ts_ms) / 1000,
        f" ({gap.detail})" if gap.detail else "",
    )
