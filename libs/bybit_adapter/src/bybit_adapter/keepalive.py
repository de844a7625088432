"""The one timer task of a connection, and how a connection ends.

``Keepalive.run()`` wakes every ``settings.tick`` seconds and ends the connection with
``ConnectionLost`` when one of its bounds expires:

* a JSON ping (Bybit's heartbeat) every ``ping_interval``, answered within
  ``pong_timeout``;
* a request (subscribe, auth) answered within ``ack_timeout``; requests queued by the
  stream's frame handler (a re-subscribe) are sent at the next tick;
* data within ``stall_timeout`` (public streams).

On the way it asks the outage tracker to open outages for silences past the
threshold, which it logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import aiohttp
import msgspec

from bybit_adapter.outages import OutageTracker
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.sink import StreamStats
from bybit_adapter.subscriptions import next_req_id
from bybit_records import OutageCause

_encode = msgspec.json.Encoder().encode


class ConnectionLost(Exception):
    """The current connection is over; ``cause`` says why."""

    def __init__(self, cause: OutageCause, detail: str = "") -> None:
        super().__init__(detail or cause.value)
        self.cause = cause


@dataclass(eq=False, slots=True)
class Keepalive:
    """The timer task of one connection (``ws``) of the stream ``name``.

    ``outbox`` hands over the requests to send at the next tick; ``unanswered`` names
    the requests unanswered for longer than ``ack_timeout``.
    """

    settings: WebSocketSettings
    tracker: OutageTracker
    ws: aiohttp.ClientWebSocketResponse
    outbox: Callable[[], list[dict[str, Any]]]
    unanswered: Callable[[], list[str]]
    log: logging.Logger
    name: str
    stats: StreamStats
    clock: Callable[[], float] = time.monotonic
    _pong_due: float | None = field(default=None, init=False)

    def pong(self) -> None:
        self.stats.pongs += 1
        self._pong_due = None

    async def run(self) -> NoReturn:
        settings = self.settings
        next_ping = self.clock() + settings.ping_interval
        while True:
            await asyncio.sleep(settings.tick)
            now = self.clock()
            for request in self.outbox():
                await self._send(request)
            self._watch_silence()
            if self.tracker.held:
                # Back-pressure: the reader is stopped, so a pong would wait unread.
                self._pong_due = None
                next_ping = max(next_ping, now)
            elif self._pong_due is not None and now >= self._pong_due:
                raise ConnectionLost(
                    OutageCause.PONG_TIMEOUT, f"no pong within {settings.pong_timeout:.1f}s"
                )
            unanswered = self.unanswered()
            if unanswered:
                raise ConnectionLost(
                    OutageCause.ACK_TIMEOUT,
                    f"no reply to {', '.join(unanswered[:3])} within {settings.ack_timeout:.1f}s",
                )
            if now >= next_ping and not self.tracker.held:
                next_ping = now + settings.ping_interval
                if self._pong_due is None:  # a later ping does not extend an unanswered one
                    self._pong_due = now + settings.pong_timeout
                self.stats.pings_sent += 1
                await self._send({"req_id": next_req_id("ping"), "op": "ping"})

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_str(_encode(payload).decode())

    def _watch_silence(self) -> None:
        for silent in self.tracker.check():
            if silent == "*":
                self.log.warning(
                    "%s: no data for %.1fs; outage opened (it ends when data flows again)",
                    self.name,
                    self.tracker.silence_seconds,
                )
            else:
                self.log.warning(
                    "%s: nothing for %s in %.1fs while other data flows; outage opened",
                    self.name,
                    silent,
                    self.tracker.silence_seconds,
                )
        stall = self.settings.stall_timeout
        if stall is not None and self.tracker.silent_for() >= stall:
            raise ConnectionLost(OutageCause.STALL, f"no data for {stall:.1f}s")
