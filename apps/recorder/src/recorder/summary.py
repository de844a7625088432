"""``python -m recorder.summary FOLDER_OR_DB``: what a session recorded, in a few lines."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select

from grid_db import DatabaseFactory, DatabaseSettings, Gap, PublicTrade, Run, TickerSnapshot


def summarize(path: Path) -> str:
    db_file = path / "recorder.db" if path.is_dir() else path
    if not db_file.exists():
        raise FileNotFoundError(f"no recorder.db at {path}")
    db = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{db_file}"))
    lines = [f"database: {db_file}"]
    try:
        with db.session() as s:
            for run in s.scalars(select(Run).order_by(Run.started_at_ms)):
                seconds = ((run.ended_at_ms or run.started_at_ms) - run.started_at_ms) / 1000
                lines.append(
                    f"run {run.id} {run.status} {seconds:.1f}s version={run.software_version}"
                )
            trades = s.execute(
                select(PublicTrade.category, PublicTrade.symbol, func.count(), PublicTrade.source)
                .group_by(PublicTrade.category, PublicTrade.symbol, PublicTrade.source)
                .order_by(PublicTrade.symbol)
            ).all()
            for category, symbol, count, source in trades:
                lines.append(f"public_trades {category} {symbol} source={source}: {count} rows")
            tickers = s.execute(
                select(TickerSnapshot.symbol, func.count()).group_by(TickerSnapshot.symbol)
            ).all()
            for symbol, count in tickers:
                lines.append(f"ticker_snapshots {symbol}: {count} rows")
            gaps = s.execute(
                select(Gap.stream, Gap.fill_status, func.count()).group_by(
                    Gap.stream, Gap.fill_status
                )
            ).all()
            lines.append(
                "gaps: " + (", ".join(f"{st} {fs}={n}" for st, fs, n in gaps) if gaps else "none")
            )
    finally:
        db.dispose()
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m recorder.summary SESSION_FOLDER_OR_DB", file=sys.stderr)
        return 2
    try:
        print(summarize(Path(sys.argv[1])))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
