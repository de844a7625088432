"""Builders of public data frames with the key order and JSON types of real Bybit frames.

Key order per category follows the captures in ``shared/bybit-v5/captured`` and research
section 5: derivatives put ``type`` before ``ts``; spot puts ``ts`` before ``type``; option
frames carry an envelope ``id`` and put ``type`` last.
"""

from __future__ import annotations

from typing import Any

from bybit_sim.truth import TruthTrade

MAX_TRADES_PER_FRAME = 1024


def trade_item(category: str, t: TruthTrade) -> dict[str, Any]:
    """One element of a ``publicTrade`` frame's ``data`` array."""
    if category == "spot":
        # real spot key order (mainnet 2025): i, T, p, v, S, seq, s, BT, RPI; no "L"
        return {
            "i": t.trade_id,
            "T": t.time_ms,
            "p": t.price,
            "v": t.size,
            "S": t.side,
            "seq": t.seq,
            "s": t.symbol,
            "BT": t.is_block_trade,
            "RPI": t.is_rpi,
        }
    if category == "option":
        item: dict[str, Any] = {
            "p": t.price,
            "v": t.size,
            "i": t.trade_id,
            "T": t.time_ms,
            "BT": t.is_block_trade,
            "s": t.symbol,
            "S": t.side,
        }
        if t.option_marks is not None:
            item["mP"], item["iP"], item["mIv"], item["iv"] = t.option_marks
        item["RPI"] = t.is_rpi
        item["seq"] = t.seq
        return item
    # linear / inverse (mainnet 2025 key order)
    return {
        "T": t.time_ms,
        "s": t.symbol,
        "S": t.side,
        "v": t.size,
        "p": t.price,
        "L": t.tick_direction,
        "i": t.trade_id,
        "BT": t.is_block_trade,
        "RPI": t.is_rpi,
        "seq": t.seq,
    }


#: The envelope keys in Bybit's order, per stream and per category kind: spot, option, and
#: the contracts (linear, inverse). Option frames carry an ``id`` and no ``cs``/``cts``.
_ENVELOPE_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "trade": {
        "spot": ("topic", "ts", "type", "data"),
        "option": ("id", "topic", "ts", "data", "type"),
        "contract": ("topic", "type", "ts", "data"),
    },
    "ticker": {
        "spot": ("topic", "ts", "type", "cs", "data"),
        "option": ("id", "topic", "ts", "data", "type"),
        "contract": ("topic", "type", "data", "cs", "ts"),
    },
    "orderbook": {
        "spot": ("topic", "ts", "type", "data", "cts"),
        "option": ("id", "topic", "ts", "data", "type"),
        "contract": ("topic", "type", "ts", "data", "cts"),
    },
}


def _envelope(stream: str, category: str, values: dict[str, Any]) -> dict[str, Any]:
    """A frame of ``stream`` holding the keys of ``category``'s envelope, in their order."""
    kind = category if category in ("spot", "option") else "contract"
    return {key: values[key] for key in _ENVELOPE_KEYS[stream][kind]}


def trade_frame(
    category: str, topic: str, ts: int, items: list[dict[str, Any]], frame_id: str | None = None
) -> dict[str, Any]:
    values = {"id": frame_id or "", "topic": topic, "type": "snapshot", "ts": ts, "data": items}
    return _envelope("trade", category, values)


def ticker_frame(
    category: str,
    topic: str,
    kind: str,
    data: dict[str, Any],
    cs: int,
    ts: int,
    frame_id: str | None = None,
) -> dict[str, Any]:
    values = {"id": frame_id or "", "topic": topic, "type": kind, "ts": ts, "cs": cs, "data": data}
    return _envelope("ticker", category, values)


def orderbook_frame(
    category: str,
    topic: str,
    kind: str,
    ts: int,
    data: dict[str, Any],
    cts: int,
    frame_id: str | None = None,
) -> dict[str, Any]:
    values = {
        "id": frame_id or "",
        "topic": topic,
        "type": kind,
        "ts": ts,
        "data": data,
        "cts": cts,
    }
    return _envelope("orderbook", category, values)
