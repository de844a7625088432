"""JSON encoding and clock helpers shared by every module.

msgspec encodes ``dict`` keys in insertion order, which lets the builders reproduce the key
order of the real Bybit frames (irrelevant to a JSON parser, relevant to byte comparisons).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact JSON bytes (UTF-8)."""
    return _ENCODER.encode(obj)


def loads(data: bytes | str) -> Any:
    """Decode JSON text; raises ``msgspec.DecodeError`` on malformed input."""
    return _DECODER.decode(data)


def now_ms() -> int:
    """Wall-clock Unix time in milliseconds."""
    return time.time_ns() // 1_000_000
