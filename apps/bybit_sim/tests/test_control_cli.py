"""Control endpoints and the ``bybit-sim`` console script."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import SimFactory, subscribe, url


async def test_control_endpoints(make_sim: SimFactory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(trade_rate=100, private_rate=50, symbols=[("linear", "BTCUSDT")])
    base = sim.rest_url
    async with session.get(f"{base}/sim/health") as r:
        health = await r.json()
        assert health["status"] == "ok"
        assert health["port"] == sim.port
    await sim.wait_for_trades("linear", "BTCUSDT", 5, timeout=5)
    await sim.wait_for_executions(3, timeout=5)
    async with session.get(
        f"{base}/sim/ground-truth/trades", params={"category": "linear", "symbol": "BTCUSDT"}
    ) as r:
        trades = await r.json()
        assert len(trades) >= 5
        assert set(trades[0]) >= {
            "category",
            "symbol",
            "trade_id",
            "time_ms",
            "side",
            "price",
            "size",
            "tick_direction",
            "is_block_trade",
            "seq",
        }
    async with session.get(f"{base}/sim/ground-truth/executions") as r:
        assert len(await r.json()) >= 3
    async with session.post(
        f"{base}/sim/faults/rest_errors", json={"kind": "http502", "count": 1}
    ) as r:
        assert (await r.json())["ok"] is True
    async with session.get(f"{base}/v5/market/time") as r:
        assert r.status == 502
    async with session.post(f"{base}/sim/faults/recent-trade-limit", json={"n": 3}) as r:
        assert r.status == 200
    assert sim.faults.recent_trade_cap == 3
    async with session.post(f"{base}/sim/faults/stall", json={}) as r:
        assert r.status == 400
    async with session.post(f"{base}/sim/faults/explode") as r:
        assert r.status == 404
    async with session.post(f"{base}/sim/faults/clear") as r:
        assert r.status == 200
    async with session.post(
        f"{base}/sim/markets", json={"category": "spot", "symbol": "SOLUSDT"}
    ) as r:
        assert (await r.json())["ok"] is True
    await sim.wait_for_trades("spot", "SOLUSDT", 3, timeout=5)
    async with session.get(f"{base}/sim/stats") as r:
        stats = await r.json()
        assert stats["rest_requests"]["/v5/market/time"] == 1
        assert stats["faults"]["recent_trade_limit"] is None


async def test_control_outage_faults(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    base = f"{sim.rest_url}/sim/faults"

    async def post(name: str, body: Any) -> tuple[int, Any]:
        async with session.post(f"{base}/{name}", json=body) as r:
            return r.status, await r.json()

    async with session.ws_connect(url(sim)) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        assert await post("pause", {"seconds": 0.5}) == (200, {"ok": True, "result": 1})
        assert await post("pause", {"seconds": 0.5, "pongs": True}) == (
            200,
            {"ok": True, "result": 1},
        )
        assert await post("mute", {"symbol": "BTCUSDT", "seconds": 0.5, "category": "linear"}) == (
            200,
            {"ok": True, "result": 1},
        )
        assert await post("mute", {"symbol": "ETHUSDT", "seconds": 0.5}) == (
            200,
            {"ok": True, "result": 0},
        )
        assert await post("black-hole", {"seconds": 0.3}) == (200, {"ok": True, "result": None})
        assert await post("slow_ack", {"seconds": 0.3, "count": 2}) == (
            200,
            {"ok": True, "result": None},
        )
        assert await post("slow-ack", {"seconds": 0.3}) == (200, {"ok": True, "result": None})
        async with session.get(f"{sim.rest_url}/sim/stats") as r:
            stats = await r.json()
        faults = stats["faults"]
        assert faults["paused_connections"] == 1
        assert sorted((m["symbol"], m["category"]) for m in faults["muted"]) == [
            ("BTCUSDT", "linear"),
            ("ETHUSDT", None),
        ]
        assert faults["black_hole"] is True
        assert faults["slow_ack"] == {"seconds": 0.3, "remaining": None}
        assert stats["ws_upgrades_black_holed"] == 0
        assert stats["ws_requests_delayed"] == 0
        for name, body in [
            ("pause", {}),
            ("pause", {"seconds": "soon"}),
            ("pause", {"seconds": -1}),
            ("pause", {"seconds": 1, "pongs": "yes"}),
            ("mute", {"seconds": 1}),
            ("mute", {"symbol": "BTCUSDT"}),
            ("mute", {"symbol": "BTCUSDT", "seconds": 1, "category": "futures"}),
            ("mute", {"symbol": "", "seconds": 1}),
            ("black_hole", {}),
            ("black-hole", [1]),
            ("slow_ack", {"count": 1}),
            ("slow_ack", {"seconds": 0.1, "count": 0}),
            ("slow-ack", {"seconds": 0.1, "count": "two"}),
        ]:
            status, reply = await post(name, body)
            assert status == 400, (name, body, reply)
            assert reply["ok"] is False
        assert await post("clear", {}) == (200, {"ok": True, "result": None})
    faults = sim.faults.status()
    assert faults["paused_connections"] == 0
    assert faults["muted"] == []
    assert faults["black_hole"] is False
    assert faults["slow_ack"] is None


async def test_stop_is_idempotent(make_sim: SimFactory) -> None:
    sim = await make_sim()
    await sim.stop()
    await sim.stop()
    never_started = BybitSimulator()
    await never_started.stop()


def _command() -> list[str]:
    script = Path(sys.executable).parent / "bybit-sim"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bybit_sim.cli"]


@pytest.mark.e2e
async def test_cli_ready_line_and_sigterm(session: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_command(),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--trade-rate",
        "50",
        "--symbols",
        "linear:BTCUSDT,spot:ETHUSDT",
        "--api-key",
        "k1",
        "--api-secret",
        "s1",
        "--seed",
        "1",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        m = re.fullmatch(
            r"bybit-sim listening on (http://127\.0\.0\.1:(\d+)) "
            r"\(ws ws://127\.0\.0\.1:\2/v5/public/\{category\}\)\n",
            line,
        )
        assert m, line
        base = m.group(1)
        async with asyncio.timeout(10):
            while True:
                async with session.get(
                    f"{base}/sim/ground-truth/trades",
                    params={"category": "linear", "symbol": "BTCUSDT"},
                ) as r:
                    if len(await r.json()) >= 3:
                        break
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_stop_closes_sockets_and_releases_held_requests(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rest_timeout_hold_s=60)
    ws = await session.ws_connect(url(sim))
    await ws.send_json({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})

    async def drain() -> None:
        async for _ in ws:
            pass

    reader = asyncio.create_task(drain())  # a real client reads all the time
    sim.faults.rest_errors("timeout", 1)
    held = asyncio.create_task(session.get(f"{sim.rest_url}/v5/market/time"))
    async with asyncio.timeout(5):
        while sim.stats.rest_faults_injected == 0:
            await asyncio.sleep(0.01)
        await sim.stop()
        await reader
        response = await held
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert response.status == 503
    response.release()
