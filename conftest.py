"""Fixtures shared by every member's tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from pg_cluster import (
    PostgresCluster,
    PostgresClusterError,
    find_postgres_binaries,
    missing_binaries_reason,
)

from bybit_sim import BybitSimulator, SimulatorConfig
from event_saver import DatabaseWorker
from grid_db import DatabaseFactory
from testkit import prepared_database

#: The session's PostgreSQL cluster, once a test asked for one (for the summary line).
_PG_CLUSTER = pytest.StashKey[PostgresCluster]()
#: How many tests were skipped for want of PostgreSQL server binaries.
_PG_SKIPS = pytest.StashKey[int]()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "recorder.db"


@pytest.fixture
def db(database_url: str) -> Iterator[DatabaseFactory]:
    """A prepared, empty database: once on SQLite and once on PostgreSQL (``database_url``)."""
    with prepared_database(database_url, busy_timeout_ms=200) as factory:
        yield factory


@pytest.fixture
async def worker() -> AsyncIterator[DatabaseWorker]:
    async with contextlib.aclosing(DatabaseWorker()) as w:
        yield w


@pytest.fixture
async def sim() -> AsyncIterator[BybitSimulator]:
    """A simulator on an ephemeral port, trading fast enough for quick tests."""
    simulator = BybitSimulator(SimulatorConfig(host="127.0.0.1", port=0, trade_rate=40.0, seed=7))
    await simulator.start()
    yield simulator
    await simulator.stop()


# ---- PostgreSQL: a throwaway cluster, started on first use (testing/pg_cluster.py) ----------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgresql: needs the throwaway PostgreSQL cluster (deselect with -m 'not postgresql')",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that take ``postgres_url`` (or ``pg_cluster``) directly get the marker too, as
    # ``database_url``'s postgresql variant does.
    for item in items:
        if "pg_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)


def _skip_without_postgres() -> NoReturn:
    pytest.skip(missing_binaries_reason())


#: Where every "no PostgreSQL" skip is reported, so that ``-ra`` folds them into one line.
_SKIP_LOCATION = (__file__, _skip_without_postgres.__code__.co_firstlineno)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        message = report.longrepr[2]
        if message.removeprefix("Skipped: ") == missing_binaries_reason():
            # Reported at the test's own line, N skipped variants would list as N lines.
            report.longrepr = (*_SKIP_LOCATION, message)
            item.config.stash[_PG_SKIPS] = item.config.stash.get(_PG_SKIPS, 0) + 1
    return report


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PostgresCluster]:
    """The session's PostgreSQL server, started by the first test that needs it.

    Skips the test when this machine has no server binaries. A server that does not start
    fails every test that needs it with the same one-line reason (not retried per test).
    """
    binaries = find_postgres_binaries()
    if binaries is None:
        _skip_without_postgres()
    cluster = PostgresCluster(binaries)
    request.config.stash[_PG_CLUSTER] = cluster
    failure = ""
    try:
        cluster.start()
    except PostgresClusterError as error:
        failure = str(error)
    if failure:  # failed outside the except block: no "during handling" traceback
        pytest.fail(failure, pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test, as a SQLAlchemy URL
    (``postgresql+psycopg://postgres@127.0.0.1:PORT/t_xxxxxxxxxxxx``); dropped afterwards,
    whatever is still connected to it."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once per backend: ``test_x[sqlite]`` gets ``sqlite:///TMP/recorder.db``
    (a file not yet created), ``test_x[postgresql]`` a new, empty database (``postgres_url``).
    The PostgreSQL run is skipped when the server binaries are missing."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/recorder.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def pytest_report_header(config: pytest.Config) -> str:
    binaries = find_postgres_binaries()
    if binaries is None:
        return missing_binaries_reason("the PostgreSQL variants are skipped")
    return f"postgresql: {binaries.describe()} (throwaway cluster, started on first use)"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line on PostgreSQL, when the header (not shown under -q) and the folded skip
    line of -ra have not said it: what the cluster did if a test started it, or that
    PostgreSQL variants were skipped for want of the server binaries."""
    cluster = config.stash.get(_PG_CLUSTER, None)
    if cluster is not None and cluster.start_seconds:
        terminalreporter.write_line(cluster.summary())
        return
    header_shown = config.get_verbosity() >= 0 and not config.option.no_header
    skips_listed = "s" in terminalreporter.reportchars
    if config.stash.get(_PG_SKIPS, 0) and not header_shown and not skips_listed:
        terminalreporter.write_line(missing_binaries_reason())
