"""PublicStream against the simulator over real sockets: subscribing, keeping alive,
reconnecting, refused topics, malformed frames. (The outage windows of each fault are
in test_stream_outages.py.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bybit_adapter import ConnectionState, PublicStream, public_topics
from bybit_records import Category, FrameType, OutageCause, Ticker, Trade
from testkit import wait_until

from .conftest import FAST, RecordingSink


@pytest.fixture
async def btc(sim: Any, sink: RecordingSink) -> AsyncIterator[PublicStream]:
    """A linear BTCUSDT stream, its first trades received."""
    async with PublicStream(
        sim.public_ws_url, Category.LINEAR, ["BTCUSDT"], sink, settings=FAST
    ) as stream:
        await wait_until(lambda: len(sink.trades()) > 0)
        yield stream


def topics_seen(sink: RecordingSink) -> set[str]:
    kinds = {Trade: "publicTrade", Ticker: "tickers"}
    return {f"{kinds[type(r)]}.{r.symbol}" for r in sink.received}  # type: ignore[attr-defined]


async def test_more_than_ten_topics_are_subscribed_in_chunks(sim: Any, sink: RecordingSink) -> None:
    symbols = [f"SYM{i}USDT" for i in range(8)]
    topics = public_topics(symbols)
    async with PublicStream(
        sim.public_ws_url, Category.LINEAR, symbols, sink, settings=FAST
    ) as stream:
        await wait_until(lambda: stream.confirmed_topics == set(topics))
        await wait_until(lambda: topics_seen(sink) == set(topics))
        assert [len(r) for r in sim.stats.subscribe_requests] == [10, 6]
        assert [t for r in sim.stats.subscribe_requests for t in r] == topics
        assert stream.refused_topics == {}
        assert stream.state is ConnectionState.CONNECTED
    assert stream.state is ConnectionState.STOPPED


async def test_json_pings_are_sent_and_pongs_recognised(
    sim: Any, sink: RecordingSink, btc: PublicStream
) -> None:
    # pong_timeout 0.5 s: an unrecognised pong would end the connection
    await wait_until(lambda: btc.stats.pongs >= 5)
    assert sim.stats.pings_received >= btc.stats.pongs
    assert btc.stats.pings_sent >= btc.stats.pongs
    assert btc.stats.losses == {}
    assert btc.reconnects == 0
    assert sink.outages == []


async def test_data_before_the_ack_is_kept(sim: Any, sink: RecordingSink) -> None:
    """The simulator, like Bybit, sends a ticker snapshot before the subscribe ack."""
    async with PublicStream(
        sim.public_ws_url, Category.LINEAR, ["BTCUSDT"], sink, settings=FAST
    ) as stream:
        await wait_until(lambda: len(sink.tickers()) >= 3)
        assert stream.confirmed_topics == {"publicTrade.BTCUSDT", "tickers.BTCUSDT"}
    first = sink.tickers()[0]
    assert first.frame_type is FrameType.SNAPSHOT  # the snapshot was not dropped...
    assert sink.rejections == []  # ...so no delta came before a snapshot


async def test_an_abrupt_drop_reconnects_resubscribes_and_reports_the_outage(
    sim: Any, sink: RecordingSink
) -> None:
    topics = public_topics(["BTCUSDT", "ETHUSDT"])
    async with PublicStream(
        sim.public_ws_url, Category.LINEAR, ["BTCUSDT", "ETHUSDT"], sink, settings=FAST
    ) as stream:
        await wait_until(lambda: topics_seen(sink) == set(topics))
        sim.faults.drop_connections()
        await wait_until(lambda: len(sink.outages) == 1)
        before = len(sink.received)
        await wait_until(lambda: len(sink.received) > before + 5)
        assert stream.confirmed_topics == set(topics)
    (outage,) = sink.outages
    assert outage.cause is OutageCause.DISCONNECT
    assert outage.category is Category.LINEAR
    assert outage.last_exchange_ts_ms is not None
    assert outage.first_exchange_ts_ms is not None
    assert outage.first_exchange_ts_ms >= outage.last_exchange_ts_ms
    assert outage.reconnect_attempts == 1
    assert stream.reconnects == 1
    assert stream.stats.losses == {"disconnect": 1}
    assert len(sim.stats.subscribe_requests) == 2
    assert sorted(sim.stats.subscribe_requests[1]) == sorted(topics)


async def test_refused_reconnects_back_off_and_recover(
    sim: Any, sink: RecordingSink, btc: PublicStream
) -> None:
    sim.faults.refuse_connections(1.5)
    sim.faults.drop_connections()
    await wait_until(lambda: len(sink.outages) == 1, timeout=15)
    assert sim.stats.ws_connections_refused >= 1
    (outage,) = sink.outages
    assert outage.reconnect_attempts >= 2
    assert outage.duration_seconds >= 1.4
    assert btc.reconnects == 1  # refused attempts are not connections


async def test_a_silent_link_is_a_pong_timeout(
    sim: Any, sink: RecordingSink, btc: PublicStream
) -> None:
    """Nothing at all for longer than the pong timeout (no data, no pongs): the ping
    goes unanswered and the connection is replaced before any silence bound."""
    sim.faults.stall(3.0)
    stalled = time.monotonic()
    await wait_until(lambda: len(sink.outages) == 1, timeout=15)
    assert btc.stats.losses == {"pong_timeout": 1}
    # found within one ping interval plus the pong timeout (and a tick)
    assert FAST.stall_timeout is not None
    (outage,) = sink.outages
    assert outage.cause is OutageCause.PONG_TIMEOUT
    assert outage.detection_seconds < FAST.ping_interval + FAST.pong_timeout + 0.3
    assert time.monotonic() - stalled < FAST.stall_timeout + 1.0
    assert btc.reconnects == 1


async def test_a_refused_topic_is_reported_once_and_not_resubscribed(
    sim: Any, sink: RecordingSink
) -> None:
    topics = ["publicTrade.BTCUSDT", "publicTrade.NOPEUSDT", "tickers.BTCUSDT"]
    async with PublicStream(
        sim.public_ws_url,
        Category.LINEAR,
        ["BTCUSDT", "NOPEUSDT"],
        sink,
        settings=FAST,
        topics=topics,
    ) as stream:
        await wait_until(lambda: "publicTrade.NOPEUSDT" in stream.refused_topics)
        refused_at = time.monotonic()
        (rejection,) = sink.rejections
        assert rejection.payload == "publicTrade.NOPEUSDT"
        assert rejection.reason.startswith("subscription refused: ")
        assert "handler not found" in rejection.reason
        assert rejection.stream == "public.linear"
        await wait_until(lambda: {"publicTrade.BTCUSDT", "tickers.BTCUSDT"} <= topics_seen(sink))
        assert FAST.silence_timeout is not None
        # NOPEUSDT will never speak: it is not a silent symbol either
        await wait_until(lambda: time.monotonic() - refused_at > FAST.silence_timeout + 0.3)
        assert sink.outages == []
        sim.faults.drop_connections()
        await wait_until(lambda: stream.reconnects == 1 and len(sink.outages) == 1)
    assert "publicTrade.NOPEUSDT" not in sim.stats.subscribe_requests[-1]
    assert len(sink.rejections) == 1
    assert set(sink.outages[0].symbols) == {"BTCUSDT", "NOPEUSDT"}


async def test_malformed_frames_are_rejected_and_the_stream_keeps_running(
    sim: Any, sink: RecordingSink, btc: PublicStream
) -> None:
    sim.faults.malformed_frames(4)
    await wait_until(lambda: len(sink.rejections) >= 4)
    before = btc.stats.data_frames
    await wait_until(lambda: btc.stats.data_frames > before + 3)
    assert btc.reconnects == 0
    assert btc.stats.rejected_frames == 4
    reasons = [r.reason for r in sink.rejections]
    assert reasons[0].startswith("not JSON")
    assert "unsupported topic" in reasons[3]
    assert all(r.payload and r.stream == "public.linear" for r in sink.rejections)
    assert sink.outages == []


@pytest.mark.parametrize(
    ("category", "symbol"),
    [(Category.SPOT, "BTCUSDT"), (Category.INVERSE, "BTCUSD")],
)
async def test_each_category_connects_to_its_path(
    sim: Any, sink: RecordingSink, category: Category, symbol: str
) -> None:
    async with PublicStream(sim.public_ws_url, category, [symbol], sink, settings=FAST) as stream:
        await wait_until(lambda: len(sink.trades()) > 0)
        assert stream.url.endswith(f"/v5/public/{category.value}")
        assert stream.name == f"public.{category.value}"
    assert {t.category for t in sink.trades()} == {category}


async def test_option_trades_keyed_by_base_coin_keep_the_symbol_alive(
    sim: Any, sink: RecordingSink
) -> None:
    """Option trades come on ``publicTrade.BTC`` and name their contracts: the base coin
    is what the stream subscribed and what must count as heard."""
    async with PublicStream(
        sim.public_ws_url,
        Category.OPTION,
        ["BTC"],
        sink,
        settings=FAST,
        topics=["publicTrade.BTC"],
    ) as stream:
        await wait_until(lambda: len(sink.trades()) > 0)
        first = time.monotonic()
        assert FAST.silence_timeout is not None
        count = len(sink.trades())
        await wait_until(
            lambda: (
                time.monotonic() - first > FAST.silence_timeout + 0.5 and len(sink.trades()) > count
            )
        )
        assert stream.confirmed_topics == {"publicTrade.BTC"}
    assert all(t.symbol.startswith("BTC-") for t in sink.trades())
    assert sink.outages == []


async def test_an_outage_still_open_at_stop_is_reported(
    sim: Any, sink: RecordingSink, btc: PublicStream
) -> None:
    sim.faults.refuse_connections(30)
    sim.faults.drop_connections()
    await wait_until(lambda: sim.stats.ws_connections_refused >= 1)
    assert sink.outages == []
    assert btc.state is ConnectionState.RECONNECTING
    await btc.stop()
    (outage,) = sink.outages
    assert outage.cause is OutageCause.DISCONNECT
    assert outage.unrecovered
    assert outage.last_exchange_ts_ms is not None
    assert outage.first_exchange_ts_ms is None
    assert outage.reconnect_attempts >= 1
    await btc.stop()  # idempotent: reported once
    assert len(sink.outages) == 1
