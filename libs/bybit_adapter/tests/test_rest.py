"""BybitRestClient against the simulator: records, signing, retries, paging, redaction."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bybit_adapter import (
    BybitApiError,
    BybitRestClient,
    BybitRestError,
    BybitTransportError,
    RestSettings,
)
from bybit_records import Category, DataSource, Execution, Order, Position, Wallet

from .conftest import FAST_REST


def client(
    sim: Any,
    key: str | None = "sim-key",
    secret: str | None = "sim-secret",
    settings: RestSettings = FAST_REST,
) -> BybitRestClient:
    return BybitRestClient(sim.rest_url, key, secret, settings=settings)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_server_time_and_recent_trades_newest_first(sim: Any) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 30, timeout=10)
    async with client(sim, None, None) as rest:
        assert abs(await rest.server_time_ms() - now_ms()) < 5000
        before_ms = now_ms()
        trades = await rest.recent_trades(Category.LINEAR, "BTCUSDT", 1000)
    truth = sim.ground_truth.trades("linear", "BTCUSDT")
    assert len(trades) >= 30
    times = [t.trade_time_ms for t in trades]
    assert times == sorted(times, reverse=True)
    by_id = {t.trade_id: t for t in truth}
    for t in trades:
        expected = by_id[t.trade_id]
        assert (t.price, t.size, t.side, t.trade_time_ms, t.is_block_trade, t.seq) == (
            expected.price,
            expected.size,
            expected.side,
            expected.time_ms,
            expected.is_block_trade,
            expected.seq,
        )
        assert (t.category, t.symbol, t.source) == (Category.LINEAR, "BTCUSDT", DataSource.REST)
        assert t.tick_direction is None  # REST rows do not carry it
        assert t.exchange_ts_ms >= t.trade_time_ms  # the reply's time
        assert t.received_ts_ms >= before_ms


async def test_recent_trades_honour_the_window_cap(sim: Any) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 20, timeout=10)
    sim.faults.recent_trade_limit(5)
    async with client(sim, None, None) as rest:
        trades = await rest.recent_trades(Category.LINEAR, "BTCUSDT", 1000)
    newest = sim.ground_truth.trades("linear", "BTCUSDT")[-5:]
    assert {t.trade_id for t in trades} <= {
        t.trade_id for t in sim.ground_truth.trades("linear", "BTCUSDT")
    }
    assert len(trades) == 5
    assert trades[-1].trade_time_ms <= newest[-1].time_ms


async def test_signed_execution_list_pages_every_execution_once(busy_sim: Any) -> None:
    await busy_sim.wait_for_executions(5, timeout=10)
    known_before = {e["execId"] for e in busy_sim.ground_truth.executions()}
    async with client(busy_sim) as rest:
        executions = await rest.executions(Category.LINEAR, now_ms() - 3_600_000, now_ms() + 1000)
    got = [e.exec_id for e in executions]
    assert all(isinstance(e, Execution) for e in executions)
    assert len(got) == len(set(got))
    assert known_before <= set(got)
    assert set(got) <= {e["execId"] for e in busy_sim.ground_truth.executions()}
    assert all(e.source is DataSource.REST and e.category is Category.LINEAR for e in executions)
    assert all(e.exchange_ts_ms is None for e in executions)  # REST rows carry no frame time


async def test_execution_list_paginates_with_cursor(busy_sim: Any) -> None:
    """A cursor arrives URL-encoded and is sent and signed verbatim (the simulator
    checks the signature of the raw query)."""
    await busy_sim.wait_for_executions(3, timeout=10)
    async with client(busy_sim) as rest:
        before = rest.requests_sent
        # limit 1 forces one page per execution
        items = await rest._cursor_pages(
            "/v5/execution/list",
            {"category": "linear", "startTime": now_ms() - 3_600_000, "endTime": now_ms() + 1000},
            limit=1,
        )
        pages = rest.requests_sent - before
    assert pages >= len(items) >= 3
    assert len({i["execId"] for i in items}) == len(items)
    assert rest.retries == 0


async def test_account_state_reads_become_records(busy_sim: Any) -> None:
    await busy_sim.wait_for_executions(3, timeout=10)
    async with client(busy_sim) as rest:
        history = await rest.order_history(Category.LINEAR, now_ms() - 3_600_000, now_ms() + 1000)
        open_orders = await rest.open_orders(Category.LINEAR)
        positions = await rest.positions(Category.LINEAR)
        wallets = await rest.wallet_balance()
    assert history
    assert all(isinstance(o, Order) for o in history)
    assert all(o.source is DataSource.REST for o in history + open_orders)
    assert all(isinstance(p, Position) and p.category is Category.LINEAR for p in positions)
    (wallet,) = wallets
    assert isinstance(wallet, Wallet)
    assert wallet.account_type == "UNIFIED"
    assert wallet.coins


async def test_wrong_secret_is_a_typed_error_that_never_shows_the_key(
    sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Bybit answers a bad signature with ``error sign! origin_string[<ts><API KEY>...]``:
    the key must reach neither the exception nor a log line."""
    caplog.set_level(logging.DEBUG, logger="bybit_adapter")
    async with client(sim, "sim-key", "bad-secret") as rest:
        with pytest.raises(BybitApiError) as info:
            await rest.wallet_balance()
    error = info.value
    assert error.ret_code == 10004
    assert "error sign!" in error.ret_msg
    assert "origin_string[<redacted>]" in str(error)
    assert "sim-key" not in str(error)
    assert "sim-key" not in error.ret_msg
    assert all("sim-key" not in r.getMessage() for r in caplog.records)


async def test_unknown_key_is_a_typed_error(sim: Any) -> None:
    async with client(sim, "nobody", "x") as rest:
        with pytest.raises(BybitApiError) as info:
            await rest.positions(Category.LINEAR)
    assert info.value.ret_code == 10003


async def test_signed_calls_need_credentials(sim: Any) -> None:
    async with client(sim, None, None) as rest:
        with pytest.raises(BybitRestError, match="needs API credentials"):
            await rest.wallet_balance()
        assert rest.requests_sent == 0


async def test_a_clock_behind_is_retried_with_a_wider_window(
    make_sim: Callable[..., Awaitable[Any]],
) -> None:
    ahead = await make_sim(clock_offset_ms=6_000)  # retCode 10002 at a 5 s window
    async with client(ahead) as rest:
        wallets = await rest.wallet_balance()
        assert rest.retries == 1
    assert wallets


@pytest.mark.parametrize("kind", ["http500", "http502", "http429", "retcode10016"])
async def test_retryable_failures_are_retried(sim: Any, kind: str) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=10)
    sim.faults.rest_errors(kind, 2)
    async with client(sim) as rest:
        trades = await rest.recent_trades(Category.LINEAR, "BTCUSDT", 10)
        assert rest.retries == 2
    assert trades


async def test_rate_limit_waits_for_the_reset_within_its_cap(sim: Any) -> None:
    """10006 carries ``X-Bapi-Limit-Reset-Timestamp`` (the simulator: one second on):
    the retry waits until then, but never longer than ``max_rate_limit_wait``."""
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=10)
    sim.faults.rest_errors("retcode10006", 1)
    async with client(sim) as rest:
        started = time.monotonic()
        assert await rest.recent_trades(Category.LINEAR, "BTCUSDT", 10)
        waited = time.monotonic() - started
        assert rest.retries == 1
    assert 0.7 <= waited < 3.0
    capped = dataclasses.replace(FAST_REST, max_rate_limit_wait=0.1)
    sim.faults.rest_errors("retcode10006", 1)
    async with client(sim, settings=capped) as rest:
        started = time.monotonic()
        assert await rest.recent_trades(Category.LINEAR, "BTCUSDT", 10)
        assert time.monotonic() - started < 0.6
        assert rest.retries == 1


async def test_timeouts_are_finite_and_retried(sim: Any) -> None:
    sim.start_market("linear", "BTCUSDT")
    await sim.wait_for_trades("linear", "BTCUSDT", 1, timeout=10)
    sim.faults.rest_errors("timeout", 1)  # the simulator holds the reply 30 s
    async with client(sim) as rest:
        started = time.monotonic()
        trades = await rest.recent_trades(Category.LINEAR, "BTCUSDT", 10)
        assert rest.retries == 1
        assert time.monotonic() - started < FAST_REST.timeout + 2
    assert trades


async def test_retry_budget_runs_out_with_a_clear_error(sim: Any) -> None:
    sim.faults.rest_errors("http500", 10)
    async with client(sim) as rest:
        with pytest.raises(BybitRestError, match="HTTP 500"):
            await rest.recent_trades(Category.LINEAR, "BTCUSDT", 10)
        assert rest.retries == FAST_REST.max_retries
        assert rest.requests_sent == FAST_REST.max_retries + 1


async def test_http_403_pauses_all_calls(sim: Any) -> None:
    sim.faults.rest_errors("http403", 1)
    async with client(sim) as rest:
        with pytest.raises(BybitRestError, match="403"):
            await rest.server_time_ms()
        assert rest.retries == 0  # a ban is not retried
        sent = rest.requests_sent
        with pytest.raises(BybitRestError, match="paused"):
            await rest.server_time_ms()
        assert rest.requests_sent == sent


async def test_a_closed_port_is_a_transport_error(sim: Any) -> None:
    settings = dataclasses.replace(FAST_REST, max_retries=1)
    async with BybitRestClient("http://127.0.0.1:9", settings=settings) as rest:
        with pytest.raises(BybitTransportError):
            await rest.server_time_ms()
        assert rest.retries == 1


# ---- what the simulator does not do: a server that loops its cursor -------------------


@pytest.fixture
async def looping_server() -> AsyncIterator[str]:
    """A REST server whose execution list always answers with the same next cursor."""

    async def executions(request: web.Request) -> web.Response:
        page = {"execId": f"e-{request.query.get('cursor', 'first')}"}
        result = {"list": [page], "nextPageCursor": "same%3A1"}
        return web.json_response({"retCode": 0, "retMsg": "OK", "result": result, "time": 1})

    app = web.Application()
    app.router.add_get("/v5/execution/list", executions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_repeated_cursor_stops_the_paging(looping_server: str) -> None:
    async with BybitRestClient(looping_server, "k", "s", settings=FAST_REST) as rest:
        with pytest.raises(BybitRestError, match="cursor 'same%3A1' repeated"):
            await rest.executions(Category.LINEAR, 0, 1000)
        assert rest.requests_sent == 2  # the second reply repeats the cursor of the first
