"""Async Bybit V5 client: public and private streams, REST, and the decoders.

Knows nothing of databases: frames become ``bybit_records`` records, handed to a
``StreamSink``; outages are found from the data (``OutageTracker``) and handed over
too. Endpoints are always constructor arguments.
"""

from bybit_adapter.backoff import Backoff, ConnectionRateLimiter
from bybit_adapter.book_decoder import BOOK_PREFIX, BookDecoder, book_topic
from bybit_adapter.book_validator import BookAction, BookGap, BookValidator, BookVerdict
from bybit_adapter.decoders import PrivateDecoder, TickerDecoder, TradeDecoder
from bybit_adapter.errors import (
    BybitApiError,
    BybitAuthError,
    BybitError,
    BybitHttpError,
    BybitRestError,
    BybitTransportError,
    FrameRejected,
    redact_server_text,
)
from bybit_adapter.outages import Outage, OutageTracker, SymbolWindow
from bybit_adapter.private_stream import AuthFailure, PrivateStream
from bybit_adapter.public_stream import PublicStream
from bybit_adapter.rest import BybitRestClient
from bybit_adapter.settings import RestSettings, WebSocketSettings
from bybit_adapter.sink import ConnectionState, StreamSink, StreamStats
from bybit_adapter.subscriptions import PRIVATE_TOPICS, public_topics

__all__ = [
    "BOOK_PREFIX",
    "PRIVATE_TOPICS",
    "AuthFailure",
    "Backoff",
    "BookAction",
    "BookDecoder",
    "BookGap",
    "BookValidator",
    "BookVerdict",
    "BybitApiError",
    "BybitAuthError",
    "BybitError",
    "BybitHttpError",
    "BybitRestClient",
    "BybitRestError",
    "BybitTransportError",
    "ConnectionRateLimiter",
    "ConnectionState",
    "FrameRejected",
    "Outage",
    "OutageTracker",
    "PrivateDecoder",
    "PrivateStream",
    "PublicStream",
    "RestSettings",
    "StreamSink",
    "StreamStats",
    "SymbolWindow",
    "TickerDecoder",
    "TradeDecoder",
    "WebSocketSettings",
    "book_topic",
    "public_topics",
    "redact_server_text",
]
