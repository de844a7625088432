"""The schema's bookkeeping tables: who recorded, and each recording session (``runs``).

The data tables are built from the records in ``grid_db.tables``. Conventions that make
the schema usable as a product surface (see docs/schema.md):

* Every timestamp is an integer count of milliseconds since the Unix epoch, UTC,
  in a column whose name ends in ``_ms`` (BigInteger on every dialect).
* Every price, quantity, rate or amount is stored as the exact decimal string the
  exchange sent (``"28560.50"`` stays ``"28560.50"``); nothing is parsed to float.
* Exchange-controlled enumerations (side, order status, ...) are stored as sent and
  not CHECK-constrained, so a value Bybit adds later cannot make a row unstorable.
  Values this project defines (run status, data source, gap fill status, ticker
  frame type) are CHECK-constrained.
* JSON payloads are ``Text`` holding the JSON document, which keeps them byte-stable
  and portable (``json_extract`` on SQLite, ``::jsonb`` on PostgreSQL).
* Nothing here is SQLite-only: the DDL compiles for PostgreSQL unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

from grid_db.record_table import UUID_STRING_LENGTH

# Stable constraint and index names, so a migration can refer to them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class RunStatus(StrEnum):
    """``runs.status``."""

    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    ABORTED = "aborted"


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` holds every grid_db table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _uuid_pk() -> MappedColumn[Any]:
    return mapped_column(String(UUID_STRING_LENGTH), primary_key=True)


def _ms(*, nullable: bool) -> MappedColumn[Any]:
    return mapped_column(BigInteger, nullable=nullable)


# --- reference data -------------------------------------------------------------


class User(Base):
    """A person or team owning accounts and strategies."""

    __tablename__ = "users"

    id: Mapped[str] = _uuid_pk()
    name: Mapped[str] = mapped_column(String, nullable=False)
    created_at_ms: Mapped[int] = _ms(nullable=False)


class BybitAccount(Base):
    """A Bybit (sub)account whose private streams are recorded.

    There is intentionally no column for an API key or secret: credentials live in
    the caller's secret store, never in a database users query freely.
    """

    __tablename__ = "bybit_accounts"

    id: Mapped[str] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(
        String(UUID_STRING_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    label: Mapped[str] = mapped_column(String, nullable=False)
    testnet: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at_ms: Mapped[int] = _ms(nullable=False)


class Strategy(Base):
    """A trading strategy whose runs are recorded."""

    __tablename__ = "strategies"

    id: Mapped[str] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(
        String(UUID_STRING_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- recording sessions -----------------------------------------------------------


class Run(Base):
    """One recording session (one recorder process from start to stop)."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({', '.join(repr(s.value) for s in RunStatus)})", name="status"
        ),
        Index("ix_runs_started_at_ms", "started_at_ms"),
        Index("ix_runs_status", "status"),
    )

    id: Mapped[str] = _uuid_pk()
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at_ms: Mapped[int] = _ms(nullable=False)
    ended_at_ms: Mapped[int | None] = _ms(nullable=True)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    host: Mapped[str] = mapped_column(String, nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    software_version: Mapped[str] = mapped_column(String, nullable=False)
    git_commit: Mapped[str | None] = mapped_column(String, nullable=True)
    output_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    account_id: Mapped[str | None] = mapped_column(
        String(UUID_STRING_LENGTH),
        ForeignKey("bybit_accounts.id", ondelete="SET NULL"),
        nullable=True,
    )
    strategy_id: Mapped[str | None] = mapped_column(
        String(UUID_STRING_LENGTH), ForeignKey("strategies.id", ondelete="SET NULL"), nullable=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RunRef(Base):
    """A run's small number, which the big data tables store instead of its 36-character
    id (``run_ref``): 4 bytes a row instead of 37. One per run, made with the run."""

    __tablename__ = "run_refs"

    ref: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(UUID_STRING_LENGTH),
        ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    )
