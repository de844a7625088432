"""One accepted WebSocket connection: an outgoing queue drained by a writer task.

Generators never await a client: they enqueue encoded frames with :meth:`WsConnection.send`.
The writer task is the only place that writes to the socket, so faults (pause/stall, muted
symbols, malformed frames, abrupt drops) are applied here uniformly.

A frame queued with a ``topic`` is a *data* frame (trades, tickers, books, snapshots, private
events); one without is a *control* frame (acks, pongs, errors). ``pause(pongs=True)`` and
``mute`` withhold data frames only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bybit_sim.stats import SimStats
from bybit_sim.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MalformedFactory = Callable[["WsConnection"], bytes]
_MALFORMED_IDLE_S = 0.2  # with malformed frames pending and no data, send one after this
#: ``send_paced`` waits while this many frames are queued: the socket sets the pace
PACED_QUEUE_FRAMES = 8

_Item = tuple[bytes, str | None]  # (frame, topic of a data frame or None)


def topic_symbol(topic: str) -> str:
    """The instrument a public topic is about: the part after the last dot."""
    return topic.rpartition(".")[2]


class MuteTable:
    """Muted symbols of the public streams: ``(category or None, symbol) -> loop deadline``.

    A symbol is matched against the last dot-separated part of a topic; on option sockets a
    base coin (``BTC``) also matches its contracts (``tickers.BTC-30AUG24-60000-C``).
    """

    def __init__(self) -> None:
        self._until: dict[tuple[str | None, str], float] = {}

    def __bool__(self) -> bool:
        return bool(self._until)

    def mute(self, category: str | None, symbol: str, seconds: float) -> None:
        self._until[(category, symbol)] = asyncio.get_running_loop().time() + seconds

    def clear(self) -> None:
        self._until.clear()

    def matches(self, category: str, topic: str, category_filter: str | None, symbol: str) -> bool:
        """Does ``topic`` on a ``category`` socket belong to ``symbol`` (under the filter)?"""
        if category_filter is not None and category_filter != category:
            return False
        sym = topic_symbol(topic)
        return sym == symbol or (category == "option" and sym.startswith(symbol + "-"))

    def muted(self, category: str, topic: str) -> bool:
        if not self._until:
            return False
        now = asyncio.get_running_loop().time()
        for (cat, symbol), until in list(self._until.items()):
            if until <= now:
                del self._until[(cat, symbol)]
            elif self.matches(category, topic, cat, symbol):
                return True
        return False

    def active(self) -> list[dict[str, Any]]:
        now = asyncio.get_running_loop().time()
        out: list[dict[str, Any]] = []
        for (cat, symbol), until in list(self._until.items()):
            if until <= now:
                del self._until[(cat, symbol)]
            else:
                out.append(
                    {"symbol": symbol, "category": cat, "remaining_s": round(until - now, 3)}
                )
        return out


class WsConnection:
    """State of one public or private socket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        *,
        kind: str,
        category: str,
        conn_id: str,
        stats: SimStats,
        queue_max: int,
        malformed_factory: MalformedFactory,
        mutes: MuteTable | None = None,
    ) -> None:
        self.ws = ws
        self.kind = kind  # "public" | "private"
        self.category = category  # public category, or "private"
        self.conn_id = conn_id
        self.topics: set[str] = set()
        self.api_key: str | None = None  # set once authenticated (private)
        self.pending_malformed = 0
        self.malformed_sent = 0
        self._transport = transport
        self._stats = stats
        self._queue_max = queue_max
        self._malformed_factory = malformed_factory
        self._mutes = mutes if mutes is not None and kind == "public" else MuteTable()
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._room = asyncio.Event()  # set while the queue is short enough for send_paced
        self._room.set()
        self._stalled_until = 0.0  # pause(pongs=False): nothing at all goes out
        self._data_paused_until = 0.0  # pause(pongs=True): data frames are withheld
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._run_writer(), name=f"ws-writer-{self.conn_id}"
        )

    @property
    def closed(self) -> bool:
        return self._closed or self.ws.closed

    def abort(self) -> None:
        """Kill the TCP connection without a close frame (the client sees an abrupt loss)."""
        self._closed = True
        self._cancel_timers()
        if self._transport is not None:
            self._transport.abort()
        self._queue.put_nowait(None)
        self._room.set()

    async def close(self, grace_s: float = 1.0) -> None:
        """Graceful close (server shutdown); falls back to an abort."""
        self._closed = True
        self._cancel_timers()
        self._queue.put_nowait(None)
        self._room.set()
        try:
            async with asyncio.timeout(grace_s):
                await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    async def finish(self) -> None:
        """Called by the handler when the socket is gone: stop the writer."""
        self._closed = True
        self._cancel_timers()
        self._room.set()
        await cancel_and_wait(self._writer)

    # -- delayed work ---------------------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` s unless the connection is closed by then."""
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if self.closed:
                return
            try:
                callback()
            except Exception:
                log.exception("delayed request on %s failed", self.conn_id)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- pause / stall ------------------------------------------------------------------
    def pause(self, seconds: float, *, pongs: bool = False) -> None:
        """Withhold frames for ``seconds``: everything, or with ``pongs`` data frames only.

        Withheld frames are lost, not delivered late; the socket resumes by itself.
        """
        until = asyncio.get_running_loop().time() + seconds
        if pongs:
            self._data_paused_until = until
        else:
            self._stalled_until = until

    def stall(self, seconds: float) -> None:
        self.pause(seconds)

    def unstall(self) -> None:
        self._stalled_until = 0.0
        self._data_paused_until = 0.0

    def stalled(self) -> bool:
        """Fully paused: no data, acks or pongs, and requests are ignored."""
        return self._stalled_until > 0.0 and asyncio.get_running_loop().time() < self._stalled_until

    def data_paused(self) -> bool:
        """Data frames are withheld (either kind of pause)."""
        if self._stalled_until <= 0.0 and self._data_paused_until <= 0.0:
            return False
        now = asyncio.get_running_loop().time()
        return now < self._stalled_until or now < self._data_paused_until

    def _withheld(self, topic: str | None) -> bool:
        """Is this frame dropped right now (pause, or muted symbol)?"""
        if topic is None:
            return self.stalled()
        return self.data_paused() or self._mutes.muted(self.category, topic)

    # -- sending ------------------------------------------------------------------------
    def send(self, frame: bytes, topic: str | None = None) -> None:
        """Queue ``frame`` (already-encoded JSON text). Never blocks.

        ``topic`` marks a data frame (see the module doc). Frames produced while the
        connection is paused (or their symbol muted) are discarded: such a link loses data,
        it does not deliver it late.
        """
        if self._closed or self._withheld(topic):
            return
        if self._queue.qsize() >= self._queue_max:
            log.warning(
                "connection %s is too slow (%d queued frames); cutting it",
                self.conn_id,
                self._queue.qsize(),
            )
            self.abort()
            return
        self._queue.put_nowait((frame, topic))

    async def send_paced(self, frame: bytes, topic: str | None = None) -> bool:
        """Queue ``frame`` once the queue is short: as fast as the client drains, no faster.

        The writer awaits the socket's drain, so a producer that sends through this never
        outruns the client (the firehose). False when the connection is closed.
        """
        while self._queue.qsize() >= PACED_QUEUE_FRAMES and not self.closed:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            return False
        self.send(frame, topic)
        return not self.closed

    def add_malformed(self, n: int) -> None:
        self.pending_malformed += n
        if self._queue.empty():
            # wake the writer so the idle timer starts now
            self._queue.put_nowait((b"", None))

    async def _send_malformed(self) -> None:
        if self.pending_malformed <= 0 or self.data_paused():
            return
        frame = self._malformed_factory(self)
        self.pending_malformed -= 1
        self.malformed_sent += 1
        self._stats.malformed_frames_sent += 1
        await self.ws.send_frame(frame, WSMsgType.TEXT)

    async def _run_writer(self) -> None:
        try:
            while True:
                if self.pending_malformed > 0:
                    try:
                        async with asyncio.timeout(_MALFORMED_IDLE_S):
                            item = await self._queue.get()
                    except TimeoutError:
                        await self._send_malformed()
                        continue
                else:
                    item = await self._queue.get()
                if self._queue.qsize() < PACED_QUEUE_FRAMES:
                    self._room.set()
                if item is None:
                    return
                frame, topic = item
                if not frame or self._withheld(topic):
                    continue
                await self.ws.send_frame(frame, WSMsgType.TEXT)
                # interleave pending malformed frames with real data, one after each frame
                await self._send_malformed()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("writer of %s stopped: %s", self.conn_id, exc)
            self._closed = True
        finally:
            self._room.set()  # nobody drains the queue any more: wake paced senders


class ConnectionRegistry:
    """Every open connection, for faults and shutdown."""

    def __init__(self) -> None:
        self._conns: set[WsConnection] = set()

    def add(self, conn: WsConnection) -> None:
        self._conns.add(conn)

    def discard(self, conn: WsConnection) -> None:
        self._conns.discard(conn)

    def all(self) -> list[WsConnection]:
        return list(self._conns)

    def public(self) -> list[WsConnection]:
        return [c for c in self._conns if c.kind == "public"]

    def private(self) -> list[WsConnection]:
        return [c for c in self._conns if c.kind == "private"]

    def paused(self) -> int:
        """How many connections are paused now (either kind)."""
        return sum(1 for c in self._conns if c.data_paused())

    def __len__(self) -> int:
        return len(self._conns)
