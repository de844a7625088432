"""Outages of a public stream against the simulator: the adapter's "done when".

Each test injects one fault, waits (on conditions, with timeouts) for the stream to
report and heal it, and then checks the one outage reported against what happened:
its cause, whether the socket was replaced, and per symbol the window in which
trades may be missing, compared with the simulator's ground truth (every trade it
printed, received or not).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bybit_adapter import Outage, PublicStream
from bybit_records import Category, OutageCause, Trade
from testkit import wait_until

from .conftest import FAST, RecordingSink, TimedSession

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
async def stream(sim: Any, sink: RecordingSink) -> AsyncIterator[PublicStream]:
    """A linear stream of SYMBOLS, trading on both."""
    public = PublicStream(sim.public_ws_url, Category.LINEAR, SYMBOLS, sink, settings=FAST)
    async with public:
        await flowing(sink)
        yield public


async def flowing(sink: RecordingSink, after_ms: int = 0, symbols: Sequence[str] = SYMBOLS) -> None:
    """Until every symbol has a trade received after ``after_ms``."""

    def received() -> bool:
        return all(any(t.received_ts_ms > after_ms for t in sink.trades(s)) for s in symbols)

    await wait_until(received, timeout=10)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def split_at_gap(trades: list[Trade]) -> tuple[list[Trade], list[Trade]]:
    """The trades received before and after the longest gap in reception."""
    ordered = sorted(trades, key=lambda t: t.received_ts_ms)
    gaps = [b.received_ts_ms - a.received_ts_ms for a, b in itertools.pairwise(ordered)]
    cut = gaps.index(max(gaps)) + 1
    return ordered[:cut], ordered[cut:]


def check_windows(
    sim: Any, sink: RecordingSink, outage: Outage, symbols: Sequence[str] = SYMBOLS
) -> None:
    """The window of each of ``symbols`` starts at its last trade received before the
    outage, and holds every trade the simulator printed that the stream did not receive."""
    for symbol in symbols:
        received = sink.trades(symbol)
        before, after = split_at_gap(received)
        assert after, f"no {symbol} trade after the outage"
        assert after[0].received_ts_ms - before[-1].received_ts_ms >= 900, "no gap in reception"
        window = outage.symbols[symbol]
        assert window.start_ms == max(t.trade_time_ms for t in before)
        if window.first_after_ms is not None:
            assert window.first_after_ms == min(t.trade_time_ms for t in after)
        end_ms = window.first_after_ms if window.first_after_ms is not None else outage.end_ms
        ids = {t.trade_id for t in received}
        first = min(t.trade_time_ms for t in received)
        last = max(t.trade_time_ms for t in received)
        truth = sim.ground_truth.trades("linear", symbol)
        lost = [t for t in truth if t.trade_id not in ids and first <= t.time_ms <= last]
        assert lost, f"the simulator printed no {symbol} trade during the outage"
        outside = [t for t in lost if not window.start_ms <= t.time_ms <= end_ms]
        assert outside == [], (window, end_ms)


def one_outage(sink: RecordingSink) -> Outage:
    assert len(sink.outages) == 1, [(o.cause, o.symbols) for o in sink.outages]
    return sink.outages[0]


async def healed(sink: RecordingSink, after_ms: int, timeout: float = 10) -> Outage:
    """Until an outage is reported and every symbol has a trade received after
    ``after_ms``; then the one outage reported."""
    await wait_until(lambda: len(sink.outages) >= 1, timeout=timeout)
    await flowing(sink, after_ms)
    return one_outage(sink)


async def test_a_pause_is_one_outage_and_data_resumes_on_the_same_socket(
    sim: Any, sink: RecordingSink, stream: PublicStream
) -> None:
    """Data withheld (pings answered) for longer than the silence threshold, shorter
    than the stall timeout: a pause, no reconnect."""
    assert FAST.silence_timeout is not None
    assert FAST.stall_timeout is not None
    seconds = (FAST.silence_timeout + FAST.stall_timeout) / 2
    assert sim.faults.pause(seconds, pongs=True) == 1
    paused_ms = now_ms()
    outage = await healed(sink, paused_ms + 900)  # (any second outage would be in by then)
    assert outage.cause is OutageCause.PAUSE
    assert (outage.stream, outage.category) == ("public.linear", Category.LINEAR)
    assert outage.reconnect_attempts == 0
    assert not outage.unrecovered
    assert stream.reconnects == 0
    assert stream.stats.losses == {}
    assert sim.stats.ws_connections_accepted == 1
    assert set(outage.symbols) == set(SYMBOLS)
    assert outage.detection_seconds >= FAST.silence_timeout * 0.9
    assert outage.duration_seconds >= seconds * 0.9
    check_windows(sim, sink, outage)


async def test_a_pause_longer_than_the_stall_timeout_replaces_the_connection(
    sim: Any, sink: RecordingSink, stream: PublicStream
) -> None:
    assert FAST.stall_timeout is not None
    sim.faults.pause(FAST.stall_timeout + 1.5, pongs=True)
    paused_ms = now_ms()
    outage = await healed(sink, paused_ms + 900)
    assert outage.cause is OutageCause.STALL
    assert stream.stats.losses == {"stall": 1}
    assert stream.reconnects == 1
    assert outage.reconnect_attempts == 1
    assert sim.stats.ws_connections_accepted == 2
    assert outage.duration_seconds >= FAST.stall_timeout * 0.9
    check_windows(sim, sink, outage)


async def test_a_black_holed_upgrade_is_cut_at_the_open_timeout(
    sim: Any, sink: RecordingSink, timed_session: TimedSession
) -> None:
    """Upgrades accepted and never answered: every handshake attempt gives up after
    ``open_timeout``; once the hole ends the stream is back, and one outage covers the
    whole time (aiohttp retries an upgrade once after a reset, so the hole lasts
    longer than ``open_timeout``)."""
    hole = 2.5
    public = PublicStream(
        sim.public_ws_url,
        Category.LINEAR,
        SYMBOLS,
        sink,
        settings=FAST,
        session=timed_session,  # type: ignore[arg-type]
    )
    async with public:
        await flowing(sink)
        sim.faults.black_hole(hole)
        sim.faults.drop_connections()
        dropped_ns = time.time_ns()
        await wait_until(lambda: len(sink.outages) >= 1, timeout=15)
        await flowing(sink, dropped_ns // 1_000_000 + 100)
    outage = one_outage(sink)
    assert outage.cause is OutageCause.DISCONNECT
    assert outage.reconnect_attempts >= 2
    # frames already in the socket's buffer are still read after the server's abort
    assert outage.start_ns <= dropped_ns + 100_000_000
    assert outage.recovered_ns >= dropped_ns + hole * 1e9
    assert public.reconnects == 1
    first, *retries = timed_session.handshakes
    assert first.outcome == "open"
    cut = [h for h in retries if h.outcome == "cancelled"]
    assert len(cut) >= 2, retries
    for handshake in cut:
        assert FAST.open_timeout - 0.05 <= handshake.seconds <= FAST.open_timeout + 0.5
    assert retries[-1].outcome == "open"
    assert sim.stats.ws_upgrades_black_holed >= len(cut)
    check_windows(sim, sink, outage)


async def test_a_subscribe_without_an_ack_ends_the_connection(
    sim: Any, sink: RecordingSink, stream: PublicStream
) -> None:
    """After a drop, the next connection's subscribe is answered later than the ack
    timeout: that connection ends (``ack_timeout``), the one after subscribes, and the
    whole is one outage."""
    sim.faults.slow_ack(FAST.ack_timeout + 1.0, count=1)
    sim.faults.drop_connections()
    dropped_ms = now_ms()
    outage = await healed(sink, dropped_ms + 100, timeout=15)
    assert stream.stats.losses == {"disconnect": 1, "ack_timeout": 1}
    assert outage.cause is OutageCause.DISCONNECT  # how the outage began
    assert outage.reconnect_attempts == 2
    assert stream.reconnects == 2
    assert sim.stats.ws_requests_delayed == 1
    topics = {f"{kind}.{s}" for s in SYMBOLS for kind in ("publicTrade", "tickers")}
    # the delayed request is recorded only when processed: never, its socket was closed
    assert [set(r) for r in sim.stats.subscribe_requests] == [topics] * 2
    await wait_until(lambda: stream.confirmed_topics == topics)
    check_windows(sim, sink, outage)


async def test_one_silent_symbol_is_a_silence_of_that_symbol_only(
    sim: Any, sink: RecordingSink, stream: PublicStream
) -> None:
    assert FAST.silence_timeout is not None
    assert sim.faults.mute("ETHUSDT", FAST.silence_timeout + 1.0, category="linear") == 1
    muted_ms = now_ms()
    outage = await healed(sink, muted_ms + 900)
    assert outage.cause is OutageCause.SILENCE
    assert set(outage.symbols) == {"ETHUSDT"}
    assert outage.reconnect_attempts == 0
    assert stream.reconnects == 0
    assert stream.stats.losses == {}
    check_windows(sim, sink, outage, ["ETHUSDT"])
    # BTCUSDT kept flowing all along
    btc = sorted(t.received_ts_ms for t in sink.trades("BTCUSDT"))
    assert max(b - a for a, b in itertools.pairwise(btc)) < FAST.silence_timeout * 1000
    muted = [t for t in btc if muted_ms < t < muted_ms + 1500]
    assert len(muted) > 10


async def test_back_pressure_is_not_silence(
    sim: Any, sink: RecordingSink, stream: PublicStream
) -> None:
    """A sink without room for longer than the stall timeout: the socket is not read
    meanwhile, and that is neither an outage nor a reason to reconnect; nothing is lost."""
    assert FAST.stall_timeout is not None
    sink.block()
    await wait_until(lambda: sink.waits >= 1)  # the reader is waiting for room
    held_from = time.monotonic()
    await wait_until(lambda: time.monotonic() - held_from > FAST.stall_timeout + 0.5)
    assert sink.waits == 1  # still held: the stream did not get around it
    sink.unblock()
    released_ms = now_ms()
    await flowing(sink, released_ms)
    # a trade printed after the release arrived: everything before it has been read
    printed_ms = now_ms()
    await wait_until(
        lambda: any(t.trade_time_ms > printed_ms for t in sink.trades("BTCUSDT")), timeout=10
    )
    assert sink.outages == []
    assert stream.stats.losses == {}
    assert stream.reconnects == 0
    assert sim.stats.ws_connections_accepted == 1
    for symbol in SYMBOLS:
        received = sink.trades(symbol)
        ids = {t.trade_id for t in received}
        first, last = min(t.trade_time_ms for t in received), max(t.trade_time_ms for t in received)
        truth = sim.ground_truth.trades("linear", symbol)
        assert [t for t in truth if first <= t.time_ms <= last and t.trade_id not in ids] == []
