"""The same code against a real PostgreSQL server; opt-in.

Skipped unless ``GRID_DB_POSTGRES_URL`` names a throwaway database, e.g.
``postgresql+psycopg://postgres@/grid_db_test?host=/tmp/pg``. Every grid_db table in
it is dropped. The driver (psycopg or psycopg2) is not a workspace dependency; run
from an environment that has it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from grid_db import (
    Base,
    DatabaseFactory,
    DatabaseSettings,
    DataSource,
    GapRepository,
    PublicTrade,
    ReferenceDataRepository,
    RunRepository,
    RunStatus,
    TradeRepository,
    insert_ignore,
)

POSTGRES_URL = os.environ.get("GRID_DB_POSTGRES_URL", "")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="set GRID_DB_POSTGRES_URL to run against a real PostgreSQL"
)


@pytest.fixture
def pg(rows: Any) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(DatabaseSettings(url=POSTGRES_URL))
    Base.metadata.drop_all(factory.engine)
    factory.create_tables()
    factory.create_tables()
    yield factory
    Base.metadata.drop_all(factory.engine)
    factory.dispose()


def test_dialect_is_postgresql(pg: DatabaseFactory) -> None:
    assert pg.dialect_name == "postgresql"


def test_insert_ignore_counts_on_postgresql(pg: DatabaseFactory, rows: Any) -> None:
    with pg.engine.begin() as connection:
        assert (
            insert_ignore(connection, PublicTrade, [rows.trade(i) for i in range(0, 3000, 3)])
            == 1000
        )
    batch = [rows.trade(i) for i in range(3000)] + [rows.trade(i) for i in range(1, 1000, 2)]
    with pg.engine.begin() as connection:
        assert insert_ignore(connection, PublicTrade, batch) == 2000
    assert TradeRepository(pg.engine).count() == 3000
    assert TradeRepository(pg.engine).duplicate_keys() == []


def test_enum_members_are_stored_as_their_values(pg: DatabaseFactory, rows: Any) -> None:
    TradeRepository(pg.engine).insert_many([{**rows.trade(1), "source": DataSource.REST}])
    (trade,) = TradeRepository(pg.engine).list("linear", "BTCUSDT")
    assert trade.source == "rest"
    runs = RunRepository(pg.engine)
    run = runs.create_run(config_json="{}", host="h", pid=1, software_version="v")
    assert [r.id for r in runs.list(status=RunStatus.RUNNING)] == [run.id]


def test_decimal_strings_round_trip_on_postgresql(pg: DatabaseFactory, rows: Any) -> None:
    values = ["28560.50", "0.000036", "1e-8", "0.10000000", ""]
    TradeRepository(pg.engine).insert_many(
        [rows.trade(i, price=value, size=value) for i, value in enumerate(values)]
    )
    trades = TradeRepository(pg.engine).list("linear", "BTCUSDT")
    assert [trade.price for trade in trades] == values
    assert [trade.size for trade in trades] == values


def test_runs_reference_rows_and_gaps_on_postgresql(pg: DatabaseFactory) -> None:
    reference = ReferenceDataRepository(pg.engine)
    for label in ("first", "second"):
        reference.upsert_reference_rows(
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-00000000000b",
            "00000000-0000-4000-8000-00000000000c",
            testnet=True,
            account_label=label,
            created_at_ms=1,
        )
    account = reference.get_account("00000000-0000-4000-8000-00000000000b")
    assert account is not None
    assert (account.label, account.created_at_ms) == ("second", 1)

    runs = RunRepository(pg.engine)
    stale = runs.create_run(config_json="{}", host="h", pid=1, software_version="v")
    current = runs.create_run(config_json="{}", host="h", pid=2, software_version="v")
    assert runs.mark_stale_running_as_aborted(exclude_id=current.id) == 1
    runs.finish_run(current.id, RunStatus.COMPLETED)
    assert [run.status for run in runs.list()] in (
        ["completed", "aborted"],
        ["aborted", "completed"],
    )

    gap = GapRepository(pg.engine).add(
        run_id=stale.id,
        stream="publicTrade",
        start_ts_ms=1,
        end_ts_ms=2,
        cause="stall",
        fill_status="filled",
    )
    assert gap.id is not None
    with pg.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM gaps")).scalar() == 1
