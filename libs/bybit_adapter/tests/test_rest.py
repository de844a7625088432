"""BybitRestClient against the simulator: signing, retries, pagination."""

from __future__ import annotations

import time

import pytest

from bybit_adapter import BybitApiError, BybitRestClient, BybitRestError, RestSettings
from bybit_sim import BybitSimulator
from testkit import wait_until

FAST = RestSettings(timeout=1.0, max_retries=3, retry_initial=0.05, retry_max=0.2, ban_pause=5)


def client(
    sim: BybitSimulator, key: str | None = "sim-key", secret: str | None = "sim-secret"
) -> BybitRestClient:
    return BybitRestClient(sim.rest_url, key, secret, settings=FAST)


async def test_server_time_and_recent_trades_newest_first(sim: BybitSimulator) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 30, timeout=10)
    async with client(sim, None, None) as rest:
        assert abs(await rest.server_time_ms() - time.time_ns() // 1_000_000) < 5000
        trades = await rest.recent_trades("linear", "BTCUSDT", 1000)
    truth = sim.ground_truth.trades("linear", "BTCUSDT")
    assert len(trades) >= 30
    assert [t.trade_time_ms for t in trades] == sorted(
        (t.trade_time_ms for t in trades), reverse=True
    )
    by_id = {t.trade_id: t for t in truth}
    for t in trades:
        expected = by_id[t.trade_id]
        assert (t.price, t.size, t.side, t.trade_time_ms) == (
            expected.price,
            expected.size,
            expected.side,
            expected.time_ms,
        )
        assert t.source == "rest"


async def test_signed_execution_list_pages_every_execution_once(sim: BybitSimulator) -> None:
    await wait_until(lambda: len(sim.ground_truth.executions()) >= 3, timeout=20)
    known_before = {e["execId"] for e in sim.ground_truth.executions()}
    async with client(sim) as rest:
        now = time.time_ns() // 1_000_000
        executions = await rest.executions("linear", now - 3_600_000, now + 1000)
    got = [e.exec_id for e in executions]
    assert len(got) == len(set(got))
    assert known_before <= set(got)
    assert set(got) <= {e["execId"] for e in sim.ground_truth.executions()}
    assert all(e.source == "rest" and e.category == "linear" for e in executions)


async def test_execution_list_paginates_with_cursor(sim: BybitSimulator) -> None:
    await wait_until(lambda: len(sim.ground_truth.executions()) >= 3, timeout=20)
    async with client(sim) as rest:
        now = time.time_ns() // 1_000_000
        before = rest.requests_sent
        # limit 1 forces one page per execution
        items = await rest._cursor_pages(
            "/v5/execution/list",
            {"category": "linear", "startTime": now - 3_600_000, "endTime": now + 1000},
            limit=1,
        )
        pages = rest.requests_sent - before
    assert pages >= len(items) >= 3
    assert len({i["execId"] for i in items}) == len(items)


async def test_wrong_secret_is_a_typed_error(sim: BybitSimulator) -> None:
    async with client(sim, "sim-key", "bad-secret") as rest:
        with pytest.raises(BybitApiError) as info:
            await rest.wallet_balance()
    assert info.value.ret_code == 10004


async def test_unknown_key_is_a_typed_error(sim: BybitSimulator) -> None:
    async with client(sim, "nobody", "x") as rest:
        with pytest.raises(BybitApiError) as info:
            await rest.positions("linear")
    assert info.value.ret_code == 10003


@pytest.mark.parametrize("kind", ["http500", "http502", "http429", "retcode10006", "retcode10016"])
async def test_retryable_failures_are_retried(sim: BybitSimulator, kind: str) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=10)
    sim.faults.rest_errors(kind, 2)
    async with client(sim) as rest:
        trades = await rest.recent_trades("linear", "BTCUSDT", 10)
        assert rest.retries == 2
    assert trades


async def test_timeouts_are_finite_and_retried(sim: BybitSimulator) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=10)
    sim.faults.rest_errors("timeout", 1)
    async with client(sim) as rest:
        started = time.monotonic()
        trades = await rest.recent_trades("linear", "BTCUSDT", 10)
        assert rest.retries == 1
        assert time.monotonic() - started < 5
    assert trades


async def test_retry_budget_runs_out_with_a_clear_error(sim: BybitSimulator) -> None:
    sim.faults.rest_errors("http500", 10)
    async with client(sim) as rest:
        with pytest.raises(BybitRestError, match="HTTP 500"):
            await rest.recent_trades("linear", "BTCUSDT", 10)
        assert rest.retries == FAST.max_retries


async def test_http_403_pauses_all_calls(sim: BybitSimulator) -> None:
    sim.faults.rest_errors("http403", 1)
    async with client(sim) as rest:
        with pytest.raises(BybitRestError, match="403"):
            await rest.server_time_ms()
        sent = rest.requests_sent
        with pytest.raises(BybitRestError, match="paused"):
            await rest.server_time_ms()
        assert rest.requests_sent == sent
