"""Repositories: run lifecycle, reference upsert, gaps and the per-table reads."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from grid_db import (
    DatabaseFactory,
    ExecutionRepository,
    FillStatus,
    GapRepository,
    InvalidArgumentError,
    OrderRepository,
    PositionRepository,
    ReferenceDataRepository,
    RejectedFrameRepository,
    RunNotFoundError,
    RunRepository,
    RunStatus,
    TickerRepository,
    TradeRepository,
    WalletRepository,
)

USER_ID = "11111111-1111-4111-8111-111111111111"
ACCOUNT_ID = "22222222-2222-4222-8222-222222222222"
STRATEGY_ID = "33333333-3333-4333-8333-333333333333"


def _create_run(runs: RunRepository, started_at_ms: int, **kwargs: Any) -> str:
    return runs.create_run(
        config_json='{"symbols": ["BTCUSDT"]}',
        host="host-a",
        pid=100,
        software_version="0.1.0",
        started_at_ms=started_at_ms,
        **kwargs,
    ).id


# --- runs ---------------------------------------------------------------------------


def test_create_run_stores_a_running_run(factory: DatabaseFactory, account_id: str) -> None:
    runs = RunRepository(factory.engine)
    run = runs.create_run(
        config_json="{}",
        host="host-a",
        pid=123,
        software_version="1.2.3",
        started_at_ms=1_000,
        git_commit="abc123",
        output_dir="/tmp/out",
        account_id=account_id,
    )
    stored = runs.get(run.id)
    assert stored is not None
    assert len(stored.id) == 36
    assert (stored.status, stored.started_at_ms, stored.ended_at_ms) == ("running", 1_000, None)
    assert (stored.host, stored.pid, stored.software_version) == ("host-a", 123, "1.2.3")
    assert (stored.git_commit, stored.output_dir, stored.account_id) == (
        "abc123",
        "/tmp/out",
        account_id,
    )


def test_finish_run_sets_status_end_and_error(factory: DatabaseFactory) -> None:
    runs = RunRepository(factory.engine)
    completed = _create_run(runs, 1)
    failed = _create_run(runs, 2)
    runs.finish_run(completed, RunStatus.COMPLETED, ended_at_ms=50)
    runs.finish_run(failed, "error", "websocket auth rejected", ended_at_ms=60)
    first, second = runs.get(completed), runs.get(failed)
    assert first is not None
    assert second is not None
    assert (first.status, first.ended_at_ms, first.error) == ("completed", 50, None)
    assert (second.status, second.ended_at_ms, second.error) == (
        "error",
        60,
        "websocket auth rejected",
    )


def test_finish_run_rejects_running_and_unknown_status(factory: DatabaseFactory) -> None:
    runs = RunRepository(factory.engine)
    run_id = _create_run(runs, 1)
    with pytest.raises(InvalidArgumentError):
        runs.finish_run(run_id, "running")
    with pytest.raises(InvalidArgumentError):
        runs.finish_run(run_id, "finished-ish")


def test_finish_run_of_unknown_id_raises(factory: DatabaseFactory) -> None:
    with pytest.raises(RunNotFoundError, match="nope"):
        RunRepository(factory.engine).finish_run("nope", RunStatus.COMPLETED)


def test_list_runs_newest_first_with_filters(factory: DatabaseFactory) -> None:
    runs = RunRepository(factory.engine)
    old, middle, new = (_create_run(runs, ts) for ts in (100, 200, 300))
    runs.finish_run(middle, RunStatus.COMPLETED)
    assert [run.id for run in runs.list()] == [new, middle, old]
    assert [run.id for run in runs.list(status=RunStatus.RUNNING)] == [new, old]
    assert [run.id for run in runs.list(started_since_ms=200)] == [new, middle]
    assert [run.id for run in runs.list(limit=1)] == [new]


def test_mark_stale_running_as_aborted(factory: DatabaseFactory) -> None:
    runs = RunRepository(factory.engine)
    crashed_a = _create_run(runs, 1)
    crashed_b = _create_run(runs, 2)
    finished = _create_run(runs, 3)
    runs.finish_run(finished, RunStatus.COMPLETED, ended_at_ms=4)
    current = _create_run(runs, 5)

    assert runs.mark_stale_running_as_aborted(exclude_id=current, ended_at_ms=6) == 2

    for run_id in (crashed_a, crashed_b):
        run = runs.get(run_id)
        assert run is not None
        assert (run.status, run.ended_at_ms) == ("aborted", 6)
        assert run.error is not None
        assert "aborted" in run.error
    untouched_finished, untouched_current = runs.get(finished), runs.get(current)
    assert untouched_finished is not None
    assert untouched_current is not None
    assert (untouched_finished.status, untouched_finished.ended_at_ms) == ("completed", 4)
    assert untouched_current.status == "running"
    assert runs.mark_stale_running_as_aborted(exclude_id=current) == 0


def test_mark_stale_keeps_an_error_already_recorded(factory: DatabaseFactory) -> None:
    runs = RunRepository(factory.engine)
    run_id = _create_run(runs, 1)
    with factory.engine.begin() as connection:
        connection.execute(
            text("UPDATE runs SET error = 'disk full' WHERE id = :id"), {"id": run_id}
        )
    assert runs.mark_stale_running_as_aborted() == 1
    run = runs.get(run_id)
    assert run is not None
    assert (run.status, run.error) == ("aborted", "disk full")


def test_run_status_check_constraint(factory: DatabaseFactory) -> None:
    with pytest.raises(IntegrityError), factory.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (id, status, started_at_ms, config_json, host, pid, "
                "software_version) VALUES ('x', 'paused', 1, '{}', 'h', 1, 'v')"
            )
        )


# --- reference data ---------------------------------------------------------------------


def _table_rows(factory: DatabaseFactory, table: str) -> list[Any]:
    with factory.engine.connect() as connection:
        return list(connection.execute(text(f"SELECT * FROM {table} ORDER BY id")).all())


def test_reference_upsert_is_idempotent(factory: DatabaseFactory) -> None:
    reference = ReferenceDataRepository(factory.engine)
    for _ in range(3):
        reference.upsert_reference_rows(
            USER_ID,
            ACCOUNT_ID,
            STRATEGY_ID,
            testnet=True,
            user_name="alice",
            account_label="main",
            strategy_name="grid",
            created_at_ms=1_000,
        )
    assert len(_table_rows(factory, "users")) == 1
    assert len(_table_rows(factory, "bybit_accounts")) == 1
    assert len(_table_rows(factory, "strategies")) == 1
    account = reference.get_account(ACCOUNT_ID)
    assert account is not None
    assert (account.user_id, account.label, account.testnet) == (USER_ID, "main", True)


def test_reference_upsert_updates_names_but_keeps_creation_time(
    factory: DatabaseFactory,
) -> None:
    reference = ReferenceDataRepository(factory.engine)
    reference.upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True, account_label="old", created_at_ms=1_000
    )
    reference.upsert_reference_rows(
        USER_ID,
        ACCOUNT_ID,
        STRATEGY_ID,
        testnet=False,
        account_label="new",
        strategy_description="v2",
        created_at_ms=9_999,
    )
    account = reference.get_account(ACCOUNT_ID)
    strategy = reference.get_strategy(STRATEGY_ID)
    user = reference.get_user(USER_ID)
    assert account is not None
    assert strategy is not None
    assert user is not None
    assert (account.label, account.testnet, account.created_at_ms) == ("new", False, 1_000)
    assert strategy.description == "v2"
    assert user.created_at_ms == 1_000


def test_reference_upsert_can_skip_account_and_strategy(factory: DatabaseFactory) -> None:
    ReferenceDataRepository(factory.engine).upsert_reference_rows(
        USER_ID, None, None, testnet=False
    )
    assert len(_table_rows(factory, "users")) == 1
    assert _table_rows(factory, "bybit_accounts") == []
    assert _table_rows(factory, "strategies") == []


def test_run_references_account_and_strategy(factory: DatabaseFactory) -> None:
    ReferenceDataRepository(factory.engine).upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True
    )
    runs = RunRepository(factory.engine)
    run_id = _create_run(runs, 1, account_id=ACCOUNT_ID, strategy_id=STRATEGY_ID)
    run = runs.get(run_id)
    assert run is not None
    assert (run.account_id, run.strategy_id) == (ACCOUNT_ID, STRATEGY_ID)
    with pytest.raises(IntegrityError):
        _create_run(runs, 2, account_id="not-an-account")


# --- gaps ---------------------------------------------------------------------------


def test_gaps_round_trip_and_list_per_run(factory: DatabaseFactory, run_id: str) -> None:
    gaps = GapRepository(factory.engine)
    partial = gaps.add(
        run_id=run_id,
        stream="publicTrade",
        category="linear",
        symbol="BTCUSDT",
        start_ts_ms=2_000,
        end_ts_ms=9_000,
        cause="disconnect",
        fill_status=FillStatus.PARTIAL,
        rows_recovered=1000,
        recovered_from_ts_ms=5_000,
        detected_at_ms=9_100,
        resolved_at_ms=9_500,
    )
    gaps.add(
        run_id=run_id,
        stream="execution",
        start_ts_ms=1_000,
        end_ts_ms=1_500,
        cause="auth",
        fill_status="unfillable",
        detail="HTTP 403",
        detected_at_ms=1_600,
    )
    gaps.add(
        run_id=None,
        stream="tickers",
        start_ts_ms=0,
        end_ts_ms=1,
        cause="stall",
        fill_status="filled",
    )
    listed = gaps.list(run_id)
    assert [gap.stream for gap in listed] == ["execution", "publicTrade"]
    assert listed[1].id == partial.id
    assert (listed[1].fill_status, listed[1].recovered_from_ts_ms) == ("partial", 5_000)
    assert (listed[0].category, listed[0].symbol, listed[0].detail) == (None, None, "HTTP 403")
    assert listed[0].rows_recovered == 0
    assert len(gaps.list()) == 3
    assert [gap.stream for gap in gaps.list(stream="tickers")] == ["tickers"]
    assert gaps.count(run_id) == 2


def test_gap_fill_status_is_validated(factory: DatabaseFactory) -> None:
    gaps = GapRepository(factory.engine)
    with pytest.raises(InvalidArgumentError):
        gaps.add(
            run_id=None, stream="s", start_ts_ms=0, end_ts_ms=1, cause="c", fill_status="mostly"
        )
    with pytest.raises(IntegrityError), factory.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO gaps (stream, start_ts_ms, end_ts_ms, cause, fill_status, "
                "rows_recovered, detected_at_ms) VALUES ('s', 0, 1, 'c', 'mostly', 0, 1)"
            )
        )


# --- market data reads ------------------------------------------------------------------


def test_trade_reads(factory: DatabaseFactory, rows: Any) -> None:
    trades = TradeRepository(factory.engine)
    base = rows.base_ms
    assert trades.insert_many([rows.trade(i) for i in (3, 1, 2, 0)]) == 4
    assert trades.insert_many([rows.trade(0), rows.trade(9, symbol="ETHUSDT")]) == 1
    assert trades.count() == 5
    assert trades.count(symbol="BTCUSDT") == 4
    assert trades.count(category="linear", symbol="ETHUSDT") == 1
    assert [t.trade_time_ms - base for t in trades.list("linear", "BTCUSDT")] == [0, 1, 2, 3]
    in_range = trades.list("linear", "BTCUSDT", start_ms=base + 1, end_ms=base + 3)
    assert [t.trade_time_ms - base for t in in_range] == [1, 2]
    assert trades.trade_ids("linear", "BTCUSDT") == [rows.trade(i)["trade_id"] for i in range(4)]
    assert trades.duplicate_keys() == []


def test_ticker_latest_and_count(factory: DatabaseFactory, rows: Any) -> None:
    tickers = TickerRepository(factory.engine)
    assert tickers.latest("linear", "BTCUSDT") is None
    base = rows.base_ms
    tickers.insert_many(
        [
            rows.ticker(base + 20, last_price="2", frame_type="snapshot"),
            rows.ticker(base + 30, last_price="3"),
            rows.ticker(base + 10, last_price="1"),
        ]
    )
    latest = tickers.latest("linear", "BTCUSDT")
    assert latest is not None
    assert (latest.last_price, latest.exchange_ts_ms) == ("3", base + 30)
    assert tickers.count() == 3
    assert tickers.count(symbol="ETHUSDT") == 0
    assert [t.last_price for t in tickers.list("linear", "BTCUSDT")] == ["1", "2", "3"]


# --- private streams ----------------------------------------------------------------------


def test_execution_reads(factory: DatabaseFactory, rows: Any, account_id: str) -> None:
    executions = ExecutionRepository(factory.engine)
    base = rows.base_ms
    batch = [rows.execution(f"e-{i}", account_id, exec_time_ms=base + 10 - i) for i in range(3)]
    assert executions.insert_many(batch + batch) == 3
    assert executions.count() == 3
    assert executions.count(account_id=account_id, symbol="BTCUSDT") == 3
    assert executions.count(account_id="other") == 0
    assert [e.exec_id for e in executions.list(account_id)] == ["e-2", "e-1", "e-0"]
    assert [e.exec_id for e in executions.list(start_ms=base + 9)] == ["e-1", "e-0"]
    assert executions.list()[0].exec_fee == "0.01713630"


def test_order_reads(factory: DatabaseFactory, rows: Any, account_id: str) -> None:
    orders = OrderRepository(factory.engine)
    base = rows.base_ms
    assert (
        orders.insert_many(
            [
                rows.order("o-1", account_id, updated_time_ms=base, order_status="New"),
                rows.order("o-1", account_id, updated_time_ms=base + 5, order_status="Filled"),
                rows.order("o-2", account_id, updated_time_ms=base + 1, order_status="New"),
            ]
        )
        == 3
    )
    assert orders.count(account_id) == 3
    assert [o.order_status for o in orders.list(order_id="o-1")] == ["New", "Filled"]
    assert orders.list(end_ms=base + 1)[0].order_id == "o-1"


def test_position_and_wallet_reads(factory: DatabaseFactory, account_id: str) -> None:
    positions = PositionRepository(factory.engine)
    wallets = WalletRepository(factory.engine)
    position = {
        "account_id": account_id,
        "run_id": None,
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "size": "0.010",
        "position_idx": 0,
        "entry_price": "28000.5",
        "mark_price": "28560.50",
        "position_value": "280.005",
        "unrealised_pnl": "5.6",
        "cum_realised_pnl": "-0.17",
        "leverage": "10",
        "liq_price": "",
        "updated_time_ms": 5,
        "raw": "{}",
        "exchange_ts_ms": 6,
        "received_ts_ms": 7,
        "source": "ws",
    }
    wallet = {
        "account_id": account_id,
        "run_id": None,
        "account_type": "UNIFIED",
        "total_equity": "1000.00",
        "total_wallet_balance": "999.5",
        "total_available_balance": "900",
        "total_margin_balance": "999.5",
        "coins": '[{"coin": "USDT", "walletBalance": "999.5"}]',
        "raw": "{}",
        "exchange_ts_ms": 6,
        "received_ts_ms": 7,
        "source": "rest",
    }
    assert positions.insert_many([position, {**position, "received_ts_ms": 8}]) == 2
    assert wallets.insert_many([wallet]) == 1
    assert positions.count(account_id, "linear", "BTCUSDT") == 2
    assert [p.received_ts_ms for p in positions.list(account_id)] == [7, 8]
    assert positions.list()[0].liq_price == ""
    assert wallets.count(account_id) == 1
    assert wallets.list(account_id)[0].coins == wallet["coins"]


def test_rejected_frames(factory: DatabaseFactory, run_id: str) -> None:
    frames = RejectedFrameRepository(factory.engine)
    frames.insert_many(
        [
            {
                "run_id": run_id,
                "stream": "publicTrade",
                "received_ts_ms": 2,
                "reason": "missing field 'p'",
                "payload": '{"topic": "publicTrade.BTCUSDT", "data": [{"T": 1}]}',
            }
        ]
    )
    assert frames.count(run_id) == 1
    assert frames.list(run_id)[0].reason == "missing field 'p'"
