"""Public WebSocket protocol: acks, pongs and errors per category."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import SimFactory, is_ack, recv_json, recv_until, subscribe, subscribed, url


async def test_urls(sim: BybitSimulator) -> None:
    assert sim.rest_url == f"http://127.0.0.1:{sim.port}"
    assert sim.public_ws_url == f"ws://127.0.0.1:{sim.port}/v5/public/{{category}}"
    assert sim.private_ws_url == f"ws://127.0.0.1:{sim.port}/v5/private"


@pytest.mark.parametrize(("category", "coin"), [("linear", "USDT"), ("inverse", "USD")])
async def test_contract_ack_and_pong_shapes(
    category: str, coin: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """Linear and inverse: the contract streams answer alike."""
    async with session.ws_connect(url(sim, category)) as ws:
        ack, _ = await subscribe(ws, [f"publicTrade.BTC{coin}", f"tickers.BTC{coin}"], req_id="abc")
        assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert ack["success"] is True
        assert ack["ret_msg"] == ""
        assert ack["req_id"] == "abc"
        assert ack["op"] == "subscribe"
        ack, _ = await subscribe(ws, [f"publicTrade.ETH{coin}"], req_id=None)
        assert ack["req_id"] == ""  # echoes "" when no req_id was sent
        await ws.send_json({"op": "ping", "req_id": "p1"})
        pong, _ = await recv_until(ws, is_ack)
        assert pong == {
            "success": True,
            "ret_msg": "pong",
            "conn_id": ack["conn_id"],
            "req_id": "p1",
            "op": "ping",
        }
        await ws.send_json({"op": "ping"})
        pong, _ = await recv_until(ws, is_ack)
        assert pong["req_id"] == ""


async def test_spot_ack_and_pong_shapes(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "spot")) as ws:
        ack, _ = await subscribe(ws, ["publicTrade.BTCUSDT"], req_id="10001")
        assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert ack["ret_msg"] == "subscribe"
        assert ack["req_id"] == "10001"
        ack, _ = await subscribe(ws, ["tickers.BTCUSDT"], req_id=None)
        assert "req_id" not in ack
        assert ack["ret_msg"] == "subscribe"
        await ws.send_json({"op": "ping"})
        pong, _ = await recv_until(ws, is_ack)
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": ack["conn_id"], "op": "ping"}
        await ws.send_json({"op": "unsubscribe", "args": ["tickers.BTCUSDT"]})
        unsub, _ = await recv_until(ws, is_ack)
        assert unsub == {"success": True, "ret_msg": "unsubscribe", "op": "unsubscribe"}


async def test_option_ack_and_pong_shapes(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "option")) as ws:
        ack, _ = await subscribe(ws, ["publicTrade.BTC", "publicTrade.btc"])
        assert ack["type"] == "COMMAND_RESP"
        assert ack["success"] is False
        assert ack["data"] == {
            "failTopics": ["publicTrade.btc"],
            "successTopics": ["publicTrade.BTC"],
        }
        await ws.send_json({"op": "ping", "req_id": "x"})
        pong, _ = await recv_until(ws, lambda f: f.get("op") == "pong")
        assert list(pong) == ["args", "op"]
        assert pong["args"][0].isdigit()
        frame, _ = await recv_until(ws, lambda f: f.get("topic") == "publicTrade.BTC")
        assert frame["id"].startswith("publicTrade.BTC-")
        assert list(frame)[-1] == "type"


async def test_more_than_10_args_refused(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    symbols = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "LTC", "BNB", "AVAX", "LINK", "DOT"]
    args = [f"publicTrade.{s}USDT" for s in symbols]
    for category in ("linear", "spot"):
        async with session.ws_connect(url(sim, category)) as ws:
            ack, _ = await subscribe(ws, args, req_id="big")
            assert ack["success"] is False
            assert ack["ret_msg"] == "args size >10"
            assert ack["op"] == "subscribe"
            ack, _ = await subscribe(ws, args[:10], req_id="ok")
            assert ack["success"] is True  # nothing from the refused request was subscribed
    assert sim.stats.subscribe_requests.count(args) == 2


@pytest.mark.parametrize(
    "bad",
    [
        "publicTrade.btcusdt",
        "publicTrade.NOPEUSDT",
        "order",
        "orderbook.30.BTCUSDT",
        "kline.x.BTCUSDT",
        "tickers.BTCUSDT.extra",
    ],
)
async def test_unknown_topic_fails_but_good_topics_stream(
    bad: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        ack, _ = await subscribe(ws, ["publicTrade.BTCUSDT", bad], req_id="e1")
        assert ack == {
            "success": False,
            "ret_msg": f"error:handler not found,topic:{bad}",
            "conn_id": ack["conn_id"],
            "req_id": "e1",
            "op": "subscribe",
        }
        frame, _ = await recv_until(ws, lambda f: f.get("topic") == "publicTrade.BTCUSDT")
        assert frame["data"]


async def test_already_subscribed(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["publicTrade.ETHUSDT"])
        ack, _ = await subscribe(ws, ["publicTrade.ETHUSDT"], req_id="dup")
        assert ack["success"] is False
        assert ack["ret_msg"] == "error:already subscribed,topic:publicTrade.ETHUSDT"


async def test_invalid_op_and_non_json_keep_socket_open(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        await ws.send_json({"op": "bogus", "req_id": "b"})
        err = await recv_json(ws)
        assert err["success"] is False
        assert err["ret_msg"] == "error:invalid op"
        await ws.send_str("hello")
        err = await recv_json(ws)
        assert err["success"] is False
        assert err["ret_msg"].startswith(
            "Failed to decode incoming data:readObjectStart: expect { or n, but found h"
        )
        await ws.send_json({"op": "ping", "req_id": "alive"})
        pong = await recv_json(ws)
        assert pong["ret_msg"] == "pong"
        assert pong["req_id"] == "alive"


async def test_unsubscribe_stops_data(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        await recv_until(ws, lambda f: f.get("topic") == "publicTrade.BTCUSDT")
        await ws.send_json({"op": "unsubscribe", "req_id": "u", "args": ["publicTrade.BTCUSDT"]})
        ack, _ = await recv_until(ws, is_ack)
        assert ack["success"] is True
        assert ack["op"] == "unsubscribe"
        n = len(sim.ground_truth.trades("linear", "BTCUSDT"))
        await sim.wait_for_trades("linear", "BTCUSDT", n + 5, timeout=5)
        await ws.send_json({"op": "ping", "req_id": "after"})
        _, before = await recv_until(ws, lambda f: f.get("ret_msg") == "pong")
        assert not [f for f in before if f.get("topic") == "publicTrade.BTCUSDT"]


async def test_ticker_snapshot_precedes_ack_then_partial_deltas(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        ack, before = await subscribe(ws, ["tickers.BTCUSDT"])
        assert ack["success"] is True
        assert [f["type"] for f in before] == ["snapshot"]  # sent before the ack
        state = dict(before[0]["data"])
        for _ in range(5):
            delta, _ = await recv_until(ws, lambda f: f.get("topic") == "tickers.BTCUSDT")
            assert delta["type"] == "delta"
            assert delta["data"]["symbol"] == "BTCUSDT"
            assert set(delta["data"]) < set(state)  # only some fields
            assert isinstance(delta["cs"], int)
            assert isinstance(delta["ts"], int)
            state.update(delta["data"])


async def test_snapshot_after_ack_when_configured(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(snapshot_before_ack=False)
    async with subscribed(session, sim, ["tickers.ETHUSDT"]) as (ws, before):
        assert before == []
        first = await recv_json(ws)
        assert first["topic"] == "tickers.ETHUSDT"
        assert first["type"] == "snapshot"


async def test_spot_tickers_are_snapshots_without_bid_ask(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "spot")) as ws:
        await subscribe(ws, ["tickers.BTCUSDT"])
        for _ in range(3):
            frame, _ = await recv_until(ws, lambda f: f.get("topic") == "tickers.BTCUSDT")
            assert frame["type"] == "snapshot"
            assert list(frame) == ["topic", "ts", "type", "cs", "data"]
            assert set(frame["data"]) == {
                "symbol",
                "lastPrice",
                "highPrice24h",
                "lowPrice24h",
                "prevPrice24h",
                "volume24h",
                "turnover24h",
                "price24hPcnt",
                "usdIndexPrice",
            }


async def test_orderbook_snapshot_then_contiguous_deltas(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with subscribed(session, sim, ["orderbook.50.BTCUSDT"]) as (ws, before):
        snap = before[0]
        assert snap["type"] == "snapshot"
        assert len(snap["data"]["b"]) == 50
        book = {side: {p: s for p, s in snap["data"][side]} for side in ("b", "a")}
        u = snap["data"]["u"]
        for _ in range(5):
            delta, _ = await recv_until(ws, lambda f: f.get("topic") == "orderbook.50.BTCUSDT")
            assert delta["type"] == "delta"
            assert delta["data"]["u"] == u + 1
            u = delta["data"]["u"]
            for side in ("b", "a"):
                for price, size in delta["data"][side]:
                    if size == "0":
                        book[side].pop(price, None)
                    else:
                        book[side][price] = size
            assert len(book["b"]) == 50
            assert len(book["a"]) == 50
            assert max(map(float, book["b"])) < min(map(float, book["a"]))


async def test_unknown_category_path_404(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url(sim, "futures"))
    assert info.value.status == 404


async def test_data_frames_are_valid_json_text(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.TEXT
        json.loads(msg.data)
