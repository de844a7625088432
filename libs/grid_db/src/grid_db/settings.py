"""Connection settings for a grid_db database."""

from __future__ import annotations

from dataclasses import dataclass

from grid_db.errors import ConfigurationError

#: Values SQLite accepts for ``PRAGMA synchronous``. The value is interpolated into
#: the PRAGMA text (PRAGMAs take no bound parameters), so it must come from this set.
SQLITE_SYNCHRONOUS_VALUES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """How to reach and tune the database.

    ``url`` is any SQLAlchemy URL, e.g. ``sqlite:///data/recorder.db`` (relative
    path), ``sqlite:////var/lib/recorder/recorder.db`` (absolute path) or
    ``postgresql://user:password@host:5432/db``. A PostgreSQL URL without a driver
    (``postgresql://`` or ``postgres://``) is opened with psycopg 3, i.e. as
    ``postgresql+psycopg://``; ``DatabaseFactory`` does that normalisation (see
    ``grid_db.factory.normalize_database_url``) and ``url`` keeps the text as given.
    In-memory SQLite (``sqlite://``) is for quick experiments only: SQLAlchemy gives
    each thread its own connection, and so its own empty database.

    The ``sqlite_*`` and ``busy_timeout_ms`` fields only affect SQLite; the pool
    fields only affect dialects that use a connection pool with those knobs
    (PostgreSQL and file-based SQLite).
    """

    url: str
    echo: bool = False
    #: How long a SQLite writer waits for another connection's write lock before
    #: failing with "database is locked". Several writer threads share one file, so
    #: this must comfortably exceed the longest write transaction.
    busy_timeout_ms: int = 10_000
    sqlite_synchronous: str = "NORMAL"
    pool_size: int = 5
    max_overflow: int = 10
    #: Check a pooled connection before use: a multi-day run outlives server-side
    #: idle timeouts on PostgreSQL.
    pool_pre_ping: bool = True
    #: Seconds after which a pooled connection is replaced; -1 never.
    pool_recycle_s: int = -1
    #: Seconds to wait for a free pooled connection.
    pool_timeout_s: float = 30.0
    #: PostgreSQL: seconds to wait for a connection to be established (libpq waits
    #: forever by default), and for a lock (a write blocked by another session).
    connect_timeout_s: int = 10
    lock_timeout_s: int = 30
    #: PostgreSQL: seconds an established connection may go without an answer from the
    #: server's host (unacknowledged data, or unanswered TCP keepalives) before it fails.
    #: Without it a link that dies silently mid-write blocks the writer for the kernel's
    #: retransmission timeout (~15 minutes) instead of letting it buffer and retry.
    io_timeout_s: int = 30

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigurationError("DatabaseSettings.url must not be empty")
        if self.busy_timeout_ms < 0:
            raise ConfigurationError(
                f"DatabaseSettings.busy_timeout_ms must be >= 0, got {self.busy_timeout_ms}"
            )
        if self.sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS_VALUES:
            raise ConfigurationError(
                "DatabaseSettings.sqlite_synchronous must be one of "
                f"{sorted(SQLITE_SYNCHRONOUS_VALUES)}, got {self.sqlite_synchronous!r}"
            )
        if self.connect_timeout_s < 1 or self.lock_timeout_s < 1 or self.io_timeout_s < 3:
            raise ConfigurationError(
                "DatabaseSettings.connect_timeout_s and lock_timeout_s must be >= 1 and "
                f"io_timeout_s >= 3, got {self.connect_timeout_s}, {self.lock_timeout_s} "
                f"and {self.io_timeout_s}"
            )
        if self.pool_size < 1 or self.max_overflow < 0:
            raise ConfigurationError(
                "DatabaseSettings.pool_size must be >= 1 and max_overflow >= 0, got "
                f"{self.pool_size} and {self.max_overflow}"
            )
