"""Public market data: one WebSocket per category, normalized into events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bybit_adapter import (
    BybitNormalizer,
    FrameRejected,
    Outage,
    PublicWebSocketClient,
    TickerEvent,
    TradeEvent,
    WebSocketSettings,
    public_topics,
)
from bybit_adapter.connection import ConnectionState, ConnectionStats
from event_saver.flow import FlowGate
from event_saver.log_throttle import ThrottledLog
from event_saver.rows import to_json
from event_saver.writers import RejectedFrame

_log = logging.getLogger("event_saver.public")
IN_FLIGHT_MARGIN_MS = 5_000


@dataclass(frozen=True, slots=True)
class PublicOutage:
    """A public outage with, per symbol, the exchange time from which trades may be missing.

    That start is the time of the last trade received for the symbol: later
    trades on the same topic cannot have arrived, since a topic is in order.
    """

    outage: Outage
    window_start_ms: dict[str, int]

    @property
    def end_ms(self) -> int:
        first = self.outage.first_exchange_ts_ms
        return first if first is not None else self.outage.recovered_at_ns // 1_000_000


class PublicCollector:
    """Feeds trades and complete ticker states to callbacks; reports outages."""

    def __init__(
        self,
        url: str,
        symbols: Sequence[str],
        *,
        category: str,
        on_trades: Callable[[list[TradeEvent]], None],
        on_ticker: Callable[[TickerEvent], None],
        on_outage: Callable[[PublicOutage], None],
        on_rejected: Callable[[RejectedFrame], None],
        settings: WebSocketSettings | None = None,
        gate: FlowGate | None = None,
    ) -> None:
        self.category = category
        self.symbols = list(dict.fromkeys(symbols))
        self._normalizer = BybitNormalizer()
        self._on_trades = on_trades
        self._on_ticker = on_ticker
        self._on_outage = on_outage
        self._on_rejected = on_rejected
        self._last_trade_ms: dict[str, int] = {}
        self._started_ms = time.time_ns() // 1_000_000
        self.rejected_frames = 0
        self.trades_received = 0
        self.tickers_received = 0
        self._throttled = ThrottledLog(_log)
        self.client = PublicWebSocketClient(
            url,
            public_topics(self.symbols),
            category=category,
            on_message=self._on_message,
            on_outage=self._outage,
            on_invalid=self._invalid,
            on_subscription_error=self._subscription_error,
            settings=settings,
            read_gate=gate,
            logger=logging.getLogger(f"event_saver.public.{category}"),
        )

    async def start(self) -> None:
        await self.client.start()

    async def stop(self) -> None:
        await self.client.stop()

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def connection_stats(self) -> ConnectionStats:
        return self.client.stats

    def last_trade_ms(self, symbol: str) -> int | None:
        return self._last_trade_ms.get(symbol)

    def _on_message(self, message: dict[str, Any], received_ns: int) -> None:
        try:
            events = self._normalizer.normalize_public(self.category, message, received_ns)
        except FrameRejected as exc:
            self._reject(message, exc.reason, received_ns)
            return
        if not events:
            return
        first = events[0]
        if isinstance(first, TradeEvent):
            trades: list[TradeEvent] = events  # type: ignore[assignment]
            last = self._last_trade_ms
            for trade in trades:
                if trade.trade_time_ms > last.get(trade.symbol, -1):
                    last[trade.symbol] = trade.trade_time_ms
            self.trades_received += len(trades)
            self._on_trades(trades)
        else:
            for ticker in events:
                self.tickers_received += 1
                self._on_ticker(ticker)  # type: ignore[arg-type]

    def _reject(self, message: Any, reason: str, received_ns: int) -> None:
        payload = message if isinstance(message, str) else to_json(message)
        self._invalid(payload, reason, received_ns)

    def _invalid(self, payload: str, reason: str, received_ns: int) -> None:
        self.rejected_frames += 1
        self._throttled.warning(
            "%s: rejected frame (%s): %.200s", self.client.stream, reason, payload
        )
        self._on_rejected(RejectedFrame(self.client.stream, reason, payload, received_ns))

    def _subscription_error(self, topic: str, message: str) -> None:
        self._on_rejected(
            RejectedFrame(
                self.client.stream, f"subscription refused: {message}", topic, time.time_ns()
            )
        )

    def _outage(self, outage: Outage) -> None:
        # A symbol with no trade seen yet: a trade printed shortly before the
        # last frame of another topic may still have been in flight.
        last = outage.last_exchange_ts_ms
        fallback = self._started_ms if last is None else last - IN_FLIGHT_MARGIN_MS
        windows = {s: self._last_trade_ms.get(s, fallback) for s in self.symbols}
        # Ticker state restarts from the fresh snapshot sent after resubscribing.
        self._on_outage(PublicOutage(outage, windows))
