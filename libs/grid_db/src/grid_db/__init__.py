"""grid_db: SQLAlchemy 2 storage for recorded Bybit V5 market and account data.

Pure storage: no websocket or exchange client code. Each data table is built from a
record of ``bybit_records`` (``grid_db.tables``) and written through one path
(``grid_db.writes.write_records``). Works on SQLite (tuned for multi-day unattended
recording) and PostgreSQL. The schema is documented for users in docs/schema.md.
"""

from grid_db import tables
from grid_db.errors import (
    ConfigurationError,
    DatabaseError,
    DatabasePathError,
    GridDbError,
    InvalidArgumentError,
    NotFoundError,
    RunNotFoundError,
    UnsupportedDialectError,
)
from grid_db.factory import DatabaseFactory, normalize_database_url
from grid_db.migrations import MIGRATIONS, Migration, add_columns, prepare_schema
from grid_db.models import Base, BybitAccount, Run, RunRef, RunStatus, Strategy, User
from grid_db.record_table import RecordTable, RowContext
from grid_db.repositories import ReferenceDataRepository, RunRepository, now_ms
from grid_db.settings import DatabaseSettings
from grid_db.tables import RECORD_TABLES, table_of
from grid_db.writes import write_records, write_rows

__all__ = [
    "MIGRATIONS",
    "RECORD_TABLES",
    "Base",
    "BybitAccount",
    "ConfigurationError",
    "DatabaseError",
    "DatabaseFactory",
    "DatabasePathError",
    "DatabaseSettings",
    "GridDbError",
    "InvalidArgumentError",
    "Migration",
    "NotFoundError",
    "RecordTable",
    "ReferenceDataRepository",
    "RowContext",
    "Run",
    "RunNotFoundError",
    "RunRef",
    "RunRepository",
    "RunStatus",
    "Strategy",
    "UnsupportedDialectError",
    "User",
    "add_columns",
    "normalize_database_url",
    "now_ms",
    "prepare_schema",
    "table_of",
    "tables",
    "write_records",
    "write_rows",
]
