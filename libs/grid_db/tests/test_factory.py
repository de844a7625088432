"""DatabaseFactory: SQLite tuning, table creation, path errors, thread safety."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from grid_db import (
    Base,
    ConfigurationError,
    DatabaseError,
    DatabaseFactory,
    DatabasePathError,
    DatabaseSettings,
    GridDbError,
    Run,
    RunRepository,
    tables,
)


def test_every_new_connection_gets_the_pragmas(factory: DatabaseFactory) -> None:
    # Check out two connections at once so the second one is a fresh DBAPI connection.
    with factory.engine.connect() as first, factory.engine.connect() as second:
        for connection in (first, second):
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_pragma_values_follow_the_settings(tmp_path: Path) -> None:
    settings = DatabaseSettings(
        url=f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=2_500, sqlite_synchronous="full"
    )
    with DatabaseFactory(settings) as factory, factory.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2_500


def test_dialect_name_and_sqlite_path(factory: DatabaseFactory, db_path: Path) -> None:
    assert factory.dialect_name == "sqlite"
    assert factory.sqlite_path == db_path


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "recorder.db"
    with DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}")):
        assert path.is_file()


def test_create_tables_is_idempotent_and_keeps_data(
    database: DatabaseFactory, records: Any, db: Any
) -> None:
    run = RunRepository(database.engine).create_run(
        config_json="{}", host="h", pid=1, software_version="v"
    )
    db.write(database.engine, [records.trade(1)], run_id=run.id)
    database.create_tables()
    database.create_tables()
    assert set(inspect(database.engine).get_table_names()) == set(Base.metadata.tables)
    assert RunRepository(database.engine).get(run.id) is not None
    assert db.stored(database.engine, tables.public_trades) == [records.trade(1)]


def test_expected_table_names(database: DatabaseFactory) -> None:
    assert set(inspect(database.engine).get_table_names()) == {
        "users",
        "bybit_accounts",
        "strategies",
        "runs",
        "run_refs",
        "public_trades",
        "ticker_snapshots",
        "orderbook_updates",
        "private_executions",
        "orders",
        "position_snapshots",
        "wallet_snapshots",
        "gaps",
        "rejected_frames",
        "schema_migrations",
    }


def test_display_url_names_the_file_or_hides_the_password(
    factory: DatabaseFactory, db_path: Path
) -> None:
    assert factory.display_url == str(db_path)
    settings = DatabaseSettings(url="postgresql://rec:hunter2@db.example:5432/bybit")
    with DatabaseFactory(settings) as postgres:  # create_engine does not connect
        assert "hunter2" not in postgres.display_url
        assert postgres.display_url == "postgresql+psycopg://rec:***@db.example:5432/bybit"
    with DatabaseFactory(DatabaseSettings(url="sqlite://")) as memory:
        assert memory.display_url == "sqlite://"


def _running_run(run_id: str) -> Run:
    return Run(
        id=run_id,
        status="running",
        started_at_ms=1,
        config_json="{}",
        host="h",
        pid=1,
        software_version="v",
    )


def test_session_commits_on_exit_and_rolls_back_on_error(database: DatabaseFactory) -> None:
    factory = database
    with factory.session() as session:
        session.add(_running_run("r1"))

    def add_then_fail() -> None:
        with factory.session() as session:
            session.add(_running_run("r2"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        add_then_fail()
    with factory.session() as session:
        assert session.get(Run, "r1") is not None
        assert session.get(Run, "r2") is None


def test_parent_that_is_a_file_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    path = blocker / "recorder.db"
    with pytest.raises(DatabasePathError) as caught:
        DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}"))
    assert isinstance(caught.value, DatabaseError)
    assert isinstance(caught.value, GridDbError)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert "not a directory" in caught.value.reason


def test_directory_as_database_path_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a-directory"
    path.mkdir()
    with pytest.raises(DatabasePathError, match="a-directory"):
        DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}"))


def test_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite database, just some text " * 100)
    with pytest.raises(DatabasePathError, match=r"garbage\.db") as caught:
        DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}"))
    assert "not a database" in caught.value.reason


@pytest.mark.parametrize(
    "settings_kwargs",
    [
        {"url": ""},
        {"url": "sqlite://", "sqlite_synchronous": "SOMETIMES; DROP TABLE runs"},
        {"url": "sqlite://", "busy_timeout_ms": -1},
        {"url": "sqlite://", "pool_size": 0},
    ],
)
def test_invalid_settings_are_rejected(settings_kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        DatabaseSettings(**settings_kwargs)  # type: ignore[arg-type]


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    with DatabaseFactory(DatabaseSettings(url="sqlite://")) as factory:
        assert factory.sqlite_path is None
        factory.create_tables()
        with factory.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM runs")).scalar() == 0


def test_one_writer_thread_per_table_plus_a_reader(
    database: DatabaseFactory, records: Any, db: Any, account_id: str
) -> None:
    """The recorder's threading model: concurrent writers on one database, none failing."""
    batches = 20
    errors: list[BaseException] = []
    start = threading.Barrier(4)
    engine = database.engine

    def write_trades() -> None:
        start.wait()
        for batch in range(batches):
            assert db.write(engine, [records.trade(batch * 100 + i) for i in range(100)]) == 100

    def write_tickers() -> None:
        start.wait()
        for batch in range(batches):
            db.write(engine, [records.ticker(batch * 10 + i) for i in range(10)])

    def write_executions() -> None:
        start.wait()
        for batch in range(batches):
            fills = [records.execution(f"exec-{batch}-{i}") for i in range(10)]
            db.write(engine, fills, account_id=account_id)

    def read() -> None:
        start.wait()
        for _ in range(batches):
            db.count(engine, tables.public_trades)

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # collected, asserted below
            errors.append(error)

    threads = [
        threading.Thread(target=guarded, args=(target,))
        for target in (write_trades, write_tickers, write_executions, read)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.count(engine, tables.public_trades) == batches * 100
    assert db.count(engine, tables.ticker_snapshots) == batches * 10
    assert db.count(engine, tables.private_executions) == batches * 10


# ---- a read-only database file fails at construction, not at the first write ------------

_OPEN_READ_ONLY = """
import sys
from grid_db import DatabaseFactory, DatabasePathError, DatabaseSettings
try:
    DatabaseFactory(DatabaseSettings(url=f"sqlite:///{sys.argv[1]}"))
except DatabasePathError as error:
    print("DatabasePathError:", error.reason)
else:
    print("opened")
"""


def test_a_read_only_database_file_fails_early(tmp_path: Path) -> None:
    """The file exists and opens, but cannot be written: DatabasePathError at once.

    Root writes a file whatever its mode, so as root the check runs in a child process
    stripped of every capability (``setpriv``), which file modes then bind.
    """
    path = tmp_path / "recorder.db"
    with DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}")) as factory:
        factory.create_tables()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    if os.geteuid() != 0:
        with pytest.raises(DatabasePathError) as caught:
            DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}"))
        assert caught.value.path == path
        assert "readonly" in caught.value.reason.replace("-", "").replace(" ", "")
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to drop the capabilities with")
    without_capabilities = [setpriv, "--inh-caps=-all", "--bounding-set=-all"]
    child = subprocess.run(
        [*without_capabilities, sys.executable, "-c", _OPEN_READ_ONLY, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("DatabasePathError:"), child.stdout
    assert "readonly" in child.stdout.replace("-", "").replace(" ", "")
