"""Private account streams: execution, order, position and wallet."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bybit_adapter import (
    BybitAuthError,
    BybitNormalizer,
    ExecutionEvent,
    FrameRejected,
    OrderEvent,
    Outage,
    PositionEvent,
    PrivateWebSocketClient,
    WalletEvent,
    WebSocketSettings,
)
from bybit_adapter.connection import ConnectionState, ConnectionStats
from event_saver.context import AccountContext
from event_saver.flow import FlowGate
from event_saver.log_throttle import ThrottledLog
from event_saver.rows import to_json
from event_saver.writers import RejectedFrame

_log = logging.getLogger("event_saver.private")


class PrivateCollector:
    """Routes private events by type; outages and auth errors go to the owner."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        context: AccountContext,
        *,
        on_execution: Callable[[ExecutionEvent], None],
        on_order: Callable[[OrderEvent], None],
        on_position: Callable[[PositionEvent], None],
        on_wallet: Callable[[WalletEvent], None],
        on_outage: Callable[[Outage], None],
        on_rejected: Callable[[RejectedFrame], None],
        on_auth_error: Callable[[BybitAuthError], None] | None = None,
        settings: WebSocketSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        self.context = context
        self._normalizer = BybitNormalizer()
        self._routes: dict[type, Callable[[Any], None]] = {
            ExecutionEvent: on_execution,
            OrderEvent: on_order,
            PositionEvent: on_position,
            WalletEvent: on_wallet,
        }
        self._on_rejected = on_rejected
        self._throttled = ThrottledLog(_log)
        self.events_received = 0
        self.rejected_frames = 0
        self.client = PrivateWebSocketClient(
            url,
            api_key,
            api_secret,
            on_message=self._on_message,
            on_outage=on_outage,
            on_invalid=self._invalid,
            on_auth_error=on_auth_error,
            settings=settings,
            read_gate=gate,
            logger=logging.getLogger("event_saver.private.ws"),
        )

    async def start(self) -> None:
        await self.client.start()

    async def stop(self) -> None:
        await self.client.stop()

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def authenticated(self) -> bool:
        return self.client.authenticated

    @property
    def connection_stats(self) -> ConnectionStats:
        return self.client.stats

    def _on_message(self, message: dict[str, Any], received_ns: int) -> None:
        try:
            events = self._normalizer.normalize_private(message, received_ns)
        except FrameRejected as exc:
            self._invalid(to_json(message), exc.reason, received_ns)
            return
        for event in events:
            self.events_received += 1
            self._routes[type(event)](event)

    def _invalid(self, payload: str, reason: str, received_ns: int) -> None:
        self.rejected_frames += 1
        self._throttled.warning("private: rejected frame (%s): %.200s", reason, payload)
        self._on_rejected(RejectedFrame("private", reason, payload, received_ns))
