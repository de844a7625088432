"""``python -m recorder_tools.summary PATH_OR_URL``: what a session recorded, in a few lines.

PATH_OR_URL is a session folder, a database file, an ``outputs/`` tree (one summary per
database below it) or a database URL. Every database is opened read-only.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import Engine, func, select

from recorder_tools.database import (
    DATABASE_FILE_NAME,
    ReadOnlyOpenError,
    display_target,
    open_all_read_only,
)
from recorder_tools.schema import GAPS, PUBLIC_TRADES, RUNS, TICKER_SNAPSHOTS


def summarize(target: str | os.PathLike[str]) -> str:
    """A few lines per database of ``target``.

    Raises:
        FileNotFoundError: ``target`` holds no readable recorder database.
        ReadOnlyOpenError: ``target`` is an unusable URL.
    """
    with open_all_read_only(target) as databases:
        if not databases.opened:
            detail = f" ({'; '.join(databases.skipped)})" if databases.skipped else ""
            raise FileNotFoundError(f"no {DATABASE_FILE_NAME} at {display_target(target)}{detail}")
        blocks = [_summarize_one(db.source.location, db.engine) for db in databases]
    return "\n\n".join(blocks)


def _summarize_one(location: str, engine: Engine) -> str:
    lines = [f"database: {location}"]
    runs, trades, tickers, gaps = RUNS.c, PUBLIC_TRADES.c, TICKER_SNAPSHOTS.c, GAPS.c
    with engine.connect() as conn:
        for run in conn.execute(select(RUNS).order_by(runs.started_at_ms)):
            seconds = ((run.ended_at_ms or run.started_at_ms) - run.started_at_ms) / 1000
            lines.append(f"run {run.id} {run.status} {seconds:.1f}s version={run.software_version}")
        trade_rows = conn.execute(
            select(trades.category, trades.symbol, func.count(), trades.source)
            .group_by(trades.category, trades.symbol, trades.source)
            .order_by(trades.symbol)
        ).all()
        for category, symbol, count, source in trade_rows:
            lines.append(f"public_trades {category} {symbol} source={source}: {count} rows")
        ticker_rows = conn.execute(
            select(tickers.symbol, func.count()).group_by(tickers.symbol)
        ).all()
        for symbol, count in ticker_rows:
            lines.append(f"ticker_snapshots {symbol}: {count} rows")
        gap_rows = conn.execute(
            select(gaps.stream, gaps.fill_status, func.count()).group_by(
                gaps.stream, gaps.fill_status
            )
        ).all()
        lines.append(
            "gaps: "
            + (", ".join(f"{st} {fs}={n}" for st, fs, n in gap_rows) if gap_rows else "none")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m recorder_tools.summary SESSION_FOLDER_OR_DB_OR_URL", file=sys.stderr
        )
        return 2
    try:
        print(summarize(args[0]))
    except (FileNotFoundError, ReadOnlyOpenError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
