"""Data generation: independent of clients, ground truth, REST recent-trade window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bybit_sim import BybitSimulator

from .conftest import CAPTURED, SimFactory, recv_until, subscribe, url


async def recent(session: aiohttp.ClientSession, sim: BybitSimulator, query: str) -> dict:
    async with session.get(f"{sim.rest_url}/v5/market/recent-trade?{query}") as r:
        assert r.status == 200
        return dict(await r.json())


async def test_prestarted_market_generates_without_clients(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=100, symbols=[("linear", "BTCUSDT"), ("spot", "ETHUSDT")])
    trades = await sim.wait_for_trades("linear", "BTCUSDT", 60, timeout=5)
    await sim.wait_for_trades("spot", "ETHUSDT", 70, timeout=5)
    assert sim.stats.ws_connections_accepted == 0
    assert [t.time_ms for t in trades] == sorted(t.time_ms for t in trades)
    assert len({t.trade_id for t in trades}) == len(trades)

    body = await recent(session, sim, "category=linear&symbol=BTCUSDT&limit=20")
    assert body["retCode"] == 0
    assert body["result"]["category"] == "linear"
    items = body["result"]["list"]
    assert len(items) == 20
    assert list(items[0]) == [
        "execId",
        "symbol",
        "price",
        "size",
        "side",
        "time",
        "isBlockTrade",
        "isRPITrade",
        "seq",
    ]
    assert isinstance(items[0]["time"], str)
    assert isinstance(items[0]["seq"], str)
    times = [int(i["time"]) for i in items]
    assert times == sorted(times, reverse=True)  # newest first
    truth_ids = [t.trade_id for t in sim.ground_truth.trades("linear", "BTCUSDT")]
    newest = [i["execId"] for i in items]
    pos = truth_ids.index(newest[-1])
    assert truth_ids[pos : pos + 20][::-1] == newest  # the newest contiguous run

    # defaults: 500 non-spot, 60 (and max 60) on spot
    body = await recent(session, sim, "category=spot&symbol=ETHUSDT")
    assert len(body["result"]["list"]) == 60
    body = await recent(session, sim, "category=spot&symbol=ETHUSDT&limit=1000")
    assert len(body["result"]["list"]) == 60
    assert all(i["execId"].isdigit() for i in body["result"]["list"])


async def test_recent_trade_window_and_limit_fault(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=400, recent_trade_max=100, symbols=[("linear", "ETHUSDT")])
    await sim.wait_for_trades("linear", "ETHUSDT", 150, timeout=5)
    body = await recent(session, sim, "category=linear&symbol=ETHUSDT&limit=1000")
    assert len(body["result"]["list"]) == 100
    sim.faults.recent_trade_limit(7)
    body = await recent(session, sim, "category=linear&symbol=ETHUSDT")
    assert len(body["result"]["list"]) == 7
    sim.faults.recent_trade_limit(None)
    body = await recent(session, sim, "category=linear&symbol=ETHUSDT&limit=30")
    assert len(body["result"]["list"]) == 30


async def test_recent_trade_param_errors(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    for query in (
        "symbol=BTCUSDT",
        "category=futures&symbol=BTCUSDT",
        "category=linear",
        "category=linear&symbol=NOPEUSDT",
        "category=linear&symbol=BTCUSDT&limit=0",
        "category=linear&symbol=BTCUSDT&limit=abc",
    ):
        body = await recent(session, sim, query)
        assert body["retCode"] == 10001, query
        assert body["retMsg"]
        assert body["result"] == {}
    body = await recent(session, sim, "category=linear&symbol=XRPUSDT")
    assert body["retCode"] == 0
    assert body["result"]["list"] == []


async def test_generation_continues_while_disconnected(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.DOGEUSDT"])
        await recv_until(ws, lambda f: f.get("topic") == "publicTrade.DOGEUSDT")
    n = len(sim.ground_truth.trades("linear", "DOGEUSDT"))
    trades = await sim.wait_for_trades("linear", "DOGEUSDT", n + 40, timeout=5)
    assert len(trades) >= n + 40
    body = await recent(session, sim, "category=linear&symbol=DOGEUSDT&limit=5")
    assert (
        body["result"]["list"][0]["execId"]
        == sim.ground_truth.trades("linear", "DOGEUSDT")[-1].trade_id
    )


async def test_high_rate_batches_frames(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=5000)
    async with session.ws_connect(url(sim), max_msg_size=0) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        got = 0
        frames = 0
        async with asyncio.timeout(10):
            while got < 5000:
                frame, _ = await recv_until(ws, lambda f: f.get("topic") == "publicTrade.BTCUSDT")
                assert 1 <= len(frame["data"]) <= 1024
                got += len(frame["data"])
                frames += 1
    assert frames < got / 10  # many trades per frame
    assert len(sim.ground_truth.trades("linear", "BTCUSDT")) >= 5000


async def test_big_batches_split_at_1024_with_same_seq(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=20000, max_frame_rate=5)
    async with session.ws_connect(url(sim), max_msg_size=0) as ws:
        await subscribe(ws, ["publicTrade.ETHUSDT"])
        prev: dict | None = None
        async with asyncio.timeout(10):
            while True:
                frame, _ = await recv_until(ws, lambda f: f.get("topic") == "publicTrade.ETHUSDT")
                if prev is not None and len(prev["data"]) == 1024:
                    assert frame["data"][0]["seq"] == prev["data"][0]["seq"]
                    break
                prev = frame


async def test_wait_for_trades_times_out(make_sim: SimFactory) -> None:
    sim = await make_sim(trade_rate=0)
    try:
        await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=0.2)
    except TimeoutError:
        pass
    else:
        raise AssertionError("expected TimeoutError")


async def test_replay_file(make_sim: SimFactory, tmp_path: Path) -> None:
    src = CAPTURED / "tardis-node_v5_linear_inverse_2023-04.jsonl"
    sim = await make_sim(replay_file=str(src))
    trades = await sim.wait_for_trades("inverse", "BTCUSD", 6, timeout=5)
    assert {t.price for t in trades} == {"28560.50"}
    assert {t.size for t in trades[:3]} == {"5823", "3", "5593"}
    ltc = await sim.wait_for_trades("linear", "LTCUSDT", 2, timeout=5)
    assert ltc[0].price == "94.53"
    assert ltc[0].size == "0.4"
    assert len({t.trade_id for t in trades}) == len(trades)  # fresh ids on every loop
