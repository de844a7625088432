"""PrivateStream against the simulator: auth, subscribe after the auth reply, refused
credentials that never spin, re-auth after a drop, an auth that is never answered."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from bybit_adapter import AuthFailure, BybitAuthError, ConnectionState, PrivateStream
from bybit_records import Category, Execution, Order, OutageCause
from testkit import wait_until

from .conftest import FAST_PRIVATE, RecordingSink


def private(
    sim: Any, sink: RecordingSink, key: str = "sim-key", secret: str = "sim-secret", **kw: Any
) -> PrivateStream:
    return PrivateStream(sim.private_ws_url, key, secret, sink, settings=FAST_PRIVATE, **kw)


async def test_auth_then_subscribe_then_private_records_flow(
    busy_sim: Any, sink: RecordingSink
) -> None:
    async with private(busy_sim, sink) as stream:
        await wait_until(lambda: stream.authenticated)
        await wait_until(lambda: sink.of_type(Execution) and sink.of_type(Order), timeout=10)
        assert stream.state is ConnectionState.CONNECTED
        assert stream.auth_failures == 0
        assert stream.last_auth_error is None
    assert busy_sim.stats.auth_failures == 0
    # subscribed only once authenticated, every private topic in one request
    assert [sorted(r) for r in busy_sim.stats.subscribe_requests] == [
        ["execution", "order", "position", "wallet"]
    ]
    executions = sink.of_type(Execution)
    truth = {e["execId"] for e in busy_sim.ground_truth.executions()}
    assert {e.exec_id for e in executions} <= truth
    assert all(e.category is Category.LINEAR and e.exchange_ts_ms for e in executions)
    assert sink.rejections == []
    assert sink.outages == []  # the first connection is no outage


async def failures_spaced(stream: PrivateStream, count: int) -> list[float]:
    """The monotonic times at which the first ``count`` auth failures were seen."""
    seen: list[float] = []
    for n in range(1, count + 1):
        await wait_until(lambda n=n: stream.auth_failures >= n, timeout=10)  # type: ignore[misc]
        seen.append(time.monotonic())
    return seen


@pytest.mark.parametrize(
    ("key", "secret"),
    [("wrong-key", "sim-secret"), ("sim-key", "wrong-secret")],
    ids=["wrong-key", "wrong-secret"],
)
async def test_wrong_credentials_fail_clearly_and_back_off(
    sim: Any, sink: RecordingSink, key: str, secret: str
) -> None:
    async with private(sim, sink, key, secret) as stream:
        seen = await failures_spaced(stream, 3)
        error = stream.last_auth_error
        assert isinstance(error, BybitAuthError)
        assert error.kind == AuthFailure.INVALID_KEY
        assert secret not in str(error)
        assert not stream.authenticated
    # at least auth_retry_min between attempts: a wrong key never spins (the poll sees
    # a failure up to 20 ms late, so the gap may look that much shorter)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= FAST_PRIVATE.auth_retry_min - 0.03, gaps
    assert sim.stats.auth_failures == stream.auth_failures
    assert set(stream.stats.losses) == {"auth"}  # (the last may be cut short by the stop)
    assert sim.stats.subscribe_requests == []  # never subscribed without auth
    assert sink.received == []
    # stopped while still refused: the outage is reported, unrecovered
    (outage,) = sink.outages
    assert (outage.cause, outage.unrecovered) == (OutageCause.AUTH, True)


async def test_an_expired_signature_is_reported_as_expired(sim: Any, sink: RecordingSink) -> None:
    def behind() -> int:  # a clock 60 s behind
        return time.time_ns() // 1_000_000 - 60_000

    async with private(sim, sink, clock_ms=behind) as stream:
        await wait_until(lambda: stream.auth_failures >= 1)
        assert stream.last_auth_error is not None
        assert stream.last_auth_error.kind == AuthFailure.EXPIRED


async def test_reauthenticates_after_a_drop_and_reports_the_outage(
    sim: Any, sink: RecordingSink
) -> None:
    async with private(sim, sink) as stream:
        await wait_until(lambda: len(sim.stats.subscribe_requests) == 1)  # sent after auth
        attempts = sim.stats.auth_attempts
        sim.faults.drop_connections()
        await wait_until(lambda: len(sink.outages) == 1)
        assert sim.stats.auth_attempts == attempts + 1
        assert stream.authenticated
        assert stream.reconnects == 1
    (outage,) = sink.outages
    assert (outage.stream, outage.category) == ("private", None)
    assert outage.cause is OutageCause.DISCONNECT
    assert outage.reconnect_attempts == 1
    assert outage.symbols == {}
    assert not outage.unrecovered
    assert len(sim.stats.subscribe_requests) == 2  # subscribed again after the new auth


async def test_an_auth_without_reply_ends_the_connection(sim: Any, sink: RecordingSink) -> None:
    """The auth reply comes later than ``ack_timeout`` (the simulator delays ``auth``
    like a subscribe): the connection ends with ``ack_timeout``, the next one
    authenticates, and the lost time is one outage."""
    sim.faults.slow_ack(FAST_PRIVATE.ack_timeout + 1.0, count=1)
    started = time.monotonic()
    async with private(sim, sink) as stream:
        await wait_until(lambda: stream.stats.losses.get("ack_timeout") == 1, timeout=10)
        ended = time.monotonic()
        assert not stream.authenticated
        await wait_until(lambda: stream.authenticated and len(sink.outages) == 1, timeout=10)
    assert FAST_PRIVATE.ack_timeout <= ended - started <= FAST_PRIVATE.ack_timeout + 1.0
    assert stream.stats.losses == {"ack_timeout": 1}
    assert stream.auth_failures == 0  # not a refusal: no auth backoff
    assert sim.stats.ws_requests_delayed == 1
    (outage,) = sink.outages
    assert outage.cause is OutageCause.ACK_TIMEOUT
    assert outage.reconnect_attempts == 1
