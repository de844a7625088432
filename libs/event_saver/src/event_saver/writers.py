"""One writer per table."""

from __future__ import annotations

from dataclasses import dataclass

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
from event_saver.buffered_writer import BufferedWriter, Row, WriterSettings
from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from event_saver.rows import (
    execution_row,
    order_row,
    position_row,
    ticker_row,
    trade_row,
    wallet_row,
)
from grid_db.models import Base

# Raw frames kept for inspection are cut here so a hostile frame cannot bloat the DB.
MAX_REJECTED_PAYLOAD = 64 * 1024


def table(name: str) -> Table:
    return Base.metadata.tables[name]


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    stream: str
    reason: str
    payload: str
    received_ns: int


class TradeWriter(BufferedWriter[TradeEvent]):
    dedupe = True

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "trades", table("public_trades"), engine, worker, trade_row(run_id), settings, gate
        )


class TickerWriter(BufferedWriter[TickerEvent]):
    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "tickers", table("ticker_snapshots"), engine, worker, ticker_row(run_id), settings, gate
        )


class ExecutionWriter(BufferedWriter[ExecutionEvent]):
    dedupe = True

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        account_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "executions",
            table("private_executions"),
            engine,
            worker,
            execution_row(run_id, account_id),
            settings,
            gate,
        )


class OrderWriter(BufferedWriter[OrderEvent]):
    dedupe = True

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        account_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "orders", table("orders"), engine, worker, order_row(run_id, account_id), settings, gate
        )


class PositionWriter(BufferedWriter[PositionEvent]):
    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        account_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "positions",
            table("position_snapshots"),
            engine,
            worker,
            position_row(run_id, account_id),
            settings,
            gate,
        )


class WalletWriter(BufferedWriter[WalletEvent]):
    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        account_id: str | None,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        super().__init__(
            "wallet",
            table("wallet_snapshots"),
            engine,
            worker,
            wallet_row(run_id, account_id),
            settings,
            gate,
        )


class RejectedFrameWriter(BufferedWriter[RejectedFrame]):
    """Keeps frames the normalizer refused, with the reason, for inspection."""

    def __init__(
        self,
        engine: Engine,
        worker: DatabaseWorker,
        run_id: str | None,
        settings: WriterSettings | None = None,
    ) -> None:
        def row(frame: RejectedFrame) -> Row:
            return {
                "run_id": run_id,
                "stream": frame.stream,
                "received_ts_ms": frame.received_ns // 1_000_000,
                "reason": frame.reason[:1000],
                "payload": frame.payload[:MAX_REJECTED_PAYLOAD],
            }

        super().__init__("rejected", table("rejected_frames"), engine, worker, row, settings)
