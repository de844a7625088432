"""Private stream: auth checks, authorisation of subscriptions, account frames."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator

from .conftest import SimFactory, recv_json, recv_until, ws_auth_args

EXECUTION_FIELDS = {
    "category",
    "symbol",
    "isLeverage",
    "orderId",
    "orderLinkId",
    "side",
    "orderPrice",
    "orderQty",
    "leavesQty",
    "createType",
    "orderType",
    "stopOrderType",
    "execFee",
    "execId",
    "execPrice",
    "execQty",
    "execPnl",
    "execType",
    "execValue",
    "execTime",
    "isMaker",
    "feeRate",
    "tradeIv",
    "markIv",
    "markPrice",
    "indexPrice",
    "underlyingPrice",
    "blockTradeId",
    "closedSize",
    "extraFees",
    "seq",
    "feeCurrency",
    "marketUnit",
}


async def request(
    ws: aiohttp.ClientWebSocketResponse, op: str, args: list[Any], req_id: str | None = None
) -> dict[str, Any]:
    """Send ``{"op":op,"args":args[,"req_id":req_id]}``; returns the next frame (the reply)."""
    msg: dict[str, Any] = {"op": op, "args": args}
    if req_id is not None:
        msg["req_id"] = req_id
    await ws.send_json(msg)
    return dict(await recv_json(ws))


async def auth(
    ws: aiohttp.ClientWebSocketResponse, args: list[Any], req_id: str | None = None
) -> dict[str, Any]:
    return await request(ws, "auth", args, req_id)


@pytest.fixture
async def busy_sim(make_sim: SimFactory) -> BybitSimulator:
    """A simulator whose account trades 40 times a second."""
    return await make_sim(private_rate=40)


async def test_auth_success_shape(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(sim.private_ws_url) as ws:
        ack = await auth(ws, ws_auth_args("sim-key", "sim-secret"))
        assert list(ack) == ["success", "ret_msg", "op", "conn_id"]
        assert ack["success"] is True
        assert ack["ret_msg"] == ""
        assert ack["op"] == "auth"
    async with session.ws_connect(sim.private_ws_url) as ws:
        # expires as a numeric string (ccxt style) and a req_id echo
        key, expires, sig = ws_auth_args("sim-key", "sim-secret")
        ack = await auth(ws, [key, str(expires), sig], req_id="a1")
        assert ack["success"] is True
        assert ack["req_id"] == "a1"
    assert sim.stats.auth_attempts == 2
    assert sim.stats.auth_failures == 0


# Args are built when the test runs: an `expires` computed at collection time
# would already be in the past on a long test run.
@pytest.mark.parametrize(
    ("make_args", "ret_msg"),
    [
        (
            lambda: ws_auth_args("sim-key", "sim-secret", expires=int(time.time() * 1000) - 1000),
            "Params Error",
        ),
        (lambda: ws_auth_args("nope", "sim-secret"), "Invalid apikey"),
        (lambda: ws_auth_args("sim-key", "wrong-secret"), "Signature verification failed"),
        (lambda: ["sim-key"], "Params Error"),
    ],
)
async def test_auth_failures(
    make_args: Callable[[], list[Any]],
    ret_msg: str,
    sim: BybitSimulator,
    session: aiohttp.ClientSession,
) -> None:
    async with session.ws_connect(sim.private_ws_url) as ws:
        args = make_args()
        ack = await auth(ws, args)
        assert ack == {
            "success": False,
            "ret_msg": ret_msg,
            "op": "auth",
            "conn_id": ack["conn_id"],
        }
        nack = await request(ws, "subscribe", ["execution"])
        assert nack["success"] is False
        assert nack["ret_msg"] == "Request not authorized"
    assert sim.stats.auth_failures == 1


async def test_subscribe_before_auth_then_after(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(sim.private_ws_url) as ws:
        nack = await request(ws, "subscribe", ["order"], req_id="s0")
        assert nack == {
            "success": False,
            "ret_msg": "Request not authorized",
            "op": "subscribe",
            "conn_id": nack["conn_id"],
            "req_id": "s0",
        }
        await auth(ws, ws_auth_args("sim-key", "sim-secret"))
        ack = await request(ws, "subscribe", ["order", "wallet", "bogus"])
        assert ack["success"] is False
        assert ack["ret_msg"] == "error:handler not found,topic:bogus"
        ack = await request(ws, "subscribe", ["execution"])
        assert ack == {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": ack["conn_id"]}


async def test_private_pong_shape(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(sim.private_ws_url) as ws:
        await ws.send_json({"op": "ping", "req_id": "test"})
        pong = await recv_json(ws)
        assert list(pong) == ["req_id", "op", "args", "conn_id"]
        assert pong["op"] == "pong"
        assert pong["req_id"] == "test"
        assert pong["args"][0].isdigit()
    assert sim.stats.pings_received == 1


async def test_account_frames_pushed_and_recorded(
    busy_sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(busy_sim.private_ws_url) as ws:
        await auth(ws, ws_auth_args("sim-key", "sim-secret"))
        ack = await request(
            ws, "subscribe", ["execution", "order", "position", "wallet"], req_id="s"
        )
        assert ack["success"] is True
        assert ack["req_id"] == "s"
        seen: dict[str, dict[str, Any]] = {}
        executions: list[dict[str, Any]] = []
        while len(executions) < 5 or len(seen) < 4:
            frame, _ = await recv_until(ws, lambda f: "topic" in f, timeout=5)
            seen[frame["topic"]] = frame
            if frame["topic"] == "execution":
                executions.extend(frame["data"])
    for topic, frame in seen.items():
        assert isinstance(frame["creationTime"], int)
        assert isinstance(frame["id"], str)
        assert frame["data"]
        if topic != "wallet":
            assert all("category" in item for item in frame["data"])
    assert "category" not in seen["wallet"]["data"][0]
    assert seen["wallet"]["data"][0]["accountType"] == "UNIFIED"
    order = seen["order"]["data"][0]
    assert order["orderStatus"] in {"New", "PartiallyFilled", "Filled", "Cancelled"}
    assert isinstance(order["positionIdx"], int)
    assert order["updatedTime"].isdigit()
    position = seen["position"]["data"][0]
    assert isinstance(position["seq"], int)
    assert isinstance(position["size"], str)
    for item in executions:
        assert set(item) >= EXECUTION_FIELDS
        assert isinstance(item["seq"], int)
        assert isinstance(item["isMaker"], bool)
        assert item["execTime"].isdigit()
        assert item["extraFees"] == ""
    truth = {e["execId"]: e for e in busy_sim.ground_truth.executions()}
    for item in executions:
        assert truth[item["execId"]] == item


async def test_order_lifecycle_new_before_fill(
    busy_sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(busy_sim.private_ws_url) as ws:
        await auth(ws, ws_auth_args("sim-key", "sim-secret"))
        await request(ws, "subscribe", ["order.linear", "execution.fast"])
        statuses: dict[str, list[str]] = {}
        fast = 0
        while not any(s[-1] == "Filled" and s[0] == "New" for s in statuses.values()):
            frame, _ = await recv_until(ws, lambda f: "topic" in f, timeout=5)
            if frame["topic"] == "execution.fast":
                assert "id" not in frame
                assert "execFee" not in frame["data"][0]
                fast += 1
                continue
            assert frame["topic"] == "order.linear"
            for o in frame["data"]:
                statuses.setdefault(o["orderId"], []).append(o["orderStatus"])
        assert fast >= 1
