"""One recording pipeline: streams → router → table writers → database, and the reconciler.

``RecordingPipeline`` is what the recorder app, the integration tests and the bench
all run. It owns the order of start and stop, kept in one ``AsyncExitStack``::

    start:  database worker → table writers → REST client → reconciler → streams
    stop:   streams (their open outages go to the reconciler) → reconciler (refills
            drain) → REST client → table writers (everything flushed) → worker

so nothing is stopped while something started after it still needs it, and a
failed start unwinds exactly what had started.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from bybit_adapter import (
    BookValidator,
    BybitRestClient,
    PrivateStream,
    PublicStream,
    RestSettings,
    StreamStats,
    WebSocketSettings,
)
from bybit_adapter.lifecycle import StartStop
from bybit_adapter.sink import ConnectionState
from bybit_adapter.subscriptions import public_topics
from bybit_records import BookUpdate, Category, Record
from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from event_saver.reconciler import GapReconciler, ReconcilerStats, Writers
from event_saver.router import RecordRouter
from event_saver.table_writer import TableWriter, WriterSettings, WriterStats
from event_saver.ticker_sampler import TickerSampler
from grid_db import RecordTable, RowContext, RunRepository, tables

_PUBLIC_TABLES = (tables.public_trades, tables.ticker_snapshots)
_PRIVATE_TABLES = (
    tables.private_executions,
    tables.orders,
    tables.position_snapshots,
    tables.wallet_snapshots,
)
#: never gated: a flood of bad frames, or a burst of gaps, must not pause good data
_LEDGER_TABLES = (tables.rejected_frames, tables.gaps)
#: the writers' names in the health line and the metrics
WRITER_NAMES = {
    tables.public_trades.name: "trades",
    tables.ticker_snapshots.name: "tickers",
    tables.orderbook_updates.name: "books",
    tables.rejected_frames.name: "rejected",
    tables.gaps.name: "gaps",
    tables.private_executions.name: "executions",
    tables.orders.name: "orders",
    tables.position_snapshots.name: "positions",
    tables.wallet_snapshots.name: "wallet",
}
_PRIVATE_SETTINGS = WebSocketSettings(silence_timeout=None, stall_timeout=None)


def book_update_weight(update: BookUpdate) -> int:
    """A book update's share of a writer's ``max_buffer``, in trade rows.

    In memory a level (a tuple of two strings) takes about a third of a decoded trade
    (tracemalloc: 194 B against 562 B for a trade with strings of its own). A delta of 17
    levels weighs 6 rows, a checkpoint of orderbook.200 (400 levels) 134: the bound holds
    about as much memory of books as of trades. Counted one row each, 100,000 deltas of
    17 levels held ~370 MB before back-pressure paused the reads.
    """
    return 1 + (len(update.bids) + len(update.asks)) // 3


@dataclass(frozen=True, slots=True)
class AccountAccess:
    """The private stream: its endpoint, the key pair, and whose account it records."""

    private_ws_url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    account_id: str
    settings: WebSocketSettings = _PRIVATE_SETTINGS


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    category: Category
    symbols: tuple[str, ...]
    public_ws_url: str
    rest_url: str
    run_id: str | None = None
    public: WebSocketSettings = field(default_factory=WebSocketSettings)
    rest: RestSettings = field(default_factory=RestSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    account: AccountAccess | None = None
    #: seconds a refill waits before asking REST, so REST has caught up with the stream
    reconcile_delay: float = 0.5
    #: at stop, seconds left to refill the outages queued; those not refilled by then
    #: are recorded as unfillable gaps
    refill_drain_timeout: float = 30.0
    #: REST's recent-trade reach (Bybit: 1000, spot 60); tests make it smaller
    recent_trade_limit: int | None = None
    #: keep at most one ticker state per this many ms of exchange time per symbol
    #: (``event_saver.ticker_sampler``); 0 keeps every push
    ticker_min_interval_ms: int = 0
    #: the order-book depths recorded for every symbol (``orderbook.{depth}.{symbol}``)
    book_depths: tuple[int, ...] = ()
    #: a checkpoint (the whole book) after this many deltas, or this much exchange time,
    #: since a book's last full state; None: never by that measure
    book_checkpoint_every_updates: int | None = 1000
    book_checkpoint_every_ms: int | None = 60_000


@dataclass(frozen=True, slots=True)
class StreamHealth:
    name: str
    state: ConnectionState
    reconnects: int
    stats: StreamStats
    auth_failures: int = 0


@dataclass(frozen=True, slots=True)
class PipelineHealth:
    streams: tuple[StreamHealth, ...]
    writers: tuple[WriterStats, ...]
    gaps: ReconcilerStats
    gaps_pending: int
    #: ticker states dropped by sampling; None when every push is kept
    tickers_sampled_out: int | None = None


class RecordingPipeline(StartStop):
    """Records the configured streams into ``engine`` until stopped."""

    def __init__(self, engine: Engine, config: PipelineConfig) -> None:
        self.engine = engine
        self.config = config
        self.gate = FlowGate()
        self.writers: list[TableWriter[Any]] = []
        self.rest: BybitRestClient | None = None
        self.reconciler: GapReconciler | None = None
        self.public: PublicStream | None = None
        self.private: PrivateStream | None = None
        #: None when every ticker push is kept (``ticker_min_interval_ms`` 0)
        self.ticker_sampler = (
            TickerSampler(config.ticker_min_interval_ms) if config.ticker_min_interval_ms else None
        )
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            await self._assemble(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        """Stop reading, let refills finish, flush every writer; idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def writer(self, record: type[Record]) -> TableWriter[Any]:
        return next(w for w in self.writers if w.table.record is record)

    async def _assemble(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        worker = DatabaseWorker()
        stack.push_async_callback(worker.aclose)
        account = config.account
        run_ref = None
        if config.run_id is not None:
            run_id = config.run_id
            run_ref = await worker.run(lambda: RunRepository(self.engine).ref_of(run_id))
        public = RowContext(config.run_id, run_ref=run_ref)
        private = RowContext(config.run_id, account.account_id if account else None, run_ref)
        books = (tables.orderbook_updates,) if config.book_depths else ()
        plan: list[tuple[RecordTable[Any], RowContext, FlowGate | None]] = [
            *((t, public, self.gate) for t in (*_PUBLIC_TABLES, *books)),
            *((t, public, None) for t in _LEDGER_TABLES),
        ]
        if account is not None:
            plan += [(t, private, self.gate) for t in _PRIVATE_TABLES]
        for table, context, gate in plan:
            writer = TableWriter(
                table,
                self.engine,
                worker,
                context,
                config.writer,
                gate,
                name=WRITER_NAMES[table.name],
                weigh=book_update_weight if table is tables.orderbook_updates else None,
            )
            self.writers.append(await stack.enter_async_context(writer))
        self.rest = BybitRestClient(
            config.rest_url,
            account.api_key if account else None,
            account.api_secret if account else None,
            settings=config.rest,
        )
        await stack.enter_async_context(self.rest)
        self.reconciler = GapReconciler(
            self.rest,
            Writers(self.writers),
            book_depths=config.book_depths,
            private_categories=(config.category,) if account else (),
            delay=config.reconcile_delay,
            recent_trade_limit=config.recent_trade_limit,
            drain_timeout=config.refill_drain_timeout,
        )
        await self.reconciler.start()
        stack.push_async_callback(self.reconciler.stop)
        router = RecordRouter(
            Writers(self.writers), self.reconciler, self.gate, self.ticker_sampler
        )
        self.public = PublicStream(
            config.public_ws_url,
            config.category,
            config.symbols,
            router,
            settings=config.public,
            topics=public_topics(config.symbols, book_depths=config.book_depths),
            books=BookValidator(
                checkpoint_every_updates=config.book_checkpoint_every_updates,
                checkpoint_every_ms=config.book_checkpoint_every_ms,
            ),
        )
        await stack.enter_async_context(self.public)
        if account is not None:
            self.private = PrivateStream(
                account.private_ws_url,
                account.api_key,
                account.api_secret,
                router,
                settings=account.settings,
            )
            await stack.enter_async_context(self.private)
            await self.reconciler.refresh_private_state()

    def health(self) -> PipelineHealth:
        streams = []
        if self.public is not None:
            p = self.public
            streams.append(StreamHealth(p.name, p.state, p.reconnects, p.stats))
        if self.private is not None:
            q = self.private
            streams.append(StreamHealth(q.name, q.state, q.reconnects, q.stats, q.auth_failures))
        reconciler = self.reconciler
        return PipelineHealth(
            streams=tuple(streams),
            writers=tuple(w.stats() for w in self.writers),
            gaps=reconciler.stats if reconciler else ReconcilerStats(),
            gaps_pending=reconciler.pending if reconciler else 0,
            tickers_sampled_out=self.ticker_sampler.sampled_out if self.ticker_sampler else None,
        )
