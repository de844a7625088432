"""The decoders against real captured mainnet frames (tests/fixtures/captured).

Every captured frame still decodes to the values Bybit sent, and a corrupt frame is
rejected with a one-line reason. The routing of whole frames (which decoder, which
topics are not recorded) is checked through ``PublicStream``, as it runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bybit_adapter import FrameRejected, PublicStream, TickerDecoder, TradeDecoder
from bybit_records import Category, DataSource, FrameType, Trade

from .conftest import (
    FAST,
    RECEIVED_MS,
    RECEIVED_NS,
    REST_TRADES,
    RecordingSink,
    all_captured,
    captured,
)

LINEAR_INVERSE = captured("tardis-node_v5_linear_inverse_2023-04.jsonl")
OPTION = captured("tardis-node_v5_option_2023-04.jsonl")
SPOT = captured("tardis-node_v5_spot_2023-04.jsonl")


def by_topic(items: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [f for f in items if f["topic"] == topic]


def inverse_trade(trade_id: str, size: str, tick: str) -> Trade:
    return Trade(
        category=Category.INVERSE,
        symbol="BTCUSD",
        trade_id=trade_id,
        trade_time_ms=1680673823564,
        side="Buy",
        price="28560.50",
        size=size,
        tick_direction=tick,
        is_block_trade=False,
        is_rpi=None,
        seq=None,
        exchange_ts_ms=1680673823566,
        received_ts_ms=RECEIVED_MS,
    )


def test_inverse_trades_keep_every_field_exactly() -> None:
    frame = by_topic(LINEAR_INVERSE, "publicTrade.BTCUSD")[0]
    trades = TradeDecoder(Category.INVERSE).frame(frame, RECEIVED_NS)
    assert trades == [
        inverse_trade("0cbf2330-952d-5d03-a462-4bf826c867af", "5823", "PlusTick"),
        inverse_trade("912e56de-9ed6-5f4f-9421-f0ff5a42d84a", "3", "ZeroPlusTick"),
        inverse_trade("cb558b74-cf72-5157-b53b-93944db336ad", "5593", "ZeroPlusTick"),
    ]
    assert all(t.source is DataSource.WS for t in trades)


def test_linear_trade() -> None:
    frame = by_topic(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]
    (trade,) = TradeDecoder(Category.LINEAR).frame(frame, RECEIVED_NS)
    assert (trade.symbol, trade.trade_id, trade.price, trade.size, trade.side) == (
        "LTCUSDT",
        "4c7b6bdc-b4a3-5716-9c7b-bbe01dc7072f",
        "94.53",
        "0.4",
        "Buy",
    )
    assert (trade.trade_time_ms, trade.exchange_ts_ms) == (1680688979983, 1680688979985)
    assert trade.tick_direction == "ZeroMinusTick"
    assert trade.category is Category.LINEAR


def test_spot_trades_have_decimal_ids_and_no_tick_direction() -> None:
    decoder = TradeDecoder(Category.SPOT)
    trades = decoder.frame(by_topic(SPOT, "publicTrade.BTCUSDT")[0], RECEIVED_NS)
    assert [t.trade_id for t in trades] == [
        "2290000000050703789",
        "2290000000050703790",
        "2290000000050703791",
        "2290000000050703792",
    ]
    assert [t.size for t in trades] == ["0.041732", "0.008513", "0.042384", "0.055371"]
    assert {t.price for t in trades} == {"28165.38"}
    assert {t.side for t in trades} == {"Sell"}
    assert all(t.tick_direction is None and t.category is Category.SPOT for t in trades)
    usdc = decoder.frame(by_topic(SPOT, "publicTrade.BTCUSDC")[0], 1)
    assert [(t.symbol, t.trade_id, t.price, t.size) for t in usdc] == [
        ("BTCUSDC", "2240000000041223438", "28528.98", "0.00433")
    ]


def test_option_trade_topic_is_keyed_by_base_coin_but_records_by_symbol() -> None:
    frame = by_topic(OPTION, "publicTrade.BTC")[0]
    (trade,) = TradeDecoder(Category.OPTION).frame(frame, RECEIVED_NS)
    assert trade.symbol == "BTC-28APR23-29500-C"
    assert (trade.price, trade.size, trade.side) == ("985", "0.01", "Sell")
    assert trade.trade_id == "0404c393-8419-5bac-95c3-5fea28404754"


def test_inverse_ticker_delta_is_merged_into_the_snapshot() -> None:
    decoder = TickerDecoder(Category.INVERSE)
    snapshot, delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")
    first = decoder.frame(snapshot, 1_000_000)
    second = decoder.frame(delta, 2_000_000)
    # The whole state is kept: the fields without a column in ``data``, as sent.
    assert first.state() == snapshot["data"]
    assert first.data == {"tickDirection": "MinusTick", "prevPrice1h": "28500.50"}
    assert first.frame_type is FrameType.SNAPSHOT
    assert second.frame_type is FrameType.DELTA
    assert (second.exchange_ts_ms, second.cross_seq) == (1680673822776, 20856433603)
    assert (first.received_ts_ms, second.received_ts_ms) == (1, 2)
    # changed by the delta
    assert second.state()["openInterest"] == second.open_interest == "449736674"
    # absent from the delta, so carried over from the snapshot
    assert second.state()["lastPrice"] == second.last_price == "28560.00"
    assert second.state()["markPrice"] == second.mark_price == "28560.00"
    assert second.state()["volume24h"] == second.volume_24h == "661543991"
    # of the fields without a column, a delta row holds those the delta sent (none here)
    assert second.data == {}
    assert second.state().keys() == snapshot["data"].keys() - first.data.keys()
    # the first record's state is not mutated by the merge
    assert first.state()["openInterest"] == first.open_interest == "449736676"


def test_future_ticker_keeps_empty_strings_as_values() -> None:
    decoder = TickerDecoder(Category.INVERSE)
    snapshot, delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSDU23")
    first = decoder.frame(snapshot, 1)
    merged = decoder.frame(delta, 2)
    assert merged.state()["fundingRate"] == merged.funding_rate == ""
    assert merged.state()["nextFundingTime"] == merged.next_funding_time == ""
    assert {**first.data, **merged.data}["basisRate"] == "0.01603111"
    assert first.state()["deliveryTime"] == "2023-09-29T08:00:00Z"


def test_linear_and_option_ticker_snapshots() -> None:
    linear = TickerDecoder(Category.LINEAR).frame(by_topic(LINEAR_INVERSE, "tickers.BTCUSDT")[0], 1)
    assert (linear.symbol, linear.bid1_price, linear.ask1_size) == ("BTCUSDT", "28550.70", "15.328")
    assert linear.state()["bid1Price"] == "28550.70"
    options = TickerDecoder(Category.OPTION)
    records = [options.frame(f, 1) for f in OPTION if f["topic"].startswith("tickers.")]
    assert [r.symbol for r in records] == ["SOL-28APR23-24-C", "ETH-30JUN23-200-P"]
    assert records[0].state()["delta"] == "0.42723543"
    assert all(r.category is Category.OPTION for r in records)


def test_delta_before_any_snapshot_is_rejected_not_guessed() -> None:
    delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")[1]
    with pytest.raises(FrameRejected, match="before any snapshot"):
        TickerDecoder(Category.INVERSE).frame(delta, 1)


def test_a_reason_quoting_a_line_break_from_the_frame_stays_one_line() -> None:
    delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")[1]
    delta = {**delta, "data": {**delta["data"], "symbol": "BTC\nUSD\r\u2028"}}
    with pytest.raises(FrameRejected) as rejected:
        TickerDecoder(Category.INVERSE).frame(delta, 1)
    assert rejected.value.reason.splitlines() == [rejected.value.reason]
    assert str(rejected.value) == "ticker delta for BTC\\nUSD\\r\\u2028 before any snapshot"


def test_a_reset_forgets_ticker_states() -> None:
    decoder = TickerDecoder(Category.INVERSE)
    snapshot, delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")
    decoder.frame(snapshot, 1)
    decoder.reset()  # a resubscribe sends fresh snapshots
    with pytest.raises(FrameRejected, match="before any snapshot"):
        decoder.frame(delta, 2)


# ---- whole frames, routed as the stream routes them ----------------------------------


@pytest.fixture
async def feed() -> AsyncIterator[Callable[[Category, list[Any]], PublicStream]]:
    """Feeds frames to a started ``PublicStream`` (whose connection never gets to run)."""
    streams: list[PublicStream] = []

    async def start(category: Category) -> PublicStream:
        stream = PublicStream(
            "ws://127.0.0.1:9/v5/public/{category}",
            category,
            ["BTCUSDT"],
            RecordingSink(),
            settings=FAST,
        )
        await stream.start()
        streams.append(stream)
        return stream

    made: dict[Category, PublicStream] = {c: await start(c) for c in Category}

    def feed_frames(category: Category, items: list[Any]) -> PublicStream:
        stream = made[category]
        for n, item in enumerate(items):
            stream._frame(item if isinstance(item, str | bytes) else json.dumps(item), n)
        return stream

    yield feed_frames
    for stream in streams:
        await stream.stop()


def sink_of(stream: PublicStream) -> RecordingSink:
    sink = stream._sink
    assert isinstance(sink, RecordingSink)
    return sink


def test_every_captured_frame_is_recorded_or_rejected_with_a_reason(feed: Any) -> None:
    routed: dict[Category, list[dict[str, Any]]] = {c: [] for c in Category}
    for category, frame in all_captured():
        routed[category].append(frame)
    records = rejections = 0
    for category, items in routed.items():
        stream = feed(category, items)
        sink = sink_of(stream)
        assert stream.stats.frames == len(items)
        assert stream.stats.data_frames + stream.stats.rejected_frames == len(items)
        for rejected in sink.rejections:
            topic = json.loads(rejected.payload)["topic"]
            assert topic.split(".")[0] in {"liquidation", "allLiquidation"}
            assert rejected.reason == f"unsupported topic {topic!r}"
            assert rejected.stream == f"public.{category.value}"
        assert all(r.category is category for r in sink.received)
        records += stream.stats.data_frames
        rejections += len(sink.rejections)
    assert records == 24  # 4 trade frames + 8 ticker frames + 12 order-book frames
    assert rejections == 3  # liquidations are not recorded


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f["data"][0].update(p=28560.5), "Expected `str`, got `float`"),
        (lambda f: f["data"][0].pop("i"), "missing required field `i`"),
        (lambda f: f["data"][0].update(i=""), "Expected `str` of length >= 1"),
        (lambda f: f["data"][0].update(S="Long"), "Invalid enum value 'Long'"),
        (lambda f: f["data"][0].update(v="12abc"), "Expected `str` matching regex"),
        (lambda f: f["data"][0].update(T="1680673823564"), "Expected `int`, got `str`"),
        (lambda f: f["data"][0].update(T=2**63), "Expected `int` <= 9223372036854775807"),
        (lambda f: f.update(data={"x": 1}), "data is not a list"),
        (lambda f: f.pop("ts"), "envelope 'ts'"),
    ],
)
def test_corrupt_trade_frames_are_rejected_with_a_reason(mutate: Any, reason: str) -> None:
    frame = json.loads(json.dumps(by_topic(LINEAR_INVERSE, "publicTrade.BTCUSD")[0]))
    mutate(frame)
    with pytest.raises(FrameRejected) as info:
        TradeDecoder(Category.INVERSE).frame(frame, 1)
    assert reason in info.value.reason
    assert "\n" not in info.value.reason


def test_corrupt_frames_reach_the_sink_as_rejections(feed: Any) -> None:
    good = by_topic(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]
    kline = dict(good, topic="kline.1.LTCUSDT")
    bad_side = json.loads(json.dumps(good))
    bad_side["data"][0]["S"] = "Long"
    stream = feed(Category.LINEAR, [kline, bad_side, "not json", "[1]", good])
    sink = sink_of(stream)
    assert [r.reason.split(":")[0] for r in sink.rejections] == [
        "unsupported topic 'kline.1.LTCUSDT'",
        "publicTrade",
        "not JSON",
        "frame is not a JSON object",
    ]
    assert "Invalid enum value 'Long'" in sink.rejections[1].reason
    assert sink.rejections[2].payload == "not json"
    assert [t.trade_id for t in sink.trades()] == ["4c7b6bdc-b4a3-5716-9c7b-bbe01dc7072f"]
    assert (stream.stats.rejected_frames, stream.stats.data_frames) == (4, 1)


def test_unknown_fields_are_tolerated() -> None:
    frame = json.loads(json.dumps(by_topic(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]))
    frame["data"][0].update(RPI=True, seq=457514743450, newField={"x": 1})
    frame["extra"] = 1
    (trade,) = TradeDecoder(Category.LINEAR).frame(frame, 1)
    assert (trade.is_rpi, trade.seq) == (True, 457514743450)


# ---- REST rows go through the same decoder ---------------------------------------------


def test_rest_trades_decode_like_the_live_ones() -> None:
    rows = [dict(REST_TRADES[0], isRPITrade=True)]
    (trade,) = TradeDecoder(Category.SPOT).rest(rows, 1672052955800, RECEIVED_NS)
    assert trade == Trade(
        category=Category.SPOT,
        symbol="BTCUSDT",
        trade_id="2100000000007764263",
        trade_time_ms=1672052955758,
        side="Buy",
        price="16618.49",
        size="0.00012",
        tick_direction=None,
        is_block_trade=False,
        is_rpi=True,
        seq=47386728960,
        exchange_ts_ms=1672052955800,
        received_ts_ms=RECEIVED_MS,
        source=DataSource.REST,
    )
    with pytest.raises(FrameRejected, match="recent-trade: price: not a decimal"):
        TradeDecoder(Category.SPOT).rest([dict(rows[0], price="1e5")], 1, 1)
