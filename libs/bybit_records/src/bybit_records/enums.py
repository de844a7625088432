"""The closed vocabularies of recorded data: stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Bybit V5 product type; one public WebSocket per category."""

    LINEAR = "linear"
    SPOT = "spot"
    INVERSE = "inverse"
    OPTION = "option"


class DataSource(StrEnum):
    """Where a row came from: the live WebSocket, or a REST refill after an outage."""

    WS = "ws"
    REST = "rest"


class FrameType(StrEnum):
    """Which ticker frame produced a merged ticker state."""

    SNAPSHOT = "snapshot"
    DELTA = "delta"


class BookKind(StrEnum):
    """What an order book row (``BookUpdate``) holds.

    ``snapshot``: a full book as Bybit sent it (after subscribing, on a service restart,
    and every depth-1 push); ``delta``: the levels that changed since the previous update
    of the same book; ``checkpoint``: a full book the recorder wrote itself after a delta,
    every N updates or M seconds, so that any instant can be rebuilt from the last
    checkpoint or snapshot before it without replaying a day of deltas.
    """

    SNAPSHOT = "snapshot"
    DELTA = "delta"
    CHECKPOINT = "checkpoint"


class FillStatus(StrEnum):
    """How much of an outage's window the REST refill recovered."""

    FILLED = "filled"
    PARTIAL = "partial"
    UNFILLABLE = "unfillable"


class Topic(StrEnum):
    """The stream a gap row is about (Bybit's topic family)."""

    PUBLIC_TRADE = "publicTrade"
    TICKERS = "tickers"
    EXECUTION = "execution"
    #: ``orderbook.{depth}.{symbol}``; the gap's ``detail`` names the depth
    ORDERBOOK = "orderbook"


class OutageCause(StrEnum):
    """What happened to a stream that delivered nothing for a while, or, for an order
    book, why its recorded book could not be trusted for a while.

    The value is stored in ``gaps.cause``. Old databases may also hold ``silence``
    for a per-symbol silence (now ``symbol_silence``'s older name, kept readable).
    """

    #: the socket closed or failed
    DISCONNECT = "disconnect"
    #: a ping went unanswered within the pong timeout
    PONG_TIMEOUT = "pong_timeout"
    #: no data frame for the stall timeout: the recorder replaced the connection
    STALL = "stall"
    #: no data frame for the silence threshold, then data resumed on the same socket
    PAUSE = "pause"
    #: one symbol sent nothing for the silence threshold while the others flowed
    SILENCE = "silence"
    #: a subscribe or auth request was not answered within its bound
    ACK_TIMEOUT = "ack_timeout"
    #: private auth was refused
    AUTH = "auth"
    # Order books (``orderbook.{depth}.{symbol}``): the book's own sequence showed it
    # wrong. Nothing is stored from the break until a new snapshot arrives (the
    # recorder resubscribes); the window runs from the last stored update to it.
    #: a delta's update id ``u`` was not the last one + 1 (an update was lost, repeated
    #: or reordered), or a snapshot repeated the last ``u`` with different levels (a
    #: depth-1 "unchanged" re-send that changed)
    SKIPPED_UPDATE = "skipped_update"
    #: a snapshot with ``u`` = 1 replaced a book: Bybit restarted its book service. The
    #: snapshot is stored; what changed between the last update and it is unknown
    BOOK_RESTART = "book_restart"
    #: after applying a delta the best bid was at or above the best ask: an update was
    #: lost or misapplied
    CROSSED_BOOK = "crossed_book"
    #: a delta arrived before any snapshot of its book (nothing to apply it to)
    DELTA_BEFORE_SNAPSHOT = "delta_before_snapshot"
