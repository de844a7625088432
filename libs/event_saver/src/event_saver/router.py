"""The sink of every stream: records to their table's writer, outages to the reconciler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from bybit_adapter import Outage
from bybit_records import Record, RejectedFrame, Ticker
from event_saver.flow import FlowGate
from event_saver.reconciler import GapReconciler, Writers
from event_saver.ticker_sampler import TickerSampler


class RecordRouter:
    """A ``bybit_adapter.StreamSink`` writing into the pipeline's table writers.

    Its readiness is the flow gate: closed while any writer's buffer is at its bound,
    so the streams stop reading instead of growing memory. With a ``sampler``, ticker
    states it does not keep are dropped here, before their writer.
    """

    def __init__(
        self,
        writers: Writers,
        reconciler: GapReconciler,
        gate: FlowGate,
        sampler: TickerSampler | None = None,
    ) -> None:
        self._writers = writers
        self._reconciler = reconciler
        self._gate = gate
        self._sampler = sampler

    def records(self, records: Sequence[Record]) -> None:
        kind = type(records[0])
        if kind is Ticker and self._sampler is not None:
            records = self._sampler.sample(cast("Sequence[Ticker]", records))
            if not records:
                return
        self._writers[kind].add_many(records)

    def outage(self, outage: Outage) -> None:
        self._reconciler.submit(outage)

    def rejected(self, frame: RejectedFrame) -> None:
        self._writers[RejectedFrame].add(frame)

    @property
    def ready(self) -> bool:
        return self._gate.is_open

    async def wait_ready(self) -> None:
        await self._gate.wait_open()
