"""One accepted WebSocket connection: an outgoing queue drained by a writer task.

Generators never await a client: they enqueue encoded frames with :meth:`WsConnection.send`.
The writer task is the only place that writes to the socket, so faults (stall, malformed
frames, abrupt drops) are applied here uniformly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from bybit_sim.stats import SimStats

log = logging.getLogger(__name__)

MalformedFactory = Callable[["WsConnection"], bytes]
_MALFORMED_IDLE_S = 0.2  # with malformed frames pending and no data, send one after this
#: ``send_paced`` waits while this many frames are queued: the socket sets the pace
PACED_QUEUE_FRAMES = 8


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
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._room = asyncio.Event()  # set while the queue is short enough for send_paced
        self._room.set()
        self._stalled_until = 0.0
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
        if self._transport is not None:
            self._transport.abort()
        self._queue.put_nowait(None)
        self._room.set()

    async def close(self, grace_s: float = 1.0) -> None:
        """Graceful close (server shutdown); falls back to an abort."""
        self._closed = True
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
        self._room.set()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # -- stall --------------------------------------------------------------------------
    def stall(self, seconds: float) -> None:
        self._stalled_until = asyncio.get_running_loop().time() + seconds

    def unstall(self) -> None:
        self._stalled_until = 0.0

    def stalled(self) -> bool:
        return self._stalled_until > 0.0 and asyncio.get_running_loop().time() < self._stalled_until

    # -- sending ------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        """Queue ``frame`` (already-encoded JSON text). Never blocks.

        Frames produced while the connection is stalled are discarded: a stalled link
        loses data, it does not deliver it late.
        """
        if self._closed or self.stalled():
            return
        if self._queue.qsize() >= self._queue_max:
            log.warning(
                "connection %s is too slow (%d queued frames); cutting it",
                self.conn_id,
                self._queue.qsize(),
            )
            self.abort()
            return
        self._queue.put_nowait(frame)

    async def send_paced(self, frame: bytes) -> bool:
        """Queue ``frame`` once the queue is short: as fast as the client drains, no faster.

        The writer awaits the socket's drain, so a producer that sends through this never
        outruns the client (the firehose). False when the connection is closed.
        """
        while self._queue.qsize() >= PACED_QUEUE_FRAMES and not self.closed:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            return False
        self.send(frame)
        return not self.closed

    def add_malformed(self, n: int) -> None:
        self.pending_malformed += n
        if self._queue.empty():
            # wake the writer so the idle timer starts now
            self._queue.put_nowait(b"")

    async def _send_malformed(self) -> None:
        if self.pending_malformed <= 0 or self.stalled():
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
                            frame = await self._queue.get()
                    except TimeoutError:
                        await self._send_malformed()
                        continue
                else:
                    frame = await self._queue.get()
                if self._queue.qsize() < PACED_QUEUE_FRAMES:
                    self._room.set()
                if frame is None:
                    return
                if not frame or self.stalled():
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

    def __len__(self) -> int:
        return len(self._conns)
