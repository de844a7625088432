"""Fault injection: the ``sim.faults`` API (also reachable via ``POST /sim/faults/<name>``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from bybit_sim.codec import dumps, now_ms
from bybit_sim.connection import ConnectionRegistry, MuteTable, WsConnection
from bybit_sim.instruments import CATEGORIES
from bybit_sim.orderbook import BookStream
from bybit_sim.stats import SimStats
from bybit_sim.topics import ORDERBOOK_DEPTHS

log = logging.getLogger(__name__)

REST_FAULT_KINDS: frozenset[str] = frozenset(
    {"http500", "http502", "http429", "http403", "retcode10006", "retcode10016", "timeout"}
)


class Faults:
    """Faults are applied on demand; all methods are synchronous and take effect at once."""

    def __init__(self, registry: ConnectionRegistry, stats: SimStats, rng: random.Random) -> None:
        self._registry = registry
        self._stats = stats
        self._rng = rng
        self._refuse_until = 0.0
        self._rest_kind: str | None = None
        self._rest_count = 0
        self.recent_trade_cap: int | None = None
        self.mutes = MuteTable()  # shared with every public connection
        self._black_hole_until = 0.0
        self._black_hole_changed = asyncio.Event()
        self._held_upgrades = 0
        self._slow_ack_s: float | None = None
        self._slow_ack_left: int | None = None  # None: every request until clear()
        self._book_streams: Callable[[], Iterable[BookStream]] = tuple

    def attach_books(self, streams: Callable[[], Iterable[BookStream]]) -> None:
        """Where the order-book faults find the book streams (the market hub)."""
        self._book_streams = streams

    # -- WebSocket faults ---------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every open WS connection (TCP abort, no close frame). Returns how many."""
        conns = self._registry.all()
        for conn in conns:
            conn.abort()
        self._stats.ws_connections_dropped += len(conns)
        log.info("fault: dropped %d connection(s)", len(conns))
        return len(conns)

    def refuse_connections(self, seconds: float) -> None:
        """New WS upgrades get HTTP 503 for ``seconds``."""
        self._refuse_until = asyncio.get_running_loop().time() + seconds
        log.info("fault: refusing WS upgrades for %.2fs", seconds)

    def refusing(self) -> bool:
        return asyncio.get_running_loop().time() < self._refuse_until

    def pause(self, seconds: float, pongs: bool = False) -> int:
        """Connections open now (public and private) get no data frames for ``seconds``.

        Frames produced meanwhile are lost for them (never delivered late); afterwards the
        same sockets deliver new data again by themselves. With ``pongs=False`` acks and
        pongs are withheld too and requests are ignored (the link is silent: ``stall``);
        with ``pongs=True`` only frames with a topic are withheld, pings are answered and
        requests acked. Connections opened later are not affected. Returns how many.
        """
        seconds = _seconds(seconds)
        if not isinstance(pongs, bool):
            raise TypeError("pongs must be a boolean")
        conns = self._registry.all()
        for conn in conns:
            conn.pause(seconds, pongs=pongs)
        log.info(
            "fault: paused %d connection(s) for %.2fs (%s)",
            len(conns),
            seconds,
            "data only" if pongs else "data, acks and pongs",
        )
        return len(conns)

    def stall(self, seconds: float) -> int:
        """``pause(seconds)``: nothing at all (data, acks, pongs) for ``seconds``."""
        return self.pause(seconds)

    def mute(self, symbol: str, seconds: float, category: str | None = None) -> int:
        """No frame of any topic of ``symbol`` reaches a public connection for ``seconds``.

        Of ``category`` only, or every category when None. Trades printed meanwhile still
        go to ground truth and the REST window. Returns how many connections subscribed to
        a topic of the symbol are affected now (connections subscribing later are muted
        too, but not counted).
        """
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("symbol must be a non-empty string")
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        seconds = _seconds(seconds)
        self.mutes.mute(category, symbol, seconds)
        affected = sum(
            1
            for conn in self._registry.public()
            if any(self.mutes.matches(conn.category, t, category, symbol) for t in conn.topics)
        )
        log.info(
            "fault: muted %s/%s for %.2fs (%d connection(s))",
            category or "*",
            symbol,
            seconds,
            affected,
        )
        return affected

    def black_hole(self, seconds: float) -> None:
        """New WS upgrades get no answer for ``seconds``; then held ones are aborted.

        The TCP connection is accepted and the upgrade request read, but the handler holds
        it without responding; when the window ends (or ``clear()``) every held request's
        transport is aborted (a client still waiting sees a reset). REST is not affected,
        nor are connections already open.
        """
        seconds = _seconds(seconds)
        self._black_hole_until = asyncio.get_running_loop().time() + seconds
        self._wake_held()
        log.info("fault: black-holing WS upgrades for %.2fs", seconds)

    def black_holing(self) -> bool:
        return asyncio.get_running_loop().time() < self._black_hole_until

    def _wake_held(self) -> None:
        self._black_hole_changed.set()
        self._black_hole_changed = asyncio.Event()

    async def hold_upgrade(self, transport: asyncio.Transport | None) -> None:
        """Hold an upgrade request until the black hole closes, then abort its transport."""
        self._stats.ws_upgrades_black_holed += 1
        self._held_upgrades += 1
        loop = asyncio.get_running_loop()
        try:
            while (remaining := self._black_hole_until - loop.time()) > 0:
                changed = self._black_hole_changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()
        finally:
            self._held_upgrades -= 1
            if transport is not None and not transport.is_closing():
                _reset(transport)

    def release_held(self) -> None:
        """End the black hole now (server shutdown): held upgrades are aborted."""
        self._black_hole_until = 0.0
        self._wake_held()

    def slow_ack(self, seconds: float, count: int | None = None) -> None:
        """Delay the next ``count`` subscribe requests (and private ``auth``) by ``seconds``.

        Each delayed request is processed ``seconds`` after it arrived: the subscription
        takes effect, its snapshots and its ack are sent only then. The fault stays armed
        until ``count`` requests were delayed (``None``: every request until ``clear()``).
        Pings and other requests are answered normally meanwhile; nothing is sent if the
        connection closes first.
        """
        seconds = _seconds(seconds)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ValueError("count must be a positive integer or null")
        self._slow_ack_s = seconds
        self._slow_ack_left = count
        log.info(
            "fault: delaying %s subscribe/auth request(s) by %.2fs",
            "every" if count is None else f"the next {count}",
            seconds,
        )

    def take_slow_ack(self) -> float | None:
        """Consume one delayed request: its delay, or None (called by the read loop)."""
        delay = self._slow_ack_s
        if delay is None:
            return None
        if self._slow_ack_left is not None:
            self._slow_ack_left -= 1
            if self._slow_ack_left <= 0:
                self._slow_ack_s = None
                self._slow_ack_left = None
        self._stats.ws_requests_delayed += 1
        return delay

    def malformed_frames(self, n: int) -> int:
        """Queue ``n`` malformed frames on each public connection, interleaved with data."""
        conns = self._registry.public()
        for conn in conns:
            conn.add_malformed(n)
        log.info("fault: %d malformed frame(s) for %d connection(s)", n, len(conns))
        return len(conns)

    # -- order-book faults ----------------------------------------------------------------
    def _books(
        self, symbol: str, depth: int | None, category: str | None, fault: str
    ) -> list[BookStream]:
        """The active streams of ``symbol`` (of ``depth``, of ``category``) to arm."""
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("symbol must be a non-empty string")
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        if depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int):
                raise TypeError("depth must be an integer")
            allowed = (
                ORDERBOOK_DEPTHS[category]
                if category
                else frozenset().union(*ORDERBOOK_DEPTHS.values())
            )
            if depth not in allowed:
                raise ValueError(f"no order book of depth {depth} ({sorted(allowed)})")
        found = [
            s
            for s in self._book_streams()
            if s.active
            and s.spec.symbol == symbol
            and (depth is None or s.depth == depth)
            and (category is None or s.category == category)
        ]
        log.info(
            "fault: %s armed on %d book stream(s) of %s/%s%s",
            fault,
            len(found),
            category or "*",
            symbol,
            "" if depth is None else f" depth {depth}",
        )
        return found

    def book_skip_update(self, symbol: str, depth: int, category: str | None = None) -> int:
        """The next frame of ``orderbook.{depth}.{symbol}`` has ``u`` one too high (a gap).

        Only streams with subscribers now are armed (of ``category``, or every category
        when None); returns how many. The book itself stays right: a client that applies
        the delta anyway still matches ground truth.
        """
        streams = self._books(symbol, depth, category, "book_skip_update")
        for s in streams:
            s.skip_pending += 1
        return len(streams)

    def book_restart(self, symbol: str, category: str | None = None) -> int:
        """Every depth stream of ``symbol`` sends a ``u=1`` snapshot at its next push.

        As after a restart of Bybit's service; deltas then continue from ``u=2``.
        Returns how many streams were armed.
        """
        streams = self._books(symbol, None, category, "book_restart")
        for s in streams:
            s.restart_pending = True
        return len(streams)

    def book_crossed_delta(self, symbol: str, depth: int, category: str | None = None) -> int:
        """The next frame of ``orderbook.{depth}.{symbol}`` crosses the book.

        It inserts a bid one tick above the best ask (the worst bid leaves, so the side
        keeps ``depth`` levels); the frame after it removes the bogus bid again. On depth 1
        (snapshot-only) the crossed frame is a snapshot. Ground truth records what was
        pushed, crossed state included. Returns how many streams were armed.
        """
        streams = self._books(symbol, depth, category, "book_crossed_delta")
        for s in streams:
            s.crossed_pending += 1
        return len(streams)

    def book_stale_resend(self, symbol: str, category: str | None = None) -> int:
        """The next depth-1 snapshot of ``symbol`` with a changed book keeps the old ``u``.

        A re-sent depth-1 snapshot with the same ``u`` is normal when the book did not
        change for 3 s (same content). The fault is the abnormal case: a snapshot under
        the previous ``u`` whose content differs from the last snapshot with that ``u``.
        The following change gets ``u + 1`` again. Returns how many streams were armed.
        """
        streams = self._books(symbol, 1, category, "book_stale_resend")
        for s in streams:
            s.stale_pending += 1
        return len(streams)

    # -- REST faults --------------------------------------------------------------------
    def rest_errors(self, kind: str, count: int = 1) -> None:
        if kind not in REST_FAULT_KINDS:
            raise ValueError(
                f"unknown REST fault kind {kind!r}; expected one of {sorted(REST_FAULT_KINDS)}"
            )
        self._rest_kind = kind
        self._rest_count = max(0, count)
        log.info("fault: next %d REST replies fail with %s", count, kind)

    def take_rest_fault(self) -> str | None:
        """Consume one pending REST fault (called by the REST middleware)."""
        if self._rest_kind is None or self._rest_count <= 0:
            return None
        self._rest_count -= 1
        kind = self._rest_kind
        if self._rest_count == 0:
            self._rest_kind = None
        self._stats.rest_faults_injected += 1
        return kind

    def recent_trade_limit(self, n: int | None) -> None:
        """REST recent-trade returns at most ``n`` newest trades; ``None`` resets."""
        self.recent_trade_cap = n

    def clear(self) -> None:
        self._refuse_until = 0.0
        self._rest_kind = None
        self._rest_count = 0
        self.recent_trade_cap = None
        self.mutes.clear()
        self.release_held()
        self._slow_ack_s = None
        self._slow_ack_left = None
        for conn in self._registry.all():
            conn.unstall()
            conn.pending_malformed = 0
        for stream in self._book_streams():
            stream.disarm()

    def status(self) -> dict[str, Any]:
        slow: dict[str, Any] | None = None
        if self._slow_ack_s is not None:
            slow = {"seconds": self._slow_ack_s, "remaining": self._slow_ack_left}
        return {
            "refusing": self.refusing(),
            "rest_kind": self._rest_kind,
            "rest_count": self._rest_count,
            "recent_trade_limit": self.recent_trade_cap,
            "paused_connections": self._registry.paused(),
            "muted": self.mutes.active(),
            "black_hole": self.black_holing(),
            "black_holed_upgrades_held": self._held_upgrades,
            "slow_ack": slow,
            "book": [
                {"category": s.category, "symbol": s.spec.symbol, "depth": s.depth, **armed}
                for s in self._book_streams()
                if (armed := s.armed())
            ],
        }


def _reset(transport: asyncio.Transport) -> None:
    """Abort with an RST (SO_LINGER 0), so a waiting client sees "connection reset"."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _seconds(value: float) -> float:
    """A duration argument: a finite, non-negative number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("seconds must be a number")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("seconds must be a finite number >= 0")
    return seconds


def malformed_frame(conn: WsConnection) -> bytes:
    """The next malformed frame for ``conn``; cycles through four kinds of breakage."""
    trade_topics = sorted(t for t in conn.topics if t.startswith("publicTrade."))
    topic = trade_topics[0] if trade_topics else "publicTrade.BTCUSDT"
    symbol = topic.split(".", 1)[1]
    ts = now_ms()
    kind = conn.malformed_sent % 4
    if kind == 0:  # not JSON at all (a truncated frame)
        return b'{"topic":"' + topic.encode() + b'","type":"snapshot","ts":' + str(ts).encode()
    if kind == 1:  # wrong JSON types: numbers where Bybit sends strings and vice versa
        return dumps(
            {
                "topic": topic,
                "type": "snapshot",
                "ts": str(ts),
                "data": [
                    {
                        "T": str(ts),
                        "s": symbol,
                        "S": "Buy",
                        "v": 0.5,
                        "p": 123,
                        "L": "PlusTick",
                        "i": 42,
                        "BT": "false",
                        "RPI": False,
                        "seq": "1",
                    }
                ],
            }
        )
    if kind == 2:  # required fields missing
        return dumps(
            {
                "topic": topic,
                "type": "snapshot",
                "ts": ts,
                "data": [{"s": symbol, "S": "Sell", "BT": False}],
            }
        )
    return dumps(
        {"topic": f"unknownTopic.{symbol}", "type": "snapshot", "ts": ts, "data": {"foo": "bar"}}
    )
