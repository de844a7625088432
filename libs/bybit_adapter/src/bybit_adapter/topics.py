"""Topic names and subscribe-request batching."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

CATEGORIES = ("linear", "spot", "inverse", "option")
PRIVATE_TOPICS = ("execution", "order", "position", "wallet")
# Bybit refuses more than 10 args per subscribe request on spot ("args size >10")
# and other categories have refused it in the past; 10 is always accepted.
MAX_TOPICS_PER_REQUEST = 10


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{symbol}"


def ticker_topic(symbol: str) -> str:
    return f"tickers.{symbol}"


def public_topics(symbols: Iterable[str], trades: bool = True, tickers: bool = True) -> list[str]:
    topics: list[str] = []
    for symbol in symbols:
        if trades:
            topics.append(trade_topic(symbol))
        if tickers:
            topics.append(ticker_topic(symbol))
    return topics


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
    topic = ret_msg[index + len(marker) :].strip()
    return topic or None
