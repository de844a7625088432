"""The same code against a real PostgreSQL server, and the URL handling that reaches it.

The server is the test suite's throwaway cluster (testing/pg_cluster.py, through the root
conftest's ``postgres_url`` and ``database_url`` fixtures): each test gets a new, empty
database. Without PostgreSQL server binaries on this machine the tests that need one are
skipped and the run says so in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from bybit_records import DataSource
from grid_db import (
    Base,
    DatabaseFactory,
    DatabaseSettings,
    ReferenceDataRepository,
    RunRepository,
    RunStatus,
    tables,
)
from grid_db.factory import normalize_database_url
from testkit import prepared_database

if TYPE_CHECKING:
    from pg_cluster import PostgresCluster


@pytest.fixture
def pg(postgres_url: str) -> Iterator[DatabaseFactory]:
    with prepared_database(postgres_url) as factory:
        factory.create_tables()  # idempotent: a second call finds every table and index
        yield factory


# ---- the URL: a bare postgresql:// or postgres:// uses psycopg 3 -------------------------


_URLS = [
    (
        "postgresql://rec:pw@db.example:5432/bybit",
        "postgresql+psycopg://rec:pw@db.example:5432/bybit",
    ),
    ("postgres://rec:pw@db.example/bybit", "postgresql+psycopg://rec:pw@db.example/bybit"),
    (
        "postgresql:///bybit?host=/run/postgresql",
        "postgresql+psycopg:///bybit?host=/run/postgresql",
    ),
    ("postgres+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ("sqlite:///data/recorder.db", "sqlite:///data/recorder.db"),
    ("sqlite://", "sqlite://"),
]


@pytest.mark.parametrize(("given", "expected"), _URLS, ids=[given for given, _ in _URLS])
def test_normalize_database_url(given: str, expected: str) -> None:
    normalized = normalize_database_url(given)
    assert normalized == make_url(expected)
    assert normalize_database_url(normalized) == normalized


def test_a_bare_postgresql_url_gets_the_psycopg_driver_without_connecting() -> None:
    for scheme in ("postgresql", "postgres"):
        settings = DatabaseSettings(url=f"{scheme}://rec:hunter2@127.0.0.1:1/bybit")
        with DatabaseFactory(settings) as factory:  # create_engine does not connect
            assert factory.engine.url.drivername == "postgresql+psycopg"
            assert factory.engine.url.password == "hunter2"
            assert factory.engine.dialect.driver == "psycopg"
            assert factory.dialect_name == "postgresql"
        assert settings.url == f"{scheme}://rec:hunter2@127.0.0.1:1/bybit"  # kept as given


# ---- the fixtures themselves -----------------------------------------------------------


def test_postgres_url_is_a_fresh_empty_database(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.username) == ("127.0.0.1", "postgres")
    assert url.database is not None
    assert url.database.startswith("t_")
    with DatabaseFactory(DatabaseSettings(url=postgres_url)) as factory:
        assert inspect(factory.engine).get_table_names() == []
        factory.create_tables()
        assert set(Base.metadata.tables) <= set(inspect(factory.engine).get_table_names())
        with factory.engine.begin() as connection:
            connection.execute(text("CREATE TABLE leftover (x int)"))


def test_postgres_url_differs_per_test_and_sees_no_earlier_test(postgres_url: str) -> None:
    # The test above left tables behind in its own database; none of them is here.
    with DatabaseFactory(DatabaseSettings(url=postgres_url)) as factory:
        assert inspect(factory.engine).get_table_names() == []
        with factory.engine.connect() as connection:
            names = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")
            ).scalars()
            # Earlier tests' databases were dropped; only this test's is left.
            assert list(names) == [make_url(postgres_url).database]


def test_databases_of_one_cluster_are_isolated(pg_cluster: PostgresCluster) -> None:
    first, second = pg_cluster.create_database(), pg_cluster.create_database()
    try:
        assert first != second
        with DatabaseFactory(DatabaseSettings(url=pg_cluster.url(first))) as factory:
            factory.create_tables()
            with factory.engine.begin() as connection:
                connection.execute(text("CREATE TABLE marker (x int)"))
                connection.execute(text("INSERT INTO marker VALUES (1)"))
            with DatabaseFactory(DatabaseSettings(url=pg_cluster.url(second))) as other:
                assert inspect(other.engine).get_table_names() == []
            # A session still connected does not stop the drop (WITH (FORCE)).
            pinned = factory.engine.connect()
            pg_cluster.drop_database(first)
            pinned.invalidate()
            pinned.close()
    finally:
        pg_cluster.drop_database(first)
        pg_cluster.drop_database(second)
    with (
        DatabaseFactory(DatabaseSettings(url=pg_cluster.url())) as admin,
        admin.engine.connect() as connection,
    ):
        names = connection.execute(text("SELECT datname FROM pg_database")).scalars()
        assert not {first, second} & set(names)


def test_database_url_works_on_each_backend(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["database_url"]
    assert request.node.name.endswith(f"[{backend}]")
    with DatabaseFactory(DatabaseSettings(url=database_url)) as factory:
        assert factory.dialect_name == backend
        factory.create_tables()
        assert set(Base.metadata.tables) <= set(inspect(factory.engine).get_table_names())
        with factory.session() as session:
            session.execute(text("SELECT 1"))


# ---- grid_db on a real server ----------------------------------------------------------


def test_dialect_is_postgresql(pg: DatabaseFactory) -> None:
    assert pg.dialect_name == "postgresql"


def test_duplicate_trades_are_skipped_and_counted_on_postgresql(
    pg: DatabaseFactory, records: Any, db: Any
) -> None:
    # psycopg's executemany sums the rows changed; ON CONFLICT DO NOTHING changes none.
    assert db.write(pg.engine, [records.trade(i) for i in range(0, 3000, 3)]) == 1000
    batch = [records.trade(i) for i in range(3000)] + [records.trade(i) for i in range(1, 1000, 2)]
    assert db.write(pg.engine, batch) == 2000
    trades = tables.public_trades.table
    assert db.count(pg.engine, tables.public_trades) == 3000
    key = [trades.c.category, trades.c.symbol, trades.c.trade_id]
    duplicates = select(*key).group_by(*key).having(func.count() > 1)
    with pg.engine.connect() as connection:
        assert connection.execute(duplicates).all() == []


def test_enum_members_are_stored_as_their_values(
    pg: DatabaseFactory, records: Any, db: Any
) -> None:
    db.write(pg.engine, [records.trade(1, source=DataSource.REST)])
    (row,) = db.rows(pg.engine, tables.public_trades)
    assert row.source == "rest"
    (trade,) = db.stored(pg.engine, tables.public_trades)
    assert trade.source is DataSource.REST
    runs = RunRepository(pg.engine)
    run = runs.create_run(config_json="{}", host="h", pid=1, software_version="v")
    assert [r.id for r in runs.list(status=RunStatus.RUNNING)] == [run.id]


def test_decimal_strings_round_trip_on_postgresql(
    pg: DatabaseFactory, records: Any, db: Any
) -> None:
    # Exactly as sent: no float on the way, trailing zeros kept.
    values = ["28560.50", "0.000036", "0.00000001", "0.10000000", "-12.0", "100"]
    db.write(pg.engine, [records.trade(i, price=v, size=v) for i, v in enumerate(values)])
    rows = db.rows(pg.engine, tables.public_trades)
    assert [(row.price, row.size) for row in rows] == [(v, v) for v in values]
    trades = db.stored(pg.engine, tables.public_trades)
    assert [trade.price for trade in trades] == values
    assert [trade.size for trade in trades] == values


def test_runs_reference_rows_and_gaps_on_postgresql(
    pg: DatabaseFactory, records: Any, db: Any
) -> None:
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
    aborted = runs.abort_dead_runs("h", is_alive=lambda pid: pid == current.pid)
    assert [run.id for run in aborted] == [stale.id]
    runs.finish_run(current.id, RunStatus.COMPLETED)
    assert sorted(run.status for run in runs.list()) == ["aborted", "completed"]

    assert db.write(pg.engine, [records.gap()], run_id=stale.id) == 1
    with pg.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM gaps")).scalar() == 1
        assert connection.execute(text("SELECT run_id FROM gaps")).scalar() == stale.id
