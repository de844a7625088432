"""One writer per table: which table, how an event becomes a row, whether to dedupe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from bybit_adapter import (
    ExecutionEvent,
    OrderEvent,
    PositionEvent,
    TickerEvent,
    TradeEvent,
    WalletEvent,
)
from event_saver.buffered_writer import BufferedWriter, Row, Values, WriterSettings
from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from event_saver.rows import (
    TICKER_COLUMNS,
    TRADE_COLUMNS,
    execution_row,
    order_row,
    position_row,
    ticker_values,
    trade_values,
    wallet_row,
)
from grid_db.models import Base

E = TypeVar("E")

# Raw frames kept for inspection are cut here so a hostile frame cannot bloat the DB.
MAX_REJECTED_PAYLOAD = 64 * 1024


def table(name: str) -> Table:
    return Base.metadata.tables[name]


class _MarketWriter(BufferedWriter[E]):
    """A writer of public data, tagged with the run.

    The high-volume tables set ``columns`` and build each row as a tuple of their
    values, which goes to the database as one prepared executemany (see
    ``BufferedWriter``); the others build a mapping.
    """

    writer_name: ClassVar[str]
    table_name: ClassVar[str]
    columns: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        to_row = self.row_builder(run_id)
        super().__init__(
            self.writer_name,
            table(self.table_name),
            engine,
            worker,
            to_row,
            settings,
            gate,
            columns=self.columns,
        )

    def row_builder(self, run_id: str | None) -> Callable[[E], Row] | Callable[[E], Values]:
        raise NotImplementedError


class _AccountWriter(BufferedWriter[E]):
    """A writer of private data, tagged with the run and the account."""

    writer_name: ClassVar[str]
    table_name: ClassVar[str]

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        account_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        to_row = self.row_builder(run_id, account_id)
        super().__init__(
            self.writer_name, table(self.table_name), engine, worker, to_row, settings, gate
        )

    def row_builder(self, run_id: str | None, account_id: str | None) -> Callable[[E], Row]:
        raise NotImplementedError


class TradeWriter(_MarketWriter[TradeEvent]):
    writer_name, table_name, dedupe = "trades", "public_trades", True
    columns = TRADE_COLUMNS

    def row_builder(self, run_id: str | None) -> Callable[[TradeEvent], Values]:
        return trade_values(run_id)


class TickerWriter(_MarketWriter[TickerEvent]):
    writer_name, table_name = "tickers", "ticker_snapshots"
    columns = TICKER_COLUMNS

    def row_builder(self, run_id: str | None) -> Callable[[TickerEvent], Values]:
        return ticker_values(run_id)


class ExecutionWriter(_AccountWriter[ExecutionEvent]):
    writer_name, table_name, dedupe = "executions", "private_executions", True

    def row_builder(
        self, run_id: str | None, account_id: str | None
    ) -> Callable[[ExecutionEvent], Row]:
        return execution_row(run_id, account_id)


class OrderWriter(_AccountWriter[OrderEvent]):
    writer_name, table_name, dedupe = "orders", "orders", True

    def row_builder(
        self, run_id: str | None, account_id: str | None
    ) -> Callable[[OrderEvent], Row]:
        return order_row(run_id, account_id)


class PositionWriter(_AccountWriter[PositionEvent]):
    writer_name, table_name = "positions", "position_snapshots"

    def row_builder(
        self, run_id: str | None, account_id: str | None
    ) -> Callable[[PositionEvent], Row]:
        return position_row(run_id, account_id)


class WalletWriter(_AccountWriter[WalletEvent]):
    writer_name, table_name = "wallet", "wallet_snapshots"

    def row_builder(
        self, run_id: str | None, account_id: str | None
    ) -> Callable[[WalletEvent], Row]:
        return wallet_row(run_id, account_id)


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    stream: str
    reason: str
    payload: str
    received_ns: int


def _rejected_row(run_id: str | None) -> Callable[[RejectedFrame], Row]:
    def row(frame: RejectedFrame) -> Row:
        return {
            "run_id": run_id,
            "stream": frame.stream,
            "received_ts_ms": frame.received_ns // 1_000_000,
            "reason": frame.reason[:1000],
            "payload": frame.payload[:MAX_REJECTED_PAYLOAD],
        }

    return row


class RejectedFrameWriter(_MarketWriter[RejectedFrame]):
    """Keeps frames the normalizer refused, with the reason, for inspection."""

    writer_name, table_name = "rejected", "rejected_frames"

    def row_builder(self, run_id: str | None) -> Callable[[RejectedFrame], Row]:
        return _rejected_row(run_id)

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        settings: WriterSettings | None = None,
    ) -> None:
        # Never gated: a flood of bad frames must not pause good data.
        super().__init__(engine, worker, run_id, settings, None)
