"""``TradeDecoder.fast``: the typed hot path for publicTrade frames agrees with ``frame``.

It accepts exactly the non-empty trade frames ``TradeDecoder.frame`` accepts, with equal
records; every frame it declines is left to the stream's generic path.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bybit_adapter import FrameRejected, PublicStream, TickerDecoder, TradeDecoder
from bybit_records import Category, Ticker, Trade

from .conftest import FAST, RECEIVED_NS, RecordingSink, all_captured

DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
TRADE_FRAMES = [(c, f) for c, f in all_captured() if f["topic"].startswith("publicTrade.")]


def generic(category: Category, raw: str | bytes) -> list[Trade] | str:
    """What the generic path makes of a frame: its records, or why it refused it."""
    try:
        message = msgspec.json.decode(raw)
        if not isinstance(message, dict):
            return "not an object"
        return TradeDecoder(category).frame(message, RECEIVED_NS)
    except FrameRejected as exc:
        return exc.reason
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        return f"undecodable: {exc}"


def assert_agrees(category: Category, raw: str | bytes) -> list[Trade] | None:
    fast = TradeDecoder(category).fast(raw, RECEIVED_NS)
    if fast is not None:
        assert fast == generic(category, raw)
        assert fast, "the fast path never returns an empty list"
    return fast


def test_captured_trade_frames_take_the_fast_path_with_identical_records() -> None:
    assert {c for c, _ in TRADE_FRAMES} == set(Category)
    for category, frame in TRADE_FRAMES:
        raw = json.dumps(frame)
        records = assert_agrees(category, raw)
        assert records is not None, frame
        assert assert_agrees(category, raw.encode()) == records  # binary frames too
        assert all(r.category is category for r in records)


def test_large_frames_stay_equal() -> None:
    """Above eight trades the decimals are checked in one regex call: same records."""
    category, frame = next((c, f) for c, f in TRADE_FRAMES if c is Category.LINEAR)
    big = copy.deepcopy(frame)
    big["data"] = [dict(frame["data"][0], i=f"id-{n}") for n in range(50)]
    records = assert_agrees(category, json.dumps(big))
    assert records is not None
    assert len(records) == 50
    assert [r.trade_id for r in records] == [f"id-{n}" for n in range(50)]


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
    assert TradeDecoder(Category.LINEAR).fast(raw, RECEIVED_NS) is None


@pytest.mark.parametrize(
    ("size", "value"),
    [(1, "1e5"), (20, "1e5"), (1, "1.5\n"), (20, "1.5\n"), (20, "1\x002"), (20, "")],
    ids=["small-exp", "large-exp", "small-newline", "large-newline", "large-nul", "large-empty"],
)
def test_a_bad_decimal_is_declined_in_small_and_large_frames(size: int, value: str) -> None:
    """Large frames check their decimals joined by NUL in one match: a NUL inside a
    value, or an empty one, must not let a bad value through."""
    category, seed = next((c, f) for c, f in TRADE_FRAMES if c is Category.LINEAR)
    frame = copy.deepcopy(seed)
    frame["data"] = [dict(seed["data"][0], i=f"id-{n}") for n in range(size)]
    frame["data"][size // 2]["p"] = value
    assert assert_agrees(category, json.dumps(frame)) is None
    assert isinstance(generic(category, json.dumps(frame)), str)


SEED_CATEGORY, SEED = next((c, f) for c, f in TRADE_FRAMES if c is Category.LINEAR)
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
    records = assert_agrees(SEED_CATEGORY, raw)
    if records is not None:
        for record in records:  # the oracle of the decimal slots
            assert DECIMAL.fullmatch(record.price)
            assert DECIMAL.fullmatch(record.size)
    else:
        # declined: the generic path rejects it too (the fast path accepts exactly
        # the trade frames ``frame()`` accepts)
        assert isinstance(generic(SEED_CATEGORY, raw), str)


# ---- the stream's use of the fast path -------------------------------------------------


@pytest.fixture
async def stream() -> AsyncIterator[PublicStream]:
    """A started stream whose connection never gets to run: frames are fed by hand."""
    public = PublicStream(
        "ws://127.0.0.1:9/v5/public/{category}",
        Category.LINEAR,
        ["BTCUSDT"],
        RecordingSink(),
        settings=FAST,
    )
    await public.start()
    yield public
    await public.stop()


def test_the_stream_routes_fast_and_generic_frames_alike(stream: PublicStream) -> None:
    sink = stream._sink
    assert isinstance(sink, RecordingSink)
    trade = next(f for c, f in TRADE_FRAMES if c is Category.LINEAR)
    bad_price = copy.deepcopy(trade)
    bad_price["data"][0]["p"] = "1e5"
    ticker = '{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}'
    frames: list[str | bytes] = [
        json.dumps(trade),
        json.dumps(trade).encode(),
        json.dumps(bad_price),  # declined by the fast path: the generic path rejects it
        ticker,
        '{"op":"pong"}',
        "not json",
    ]
    for raw in frames:
        stream._frame(raw, RECEIVED_NS)
    assert stream.stats.frames == 6
    assert stream.stats.data_frames == 3
    assert stream.stats.rejected_frames == 2
    assert stream.stats.last_data_received_ns == RECEIVED_NS
    expected = TradeDecoder(Category.LINEAR).frame(trade, RECEIVED_NS)
    assert sink.trades() == expected * 2
    assert sink.tickers() == [TickerDecoder(Category.LINEAR).frame(json.loads(ticker), RECEIVED_NS)]
    assert isinstance(sink.received[-1], Ticker)
    reasons = [r.reason for r in sink.rejections]
    assert reasons[0] == generic(Category.LINEAR, json.dumps(bad_price))
    assert reasons[1].startswith("not JSON")
