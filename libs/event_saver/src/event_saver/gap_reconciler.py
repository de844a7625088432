"""Fill outages from REST and record every gap, recovered or not."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from bybit_adapter import BybitRestClient, BybitRestError, Outage
from event_saver.context import AccountContext
from event_saver.db_worker import DatabaseWorker
from event_saver.public_collector import PublicOutage
from event_saver.rows import execution_row, order_row, position_row, trade_row, wallet_row
from event_saver.writers import table
from grid_db.writes import insert_ignore, insert_rows

_log = logging.getLogger("event_saver.gaps")

# Bybit's recent-trade endpoint returns at most this many trades, newest first,
# with no time filter: it is the whole reach of a public backfill.
RECENT_TRADE_LIMIT = {"spot": 60}
DEFAULT_RECENT_TRADE_LIMIT = 1000
# Private windows are on the local clock; widen them to absorb clock skew.
PRIVATE_WINDOW_MARGIN_MS = 60_000


@dataclass(frozen=True, slots=True)
class GapRecord:
    stream: str
    category: str | None
    symbol: str | None
    start_ts_ms: int
    end_ts_ms: int
    cause: str
    fill_status: str
    rows_recovered: int
    recovered_from_ts_ms: int | None = None
    detail: str | None = None


@dataclass(slots=True)
class ReconcilerStats:
    #: trade and execution gaps by fill status
    gaps: Counter[str] = field(default_factory=Counter)
    #: ticker gaps: always unfillable, Bybit keeps no ticker history
    ticker_gaps: int = 0
    rows_recovered: int = 0
    outages_handled: int = 0

    @property
    def gaps_detected(self) -> int:
        return sum(self.gaps.values())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class GapReconciler:
    """Handles outages one at a time on its own task, so REST is never stormed.

    Public: fetch the newest trades per symbol and insert those inside the
    outage window (duplicates ignored). ``filled`` when the REST list reaches
    back past the window start, ``partial`` when it does not (Bybit keeps the
    last 1000 trades, 60 on spot), ``unfillable`` when REST failed. Tickers
    have no history, so their gap is recorded ``unfillable``.

    Private: page through executions and order history for the window
    (complete), then refresh positions, wallet and open orders, since private
    streams send no snapshot.
    """

    def __init__(
        self,
        rest: BybitRestClient,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        *,
        account: AccountContext | None = None,
        delay: float = 0.5,
        recent_trade_limit: int | None = None,
        record_ticker_gaps: bool = True,
    ) -> None:
        self._rest = rest
        self._engine = engine
        self._worker = worker
        self._run_id = run_id
        self._account = account
        self._delay = delay
        self._limit_override = recent_trade_limit
        self._record_ticker_gaps = record_ticker_gaps
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = ReconcilerStats()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gap-reconciler")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Finish queued work for a while, then stop; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_idle(), drain_timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait_idle(self) -> None:
        """Until every submitted outage has been reconciled and recorded."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (1 if self._busy else 0)

    def submit_public(self, outage: PublicOutage) -> None:
        self._submit(lambda: self.reconcile_public(outage))

    def submit_private(self, outage: Outage) -> None:
        self._submit(lambda: self.reconcile_private(outage))

    def _submit(self, job: Callable[[], Awaitable[object]]) -> None:
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

    def _limit(self, category: str) -> int:
        if self._limit_override is not None:
            return self._limit_override
        return RECENT_TRADE_LIMIT.get(category, DEFAULT_RECENT_TRADE_LIMIT)

    async def reconcile_public(self, outage: PublicOutage) -> list[GapRecord]:
        category = outage.outage.category or "linear"
        cause = outage.outage.cause
        end_ms = outage.end_ms
        records: list[GapRecord] = []
        self.stats.outages_handled += 1
        for symbol, start_ms in outage.window_start_ms.items():
            records.append(
                await self._fill_trades(
                    category,
                    symbol,
                    start_ms,
                    end_ms,
                    cause,
                    outage.first_trade_after_ms.get(symbol),
                )
            )
            if self._record_ticker_gaps:
                records.append(
                    GapRecord(
                        "tickers",
                        category,
                        symbol,
                        outage.outage.last_exchange_ts_ms or start_ms,
                        end_ms,
                        cause,
                        "unfillable",
                        0,
                        detail="Bybit keeps no ticker history",
                    )
                )
        await self._store(records)
        return records

    async def _fill_trades(
        self,
        category: str,
        symbol: str,
        start_ms: int,
        end_ms: int,
        cause: str,
        first_live_ms: int | None = None,
    ) -> GapRecord:
        limit = self._limit(category)
        try:
            trades = await self._rest.recent_trades(category, symbol, limit)
        except BybitRestError as exc:
            record = GapRecord(
                "publicTrade",
                category,
                symbol,
                start_ms,
                end_ms,
                cause,
                "unfillable",
                0,
                detail=f"REST backfill failed: {exc}"[:500],
            )
            self._log_gap(record)
            return record
        # Bounded by the symbol's first live trade, not by the outage's end: a
        # topic subscribed in a later request goes live later than that.
        after_start = [
            t
            for t in trades
            if t.trade_time_ms >= start_ms
            and (first_live_ms is None or t.trade_time_ms <= first_live_ms)
        ]
        to_row = trade_row(self._run_id)
        inserted = await self._insert_ignore("public_trades", [to_row(t) for t in after_start])
        oldest = min((t.trade_time_ms for t in trades), default=None)
        reached_back = (
            oldest is None or oldest < start_ms or (oldest == start_ms and len(trades) < limit)
        )
        if reached_back:
            record = GapRecord(
                "publicTrade", category, symbol, start_ms, end_ms, cause, "filled", inserted
            )
        else:
            assert oldest is not None
            # What is missing ends where REST begins, or where the symbol's
            # trades flowed again on the new connection.
            unrecovered_until = oldest if first_live_ms is None else min(oldest, first_live_ms)
            end_ms = max(end_ms, unrecovered_until)
            record = GapRecord(
                "publicTrade",
                category,
                symbol,
                start_ms,
                end_ms,
                cause,
                "partial",
                inserted,
                recovered_from_ts_ms=unrecovered_until,
                detail=(
                    f"REST holds only the newest {len(trades)} trades; trades in "
                    f"[{start_ms}, {unrecovered_until}] may be missing"
                ),
            )
        self._log_gap(record)
        return record

    @staticmethod
    def _log_gap(record: GapRecord) -> None:
        """One line per gap: ``gap linear BTCUSDT disconnect: filled, 12 trade(s) ...``."""
        level = logging.WARNING if record.fill_status == "filled" else logging.ERROR
        _log.log(
            level,
            "gap %s %s %s: %s, %d trade(s) recovered over %.1fs%s",
            record.category,
            record.symbol,
            record.cause,
            record.fill_status,
            record.rows_recovered,
            (record.end_ts_ms - record.start_ts_ms) / 1000,
            f" ({record.detail})" if record.detail else "",
        )

    # ---- private ------------------------------------------------------------

    async def reconcile_private(self, outage: Outage) -> list[GapRecord]:
        if self._account is None:
            return []
        lost_ns = outage.last_received_ns or outage.lost_at_ns
        start_ms = lost_ns // 1_000_000 - PRIVATE_WINDOW_MARGIN_MS
        end_ms = _now_ms()
        self.stats.outages_handled += 1
        records = []
        for category in self._account.categories:
            try:
                recovered = await self._recover_private(category, start_ms, end_ms)
            except BybitRestError as exc:
                _log.error("private gap %s: REST recovery failed: %s", category, exc)
                records.append(
                    GapRecord(
                        "execution",
                        category,
                        None,
                        start_ms,
                        end_ms,
                        outage.cause,
                        "unfillable",
                        0,
                        detail=str(exc)[:500],
                    )
                )
                continue
            _log.warning(
                "private gap %s (%s): %d execution(s) recovered", category, outage.cause, recovered
            )
            records.append(
                GapRecord(
                    "execution", category, None, start_ms, end_ms, outage.cause, "filled", recovered
                )
            )
        await self._store(records)
        return records

    async def _recover_private(self, category: str, start_ms: int, end_ms: int) -> int:
        account = self._account
        assert account is not None
        executions = await self._rest.executions(category, start_ms, end_ms)
        rows = [execution_row(self._run_id, account.account_id)(e) for e in executions]
        recovered = await self._insert_ignore("private_executions", rows)
        orders = await self._rest.order_history(category, start_ms, end_ms)
        orders += await self._rest.open_orders(category)
        await self._insert_ignore(
            "orders", [order_row(self._run_id, account.account_id)(o) for o in orders]
        )
        await self.refresh_positions(category)
        return recovered

    async def refresh_private_state(self) -> None:
        """Snapshot positions, wallet and open orders: private streams send none."""
        account = self._account
        if account is None:
            return
        try:
            for category in account.categories:
                await self.refresh_positions(category)
                orders = await self._rest.open_orders(category)
                await self._insert_ignore(
                    "orders", [order_row(self._run_id, account.account_id)(o) for o in orders]
                )
        except BybitRestError as exc:
            _log.error("private state refresh failed: %s", exc)

    async def refresh_positions(self, category: str) -> None:
        account = self._account
        assert account is not None
        positions = await self._rest.positions(category)
        wallets = await self._rest.wallet_balance()
        await self._insert(
            "position_snapshots",
            [position_row(self._run_id, account.account_id)(p) for p in positions],
        )
        await self._insert(
            "wallet_snapshots", [wallet_row(self._run_id, account.account_id)(w) for w in wallets]
        )

    # ---- storage ----------------------------------------------------------------

    async def _insert_ignore(self, name: str, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0

        def write() -> int:
            with self._engine.begin() as conn:
                return insert_ignore(conn, table(name), rows)

        return await self._worker.run(write)

    async def _insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return

        def write() -> None:
            with self._engine.begin() as conn:
                insert_rows(conn, table(name), rows)

        await self._worker.run(write)

    async def _store(self, records: list[GapRecord]) -> None:
        now = _now_ms()
        rows = [
            {
                "run_id": self._run_id,
                "stream": r.stream,
                "category": r.category,
                "symbol": r.symbol,
                "start_ts_ms": r.start_ts_ms,
                "end_ts_ms": r.end_ts_ms,
                "cause": r.cause,
                "fill_status": r.fill_status,
                "rows_recovered": r.rows_recovered,
                "recovered_from_ts_ms": r.recovered_from_ts_ms,
                "detail": r.detail,
                "detected_at_ms": now,
                "resolved_at_ms": now,
            }
            for r in records
        ]
        await self._insert("gaps", rows)
        for record in records:
            if record.stream == "tickers":
                self.stats.ticker_gaps += 1
            else:
                self.stats.gaps[record.fill_status] += 1
            self.stats.rows_recovered += record.rows_recovered
