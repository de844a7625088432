"""Engine and session construction, including SQLite tuning for unattended runs."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from grid_db.errors import DatabaseError, DatabasePathError
from grid_db.migrations import prepare_schema
from grid_db.settings import DatabaseSettings

logger = logging.getLogger(__name__)

_SQLITE_MEMORY_NAMES = frozenset({"", ":memory:"})

#: The driver for a PostgreSQL URL that names none. SQLAlchemy's own default for a bare
#: ``postgresql://`` is psycopg2, which is not installed; psycopg 3 is a dependency.
POSTGRESQL_DEFAULT_DRIVER = "psycopg"


class DatabaseFactory:
    """Owns one Engine for ``settings.url`` and hands out connections and sessions.

    Synchronous on purpose: async writers run it in worker threads. The engine is
    shared by all threads; each thread checks out its own pooled connection (SQLite
    connections are opened with ``check_same_thread=False`` so the pool may hand a
    connection to a different thread than the one that created it). SQLite admits
    one writer at a time: a second writer waits up to ``busy_timeout_ms`` for the
    lock rather than failing, and WAL lets readers proceed while a writer writes.

    For a SQLite file the parent directory is created and the file is opened once
    at construction, so a bad path fails here with ``DatabasePathError`` instead of
    at the first write hours into a run.
    """

    def __init__(self, settings: DatabaseSettings) -> None:
        self._settings = settings
        url = normalize_database_url(settings.url)
        self._sqlite_path = _sqlite_file_path(url)
        if self._sqlite_path is not None:
            _ensure_parent_directory(self._sqlite_path)
            # sqlite3 does not expand "~"; open exactly the file whose directory we made.
            url = url.set(database=str(self._sqlite_path))
        self._url = url
        self._engine = create_engine(self._url, **self._engine_options())
        if self._url.get_backend_name() == "sqlite":
            event.listen(self._engine, "connect", self._apply_sqlite_pragmas)
        self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
        if self._sqlite_path is not None:
            self._probe_sqlite_file(self._sqlite_path)

    @property
    def settings(self) -> DatabaseSettings:
        return self._settings

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ..."""
        return self._engine.dialect.name

    @property
    def display_url(self) -> str:
        """The database for a log line: the SQLite file, or the URL without its password."""
        if self._sqlite_path is not None:
            return str(self._sqlite_path)
        return self._url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for in-memory SQLite and other dialects."""
        return self._sqlite_path

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A Session in a transaction: committed on normal exit, rolled back on error.

        Objects stay readable after the block (``expire_on_commit=False``).
        """
        with self._sessionmaker.begin() as session:
            yield session

    def create_tables(self) -> None:
        """Create missing tables and bring an older database up to date (migrations)."""
        prepare_schema(self._engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> DatabaseFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def _engine_options(self) -> dict[str, Any]:
        settings = self._settings
        options: dict[str, Any] = {
            "echo": settings.echo,
            "pool_pre_ping": settings.pool_pre_ping,
            "pool_recycle": settings.pool_recycle_s,
        }
        if self._url.get_backend_name() == "sqlite":
            options["connect_args"] = {
                "check_same_thread": False,
                # sqlite3's own busy timeout, in seconds; the PRAGMA below sets the
                # same value, this just keeps the driver from disagreeing with it.
                "timeout": settings.busy_timeout_ms / 1000,
            }
            if self._sqlite_path is None:
                # In-memory SQLite uses a single-connection pool without sizing knobs.
                return options
        options["pool_size"] = settings.pool_size
        options["max_overflow"] = settings.max_overflow
        options["pool_timeout"] = settings.pool_timeout_s
        if self._url.get_backend_name() == "postgresql":
            options["connect_args"] = {
                "connect_timeout": settings.connect_timeout_s,
                "options": f"-c lock_timeout={settings.lock_timeout_s * 1000}",
                **_dead_link_bounds(settings.io_timeout_s),
            }
        return options

    def _apply_sqlite_pragmas(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        """Tune every new SQLite connection; PRAGMAs are per connection, not per file."""
        settings = self._settings
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so that switching the file to WAL (which needs an
            # exclusive lock the first time) waits for other connections.
            cursor.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
            journal_mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if self._sqlite_path is not None and str(journal_mode).lower() != "wal":
                logger.warning(
                    "SQLite refused WAL journal mode for %s (got %r); readers will block the "
                    "writer",
                    self._sqlite_path,
                    journal_mode,
                )
            # NORMAL is durable across application crashes in WAL mode and only risks
            # the last transactions on power loss, at a fraction of FULL's fsyncs.
            cursor.execute(f"PRAGMA synchronous = {settings.sqlite_synchronous.upper()}")
            # Off by default in SQLite; the schema's ON DELETE rules depend on it.
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def _probe_sqlite_file(self, path: Path) -> None:
        """Open the file and take its write lock once, to fail early on a bad path.

        Opening alone proves little: SQLite creates nothing until the first write, and
        a read-only file opens fine. ``BEGIN IMMEDIATE`` takes the write lock, which fails
        when the directory is not writable (for the WAL files); a read-only file in WAL
        mode still gets that lock (it lives in the ``-shm`` file), so a write follows:
        ``user_version`` set to its own value, which changes nothing and is rolled back.
        """
        try:
            with self._engine.connect() as connection:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                version = int(connection.exec_driver_sql("PRAGMA user_version").scalar() or 0)
                connection.exec_driver_sql(f"PRAGMA user_version = {version}")
                connection.exec_driver_sql("ROLLBACK")
        except DBAPIError as error:
            self._engine.dispose()
            raise _probe_error(path, error.orig or error) from error
        except sqlite3.Error as error:
            self._engine.dispose()
            raise _probe_error(path, error) from error


def _dead_link_bounds(io_timeout_s: int) -> dict[str, int]:
    """libpq options that fail a connection whose peer went silent for ``io_timeout_s``.

    ``tcp_user_timeout`` bounds data the server never acknowledges (a write into a dead
    link); keepalives bound a wait for an answer that never comes (the link died while
    the server was working): probes start when the connection has been quiet for most of
    the bound, and the third unanswered one, at the bound, fails it.
    """
    probe_every = max(1, io_timeout_s // 3 // 3)
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, io_timeout_s - 3 * probe_every),
        "keepalives_interval": probe_every,
        "keepalives_count": 3,
        "tcp_user_timeout": io_timeout_s * 1000,
    }


def normalize_database_url(url: str | URL) -> URL:
    """``url`` as a SQLAlchemy URL, with the PostgreSQL driver filled in.

    ``postgresql://...`` and ``postgres://...`` (the form many hosting providers and
    ``DATABASE_URL`` conventions use, which SQLAlchemy does not accept at all) become
    ``postgresql+psycopg://...``; ``postgres+DRIVER://`` becomes ``postgresql+DRIVER://``.
    A URL that names its driver, and every other dialect, is returned unchanged.
    """
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        return parsed
    drivername = f"postgresql+{driver or POSTGRESQL_DEFAULT_DRIVER}"
    if drivername == parsed.drivername:
        return parsed
    return parsed.set(drivername=drivername)


def _sqlite_file_path(url: URL) -> Path | None:
    """The database file of a file-based SQLite URL, else None."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in _SQLITE_MEMORY_NAMES or database.startswith("file:"):
        # ":memory:" and URI-style names ("file:...?mode=memory") are not plain paths.
        return None
    return Path(database).expanduser()


def _probe_error(path: Path, error: BaseException) -> DatabaseError:
    if getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
        # Not a path problem: another process kept the write lock past busy_timeout_ms.
        return DatabaseError(
            f"SQLite database file {str(path)!r} stayed locked by another connection "
            f"for longer than the busy timeout: {error}"
        )
    return DatabasePathError(path, str(error))


def _ensure_parent_directory(path: Path) -> None:
    blocking_file = next(
        (parent for parent in reversed(path.parents) if parent.exists() and not parent.is_dir()),
        None,
    )
    if blocking_file is not None:
        raise DatabasePathError(path, f"{str(blocking_file)!r} exists and is not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabasePathError(
            path, f"cannot create directory {str(path.parent)!r}: {error.strerror or error}"
        ) from error
    if path.is_dir():
        raise DatabasePathError(path, "the path is a directory, not a database file")
