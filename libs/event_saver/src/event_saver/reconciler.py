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

A refill that cannot finish is still a gap row: ``unfillable``, its detail saying why
(REST failed, a bug, or ``NOT_REFILLED``: ``stop`` left it no time). ``stop`` gives the
queue ``drain_timeout`` seconds; then REST waits are cut and rows go to the writers'
buffers, which their own ``stop`` flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

T = TypeVar("T")

_log = logging.getLogger("event_saver.gaps")

# Bybit's recent-trade endpoint returns at most this many trades, newest first, with
# no time filter: it is the whole reach of a public refill.
RECENT_TRADE_LIMIT = {Category.SPOT: 60}
DEFAULT_RECENT_TRADE_LIMIT = 1000
PRIVATE_WINDOW_MARGIN_MS = 60_000
MAX_DETAIL = 500
NOT_REFILLED = "not refilled: the recorder stopped first"


@dataclass(slots=True)
class ReconcilerStats:
    #: trade and execution gaps by fill status
    gaps: Counter[FillStatus] = field(default_factory=Counter)
    #: outages by cause
    causes: Counter[OutageCause] = field(default_factory=Counter)
    #: ticker gaps: always unfillable, Bybit keeps no ticker history
    ticker_gaps: int = 0
    rows_recovered: int = 0
    #: trade and execution gaps left unrefilled because the recorder stopped first
    not_refilled: int = 0
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


class _CutShort(Exception):
    """A refill stopped at the stop deadline."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _trade_gap_end(outage: Outage, first_live_ms: int | None) -> int:
    """Where a symbol's unrefilled trade gap ends: at its first live trade, which may come
    after the outage's end (a topic subscribed in a later request goes live later)."""
    return outage.end_ms if first_live_ms is None else max(outage.end_ms, first_live_ms)


def _private_window(outage: Outage) -> tuple[int, int]:
    """Private windows are on the local clock, so widened at the start for clock skew."""
    return outage.start_ns // 1_000_000 - PRIVATE_WINDOW_MARGIN_MS, _now_ms()


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
        drain_timeout: float = 30.0,
    ) -> None:
        self._rest = rest
        self._drain_timeout = drain_timeout
        self._book_depths = tuple(book_depths)
        self._writers = writers
        self._private_categories = tuple(private_categories)
        self._delay = delay
        self._limit_override = recent_trade_limit
        self._queue: asyncio.Queue[Outage] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: the outage being refilled and recorded
        self._current: Outage | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # Every REST wait runs under this deadline; ``stop`` moves it from never to the
        # end of the drain, so a refill cut short is still recorded, as unfillable.
        self._deadline: float | None = None
        self._rest_waits: set[asyncio.Timeout] = set()
        self.stats = ReconcilerStats()

    async def start(self) -> None:
        if self._task is None and self._deadline is None:
            self._task = asyncio.create_task(self._loop(), name="gap-reconciler")

    async def stop(self) -> None:
        """Refill what is queued until ``drain_timeout`` has passed, then stop; idempotent.

        Every outage is still recorded: one not refilled by then as ``unfillable`` gaps.
        Past the deadline rows go to the writers' buffers (``TableWriter.add_many``), which
        their own ``stop`` flushes: the drain never waits on a failing database.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._deadline = asyncio.get_running_loop().time() + self._drain_timeout
        for wait in self._rest_waits:
            wait.reschedule(self._deadline)
        # A database write begun before the deadline may retry for the writer's own
        # stop_deadline; a write is never cut, so only a hung one meets this bound.
        bound = self._drain_timeout + self._writers[Gap].settings.stop_deadline + 5.0
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(bound):
                    await self.wait_idle()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._record_abandoned()

    async def wait_idle(self) -> None:
        """Until every submitted outage has been refilled and recorded."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (1 if self._current is not None else 0)

    def submit(self, outage: Outage) -> None:
        """Refill and record ``outage`` (public or private) on the reconciler's task."""
        self._idle.clear()
        self._queue.put_nowait(outage)

    async def _loop(self) -> None:
        while True:
            self._current = await self._queue.get()
            try:
                await self._record(await self._reconcile(self._current))
            except Exception:
                _log.exception("recording the gaps of an outage failed unexpectedly")
            self._current = None
            if self._queue.empty():
                self._idle.set()

    def _record_abandoned(self) -> None:
        """Outages the loop was stopped on: their gaps, unfillable, into the gaps buffer.

        Reached only when a database write hung past every deadline; the outage in hand
        may then be recorded twice (once refilled), which says more than not at all.
        """
        outages = [] if self._current is None else [self._current]
        while not self._queue.empty():
            outages.append(self._queue.get_nowait())
        self._current = None
        self._idle.set()
        if not outages:
            return
        _log.error("%d outage(s) not refilled at shutdown: recorded as unfillable", len(outages))
        for outage in outages:
            self._writers[Gap].add_many(self._unrefilled(outage))

    async def _reconcile(self, outage: Outage) -> list[Gap]:
        """The outage's gaps, refilled as far as REST and the stop deadline allow."""
        self.stats.outages_handled += 1
        self.stats.causes[outage.cause] += 1
        try:
            # let REST catch up with the matching engine
            await self._until_stop(asyncio.sleep(self._delay))
        except _CutShort:
            return self._unrefilled(outage)
        if outage.category is None:
            return await self._refill_private(outage)
        return await self._refill_public(outage)

    async def _until_stop(self, call: Awaitable[T]) -> T:
        """Await ``call`` (a REST read or the delay), cut short at the stop deadline.

        Only waits on REST are cut: a database write is never cancelled half-way.
        """
        timeout = asyncio.timeout_at(self._deadline)
        self._rest_waits.add(timeout)
        try:
            async with timeout:
                return await call
        except TimeoutError:
            if timeout.expired():
                raise _CutShort from None
            raise
        finally:
            self._rest_waits.discard(timeout)

    def _past_deadline(self) -> bool:
        deadline = self._deadline
        return deadline is not None and asyncio.get_running_loop().time() >= deadline

    def _unrefilled(self, outage: Outage) -> list[Gap]:
        """Every gap of ``outage``, unfillable: the recorder stopped before its refill."""
        stopped = _CutShort()
        if outage.category is None:
            span = _private_window(outage)
            return [
                self._unfillable(outage, stopped, span, category=c)
                for c in self._private_categories
            ]
        gaps: list[Gap] = []
        for symbol, window in outage.symbols.items():
            span = (window.start_ms, _trade_gap_end(outage, window.first_after_ms))
            gaps.append(self._unfillable(outage, stopped, span, symbol))
            gaps += self._historyless_gaps(outage, symbol, window.start_ms)
        return gaps

    def _unfillable(
        self,
        outage: Outage,
        failure: Exception,
        span: tuple[int, int],
        symbol: str | None = None,
        category: Category | None = None,
    ) -> Gap:
        """The trade gap of ``symbol`` (else the execution gap of ``category``) over
        ``span``, whose refill failed with ``failure``."""
        stream = Topic.EXECUTION if symbol is None else Topic.PUBLIC_TRADE
        detail = self._why_not_refilled(failure)
        return self._gap(
            outage,
            stream,
            symbol,
            *span,
            FillStatus.UNFILLABLE,
            0,
            category=category,
            detail=detail,
        )

    def _why_not_refilled(self, failure: Exception) -> str:
        """A refill's failure as a gap's detail: REST, the stop, or a bug (logged)."""
        if isinstance(failure, BybitRestError):
            return f"REST refill failed: {failure}"
        if isinstance(failure, _CutShort):
            self.stats.not_refilled += 1
            return NOT_REFILLED
        _log.error("gap refill failed unexpectedly", exc_info=failure)
        return f"refill failed unexpectedly: {type(failure).__name__}: {failure}"

    # ---- public -------------------------------------------------------------

    def _limit(self, category: Category) -> int:
        if self._limit_override is not None:
            return self._limit_override
        return RECENT_TRADE_LIMIT.get(category, DEFAULT_RECENT_TRADE_LIMIT)

    async def _refill_public(self, outage: Outage) -> list[Gap]:
        gaps: list[Gap] = []
        for symbol, window in outage.symbols.items():
            try:
                gap = await self._refill_trades(
                    outage, symbol, window.start_ms, window.first_after_ms
                )
            except Exception as exc:  # REST, the stop, or a bug: the gap is still recorded
                span = (window.start_ms, _trade_gap_end(outage, window.first_after_ms))
                gap = self._unfillable(outage, exc, span, symbol)
            gaps += [gap, *self._historyless_gaps(outage, symbol, window.start_ms)]
        return gaps

    def _historyless_gaps(self, outage: Outage, symbol: str, start_ms: int) -> list[Gap]:
        """Tickers and books: Bybit keeps no history of them, so never refilled."""
        books = [self._book_gap(outage, symbol, start_ms, d) for d in self._book_depths]
        return [self._ticker_gap(outage, symbol, start_ms), *books]

    async def _refill_trades(
        self, outage: Outage, symbol: str, start_ms: int, first_live_ms: int | None
    ) -> Gap:
        category = outage.category
        assert category is not None
        end_ms = outage.end_ms
        limit = self._limit(category)
        # Every outcome is a gap of ``symbol``'s trades from ``start_ms``: (end, status, ...)
        gap = functools.partial(self._gap, outage, Topic.PUBLIC_TRADE, symbol, start_ms)
        trades = await self._until_stop(self._rest.recent_trades(category, symbol, limit))
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

    async def _refill_private(self, outage: Outage) -> list[Gap]:
        start_ms, end_ms = _private_window(outage)
        gaps = []
        for category in self._private_categories:
            status, recovered, detail = FillStatus.FILLED, 0, None
            try:
                recovered = await self._refill_executions(category, start_ms, end_ms)
                await self._refill_orders(category, start_ms, end_ms)
            except Exception as exc:  # REST, the stop, or a bug: the gap is still recorded
                status, detail = FillStatus.UNFILLABLE, self._why_not_refilled(exc)
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
        return gaps

    async def _refill_executions(self, category: Category, start_ms: int, end_ms: int) -> int:
        executions = await self._until_stop(self._rest.executions(category, start_ms, end_ms))
        recovered, _ = await self._write(Execution, executions)
        return recovered

    async def _refill_orders(self, category: Category, start_ms: int, end_ms: int) -> None:
        """Orders of the window and open now, then positions and wallet: the private
        streams send no snapshot of them after a reconnect."""
        orders = await self._until_stop(self._rest.order_history(category, start_ms, end_ms))
        orders += await self._until_stop(self._rest.open_orders(category))
        await self._write(Order, orders)
        await self._refresh_positions(category)

    async def refresh_private_state(self) -> None:
        """Read positions, wallet and open orders once: private streams send no snapshot."""
        try:
            for category in self._private_categories:
                await self._refresh_positions(category)
                await self._write(Order, await self._until_stop(self._rest.open_orders(category)))
        except BybitRestError as exc:
            _log.error("private state refresh failed: %s", exc)
        except _CutShort:
            _log.warning("private state refresh cut short: the recorder is stopping")

    async def _refresh_positions(self, category: Category) -> None:
        await self._write(Position, await self._until_stop(self._rest.positions(category)))
        await self._write(Wallet, await self._until_stop(self._rest.wallet_balance()))

    # ---- writing --------------------------------------------------------------

    async def _write(
        self, record: type[Record], records: Sequence[Record]
    ) -> tuple[int, str | None]:
        """Write through the table's writer: (rows new, or all of them if deferred; a note)."""
        if not records:
            return 0, None
        writer = self._writers[record]
        if self._past_deadline():
            writer.add_many(records)  # flushed by the writer's own stop
            return len(records), "written at shutdown: count is an upper bound"
        try:
            return await writer.write_now(records), None
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
        if self._past_deadline():
            self._writers[Gap].add_many(gaps)  # flushed by the writer's own stop
            return
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
