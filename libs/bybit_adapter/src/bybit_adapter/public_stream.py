"""The public stream of one category: from Bybit's socket to records in a sink.

Read top to bottom, this module is the path of every public frame:

1. ``Stream._run``: ``async for ws in Connector(...)`` opens a connection (bounded, paced);
2. ``_serve``: sends the subscribe requests, then runs the reader and the keepalive
   task until one of them ends the connection (``ConnectionLost``: closed, pong
   timeout, unanswered request, stall);
3. ``_frame``: each frame is a ``publicTrade`` frame (the hot path, decoded straight
   into ``Trade`` records), another data frame (tickers; order books, judged by the
   ``BookValidator`` in ``_judge``), a pong, or a reply;
4. ``_deliver``: records go to the sink; the outage tracker learns that data flowed,
   and an outage it can now close goes to the sink too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bybit_adapter.book_decoder import BOOK_PREFIX, BookDecoder
from bybit_adapter.book_validator import BookAction, BookValidator
from bybit_adapter.decoders import TICKER_PREFIX, TRADE_PREFIX, TickerDecoder, TradeDecoder
from bybit_adapter.errors import FrameRejected
from bybit_adapter.keepalive import ConnectionLost
from bybit_adapter.outages import OutageTracker
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.sink import StreamSink
from bybit_adapter.stream import Stream
from bybit_adapter.subscriptions import Subscriptions, public_topics, symbol_of
from bybit_adapter.transport import Socket, send_json
from bybit_records import BookUpdate, Category, OutageCause, Record, RejectedFrame, Trade

#: How Bybit's book frames begin (the topic first): ``_book_fast``'s cheap test.
_BOOK_START = '{"topic":"' + BOOK_PREFIX
_BOOK_START_BYTES = _BOOK_START.encode()


class PublicStream(Stream):
    """Trades and tickers of ``symbols`` in one category, kept flowing into ``sink``; and
    the order books among ``topics`` (``orderbook.{depth}.{symbol}``), checked by ``books``."""

    def __init__(
        self,
        url: str,
        category: Category,
        symbols: Sequence[str],
        sink: StreamSink,
        *,
        settings: WebSocketSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        topics: Sequence[str] | None = None,
        books: BookValidator | None = None,
    ) -> None:
        self.category = category
        self.name = f"public.{category.value}"
        settings = settings or WebSocketSettings()
        self.symbols = list(dict.fromkeys(symbols))
        super().__init__(
            url.format(category=category.value),
            sink,
            settings,
            session,
            OutageTracker(
                self.name,
                category,
                self.symbols,
                silence_seconds=settings.silence_timeout,
            ),
        )
        self._subscriptions = Subscriptions(
            topics if topics is not None else public_topics(self.symbols), self._refused
        )
        self._trades = TradeDecoder(category)
        self._tickers = TickerDecoder(category)
        self._book_decoder = BookDecoder(category)
        self.books = books or BookValidator()
        # Option trades are keyed by base coin (publicTrade.BTC), tickers by contract.
        self._option = category is Category.OPTION
        self._healthy = False

    @property
    def refused_topics(self) -> dict[str, str]:
        return dict(self._subscriptions.refused)

    @property
    def confirmed_topics(self) -> set[str]:
        return set(self._subscriptions.confirmed)

    # ---- connections ------------------------------------------------------------

    async def _serve(self, ws: Socket) -> ConnectionLost:
        self._healthy = False
        self._tickers.reset()  # a resubscribe sends fresh snapshots
        self.books.reset()
        try:
            for request in self._subscriptions.connection_opened():
                await send_json(ws, request)
        except (aiohttp.ClientError, ConnectionError) as exc:
            return ConnectionLost(OutageCause.DISCONNECT, f"lost while subscribing: {exc}")
        return await self._read_until_lost(ws)

    def _unanswered(self) -> list[str]:
        return self._subscriptions.overdue(self.settings.ack_timeout)

    # ---- one frame ----------------------------------------------------------------

    def _frame(self, raw: str | bytes, received_ns: int) -> None:
        self.stats.frames += 1
        if self._book_fast(raw, received_ns):
            return
        trades = self._trades.fast(raw, received_ns)
        if trades is not None:
            symbol = trades[0].symbol
            if self._option:  # publicTrade.BTC: BTC-28APR23-29500-C
                symbol = symbol.split("-", 1)[0]
            self._deliver(trades, TRADE_PREFIX + symbol, received_ns, symbol)
            return
        message = self._decoded(raw, received_ns)
        if message is None:
            return
        topic = message.get("topic")
        if isinstance(topic, str):
            self._data(message, topic, raw, received_ns)
        elif message.get("op") == "pong" or message.get("ret_msg") == "pong":
            self._pong()
        else:
            self._reply(message)

    def _data(
        self, message: dict[str, Any], topic: str, raw: str | bytes, received_ns: int
    ) -> None:
        try:
            if topic.startswith(TRADE_PREFIX):
                records: Sequence[Record] = self._trades.frame(message, received_ns)
            elif topic.startswith(TICKER_PREFIX):
                records = [self._tickers.frame(message, received_ns)]
            elif topic.startswith(BOOK_PREFIX):
                records = self._judge(self._book_decoder.frame(message, received_ns), topic)
            else:
                raise FrameRejected(f"unsupported topic {topic!r:.80}")
        except FrameRejected as exc:
            # A broken data frame still shows the connection is alive.
            self.tracker.data(None, None, received_ns)
            self._reject(raw, exc.reason, received_ns)
            return
        self._store(records, topic, received_ns)

    def _book_fast(self, raw: str | bytes, received_ns: int) -> bool:
        """A book frame decoded straight from its text into its record (no dict, and no
        failed attempt as a trade frame): a depth-50 book sends 50 frames a second.
        False for anything else, and for a frame the decoder refuses: ``_data`` then
        refuses it with the same reason."""
        if isinstance(raw, str):
            if not raw.startswith(_BOOK_START):
                return False
        elif not raw.startswith(_BOOK_START_BYTES):
            return False
        try:
            update = self._book_decoder.decode(raw, received_ns)
        except FrameRejected:
            return False
        topic = update.topic
        self._store(self._judge(update, topic), topic, received_ns)
        return True

    def _store(self, records: Sequence[Record], topic: str, received_ns: int) -> None:
        if records:
            self._deliver(records, topic, received_ns)
        else:  # a book update stored as nothing: the connection is alive all the same
            self.stats.data_frames += 1
            self.tracker.data(symbol_of(topic), None, received_ns)
            self._subscriptions.data_for(topic)

    def _judge(self, update: BookUpdate, topic: str) -> list[BookUpdate]:
        """What to store of a book update; a broken book is asked for again (its fresh
        snapshot heals it), and the gap a snapshot closes goes to the sink."""
        verdict = self.books.check(update)
        broken = verdict.broken
        if verdict.action is BookAction.BREAK and broken is not None:
            self.stats.book_gaps += 1
            self._log.warning(
                "%s: book %s broke (%s: %s); resubscribing",
                self.name,
                topic,
                broken.cause.value,
                broken.detail,
            )
            self._outbox.extend(self._subscriptions.resubscribe(topic))
        healed = verdict.healed
        if healed is not None and healed.cause is OutageCause.BOOK_RESTART:
            self.stats.book_gaps += 1  # a restart is found and healed by the same snapshot
        if healed is not None:
            self._log.warning(
                "%s: book %s whole again after %.1fs (%s)",
                self.name,
                topic,
                ((healed.end_ts_ms or healed.start_ts_ms) - healed.start_ts_ms) / 1000,
                healed.cause.value,
            )
            self._hand_over([healed.record()])
        return verdict.records

    def _hand_over(self, records: Sequence[Record]) -> None:
        """``records`` to the sink; a sink that fails is logged, never the stream's end."""
        try:
            self._sink.records(records)
        except Exception:
            self.stats.handler_errors += 1
            self._log.exception("%s: the sink refused records", self.name)

    async def stop(self) -> None:
        """``Stream.stop``; a book still broken is recorded as a gap up to now."""
        await super().stop()
        now_ms = time.time_ns() // 1_000_000
        for gap in self.books.open_gaps():
            # open until now (on the exchange clock, never before the gap's start)
            self._hand_over([gap.close(max(now_ms, gap.start_ts_ms), now_ms).record()])
        self.books = BookValidator(
            checkpoint_every_updates=self.books.checkpoint_every_updates,
            checkpoint_every_ms=self.books.checkpoint_every_ms,
        )

    def _deliver(
        self, records: Sequence[Record], topic: str, received_ns: int, symbol: str | None = None
    ) -> None:
        """``symbol``: the topic's, when the caller has it (else taken from ``topic``)."""
        stats = self.stats
        stats.data_frames += 1
        stats.last_data_received_ns = received_ns
        first = records[0]
        trades: Sequence[Trade] = records if isinstance(first, Trade) else ()  # type: ignore[assignment]
        if symbol is None:
            symbol = symbol_of(topic)
        ended = self.tracker.data(symbol, first.exchange_ts_ms, received_ns, trades)  # type: ignore[attr-defined]
        self._subscriptions.data_for(topic)
        if not self._healthy:
            self._healthy = True
            assert self._connector is not None
            self._connector.healthy()
        self._hand_over(records)
        if ended is not None:
            self._report(ended)
        if self.tracker.is_open:
            self._resolve()

    def _reply(self, message: dict[str, Any]) -> None:
        if message.get("op") == "subscribe" or message.get("type") == "COMMAND_RESP":
            self._outbox.extend(self._subscriptions.reply(message))
            self._resolve()
        elif message.get("success") is False:
            self._log.warning("%s: server error: %.300s", self.name, message.get("ret_msg"))

    def _resolve(self) -> None:
        outage = self.tracker.resolve(self._subscriptions.complete)
        if outage is not None:
            self._report(outage)

    def _refused(self, topic: str, ret_msg: str) -> None:
        self._log.error("%s: topic %s refused by Bybit: %s", self.name, topic, ret_msg)
        symbol = symbol_of(topic)
        if not any(symbol_of(t) == symbol for t in self._subscriptions.topics):
            self.tracker.forget(symbol)
        self._sink.rejected(
            RejectedFrame(
                self.name, time.time_ns() // 1_000_000, f"subscription refused: {ret_msg}", topic
            )
        )
