"""Coverage arithmetic, and exact export of awkward exchange decimals, on hand-made databases."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from recorder_tools import intervals
from recorder_tools.export import export
from recorder_tools.report import build_report
from recorder_tools.schema import PUBLIC_TRADES, RUNS, TICKER_SNAPSHOTS
from testkit import by_run_ref, recorder_sqlite

DAY = intervals.DAY_MS
T0 = 1_795_478_400_000  # 2026-11-24 00:00 UTC


def test_interval_arithmetic() -> None:
    assert intervals.union([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]
    assert intervals.subtract([(0, 10)], [(2, 3), (5, 6)]) == [(0, 2), (3, 5), (6, 10)]
    assert intervals.subtract([(0, 10)], [(-5, 20)]) == []
    assert intervals.holes([(0, 2), (5, 6), (1, 3)]) == [(3, 5)]
    assert intervals.covered_ms_per_day([(DAY - 10, DAY + 30)]) == {0: 10, DAY: 30}


def make_db(folder: Path, started_ms: int, trades: list[tuple[str, int, str, str]]) -> None:
    """A completed session's database: grid_db's schema, rows written by column name."""
    engine = recorder_sqlite(folder / "recorder.db")
    try:
        run_id = str(uuid.uuid4())
        with engine.begin() as conn:
            conn.execute(
                RUNS.insert(),
                {
                    "id": run_id,
                    "status": "completed",
                    "started_at_ms": started_ms,
                    "ended_at_ms": started_ms + 60_000,
                    "config_json": json.dumps({"category": "linear", "symbols": ["BTCUSDT"]}),
                    "host": "elsewhere",
                    "pid": 1,
                    "software_version": "test",
                },
            )
            conn.execute(
                PUBLIC_TRADES.insert(),
                by_run_ref(
                    conn,
                    [
                        {
                            "category": "linear",
                            "symbol": "BTCUSDT",
                            "trade_id": trade_id,
                            "trade_time_ms": time_ms,
                            "side": "Buy",
                            "price": price,
                            "size": size,
                            "is_block_trade": False,
                            "exchange_ts_ms": time_ms,
                            "received_ts_ms": time_ms + 1,
                            "source": "ws",
                            "run_id": run_id,
                        }
                        for trade_id, time_ms, price, size in trades
                    ],
                ),
            )
            conn.execute(
                TICKER_SNAPSHOTS.insert(),
                *by_run_ref(
                    conn,
                    [
                        {
                            "category": "linear",
                            "symbol": "BTCUSDT",
                            "exchange_ts_ms": started_ms,
                            "received_ts_ms": started_ms,
                            "frame_type": "snapshot",
                            "last_price": "28560.50",
                            "funding_rate": "",
                            "data": "{}",
                            "run_id": run_id,
                        }
                    ],
                ),
            )
    finally:
        engine.dispose()


def test_awkward_decimals_round_trip_exactly_and_repeats_are_dropped(tmp_path: Path) -> None:
    first = [("a", T0 + 1_000, "28560.50", "0.001"), ("b", T0 + DAY + 5, "1e-8", "1E+3")]
    second = [("b", T0 + DAY + 5, "1e-8", "1E+3"), ("c", T0 + DAY + 9, "123456789.123456789", "5")]
    make_db(tmp_path / "in" / "one", T0, first)
    make_db(tmp_path / "in" / "two", T0 + DAY, second)
    manifest = export(tmp_path / "in", tmp_path / "out")

    trades = manifest["tables"]["public_trades"]
    assert (trades["rows"], trades["duplicates_dropped"]) == (3, 1)
    assert trades["decimal_columns"] == {
        "price_decimal": "decimal128(21, 9)",
        "size_decimal": "decimal128(15, 3)",
    }
    files = sorted((tmp_path / "out" / "public_trades").rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["date=2026-11-24", "date=2026-11-25"]
    assert len({str(pq.read_schema(f)) for f in files}) == 1  # one schema for the dataset
    rows = ds.dataset(tmp_path / "out" / "public_trades", partitioning="hive").to_table()
    by_id = {r["trade_id"]: r for r in rows.to_pylist()}
    assert set(by_id) == {"a", "b", "c"}
    for trade_id, _, price, size in first + second:
        row = by_id[trade_id]
        assert (row["price"], row["size"]) == (price, size)
        assert row["price_decimal"] == Decimal(price)
        assert row["size_decimal"] == Decimal(size)
    assert by_id["b"]["session"] == "one"  # the earliest session's copy is kept

    tickers = ds.dataset(tmp_path / "out" / "ticker_snapshots", partitioning="hive").to_table()
    assert tickers.num_rows == 2  # snapshots are observations: every one is kept
    for ticker in tickers.to_pylist():
        assert (ticker["funding_rate"], ticker["funding_rate_decimal"]) == ("", None)
        assert ticker["last_price_decimal"] == Decimal("28560.50")
    assert manifest["tables"]["ticker_snapshots"]["non_numeric_values"] == {"funding_rate": 2}


def test_report_of_hand_made_sessions_counts_a_repeated_trade_once(tmp_path: Path) -> None:
    make_db(tmp_path / "one", T0, [("a", T0 + 1_000, "1", "1"), ("b", T0 + 2_000, "1", "1")])
    make_db(
        tmp_path / "two", T0 + 1_500, [("b", T0 + 2_000, "1", "1"), ("c", T0 + 2_500, "1", "1")]
    )
    report = build_report(tmp_path, now_ms=T0 + 10_000)
    (btc,) = report.instruments
    assert (btc.trades, btc.repeated_trade_rows) == (3, 1)
    assert btc.peak_trades_per_minute == 3
    assert [s.status for s in report.sessions] == ["completed", "completed"]
