"""The recording pipeline: streams into table writers, outages into REST refills.

Sits between ``bybit_adapter`` (streams, REST) and ``grid_db`` (tables).
``RecordingPipeline`` wires and runs it all; see ``docs/architecture.md``.
"""

from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from event_saver.pipeline import (
    AccountAccess,
    PipelineConfig,
    PipelineHealth,
    RecordingPipeline,
    StreamHealth,
)
from event_saver.reconciler import GapReconciler, ReconcilerStats, Writers
from event_saver.router import RecordRouter
from event_saver.table_writer import TableWriter, WriteDeferred, WriterSettings, WriterStats
from event_saver.ticker_sampler import TickerSampler

__all__ = [
    "AccountAccess",
    "DatabaseWorker",
    "FlowGate",
    "GapReconciler",
    "PipelineConfig",
    "PipelineHealth",
    "ReconcilerStats",
    "RecordRouter",
    "RecordingPipeline",
    "StreamHealth",
    "TableWriter",
    "TickerSampler",
    "WriteDeferred",
    "WriterSettings",
    "WriterStats",
    "Writers",
]
