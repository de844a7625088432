"""The recorder's own records: gaps in what it stored, and frames it could not store."""

from __future__ import annotations

from bybit_records.enums import Category, FillStatus, OutageCause, Topic
from bybit_records.record import Record


class Gap(Record, frozen=True, gc=False):
    """A window in which a stream was not (fully) recorded, and what the refill did.

    ``[start_ts_ms, end_ts_ms]`` runs, for one symbol, from the last row stored
    before the outage to the first one after it. ``filled``: REST returned every row
    of the window; ``partial``: rows in ``[start_ts_ms, recovered_from_ts_ms]`` may be
    missing; ``unfillable``: nothing could be recovered.
    """

    stream: Topic
    category: Category | None
    symbol: str | None
    start_ts_ms: int
    end_ts_ms: int
    cause: OutageCause
    fill_status: FillStatus
    rows_recovered: int
    recovered_from_ts_ms: int | None
    detail: str | None
    #: when the outage was noticed (the silence threshold crossed, or the socket lost)
    detected_at_ms: int
    #: when the refill finished and this row was written
    resolved_at_ms: int | None


class RejectedFrame(Record, frozen=True, gc=False):
    """A frame (or a refused subscription) that could not be turned into records."""

    #: the connection it came from: ``public.linear``, ``private`` ...
    stream: str
    received_ts_ms: int
    #: one line: why it was refused
    reason: str
    #: the frame as received, cut at ``MAX_REJECTED_PAYLOAD`` characters
    payload: str


#: a hostile frame must not bloat the database
MAX_REJECTED_PAYLOAD = 64 * 1024
MAX_REJECTED_REASON = 1000
