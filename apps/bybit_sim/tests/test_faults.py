"""Fault injection: drop, refuse, stall, malformed frames, clear."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import is_ack, recv_json, recv_until, subscribe

TRADE = "publicTrade.BTCUSDT"


def url(sim: BybitSimulator) -> str:
    return sim.public_ws_url.format(category="linear")


async def test_drop_connections_is_abrupt(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as pub, session.ws_connect(sim.private_ws_url) as prv:
        await subscribe(pub, [TRADE])
        assert sim.faults.drop_connections() == 2
        for ws in (pub, prv):
            async with asyncio.timeout(3):
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE  # no close frame
    n = len(sim.ground_truth.trades("linear", "BTCUSDT"))
    await sim.wait_for_trades("linear", "BTCUSDT", n + 10, timeout=5)  # market keeps going
    assert sim.stats.ws_connections_dropped == 2


async def test_refuse_connections(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    sim.faults.refuse_connections(0.4)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url(sim))
    assert info.value.status == 503
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(sim.private_ws_url)
    assert sim.stats.ws_connections_refused == 2
    async with asyncio.timeout(3):
        while True:
            try:
                ws = await session.ws_connect(url(sim))
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.05)
    await ws.close()


async def test_stall_then_resume(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, [TRADE, "tickers.BTCUSDT"])
        await recv_until(ws, lambda f: f.get("topic") == TRADE)
        sim.faults.stall(1.0)
        stalled_at = len(sim.ground_truth.trades("linear", "BTCUSDT"))
        await ws.send_json({"op": "ping", "req_id": "during"})
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.6)  # nothing at all: no data, no pong
        # other clients are not stalled
        async with session.ws_connect(url(sim)) as fresh:
            ack, _ = await subscribe(fresh, [TRADE])
            assert ack["success"] is True
        frame, _ = await recv_until(ws, lambda f: f.get("topic") == TRADE, timeout=3)
        assert frame["data"]
        await ws.send_json({"op": "ping", "req_id": "after"})
        pong, _ = await recv_until(ws, lambda f: f.get("ret_msg") == "pong")
        assert pong["req_id"] == "after"  # the ping sent during the stall got no answer
    assert len(sim.ground_truth.trades("linear", "BTCUSDT")) > stalled_at + 10


async def test_malformed_frames(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, [TRADE])
        sim.faults.malformed_frames(4)
        kinds: list[str] = []
        real = 0
        async with asyncio.timeout(5):
            while len(kinds) < 4:
                msg = await ws.receive()
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    kinds.append("not-json")
                    continue
                topic = frame.get("topic", "")
                if not topic.startswith("publicTrade."):
                    kinds.append("unknown-topic")
                    continue
                item = frame["data"][0]
                if "i" not in item:
                    kinds.append("missing-fields")
                elif not isinstance(item["p"], str):
                    kinds.append("wrong-types")
                else:
                    real += 1
        assert sorted(kinds) == ["missing-fields", "not-json", "unknown-topic", "wrong-types"]
        assert real >= 1  # interleaved with real data
        assert sim.stats.malformed_frames_sent == 4
    assert all(t.trade_id.count("-") == 4 for t in sim.ground_truth.trades("linear", "BTCUSDT"))


async def test_malformed_frames_reach_idle_sockets(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        sim.faults.malformed_frames(1)
        msg = await ws.receive(timeout=3)
        with pytest.raises(ValueError):
            json.loads(msg.data)


async def test_clear(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    sim.faults.refuse_connections(30)
    sim.faults.rest_errors("http500", 5)
    sim.faults.recent_trade_limit(1)
    sim.faults.clear()
    async with session.ws_connect(url(sim)) as ws:
        await ws.send_json({"op": "ping"})
        assert is_ack(await recv_json(ws))
    async with session.get(f"{sim.rest_url}/v5/market/time") as r:
        assert r.status == 200
    assert sim.faults.status() == {
        "refusing": False,
        "rest_kind": None,
        "rest_count": 0,
        "recent_trade_limit": None,
    }
