"""Async Bybit V5 client: public and private WebSockets, REST, and a normalizer.

Knows nothing of databases. Endpoints are always constructor arguments.
"""

from bybit_adapter.backoff import Backoff, ConnectionRateLimiter
from bybit_adapter.connection import ConnectionState, ConnectionStats, LossCause, Outage
from bybit_adapter.errors import (
    BybitApiError,
    BybitAuthError,
    BybitError,
    BybitHttpError,
    BybitRestError,
    BybitTransportError,
    FrameRejected,
)
from bybit_adapter.events import (
    ExecutionEvent,
    OrderEvent,
    PositionEvent,
    PrivateEvent,
    TickerEvent,
    TradeEvent,
    WalletEvent,
)
from bybit_adapter.normalizer import BybitNormalizer
from bybit_adapter.private_ws import PrivateWebSocketClient
from bybit_adapter.public_ws import PublicWebSocketClient
from bybit_adapter.rest import BybitRestClient
from bybit_adapter.settings import RestSettings, WebSocketSettings
from bybit_adapter.topics import PRIVATE_TOPICS, public_topics

__all__ = [
    "PRIVATE_TOPICS",
    "Backoff",
    "BybitApiError",
    "BybitAuthError",
    "BybitError",
    "BybitHttpError",
    "BybitNormalizer",
    "BybitRestClient",
    "BybitRestError",
    "BybitTransportError",
    "ConnectionRateLimiter",
    "ConnectionState",
    "ConnectionStats",
    "ExecutionEvent",
    "FrameRejected",
    "LossCause",
    "OrderEvent",
    "Outage",
    "PositionEvent",
    "PrivateEvent",
    "PrivateWebSocketClient",
    "PublicWebSocketClient",
    "RestSettings",
    "TickerEvent",
    "TradeEvent",
    "WalletEvent",
    "WebSocketSettings",
    "public_topics",
]
