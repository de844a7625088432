"""Collectors, buffered writers and REST gap reconciliation.

Sits between ``bybit_adapter`` (events) and ``grid_db`` (tables).
"""

from event_saver.buffered_writer import BufferedWriter, WriterSettings, WriterStats
from event_saver.context import AccountContext
from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from event_saver.gap_reconciler import GapReconciler, GapRecord, ReconcilerStats
from event_saver.private_collector import PrivateCollector
from event_saver.public_collector import PublicCollector, PublicOutage
from event_saver.writers import (
    ExecutionWriter,
    OrderWriter,
    PositionWriter,
    RejectedFrame,
    RejectedFrameWriter,
    TickerWriter,
    TradeWriter,
    WalletWriter,
)

__all__ = [
    "AccountContext",
    "BufferedWriter",
    "DatabaseWorker",
    "ExecutionWriter",
    "FlowGate",
    "GapReconciler",
    "GapRecord",
    "OrderWriter",
    "PositionWriter",
    "PrivateCollector",
    "PublicCollector",
    "PublicOutage",
    "ReconcilerStats",
    "RejectedFrame",
    "RejectedFrameWriter",
    "TickerWriter",
    "TradeWriter",
    "WalletWriter",
    "WriterSettings",
    "WriterStats",
]
