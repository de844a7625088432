"""The recorded tables the tools read, and the stored values they compare with.

The tables are grid_db's; the tools query them with SQLAlchemy Core and read rows by column
name (``row.start_ts_ms``). The stored values are the enums' values (``bybit_records``,
``grid_db.RunStatus``): a stored string equals its enum member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, String, Table, column, false, inspect, select

from bybit_records import FillStatus, Topic
from grid_db import Base, RunStatus

_tables = Base.metadata.tables
RUNS, USERS, BYBIT_ACCOUNTS, STRATEGIES = (
    _tables[name] for name in ("runs", "users", "bybit_accounts", "strategies")
)
PUBLIC_TRADES, TICKER_SNAPSHOTS, GAPS, REJECTED_FRAMES = (
    _tables[name] for name in ("public_trades", "ticker_snapshots", "gaps", "rejected_frames")
)
RUN_REFS = _tables["run_refs"]
ORDERBOOK_UPDATES = _tables["orderbook_updates"]
PRIVATE_EXECUTIONS, ORDERS, POSITION_SNAPSHOTS, WALLET_SNAPSHOTS = (
    _tables[name]
    for name in ("private_executions", "orders", "position_snapshots", "wallet_snapshots")
)

#: a row of ``runs`` / ``gaps`` (every column, read by name)
RunRow = Row[Any]
GapRow = Row[Any]

#: ``runs.status`` of a session still recording (or that died without closing its run)
RUN_RUNNING = RunStatus.RUNNING
#: ``gaps.stream`` values the tools tell apart
STREAM_PUBLIC_TRADE = Topic.PUBLIC_TRADE
STREAM_TICKERS = Topic.TICKERS
STREAM_ORDERBOOK = Topic.ORDERBOOK
#: streams Bybit keeps no history of: their gaps are never refilled (nor counted unfilled)
NEVER_REFILLED = frozenset({STREAM_TICKERS, STREAM_ORDERBOOK})
#: ``gaps.fill_status``: REST recovered every row / rows in [start, recovered_from] may be
#: missing / nothing could be recovered
FILL_FILLED = FillStatus.FILLED
FILL_PARTIAL = FillStatus.PARTIAL
FILL_UNFILLABLE = FillStatus.UNFILLABLE


@dataclass(frozen=True, slots=True)
class RunColumn:
    """How the rows of a table name their run, whichever release wrote them: trades and
    tickers hold the run's number (``run_ref``, mapped to ids through ``run_refs``), the
    first release's and the other tables its id (``run_id``)."""

    column: ColumnElement[Any]
    #: run number -> run id; None when ``column`` holds the ids themselves
    ids: Mapping[Any, str] | None
    #: the run's id, in SQL (a subquery of ``run_refs`` for a run number)
    id_column: ColumnElement[Any]

    def run_id(self, value: Any) -> str | None:
        """The id of the run a value of ``column`` names."""
        if self.ids is None or value is None:
            return None if value is None else str(value)
        return self.ids.get(value)

    def of(self, run_id: str) -> ColumnElement[bool]:
        """A condition: the row was recorded by ``run_id``."""
        if self.ids is None:
            return self.column == run_id
        refs = [ref for ref, id_ in self.ids.items() if id_ == run_id]
        return self.column == refs[0] if refs else false()


def run_column(conn: Connection, table: Table) -> RunColumn:
    """The ``RunColumn`` of ``table`` in the database of ``conn``."""
    stored = {c["name"] for c in inspect(conn).get_columns(table.name)}
    if "run_ref" in stored:
        refs = RUN_REFS.c
        ids = {ref: str(id_) for ref, id_ in conn.execute(select(refs.ref, refs.run_id))}
        run_id = select(refs.run_id).where(refs.ref == table.c.run_ref).scalar_subquery()
        return RunColumn(table.c.run_ref, ids, run_id)
    run = table.c.run_id if "run_id" in table.c else column("run_id", String)
    return RunColumn(run, None, run)
