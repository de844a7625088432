"""Fault injection: drop, refuse, stall/pause, mute, black hole, slow acks, malformed, clear."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import is_ack, recv_json, recv_until, subscribe, url, ws_auth_args

TRADE = "publicTrade.BTCUSDT"


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
        "paused_connections": 0,
        "muted": [],
        "black_hole": False,
        "black_holed_upgrades_held": 0,
        "slow_ack": None,
        "book": [],
    }


async def test_clear_resets_the_outage_faults(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, [TRADE])
        sim.faults.pause(30, pongs=True)
        sim.faults.mute("BTCUSDT", 30)
        sim.faults.black_hole(30)
        sim.faults.slow_ack(30)
        status = sim.faults.status()
        assert status["paused_connections"] == 1
        assert [(m["symbol"], m["category"]) for m in status["muted"]] == [("BTCUSDT", None)]
        assert status["black_hole"] is True
        assert status["slow_ack"] == {"seconds": 30.0, "remaining": None}
        sim.faults.clear()
        marked = now_ms()
        await recv_until(ws, lambda f: f.get("topic") == TRADE and f["ts"] > marked)
        ack, _ = await subscribe(ws, ["tickers.BTCUSDT"])  # not delayed any more
        assert ack["success"] is True
        async with session.ws_connect(url(sim)) as fresh:  # upgrades answered again
            await fresh.send_json({"op": "ping"})
            assert is_ack(await recv_json(fresh))
    status = sim.faults.status()
    assert status["paused_connections"] == 0
    assert status["muted"] == []
    assert status["black_hole"] is False
    assert status["slow_ack"] is None


# -- outage faults: pause, mute, black_hole, slow_ack ------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


async def collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    """Every frame received within ``seconds`` (the socket must stay open)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    frames: list[Any] = []
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert msg.type == aiohttp.WSMsgType.TEXT, f"unexpected {msg.type}"
        frames.append(json.loads(msg.data))
    return frames


async def wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


def trade_ids(frames: list[Any], topic: str = TRADE) -> set[str]:
    return {item["i"] for f in frames if f.get("topic") == topic for item in f["data"]}


def truth_ids(sim: BybitSimulator, symbol: str = "BTCUSDT") -> list[str]:
    return [t.trade_id for t in sim.ground_truth.trades("linear", symbol)]


# Frames already on the wire when a fault starts may still arrive; a frame *produced* after
# it carries a later ``ts``. Wall and loop clocks differ by a little: allow this (ms).
SLACK_MS = 50


async def test_pause_loses_data_then_resumes_on_the_same_socket(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, [TRADE])
        await recv_until(ws, lambda f: f.get("topic") == TRADE)
        accepted = sim.stats.ws_connections_accepted
        before = set(truth_ids(sim))
        assert sim.faults.pause(0.8) == 1
        paused = now_ms()
        await ws.send_json({"op": "ping", "req_id": "during"})
        during = await collect(ws, 0.6)
        # nothing produced during the pause arrives: no data, no pong
        assert all(f.get("topic") == TRADE and f["ts"] <= paused for f in during), during
        lost = set(truth_ids(sim)) - before  # printed during the pause
        assert len(lost) >= 3
        assert sim.faults.status()["paused_connections"] == 1
        frame, _ = await recv_until(
            ws, lambda f: f.get("topic") == TRADE and f["ts"] > paused, timeout=3
        )
        assert frame["ts"] >= paused + 800 - SLACK_MS
        await ws.send_json({"op": "ping", "req_id": "after"})
        pong, seen = await recv_until(ws, lambda f: f.get("ret_msg") == "pong")
        assert pong["req_id"] == "after"  # the ping sent during the pause got no answer
        assert not ws.closed
        assert not lost & trade_ids([frame, *seen])  # lost, never delivered late
    assert sim.stats.ws_connections_accepted == accepted  # same socket, no reconnect


async def test_pause_with_pongs_withholds_data_only(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws, session.ws_connect(sim.private_ws_url) as prv:
        await subscribe(ws, [TRADE])
        await recv_until(ws, lambda f: f.get("topic") == TRADE)
        before = set(truth_ids(sim))
        assert sim.faults.pause(0.8, pongs=True) == 2
        t0 = asyncio.get_running_loop().time()
        paused = now_ms()
        await ws.send_json({"op": "ping", "req_id": "p1"})
        pong, seen = await recv_until(ws, lambda f: f.get("ret_msg") == "pong", timeout=0.5)
        assert pong["req_id"] == "p1"
        await prv.send_json({"op": "ping", "req_id": "q1"})
        ppong, _ = await recv_until(prv, lambda f: f.get("op") == "pong", timeout=0.5)
        assert ppong["req_id"] == "q1"
        # requests are acked; the ticker snapshot (a data frame) is lost
        await ws.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": "s2"})
        ack, seen2 = await recv_until(ws, lambda f: f.get("op") == "subscribe", timeout=0.5)
        assert ack["success"] is True
        assert ack["req_id"] == "s2"
        rest = await collect(ws, 0.6 - (asyncio.get_running_loop().time() - t0))
        data = [f for f in [*seen, *seen2, *rest] if "topic" in f]
        assert all(f["ts"] <= paused for f in data), data
        lost = set(truth_ids(sim)) - before
        assert len(lost) >= 3
        frame, after = await recv_until(
            ws, lambda f: f.get("topic") == TRADE and f["ts"] > paused, timeout=3
        )
        assert frame["ts"] >= paused + 800 - SLACK_MS
        assert not lost & trade_ids([frame, *after])
        # the ticker subscribed during the pause streams (deltas) on the same socket now
        await recv_until(ws, lambda f: f.get("topic") == "tickers.BTCUSDT", timeout=3)
        assert not ws.closed


async def test_mute_stops_one_symbol_only(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    eth = "publicTrade.ETHUSDT"
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, [TRADE, eth, "tickers.BTCUSDT"])
        await recv_until(ws, lambda f: f.get("topic") == TRADE)
        await recv_until(ws, lambda f: f.get("topic") == eth)
        before = set(truth_ids(sim))
        assert sim.faults.mute("BTCUSDT", 0.8) == 1
        muted = now_ms()
        during = await collect(ws, 0.6)
        btc = [f for f in during if f.get("topic", "").endswith(".BTCUSDT")]
        assert all(f["ts"] <= muted for f in btc), btc
        assert any(f.get("topic") == eth and f["ts"] > muted for f in during)  # others flow
        lost = set(truth_ids(sim)) - before
        assert len(lost) >= 3  # printed: in ground truth ...
        async with session.get(
            f"{sim.rest_url}/v5/market/recent-trade",
            params={"category": "linear", "symbol": "BTCUSDT", "limit": "1000"},
        ) as r:
            window = {t["execId"] for t in (await r.json())["result"]["list"]}
        assert lost <= window  # ... and in the REST window
        frame, seen = await recv_until(
            ws, lambda f: f.get("topic") == TRADE and f["ts"] > muted, timeout=3
        )
        assert frame["ts"] >= muted + 800 - SLACK_MS
        assert not lost & trade_ids([frame, *seen])  # never delivered late
        await recv_until(
            ws, lambda f: f.get("topic") == "tickers.BTCUSDT" and f["ts"] > muted, timeout=3
        )
        # a mute of another category does not touch this linear socket
        assert sim.faults.mute("BTCUSDT", 30, category="spot") == 0
        marked = now_ms()
        await recv_until(ws, lambda f: f.get("topic") == TRADE and f["ts"] > marked, timeout=3)


UPGRADE_REQUEST = (
    b"GET /v5/private HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def test_black_hole_holds_upgrades_then_resets_them(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    async with session.ws_connect(url(sim)) as old:
        await subscribe(old, [TRADE])
        sim.faults.black_hole(1.0)
        t0 = loop.time()
        marked = now_ms()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await session.ws_connect(url(sim))
        async with session.get(f"{sim.rest_url}/v5/market/time") as r:
            assert r.status == 200  # REST is not affected
        # a socket already open keeps streaming
        await recv_until(old, lambda f: f.get("topic") == TRADE and f["ts"] > marked)
        # a patient client is held until the window ends, then reset without an answer
        # (raw socket: aiohttp's client would transparently retry the GET once)
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(UPGRADE_REQUEST)
        await writer.drain()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(3):
                await reader.read(1)  # no byte of an answer before the reset
        assert loop.time() - t0 >= 1.0 - 0.02
        writer.close()
        assert sim.stats.ws_upgrades_black_holed == 2
        assert sim.stats.ws_connections_accepted == 1
        status = sim.faults.status()
        assert status["black_hole"] is False
        assert status["black_holed_upgrades_held"] == 0
        async with session.ws_connect(url(sim)) as fresh:
            ack, _ = await subscribe(fresh, [TRADE])
            assert ack["success"] is True


async def test_slow_ack_delays_subscribe_but_not_pongs(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    async with session.ws_connect(url(sim)) as ws:
        sim.faults.slow_ack(0.6, count=1)
        t0 = loop.time()
        await ws.send_json({"op": "subscribe", "args": [TRADE, "tickers.BTCUSDT"], "req_id": "s1"})
        await ws.send_json({"op": "ping", "req_id": "p1"})
        pong = await recv_json(ws, timeout=0.5)  # first frame: nothing before the pong
        assert pong["ret_msg"] == "pong"
        assert pong["req_id"] == "p1"
        first = await recv_json(ws, timeout=3)  # the ticker snapshot, sent before the ack
        assert loop.time() - t0 >= 0.6 - 0.01
        assert first["topic"] == "tickers.BTCUSDT"
        ack, _ = await recv_until(ws, lambda f: f.get("op") == "subscribe")
        assert ack["success"] is True
        assert ack["req_id"] == "s1"
        await recv_until(ws, lambda f: f.get("topic") == TRADE)
        assert sim.stats.ws_requests_delayed == 1
        assert sim.faults.status()["slow_ack"] is None  # count used up
        t1 = loop.time()
        ack, _ = await subscribe(ws, ["publicTrade.ETHUSDT"])  # not delayed
        assert ack["success"] is True
        assert loop.time() - t1 < 0.6


async def test_slow_ack_delays_private_auth_and_subscribe(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    async with session.ws_connect(sim.private_ws_url) as prv:
        sim.faults.slow_ack(0.5)  # every request until clear()
        t0 = loop.time()
        await prv.send_json({"op": "auth", "args": ws_auth_args("sim-key", "sim-secret")})
        await prv.send_json({"op": "ping", "req_id": "p1"})
        pong = await recv_json(prv, timeout=0.4)
        assert pong["op"] == "pong"
        auth = await recv_json(prv, timeout=3)
        assert auth["op"] == "auth"
        assert auth["success"] is True
        assert loop.time() - t0 >= 0.5 - 0.01
        t1 = loop.time()
        await prv.send_json({"op": "subscribe", "args": ["execution"], "req_id": "s1"})
        ack = await recv_json(prv, timeout=3)
        assert ack["op"] == "subscribe"
        assert ack["success"] is True
        assert loop.time() - t1 >= 0.5 - 0.01
        assert sim.stats.ws_requests_delayed == 2
        sim.faults.clear()
        await prv.send_json({"op": "subscribe", "args": ["order"], "req_id": "s2"})
        ack = await recv_json(prv, timeout=0.4)
        assert ack["req_id"] == "s2"


async def test_slow_ack_sends_nothing_after_a_close(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        sim.faults.slow_ack(0.3)
        await ws.send_json({"op": "subscribe", "args": [TRADE]})
        await wait_until(lambda: sim.stats.ws_requests_delayed == 1)
    await wait_until(lambda: len(sim.registry) == 0)
    await asyncio.sleep(0.5)  # past the delay: the held request must never run
    assert not sim.hub.subscribers("linear", TRADE)
    assert sim.stats.subscribe_requests == []
