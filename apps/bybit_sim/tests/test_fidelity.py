"""Generated frames vs the real captured Bybit frames: key sets, key order and JSON types.

The 2023 captures predate ``RPI`` (2025-02) and ``seq`` (2025-08) on trades and
``singleOpenInterest*`` and a few other ticker fields, so generated keys must be a superset
of the captured keys, each shared key with the same JSON type.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import captured, recv_until, subscribe, subscribed, url

NEWER_TRADE_KEYS = {"RPI", "seq", "mP", "iP", "mIv", "iv"}
LINEAR_INVERSE = "tardis-node_v5_linear_inverse_2023-04.jsonl"
SPOT = "tardis-node_v5_spot_2023-04.jsonl"
OPTION = "tardis-node_v5_option_2023-04.jsonl"
#: the capture of each category's public stream
CAPTURE = {"linear": LINEAR_INVERSE, "inverse": LINEAR_INVERSE, "spot": SPOT, "option": OPTION}


def assert_same_types(real: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    missing = set(real) - set(ours)
    assert not missing, f"{where}: keys missing vs capture: {missing}"
    for key, value in real.items():
        assert type(ours[key]) is type(value), (
            f"{where}.{key}: ours {type(ours[key]).__name__}, real {type(value).__name__}"
        )


def assert_key_order(real: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    ours_common = [k for k in ours if k in real]
    assert ours_common == list(real), f"{where}: key order {ours_common} != {list(real)}"


def assert_like_capture(real: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    assert_same_types(real, ours, where)
    assert_key_order(real, ours, where)


async def first_frame(
    sim: BybitSimulator, session: aiohttp.ClientSession, category: str, topic: str
) -> dict[str, Any]:
    async with subscribed(session, sim, [topic], category) as (ws, before):
        early = [f for f in before if f.get("topic") == topic]  # snapshots precede the ack
        if early:
            return dict(early[0])
        frame, _ = await recv_until(ws, lambda f: f.get("topic") == topic, timeout=5)
        return dict(frame)


@pytest.mark.parametrize(
    ("category", "topic"),
    [
        pytest.param("linear", "publicTrade.LTCUSDT", id="linear-trade"),
        pytest.param("inverse", "publicTrade.BTCUSD", id="inverse-trade"),
        pytest.param("spot", "publicTrade.BTCUSDT", id="spot-trade"),
        pytest.param("option", "publicTrade.BTC", id="option-trade"),
        pytest.param("linear", "tickers.BTCUSDT", id="linear-ticker"),
        pytest.param("inverse", "tickers.BTCUSDU23", id="inverse-future-ticker"),
        pytest.param("option", "tickers.SOL-28APR23-24-C", id="option-ticker"),
    ],
)
async def test_frame_matches_capture(
    category: str, topic: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """The envelope and its data (each trade, or the ticker) match the capture's types and order."""
    real = captured(CAPTURE[category], topic)[0]
    ours = await first_frame(sim, session, category, topic)
    assert_like_capture(real, ours, "envelope")
    if isinstance(real["data"], list):
        for item in ours["data"]:
            assert_like_capture(real["data"][0], item, "trade")
    else:
        assert_like_capture(real["data"], ours["data"], "ticker")


async def test_linear_public_trade_fields(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    real = captured(LINEAR_INVERSE, "publicTrade.LTCUSDT")[0]
    ours = await first_frame(sim, session, "linear", "publicTrade.LTCUSDT")
    for item in ours["data"]:
        assert set(item) - set(real["data"][0]) <= NEWER_TRADE_KEYS
        assert isinstance(item["seq"], int)
        assert item["RPI"] is False
        assert item["BT"] is False
        assert len(item["i"]) == 36
        assert item["i"].count("-") == 4
        assert item["T"] <= ours["ts"]
        assert item["p"].count(".") == 1
        assert len(item["p"].split(".")[1]) == 2


async def test_inverse_public_trade_sizes_are_whole_contracts(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    ours = await first_frame(sim, session, "inverse", "publicTrade.BTCUSD")
    for item in ours["data"]:
        assert item["v"].isdigit()


async def test_spot_public_trade_fields(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    ours = await first_frame(sim, session, "spot", "publicTrade.BTCUSDT")
    for item in ours["data"]:
        assert "L" not in item
        assert item["i"].isdigit()
        assert len(item["i"]) == 19


async def test_linear_ticker_snapshot_values_are_strings(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    ours = await first_frame(sim, session, "linear", "tickers.BTCUSDT")
    assert ours["type"] == "snapshot"
    assert all(isinstance(v, str) for k, v in ours["data"].items())


async def test_inverse_future_ticker_fields(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    ours = await first_frame(sim, session, "inverse", "tickers.BTCUSDU23")
    assert ours["data"]["fundingRate"] == ""
    assert ours["data"]["nextFundingTime"] == ""
    assert ours["data"]["deliveryTime"] == "2023-09-27T08:00:00Z"


async def test_orderbook_frames_match_capture(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    real = captured(LINEAR_INVERSE, "orderbook.50.BTCPERP")
    topic = "orderbook.50.BTCPERP"
    async with subscribed(session, sim, [topic]) as (ws, before):
        snap = before[0]
        delta, _ = await recv_until(ws, lambda f: f.get("topic") == topic)
    for r, o in zip(real, (snap, delta), strict=True):
        assert o["type"] == r["type"]
        assert set(r) <= set(o)
        assert "cts" in o
        assert_same_types(r["data"], o["data"], "book")
        assert all(isinstance(x, str) for level in o["data"]["b"] for x in level)


async def test_trades_on_wire_equal_ground_truth(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.SOLUSDT"])
        wire: list[dict[str, Any]] = []
        while len(wire) < 30:
            frame, _ = await recv_until(ws, lambda f: f.get("topic") == "publicTrade.SOLUSDT")
            assert len({t["seq"] for t in frame["data"]}) == 1  # one seq per frame
            wire.extend(frame["data"])
    truth = {t.trade_id: t for t in sim.ground_truth.trades("linear", "SOLUSDT")}
    for item in wire:
        t = truth[item["i"]]
        assert (t.price, t.size, t.side, t.time_ms, t.seq, t.tick_direction) == (
            item["p"],
            item["v"],
            item["S"],
            item["T"],
            item["seq"],
            item["L"],
        )
    ids = [t["i"] for t in wire]
    assert len(set(ids)) == len(ids)


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


#: A book frame's envelope keys in order, per category: the captured ones + ``cts``.
BOOK_ENVELOPE_KEYS = {
    "linear": ["topic", "type", "ts", "data", "cts"],
    "spot": ["topic", "ts", "type", "data", "cts"],
    "option": ["id", "topic", "ts", "data", "type"],
}


@pytest.mark.parametrize(
    ("category", "topic"),
    [
        pytest.param("linear", "orderbook.1.BTCUSDT", id="linear-1"),
        pytest.param("linear", "orderbook.50.BTCPERP", id="linear-50"),
        pytest.param("spot", "orderbook.1.BTCUSDT", id="spot-1"),
        pytest.param("spot", "orderbook.50.BTCUSDT", id="spot-50"),
        pytest.param("option", "orderbook.25.SOL-28APR23-30-C", id="option-25"),
    ],
)
async def test_book_frames_have_the_captured_shape(
    category: str, topic: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """Snapshot and delta: envelope keys (captured ones + ``cts``, added 2023-12), data keys
    in the captured order, JSON types, and the symbol's price/size decimals."""
    real = {f["type"]: f for f in captured(CAPTURE[category], topic)}
    depth = int(topic.split(".")[1])
    async with subscribed(session, sim, [topic], category) as (ws, before):
        ours = {"snapshot": before[0]}
        while "delta" not in ours and depth != 1:
            frame, _ = await recv_until(ws, lambda f: f.get("topic") == topic)
            ours.setdefault(frame["type"], frame)
        if depth == 1:  # snapshot-only since 2025-03-20: the 2023 delta has no counterpart
            for _ in range(3):
                frame, _ = await recv_until(ws, lambda f: f.get("topic") == topic)
                assert frame["type"] == "snapshot"
    envelope_keys = BOOK_ENVELOPE_KEYS[category]
    for kind, ours_frame in ours.items():
        real_frame = real[kind]
        assert list(ours_frame) == envelope_keys, kind
        assert [k for k in envelope_keys if k in real_frame] == list(real_frame)
        assert_like_capture(real_frame, ours_frame, f"{kind} envelope")
        assert list(ours_frame["data"]) == list(real_frame["data"]), kind
        assert_same_types(real_frame["data"], ours_frame["data"], f"{kind} data")
        if "cts" in ours_frame:
            assert isinstance(ours_frame["cts"], int)
            assert ours_frame["cts"] <= ours_frame["ts"]
        real_levels = [lv for side in ("b", "a") for lv in real_frame["data"][side]]
        for side in ("b", "a"):
            for level in ours_frame["data"][side]:
                assert len(level) == 2
                assert all(isinstance(x, str) for x in level)
                assert _decimals(level[0]) == _decimals(real_levels[0][0])
                if level[1] == "0":
                    continue
                if category == "spot":  # spot sizes drop trailing zeros ("0.07562")
                    assert _decimals(level[1]) <= 6
                    assert not level[1].endswith("0") or "." not in level[1]
                else:
                    assert _decimals(level[1]) == _decimals(real_levels[0][1])
