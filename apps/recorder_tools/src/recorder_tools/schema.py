"""The recorded tables the tools read, and the stored values they compare with.

The tables are grid_db's; the tools query them with SQLAlchemy Core and read rows by column
name (``row.start_ts_ms``). The stored values are the enums' values (``bybit_records``,
``grid_db.RunStatus``): a stored string equals its enum member.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Table

from bybit_records import FillStatus, Topic
from grid_db import Base, RunStatus


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


RUNS = _table("runs")
PUBLIC_TRADES = _table("public_trades")
TICKER_SNAPSHOTS = _table("ticker_snapshots")
GAPS = _table("gaps")
REJECTED_FRAMES = _table("rejected_frames")
PRIVATE_EXECUTIONS = _table("private_executions")
ORDERS = _table("orders")
POSITION_SNAPSHOTS = _table("position_snapshots")
WALLET_SNAPSHOTS = _table("wallet_snapshots")
USERS = _table("users")
BYBIT_ACCOUNTS = _table("bybit_accounts")
STRATEGIES = _table("strategies")

#: a row of ``runs`` / ``gaps`` (every column, read by name)
RunRow = Row[Any]
GapRow = Row[Any]

#: ``runs.status`` of a session still recording (or that died without closing its run)
RUN_RUNNING = RunStatus.RUNNING
#: ``gaps.stream`` values the tools tell apart
STREAM_PUBLIC_TRADE = Topic.PUBLIC_TRADE
STREAM_TICKERS = Topic.TICKERS
#: ``gaps.fill_status``: REST recovered every row / rows in [start, recovered_from] may be
#: missing / nothing could be recovered
FILL_FILLED = FillStatus.FILLED
FILL_PARTIAL = FillStatus.PARTIAL
FILL_UNFILLABLE = FillStatus.UNFILLABLE
