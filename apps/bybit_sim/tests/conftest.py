"""Shared fixtures: an in-process simulator on an ephemeral port and a raw aiohttp client."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator, SimulatorConfig

CAPTURED = Path("/work/shared/bybit-v5/captured")

SimFactory = Callable[..., Awaitable[BybitSimulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """``await make_sim(trade_rate=50, ...)`` -> a started simulator, stopped at teardown."""
    async with contextlib.AsyncExitStack() as started:

        async def factory(**kwargs: Any) -> BybitSimulator:
            kwargs.setdefault("port", 0)
            kwargs.setdefault("seed", 7)
            kwargs.setdefault("private_rate", 0.0)
            sim = BybitSimulator(SimulatorConfig(**kwargs))
            return await started.enter_async_context(sim)

        yield factory


@pytest.fixture
async def sim(make_sim: SimFactory) -> BybitSimulator:
    return await make_sim(trade_rate=40)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"unexpected {msg.type}: {msg.data!r}"
    return json.loads(msg.data)


async def recv_until(
    ws: aiohttp.ClientWebSocketResponse,
    pred: Callable[[Any], bool],
    timeout: float = 5.0,
) -> tuple[Any, list[Any]]:
    """Read frames until ``pred(frame)``; returns (match, frames seen before it)."""
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv_json(ws, timeout)
            if pred(frame):
                return frame, seen
            seen.append(frame)


def url(sim: BybitSimulator, category: str = "linear") -> str:
    """The public WebSocket of ``category``."""
    return sim.public_ws_url.format(category=category)


def is_ack(frame: Any) -> bool:
    return isinstance(frame, dict) and ("op" in frame or frame.get("type") == "COMMAND_RESP")


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse, args: list[str], req_id: str | None = "r1"
) -> tuple[Any, list[Any]]:
    msg: dict[str, Any] = {"op": "subscribe", "args": args}
    if req_id is not None:
        msg["req_id"] = req_id
    await ws.send_json(msg)
    return await recv_until(ws, is_ack)


@contextlib.asynccontextmanager
async def subscribed(
    session: aiohttp.ClientSession, sim: BybitSimulator, topics: list[str], category: str = "linear"
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, list[Any]]]:
    """A public connection subscribed to ``topics``, and the frames that came before the ack
    (the snapshots, unless the simulator sends them after it)."""
    async with session.ws_connect(url(sim, category)) as ws:
        _, before = await subscribe(ws, topics)
        yield ws, before


def ws_auth_args(key: str, secret: str, expires: int | None = None) -> list[Any]:
    expires = expires if expires is not None else int(time.time() * 1000) + 10_000
    sig = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256)
    return [key, expires, sig.hexdigest()]


def signed_headers(
    key: str, secret: str, query: str, *, ts: int | None = None, recv_window: str = "5000"
) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time() * 1000))
    payload = f"{stamp}{key}{recv_window}{query}"
    sign = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": stamp,
        "X-BAPI-RECV-WINDOW": recv_window,
        "X-BAPI-SIGN": sign,
    }


async def signed_get(
    session: aiohttp.ClientSession,
    sim: BybitSimulator,
    path: str,
    query: str,
    key: str = "sim-key",
    secret: str = "sim-secret",
    **kw: Any,
) -> Any:
    """GET with the exact ``query`` string both sent and signed (no re-encoding)."""
    from yarl import URL

    target = URL(f"{sim.rest_url}{path}?{query}", encoded=True)
    async with session.get(target, headers=signed_headers(key, secret, query, **kw)) as r:
        assert r.status == 200
        return await r.json()


def captured(file: str, topic_prefix: str) -> list[dict[str, Any]]:
    lines = (CAPTURED / file).read_text().splitlines()
    frames = [json.loads(line) for line in lines if line.strip()]
    return [f for f in frames if str(f.get("topic", "")).startswith(topic_prefix)]
