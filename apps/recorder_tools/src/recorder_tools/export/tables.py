"""Which tables are exported, and how: natural key, partitioning, decimal columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, String, Table

from grid_db.record_table import UUID_STRING_LENGTH
from recorder_tools.keys import BOOK_KEY, EXECUTION_KEY, ID_KEY, ORDER_STATE_KEY, TRADE_KEY
from recorder_tools.schema import (
    BYBIT_ACCOUNTS,
    GAPS,
    ORDERBOOK_UPDATES,
    ORDERS,
    POSITION_SNAPSHOTS,
    PRIVATE_EXECUTIONS,
    PUBLIC_TRADES,
    REJECTED_FRAMES,
    RUNS,
    STRATEGIES,
    TICKER_SNAPSHOTS,
    USERS,
    WALLET_SNAPSHOTS,
    run_column,
)


@dataclass(frozen=True, slots=True)
class TableExport:
    """How one table is exported."""

    table: Table
    #: natural key for removing rows stored by more than one session; None keeps every row
    key: tuple[str, ...] | None = None
    by_symbol: bool = False
    #: the ``*_ms`` column that picks the day partition; None: one file
    day_column: str | None = None
    decimals: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def columns(self) -> list[Column[Any]]:
        """The columns exported, in order: the table's, the run's number (``run_ref``)
        given as the run's id (``run_id``), as in every release's databases."""
        return [RUN_ID if c.name == "run_ref" else c for c in self.table.columns]

    def selected(self, conn: Connection) -> list[ColumnElement[Any]]:
        """What to SELECT for ``columns`` from the database of ``conn``."""
        if "run_ref" not in self.table.c:
            return list(self.table.columns)
        run_id = run_column(conn, self.table).id_column.label("run_id")
        return [run_id if c.name == "run_ref" else c for c in self.table.columns]


#: the run of a trade or ticker row, as exported
RUN_ID = Column("run_id", String(UUID_STRING_LENGTH))


TABLES = (
    TableExport(
        PUBLIC_TRADES,
        key=TRADE_KEY,
        by_symbol=True,
        day_column="trade_time_ms",
        decimals=("price", "size"),
    ),
    TableExport(
        TICKER_SNAPSHOTS,
        by_symbol=True,
        day_column="exchange_ts_ms",
        decimals=(
            "last_price",
            "mark_price",
            "index_price",
            "bid1_price",
            "bid1_size",
            "ask1_price",
            "ask1_size",
            "open_interest",
            "open_interest_value",
            "funding_rate",
            "volume_24h",
            "turnover_24h",
            "high_price_24h",
            "low_price_24h",
            "prev_price_24h",
            "price_24h_pcnt",
        ),
    ),
    # Levels stay JSON text ([[price, size], ...], exact strings); ``grid_db.books``
    # rebuilds books from these rows.
    TableExport(
        ORDERBOOK_UPDATES,
        key=BOOK_KEY,
        by_symbol=True,
        day_column="exchange_ts_ms",
    ),
    TableExport(
        PRIVATE_EXECUTIONS,
        key=EXECUTION_KEY,
        by_symbol=True,
        day_column="exec_time_ms",
        decimals=(
            "exec_price",
            "exec_qty",
            "exec_value",
            "exec_fee",
            "fee_rate",
            "closed_size",
            "exec_pnl",
        ),
    ),
    TableExport(
        ORDERS,
        key=ORDER_STATE_KEY,
        by_symbol=True,
        day_column="updated_time_ms",
        decimals=(
            "price",
            "qty",
            "avg_price",
            "leaves_qty",
            "cum_exec_qty",
            "cum_exec_value",
            "cum_exec_fee",
        ),
    ),
    TableExport(
        POSITION_SNAPSHOTS,
        by_symbol=True,
        day_column="received_ts_ms",
        decimals=(
            "size",
            "entry_price",
            "mark_price",
            "position_value",
            "unrealised_pnl",
            "cum_realised_pnl",
            "leverage",
            "liq_price",
        ),
    ),
    TableExport(
        WALLET_SNAPSHOTS,
        day_column="received_ts_ms",
        decimals=(
            "total_equity",
            "total_wallet_balance",
            "total_available_balance",
            "total_margin_balance",
        ),
    ),
    TableExport(GAPS),
    TableExport(REJECTED_FRAMES),
    TableExport(RUNS, key=ID_KEY),
    TableExport(USERS, key=ID_KEY),
    TableExport(BYBIT_ACCOUNTS, key=ID_KEY),
    TableExport(STRATEGIES, key=ID_KEY),
)


@dataclass(slots=True)
class TableResult:
    """What one table's export came to (a table of ``manifest.json``)."""

    rows: int = 0
    duplicates_dropped: int = 0
    files: int = 0
    partitioning: list[str] = field(default_factory=list)
    #: decimal column -> arrow type, e.g. "decimal128(12, 2)"
    decimal_columns: dict[str, str] = field(default_factory=dict)
    #: string columns whose values did not all fit a decimal column, with the reason
    not_decimal: dict[str, str] = field(default_factory=dict)
    #: string values that are no decimal number (null in the decimal column), per column
    non_numeric_values: dict[str, int] = field(default_factory=dict)
