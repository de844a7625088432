"""Which record is stored in which table, with the indexes its readers need.

The columns come from the records (``bybit_records``); see ``record_table``. Every
data table also holds the run that recorded a row (trades and tickers: its number in
``run_refs``); private tables hold the account.
Trades are clustered by their natural key, which starts with the trade's time.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from bybit_records import (
    BookUpdate,
    Execution,
    Gap,
    Order,
    Position,
    Record,
    RejectedFrame,
    Ticker,
    Trade,
    Wallet,
)
from grid_db.models import Base
from grid_db.record_table import ContextColumn, RecordTable

_PUBLIC = (ContextColumn.RUN,)
#: the big tables: the run's number, not its id (see ``models.RunRef``)
_MARKET = (ContextColumn.RUN_REF,)
_PRIVATE = (ContextColumn.ACCOUNT, ContextColumn.RUN)
_metadata = Base.metadata

# The two big tables carry no index on their run: the tools read a run's rows by time
# and symbol, or all at once, and the index would cost ~10-40 bytes per row.
public_trades = RecordTable(Trade, "public_trades", _metadata, context=_MARKET, clustered=True)
ticker_snapshots = RecordTable(
    Ticker,
    "ticker_snapshots",
    _metadata,
    context=_MARKET,
    indexes=[("category", "symbol", "exchange_ts_ms")],
)
# Order books as Bybit sent them (snapshots, deltas) plus the recorder's checkpoints,
# clustered like trades: a book's updates are one contiguous, time-ordered range.
orderbook_updates = RecordTable(
    BookUpdate, "orderbook_updates", _metadata, context=_MARKET, clustered=True
)
private_executions = RecordTable(
    Execution,
    "private_executions",
    _metadata,
    context=_PRIVATE,
    indexes=[
        ("account_id", "exec_time_ms"),
        ("category", "symbol", "exec_time_ms"),
        ("order_id",),
        ("run_id",),
    ],
)
orders = RecordTable(
    Order,
    "orders",
    _metadata,
    context=_PRIVATE,
    indexes=[
        ("account_id", "updated_time_ms"),
        ("category", "symbol", "updated_time_ms"),
        ("run_id",),
    ],
)
position_snapshots = RecordTable(
    Position,
    "position_snapshots",
    _metadata,
    context=_PRIVATE,
    indexes=[
        ("account_id", "received_ts_ms"),
        ("category", "symbol", "received_ts_ms"),
        ("run_id",),
    ],
)
wallet_snapshots = RecordTable(
    Wallet,
    "wallet_snapshots",
    _metadata,
    context=_PRIVATE,
    indexes=[("account_id", "received_ts_ms"), ("run_id",)],
)
gaps = RecordTable(
    Gap,
    "gaps",
    _metadata,
    context=_PUBLIC,
    indexes=[("run_id",), ("stream", "category", "symbol", "start_ts_ms")],
)
rejected_frames = RecordTable(
    RejectedFrame,
    "rejected_frames",
    _metadata,
    context=_PUBLIC,
    indexes=[("run_id",), ("stream", "received_ts_ms")],
)

RECORD_TABLES: tuple[RecordTable[Any], ...] = (
    public_trades,
    ticker_snapshots,
    orderbook_updates,
    private_executions,
    orders,
    position_snapshots,
    wallet_snapshots,
    gaps,
    rejected_frames,
)
_BY_RECORD: dict[type[Record], RecordTable[Any]] = {t.record: t for t in RECORD_TABLES}
R = TypeVar("R", bound=Record)


def table_of(record: type[R]) -> RecordTable[R]:
    """The table that stores ``record``."""
    return cast(RecordTable[R], _BY_RECORD[record])
