"""The sink of every stream: records to their table's writer, outages to the reconciler."""

from __future__ import annotations

from collections.abc import Sequence

from bybit_adapter import Outage
from bybit_records import Record, RejectedFrame
from event_saver.flow import FlowGate
from event_saver.reconciler import GapReconciler, Writers


class RecordRouter:
    """A ``bybit_adapter.StreamSink`` writing into the pipeline's table writers.

    Its readiness is the flow gate: closed while any writer's buffer is at its bound,
    so the streams stop reading instead of growing memory.
    """

    def __init__(self, writers: Writers, reconciler: GapReconciler, gate: FlowGate) -> None:
        self._writers = writers
        self._reconciler = reconciler
        self._gate = gate

    def records(self, records: Sequence[Record]) -> None:
        self._writers[type(records[0])].add_many(records)

    def outage(self, outage: Outage) -> None:
        self._reconciler.submit(outage)

    def rejected(self, frame: RejectedFrame) -> None:
        self._writers[RejectedFrame].add(frame)

    @property
    def ready(self) -> bool:
        return self._gate.is_open

    async def wait_ready(self) -> None:
        await self._gate.wait_open()
