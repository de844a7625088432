"""The public WebSocket client: one connection per category."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from bybit_adapter.connection import (
    InvalidFrameHandler,
    MessageHandler,
    OutageHandler,
    ReadGate,
    ReconnectingWebSocket,
)
from bybit_adapter.events import TradeEvent
from bybit_adapter.normalizer import trades_from_raw
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.topics import CATEGORIES, chunk_topics, topic_named_in_error

SubscriptionErrorHandler = Callable[[str, str], None]
TradesHandler = Callable[[list[TradeEvent], int], None]


class PublicWebSocketClient(ReconnectingWebSocket):
    """Subscribes public topics of one category and keeps them flowing.

    ``url`` may contain ``{category}``. Topics are subscribed in requests of at
    most 10 with unique ``req_id``s, and again on every reconnect. A topic the
    server rejects is reported through ``on_subscription_error`` with Bybit's
    message and dropped, so it is not retried forever.

    With ``on_trades``, ``publicTrade`` frames take a fast path: decoded straight into
    ``TradeEvent``s (``normalizer.trades_from_raw``) and handed to it with their receive
    time instead of going to ``on_message``. A frame the fast path declines goes the
    generic way, so it is still normalized, rejected or routed exactly as before.
    """

    def __init__(
        self,
        url: str,
        topics: Sequence[str],
        *,
        on_message: MessageHandler,
        category: str = "linear",
        on_outage: OutageHandler | None = None,
        on_invalid: InvalidFrameHandler | None = None,
        on_subscription_error: SubscriptionErrorHandler | None = None,
        settings: WebSocketSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        logger: logging.Logger | None = None,
        read_gate: ReadGate | None = None,
        on_loss: Callable[[str], None] | None = None,
        on_trades: TradesHandler | None = None,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        super().__init__(
            url.format(category=category),
            stream=f"public.{category}",
            category=category,
            on_message=on_message,
            on_outage=on_outage,
            on_invalid=on_invalid,
            settings=settings,
            session=session,
            logger=logger,
            read_gate=read_gate,
            on_loss=on_loss,
        )
        self._topics = list(dict.fromkeys(topics))
        self._rejected: dict[str, str] = {}
        self._confirmed: set[str] = set()
        self._pending: dict[str, list[str]] = {}
        self._on_subscription_error = on_subscription_error
        self._on_trades = on_trades
        self._category: str = category

    def _handle_frame(self, raw: str | bytes, received_ns: int) -> None:
        handler = self._on_trades
        if handler is not None:
            trades = trades_from_raw(self._category, raw, received_ns)
            if trades is not None:
                self.stats.frames += 1
                self._data_arrived(trades[0].exchange_ts_ms, received_ns)
                try:
                    handler(trades, received_ns)
                except Exception:
                    self.stats.handler_errors += 1
                    self._log.exception("%s: trade frame handler failed", self.stream)
                if self._pending_outage is not None:
                    self._maybe_report_recovery()
                return
        super()._handle_frame(raw, received_ns)

    @property
    def topics(self) -> list[str]:
        """Topics this client keeps subscribed (rejected ones excluded)."""
        return [t for t in self._topics if t not in self._rejected]

    @property
    def rejected_topics(self) -> dict[str, str]:
        return dict(self._rejected)

    @property
    def confirmed_topics(self) -> set[str]:
        return set(self._confirmed)

    async def _on_open(self) -> None:
        self._confirmed.clear()
        self._pending.clear()
        await self._subscribe(self.topics)

    async def _subscribe(self, topics: Sequence[str]) -> None:
        for chunk in chunk_topics(topics):
            req_id = self.next_req_id("sub")
            self._pending[req_id] = chunk
            await self.send_json({"req_id": req_id, "op": "subscribe", "args": chunk})

    def _recovery_complete(self) -> bool:
        # Reconcile only once every topic is live again, so REST covers all
        # trades printed before the subscription took effect.
        return self._got_data and not self._pending

    def _handle_control(self, message: dict[str, Any]) -> None:
        if message.get("type") == "COMMAND_RESP":
            self._option_ack(message)
            return
        if message.get("op") != "subscribe":
            if message.get("success") is False:
                self._log.warning("%s: server error: %s", self.stream, message.get("ret_msg"))
            return
        req_id = message.get("req_id")
        # Spot acks without a req_id carry none; then assume the oldest request.
        if not isinstance(req_id, str) or req_id not in self._pending:
            req_id = next(iter(self._pending), None)
        chunk = self._pending.pop(req_id, []) if req_id is not None else []
        if message.get("success") is True:
            self._confirmed.update(chunk)
        else:
            self._subscription_failed(chunk, str(message.get("ret_msg", "")))
        self.mark_healthy_if_data()

    def _option_ack(self, message: dict[str, Any]) -> None:
        data = message.get("data") or {}
        req_id = message.get("req_id")
        if isinstance(req_id, str):
            self._pending.pop(req_id, None)
        elif self._pending:
            self._pending.pop(next(iter(self._pending)))
        self._confirmed.update(data.get("successTopics") or [])
        for topic in data.get("failTopics") or []:
            self._reject(topic, "subscription refused by the server")
        self.mark_healthy_if_data()

    def _subscription_failed(self, chunk: list[str], ret_msg: str) -> None:
        if "already subscribed" in ret_msg:
            self._confirmed.update(chunk)
            return
        topic = topic_named_in_error(ret_msg)
        if topic is not None and topic in chunk:
            self._reject(topic, ret_msg)
            # The other topics of that request may not have been applied: ask
            # again; "already subscribed" answers count as success.
            retry = [t for t in chunk if t != topic]
            if retry:
                self._spawn_resubscribe(retry)
            return
        for name in chunk:
            self._reject(name, ret_msg)

    def _spawn_resubscribe(self, topics: list[str]) -> None:
        req_id = self.next_req_id("sub")
        self._pending[req_id] = topics
        self.spawn(self.send_json({"req_id": req_id, "op": "subscribe", "args": topics}))

    def _reject(self, topic: str, ret_msg: str) -> None:
        if topic in self._rejected:
            return
        self._rejected[topic] = ret_msg
        self._log.error("%s: topic %s rejected by Bybit: %s", self.stream, topic, ret_msg)
        if self._on_subscription_error is not None:
            try:
                self._on_subscription_error(topic, ret_msg)
            except Exception:
                self._log.exception("%s: subscription-error handler failed", self.stream)

    def mark_healthy_if_data(self) -> None:
        if self._got_data:
            self.mark_healthy()
