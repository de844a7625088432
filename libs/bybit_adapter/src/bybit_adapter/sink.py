"""What a stream hands its records to: the one interface between a stream and storage."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bybit_adapter.outages import Outage
from bybit_records import Record, RejectedFrame


class StreamSink(Protocol):
    """Receives everything a stream produces, on the event loop, without blocking."""

    def records(self, records: Sequence[Record]) -> None:
        """The records of one frame (all of one type)."""

    def outage(self, outage: Outage) -> None:
        """An outage that ended (or was still open when the stream stopped)."""

    def rejected(self, frame: RejectedFrame) -> None:
        """A frame, or a subscription, that could not become records."""

    @property
    def ready(self) -> bool:
        """There is room for more: the stream may read the next frame."""

    async def wait_ready(self) -> None:
        """Until there is room again (back-pressure: the socket is not read meanwhile)."""


class ConnectionState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(slots=True)
class StreamStats:
    """Counters of one stream, for the health line and the metrics."""

    frames: int = 0
    data_frames: int = 0
    rejected_frames: int = 0
    handler_errors: int = 0
    outages: int = 0
    #: order books found broken (a lost update, crossed, a restart): each a gaps row
    book_gaps: int = 0
    pings_sent: int = 0
    pongs: int = 0
    #: connections lost, by cause
    losses: dict[str, int] = field(default_factory=dict)
    last_data_received_ns: int | None = None
