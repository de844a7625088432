"""A WebSocket connection to Bybit that never silently stops.

``ReconnectingWebSocket`` owns one background task that connects, keeps the
connection alive with JSON pings, watches for stalls, and on any loss
reconnects forever with jittered, capped, rate-limited backoff. Subclasses
decide what to send on open (subscribe, or auth then subscribe) and what a
control reply means.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import msgspec

from bybit_adapter.backoff import Backoff, ConnectionRateLimiter
from bybit_adapter.settings import WebSocketSettings

MessageHandler = Callable[[dict[str, Any], int], None]


class ReadGate(Protocol):
    """Back-pressure from the consumer: while closed, no further frame is read."""

    @property
    def is_open(self) -> bool: ...

    async def wait_open(self) -> None: ...


InvalidFrameHandler = Callable[[str, str, int], None]


class ConnectionState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


class LossCause(enum.StrEnum):
    DISCONNECT = "disconnect"
    STALL = "stall"
    PONG_TIMEOUT = "pong_timeout"
    AUTH = "auth"
    CONNECT_FAILED = "connect_failed"


@dataclass(frozen=True, slots=True)
class Outage:
    """A period in which a stream delivered nothing, reported once data flows again.

    ``last_exchange_ts_ms`` is the newest exchange timestamp received before the
    loss (None if nothing arrived yet); ``first_exchange_ts_ms`` the first one
    after recovery (None for streams that recover without data, e.g. private).
    """

    stream: str
    category: str | None
    cause: str
    last_exchange_ts_ms: int | None
    last_received_ns: int | None
    lost_at_ns: int
    first_exchange_ts_ms: int | None
    recovered_at_ns: int
    reconnect_attempts: int

    @property
    def duration_seconds(self) -> float:
        start = self.last_received_ns if self.last_received_ns is not None else self.lost_at_ns
        return max(0.0, (self.recovered_at_ns - start) / 1e9)


OutageHandler = Callable[[Outage], None]


@dataclass(slots=True)
class ConnectionStats:
    connects: int = 0
    connect_failures: int = 0
    frames: int = 0
    data_frames: int = 0
    invalid_frames: int = 0
    handler_errors: int = 0
    pings_sent: int = 0
    pongs: int = 0
    outages: int = 0
    losses: dict[str, int] = field(default_factory=dict)
    last_data_received_ns: int | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


@dataclass(slots=True)
class _PendingOutage:
    cause: str
    last_exchange_ts_ms: int | None
    last_received_ns: int | None
    lost_at_ns: int
    attempts: int = 0


class _ConnectionEnded(Exception):
    def __init__(self, cause: LossCause) -> None:
        super().__init__(cause.value)
        self.cause = cause


_decode = msgspec.json.Decoder().decode


class ReconnectingWebSocket:
    """Base class: the connect / keepalive / watchdog / reconnect loop."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        category: str | None,
        on_message: MessageHandler,
        on_outage: OutageHandler | None = None,
        on_invalid: InvalidFrameHandler | None = None,
        settings: WebSocketSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        logger: logging.Logger | None = None,
        read_gate: ReadGate | None = None,
        on_loss: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self._read_gate = read_gate
        self._on_loss = on_loss
        self.stream = stream
        self.category = category
        self.settings = settings or WebSocketSettings()
        self.stats = ConnectionStats()
        self._on_message = on_message
        self._on_outage = on_outage
        self._on_invalid = on_invalid
        self._session = session
        self._owns_session = session is None
        self._log = logger or logging.getLogger(f"bybit_adapter.{stream}")
        self._state = ConnectionState.IDLE
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._req_ids = itertools.count(1)
        self._pong_waiter: asyncio.Future[None] | None = None
        self._backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        self._limiter = ConnectionRateLimiter(
            self.settings.max_connects_per_window,
            self.settings.connect_window,
            self.settings.connect_burst,
        )
        self._pending_outage: _PendingOutage | None = None
        self._last_exchange_ts_ms: int | None = None
        self._first_exchange_ts_ms: int | None = None
        self._last_data_monotonic = 0.0
        self._got_data = False
        self._healthy = False
        self._connected_event = asyncio.Event()
        self._min_next_delay = 0.0
        self._fatal_cause: LossCause | None = None
        self._failed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    # ---- lifecycle ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name=f"ws-{self.stream}")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._background):
            pending.cancel()
        await self._close_ws()
        # An outage still open at shutdown is reported too, so its owner can fill
        # and record it: otherwise the last minutes of a session could vanish.
        if self._pending_outage is not None:
            self._report_outage(None, "stopping during an unrecovered")
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        self._state = ConnectionState.STOPPED

    async def wait_connected(self) -> None:
        """Wait until the connection is up and its setup (auth, subscribe) is sent."""
        await self._connected_event.wait()

    # ---- hooks for subclasses -------------------------------------------------

    async def _on_open(self) -> None:
        """Send what a fresh connection needs (subscribe, auth)."""

    def _handle_control(self, message: dict[str, Any]) -> None:
        """A non-data reply other than a pong (acks, auth replies, errors)."""

    def _recovery_complete(self) -> bool:
        """Whether a pending outage may be declared over on this connection."""
        return self._got_data

    def _wants_stall_watch(self) -> bool:
        return self.settings.stall_timeout is not None

    # ---- helpers for subclasses ---------------------------------------------

    def next_req_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._req_ids)}"

    async def send_json(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionResetError("websocket is not open")
        await ws.send_str(msgspec.json.encode(payload).decode())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a send from a sync handler; the task is owned and cancelled on stop."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def mark_healthy(self) -> None:
        """The connection proved usable: reset the backoff, maybe end an outage."""
        if not self._healthy:
            self._healthy = True
            self._backoff.reset()
        self._maybe_report_recovery()

    def fail_connection(self, cause: LossCause, min_delay: float = 0.0) -> None:
        """End the current connection from a handler (e.g. auth refused)."""
        self._min_next_delay = max(self._min_next_delay, min_delay)
        self._fatal_cause = cause
        self._failed.set()

    # ---- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        assert self._session is not None
        while True:
            await self._limiter.acquire()
            self._state = (
                ConnectionState.CONNECTING
                if self.stats.connects == 0
                else ConnectionState.RECONNECTING
            )
            if self._pending_outage is not None:
                self._pending_outage.attempts += 1
            try:
                self._ws = await self._session.ws_connect(
                    self.url,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self.settings.close_timeout),
                    # ClientTimeout bounds the handshake only; reads are watched by us.
                    receive_timeout=None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every handshake failure is retried
                self.stats.connect_failures += 1
                self._log.warning(
                    "%s: connect to %s failed (%s); retrying", self.stream, self.url, _short(exc)
                )
                await self._sleep_before_retry()
                continue
            cause = await self._serve()
            await self._close_ws()
            self._record_loss(cause)
            await self._sleep_before_retry()

    async def _sleep_before_retry(self) -> None:
        delay = max(self._backoff.next_delay(), self._min_next_delay)
        self._min_next_delay = 0.0
        self._state = ConnectionState.RECONNECTING
        self._log.info("%s: reconnecting in %.1fs", self.stream, delay)
        await asyncio.sleep(delay)

    async def _serve(self) -> LossCause:
        """Run one connection until it is lost; returns why."""
        ws = self._ws
        assert ws is not None
        self.stats.connects += 1
        self._got_data = False
        self._first_exchange_ts_ms = None
        self._healthy = False
        self._fatal_cause = None
        self._failed.clear()
        self._last_data_monotonic = time.monotonic()
        self._state = ConnectionState.CONNECTED
        self._log.info("%s: connected to %s", self.stream, self.url)
        tasks: dict[asyncio.Task[Any], LossCause] = {}
        try:
            await self._on_open()
            self._connected_event.set()
            tasks[asyncio.create_task(self._read_loop(ws))] = LossCause.DISCONNECT
            tasks[asyncio.create_task(self._keepalive())] = LossCause.PONG_TIMEOUT
            tasks[asyncio.create_task(self._failed.wait())] = LossCause.DISCONNECT
            if self._wants_stall_watch():
                tasks[asyncio.create_task(self._stall_watchdog())] = LossCause.STALL
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finished = done.pop()
            cause = tasks[finished]
            exc = finished.exception()
            if isinstance(exc, _ConnectionEnded):
                cause = exc.cause
            elif exc is not None:
                self._log.error("%s: connection task failed: %s", self.stream, _short(exc))
            return self._fatal_cause or cause
        except (ConnectionError, aiohttp.ClientError) as exc:
            self._log.warning("%s: connection lost during setup (%s)", self.stream, _short(exc))
            return self._fatal_cause or LossCause.DISCONNECT
        finally:
            self._connected_event.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        gate = self._read_gate
        while True:
            if gate is not None and not gate.is_open:
                await gate.wait_open()
            msg = await ws.receive()
            received_ns = time.time_ns()
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                self._handle_frame(msg.data, received_ns)
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise _ConnectionEnded(self._fatal_cause or LossCause.DISCONNECT)

    def _handle_frame(self, raw: str | bytes, received_ns: int) -> None:
        self.stats.frames += 1
        try:
            message = _decode(raw)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            # RecursionError: nesting deeper than Python allows; UnicodeDecodeError:
            # invalid UTF-8 inside a binary frame. Neither may end the connection.
            self._invalid(raw, f"not JSON: {type(exc).__name__}: {exc}"[:300], received_ns)
            return
        if not isinstance(message, dict):
            self._invalid(raw, "frame is not a JSON object", received_ns)
            return
        if "topic" in message:
            self._data_frame(message, received_ns)
        elif message.get("op") == "pong" or message.get("ret_msg") == "pong":
            self.stats.pongs += 1
            if self._pong_waiter is not None and not self._pong_waiter.done():
                self._pong_waiter.set_result(None)
        else:
            try:
                self._handle_control(message)
            except Exception as exc:  # a bad reply must not kill the connection
                self._log.warning("%s: bad control reply %r: %s", self.stream, message, exc)

    def _data_frame(self, message: dict[str, Any], received_ns: int) -> None:
        ts = message.get("ts", message.get("creationTime"))
        exchange_ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
        self._data_arrived(exchange_ts, received_ns)
        try:
            self._on_message(message, received_ns)
        except Exception:
            self.stats.handler_errors += 1
            self._log.exception("%s: message handler failed", self.stream)
        self._maybe_report_recovery()

    def _data_arrived(self, exchange_ts: int | None, received_ns: int) -> None:
        """Bookkeeping for every data frame, before its handler sees it."""
        stats = self.stats
        stats.data_frames += 1
        stats.last_data_received_ns = received_ns
        self._last_data_monotonic = time.monotonic()
        if exchange_ts is not None:
            self._last_exchange_ts_ms = exchange_ts
            if self._first_exchange_ts_ms is None:
                self._first_exchange_ts_ms = exchange_ts
        if not self._got_data:
            self._got_data = True
            self._backoff.reset()

    def _invalid(self, raw: str | bytes, reason: str, received_ns: int) -> None:
        self.stats.invalid_frames += 1
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if self._on_invalid is not None:
            try:
                self._on_invalid(text, reason, received_ns)
            except Exception:
                self.stats.handler_errors += 1
                self._log.exception("%s: invalid-frame handler failed", self.stream)

    async def _keepalive(self) -> None:
        """Send ``{"op":"ping"}`` every interval; a missing pong ends the connection."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            self._pong_waiter = loop.create_future()
            await self.send_json({"req_id": self.next_req_id("ping"), "op": "ping"})
            self.stats.pings_sent += 1
            try:
                await asyncio.wait_for(self._pong_waiter, self.settings.pong_timeout)
            except TimeoutError:
                self._log.warning(
                    "%s: no pong within %.1fs; replacing the connection",
                    self.stream,
                    self.settings.pong_timeout,
                )
                raise _ConnectionEnded(LossCause.PONG_TIMEOUT) from None

    async def _stall_watchdog(self) -> None:
        timeout = self.settings.stall_timeout
        assert timeout is not None
        while True:
            silent = time.monotonic() - self._last_data_monotonic
            if silent >= timeout:
                self._log.warning(
                    "%s: no data for %.1fs although subscribed; replacing the connection",
                    self.stream,
                    silent,
                )
                raise _ConnectionEnded(LossCause.STALL)
            await asyncio.sleep(timeout - silent)

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self.settings.close_timeout + 0.5)

    # ---- outage bookkeeping ---------------------------------------------------

    def _record_loss(self, cause: LossCause) -> None:
        self.stats.losses[cause.value] = self.stats.losses.get(cause.value, 0) + 1
        self._log.warning("%s: connection lost (%s)", self.stream, cause.value)
        if self._pending_outage is None:
            self._pending_outage = _PendingOutage(
                cause=cause.value,
                last_exchange_ts_ms=self._last_exchange_ts_ms,
                last_received_ns=self.stats.last_data_received_ns,
                lost_at_ns=time.time_ns(),
            )
            # The owner must note what it had received before the next
            # connection delivers anything.
            if self._on_loss is not None:
                try:
                    self._on_loss(cause.value)
                except Exception:
                    self.stats.handler_errors += 1
                    self._log.exception("%s: loss handler failed", self.stream)

    def _maybe_report_recovery(self) -> None:
        if self._pending_outage is not None and self._recovery_complete():
            self._report_outage(self._first_exchange_ts_ms, "data flows again after")

    def _report_outage(self, first_exchange_ts_ms: int | None, what: str) -> None:
        pending = self._pending_outage
        assert pending is not None
        self._pending_outage = None
        outage = Outage(
            stream=self.stream,
            category=self.category,
            cause=pending.cause,
            last_exchange_ts_ms=pending.last_exchange_ts_ms,
            last_received_ns=pending.last_received_ns,
            lost_at_ns=pending.lost_at_ns,
            first_exchange_ts_ms=first_exchange_ts_ms,
            recovered_at_ns=time.time_ns(),
            reconnect_attempts=pending.attempts,
        )
        self.stats.outages += 1
        self._log.warning(
            "%s: %s %.1fs outage (%s, %d attempt(s))",
            self.stream,
            what,
            outage.duration_seconds,
            outage.cause,
            outage.reconnect_attempts,
        )
        if self._on_outage is not None:
            try:
                self._on_outage(outage)
            except Exception:
                self.stats.handler_errors += 1
                self._log.exception("%s: outage handler failed", self.stream)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
