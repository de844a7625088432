"""The bookkeeping rows: run lifecycle, reference upserts, and the gap/rejected-frame ledger.

Every test runs on SQLite and on PostgreSQL. Runs and reference rows have repositories;
gaps and rejected frames are records, written by ``write_records`` and read with Core.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from bybit_records import FillStatus, Topic
from grid_db import (
    DatabaseFactory,
    InvalidArgumentError,
    ReferenceDataRepository,
    RunNotFoundError,
    RunRepository,
    RunStatus,
    tables,
)
from grid_db.models import BybitAccount, Run, Strategy, User
from grid_db.repositories import DEAD_RUN_ERROR

USER_ID = "11111111-1111-4111-8111-111111111111"
ACCOUNT_ID = "22222222-2222-4222-8222-222222222222"
STRATEGY_ID = "33333333-3333-4333-8333-333333333333"


def _create_run(runs: RunRepository, started_at_ms: int, **kwargs: Any) -> str:
    kwargs.setdefault("host", "host-a")
    kwargs.setdefault("pid", 100)
    return runs.create_run(
        config_json='{"symbols": ["BTCUSDT"]}',
        software_version="0.1.0",
        started_at_ms=started_at_ms,
        **kwargs,
    ).id


# --- runs ---------------------------------------------------------------------------


def test_create_run_stores_a_running_run(database: DatabaseFactory, account_id: str) -> None:
    runs = RunRepository(database.engine)
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
    assert run.status == "running"
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
    assert stored.config_json == "{}"
    explicit = runs.create_run(
        config_json="{}", host="h", pid=1, software_version="v", run_id="my-run"
    )
    assert explicit.id == "my-run"
    assert runs.get("my-run") is not None
    assert runs.get("no-such-run") is None


def test_finish_run_sets_status_end_and_error(database: DatabaseFactory) -> None:
    runs = RunRepository(database.engine)
    completed = _create_run(runs, 1)
    failed = _create_run(runs, 2)
    aborted = _create_run(runs, 3)
    finished = runs.finish_run(completed, RunStatus.COMPLETED, ended_at_ms=50)
    assert (finished.status, finished.ended_at_ms) == ("completed", 50)
    runs.finish_run(failed, RunStatus.ERROR, "websocket auth rejected", ended_at_ms=60)
    runs.finish_run(aborted, RunStatus.ABORTED)
    first, second, third = runs.get(completed), runs.get(failed), runs.get(aborted)
    assert first is not None
    assert second is not None
    assert third is not None
    assert (first.status, first.ended_at_ms, first.error) == ("completed", 50, None)
    assert (second.status, second.ended_at_ms, second.error) == (
        "error",
        60,
        "websocket auth rejected",
    )
    assert third.status == "aborted"
    assert third.ended_at_ms is not None
    assert third.ended_at_ms >= third.started_at_ms


def test_finish_run_refuses_running(database: DatabaseFactory) -> None:
    runs = RunRepository(database.engine)
    run_id = _create_run(runs, 1)
    with pytest.raises(InvalidArgumentError, match="terminal"):
        runs.finish_run(run_id, RunStatus.RUNNING)
    run = runs.get(run_id)
    assert run is not None
    assert (run.status, run.ended_at_ms) == ("running", None)


def test_finish_run_of_unknown_id_raises(database: DatabaseFactory) -> None:
    with pytest.raises(RunNotFoundError, match="nope") as caught:
        RunRepository(database.engine).finish_run("nope", RunStatus.COMPLETED)
    assert isinstance(caught.value, LookupError)
    assert caught.value.run_id == "nope"


def test_list_runs_newest_first_with_a_status_filter(database: DatabaseFactory) -> None:
    runs = RunRepository(database.engine)
    old, middle, new = (_create_run(runs, ts) for ts in (100, 200, 300))
    runs.finish_run(middle, RunStatus.COMPLETED)
    assert [run.id for run in runs.list()] == [new, middle, old]
    assert [run.id for run in runs.list(status=RunStatus.RUNNING)] == [new, old]
    assert [run.id for run in runs.list(status=RunStatus.COMPLETED)] == [middle]
    assert runs.list(status=RunStatus.ERROR) == []


def test_abort_dead_runs_of_this_host(database: DatabaseFactory) -> None:
    runs = RunRepository(database.engine)
    dead_a = _create_run(runs, 1, pid=11)
    dead_b = _create_run(runs, 2, pid=12)
    finished = _create_run(runs, 3, pid=13)
    runs.finish_run(finished, RunStatus.COMPLETED, ended_at_ms=4)
    alive = _create_run(runs, 5, pid=14)
    other_host = _create_run(runs, 6, pid=11, host="host-b")
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return pid == 14

    aborted = runs.abort_dead_runs("host-a", is_alive)

    assert sorted(run.id for run in aborted) == sorted([dead_a, dead_b])
    assert sorted(asked) == [11, 12, 14]  # a pid of another host means nothing here
    for run_id in (dead_a, dead_b):
        run = runs.get(run_id)
        assert run is not None
        assert run.status == "aborted"
        assert run.ended_at_ms is not None
        assert run.error == DEAD_RUN_ERROR
    statuses = {run.id: (run.status, run.ended_at_ms) for run in runs.list()}
    assert statuses[finished] == ("completed", 4)
    assert statuses[alive] == ("running", None)
    assert statuses[other_host] == ("running", None)
    assert runs.abort_dead_runs("host-a", is_alive) == []


def test_abort_dead_runs_keeps_an_error_already_recorded(database: DatabaseFactory) -> None:
    runs = RunRepository(database.engine)
    run_id = _create_run(runs, 1)
    with database.engine.begin() as connection:
        connection.execute(update(Run).where(Run.id == run_id).values(error="disk full"))
    (aborted,) = runs.abort_dead_runs("host-a", lambda _pid: False)
    assert (aborted.id, aborted.status, aborted.error) == (run_id, "aborted", "disk full")
    run = runs.get(run_id)
    assert run is not None
    assert (run.status, run.error) == ("aborted", "disk full")


def test_run_status_check_constraint(database: DatabaseFactory) -> None:
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (id, status, started_at_ms, config_json, host, pid, "
                "software_version) VALUES ('x', 'paused', 1, '{}', 'h', 1, 'v')"
            )
        )


# --- reference data ---------------------------------------------------------------------


def _all(database: DatabaseFactory, model: Any) -> list[Any]:
    with database.session() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def _the_reference_rows(database: DatabaseFactory) -> tuple[User, BybitAccount, Strategy]:
    """The user, account and strategy rows, asserting there is exactly one of each."""
    (user,) = _all(database, User)
    (account,) = _all(database, BybitAccount)
    (strategy,) = _all(database, Strategy)
    return user, account, strategy


def test_reference_upsert_is_idempotent(database: DatabaseFactory) -> None:
    reference = ReferenceDataRepository(database.engine)
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
    user, account, strategy = _the_reference_rows(database)
    assert (user.id, user.name, user.created_at_ms) == (USER_ID, "alice", 1_000)
    assert (account.user_id, account.label, account.testnet) == (USER_ID, "main", True)
    assert (strategy.user_id, strategy.name, strategy.description) == (USER_ID, "grid", None)
    fetched = reference.get_account(ACCOUNT_ID)
    assert fetched is not None
    assert (fetched.id, fetched.label, fetched.testnet) == (ACCOUNT_ID, "main", True)
    assert reference.get_account("no-such-account") is None


def test_reference_upsert_updates_names_but_keeps_creation_time(
    database: DatabaseFactory,
) -> None:
    reference = ReferenceDataRepository(database.engine)
    reference.upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True, account_label="old", created_at_ms=1_000
    )
    reference.upsert_reference_rows(
        USER_ID,
        ACCOUNT_ID,
        STRATEGY_ID,
        testnet=False,
        user_name="renamed",
        account_label="new",
        strategy_name="grid-v2",
        strategy_description="v2",
        created_at_ms=9_999,
    )
    user, account, strategy = _the_reference_rows(database)
    assert (user.name, user.created_at_ms) == ("renamed", 1_000)
    assert (account.label, account.testnet, account.created_at_ms) == ("new", False, 1_000)
    assert (strategy.name, strategy.description) == ("grid-v2", "v2")


def test_reference_upsert_can_skip_account_and_strategy(database: DatabaseFactory) -> None:
    ReferenceDataRepository(database.engine).upsert_reference_rows(
        USER_ID, None, None, testnet=False
    )
    assert len(_all(database, User)) == 1
    assert _all(database, BybitAccount) == []
    assert _all(database, Strategy) == []


def test_run_references_account_and_strategy(database: DatabaseFactory) -> None:
    ReferenceDataRepository(database.engine).upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True
    )
    runs = RunRepository(database.engine)
    run_id = _create_run(runs, 1, account_id=ACCOUNT_ID, strategy_id=STRATEGY_ID)
    run = runs.get(run_id)
    assert run is not None
    assert (run.account_id, run.strategy_id) == (ACCOUNT_ID, STRATEGY_ID)
    with pytest.raises(IntegrityError):
        _create_run(runs, 2, account_id="not-an-account")
    with pytest.raises(IntegrityError):
        _create_run(runs, 3, strategy_id="not-a-strategy")


def test_deleting_an_account_or_strategy_detaches_its_runs(database: DatabaseFactory) -> None:
    ReferenceDataRepository(database.engine).upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True
    )
    runs = RunRepository(database.engine)
    run_id = _create_run(runs, 1, account_id=ACCOUNT_ID, strategy_id=STRATEGY_ID)
    with database.engine.begin() as connection:
        connection.execute(User.__table__.delete())  # cascades to accounts and strategies
    run = runs.get(run_id)
    assert run is not None
    assert (run.account_id, run.strategy_id) == (None, None)  # ON DELETE SET NULL


# --- gaps and rejected frames: records like the others --------------------------------------


def test_gaps_round_trip_and_read_per_run(
    database: DatabaseFactory, records: Any, db: Any, run_id: str
) -> None:
    partial = records.gap(2_000)
    unfillable = records.unfillable_gap()
    other_run = records.gap(0, stream=Topic.TICKERS, fill_status=FillStatus.FILLED)
    assert db.write(database.engine, [partial, unfillable], run_id=run_id) == 2
    assert db.write(database.engine, [other_run]) == 1

    gaps = tables.gaps.table
    of_run = db.stored(database.engine, tables.gaps, gaps.c.run_id == run_id)
    assert of_run == [partial, unfillable]
    by_start = sorted(of_run, key=lambda gap: gap.start_ts_ms)
    assert [gap.stream for gap in by_start] == [Topic.EXECUTION, Topic.PUBLIC_TRADE]
    assert (by_start[1].fill_status, by_start[1].recovered_from_ts_ms) == ("partial", 5_000)
    assert (by_start[0].category, by_start[0].symbol, by_start[0].detail) == (
        None,
        None,
        "HTTP 403",
    )
    assert db.count(database.engine, tables.gaps) == 3
    assert db.stored(database.engine, tables.gaps, gaps.c.stream == "tickers") == [other_run]
    assert db.count(database.engine, tables.gaps, gaps.c.run_id == run_id) == 2


def test_rejected_frames_round_trip(
    database: DatabaseFactory, records: Any, db: Any, run_id: str
) -> None:
    frame = records.rejected(2)
    assert db.write(database.engine, [frame], run_id=run_id) == 1
    frames = tables.rejected_frames.table
    assert db.stored(database.engine, tables.rejected_frames, frames.c.run_id == run_id) == [frame]
    (row,) = db.rows(database.engine, tables.rejected_frames)
    assert row.reason == "missing field 'p'"
    assert row.payload == frame.payload
