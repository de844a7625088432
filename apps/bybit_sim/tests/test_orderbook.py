"""Order books: streams, ground truth, REST, faults.

A client here keeps books the way a careful recorder does (reset on snapshot or ``u == 1``,
``"0"`` deletes, anything else inserts or replaces) and is checked level by level against
the simulator's own ground truth.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_sim import BybitSimulator, SimulatorConfig
from bybit_sim.market import SymbolMarket
from bybit_sim.topics import BOOK_PUSH_MS
from bybit_sim.truth import BOOK_CHECKPOINT_EVERY, BookHistory

from .conftest import SimFactory, recv_json, recv_until, subscribe, subscribed, url

Levels = list[tuple[str, str]]


class ClientBook:
    """One ``orderbook.{depth}.{symbol}`` book kept from the wire."""

    def __init__(self, *frames: dict[str, Any]) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.u = 0
        self.seq = 0
        for frame in frames:
            self.apply(frame)

    def apply(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if frame["type"] == "snapshot" or data["u"] == 1:
            self.bids, self.asks = {}, {}
        for side, book in (("b", self.bids), ("a", self.asks)):
            for price, size in data[side]:
                if size == "0":
                    book.pop(price, None)
                else:
                    book[price] = size
        self.u = data["u"]
        self.seq = data.get("seq", 0)

    def levels(self) -> tuple[Levels, Levels]:
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))
        return bids, asks


def is_topic(topic: str) -> Callable[[Any], bool]:
    return lambda f: isinstance(f, dict) and f.get("topic") == topic


async def next_book_frame(ws: aiohttp.ClientWebSocketResponse, topic: str) -> dict[str, Any]:
    frame, _ = await recv_until(ws, is_topic(topic), timeout=5)
    return dict(frame)


def assert_sane(bids: Levels, asks: Levels, depth: int, full: bool = True) -> None:
    """Sorted, no duplicates, positive sizes, never more than ``depth`` levels, not crossed."""
    bp = [Decimal(p) for p, _ in bids]
    ap = [Decimal(p) for p, _ in asks]
    assert bp == sorted(set(bp), reverse=True)
    assert ap == sorted(set(ap))
    assert all(Decimal(s) > 0 for _, s in bids + asks)
    assert len(bids) <= depth
    assert len(asks) <= depth
    if full:
        assert len(bids) == depth
        assert len(asks) == depth
    if bp and ap:
        assert bp[0] < ap[0]


async def collect(
    ws: aiohttp.ClientWebSocketResponse,
    topics: list[str],
    until: Callable[[dict[str, list[Any]]], bool],
    timeout: float = 15.0,
    first: list[Any] | None = None,
) -> tuple[dict[str, ClientBook], dict[str, list[tuple[int, int, Levels, Levels]]], list[Any]]:
    """Read book frames (and keep all of them) until ``until(history)`` holds.

    Returns the books, per topic the (ts, u, bids, asks) after every frame, and the frames
    in arrival order.
    """
    books = {t: ClientBook() for t in topics}
    history: dict[str, list[tuple[int, int, Levels, Levels]]] = {t: [] for t in topics}
    frames: list[Any] = []

    def take(frame: Any) -> None:
        topic = frame.get("topic") if isinstance(frame, dict) else None
        if topic not in books:
            return
        frames.append(frame)
        book = books[topic]
        book.apply(frame)
        history[topic].append((frame["ts"], book.u, *book.levels()))

    for frame in first or []:
        take(frame)
    async with asyncio.timeout(timeout):
        while not until(history):
            take(await recv_json(ws, timeout))
    return books, history, frames


def depth_of(topic: str) -> int:
    return int(topic.split(".")[1])


# -- subscription ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "topic"),
    [
        ("linear", "orderbook.25.BTCUSDT"),
        ("linear", "orderbook.500.BTCUSDT"),
        ("inverse", "orderbook.100.BTCUSD"),
        ("spot", "orderbook.500.BTCUSDT"),
        ("spot", "orderbook.2.BTCUSDT"),
        ("linear", "orderbook.50.NOPEUSDT"),
        ("linear", "orderbook.050.BTCUSDT"),
    ],
)
async def test_unsupported_depth_gets_handler_not_found(
    category: str, topic: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(url(sim, category)) as ws:
        ack, _ = await subscribe(ws, [topic], req_id="e1")
        assert ack["success"] is False
        assert ack["ret_msg"] == f"error:handler not found,topic:{topic}"


async def test_option_unsupported_depth_fails_in_command_resp(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    bad, good = "orderbook.50.BTC-27DEC30-60000-C", "orderbook.100.BTC-27DEC30-60000-C"
    async with session.ws_connect(url(sim, "option")) as ws:
        ack, before = await subscribe(ws, [bad, good])
        assert ack["type"] == "COMMAND_RESP"
        assert ack["data"] == {"failTopics": [bad], "successTopics": [good]}
        assert [f["topic"] for f in before] == [good]


# -- the book: rebuild from the wire == ground truth -------------------------------------------


@pytest.mark.parametrize(
    ("category", "symbol"),
    [
        ("linear", "BTCUSDT"),
        ("spot", "ETHUSDT"),
        ("inverse", "BTCUSD"),
        ("option", "BTC-27DEC30-60000-C"),
    ],
)
async def test_client_rebuilt_books_match_ground_truth(
    category: str, symbol: str, sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """Every depth of a symbol on one socket: after every frame, and at many instants in
    between, the client's book equals ``ground_truth.book_at`` level by level (with u)."""
    topics = [f"orderbook.{d}.{symbol}" for d in sorted(BOOK_PUSH_MS[category])]
    # about 1.5 s of frames: 40 from the fast streams, 8 from the 200 ms ones
    need = {t: 40 if BOOK_PUSH_MS[category][depth_of(t)] <= 20 else 8 for t in topics}
    async with session.ws_connect(url(sim, category)) as ws:
        ack, before = await subscribe(ws, topics)
        assert ack.get("success") is True
        _, history, _ = await collect(
            ws,
            topics,
            lambda h: all(len(v) >= need[t] for t, v in h.items()),
            first=before,
        )
    truth = sim.ground_truth
    rng = random.Random(1)
    for topic, states in history.items():
        depth = depth_of(topic)
        for ts, u, bids, asks in states:
            assert_sane(bids, asks, depth, full=category != "option")
            expected = truth.book_at(category, symbol, depth, ts)
            assert expected is not None
            assert (expected.u, expected.bids, expected.asks) == (u, bids, asks), (topic, ts)
        # instants between frames: the client's book is the one after its last frame so far
        times = [s[0] for s in states]
        for t in sorted(rng.randint(times[0], times[-1]) for _ in range(50)):
            _, u, bids, asks = [s for s in states if s[0] <= t][-1]
            expected = truth.book_at(category, symbol, depth, t)
            assert expected is not None
            assert (expected.u, expected.bids, expected.asks) == (u, bids, asks), (topic, t)
        assert truth.book_at(category, symbol, depth, times[0] - 10_000) is None


async def test_u_continuity_and_seq_across_depths(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """Deltas add exactly 1 to ``u``; ``seq`` never goes back across depths; books of the
    same ``seq`` are views of one book (depth 50 == the top 50 of depth 200)."""
    topics = [f"orderbook.{d}.BTCUSDT" for d in (1, 50, 200, 1000)]
    async with subscribed(session, sim, topics) as (ws, before):
        _, history, frames = await collect(
            ws, topics, lambda h: len(h["orderbook.1000.BTCUSDT"]) >= 10, first=before
        )
    last_u: dict[str, int] = {}
    last_seq = 0
    for frame in frames:
        topic, data = frame["topic"], frame["data"]
        assert data["seq"] >= last_seq
        last_seq = data["seq"]
        assert frame["cts"] <= frame["ts"]
        if topic in last_u:
            if topic == "orderbook.1.BTCUSDT":
                assert frame["type"] == "snapshot"
                assert data["u"] in (last_u[topic], last_u[topic] + 1)
            else:
                assert frame["type"] == "delta"
                assert data["u"] == last_u[topic] + 1
        last_u[topic] = data["u"]
    states = {t: {s[1]: s for s in v} for t, v in history.items()}
    compared = 0
    for a, b in ((1, 50), (50, 200), (200, 1000)):
        small, big = f"orderbook.{a}.BTCUSDT", f"orderbook.{b}.BTCUSDT"
        small_n = depth_of(small)
        small_by_seq = {f["data"]["seq"]: f["data"]["u"] for f in frames if f["topic"] == small}
        big_by_seq = {f["data"]["seq"]: f["data"]["u"] for f in frames if f["topic"] == big}
        for seq in small_by_seq.keys() & big_by_seq.keys():
            _, _, sb, sa = states[small][small_by_seq[seq]]
            _, _, bb, ba = states[big][big_by_seq[seq]]
            assert (sb, sa) == (bb[:small_n], ba[:small_n]), (small, big, seq)
            compared += 1
    assert compared >= 3


async def test_push_intervals_follow_bybit(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=30, book_update_rate=400)
    topics = [f"orderbook.{d}.BTCUSDT" for d in (50, 200, 1000)]
    async with subscribed(session, sim, topics) as (ws, before):
        _, history, _ = await collect(
            ws, topics, lambda h: len(h["orderbook.1000.BTCUSDT"]) >= 12, first=before
        )
    for topic, states in history.items():
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(states[1:])]
        interval = BOOK_PUSH_MS["linear"][depth_of(topic)]
        assert statistics.median(gaps) >= 0.8 * interval, (topic, gaps)
        assert statistics.median(gaps) <= 3 * interval, (topic, gaps)


async def test_book_interval_scale_slows_pushes(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=30, book_update_rate=400, book_interval_scale=5)
    topic = "orderbook.50.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        _, history, _ = await collect(ws, [topic], lambda h: len(h[topic]) >= 8, first=before)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(history[topic][1:])]
    assert statistics.median(gaps) >= 0.8 * 5 * 20


async def test_depth1_resends_unchanged_snapshot_with_same_u(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    """No trades, no book events: depth 1 re-sends the same snapshot (same u) every
    ``book_depth1_resend_s``; deeper books send nothing; ground truth records one state."""
    assert SimulatorConfig().book_depth1_resend_s == 3.0  # Bybit's figure
    sim = await make_sim(trade_rate=0, book_update_rate=0, book_depth1_resend_s=0.3)
    one, fifty = "orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT"
    async with subscribed(session, sim, [one, fifty]) as (ws, before):
        snap = next(f for f in before if f["topic"] == one)
        frames = [snap]
        while len(frames) < 3:
            frame, _seen = await recv_until(ws, lambda f: isinstance(f, dict) and "topic" in f)
            assert frame["topic"] == one  # nothing changed, so depth 50 stays silent
            frames.append(frame)
    for prev, frame in itertools.pairwise(frames):
        assert frame["type"] == "snapshot"
        assert frame["data"] == prev["data"]  # same u, seq and levels
        assert frame["cts"] == prev["cts"]
        assert frame["ts"] - prev["ts"] >= 300
    assert len(sim.ground_truth.book_updates("linear", "BTCUSDT", 1)) == 1
    assert len(sim.ground_truth.book_updates("linear", "BTCUSDT", 50)) == 1


async def test_book_brackets_the_trades(
    make_sim: SimFactory, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every push, best bid < best ask and the last trade sits between them (at most
    one tick outside: the market may have drifted a tick since the last print)."""
    sim = await make_sim(trade_rate=60)
    checks: list[tuple[int, int, int]] = []
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"])
        market = sim.hub.market("linear", "BTCUSDT")
        assert isinstance(market, SymbolMarket)
        stream = market.books[("BTCUSDT", 50)]
        push = stream.push

        def spy(ts: int) -> dict[str, Any] | None:
            frame = push(ts)
            checks.append((max(stream.bids), min(stream.asks), market.last))
            return frame

        monkeypatch.setattr(stream, "push", spy)
        start = sim.ground_truth.trade_count("linear", "BTCUSDT")
        await sim.wait_for_trades("linear", "BTCUSDT", start + 100, timeout=15)
    tick = market.spec.tick
    assert len(checks) > 50
    assert all(bid < ask for bid, ask, _ in checks)
    assert all(bid - tick <= last <= ask + tick for bid, ask, last in checks)
    inside = sum(1 for bid, ask, last in checks if bid <= last <= ask)
    assert inside >= 0.7 * len(checks)


async def test_second_subscriber_joins_running_stream(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    topic = "orderbook.50.BTCUSDT"
    async with (
        session.ws_connect(url(sim, "linear")) as ws1,
        session.ws_connect(url(sim, "linear")) as ws2,
    ):
        _, _before = await subscribe(ws1, [topic])
        for _ in range(3):
            await next_book_frame(ws1, topic)
        _, before2 = await subscribe(ws2, [topic])
        snap = before2[0]
        assert snap["type"] == "snapshot"
        one, two = ClientBook(), ClientBook()
        two.apply(snap)
        # ws1 carries on; both then see the same deltas, and both books agree
        while True:
            frame = await next_book_frame(ws1, topic)
            if frame["data"]["u"] == snap["data"]["u"] + 1:
                break
        one_frames = [frame]
        two_frames = [await next_book_frame(ws2, topic)]
        for _ in range(5):
            one_frames.append(await next_book_frame(ws1, topic))
            two_frames.append(await next_book_frame(ws2, topic))
    assert one_frames == two_frames
    truth = sim.ground_truth.book_at("linear", "BTCUSDT", 50, snap["ts"])
    assert truth is not None
    one.bids, one.asks = dict(truth.bids), dict(truth.asks)
    for f in one_frames:
        one.apply(f)
        two.apply(f)
    assert one.levels() == two.levels()


async def test_streams_compute_only_while_subscribed(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=40)
    topic = "orderbook.50.BTCUSDT"
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        market = sim.hub.market("linear", "BTCUSDT")
        assert market is not None
        assert market.full_books == {}
        assert market.books == {}
        _, before = await subscribe(ws, [topic], req_id="b")
        last_u = before[0]["data"]["u"]
        for _ in range(3):
            last_u = (await next_book_frame(ws, topic))["data"]["u"]
        await ws.send_json({"op": "unsubscribe", "args": [topic], "req_id": "un"})
        ack, _ = await recv_until(ws, lambda f: f.get("req_id") == "un")
        assert ack["success"] is True
        stream = market.books[("BTCUSDT", 50)]
        async with asyncio.timeout(5):
            while stream.active:
                await asyncio.sleep(0.01)
        kept = len(sim.ground_truth.book_updates("linear", "BTCUSDT", 50))
        count = sim.ground_truth.trade_count("linear", "BTCUSDT")
        await sim.wait_for_trades("linear", "BTCUSDT", count + 20, timeout=10)
        assert len(sim.ground_truth.book_updates("linear", "BTCUSDT", 50)) == kept
        # back again: a fresh snapshot, u moved on, and it is the truth of that instant
        _, before = await subscribe(ws, [topic], req_id="again")
        snap = next(f for f in before if f.get("topic") == topic)
        assert snap["data"]["u"] > last_u
        truth = sim.ground_truth.book_at("linear", "BTCUSDT", 50, snap["ts"])
        assert truth is not None
        book = ClientBook()
        book.apply(snap)
        assert (truth.u, truth.bids, truth.asks) == (book.u, *book.levels())


# -- ground truth: memory bounds and HTTP ----------------------------------------------------


def test_book_history_is_bounded_and_replays_from_checkpoints() -> None:
    history = BookHistory("linear", 2, 3, window_ms=10_000, max_frames=1_000_000)
    book = {10_000: 5}
    history.record(0, 1, 1, 0, "snapshot", (dict(book), {}), None)
    for i in range(1, 3000):
        price = 10_000 - i % 50
        change = {price: i % 7}  # size 0 deletes
        book = dict(book)
        if i % 7:
            book[price] = i % 7
        else:
            book.pop(price, None)
        history.record(i * 10, i + 1, i + 1, i * 10, "delta", (book, {}), (change, {}))
    # the window (10 s at 10 ms per frame = 1000 frames) plus at most one checkpoint segment
    assert 1000 <= len(history) <= 1000 + BOOK_CHECKPOINT_EVERY + 1
    assert history.at(100) is None
    latest = history.at(29_990)
    assert latest is not None
    assert latest.u == 3000
    assert latest.bids == [
        (f"{p // 100}.{p % 100:02d}", f"0.00{s}") for p, s in sorted(book.items(), reverse=True)
    ]
    capped = BookHistory("spot", 2, 3, window_ms=10**9, max_frames=300)
    for i in range(3000):
        capped.record(i, i + 1, i, i, "snapshot", ({1: 10}, {2: 20}), None)
    assert len(capped) <= 300 + BOOK_CHECKPOINT_EVERY
    at = capped.at(2999)
    assert at is not None
    assert at == (3000, [("0.01", "0.01")], [("0.02", "0.02")])  # spot sizes trimmed


async def test_old_instants_leave_ground_truth(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    """Depth 1 records every state in full, so the bounds hold exactly."""
    sim = await make_sim(
        trade_rate=30, book_update_rate=400, book_truth_window_s=0.3, book_truth_max_frames=40
    )
    topic = "orderbook.1.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        first_ts = before[0]["ts"]
        _, history, _ = await collect(ws, [topic], lambda h: len(h[topic]) >= 100, first=before)
    assert sim.ground_truth.book_at("linear", "BTCUSDT", 1, first_ts) is None
    assert len(sim.ground_truth.book_updates("linear", "BTCUSDT", 1)) <= 40
    ts, u, bids, asks = history[topic][-1]
    assert sim.ground_truth.book_at("linear", "BTCUSDT", 1, ts) == (u, bids, asks)


async def test_ground_truth_book_over_http(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    topic = "orderbook.200.SOLUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        frames = [before[0]] + [await next_book_frame(ws, topic) for _ in range(3)]
    base = f"{sim.rest_url}/sim/ground-truth"
    for frame in frames:
        query = f"category=linear&symbol=SOLUSDT&depth=200&ts={frame['ts']}"
        async with session.get(f"{base}/book?{query}") as r:
            assert r.status == 200
            body = await r.json()
        truth = sim.ground_truth.book_at("linear", "SOLUSDT", 200, frame["ts"])
        assert truth is not None
        assert body == {
            "u": truth.u,
            "b": [list(x) for x in truth.bids],
            "a": [list(x) for x in truth.asks],
        }
        assert body["u"] == frame["data"]["u"]
    async with session.get(f"{base}/book?category=linear&symbol=SOLUSDT&depth=200") as r:
        assert r.status == 200  # ts defaults to now
    async with session.get(f"{base}/book-updates?category=linear&symbol=SOLUSDT&depth=200") as r:
        updates = await r.json()
    assert [u["u"] for u in updates][: len(frames)] == [f["data"]["u"] for f in frames]
    assert list(updates[0]) == ["ts", "u", "seq", "cts", "type"]
    assert updates[0]["type"] == "snapshot"
    assert updates[1]["type"] == "delta"
    for query, status in (
        ("category=linear&symbol=SOLUSDT", 400),
        ("category=linear&symbol=SOLUSDT&depth=x", 400),
        ("category=linear&symbol=SOLUSDT&depth=200&ts=x", 400),
        ("category=linear&symbol=SOLUSDT&depth=50", 404),
        ("category=linear&symbol=SOLUSDT&depth=200&ts=1", 404),
    ):
        async with session.get(f"{base}/book?{query}") as r:
            assert r.status == status, query


# -- REST ------------------------------------------------------------------------------------


async def rest_book(session: aiohttp.ClientSession, sim: BybitSimulator, query: str) -> Any:
    async with session.get(f"{sim.rest_url}/v5/market/orderbook?{query}") as r:
        assert r.status == 200
        return await r.json()


@pytest.mark.parametrize(
    ("category", "symbol", "default", "maximum"),
    [
        ("spot", "BTCUSDT", 1, 200),
        ("linear", "BTCUSDT", 25, 500),
        ("inverse", "BTCUSD", 25, 500),
        ("option", "BTC-27DEC30-60000-C", 1, 25),
    ],
)
async def test_rest_orderbook_shape_and_limits(
    category: str,
    symbol: str,
    default: int,
    maximum: int,
    sim: BybitSimulator,
    session: aiohttp.ClientSession,
) -> None:
    reply = await rest_book(session, sim, f"category={category}&symbol={symbol}")
    assert list(reply) == ["retCode", "retMsg", "result", "retExtInfo", "time"]
    assert (reply["retCode"], reply["retMsg"]) == (0, "OK")
    result = reply["result"]
    assert list(result) == ["s", "b", "a", "ts", "u", "seq", "cts"]
    assert result["s"] == symbol
    assert all(isinstance(result[k], int) for k in ("ts", "u", "seq", "cts"))
    assert result["cts"] <= result["ts"]
    assert len(result["b"]) == len(result["a"]) == default
    for limit in (1, maximum):
        reply = await rest_book(session, sim, f"category={category}&symbol={symbol}&limit={limit}")
        b, a = reply["result"]["b"], reply["result"]["a"]
        assert all(isinstance(x, str) for level in b + a for x in level)
        assert_sane([tuple(x) for x in b], [tuple(x) for x in a], limit, full=category != "option")
        if category != "option":
            assert len(b) == len(a) == limit
    for bad in ("0", "-1", str(maximum + 1), "abc", "2.5"):
        reply = await rest_book(session, sim, f"category={category}&symbol={symbol}&limit={bad}")
        assert reply["retCode"] == 10001, bad
        assert reply["retMsg"] == "params error: limit invalid"
        assert reply["result"] == {}


async def test_rest_orderbook_errors(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    for query, msg in (
        ("category=linear", "params error: symbol is required"),
        ("category=linear&symbol=NOPEUSDT", "Not supported symbols"),
        ("category=linear&symbol=btcusdt", "Not supported symbols"),
        ("category=futures&symbol=BTCUSDT", "Illegal category"),
        ("symbol=BTCUSDT", "Illegal category"),
    ):
        reply = await rest_book(session, sim, query)
        assert (reply["retCode"], reply["retMsg"], reply["result"]) == (10001, msg, {}), query


async def test_rest_orderbook_agrees_with_the_stream(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    topic = "orderbook.50.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        frame = await next_book_frame(ws, topic)
        reply = await rest_book(session, sim, "category=linear&symbol=BTCUSDT&limit=50")
        market = sim.hub.market("linear", "BTCUSDT")
        assert market is not None
        full = market.full_books["BTCUSDT"]
    result = reply["result"]
    assert result["seq"] >= frame["data"]["seq"]
    assert result["seq"] <= full.seq
    bid, ask = Decimal(result["b"][0][0]), Decimal(result["a"][0][0])
    assert bid < ask
    assert abs(bid - Decimal(before[0]["data"]["b"][0][0])) < 5  # same market, not another


# -- faults ----------------------------------------------------------------------------------


async def test_fault_skip_update(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    topic = "orderbook.50.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        book = ClientBook(before[0])
        book.apply(await next_book_frame(ws, topic))
        assert sim.faults.book_skip_update("BTCUSDT", 50) == 1
        assert sim.faults.book_skip_update("BTCUSDT", 200) == 0  # nobody listens to 200
        assert sim.faults.status()["book"] == [
            {"category": "linear", "symbol": "BTCUSDT", "depth": 50, "skip_update": 1}
        ]
        gap = await next_book_frame(ws, topic)
        assert gap["type"] == "delta"
        assert gap["data"]["u"] == book.u + 2  # one u skipped
        book.apply(gap)
        after = await next_book_frame(ws, topic)
        assert after["data"]["u"] == gap["data"]["u"] + 1
        book.apply(after)
    assert sim.faults.status()["book"] == []
    truth = sim.ground_truth.book_at("linear", "BTCUSDT", 50, after["ts"])
    assert truth == (book.u, *book.levels())  # the content itself was right


async def test_fault_restart(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    topics = [f"orderbook.{d}.BTCUSDT" for d in (1, 50, 200)]
    async with subscribed(session, sim, topics) as (ws, _before):
        await next_book_frame(ws, "orderbook.50.BTCUSDT")
        assert sim.faults.book_restart("BTCUSDT") == 3
        assert sim.faults.book_restart("BTCUSDT", category="spot") == 0
        restarted: dict[str, dict[str, Any]] = {}
        after: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(5):
            while len(after) < 2:
                frame = await recv_json(ws)
                topic = frame.get("topic")
                if topic is None:
                    continue
                if topic not in restarted:
                    restarted[topic] = frame
                elif topic != topics[0]:
                    after.setdefault(topic, frame)
    for topic in topics:
        frame = restarted[topic]
        assert frame["type"] == "snapshot"
        assert frame["data"]["u"] == 1
        depth = depth_of(topic)
        assert len(frame["data"]["b"]) == depth
        truth = sim.ground_truth.book_at("linear", "BTCUSDT", depth, frame["ts"])
        assert truth is not None
        assert truth.u == 1
    for frame in after.values():
        assert frame["type"] == "delta"
        assert frame["data"]["u"] == 2


async def test_fault_crossed_delta(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    topic = "orderbook.50.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, before):
        book = ClientBook(before[0])
        assert sim.faults.book_crossed_delta("BTCUSDT", 50, "linear") == 1
        crossed = await next_book_frame(ws, topic)
        book.apply(crossed)
        bids, asks = book.levels()
        assert crossed["type"] == "delta"
        assert crossed["data"]["u"] == before[0]["data"]["u"] + 1
        assert Decimal(bids[0][0]) >= Decimal(asks[0][0])
        assert len(bids) == 50  # the worst bid left to make room
        healed = await next_book_frame(ws, topic)
        book.apply(healed)
        bids, asks = book.levels()
    assert Decimal(bids[0][0]) < Decimal(asks[0][0])
    assert len(bids) == len(asks) == 50
    assert_sane(bids, asks, 50)
    truth = sim.ground_truth.book_at("linear", "BTCUSDT", 50, crossed["ts"])
    assert truth is not None
    assert Decimal(truth.bids[0][0]) >= Decimal(truth.asks[0][0])  # truth = what was pushed
    assert sim.ground_truth.book_at("linear", "BTCUSDT", 50, healed["ts"]) == (
        book.u,
        bids,
        asks,
    )


async def test_fault_stale_depth1_resend(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    topic = "orderbook.1.BTCUSDT"
    async with subscribed(session, sim, [topic]) as (ws, _before):
        prev = await next_book_frame(ws, topic)
        assert sim.faults.book_stale_resend("BTCUSDT") == 1
        stale = await next_book_frame(ws, topic)
        while stale["data"] == prev["data"]:  # an ordinary re-send came first
            prev, stale = stale, await next_book_frame(ws, topic)
        nxt = await next_book_frame(ws, topic)
    assert stale["type"] == "snapshot"
    assert stale["data"]["u"] == prev["data"]["u"]  # same u ...
    assert (stale["data"]["b"], stale["data"]["a"]) != (prev["data"]["b"], prev["data"]["a"])
    assert nxt["data"]["u"] == stale["data"]["u"] + 1


async def test_book_faults_over_http(sim: BybitSimulator, session: aiohttp.ClientSession) -> None:
    base = f"{sim.rest_url}/sim/faults"

    async def post(name: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with session.post(f"{base}/{name}", json=body) as r:
            return r.status, await r.json()

    assert await post("book-skip-update", {"symbol": "BTCUSDT", "depth": 50}) == (
        200,
        {"ok": True, "result": 0},  # nothing subscribed yet
    )
    async with session.ws_connect(url(sim, "linear")) as ws:
        await subscribe(ws, ["orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT"])
        for name, body in (
            ("book-skip-update", {"symbol": "BTCUSDT", "depth": 50}),
            ("book_crossed_delta", {"symbol": "BTCUSDT", "depth": "50", "category": "linear"}),
            ("book-stale-resend", {"symbol": "BTCUSDT"}),
        ):
            assert await post(name, body) == (200, {"ok": True, "result": 1}), name
        assert await post("book-restart", {"symbol": "BTCUSDT", "category": None}) == (
            200,
            {"ok": True, "result": 2},
        )
        async with session.get(f"{sim.rest_url}/sim/stats") as r:
            armed = (await r.json())["faults"]["book"]
        assert {a["depth"] for a in armed} == {1, 50}
        assert await post("clear", {}) == (200, {"ok": True, "result": None})
        assert sim.faults.status()["book"] == []
        for name, body in (
            ("book-skip-update", {"symbol": "BTCUSDT", "depth": 30}),
            ("book-skip-update", {"symbol": "BTCUSDT"}),
            ("book-skip-update", {"symbol": "BTCUSDT", "depth": True}),
            ("book-crossed-delta", {"symbol": "BTCUSDT", "depth": 25, "category": "linear"}),
            ("book-restart", {"symbol": ""}),
            ("book-stale-resend", {"symbol": "BTCUSDT", "category": "futures"}),
        ):
            status, reply = await post(name, body)
            assert status == 400, (name, body)
            assert reply["ok"] is False


async def test_book_streams_reach_only_subscribers(
    sim: BybitSimulator, session: aiohttp.ClientSession
) -> None:
    """A socket subscribed to trades and tickers only never sees a book frame."""
    async with (
        session.ws_connect(url(sim, "linear")) as books,
        session.ws_connect(url(sim, "linear")) as other,
    ):
        await subscribe(books, ["orderbook.1.BTCUSDT"])
        await subscribe(other, ["publicTrade.BTCUSDT", "tickers.BTCUSDT"])
        for _ in range(5):
            await next_book_frame(books, "orderbook.1.BTCUSDT")
        _, seen = await recv_until(other, lambda f: f.get("topic") == "publicTrade.BTCUSDT")
        assert not [f for f in seen if str(f.get("topic", "")).startswith("orderbook")]
