"""``trades_from_raw``: the typed fast path for publicTrade frames agrees with the generic one.

For every frame it accepts, its events equal those the generic path (decode into dicts,
``normalize_public``) makes; every frame it declines is left to the generic path.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bybit_adapter import (
    BybitNormalizer,
    FrameRejected,
    PublicWebSocketClient,
    TradeEvent,
    WebSocketSettings,
)
from bybit_adapter.normalizer import trades_from_raw

CAPTURED = Path(__file__).parent / "fixtures" / "captured"
RECEIVED_NS = 1_700_000_000_123_456_789
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _trade_frames() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(CAPTURED.glob("*.jsonl")):
        category = (
            "option" if "_option_" in path.name else "spot" if "_spot_" in path.name else None
        )
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            frame = json.loads(line)
            if not frame["topic"].startswith("publicTrade."):
                continue
            symbol = frame["topic"].rsplit(".", 1)[-1]
            cat = category or ("inverse" if symbol.endswith(("USD", "USDU23")) else "linear")
            out.append((cat, frame))
    return out


TRADE_FRAMES = _trade_frames()


def generic(category: str, raw: str | bytes) -> list[TradeEvent] | str:
    """What the generic path makes of a frame: its events, or why it refused it."""
    try:
        message = msgspec.json.decode(raw)
        if not isinstance(message, dict):
            return "not an object"
        events = BybitNormalizer().normalize_public(category, message, RECEIVED_NS)
    except FrameRejected as exc:
        return exc.reason
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        return f"undecodable: {exc}"
    return events  # type: ignore[return-value]


def assert_agrees(category: str, raw: str | bytes) -> list[TradeEvent] | None:
    fast = trades_from_raw(category, raw, RECEIVED_NS)
    if fast is not None:
        assert fast == generic(category, raw)
        assert fast, "the fast path never returns an empty list"
    return fast


def test_captured_trade_frames_take_the_fast_path_with_identical_events() -> None:
    assert {c for c, _ in TRADE_FRAMES} == {"linear", "inverse", "spot", "option"}
    for category, frame in TRADE_FRAMES:
        raw = json.dumps(frame)
        events = assert_agrees(category, raw)
        assert events is not None, frame
        assert assert_agrees(category, raw.encode()) == events  # binary frames too


def test_large_frames_share_strings_and_stay_equal() -> None:
    category, frame = next((c, f) for c, f in TRADE_FRAMES if c == "linear")
    big = copy.deepcopy(frame)
    big["data"] = [dict(frame["data"][0], i=f"id-{n}") for n in range(50)]
    events = assert_agrees(category, json.dumps(big))
    assert events is not None
    assert len(events) == 50
    assert all(e.symbol is events[0].symbol for e in events)
    assert all(e.tick_direction is events[0].tick_direction for e in events)


@pytest.mark.parametrize(
    "raw",
    [
        '{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}',
        '{"op":"pong","ret_msg":"pong"}',
        '{"topic":"publicTrade.BTCUSDT","ts":1,"data":[]}',
        '{"topic":"publicTrade.BTCUSDT","ts":true,"data":[]}',
        "not json",
        b"\xff\xfe",
        "[" * 10_000,
        "[1, 2]",
    ],
)
def test_anything_but_a_plain_trade_frame_is_left_to_the_generic_path(raw: str | bytes) -> None:
    assert trades_from_raw("linear", raw, RECEIVED_NS) is None


SEED_CATEGORY, SEED = next((c, f) for c, f in TRADE_FRAMES if c == "linear")
FIELDS = ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
NEAR_DECIMALS = st.builds(
    lambda before, number, after: before + number + after,
    st.sampled_from(["", "", "", " ", "-", "+", "\x00", "\ufeff", "0x"]),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["", "", "", ".", "\x00", "\x001", "\n", "e5", "\u0663", "\ud800"]),
)
VALUES = st.one_of(
    NEAR_DECIMALS,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["Buy", "Sell", "buy", "", "PlusTick"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(min_value=1, max_value=20),
    changes=st.lists(
        st.tuples(st.integers(min_value=0, max_value=19), st.sampled_from(FIELDS), VALUES),
        max_size=4,
    ),
    drop=st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_mutated_frames_agree_with_the_generic_path(
    size: int, changes: list[tuple[int, str, Any]], drop: list[str]
) -> None:
    frame = copy.deepcopy(SEED)
    frame["data"] = [dict(SEED["data"][0], i=f"id-{n}") for n in range(size)]
    for index, name, value in changes:
        frame["data"][index % size][name] = value
    for name in drop:
        frame["data"][0].pop(name, None)
    try:
        raw = json.dumps(frame)
    except (ValueError, UnicodeEncodeError):
        return
    events = assert_agrees(SEED_CATEGORY, raw)
    if events is not None:
        for event in events:  # the oracle of the decimal slots
            assert DECIMAL.fullmatch(event.price)
            assert DECIMAL.fullmatch(event.size)


# ---- the client's fast path -------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.trades: list[TradeEvent] = []
        self.invalid: list[str] = []


def _client(sink: Sink, fast: bool) -> PublicWebSocketClient:
    return PublicWebSocketClient(
        "ws://127.0.0.1:9/v5/public/{category}",
        ["publicTrade.BTCUSDT"],
        on_message=lambda message, ns: sink.messages.append(message),
        on_invalid=lambda raw, reason, ns: sink.invalid.append(reason),
        on_trades=(lambda events, ns: sink.trades.extend(events)) if fast else None,
        settings=WebSocketSettings(),
    )


def test_client_fast_path_counts_and_routes_like_the_generic_one() -> None:
    trade = next(f for c, f in TRADE_FRAMES if c == "linear")
    bad_price = copy.deepcopy(trade)
    bad_price["data"][0]["p"] = "1e5"
    frames: list[str | bytes] = [
        json.dumps(trade),
        json.dumps(trade).encode(),
        json.dumps(bad_price),  # declined by the fast path: the generic handler rejects it
        '{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}',
        '{"op":"pong"}',
        "not json",
    ]

    async def feed(fast: bool) -> tuple[PublicWebSocketClient, Sink]:
        sink = Sink()
        client = _client(sink, fast)
        for raw in frames:
            client._handle_frame(raw, RECEIVED_NS)
        return client, sink

    fast_client, fast_sink = asyncio.run(feed(True))
    slow_client, slow_sink = asyncio.run(feed(False))
    for field in ("frames", "data_frames", "invalid_frames", "pongs", "handler_errors"):
        assert getattr(fast_client.stats, field) == getattr(slow_client.stats, field), field
    assert fast_client.stats.data_frames == 4
    assert fast_client.stats.last_data_received_ns == RECEIVED_NS
    assert len(fast_sink.trades) == 2 * len(trade["data"])
    # the two good trade frames went the fast way, the rest as before
    assert [m["topic"] for m in fast_sink.messages] == [trade["topic"], "tickers.BTCUSDT"]
    assert len(slow_sink.messages) == 4
    expected = BybitNormalizer().normalize_public("linear", trade, RECEIVED_NS)
    assert fast_sink.trades == expected * 2
    assert fast_sink.invalid == slow_sink.invalid
