"""Topic names: parsing public and private subscription arguments."""

from __future__ import annotations

from dataclasses import dataclass

from bybit_sim.instruments import InstrumentSpec, parse_symbol, valid_option_base

# Bybit's depths and push intervals (ms) per category (docs ``websocket/public/orderbook``;
# research ``orderbooks_and_scale.md`` section A). Level 500 was removed on 2025-09-11.
BOOK_PUSH_MS: dict[str, dict[int, int]] = {
    "linear": {1: 10, 50: 20, 200: 100, 1000: 200},
    "inverse": {1: 10, 50: 20, 200: 100, 1000: 200},
    "spot": {1: 10, 50: 20, 200: 200, 1000: 200},
    "option": {25: 20, 100: 100},
}
ORDERBOOK_DEPTHS: dict[str, frozenset[int]] = {c: frozenset(d) for c, d in BOOK_PUSH_MS.items()}

PRIVATE_BASE_TOPICS: frozenset[str] = frozenset(
    {"execution", "execution.fast", "order", "position", "wallet"}
)
_PRIVATE_CATEGORISED = ("execution", "execution.fast", "order", "position")
_PRIVATE_CATEGORIES = ("spot", "linear", "inverse", "option")


@dataclass(frozen=True, slots=True)
class PublicTopic:
    """A parsed public topic.

    ``market`` is the key of the generator feeding it: the symbol, or for options the base
    coin. ``symbol`` is the instrument named in the topic (base coin for option trades).
    """

    name: str
    kind: str  # "publicTrade" | "tickers" | "orderbook"
    market: str
    symbol: str
    depth: int = 0
    spec: InstrumentSpec | None = None


def parse_public_topic(category: str, name: str, unknown: frozenset[str]) -> PublicTopic | None:
    """Parse ``name`` for a socket of ``category``; ``None`` means "handler not found"."""
    parts = name.split(".")
    if len(parts) == 2 and parts[0] == "publicTrade":
        symbol = parts[1]
        if category == "option":
            if valid_option_base(symbol, unknown):
                return PublicTopic(name, "publicTrade", symbol, symbol)
            return None
        spec = parse_symbol(category, symbol, unknown)
        return None if spec is None else PublicTopic(name, "publicTrade", symbol, symbol, 0, spec)
    if len(parts) == 2 and parts[0] == "tickers":
        spec = parse_symbol(category, parts[1], unknown)
        if spec is None:
            return None
        market = spec.base if category == "option" else spec.symbol
        return PublicTopic(name, "tickers", market, spec.symbol, 0, spec)
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
        depth = int(parts[1])
        if depth not in ORDERBOOK_DEPTHS.get(category, frozenset()) or parts[1] != str(depth):
            return None
        spec = parse_symbol(category, parts[2], unknown)
        if spec is None:
            return None
        market = spec.base if category == "option" else spec.symbol
        return PublicTopic(name, "orderbook", market, spec.symbol, depth, spec)
    return None


def parse_private_topic(name: str) -> tuple[str, str | None] | None:
    """``"execution.linear"`` -> ("execution", "linear"); ``"wallet"`` -> ("wallet", None)."""
    if name in PRIVATE_BASE_TOPICS:
        return name, None
    for base in _PRIVATE_CATEGORISED:
        prefix = base + "."
        if name.startswith(prefix) and name[len(prefix) :] in _PRIVATE_CATEGORIES:
            return base, name[len(prefix) :]
    return None
