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


class OutageCause(StrEnum):
    """What happened to a stream that delivered nothing for a while.

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
