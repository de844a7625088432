"""What ``recorder-report`` reads from one database: runs, gaps, per-run row counts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, func, inspect, select

from recorder_tools.database import SessionDatabase
from recorder_tools.schema import (
    GAPS,
    ORDERBOOK_UPDATES,
    PUBLIC_TRADES,
    REJECTED_FRAMES,
    RUNS,
    TICKER_SNAPSHOTS,
    GapRow,
    RunRow,
    run_column,
)
from recorder_tools.trade_activity import Instrument

#: (run_id, category, symbol) -> (rows, first and last received_ts_ms)
RowsPerRun = dict[tuple[str | None, str, str], tuple[int, int, int]]
#: (run_id, category, symbol, depth, kind) -> (rows, first and last exchange_ts_ms)
BookRowsPerRun = dict[tuple[str | None, str, str, int, str], tuple[int, int, int]]


@dataclass(slots=True)
class DatabaseContents:
    """What the report is built from, for one database."""

    source: SessionDatabase
    runs: list[RunRow]
    trades: RowsPerRun
    tickers: RowsPerRun
    #: (category, symbol) -> (first, last trade time)
    trade_span: dict[Instrument, tuple[int, int]]
    gaps: list[GapRow]
    rejected: dict[str | None, int]
    #: empty when no book was recorded, or the layout predates books
    books: BookRowsPerRun


def read_contents(source: SessionDatabase, engine: Engine) -> DatabaseContents:
    """Everything the report needs from one database, in a few aggregate queries."""
    trades = PUBLIC_TRADES.c
    with engine.connect() as conn:
        runs = list(conn.execute(select(RUNS).order_by(RUNS.c.started_at_ms)))
        gaps = list(conn.execute(select(GAPS).order_by(GAPS.c.start_ts_ms, GAPS.c.id)))
        trade_span = {
            (category, symbol): (int(first), int(last))
            for category, symbol, first, last in conn.execute(
                select(
                    trades.category,
                    trades.symbol,
                    func.min(trades.trade_time_ms),
                    func.max(trades.trade_time_ms),
                ).group_by(trades.category, trades.symbol)
            )
        }
        rejected = {
            run_id: int(count)
            for run_id, count in conn.execute(
                select(REJECTED_FRAMES.c.run_id, func.count()).group_by(REJECTED_FRAMES.c.run_id)
            )
        }
        return DatabaseContents(
            source,
            runs,
            _rows_per_run(conn, PUBLIC_TRADES),
            _rows_per_run(conn, TICKER_SNAPSHOTS),
            trade_span,
            gaps,
            rejected,
            _book_rows(conn),
        )


def _rows_per_run(conn: Connection, table: Table) -> RowsPerRun:
    c = table.c
    run_of = run_column(conn, table)
    query = select(
        run_of.column,
        c.category,
        c.symbol,
        func.count(),
        func.min(c.received_ts_ms),
        func.max(c.received_ts_ms),
    ).group_by(run_of.column, c.category, c.symbol)
    return {
        (run_of.run_id(run), category, symbol): (int(count), int(first), int(last))
        for run, category, symbol, count, first, last in conn.execute(query)
    }


def _book_rows(conn: Connection) -> BookRowsPerRun:
    """Per run and book, the updates stored of each kind; exchange times, as book gaps are."""
    if not inspect(conn).has_table(ORDERBOOK_UPDATES.name):
        return {}  # a layout older than order books
    c = ORDERBOOK_UPDATES.c
    run_of = run_column(conn, ORDERBOOK_UPDATES)
    book = (c.category, c.symbol, c.depth, c.kind)
    query = select(
        run_of.column, *book, func.count(), func.min(c.exchange_ts_ms), func.max(c.exchange_ts_ms)
    ).group_by(run_of.column, *book)
    return {
        (run_of.run_id(run), category, symbol, int(depth), str(kind)): (
            int(count),
            int(first),
            int(last),
        )
        for run, category, symbol, depth, kind, count, first, last in conn.execute(query)
    }
