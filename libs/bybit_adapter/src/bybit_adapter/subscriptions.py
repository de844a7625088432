"""The topics a stream asks for, what Bybit answered, and how long an answer may take.

Requests carry at most 10 topics and a unique ``req_id``. A request is settled by its
ack, or by data arriving for every topic in it (Bybit may push data before the ack). A
topic Bybit refuses is reported once and left out of every later connection, so it is
not retried forever; the other topics of its request are asked for again (an
"already subscribed" answer counts as success).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

CATEGORIES = ("linear", "spot", "inverse", "option")
PRIVATE_TOPICS = ("execution", "order", "position", "wallet")
# Bybit refuses more than 10 args per subscribe request on spot ("args size >10")
# and other categories have refused it in the past; 10 is always accepted.
MAX_TOPICS_PER_REQUEST = 10

_req_ids = itertools.count(1)


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{symbol}"


def ticker_topic(symbol: str) -> str:
    return f"tickers.{symbol}"


def book_topic(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


def public_topics(
    symbols: Iterable[str],
    trades: bool = True,
    tickers: bool = True,
    book_depths: Sequence[int] = (),
) -> list[str]:
    topics: list[str] = []
    for symbol in symbols:
        if trades:
            topics.append(trade_topic(symbol))
        if tickers:
            topics.append(ticker_topic(symbol))
        topics += [book_topic(depth, symbol) for depth in book_depths]
    return topics


def symbol_of(topic: str) -> str:
    """``BTCUSDT`` of ``publicTrade.BTCUSDT`` (and of ``orderbook.50.BTCUSDT``)."""
    return topic.rsplit(".", 1)[-1]


def chunk_topics(topics: Sequence[str], size: int = MAX_TOPICS_PER_REQUEST) -> Iterator[list[str]]:
    if size < 1:
        raise ValueError("chunk size must be positive")
    for start in range(0, len(topics), size):
        yield list(topics[start : start + size])


def topic_named_in_error(ret_msg: str) -> str | None:
    """The topic in messages such as ``error:handler not found,topic:X``."""
    marker = "topic:"
    index = ret_msg.find(marker)
    if index < 0:
        return None
    topic = ret_msg[index + len(marker) :].split(";", 1)[0].strip()
    return topic or None


def next_req_id(prefix: str) -> str:
    return f"{prefix}-{next(_req_ids)}"


@dataclass(slots=True)
class _Request:
    topics: list[str]
    sent_at: float


class Subscriptions:
    """Subscription state of one stream, across its connections."""

    def __init__(
        self,
        topics: Sequence[str],
        on_refused: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topics = list(dict.fromkeys(topics))
        self._on_refused = on_refused
        self._clock = clock
        self.refused: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self._pending: dict[str, _Request] = {}

    @property
    def topics(self) -> list[str]:
        """Topics kept subscribed (refused ones excluded)."""
        return [t for t in self._topics if t not in self.refused]

    @property
    def complete(self) -> bool:
        """Every request of this connection is settled."""
        return not self._pending

    def reset(self) -> None:
        """A new connection: nothing is subscribed on it yet."""
        self.confirmed.clear()
        self._pending.clear()

    def connection_opened(self) -> list[dict[str, Any]]:
        """The subscribe requests a new connection sends."""
        self.reset()
        return [self._request(chunk) for chunk in chunk_topics(self.topics)]

    def overdue(self, ack_timeout: float) -> list[str]:
        """Topics of requests unanswered for longer than ``ack_timeout``."""
        deadline = self._clock() - ack_timeout
        return [t for r in self._pending.values() if r.sent_at <= deadline for t in r.topics]

    def data_for(self, topic: str) -> None:
        """Data arrived for ``topic``: it is live whatever its ack says later."""
        if not self._pending:
            return
        self.confirmed.add(topic)
        for req_id, request in list(self._pending.items()):
            if all(t in self.confirmed for t in request.topics):
                del self._pending[req_id]

    def reply(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Take a subscribe reply; returns requests to send again, if any."""
        if message.get("type") == "COMMAND_RESP":
            return self._option_reply(message)
        request = self._take(message.get("req_id"))
        if request is None:
            return []
        if message.get("success") is True:
            self.confirmed.update(request.topics)
            return []
        return self._failed(request.topics, str(message.get("ret_msg", "")))

    def resubscribe(self, topic: str) -> list[dict[str, Any]]:
        """The requests that ask for ``topic`` again on this connection: an unsubscribe,
        then a subscribe (Bybit answers it with a fresh snapshot). None for a topic this
        stream never asked for or was refused: a stray frame must not add a subscription."""
        if topic not in self.topics:
            return []
        unsubscribe = {"req_id": next_req_id("unsub"), "op": "unsubscribe", "args": [topic]}
        return [unsubscribe, self._request([topic])]

    def _take(self, req_id: Any) -> _Request | None:
        # Spot acks without a req_id carry none: then the oldest request is answered.
        if not isinstance(req_id, str) or req_id not in self._pending:
            req_id = next(iter(self._pending), None)
        return self._pending.pop(req_id, None) if req_id is not None else None

    def _option_reply(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        self._take(message.get("req_id"))
        self.confirmed.update(_topic_list(data.get("successTopics")))
        for topic in _topic_list(data.get("failTopics")):
            self._refuse(topic, "subscription refused by the server")
        return []

    def _failed(self, topics: list[str], ret_msg: str) -> list[dict[str, Any]]:
        if "already subscribed" in ret_msg:
            self.confirmed.update(topics)
            return []
        named = [t for t in topics if f"topic:{t}" in ret_msg]
        if not named:
            first = topic_named_in_error(ret_msg)
            named = [first] if first in topics else []
        if not named:
            for topic in topics:
                self._refuse(topic, ret_msg)
            return []
        for topic in named:
            self._refuse(topic, ret_msg)
        retry = [t for t in topics if t not in named]
        return [self._request(retry)] if retry else []

    def _refuse(self, topic: str, ret_msg: str) -> None:
        if topic in self.refused:
            return
        self.refused[topic] = ret_msg
        self._on_refused(topic, ret_msg)

    def _request(self, topics: list[str]) -> dict[str, Any]:
        req_id = next_req_id("sub")
        self._pending[req_id] = _Request(topics, self._clock())
        return {"req_id": req_id, "op": "subscribe", "args": topics}


def _topic_list(value: Any) -> list[str]:
    """The topic names in a reply's list; anything else a broken reply holds is ignored."""
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []
