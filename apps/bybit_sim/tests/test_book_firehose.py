"""The book firehose: N updates of one book stream, one per frame, as fast as the client
drains them; each continues the book the client holds, and the stream goes on after."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator
from bybit_sim.firehose import BookFirehoseStatus

from .conftest import SimFactory, recv_until, subscribe
from .test_orderbook import ClientBook, assert_sane, is_topic, next_book_frame

TOPIC = "orderbook.200.BTCUSDT"


async def read_firehose(
    ws: aiohttp.ClientWebSocketResponse, status: BookFirehoseStatus, book: ClientBook
) -> list[dict[str, Any]]:
    """Book frames, each applied to ``book``, until the firehose's last update arrived."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while status.last_u is None or book.u != status.last_u:
            frame, _ = await recv_until(ws, is_topic(TOPIC), timeout=10)
            book.apply(frame)
            assert_sane(*book.levels(), depth=200)
            frames.append(frame)
    return frames


def check_sequence(frames: list[dict[str, Any]], before: int) -> None:
    """A snapshot with the next ``u``, then deltas, ``u`` + 1 each; ``seq`` and ``cts``
    never go back, and ``cts`` is never after ``ts``."""
    assert [f["type"] for f in frames] == ["snapshot"] + ["delta"] * (len(frames) - 1)
    assert [f["data"]["u"] for f in frames] == list(range(before + 1, before + 1 + len(frames)))
    seqs = [f["data"]["seq"] for f in frames]
    assert seqs == sorted(seqs)
    assert all(f["cts"] <= f["ts"] for f in frames)
    assert [f["cts"] for f in frames] == sorted(f["cts"] for f in frames)


async def test_a_snapshot_then_deltas_continue_the_clients_book_and_the_stream_after(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    # the stream's own pushes run too: they wait while the firehose runs, then go on
    sim = await make_sim(trade_rate=0, ticker_interval_s=60)
    book = ClientBook()
    async with session.ws_connect(sim.public_ws_url.format(category="linear")) as ws:
        _, before = await subscribe(ws, [TOPIC])
        book.apply(next(f for f in before if is_topic(TOPIC)(f)))
        task = sim.firehose.books.start("linear", "BTCUSDT", 2000, events=20)
        frames = await read_firehose(ws, sim.firehose.books.status, book)
        status = await task
        last_u, levels = book.u, book.levels()
        after = await next_book_frame(ws, TOPIC)
        book.apply(after)
    assert (status.state, status.error, status.updates_sent) == ("done", None, 2000)
    firehose = [f for f in frames if f["data"]["u"] >= status.first_u]
    assert len(firehose) == 2000
    check_sequence(firehose, status.first_u - 1)
    deltas = [f["data"] for f in firehose[1:]]
    changed = [len(d["b"]) + len(d["a"]) for d in deltas]
    assert status.levels == sum(changed)
    assert 10 < sum(changed) / len(changed) < 30  # mean 20 engine events, most in the top 200
    assert any(size == "0" for d in deltas for _, size in d["b"] + d["a"])
    assert status.frame_bytes > 2000 * 100
    # the book the client built is the simulator's own, and its stream went on from it
    truth = sim.ground_truth.book_at("linear", "BTCUSDT", 200, firehose[-1]["ts"])
    assert truth is not None
    assert (truth.u, truth.bids, truth.asks) == (last_u, *levels)
    assert (after["type"], after["data"]["u"]) == ("delta", last_u + 1)
    updates = sim.ground_truth.book_updates("linear", "BTCUSDT", 200)
    assert [u.u for u in updates if u.u >= status.first_u][:2001] == list(
        range(status.first_u, last_u + 2)
    )


async def test_a_slow_client_gets_every_update(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    # A queue this short would cut a client that falls behind ordinary publishing.
    sim = await make_sim(trade_rate=0, book_update_rate=0, ws_send_queue_max=10)
    book = ClientBook()
    async with session.ws_connect(sim.public_ws_url.format(category="spot")) as ws:
        topic = "orderbook.50.ETHUSDT"
        _, before = await subscribe(ws, [topic])
        book.apply(next(f for f in before if is_topic(topic)(f)))
        task = sim.firehose.books.start("spot", "ETHUSDT", 300, depth=50, events=3)
        frames = []
        async with asyncio.timeout(30):
            while not frames or frames[-1]["data"]["u"] != sim.firehose.books.status.last_u:
                frame = await next_book_frame(ws, topic)
                book.apply(frame)
                frames.append(frame)
                await asyncio.sleep(0.001)  # read slower than the firehose pushes
        status = await task
    check_sequence(frames, status.first_u - 1)  # the quiet stream sent nothing else
    assert len(frames) == 300
    assert sim.stats.ws_connections_dropped == 0


async def test_control_endpoint_starts_reports_and_refuses(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim: BybitSimulator = await make_sim(trade_rate=0)
    url = f"{sim.rest_url}/sim/book-firehose"
    for bad in (
        {"category": "linear", "symbol": "BTCUSDT"},  # no update count
        {"category": "option", "symbol": "BTC", "updates": 5},
        {"category": "linear", "symbol": "BTCUSDT", "updates": 5, "depth": 30},
        {"category": "linear", "symbol": "BTCUSDT", "updates": 5, "events": 0},
        {"category": "linear", "symbol": "NOPEUSDT", "updates": 5},
    ):
        async with session.post(url, json=bad) as r:
            assert r.status == 400, bad
    body = {"category": "linear", "symbol": "BTCUSDT", "updates": 500, "depth": 50}
    async with session.post(url, json=body) as r:
        assert r.status == 202
        assert (await r.json())["status"]["state"] == "waiting"
    async with session.post(url, json=body) as r:
        assert r.status == 409  # one at a time (this one waits for a subscriber)
    async with session.ws_connect(sim.public_ws_url.format(category="linear")) as ws:
        await subscribe(ws, ["orderbook.50.BTCUSDT"])
        status = await poll_until_done(session, url, ws)
    assert (status["updates_sent"], status["subscribers"], status["depth"]) == (500, 1, 50)
    # the default pace: the simulator's 100 events/s over depth 50's 20 ms
    assert status["events"] == pytest.approx(2.0)
    assert status["last_u"] - status["first_u"] == 499


async def poll_until_done(
    session: aiohttp.ClientSession, url: str, ws: aiohttp.ClientWebSocketResponse
) -> dict[str, Any]:
    """The firehose's status once done, reading (and dropping) the socket's frames meanwhile
    so that its push can go on."""
    reader = asyncio.create_task(drain(ws))
    try:
        async with asyncio.timeout(20):
            while True:
                async with session.get(url) as r:
                    status: dict[str, Any] = await r.json()
                if status["state"] in ("done", "failed"):
                    return status
                await asyncio.sleep(0.02)
    finally:
        reader.cancel()


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def test_without_a_subscriber_it_fails_after_waiting(make_sim: SimFactory) -> None:
    sim = await make_sim(trade_rate=0)
    status = await sim.firehose.books.start(
        "linear", "BTCUSDT", 10, wait_subscriber_s=0.1, events=5
    )
    assert status.state == "failed"
    assert "nobody subscribed" in (status.error or "")
    assert status.first_u is None
