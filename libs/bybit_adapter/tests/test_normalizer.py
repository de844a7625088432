"""The normalizer against real captured mainnet frames (tests/fixtures/captured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bybit_adapter import BybitNormalizer, FrameRejected, TickerEvent, TradeEvent

CAPTURED = Path(__file__).parent / "fixtures" / "captured"
RECEIVED_NS = 1_700_000_000_123_456_789


def frames(name: str) -> list[dict[str, Any]]:
    lines = (CAPTURED / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


LINEAR_INVERSE = frames("tardis-node_v5_linear_inverse_2023-04.jsonl")
OPTION = frames("tardis-node_v5_option_2023-04.jsonl")
SPOT = frames("tardis-node_v5_spot_2023-04.jsonl")
INVERSE_SYMBOLS = {"BTCUSD", "BTCUSDU23", "XRPUSD"}


def category_of(frame: dict[str, Any]) -> str:
    symbol = frame["topic"].rsplit(".", 1)[-1]
    return "inverse" if symbol in INVERSE_SYMBOLS else "linear"


def by_topic(items: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [f for f in items if f["topic"] == topic]


def test_inverse_trades_keep_every_field_exactly() -> None:
    frame = by_topic(LINEAR_INVERSE, "publicTrade.BTCUSD")[0]
    trades = BybitNormalizer().normalize_public("inverse", frame, RECEIVED_NS)
    assert trades == [
        TradeEvent(
            category="inverse",
            symbol="BTCUSD",
            trade_id="0cbf2330-952d-5d03-a462-4bf826c867af",
            trade_time_ms=1680673823564,
            side="Buy",
            price="28560.50",
            size="5823",
            tick_direction="PlusTick",
            is_block_trade=False,
            is_rpi=None,
            seq=None,
            exchange_ts_ms=1680673823566,
            received_ns=RECEIVED_NS,
        ),
        TradeEvent(
            category="inverse",
            symbol="BTCUSD",
            trade_id="912e56de-9ed6-5f4f-9421-f0ff5a42d84a",
            trade_time_ms=1680673823564,
            side="Buy",
            price="28560.50",
            size="3",
            tick_direction="ZeroPlusTick",
            is_block_trade=False,
            is_rpi=None,
            seq=None,
            exchange_ts_ms=1680673823566,
            received_ns=RECEIVED_NS,
        ),
        TradeEvent(
            category="inverse",
            symbol="BTCUSD",
            trade_id="cb558b74-cf72-5157-b53b-93944db336ad",
            trade_time_ms=1680673823564,
            side="Buy",
            price="28560.50",
            size="5593",
            tick_direction="ZeroPlusTick",
            is_block_trade=False,
            is_rpi=None,
            seq=None,
            exchange_ts_ms=1680673823566,
            received_ns=RECEIVED_NS,
        ),
    ]


def test_linear_trade() -> None:
    frame = by_topic(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]
    (trade,) = BybitNormalizer().normalize_public("linear", frame, RECEIVED_NS)
    assert isinstance(trade, TradeEvent)
    assert (trade.symbol, trade.trade_id, trade.price, trade.size, trade.side) == (
        "LTCUSDT",
        "4c7b6bdc-b4a3-5716-9c7b-bbe01dc7072f",
        "94.53",
        "0.4",
        "Buy",
    )
    assert (trade.trade_time_ms, trade.exchange_ts_ms) == (1680688979983, 1680688979985)
    assert trade.tick_direction == "ZeroMinusTick"


def test_spot_trades_have_decimal_ids_and_no_tick_direction() -> None:
    frame = by_topic(SPOT, "publicTrade.BTCUSDT")[0]
    trades = BybitNormalizer().normalize_public("spot", frame, RECEIVED_NS)
    assert [t.trade_id for t in trades] == [
        "2290000000050703789",
        "2290000000050703790",
        "2290000000050703791",
        "2290000000050703792",
    ]
    assert [t.size for t in trades] == ["0.041732", "0.008513", "0.042384", "0.055371"]
    assert {t.price for t in trades} == {"28165.38"}
    assert {t.side for t in trades} == {"Sell"}
    assert all(t.tick_direction is None and t.category == "spot" for t in trades)
    usdc = BybitNormalizer().normalize_public("spot", by_topic(SPOT, "publicTrade.BTCUSDC")[0], 1)
    assert [(t.symbol, t.trade_id, t.price, t.size) for t in usdc] == [
        ("BTCUSDC", "2240000000041223438", "28528.98", "0.00433")
    ]


def test_option_trade_topic_is_keyed_by_base_coin_but_events_by_symbol() -> None:
    frame = by_topic(OPTION, "publicTrade.BTC")[0]
    (trade,) = BybitNormalizer().normalize_public("option", frame, RECEIVED_NS)
    assert isinstance(trade, TradeEvent)
    assert trade.symbol == "BTC-28APR23-29500-C"
    assert (trade.price, trade.size, trade.side) == ("985", "0.01", "Sell")
    assert trade.trade_id == "0404c393-8419-5bac-95c3-5fea28404754"


def test_inverse_ticker_delta_is_merged_into_the_snapshot() -> None:
    normalizer = BybitNormalizer()
    snapshot, delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")
    (first,) = normalizer.normalize_public("inverse", snapshot, 1)
    (second,) = normalizer.normalize_public("inverse", delta, 2)
    assert isinstance(first, TickerEvent)
    assert isinstance(second, TickerEvent)
    assert first.state == snapshot["data"]
    assert second.frame_type == "delta"
    assert (second.exchange_ts_ms, second.cross_seq) == (1680673822776, 20856433603)
    # changed by the delta
    assert second.state["openInterest"] == "449736674"
    # absent from the delta, so carried over from the snapshot
    assert second.state["lastPrice"] == "28560.00"
    assert second.state["markPrice"] == "28560.00"
    assert second.state["volume24h"] == "661543991"
    assert set(second.state) == set(snapshot["data"])
    # the first event's state is not mutated by the merge
    assert first.state["openInterest"] == "449736676"


def test_future_ticker_keeps_empty_strings_as_values() -> None:
    normalizer = BybitNormalizer()
    snapshot, delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSDU23")
    normalizer.normalize_public("inverse", snapshot, 1)
    (merged,) = normalizer.normalize_public("inverse", delta, 2)
    assert isinstance(merged, TickerEvent)
    assert merged.state["fundingRate"] == ""
    assert merged.state["nextFundingTime"] == ""
    assert merged.state["basisRate"] == "0.01603111"
    assert merged.state["deliveryTime"] == "2023-09-29T08:00:00Z"


def test_linear_and_option_ticker_snapshots() -> None:
    normalizer = BybitNormalizer()
    (linear,) = normalizer.normalize_public(
        "linear", by_topic(LINEAR_INVERSE, "tickers.BTCUSDT")[0], 1
    )
    assert isinstance(linear, TickerEvent)
    assert (linear.symbol, linear.state["bid1Price"], linear.state["ask1Size"]) == (
        "BTCUSDT",
        "28550.70",
        "15.328",
    )
    option_frames = [f for f in OPTION if f["topic"].startswith("tickers.")]
    events = [normalizer.normalize_public("option", f, 1)[0] for f in option_frames]
    assert [e.symbol for e in events] == ["SOL-28APR23-24-C", "ETH-30JUN23-200-P"]
    assert isinstance(events[0], TickerEvent)
    assert events[0].state["delta"] == "0.42723543"


def test_delta_before_any_snapshot_is_rejected_not_guessed() -> None:
    delta = by_topic(LINEAR_INVERSE, "tickers.BTCUSD")[1]
    with pytest.raises(FrameRejected, match="before any snapshot"):
        BybitNormalizer().normalize_public("inverse", delta, 1)


def test_every_captured_frame_is_either_normalized_or_rejected_with_a_reason() -> None:
    normalizer = BybitNormalizer()
    supported = rejected = 0
    for category, items in (("linear", LINEAR_INVERSE), ("option", OPTION), ("spot", SPOT)):
        for frame in items:
            cat = category_of(frame) if category == "linear" else category
            try:
                events = normalizer.normalize_public(cat, frame, 1)
            except FrameRejected as exc:
                assert frame["topic"].split(".")[0] in {
                    "orderbook",
                    "liquidation",
                    "allLiquidation",
                }
                assert "unsupported topic" in exc.reason
                rejected += 1
            else:
                assert events
                supported += 1
    assert supported == 12  # 4 trade frames + 8 ticker frames
    assert rejected == 15  # order books and liquidations are not recorded


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f["data"][0].update(p=28560.5), "Expected `str`, got `float`"),
        (lambda f: f["data"][0].pop("i"), "missing required field `i`"),
        (lambda f: f["data"][0].update(S="Long"), "Invalid enum value 'Long'"),
        (lambda f: f["data"][0].update(v="12abc"), "Expected `str` matching regex"),
        (lambda f: f["data"][0].update(T="1680673823564"), "Expected `int`, got `str`"),
        (lambda f: f.update(data={"x": 1}), "data is not a list"),
        (lambda f: f.pop("ts"), "envelope 'ts'"),
        (lambda f: f.update(topic="kline.1.BTCUSD"), "unsupported topic"),
    ],
)
def test_corrupt_trade_frames_are_rejected_with_a_reason(mutate: Any, reason: str) -> None:
    frame = json.loads(json.dumps(by_topic(LINEAR_INVERSE, "publicTrade.BTCUSD")[0]))
    mutate(frame)
    with pytest.raises(FrameRejected) as info:
        BybitNormalizer().normalize_public("inverse", frame, 1)
    assert reason in info.value.reason


def test_unknown_fields_are_tolerated() -> None:
    frame = json.loads(json.dumps(by_topic(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]))
    frame["data"][0].update(RPI=True, seq=457514743450, newField={"x": 1})
    frame["extra"] = 1
    (trade,) = BybitNormalizer().normalize_public("linear", frame, 1)
    assert isinstance(trade, TradeEvent)
    assert (trade.is_rpi, trade.seq) == (True, 457514743450)


def test_private_frames_become_typed_events() -> None:
    execution = {
        "topic": "execution",
        "id": "386825804_BTCUSDT_140612148849382",
        "creationTime": 1746270400355,
        "data": [
            {
                "category": "linear",
                "symbol": "BTCUSDT",
                "execId": "0ab1bdf7-4219-438b-b30a-32ec863018f7",
                "execPrice": "95900.1",
                "execQty": "0.5",
                "execFee": "26.3725275",
                "execTime": "1746270400353",
                "isMaker": False,
                "orderId": "9aac161b-8ed6-450d-9cab-c5cc67c21784",
                "side": "Sell",
                "seq": 140612148849382,
                "extraFees": "",
            }
        ],
    }
    (event,) = BybitNormalizer().normalize_private(execution, 5)
    assert event.exec_id == "0ab1bdf7-4219-438b-b30a-32ec863018f7"  # type: ignore[union-attr]
    assert event.exec_time_ms == 1746270400353  # type: ignore[union-attr]
    assert event.exec_price == "95900.1"  # type: ignore[union-attr]
    assert event.exchange_ts_ms == 1746270400355
    wallet = {
        "topic": "wallet",
        "id": "w1",
        "creationTime": 1,
        "data": [{"accountType": "UNIFIED", "totalEquity": "10.5", "coin": [{"coin": "USDT"}]}],
    }
    (w,) = BybitNormalizer().normalize_private(wallet, 5)
    assert w.total_equity == "10.5"  # type: ignore[union-attr]
    with pytest.raises(FrameRejected, match="execId"):
        BybitNormalizer().normalize_private(
            {
                "topic": "execution",
                "creationTime": 1,
                "data": [{"category": "linear", "symbol": "X"}],
            },
            1,
        )
