"""Reconnecting WebSocket transport: ``async for ws in Connector(...)``.

Each iteration is one open connection; when the loop body returns (the connection is
lost), the connector closes it, waits its jittered and capped backoff, takes a token
from the connection-rate limiter and opens the next one, forever. Every step of the
opening handshake has a bound: TCP connect, and the whole handshake (TCP, TLS, the
WebSocket upgrade) so a server that accepts TCP and never answers the upgrade cannot
hold a reconnect for aiohttp's default five minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp
import msgspec

from bybit_adapter.backoff import Backoff, ConnectionRateLimiter
from bybit_adapter.keepalive import ConnectionLost
from bybit_adapter.outages import OutageTracker
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.sink import StreamSink
from bybit_records import OutageCause

Socket = aiohttp.ClientWebSocketResponse
_CLOSED = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class ConnectorStats:
    attempts: int = 0
    connects: int = 0
    failures: int = 0
    handshake_timeouts: int = 0

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


class Connector:
    """Opens connections to ``url`` one after the other, paced and bounded."""

    def __init__(
        self,
        url: str,
        settings: WebSocketSettings,
        session: aiohttp.ClientSession,
        log: logging.Logger,
        name: str,
        on_attempt: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._on_attempt = on_attempt
        self.settings = settings
        self.stats = ConnectorStats()
        self._session = session
        self._log = log
        self._name = name
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._limiter = ConnectionRateLimiter(
            settings.max_connects_per_window, settings.connect_window, settings.connect_burst
        )
        self._min_delay = 0.0

    def healthy(self) -> None:
        """The current connection proved usable: the next reconnect starts over quickly."""
        self._backoff.reset()

    def delay_next(self, seconds: float) -> None:
        """Wait at least ``seconds`` before the next attempt (e.g. after a refused auth)."""
        self._min_delay = max(self._min_delay, seconds)

    async def __aiter__(self) -> AsyncIterator[Socket]:
        first = True
        while True:
            if not first:
                await self._wait_before_retry()
            first = False
            await self._limiter.acquire()
            self.stats.attempts += 1
            if self._on_attempt is not None:
                self._on_attempt()
            ws = await self._open()
            if ws is None:
                continue
            self.stats.connects += 1
            try:
                yield ws
            finally:
                await self.close(ws)

    async def _open(self) -> Socket | None:
        settings = self.settings
        try:
            async with asyncio.timeout(settings.open_timeout):
                return await self._session.ws_connect(
                    self.url,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=settings.close_timeout),
                )
        except TimeoutError:
            self.stats.failures += 1
            self.stats.handshake_timeouts += 1
            self._log.warning(
                "%s: no WebSocket handshake from %s within %.1fs; retrying",
                self._name,
                self.url,
                settings.open_timeout,
            )
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.failures += 1
            self._log.warning(
                "%s: connect to %s failed (%s); retrying", self._name, self.url, _short(exc)
            )
        return None

    async def _wait_before_retry(self) -> None:
        delay = max(self._backoff.next_delay(), self._min_delay)
        self._min_delay = 0.0
        self._log.info("%s: reconnecting in %.1fs", self._name, delay)
        await asyncio.sleep(delay)

    async def close(self, ws: Socket) -> None:
        """Close within ``close_timeout``; a peer that does not answer is dropped."""
        if ws.closed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.close_timeout + 0.5):
                await ws.close()


async def send_json(ws: Socket, payload: dict[str, Any]) -> None:
    """One JSON text frame."""
    await ws.send_str(_encode(payload).decode())


async def read_frames(
    ws: Socket,
    on_frame: Callable[[str | bytes, int], None],
    sink: StreamSink,
    tracker: OutageTracker,
) -> NoReturn:
    """Hand every frame to ``on_frame`` with its receive time; pause while the sink is full.

    While the sink has no room the socket is not read (the kernel and the server buffer
    meanwhile), and that time does not count as a silence of the stream.
    """
    while True:
        if not sink.ready:
            tracker.hold()
            await sink.wait_ready()
            tracker.release()
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
            on_frame(msg.data, time.time_ns())
        elif msg.type in _CLOSED:
            raise ConnectionLost(
                OutageCause.DISCONNECT, f"the server closed the socket ({msg.type.name})"
            )


async def serve(*parts: Coroutine[Any, Any, NoReturn]) -> ConnectionLost:
    """Run a connection's tasks until the first one ends it; returns how it ended."""
    tasks = [asyncio.create_task(part) for part in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        error = next(iter(done)).exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if isinstance(error, ConnectionLost):
        return error
    # A socket error, or a bug in a task: the connection is replaced either way, and the
    # outage it causes is refilled like any other.
    return ConnectionLost(OutageCause.DISCONNECT, _short(error) if error else "ended")


def client_session(settings: WebSocketSettings) -> aiohttp.ClientSession:
    """An HTTP session whose TCP connect is bounded (the handshake is bounded per call)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout)
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
