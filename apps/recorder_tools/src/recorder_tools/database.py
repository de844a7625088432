"""The one way the offline tools open recorded data: read-only, from a path or a URL.

A *target* is what the user names on the command line:

* a filesystem path: a database file, a session folder, or a whole ``outputs/`` tree
  (multirun folders and day-after-day restarts included): every ``recorder.db`` below it;
* a SQLAlchemy database URL: ``sqlite:///path`` (the same as the path) or
  ``postgresql://user:password@host:5432/db`` (one database holding every run recorded into it).

SQLite files are opened with ``mode=ro`` and a bounded busy timeout: a session that is still
recording keeps writing undisturbed (WAL lets readers and the writer work side by side), and a
missing file is never created. PostgreSQL is reached through psycopg 3; every transaction is
read-only (``default_transaction_read_only``), and connecting, waiting for a lock and running
a statement are bounded.

A URL's password never appears in text meant for people: labels, locations and error messages
show it as ``***``.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, inspect, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from recorder_tools.schema import RUNS

DATABASE_FILE_NAME = "recorder.db"
#: the table every recorder database has; the default requirement of ``open_read_only``
RUNS_TABLE = RUNS.name
#: how long a SQLite read waits for a lock (a checkpoint of the recording process, at most), and
#: a PostgreSQL statement for a table lock (``lock_timeout``)
BUSY_TIMEOUT_S = 30.0
#: how long connecting to a database server may take (libpq ``connect_timeout``)
CONNECT_TIMEOUT_S = 10
#: the longest one PostgreSQL statement may run (``statement_timeout``): a report over weeks of
#: trades scans big tables, but nothing may wait forever
STATEMENT_TIMEOUT_S = 900
#: the SQLAlchemy driver every PostgreSQL URL is mapped to (psycopg 3)
POSTGRES_DRIVER = "postgresql+psycopg"

_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_POSTGRES_BACKENDS = frozenset({"postgresql", "postgres"})


class ReadOnlyOpenError(Exception):
    """A target or database that cannot be opened for reading.

    The message is one line and never holds a password.
    """


@dataclass(frozen=True, slots=True)
class SessionDatabase:
    """One database to read and the names it is shown under."""

    #: the folder holding the file, relative to the path the user gave (e.g.
    #: ``2026-11-24/09-15-02-123456_multirun/0_btc``), or the folder's name; for a server
    #: database, its URL with the password hidden
    label: str
    #: the file's path, or the server database's URL with the password hidden
    location: str
    #: the SQLite file; None for a server database
    path: Path | None = None
    #: how to reach a server database (holds the password: never print ``url`` rendered with
    #: ``hide_password=False``); None for a SQLite file
    url: URL | None = field(default=None, repr=False)


def is_database_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is a URL (``scheme://...``) rather than a filesystem path."""
    return isinstance(target, str) and _URL_START.match(target) is not None


def display_target(target: str | os.PathLike[str]) -> str:
    """``target`` as it may be shown: a path as given, a URL with its password hidden."""
    if not is_database_url(target):
        return str(Path(target))
    try:
        return make_url(str(target)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return str(target).split("://", 1)[0] + "://(unparsable URL)"


def find_databases(target: str | os.PathLike[str]) -> list[SessionDatabase]:
    """The databases ``target`` names: a file, every ``recorder.db`` below a folder (sorted), or
    the one database of a URL.

    Raises:
        FileNotFoundError: the path does not exist.
        ReadOnlyOpenError: the URL is malformed or names a database the tools cannot read.
    """
    if is_database_url(target):
        url = _parse_url(str(target))
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ReadOnlyOpenError(
                    f"{display_target(target)}: an in-memory database holds no recording"
                )
            return _databases_below(Path(url.database).expanduser())
        shown = url.render_as_string(hide_password=True)
        return [SessionDatabase(label=shown, location=shown, url=url)]
    return _databases_below(Path(target).expanduser())


def find_session_database(target: str | os.PathLike[str]) -> SessionDatabase:
    """The one database of ``target``: a file, a session folder holding ``recorder.db``, a folder
    with exactly one ``recorder.db`` below it, or a URL.

    Raises:
        FileNotFoundError: the path does not exist or holds no recorder database.
        ReadOnlyOpenError: the URL is unusable, or the folder holds several databases.
    """
    if not is_database_url(target):
        direct = Path(target).expanduser() / DATABASE_FILE_NAME
        if direct.is_file():
            return _databases_below(direct)[0]
    found = find_databases(target)
    if not found:
        raise FileNotFoundError(f"no recorder database at {display_target(target)}")
    if len(found) > 1:
        shown = ", ".join(d.label for d in found[:5]) + (", ..." if len(found) > 5 else "")
        raise ReadOnlyOpenError(
            f"{display_target(target)} holds {len(found)} recorder databases ({shown}); "
            "name one session"
        )
    return found[0]


def open_read_only(
    database: SessionDatabase, *, required_tables: Collection[str] = (RUNS_TABLE,)
) -> Engine:
    """A SQLAlchemy engine on ``database`` that can only read.

    ``required_tables`` must all exist, else it is not a recorder database. The caller disposes
    of the engine.

    Raises:
        ReadOnlyOpenError: the database cannot be reached or read, or lacks a required table.
    """
    engine = _sqlite_engine(database.path) if database.url is None else _server_engine(database)
    try:
        tables = set(inspect(engine).get_table_names())
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        engine.dispose()
        raise ReadOnlyOpenError(
            f"{database.location} is not a readable database: {first_line(exc)}"
        ) from None
    missing = sorted(set(required_tables) - tables)
    if missing:
        engine.dispose()
        names = ", ".join(f"'{name}'" for name in missing)
        raise ReadOnlyOpenError(
            f"{database.location} is not a recorder database (no {names} table)"
        )
    return engine


@dataclass(frozen=True, slots=True)
class OpenDatabase:
    """A database of a target and its read-only engine."""

    source: SessionDatabase
    engine: Engine


@dataclass(slots=True)
class OpenDatabases:
    """Every database of a target that could be opened, and why the others could not.

    A context manager: leaving it disposes of every engine.
    """

    #: the target, as it may be shown (password hidden)
    target: str
    opened: list[OpenDatabase] = field(default_factory=list)
    #: one line per database that could not be opened
    skipped: list[str] = field(default_factory=list)

    @property
    def engines(self) -> list[Engine]:
        return [database.engine for database in self.opened]

    def __iter__(self) -> Iterator[OpenDatabase]:
        return iter(self.opened)

    def __len__(self) -> int:
        return len(self.opened)

    def close(self) -> None:
        for database in self.opened:
            database.engine.dispose()

    def __enter__(self) -> OpenDatabases:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_all_read_only(
    target: str | os.PathLike[str], *, required_tables: Collection[str] = (RUNS_TABLE,)
) -> OpenDatabases:
    """``open_read_only`` on every database ``find_databases(target)`` names.

    A database that cannot be opened is listed in ``skipped`` rather than raised.

    Raises:
        FileNotFoundError: the path does not exist.
        ReadOnlyOpenError: the URL is malformed or names a database the tools cannot read.
    """
    found = find_databases(target)
    databases = OpenDatabases(display_target(target))
    try:
        for source in found:
            try:
                engine = open_read_only(source, required_tables=required_tables)
            except ReadOnlyOpenError as exc:
                databases.skipped.append(str(exc))
                continue
            databases.opened.append(OpenDatabase(source, engine))
    except BaseException:
        databases.close()
        raise
    return databases


def first_line(exc: BaseException) -> str:
    """The first line of an error (the driver's own message for a SQLAlchemy error)."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


# ---- internals ----------------------------------------------------------------------------


def _databases_below(path: Path) -> list[SessionDatabase]:
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_file():
        return [SessionDatabase(label=path.resolve().parent.name, location=str(path), path=path)]
    databases = []
    for file in sorted(path.rglob(DATABASE_FILE_NAME)):
        folder = file.parent.relative_to(path)
        label = str(folder) if str(folder) != "." else path.resolve().name
        databases.append(SessionDatabase(label=label, location=str(file), path=file))
    return databases


def _parse_url(text: str) -> URL:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ReadOnlyOpenError(f"not a valid database URL: {display_target(text)}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url
    if backend in _POSTGRES_BACKENDS:
        return url.set(drivername=POSTGRES_DRIVER)
    raise ReadOnlyOpenError(
        f"{url.render_as_string(hide_password=True)}: the tools read SQLite files and "
        f"PostgreSQL databases, not {backend}"
    )


def _sqlite_engine(path: Path | None) -> Engine:
    assert path is not None
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


def postgres_connect_args() -> dict[str, object]:
    """psycopg 3 connection arguments: read-only transactions, bounded waits."""
    settings = {
        "default_transaction_read_only": "on",
        "statement_timeout": f"{STATEMENT_TIMEOUT_S * 1000}",
        "lock_timeout": f"{int(BUSY_TIMEOUT_S * 1000)}",
    }
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "recorder-tools",
        # replaces any ``options`` of the URL, so a URL cannot turn read-only off
        "options": " ".join(f"-c {name}={value}" for name, value in settings.items()),
    }


def _server_engine(database: SessionDatabase) -> Engine:
    assert database.url is not None
    return create_engine(database.url, poolclass=NullPool, connect_args=postgres_connect_args())
