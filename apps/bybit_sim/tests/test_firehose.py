"""The firehose: N trades pushed as fast as the client drains, every one in ground truth."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from bybit_sim import BybitSimulator

from .conftest import SimFactory, subscribe, url


async def read_trades(
    ws: aiohttp.ClientWebSocketResponse, n: int, pause: float = 0.0
) -> list[dict[str, Any]]:
    """Trade frames until ``n`` trades arrived (ticker frames are skipped)."""
    frames: list[dict[str, Any]] = []
    got = 0
    async with asyncio.timeout(30):
        while got < n:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = json.loads(msg.data)
            if str(frame.get("topic", "")).startswith("publicTrade."):
                frames.append(frame)
                got += len(frame["data"])
                if pause:
                    await asyncio.sleep(pause)
    return frames


async def test_pushes_every_trade_in_batched_frames_and_records_them(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=0)
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        push = sim.firehose.start("linear", "BTCUSDT", 5000, batch=700)
        frames = await read_trades(ws, 5000)
        status = await push
    assert (status.state, status.error) == ("done", None)
    assert (status.trades_sent, status.frames_sent, status.frames) == (5000, 8, 8)
    assert [len(f["data"]) for f in frames] == [700] * 7 + [100]
    assert all(f["type"] == "snapshot" and f["topic"] == "publicTrade.BTCUSDT" for f in frames)
    sent = [item["i"] for f in frames for item in f["data"]]
    truth = sim.ground_truth.trades("linear", "BTCUSDT")
    assert sent == [t.trade_id for t in truth]
    assert len(set(sent)) == 5000
    # the REST window holds the newest trades, as after any burst
    assert [t.trade_id for t in sim.hub.market("linear", "BTCUSDT").recent] == sent[-1000:]  # type: ignore[union-attr]


async def test_a_slow_client_slows_the_firehose_down_and_loses_nothing(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    # A queue this short would cut a client that falls behind ordinary publishing.
    sim = await make_sim(trade_rate=0, ws_send_queue_max=10, ticker_interval_s=60)
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.ETHUSDT"])
        push = sim.firehose.start("linear", "ETHUSDT", 3000, batch=50)
        frames = await read_trades(ws, 3000, pause=0.001)
        status = await push
    assert status.state == "done"
    assert sum(len(f["data"]) for f in frames) == 3000
    assert sim.stats.ws_connections_dropped == 0
    assert sim.ground_truth.trade_count("linear", "ETHUSDT") == 3000


async def test_control_endpoint_starts_reports_and_refuses(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim: BybitSimulator = await make_sim(trade_rate=0)
    endpoint = f"{sim.rest_url}/sim/firehose"
    async with session.post(endpoint, json={"category": "linear", "symbol": "BTCUSDT"}) as r:
        assert r.status == 400  # no trade count
    async with session.post(
        endpoint, json={"category": "option", "symbol": "BTC", "trades": 5}
    ) as r:
        assert r.status == 400
    async with session.post(
        endpoint, json={"category": "linear", "symbol": "BTCUSDT", "trades": 10, "batch": 2000}
    ) as r:
        assert r.status == 400
    body = {"category": "linear", "symbol": "BTCUSDT", "trades": 2048, "batch": 1024}
    async with session.post(endpoint, json=body) as r:
        assert r.status == 202
        assert (await r.json())["ok"] is True
    async with session.post(endpoint, json=body) as r:
        assert r.status == 409  # one at a time (this one waits for a subscriber)
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        frames = await read_trades(ws, 2048)
        assert [len(f["data"]) for f in frames] == [1024, 1024]
        async with asyncio.timeout(10):
            while True:
                async with session.get(endpoint) as r:
                    status = await r.json()
                if status["state"] == "done":
                    break
                await asyncio.sleep(0.02)
    assert status["trades_sent"] == 2048
    count_url = f"{sim.rest_url}/sim/ground-truth/trade-count?category=linear&symbol=BTCUSDT"
    async with session.get(count_url) as r:
        assert await r.json() == {"trades": 2048}
    assert status["subscribers"] == 1
    assert status["push_seconds"] >= 0


async def test_without_a_subscriber_it_fails_after_waiting(make_sim: SimFactory) -> None:
    sim = await make_sim(trade_rate=0)
    status = await sim.firehose.start("linear", "BTCUSDT", 10, wait_subscriber_s=0.1)
    assert status.state == "failed"
    assert "nobody subscribed" in (status.error or "")
    assert sim.ground_truth.trade_count("linear", "BTCUSDT") == 0
