"""``PrivateDecoder``: execution, order, position and wallet items become typed records,
from frames shaped like the examples of Bybit's V5 documentation (no private frame is
captured) and from REST lists; a corrupt item is rejected with a one-line reason."""

from __future__ import annotations

from typing import Any

import pytest

from bybit_adapter import FrameRejected, PrivateDecoder
from bybit_records import Category, DataSource, Execution, Order, Position, Ticker, Wallet

from .conftest import RECEIVED_MS, RECEIVED_NS

EXECUTION = {
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
            "orderLinkId": "",
            "side": "Sell",
            "seq": 140612148849382,
            "extraFees": "",
        }
    ],
}


def test_private_frames_become_typed_records() -> None:
    decoder = PrivateDecoder()
    (execution,) = decoder.frame(EXECUTION, RECEIVED_NS)
    assert isinstance(execution, Execution)
    assert execution.category is Category.LINEAR
    assert execution.exec_id == "0ab1bdf7-4219-438b-b30a-32ec863018f7"
    assert execution.exec_time_ms == 1746270400353  # sent as a digit string
    assert execution.exec_price == "95900.1"
    assert execution.order_link_id == ""  # an empty optional string is a value
    assert execution.exec_type is None  # absent
    assert execution.is_maker is False
    assert execution.seq == 140612148849382
    assert execution.exchange_ts_ms == 1746270400355
    assert execution.received_ts_ms == RECEIVED_MS
    assert execution.raw == EXECUTION["data"][0]  # nothing Bybit sent is lost
    wallet = {
        "topic": "wallet",
        "id": "w1",
        "creationTime": 1,
        "data": [{"accountType": "UNIFIED", "totalEquity": "10.5", "coin": [{"coin": "USDT"}]}],
    }
    (w,) = decoder.frame(wallet, 5)
    assert isinstance(w, Wallet)
    assert (w.total_equity, w.coins, w.account_type) == ("10.5", [{"coin": "USDT"}], "UNIFIED")
    position = {
        "topic": "position.linear",
        "creationTime": 2,
        "data": [{"category": "linear", "symbol": "X", "avgPrice": "12.5", "positionIdx": "1"}],
    }
    (p,) = decoder.frame(position, 5)
    assert isinstance(p, Position)
    assert (p.entry_price, p.position_idx) == ("12.5", 1)  # entryPrice falls back to avgPrice


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (
            {
                "topic": "execution",
                "creationTime": 1,
                "data": [{"category": "linear", "symbol": "X"}],
            },
            "execId: missing",
        ),
        ({"topic": "greeks", "data": []}, "unsupported private topic 'greeks'"),
        ({"data": []}, "frame has no topic"),
        ({"topic": "order", "data": {}}, "order: data is not a list"),
        (
            {
                "topic": "execution",
                "data": [dict(EXECUTION["data"][0], category="perpetual")],  # type: ignore[arg-type]
            },
            "unknown category 'perpetual'",
        ),
        (
            {"topic": "execution", "data": [dict(EXECUTION["data"][0], execTime="soon")]},  # type: ignore[arg-type]
            "execTime: expected an integer, got 'soon'",
        ),
        (
            {"topic": "execution", "data": [dict(EXECUTION["data"][0], isMaker="false")]},  # type: ignore[arg-type]
            "isMaker: expected a boolean, got str",
        ),
        ({"topic": "execution", "data": ["x"]}, "Execution: item is not an object"),
    ],
)
def test_corrupt_private_frames_are_rejected_with_a_reason(
    frame: dict[str, Any], reason: str
) -> None:
    with pytest.raises(FrameRejected) as info:
        PrivateDecoder().frame(frame, 1)
    assert reason in info.value.reason


def test_private_rest_rows_take_the_category_of_the_call() -> None:
    order = {
        "orderId": "o-1",
        "symbol": "BTCUSDT",
        "orderStatus": "Filled",
        "updatedTime": "1672364262457",
        "createdTime": "1672364262444",
        "reduceOnly": False,
    }
    (record,) = PrivateDecoder().rest(Order, [order], Category.LINEAR, RECEIVED_NS)
    assert isinstance(record, Order)
    assert record.category is Category.LINEAR
    assert record.source is DataSource.REST
    assert record.exchange_ts_ms is None
    assert (record.updated_time_ms, record.created_time_ms) == (1672364262457, 1672364262444)
    assert Ticker.natural_key is None
    assert Order.natural_key is not None
