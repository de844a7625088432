"""Exceptions raised by grid_db.

Every exception defined here derives from one root, so callers can catch
``GridDbError`` to handle anything this package decided to report::

    GridDbError
    ├── ConfigurationError      (also ValueError)  invalid DatabaseSettings
    ├── DatabaseError                              the database cannot be opened or used
    │   └── DatabasePathError                      SQLite file path cannot be created/opened/written
    ├── UnsupportedDialectError (also NotImplementedError)  no implementation for this dialect
    ├── InvalidArgumentError    (also ValueError)  a call argument that can never succeed
    │   └── InvalidRowsError                       a write batch with unknown/inconsistent keys
    └── NotFoundError           (also LookupError) a referenced row does not exist
        └── RunNotFoundError

Errors raised by SQLAlchemy while executing a statement (``sqlalchemy.exc.*``:
``OperationalError`` for "database is locked" after the busy timeout,
``IntegrityError`` for a foreign-key or NOT NULL violation) are deliberately not
wrapped: the writer that owns the transaction needs the original type to decide
between retrying and dropping a batch.
"""

from __future__ import annotations

from pathlib import Path


class GridDbError(Exception):
    """Root of every exception raised by grid_db."""


class ConfigurationError(GridDbError, ValueError):
    """``DatabaseSettings`` holds a value that can never work (e.g. an unknown pragma value)."""


class DatabaseError(GridDbError):
    """The database could not be opened or prepared for use."""


class DatabasePathError(DatabaseError):
    """The SQLite database file (or its directory) cannot be created, opened or written."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot use SQLite database file {str(self.path)!r}: {reason}")


class UnsupportedDialectError(GridDbError, NotImplementedError):
    """The operation has no implementation for this SQL dialect (only sqlite and postgresql)."""

    def __init__(self, dialect_name: str, operation: str) -> None:
        self.dialect_name = dialect_name
        self.operation = operation
        super().__init__(
            f"{operation} is not implemented for dialect {dialect_name!r} "
            "(supported: 'sqlite', 'postgresql')"
        )


class InvalidArgumentError(GridDbError, ValueError):
    """A call argument that can never succeed, e.g. finishing a run with status 'running'."""


class InvalidRowsError(InvalidArgumentError):
    """A write batch whose rows name unknown columns or disagree on their keys.

    SQLAlchemy compiles an executemany statement from the first row's keys and
    silently drops extra keys found only in later rows; refusing such a batch
    keeps a value from vanishing without trace.
    """


class NotFoundError(GridDbError, LookupError):
    """A row the caller referred to does not exist."""


class RunNotFoundError(NotFoundError):
    """No ``runs`` row has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")
