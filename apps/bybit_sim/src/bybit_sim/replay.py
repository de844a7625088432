"""Replay of captured frames: turns a JSONL capture into per-market trade scripts.

Each line is either a raw Bybit frame (``{"topic": "publicTrade.BTCUSDT", ...}``) or a
wrapper object holding one under ``frame``/``raw``/``msg`` (a dict or its JSON text), with an
optional ``category``. When the category is absent it is inferred from the frame (option:
envelope ``id`` / contract symbols; spot: numeric ids and no ``L``; inverse: ``...USD``
symbols; linear otherwise). Only ``publicTrade`` frames drive replay; other topics are ignored.

A replayed market emits the captured trades (price, size, side, tick direction) in a loop,
with the captured inter-frame timing (clamped to 1 ms..2 s), but with fresh trade ids and
current timestamps so ground truth stays unique across loops.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bybit_sim.codec import loads

log = logging.getLogger(__name__)

_INVERSE_RE = re.compile(r"^[A-Z0-9]+USD([FGHJKMNQUVXZ]\d{2})?$")
_OPTION_RE = re.compile(r"^[A-Z0-9]+-\d{1,2}[A-Z]{3}\d{2}-[\d.]+-[CP](-USDT|-USDC)?$")


@dataclass(frozen=True, slots=True)
class ReplayTrade:
    symbol: str
    side: str
    price: str
    size: str
    tick_direction: str | None
    block: bool


@dataclass(slots=True)
class ReplayFrame:
    capture_ts: int
    trades: list[ReplayTrade]


@dataclass(slots=True)
class ReplayScript:
    category: str
    market: str
    frames: list[ReplayFrame] = field(default_factory=list)

    def decimals(self) -> tuple[int, int]:
        """Max decimals seen in prices and sizes (the replayed market's scales)."""
        p = max((_decimals(t.price) for f in self.frames for t in f.trades), default=2)
        q = max((_decimals(t.size) for f in self.frames for t in f.trades), default=3)
        return p, q

    def delays_ms(self) -> list[int]:
        """Delay before each frame (the first one reuses the median gap)."""
        gaps = [
            min(2000, max(1, b.capture_ts - a.capture_ts))
            for a, b in zip(self.frames, self.frames[1:], strict=False)
        ]
        first = sorted(gaps)[len(gaps) // 2] if gaps else 200
        return [first, *gaps]


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _infer_category(frame: dict[str, Any]) -> str:
    data = frame.get("data")
    items = data if isinstance(data, list) else []
    first = items[0] if items and isinstance(items[0], dict) else {}
    symbol = str(first.get("s", ""))
    if "id" in frame or _OPTION_RE.match(symbol):
        return "option"
    if _INVERSE_RE.match(symbol):
        return "inverse"
    if "L" not in first and str(first.get("i", "")).isdigit():
        return "spot"
    return "linear"


def _unwrap(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(obj, dict):
        return None, None
    if "topic" in obj:
        return obj, None
    category = obj.get("category") if isinstance(obj.get("category"), str) else None
    for key in ("frame", "raw", "msg", "message"):
        inner = obj.get(key)
        if isinstance(inner, str):
            try:
                inner = loads(inner)
            except msgspec.DecodeError:
                return None, None
        if isinstance(inner, dict) and "topic" in inner:
            return inner, category
    return None, None


def load_replay(path: str | Path) -> dict[tuple[str, str], ReplayScript]:
    """Parse a JSONL capture into replay scripts keyed by (category, market key)."""
    scripts: dict[tuple[str, str], ReplayScript] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                frame, category = _unwrap(loads(line))
            except msgspec.DecodeError:
                log.warning("replay %s:%d: not JSON, skipped", path, lineno)
                continue
            if frame is None or not str(frame.get("topic", "")).startswith("publicTrade."):
                continue
            data = frame.get("data")
            if not isinstance(data, list):
                continue
            category = category or _infer_category(frame)
            market = str(frame["topic"]).split(".", 1)[1]
            trades = [
                ReplayTrade(
                    symbol=str(d.get("s", market)),
                    side="Sell" if d.get("S") == "Sell" else "Buy",
                    price=str(d["p"]),
                    size=str(d["v"]),
                    tick_direction=str(d["L"]) if "L" in d else None,
                    block=bool(d.get("BT", False)),
                )
                for d in data
                if isinstance(d, dict) and "p" in d and "v" in d
            ]
            if not trades:
                continue
            ts = frame.get("ts")
            script = scripts.setdefault((category, market), ReplayScript(category, market))
            script.frames.append(ReplayFrame(ts if isinstance(ts, int) else 0, trades))
    for script in scripts.values():
        script.frames.sort(key=lambda f: f.capture_ts)
    log.info("replay file %s: %d market(s)", path, len(scripts))
    return scripts
