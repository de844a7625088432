"""The WebSocket life cycle shared by public and private sockets.

Handshake (or refusal, or a black hole), registration, the read loop (text commands,
protocol pings) and clean-up. Replies are queued on the connection like data, so pauses and
ordering apply to them too; ``slow_ack`` delays subscribe/auth requests here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import WSMsgType, web

from bybit_sim.codec import dumps, loads
from bybit_sim.config import SimulatorConfig
from bybit_sim.connection import ConnectionRegistry, WsConnection
from bybit_sim.faults import Faults, malformed_frame
from bybit_sim.ids import conn_id
from bybit_sim.stats import SimStats

log = logging.getLogger(__name__)

CommandHandler = Callable[[WsConnection, Any, str], None]
CloseHandler = Callable[[WsConnection], None]
T = TypeVar("T")


def decode_error_text(text: str) -> str:
    """``Failed to decode incoming data:...`` in the style of the real (jsoniter) server.

    Observed prefix: ``Failed to decode incoming data:readObjectStart: expect { or n, but
    found h, ...``; the context part after it is this simulator's approximation.
    """
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        found = stripped[:1]
        return (
            "Failed to decode incoming data:readObjectStart: expect { or n, but found "
            f"{found}, error found in #1 byte of ...|{text[:10]}|..., bigger context "
            f"...|{text[:50]}|..."
        )
    return (
        "Failed to decode incoming data:ReadObject: found unexpected end or invalid input, "
        f"error found in #{len(text)} byte of ...|{text[-10:]}|..., bigger context "
        f"...|{text[-50:]}|..."
    )


def update_topics(
    conn: WsConnection,
    op: str,
    names: list[str],
    parse: Callable[[str], T | None],
    on_subscribed: Callable[[str, T], None] | None = None,
    on_unsubscribed: Callable[[str], None] | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Apply a subscribe/unsubscribe request to ``conn.topics``, topic by topic.

    Returns the names applied and ``(name, error text)`` for the refused ones. ``parse``
    returns ``None`` for an unknown topic; the callbacks run after a topic was added or
    removed.
    """
    ok: list[str] = []
    errors: list[tuple[str, str]] = []
    for name in names:
        if op == "unsubscribe":
            if name not in conn.topics:
                errors.append((name, f"error:not subscribed,topic:{name}"))
                continue
            conn.topics.discard(name)
            if on_unsubscribed is not None:
                on_unsubscribed(name)
        elif name in conn.topics:
            errors.append((name, f"error:already subscribed,topic:{name}"))
            continue
        else:
            topic = parse(name)
            if topic is None:
                errors.append((name, f"error:handler not found,topic:{name}"))
                continue
            conn.topics.add(name)
            if on_subscribed is not None:
                on_subscribed(name, topic)
        ok.append(name)
    return ok, errors


@dataclass(eq=False)
class SocketServer:
    """Runs one accepted socket until it closes."""

    cfg: SimulatorConfig
    registry: ConnectionRegistry
    stats: SimStats
    faults: Faults
    rng: random.Random

    async def serve(
        self,
        request: web.Request,
        *,
        kind: str,
        category: str,
        on_command: CommandHandler,
        on_bad_json: Callable[[WsConnection, str], None],
        on_close: CloseHandler,
    ) -> web.StreamResponse:
        if self.faults.refusing():
            self.stats.ws_connections_refused += 1
            return web.Response(status=503, text="503 Service Temporarily Unavailable")
        if self.faults.black_holing():
            # the request was read; hold it unanswered, then abort the TCP connection
            await self.faults.hold_upgrade(request.transport)
            return web.Response(status=503)  # never reaches the client: the socket is gone
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        transport = request.transport
        await ws.prepare(request)
        conn = WsConnection(
            ws,
            transport,
            kind=kind,
            category=category,
            conn_id=conn_id(self.rng),
            stats=self.stats,
            queue_max=self.cfg.ws_send_queue_max,
            malformed_factory=malformed_frame,
            mutes=self.faults.mutes,
        )
        self.registry.add(conn)
        self.stats.ws_connections_accepted += 1
        conn.start()
        log.debug("ws %s/%s connected (%s)", kind, category, conn.conn_id)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    raw = msg.data
                    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
                    self._on_text(conn, text, on_command, on_bad_json)
                elif msg.type == WSMsgType.PING:
                    if not conn.stalled():
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, RuntimeError) as exc:
            log.debug("ws %s read loop ended: %s", conn.conn_id, exc)
        finally:
            self.registry.discard(conn)
            on_close(conn)
            await conn.finish()
            log.debug("ws %s/%s closed (%s)", kind, category, conn.conn_id)
        return ws

    def _on_text(
        self,
        conn: WsConnection,
        text: str,
        on_command: CommandHandler,
        on_bad_json: Callable[[WsConnection, str], None],
    ) -> None:
        try:
            obj = loads(text)
        except msgspec.DecodeError:
            obj = None
            if conn.stalled():
                return
            on_bad_json(conn, text)
            return
        if not isinstance(obj, dict):
            if not conn.stalled():
                on_bad_json(conn, text)
            return
        op = obj.get("op")
        if op == "ping":
            self.stats.pings_received += 1
        if conn.stalled():
            return  # a stalled link swallows requests too (no pong, no ack)
        name = op if isinstance(op, str) else ""
        if name == "subscribe" or (name == "auth" and conn.kind == "private"):
            delay = self.faults.take_slow_ack()
            if delay is not None:
                log.debug("ws %s: %s delayed by %.2fs", conn.conn_id, name, delay)
                conn.call_later(delay, lambda: on_command(conn, obj, name))
                return
        on_command(conn, obj, name)


@dataclass(eq=False)
class StreamCommands:
    """The command side shared by the public and private streams: replies and requests."""

    cfg: SimulatorConfig
    server: SocketServer
    stats: SimStats

    def _reply(
        self, conn: WsConnection, op: str, req_id: Any, success: bool, ret_msg: str
    ) -> dict[str, Any]:
        """Generic command reply (acks, errors, pongs) in the stream's shape."""
        raise NotImplementedError

    def _send(self, conn: WsConnection, obj: dict[str, Any]) -> None:
        conn.send(dumps(obj))

    def _on_bad_json(self, conn: WsConnection, text: str) -> None:
        self._send(conn, self._reply(conn, "", None, False, decode_error_text(text)))

    def _subscription_args(
        self, conn: WsConnection, op: str, req_id: Any, args: Any
    ) -> list[str] | None:
        """The topic names of a subscribe/unsubscribe request; ``None`` once it is refused.

        Every well-formed subscribe request is recorded in ``stats.subscribe_requests``.
        """
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            # UNVERIFIED text: the real reply to a non-list/non-string args is not documented
            self._send(conn, self._reply(conn, op, req_id, False, "error:args invalid"))
            return None
        if op == "subscribe":
            self.stats.subscribe_requests.append(list(args))
        return args
