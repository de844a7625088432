"""Public market data: one WebSocket per category, normalized into events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from event_saver.silence import Silence, SilenceMonitor
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
    #: the first trade time per symbol on the new connection, once one arrived:
    #: every later trade of that symbol came over the socket, in order
    first_trade_after_ms: dict[str, int] = field(default_factory=dict)

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
        silence_threshold: float | None = None,
    ) -> None:
        self.category = category
        self.symbols = list(dict.fromkeys(symbols))
        self._normalizer = BybitNormalizer()
        self._on_trades = on_trades
        self._on_ticker = on_ticker
        self._on_outage = on_outage
        self._on_rejected = on_rejected
        self._last_trade_ms: dict[str, int] = {}
        # _last_trade_ms as it was when the connection was lost: the gap starts there.
        self._last_trade_at_loss: dict[str, int] | None = None
        # Shared with the PublicOutage reported for the current connection.
        self._first_trade_after_loss: dict[str, int] = {}
        self._started_ms = time.time_ns() // 1_000_000
        self.rejected_frames = 0
        self.trades_received = 0
        self.tickers_received = 0
        self._throttled = ThrottledLog(_log)
        # Spot tickers push only on change, so a quiet spot symbol is not a gap.
        self.silence = (
            SilenceMonitor(self.symbols, silence_threshold)
            if silence_threshold is not None and category != "spot"
            else None
        )
        self._silence_task: asyncio.Task[None] | None = None
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
            on_loss=self._connection_lost,
            on_trades=self._deliver_trades,
        )

    async def start(self) -> None:
        await self.client.start()
        if self.silence is not None and self._silence_task is None:
            self._silence_task = asyncio.create_task(self._watch_silence(), name="silence")

    async def stop(self) -> None:
        task, self._silence_task = self._silence_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.stop()

    async def _watch_silence(self) -> None:
        monitor = self.silence
        assert monitor is not None
        while True:
            await asyncio.sleep(monitor.threshold / 2)
            last = self.client.stats.last_data_received_ns
            delivering = (
                self.client.is_connected
                and last is not None
                and time.time_ns() - last < monitor.threshold * 1e9
            )
            for silence in monitor.check(delivering):
                _log.warning(
                    "%s: nothing for %s in %.1fs while other data flows; recording a gap",
                    self.client.stream,
                    silence.symbol,
                    monitor.threshold,
                )

    def _silence_ended(self, silence: Silence, exchange_ts_ms: int, received_ns: int) -> None:
        last = silence.last_exchange_ts_ms
        start = self._last_trade_ms.get(silence.symbol)
        if start is None:
            start = self._started_ms if last is None else last - IN_FLIGHT_MARGIN_MS
        outage = Outage(
            stream=self.client.stream,
            category=self.category,
            cause="silence",
            last_exchange_ts_ms=last,
            last_received_ns=silence.last_received_ns,
            lost_at_ns=silence.detected_ns,
            first_exchange_ts_ms=exchange_ts_ms,
            recovered_at_ns=received_ns,
            reconnect_attempts=0,
        )
        self._on_outage(PublicOutage(outage, {silence.symbol: start}))

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
            self._deliver_trades(events, received_ns)  # type: ignore[arg-type]
            return
        self._heard(first.symbol, first.exchange_ts_ms, received_ns)
        for ticker in events:
            self.tickers_received += 1
            self._on_ticker(ticker)  # type: ignore[arg-type]

    def _deliver_trades(self, trades: list[TradeEvent], received_ns: int) -> None:
        """Trades of one frame (also the client's fast path for publicTrade frames)."""
        first = trades[0]
        self._heard(first.symbol, first.exchange_ts_ms, received_ns)
        last = self._last_trade_ms
        first_after = self._first_trade_after_loss
        for trade in trades:
            symbol = trade.symbol
            time_ms = trade.trade_time_ms
            if time_ms > last.get(symbol, -1):
                last[symbol] = time_ms
            if symbol not in first_after:
                first_after[symbol] = time_ms
        self.trades_received += len(trades)
        self._on_trades(trades)

    def _heard(self, symbol: str, exchange_ts_ms: int, received_ns: int) -> None:
        if self.silence is not None:
            ended = self.silence.heard(symbol, exchange_ts_ms, received_ns)
            if ended is not None:
                self._silence_ended(ended, exchange_ts_ms, received_ns)

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

    def _connection_lost(self, cause: str) -> None:
        self._last_trade_at_loss = dict(self._last_trade_ms)
        self._first_trade_after_loss = {}

    def _outage(self, outage: Outage) -> None:
        # A symbol with no trade seen yet: a trade printed shortly before the
        # last frame of another topic may still have been in flight.
        last = outage.last_exchange_ts_ms
        fallback = self._started_ms if last is None else last - IN_FLIGHT_MARGIN_MS
        seen = self._last_trade_at_loss
        self._last_trade_at_loss = None
        if seen is None:
            seen = self._last_trade_ms
        windows = {s: seen.get(s, fallback) for s in self.symbols}
        first_after = self._first_trade_after_loss
        if self.silence is not None:
            self.silence.reset()
        # Ticker state restarts from the fresh snapshot sent after resubscribing.
        self._on_outage(PublicOutage(outage, windows, first_after))
