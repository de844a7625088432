"""Fault injection: the ``sim.faults`` API (also reachable via ``POST /sim/faults/<name>``)."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from bybit_sim.codec import dumps, now_ms
from bybit_sim.connection import ConnectionRegistry, WsConnection
from bybit_sim.stats import SimStats

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

    def stall(self, seconds: float) -> int:
        """Connections open now receive nothing (data, acks, pongs) for ``seconds``.

        Their requests (pings included) are ignored meanwhile; frames produced during the
        stall are lost for them. Connections opened later are not affected.
        """
        conns = self._registry.all()
        for conn in conns:
            conn.stall(seconds)
        log.info("fault: stalled %d connection(s) for %.2fs", len(conns), seconds)
        return len(conns)

    def malformed_frames(self, n: int) -> int:
        """Queue ``n`` malformed frames on each public connection, interleaved with data."""
        conns = self._registry.public()
        for conn in conns:
            conn.add_malformed(n)
        log.info("fault: %d malformed frame(s) for %d connection(s)", n, len(conns))
        return len(conns)

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
        for conn in self._registry.all():
            conn.unstall()
            conn.pending_malformed = 0

    def status(self) -> dict[str, Any]:
        return {
            "refusing": self.refusing(),
            "rest_kind": self._rest_kind,
            "rest_count": self._rest_count,
            "recent_trade_limit": self.recent_trade_cap,
        }


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
