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
R = TypeVar("R", bound=Record)

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


def _private(
    record: type[R], name: str, time_column: str, *more: tuple[str, ...]
) -> RecordTable[R]:
    """A private table, read by account and time, by symbol and time (where its record has
    a symbol), by the ``more`` columns, and by run."""
    indexes: list[tuple[str, ...]] = [("account_id", time_column)]
    if "symbol" in record.__struct_fields__:
        indexes.append(("category", "symbol", time_column))
    indexes += [*more, ("run_id",)]
    return RecordTable(record, name, _metadata, context=_PRIVATE, indexes=indexes)


private_executions = _private(Execution, "private_executions", "exec_time_ms", ("order_id",))
orders = _private(Order, "orders", "updated_time_ms")
position_snapshots = _private(Position, "position_snapshots", "received_ts_ms")
wallet_snapshots = _private(Wallet, "wallet_snapshots", "received_ts_ms")
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


def table_of(record: type[R]) -> RecordTable[R]:
    """The table that stores ``record``."""
    return cast(RecordTable[R], _BY_RECORD[record])
