"""REST: envelope, signature checks, pagination and account reads."""

from __future__ import annotations

import random
import time
from urllib.parse import quote

import aiohttp
import pytest

from bybit_sim import BybitSimulator
from bybit_sim.connection import ConnectionRegistry
from bybit_sim.faults import Faults
from bybit_sim.stats import SimStats

from .conftest import SimFactory, signed_get, signed_headers


async def test_market_time(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{sim.rest_url}/v5/market/time") as r:
        body = await r.json()
        for h in ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"):
            assert r.headers[h].isdigit()
    assert list(body) == ["retCode", "retMsg", "result", "retExtInfo", "time"]
    assert body["retCode"] == 0
    assert body["retMsg"] == "OK"
    assert body["retExtInfo"] == {}
    assert isinstance(body["time"], int)
    assert body["result"]["timeSecond"].isdigit()
    assert body["result"]["timeNano"].isdigit()
    assert abs(int(body["result"]["timeSecond"]) - time.time()) < 5
    assert sim.stats.rest_requests["/v5/market/time"] == 1


async def test_signature_checks(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    path, query = "/v5/account/wallet-balance", "accountType=UNIFIED"
    ok = await signed_get(session, sim, path, query)
    assert ok["retCode"] == 0
    assert ok["result"]["list"][0]["accountType"] == "UNIFIED"

    stale = await signed_get(session, sim, path, query, ts=int(time.time() * 1000) - 10_000)
    assert stale["retCode"] == 10002
    future = await signed_get(session, sim, path, query, ts=int(time.time() * 1000) + 3_000)
    assert future["retCode"] == 10002
    wide = await signed_get(
        session, sim, path, query, ts=int(time.time() * 1000) - 10_000, recv_window="20000"
    )
    assert wide["retCode"] == 0
    unknown = await signed_get(session, sim, path, query, key="who", secret="sim-secret")
    assert unknown["retCode"] == 10003
    assert unknown["retMsg"] == "API key is invalid."
    bad = await signed_get(session, sim, path, query, secret="not-the-secret")
    assert bad["retCode"] == 10004
    # signing a different string than the one sent is a sign error
    async with session.get(
        f"{sim.rest_url}{path}?accountType=UNIFIED&x=1",
        headers=signed_headers("sim-key", "sim-secret", query),
    ) as r:
        assert (await r.json())["retCode"] == 10004
    async with session.get(f"{sim.rest_url}{path}?{query}") as r:
        assert (await r.json())["retCode"] == 10003  # no auth headers at all


async def test_execution_list_paginates_every_execution_once(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(private_rate=300)
    await sim.wait_for_executions(120, timeout=5)
    before = {e["execId"] for e in sim.ground_truth.executions() if e["category"] == "linear"}
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        query = "category=linear&limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = await signed_get(session, sim, "/v5/execution/list", query)
        assert body["retCode"] == 0, body
        result = body["result"]
        assert result["category"] == "linear"
        assert all("category" not in item for item in result["list"])
        times = [int(i["execTime"]) for i in result["list"]]
        assert times == sorted(times, reverse=True)
        seen.extend(i["execId"] for i in result["list"])
        pages += 1
        cursor = result["nextPageCursor"]
        if not cursor:
            break
        assert "%3A" in cursor
        assert "%2C" in cursor
    assert len(seen) == len(set(seen))  # exactly once, although generation went on
    assert before <= set(seen)
    assert pages >= 120 // 7


async def test_execution_list_params(make_sim: SimFactory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(private_rate=200)
    await sim.wait_for_executions(10, timeout=5)
    now = int(time.time() * 1000)
    body = await signed_get(
        session,
        sim,
        "/v5/execution/list",
        f"category=linear&startTime={now - 8 * 86400_000}&endTime={now}",
    )
    assert body["retCode"] == 10001
    body = await signed_get(session, sim, "/v5/execution/list", "limit=5")
    assert body["retCode"] == 10001  # category required
    body = await signed_get(session, sim, "/v5/execution/list", "category=linear")
    assert len(body["result"]["list"]) == min(50, sim.ground_truth.execution_count())
    body = await signed_get(session, sim, "/v5/execution/list", "category=linear&limit=500")
    assert len(body["result"]["list"]) <= 100
    first = sim.ground_truth.executions()[0]
    body = await signed_get(
        session, sim, "/v5/execution/list", f"category=linear&orderId={first['orderId']}"
    )
    assert {i["orderId"] for i in body["result"]["list"]} == {first["orderId"]}
    body = await signed_get(
        session,
        sim,
        "/v5/execution/list",
        f"category=linear&symbol=ETHUSDT&startTime={now - 60_000}",
    )
    assert all(i["symbol"] == "ETHUSDT" for i in body["result"]["list"])
    body = await signed_get(
        session, sim, "/v5/execution/list", "category=linear&cursor=" + quote("garbage", safe="")
    )
    assert body["retCode"] == 10001


async def test_order_position_wallet_reads(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(private_rate=200)
    await sim.wait_for_executions(20, timeout=5)
    hist = await signed_get(session, sim, "/v5/order/history", "category=linear&limit=50")
    assert hist["retCode"] == 0
    assert 0 < len(hist["result"]["list"]) <= 50
    assert all("category" not in o for o in hist["result"]["list"])
    limit = await signed_get(session, sim, "/v5/order/history", "category=linear&limit=99")
    assert len(limit["result"]["list"]) <= 50
    ids: list[str] = []
    cursor = ""
    while True:
        q = "category=linear&limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = await signed_get(session, sim, "/v5/order/history", q)
        ids.extend(o["orderId"] for o in page["result"]["list"])
        cursor = page["result"]["nextPageCursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids))
    rt = await signed_get(session, sim, "/v5/order/realtime", "category=linear")
    assert all(o["orderStatus"] in ("New", "PartiallyFilled") for o in rt["result"]["list"])
    pos = await signed_get(session, sim, "/v5/position/list", "category=linear&symbol=BTCUSDT")
    item = pos["result"]["list"][0]
    assert item["symbol"] == "BTCUSDT"
    assert "avgPrice" in item
    assert "category" not in item
    assert pos["result"]["category"] == "linear"
    wallet = await signed_get(session, sim, "/v5/account/wallet-balance", "accountType=SPOT")
    assert wallet["retCode"] == 10001


@pytest.mark.parametrize("kind", ["http500", "http502", "http429", "http403"])
async def test_rest_http_faults(
    kind: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    sim.faults.rest_errors(kind, 2)
    for _ in range(2):
        async with session.get(f"{sim.rest_url}/v5/market/time") as r:
            assert r.status == int(kind[4:])
    async with session.get(f"{sim.rest_url}/v5/market/time") as r:
        assert r.status == 200
        assert (await r.json())["retCode"] == 0


async def test_rest_retcode_faults(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rest_errors("retcode10006", 1)
    async with session.get(f"{sim.rest_url}/v5/market/time") as r:
        body = await r.json()
        assert r.status == 200
        assert body["retCode"] == 10006
        reset = int(r.headers["X-Bapi-Limit-Reset-Timestamp"])
        assert 500 <= reset - int(time.time() * 1000) <= 1500
        assert r.headers["X-Bapi-Limit-Status"] == "0"
    sim.faults.rest_errors("retcode10016", 1)
    body = await signed_get(session, sim, "/v5/execution/list", "category=linear")
    assert body["retCode"] == 10016
    body = await signed_get(session, sim, "/v5/execution/list", "category=linear")
    assert body["retCode"] == 0


async def test_rest_timeout_fault(make_sim: SimFactory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(rest_timeout_hold_s=1.0)
    sim.faults.rest_errors("timeout", 1)
    with pytest.raises(TimeoutError):
        async with session.get(
            f"{sim.rest_url}/v5/market/time", timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    async with session.get(f"{sim.rest_url}/v5/market/time") as r:
        assert (await r.json())["retCode"] == 0
    sim.faults.rest_errors("timeout", 1)  # held past stop(): stop must not hang


def test_unknown_rest_fault_kind() -> None:
    with pytest.raises(ValueError, match="unknown REST fault"):
        Faults(ConnectionRegistry(), SimStats(), random.Random()).rest_errors("http418", 1)
