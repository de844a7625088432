"""PublicWebSocketClient against the simulator over real sockets."""

from __future__ import annotations

from typing import Any

from bybit_adapter import Outage, PublicWebSocketClient, WebSocketSettings, public_topics
from bybit_sim import BybitSimulator
from testkit import wait_until

FAST = WebSocketSettings(
    ping_interval=0.3,
    pong_timeout=0.5,
    stall_timeout=1.5,
    backoff_initial=0.05,
    backoff_max=0.5,
)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.outages: list[Outage] = []
        self.invalid: list[tuple[str, str]] = []
        self.sub_errors: list[tuple[str, str]] = []

    def topics_seen(self) -> set[str]:
        return {m["topic"] for m in self.messages}

    def client(self, sim: BybitSimulator, topics: list[str], **kw: Any) -> PublicWebSocketClient:
        return PublicWebSocketClient(
            sim.public_ws_url,
            topics,
            category=kw.pop("category", "linear"),
            on_message=lambda m, ns: self.messages.append(m),
            on_outage=self.outages.append,
            on_invalid=lambda raw, reason, ns: self.invalid.append((raw, reason)),
            on_subscription_error=lambda t, m: self.sub_errors.append((t, m)),
            settings=kw.pop("settings", FAST),
            **kw,
        )


async def test_more_than_ten_topics_are_subscribed_in_chunks(sim: BybitSimulator) -> None:
    symbols = [f"SYM{i}USDT" for i in range(8)]
    topics = public_topics(symbols)
    rec = Recorder()
    client = rec.client(sim, topics)
    await client.start()
    try:
        await wait_until(lambda: client.confirmed_topics == set(topics))
        await wait_until(lambda: rec.topics_seen() == set(topics))
        requests = sim.stats.subscribe_requests
        assert [len(r) for r in requests] == [10, 6]
        assert client.rejected_topics == {}
    finally:
        await client.stop()


async def test_json_pings_are_sent_and_pongs_recognised(sim: BybitSimulator) -> None:
    rec = Recorder()
    client = rec.client(sim, public_topics(["BTCUSDT"]))
    await client.start()
    try:
        await wait_until(lambda: client.stats.pongs >= 3)
        assert sim.stats.pings_received >= 3
        assert client.stats.connects == 1
    finally:
        await client.stop()


async def test_abrupt_drop_reconnects_resubscribes_and_reports_the_outage(
    sim: BybitSimulator,
) -> None:
    rec = Recorder()
    topics = public_topics(["BTCUSDT", "ETHUSDT"])
    client = rec.client(sim, topics)
    await client.start()
    try:
        await wait_until(lambda: rec.topics_seen() == set(topics))
        before = len(rec.messages)
        sim.faults.drop_connections()
        await wait_until(lambda: len(rec.outages) == 1)
        outage = rec.outages[0]
        assert outage.cause == "disconnect"
        assert outage.category == "linear"
        assert outage.last_exchange_ts_ms is not None
        assert outage.first_exchange_ts_ms is not None
        assert outage.first_exchange_ts_ms >= outage.last_exchange_ts_ms
        assert client.stats.connects == 2
        assert len(sim.stats.subscribe_requests) == 2
        assert sorted(sim.stats.subscribe_requests[1]) == sorted(topics)
        await wait_until(lambda: len(rec.messages) > before + 5)
        assert client.confirmed_topics == set(topics)
    finally:
        await client.stop()


async def test_refused_reconnects_back_off_and_recover(sim: BybitSimulator) -> None:
    rec = Recorder()
    client = rec.client(sim, public_topics(["BTCUSDT"]))
    await client.start()
    try:
        await wait_until(lambda: client.stats.data_frames > 0)
        sim.faults.refuse_connections(1.5)
        sim.faults.drop_connections()
        await wait_until(lambda: len(rec.outages) == 1, timeout=15)
        assert client.stats.connect_failures >= 1
        assert rec.outages[0].reconnect_attempts >= 2
        assert rec.outages[0].duration_seconds >= 1.0
    finally:
        await client.stop()


async def test_a_stall_is_detected_and_the_connection_replaced(sim: BybitSimulator) -> None:
    rec = Recorder()
    client = rec.client(sim, public_topics(["BTCUSDT"]))
    await client.start()
    try:
        await wait_until(lambda: client.stats.data_frames > 0)
        sim.faults.stall(3.0)
        await wait_until(lambda: len(rec.outages) == 1, timeout=15)
        assert rec.outages[0].cause in {"stall", "pong_timeout"}
        assert client.stats.connects >= 2
        assert sum(client.stats.losses.values()) >= 1
    finally:
        await client.stop()


async def test_a_rejected_topic_is_reported_and_not_resubscribed(sim: BybitSimulator) -> None:
    rec = Recorder()
    topics = ["publicTrade.BTCUSDT", "publicTrade.NOPEUSDT", "tickers.BTCUSDT"]
    client = rec.client(sim, topics)
    await client.start()
    try:
        await wait_until(lambda: "publicTrade.NOPEUSDT" in client.rejected_topics)
        topic, message = rec.sub_errors[0]
        assert topic == "publicTrade.NOPEUSDT"
        assert "handler not found" in message
        await wait_until(lambda: {"publicTrade.BTCUSDT", "tickers.BTCUSDT"} <= rec.topics_seen())
        sim.faults.drop_connections()
        await wait_until(lambda: client.stats.connects == 2 and len(rec.outages) == 1)
        assert all("publicTrade.NOPEUSDT" not in r for r in sim.stats.subscribe_requests[-1:])
        assert len(rec.sub_errors) == 1
    finally:
        await client.stop()


async def test_malformed_frames_are_reported_and_the_stream_keeps_running(
    sim: BybitSimulator,
) -> None:
    rec = Recorder()
    client = rec.client(sim, public_topics(["BTCUSDT"]))
    await client.start()
    try:
        await wait_until(lambda: client.stats.data_frames > 0)
        sim.faults.malformed_frames(3)
        await wait_until(lambda: len(rec.invalid) >= 1)
        before = client.stats.data_frames
        await wait_until(lambda: client.stats.data_frames > before + 3)
        assert client.stats.connects == 1
        assert all(reason for _, reason in rec.invalid)
    finally:
        await client.stop()


async def test_spot_and_option_categories_connect_to_their_paths(sim: BybitSimulator) -> None:
    for category, symbol in (("spot", "BTCUSDT"), ("inverse", "BTCUSD")):
        rec = Recorder()
        client = rec.client(sim, [f"publicTrade.{symbol}"], category=category)
        await client.start()
        try:
            await wait_until(lambda rec=rec: len(rec.messages) > 0)  # type: ignore[misc]
            assert client.url.endswith(f"/v5/public/{category}")
        finally:
            await client.stop()


async def test_an_outage_still_open_at_stop_is_reported(sim: BybitSimulator) -> None:
    rec = Recorder()
    client = rec.client(sim, public_topics(["BTCUSDT"]))
    await client.start()
    await wait_until(lambda: client.stats.data_frames > 0)
    sim.faults.refuse_connections(30)
    sim.faults.drop_connections()
    await wait_until(lambda: client.stats.connect_failures >= 1)
    assert rec.outages == []
    await client.stop()
    (outage,) = rec.outages
    assert outage.cause == "disconnect"
    assert outage.last_exchange_ts_ms is not None
    assert outage.first_exchange_ts_ms is None
