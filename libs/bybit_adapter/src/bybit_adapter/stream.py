"""What the public and the private stream share: lifecycle, the connection loop, reporting.

A stream owns one task: ``async for ws in Connector(...)``, each connection served by the
subclass's ``_serve`` until it is lost. The subclass's module holds its frame path
(``_frame``); this module holds what every stream does the same way: start and stop,
counting a loss, reporting an outage or a rejected frame to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import msgspec

from bybit_adapter.keepalive import ConnectionLost, Keepalive
from bybit_adapter.lifecycle import StartStop
from bybit_adapter.log_throttle import ThrottledLog
from bybit_adapter.outages import Outage, OutageTracker
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.sink import ConnectionState, StreamSink, StreamStats
from bybit_adapter.transport import Connector, Socket, client_session, read_frames, serve
from bybit_records import MAX_REJECTED_PAYLOAD, MAX_REJECTED_REASON, RejectedFrame

_decode = msgspec.json.Decoder().decode


class Stream(StartStop):
    """Base of ``PublicStream`` and ``PrivateStream``: an async context manager."""

    name: str

    def __init__(
        self,
        url: str,
        sink: StreamSink,
        settings: WebSocketSettings,
        session: aiohttp.ClientSession | None,
        tracker: OutageTracker,
    ) -> None:
        self.url = url
        self.settings = settings
        self.stats = StreamStats()
        self.state = ConnectionState.IDLE
        self.tracker = tracker
        self._sink = sink
        self._log = logging.getLogger(f"bybit_adapter.{self.name}")
        self._throttled = ThrottledLog(self._log)
        self._session = session
        self._owns_session = session is None
        self._connector: Connector | None = None
        self._keepalive: Keepalive | None = None
        self._outbox: list[dict[str, Any]] = []
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._session is None:
            self._session = client_session(self.settings)
        self._connector = Connector(
            self.url, self.settings, self._session, self._log, self.name, self.tracker.attempt
        )
        self._task = asyncio.create_task(self._run(), name=f"stream-{self.name}")

    async def stop(self) -> None:
        """Close the connection and stop; an outage still open is reported. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self.state is not ConnectionState.STOPPED:
            self.state = ConnectionState.STOPPED
            for outage in self.tracker.stop():
                self._report(outage, "stopping with an unrecovered")

    async def wait_connected(self) -> None:
        """Until a connection is up and its first requests are sent."""
        await self._connected.wait()

    @property
    def reconnects(self) -> int:
        return self._connector.stats.reconnects if self._connector else 0

    @property
    def connects(self) -> int:
        """Connections opened so far (0: never connected)."""
        return self._connector.stats.connects if self._connector else 0

    # ---- connections ------------------------------------------------------------

    async def _run(self) -> None:
        assert self._connector is not None
        self.state = ConnectionState.CONNECTING
        connections = aiter(self._connector)
        try:
            async for ws in connections:
                self.state = ConnectionState.CONNECTED
                self._outbox.clear()
                self.tracker.connected()
                self._log.info("%s: connected to %s", self.name, self.url)
                self._lost(await self._serve(ws))
        finally:
            await connections.aclose()  # type: ignore[attr-defined]

    async def _serve(self, ws: Socket) -> ConnectionLost:
        """Send what a new connection needs, then ``_read_until_lost``."""
        raise NotImplementedError

    async def _read_until_lost(self, ws: Socket) -> ConnectionLost:
        """Run the reader and the keepalive task until one of them ends the connection."""
        self._connected.set()
        self._keepalive = Keepalive(
            self.settings,
            self.tracker,
            ws,
            self._take_outbox,
            self._unanswered,
            self._log,
            self.name,
            self.stats,
        )
        try:
            return await serve(
                read_frames(ws, self._frame, self._sink, self.tracker), self._keepalive.run()
            )
        finally:
            self._connected.clear()

    def _frame(self, raw: str | bytes, received_ns: int) -> None:
        raise NotImplementedError

    def _unanswered(self) -> list[str]:
        """Requests unanswered for longer than ``ack_timeout``."""
        raise NotImplementedError

    def _take_outbox(self) -> list[dict[str, Any]]:
        outbox, self._outbox = self._outbox, []
        return outbox

    def _lost(self, lost: ConnectionLost) -> None:
        self.state = ConnectionState.RECONNECTING
        cause = lost.cause
        self.stats.losses[cause.value] = self.stats.losses.get(cause.value, 0) + 1
        self._log.warning("%s: connection lost (%s: %s)", self.name, cause.value, lost)
        self.tracker.lost(cause)

    # ---- reporting ----------------------------------------------------------------

    def _report(self, outage: Outage, what: str = "data flows again after a") -> None:
        self.stats.outages += 1
        scope = f" for {next(iter(outage.starts))}" if len(outage.starts) == 1 else ""
        self._log.warning(
            "%s: %s %.1fs outage%s (%s, noticed after %.1fs, %d reconnect attempt(s))",
            self.name,
            what,
            outage.duration_seconds,
            scope,
            outage.cause.value,
            outage.detection_seconds,
            outage.reconnect_attempts,
        )
        try:
            self._sink.outage(outage)
        except Exception:
            self.stats.handler_errors += 1
            self._log.exception("%s: the sink refused an outage", self.name)

    def _decoded(self, raw: str | bytes, received_ns: int) -> dict[str, Any] | None:
        """The frame as a JSON object, or None after rejecting it with the reason."""
        try:
            message = _decode(raw)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            # RecursionError: nesting deeper than Python allows; UnicodeDecodeError:
            # invalid UTF-8 in a binary frame. Neither may end the connection.
            self._reject(raw, f"not JSON: {type(exc).__name__}: {exc}"[:300], received_ns)
            return None
        if not isinstance(message, dict):
            self._reject(raw, "frame is not a JSON object", received_ns)
            return None
        return message

    def _pong(self) -> None:
        if self._keepalive is not None:
            self._keepalive.pong()

    def _reject(self, raw: str | bytes, reason: str, received_ns: int) -> None:
        self.stats.rejected_frames += 1
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        self._throttled.warning("%s: rejected frame (%s): %.200s", self.name, reason, text)
        frame = RejectedFrame(
            self.name,
            received_ns // 1_000_000,
            reason[:MAX_REJECTED_REASON],
            text[:MAX_REJECTED_PAYLOAD],
        )
        try:
            self._sink.rejected(frame)
        except Exception:
            self.stats.handler_errors += 1
            self._log.exception("%s: the sink refused a rejected frame", self.name)
