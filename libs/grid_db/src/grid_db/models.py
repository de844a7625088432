"""Declarative schema of the recorder database.

Conventions that make the schema usable as a product surface (see docs/schema.md):

* Every timestamp is an integer count of milliseconds since the Unix epoch, UTC,
  in a column whose name ends in ``_ms`` (BigInteger on every dialect).
* Every price, quantity, rate or amount is stored as the exact decimal string the
  exchange sent (``"28560.50"`` stays ``"28560.50"``); nothing is parsed to float.
* Exchange-controlled enumerations (side, order status, ...) are stored as sent and
  not CHECK-constrained, so a value Bybit adds later cannot make a row unstorable.
  Values this project defines (run status, data source, gap fill status, ticker
  frame type) are CHECK-constrained.
* JSON payloads are ``Text`` holding the JSON document as received/serialised by the
  caller, which keeps them byte-stable and portable (``json_extract`` on SQLite,
  ``::jsonb`` on PostgreSQL).
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
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

# Stable constraint and index names, so a later migration tool can refer to them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Surrogate key of the data tables: BIGINT on PostgreSQL (billions of trades over a
#: long recording), but plain INTEGER on SQLite, where only ``INTEGER PRIMARY KEY``
#: becomes the rowid alias that autoincrements.
AutoincrementId = BigInteger().with_variant(Integer(), "sqlite")

#: Length of a hyphenated UUID string, the form of every reference-table key.
UUID_STRING_LENGTH = 36


class RunStatus(StrEnum):
    """``runs.status``."""

    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    ABORTED = "aborted"


class DataSource(StrEnum):
    """``source`` of a recorded row: live websocket or REST reconciliation after a gap."""

    WS = "ws"
    REST = "rest"


class FrameType(StrEnum):
    """``ticker_snapshots.frame_type``: which websocket frame produced the merged state."""

    SNAPSHOT = "snapshot"
    DELTA = "delta"


class FillStatus(StrEnum):
    """``gaps.fill_status``: how much of the outage window REST reconciliation recovered."""

    FILLED = "filled"
    PARTIAL = "partial"
    UNFILLABLE = "unfillable"


def _in_check(column: str, values: type[StrEnum], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


def _source_check() -> CheckConstraint:
    return _in_check("source", DataSource, "source")


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` holds every grid_db table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Column factories for columns repeated across tables. Each call builds a new
# column object, as SQLAlchemy requires one per table.


def _uuid_pk() -> MappedColumn[Any]:
    return mapped_column(String(UUID_STRING_LENGTH), primary_key=True)


def _autoincrement_pk() -> MappedColumn[Any]:
    return mapped_column(AutoincrementId, primary_key=True, autoincrement=True)


def _run_fk() -> MappedColumn[Any]:
    # SET NULL: recorded data outlives the bookkeeping row of the session that recorded it.
    return mapped_column(
        String(UUID_STRING_LENGTH), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )


def _account_fk() -> MappedColumn[Any]:
    # RESTRICT: private data without its account is meaningless, and deleting an
    # account must not silently delete what was recorded for it.
    return mapped_column(
        String(UUID_STRING_LENGTH),
        ForeignKey("bybit_accounts.id", ondelete="RESTRICT"),
        nullable=False,
    )


def _ms(*, nullable: bool) -> MappedColumn[Any]:
    return mapped_column(BigInteger, nullable=nullable)


def _text(*, nullable: bool = True) -> MappedColumn[Any]:
    """A string column for exchange-sent values, exact as sent; unbounded on purpose."""
    return mapped_column(String, nullable=nullable)


def _source() -> MappedColumn[Any]:
    return mapped_column(String(8), nullable=False)


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
        _in_check("status", RunStatus, "status"),
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


# --- public market data -------------------------------------------------------------


class PublicTrade(Base):
    """One public trade (Bybit ``publicTrade`` stream item or REST recent-trade row)."""

    __tablename__ = "public_trades"
    __table_args__ = (
        UniqueConstraint("category", "symbol", "trade_id"),
        Index(
            "ix_public_trades_category_symbol_trade_time_ms", "category", "symbol", "trade_time_ms"
        ),
        Index("ix_public_trades_run_id", "run_id"),
        _source_check(),
    )

    id: Mapped[int] = _autoincrement_pk()
    category: Mapped[str] = _text(nullable=False)
    symbol: Mapped[str] = _text(nullable=False)
    trade_id: Mapped[str] = _text(nullable=False)
    trade_time_ms: Mapped[int] = _ms(nullable=False)
    side: Mapped[str] = _text(nullable=False)
    price: Mapped[str] = _text(nullable=False)
    size: Mapped[str] = _text(nullable=False)
    tick_direction: Mapped[str | None] = _text()
    is_block_trade: Mapped[bool] = mapped_column(Boolean, nullable=False)
    is_rpi: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exchange_ts_ms: Mapped[int | None] = _ms(nullable=True)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    source: Mapped[str] = _source()
    run_id: Mapped[str | None] = _run_fk()


class TickerSnapshot(Base):
    """The complete merged ticker state after one websocket frame."""

    __tablename__ = "ticker_snapshots"
    __table_args__ = (
        _in_check("frame_type", FrameType, "frame_type"),
        Index(
            "ix_ticker_snapshots_category_symbol_exchange_ts_ms",
            "category",
            "symbol",
            "exchange_ts_ms",
        ),
        Index("ix_ticker_snapshots_run_id", "run_id"),
    )

    id: Mapped[int] = _autoincrement_pk()
    category: Mapped[str] = _text(nullable=False)
    symbol: Mapped[str] = _text(nullable=False)
    exchange_ts_ms: Mapped[int] = _ms(nullable=False)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    cross_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frame_type: Mapped[str] = mapped_column(String(8), nullable=False)
    last_price: Mapped[str | None] = _text()
    mark_price: Mapped[str | None] = _text()
    index_price: Mapped[str | None] = _text()
    bid1_price: Mapped[str | None] = _text()
    bid1_size: Mapped[str | None] = _text()
    ask1_price: Mapped[str | None] = _text()
    ask1_size: Mapped[str | None] = _text()
    open_interest: Mapped[str | None] = _text()
    open_interest_value: Mapped[str | None] = _text()
    funding_rate: Mapped[str | None] = _text()
    next_funding_time: Mapped[str | None] = _text()
    volume_24h: Mapped[str | None] = _text()
    turnover_24h: Mapped[str | None] = _text()
    high_price_24h: Mapped[str | None] = _text()
    low_price_24h: Mapped[str | None] = _text()
    prev_price_24h: Mapped[str | None] = _text()
    price_24h_pcnt: Mapped[str | None] = _text()
    data: Mapped[str] = mapped_column(Text, nullable=False)
    run_id: Mapped[str | None] = _run_fk()


# --- private account streams --------------------------------------------------------


class PrivateExecution(Base):
    """One fill of one of the account's orders (Bybit ``execution`` stream item)."""

    __tablename__ = "private_executions"
    __table_args__ = (
        UniqueConstraint("exec_id"),
        Index("ix_private_executions_account_id_exec_time_ms", "account_id", "exec_time_ms"),
        Index(
            "ix_private_executions_category_symbol_exec_time_ms",
            "category",
            "symbol",
            "exec_time_ms",
        ),
        Index("ix_private_executions_order_id", "order_id"),
        Index("ix_private_executions_run_id", "run_id"),
        _source_check(),
    )

    id: Mapped[int] = _autoincrement_pk()
    account_id: Mapped[str] = _account_fk()
    run_id: Mapped[str | None] = _run_fk()
    category: Mapped[str] = _text(nullable=False)
    symbol: Mapped[str] = _text(nullable=False)
    exec_id: Mapped[str] = _text(nullable=False)
    order_id: Mapped[str] = _text(nullable=False)
    order_link_id: Mapped[str | None] = _text()
    side: Mapped[str] = _text(nullable=False)
    order_type: Mapped[str | None] = _text()
    exec_type: Mapped[str | None] = _text()
    exec_price: Mapped[str] = _text(nullable=False)
    exec_qty: Mapped[str] = _text(nullable=False)
    exec_value: Mapped[str | None] = _text()
    exec_fee: Mapped[str | None] = _text()
    fee_rate: Mapped[str | None] = _text()
    closed_size: Mapped[str | None] = _text()
    exec_pnl: Mapped[str | None] = _text()
    is_maker: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    exec_time_ms: Mapped[int] = _ms(nullable=False)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    raw: Mapped[str] = mapped_column(Text, nullable=False)
    exchange_ts_ms: Mapped[int | None] = _ms(nullable=True)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    source: Mapped[str] = _source()


class Order(Base):
    """One state of one of the account's orders (Bybit ``order`` stream item)."""

    __tablename__ = "orders"
    __table_args__ = (
        # One row per distinct order state; a REST re-read of the same state is a duplicate.
        UniqueConstraint("order_id", "updated_time_ms", "order_status"),
        Index("ix_orders_account_id_updated_time_ms", "account_id", "updated_time_ms"),
        Index("ix_orders_category_symbol_updated_time_ms", "category", "symbol", "updated_time_ms"),
        Index("ix_orders_run_id", "run_id"),
        _source_check(),
    )

    id: Mapped[int] = _autoincrement_pk()
    account_id: Mapped[str] = _account_fk()
    run_id: Mapped[str | None] = _run_fk()
    category: Mapped[str] = _text(nullable=False)
    symbol: Mapped[str] = _text(nullable=False)
    order_id: Mapped[str] = _text(nullable=False)
    order_link_id: Mapped[str | None] = _text()
    side: Mapped[str | None] = _text()
    order_type: Mapped[str | None] = _text()
    price: Mapped[str | None] = _text()
    qty: Mapped[str | None] = _text()
    order_status: Mapped[str] = _text(nullable=False)
    avg_price: Mapped[str | None] = _text()
    leaves_qty: Mapped[str | None] = _text()
    cum_exec_qty: Mapped[str | None] = _text()
    cum_exec_value: Mapped[str | None] = _text()
    cum_exec_fee: Mapped[str | None] = _text()
    time_in_force: Mapped[str | None] = _text()
    reduce_only: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_time_ms: Mapped[int | None] = _ms(nullable=True)
    # NOT NULL because it is part of the natural key: NULLs never collide in a
    # UNIQUE constraint, so a nullable key column would let duplicates in.
    updated_time_ms: Mapped[int] = _ms(nullable=False)
    raw: Mapped[str] = mapped_column(Text, nullable=False)
    exchange_ts_ms: Mapped[int | None] = _ms(nullable=True)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    source: Mapped[str] = _source()


class PositionSnapshot(Base):
    """One state of one of the account's positions (Bybit ``position`` stream item)."""

    __tablename__ = "position_snapshots"
    __table_args__ = (
        Index("ix_position_snapshots_account_id_received_ts_ms", "account_id", "received_ts_ms"),
        Index(
            "ix_position_snapshots_category_symbol_received_ts_ms",
            "category",
            "symbol",
            "received_ts_ms",
        ),
        Index("ix_position_snapshots_run_id", "run_id"),
        _source_check(),
    )

    id: Mapped[int] = _autoincrement_pk()
    account_id: Mapped[str] = _account_fk()
    run_id: Mapped[str | None] = _run_fk()
    category: Mapped[str] = _text(nullable=False)
    symbol: Mapped[str] = _text(nullable=False)
    side: Mapped[str | None] = _text()
    size: Mapped[str | None] = _text()
    position_idx: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry_price: Mapped[str | None] = _text()
    mark_price: Mapped[str | None] = _text()
    position_value: Mapped[str | None] = _text()
    unrealised_pnl: Mapped[str | None] = _text()
    cum_realised_pnl: Mapped[str | None] = _text()
    leverage: Mapped[str | None] = _text()
    liq_price: Mapped[str | None] = _text()
    updated_time_ms: Mapped[int | None] = _ms(nullable=True)
    raw: Mapped[str] = mapped_column(Text, nullable=False)
    exchange_ts_ms: Mapped[int | None] = _ms(nullable=True)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    source: Mapped[str] = _source()


class WalletSnapshot(Base):
    """One state of the account's wallet (Bybit ``wallet`` stream item)."""

    __tablename__ = "wallet_snapshots"
    __table_args__ = (
        Index("ix_wallet_snapshots_account_id_received_ts_ms", "account_id", "received_ts_ms"),
        Index("ix_wallet_snapshots_run_id", "run_id"),
        _source_check(),
    )

    id: Mapped[int] = _autoincrement_pk()
    account_id: Mapped[str] = _account_fk()
    run_id: Mapped[str | None] = _run_fk()
    account_type: Mapped[str | None] = _text()
    total_equity: Mapped[str | None] = _text()
    total_wallet_balance: Mapped[str | None] = _text()
    total_available_balance: Mapped[str | None] = _text()
    total_margin_balance: Mapped[str | None] = _text()
    coins: Mapped[str] = mapped_column(Text, nullable=False)
    raw: Mapped[str] = mapped_column(Text, nullable=False)
    exchange_ts_ms: Mapped[int | None] = _ms(nullable=True)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    source: Mapped[str] = _source()


# --- data quality ---------------------------------------------------------------------


class Gap(Base):
    """A window in which a stream was not (fully) recorded, and what reconciliation did."""

    __tablename__ = "gaps"
    __table_args__ = (
        _in_check("fill_status", FillStatus, "fill_status"),
        Index("ix_gaps_run_id", "run_id"),
        Index(
            "ix_gaps_stream_category_symbol_start_ts_ms",
            "stream",
            "category",
            "symbol",
            "start_ts_ms",
        ),
    )

    id: Mapped[int] = _autoincrement_pk()
    run_id: Mapped[str | None] = _run_fk()
    stream: Mapped[str] = mapped_column(String, nullable=False)
    category: Mapped[str | None] = _text()
    symbol: Mapped[str | None] = _text()
    start_ts_ms: Mapped[int] = _ms(nullable=False)
    end_ts_ms: Mapped[int] = _ms(nullable=False)
    cause: Mapped[str] = mapped_column(String, nullable=False)
    fill_status: Mapped[str] = mapped_column(String(16), nullable=False)
    rows_recovered: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    recovered_from_ts_ms: Mapped[int | None] = _ms(nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    detected_at_ms: Mapped[int] = _ms(nullable=False)
    resolved_at_ms: Mapped[int | None] = _ms(nullable=True)


class RejectedFrame(Base):
    """A websocket frame that could not be parsed or stored, kept for diagnosis."""

    __tablename__ = "rejected_frames"
    __table_args__ = (
        Index("ix_rejected_frames_run_id", "run_id"),
        Index("ix_rejected_frames_stream_received_ts_ms", "stream", "received_ts_ms"),
    )

    id: Mapped[int] = _autoincrement_pk()
    run_id: Mapped[str | None] = _run_fk()
    stream: Mapped[str] = mapped_column(String, nullable=False)
    received_ts_ms: Mapped[int] = _ms(nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
