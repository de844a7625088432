"""The one read-only opener: discovery below a path, SQLite ``mode=ro``, URLs, hidden passwords."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from recorder_tools.database import (
    BUSY_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    POSTGRES_DRIVER,
    STATEMENT_TIMEOUT_S,
    ReadOnlyOpenError,
    display_target,
    find_databases,
    find_session_database,
    open_all_read_only,
    open_read_only,
    postgres_connect_args,
)
from testkit import recorder_sqlite, unused_port

SECRET = "s3cret-pw"
TOOLS = [Path(sys.executable).with_name(name) for name in ("recorder-report", "recorder-export")]


def recorder_db(folder: Path) -> Path:
    """An empty recorder database (every grid_db table) in ``folder``."""
    path = folder / "recorder.db"
    recorder_sqlite(path).dispose()
    return path


def test_every_database_below_a_tree_is_found_with_its_folder_as_label(tmp_path: Path) -> None:
    recorder_db(tmp_path / "day1" / "multirun" / "0_btc")
    recorder_db(tmp_path / "day2")
    (tmp_path / "day2" / "notes.txt").write_text("not a database")
    found = find_databases(tmp_path)
    assert [d.label for d in found] == ["day1/multirun/0_btc", "day2"]
    assert [d.path for d in found] == [
        tmp_path / "day1" / "multirun" / "0_btc" / "recorder.db",
        tmp_path / "day2" / "recorder.db",
    ]
    assert all(d.url is None and d.location == str(d.path) for d in found)
    (one,) = find_databases(tmp_path / "day2" / "recorder.db")
    assert one.label == "day2"
    (same,) = find_databases(f"sqlite:///{tmp_path / 'day2' / 'recorder.db'}")
    assert (same.label, same.path) == ("day2", one.path)
    (folder,) = find_databases(tmp_path / "day2")
    assert folder.label == "day2"
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_databases(tmp_path / "absent")


def test_one_session_database_is_picked_or_refused(tmp_path: Path) -> None:
    recorder_db(tmp_path / "a")
    assert find_session_database(tmp_path / "a").path == tmp_path / "a" / "recorder.db"
    assert find_session_database(tmp_path).label == "a"  # the only one below
    recorder_db(tmp_path / "b")
    with pytest.raises(ReadOnlyOpenError, match="holds 2 recorder databases"):
        find_session_database(tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="no recorder database"):
        find_session_database(tmp_path / "nothing")


def test_a_sqlite_database_is_opened_read_only(tmp_path: Path) -> None:
    path = recorder_db(tmp_path / "s")
    (database,) = find_databases(path)
    engine = open_read_only(database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 0
            with pytest.raises(OperationalError, match="readonly database"):
                conn.execute(text("CREATE TABLE intruder (a INTEGER)"))
        # a recording process in the middle of a write transaction does not stop the reader
        writer = sqlite3.connect(path)
        writer.execute("BEGIN IMMEDIATE")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM gaps")).scalar() == 0
        writer.rollback()
        writer.close()
    finally:
        engine.dispose()


def test_foreign_and_broken_files_are_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(ReadOnlyOpenError, match=r"not a recorder database \(no 'runs' table\)"):
        open_read_only(find_databases(empty)[0])
    with pytest.raises(ReadOnlyOpenError, match=r"\(no 'no_such', 'other' table\)"):
        open_read_only(
            find_databases(recorder_db(tmp_path / "full"))[0],
            required_tables=("runs", "gaps", "other", "no_such"),
        )
    garbage = tmp_path / "garbage" / "recorder.db"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a SQLite file at all, just some bytes" * 100)
    with pytest.raises(ReadOnlyOpenError, match="is not a readable database") as caught:
        open_read_only(find_databases(garbage)[0])
    assert "\n" not in str(caught.value)


def test_open_all_skips_what_cannot_be_opened_and_disposes_the_rest(tmp_path: Path) -> None:
    recorder_db(tmp_path / "good")
    bad = tmp_path / "bad" / "recorder.db"
    bad.parent.mkdir()
    bad.write_bytes(b"")
    with open_all_read_only(tmp_path) as databases:
        assert [d.source.label for d in databases] == ["good"]
        assert len(databases.engines) == 1
        (skipped,) = databases.skipped
        assert skipped.startswith(str(bad))
        assert "not a recorder database" in skipped
        assert databases.target == str(tmp_path)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_a_postgresql_url_is_mapped_to_psycopg_and_shown_without_its_password(
    scheme: str,
) -> None:
    target = f"{scheme}://reader:{SECRET}@db.example:5433/recorder"
    (database,) = find_databases(target)
    assert database.path is None
    assert database.url is not None
    assert database.url.drivername == POSTGRES_DRIVER
    assert database.url.password == SECRET  # kept for connecting
    for shown in (database.label, database.location, display_target(target), repr(database)):
        assert SECRET not in shown
    assert database.location == "postgresql+psycopg://reader:***@db.example:5433/recorder"
    assert display_target(target) == f"{scheme}://reader:***@db.example:5433/recorder"


def test_postgresql_connections_are_read_only_with_bounded_waits() -> None:
    args = postgres_connect_args()
    assert args["connect_timeout"] == CONNECT_TIMEOUT_S
    options = str(args["options"]).split()
    assert options[0::2] == ["-c"] * 3
    settings = dict(o.split("=", 1) for o in options[1::2])
    assert settings == {
        "default_transaction_read_only": "on",
        "statement_timeout": str(STATEMENT_TIMEOUT_S * 1000),
        "lock_timeout": str(int(BUSY_TIMEOUT_S * 1000)),
    }


def test_unusable_urls_are_refused_without_leaking_the_password(tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyOpenError, match="not mysql") as caught:
        find_databases(f"mysql://u:{SECRET}@host/db")
    assert SECRET not in str(caught.value)
    with pytest.raises(ReadOnlyOpenError, match="in-memory"):
        find_databases("sqlite://")
    with pytest.raises(ReadOnlyOpenError, match="not a valid database URL") as caught:
        find_databases(f"postgresql://u:{SECRET}@host:notaport/db")
    assert SECRET not in str(caught.value)


def test_an_unreachable_server_is_refused_quickly_without_the_password() -> None:
    target = f"postgresql://reader:{SECRET}@127.0.0.1:{unused_port()}/recorder"
    with pytest.raises(ReadOnlyOpenError, match="is not a readable database") as caught:
        open_read_only(find_session_database(target))
    assert SECRET not in str(caught.value)
    assert "reader:***@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda p: p.name)
def test_the_tools_never_print_a_password(tool: Path, tmp_path: Path) -> None:
    target = f"postgresql://reader:{SECRET}@127.0.0.1:{unused_port()}/recorder"
    extra = ["--out", str(tmp_path / "out")] if tool.name == "recorder-export" else []
    done = subprocess.run(
        [str(tool), target, *extra], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "postgresql://reader:***@127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
