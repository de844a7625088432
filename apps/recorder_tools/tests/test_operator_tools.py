"""`recorder-report` and `recorder-export` on an outputs/ tree made by real recorder sessions.

The tree, recorded once for the module against the real `bybit-sim`:

* ``day1/multirun/0_btc`` and ``1_eth``: ``recorder -m symbols=btc,eth``;
* ``day1/gap``: ``symbols=btc_eth`` at the same time, so BTCUSDT and ETHUSDT are recorded twice;
  the simulator drops every connection midway, so every session has refilled gap rows and the
  concurrent sessions hold the same REST-refilled trades;
* ``day2/after``: ``symbols=btc`` once those ended: the time in between is a hole for BTCUSDT.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pytest

from testkit import (
    SimProcess,
    db_count,
    db_rows,
    finish,
    script,
    start_recorder,
    wait_sync,
)

pytestmark = pytest.mark.e2e

TRADES = "SELECT count(*) FROM public_trades"
PUBLIC_TRADE_GAPS = "SELECT count(*) FROM gaps WHERE stream = 'publicTrade'"


@dataclass(frozen=True)
class Tree:
    root: Path
    multirun_btc: Path
    multirun_eth: Path
    gap: Path
    after: Path

    @property
    def databases(self) -> list[Path]:
        return [
            d / "recorder.db" for d in (self.multirun_btc, self.multirun_eth, self.gap, self.after)
        ]


def _finish(proc: subprocess.Popen[str]) -> None:
    done = finish(proc, timeout=40)
    assert done.returncode == 0, done.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("outputs")
    t = Tree(
        root,
        root / "day1" / "multirun" / "0_btc",
        root / "day1" / "multirun" / "1_eth",
        root / "day1" / "gap",
        root / "day2" / "after",
    )
    with SimProcess("--trade-rate", "20") as sim:
        overrides = sim.recording_overrides()
        multirun = start_recorder(
            "-m",
            "symbols=btc,eth",
            *overrides,
            "duration_seconds=9",
            f"hydra.sweep.dir={root / 'day1' / 'multirun'}",
        )
        gap = start_recorder(
            "symbols=btc_eth",
            *overrides,
            "duration_seconds=9",
            f"hydra.run.dir={t.gap}",
        )
        try:
            first_three = t.databases[:3]
            wait_sync(
                lambda: all(db_count(db, TRADES) > 10 for db in first_three),
                30,
                "three sessions recording",
            )
            health = t.gap / "health.json"
            wait_sync(health.exists, 10, "health.json during the session")
            assert json.loads(health.read_text())["status"] == "running"
            sim.drop_connections(refuse_for=1)
            wait_sync(
                lambda: all(db_count(db, PUBLIC_TRADE_GAPS) > 0 for db in first_three),
                20,
                "the dropped connections recorded as refilled gaps",
            )
        finally:
            _finish(multirun)
            _finish(gap)
        after = start_recorder(
            "symbols=btc",
            *overrides,
            "duration_seconds=2",
            f"hydra.run.dir={t.after}",
        )
        _finish(after)
    return t


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "250"}
    )


@pytest.fixture(scope="module")
def report(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    plot = tmp_path_factory.mktemp("plot") / "week.png"
    done = run_tool(script("recorder-report"), str(tree.root), "--json", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    facts: dict[str, Any] = json.loads(done.stdout)
    facts["_plot"] = str(plot)
    return facts


def distinct_trades(dbs: list[Path], symbol: str) -> set[str]:
    ids: set[str] = set()
    for db in dbs:
        ids |= {
            r[0] for r in db_rows(db, f"SELECT trade_id FROM public_trades WHERE symbol='{symbol}'")
        }
    return ids


def test_sessions_are_listed_with_status_config_and_counts(
    tree: Tree, report: dict[str, Any]
) -> None:
    sessions = {s["folder"]: s for s in report["sessions"]}
    assert set(sessions) == {"day1/multirun/0_btc", "day1/multirun/1_eth", "day1/gap", "day2/after"}
    for folder, s in sessions.items():
        db = tree.root / folder / "recorder.db"
        assert s["status"] == "completed"
        assert s["category"] == "linear"
        assert s["network_host"].startswith("127.0.0.1:")
        assert s["trades"] == db_count(db, TRADES)
        assert s["ticker_rows"] == db_count(db, "SELECT count(*) FROM ticker_snapshots")
        ((started, ended),) = db_rows(db, "SELECT started_at_ms, ended_at_ms FROM runs")
        assert (s["started_at_ms"], s["ended_at_ms"]) == (started, ended)
        health = json.loads((tree.root / folder / "health.json").read_text())
        assert (health["status"], health["run_id"]) == ("completed", s["run_id"])
    assert sessions["day1/gap"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert sessions["day2/after"]["symbols"] == ["BTCUSDT"]


def test_instrument_counts_equal_the_databases_once_per_trade(
    tree: Tree, report: dict[str, Any]
) -> None:
    instruments = {i["symbol"]: i for i in report["instruments"]}
    assert set(instruments) == {"BTCUSDT", "ETHUSDT"}
    for symbol, facts in instruments.items():
        distinct = distinct_trades(tree.databases, symbol)
        rows = sum(
            db_count(db, f"SELECT count(*) FROM public_trades WHERE symbol='{symbol}'")
            for db in tree.databases
        )
        assert facts["trades"] == len(distinct)
        assert facts["repeated_trade_rows"] == rows - len(distinct) > 0  # two sessions at once
        times = [
            db_rows(
                db,
                f"SELECT min(trade_time_ms), max(trade_time_ms) FROM public_trades WHERE symbol='{symbol}'",
            )[0]
            for db in tree.databases
        ]
        assert facts["first_trade_ms"] == min(t[0] for t in times if t[0] is not None)
        assert facts["last_trade_ms"] == max(t[1] for t in times if t[1] is not None)
        assert facts["peak_trades_per_minute"] > 0
        assert facts["avg_trades_per_minute"] > 0


def test_the_induced_gap_is_a_hole_with_its_fill_status(tree: Tree, report: dict[str, Any]) -> None:
    gaps = [h for h in report["holes"] if h["kind"] == "gap"]
    stored = [
        row
        for db in tree.databases
        for row in db_rows(
            db,
            "SELECT stream, symbol, start_ts_ms, end_ts_ms, cause, fill_status, rows_recovered FROM gaps",
        )
    ]
    assert sorted(
        (
            h["stream"],
            h["symbol"],
            h["start_ms"],
            h["end_ms"],
            h["cause"],
            h["fill_status"],
            h["rows_recovered"],
        )
        for h in gaps
    ) == sorted(stored)
    gap_session = [h for h in gaps if h["folder"] == "day1/gap" and h["stream"] == "publicTrade"]
    assert {h["symbol"] for h in gap_session} == {"BTCUSDT", "ETHUSDT"}
    assert {h["cause"] for h in gap_session} == {"disconnect"}
    assert all(h["fill_status"] in ("filled", "partial") for h in gap_session)
    assert sum(h["rows_recovered"] for h in gap_session) > 0
    events = {e["folder"]: e for e in report["connection_events"]}
    assert events["day1/gap"]["reconnects"] >= 1
    assert events["day1/gap"]["disconnects"] >= 1
    assert events["day2/after"]["reconnects"] == 0
    assert events["day1/gap"]["rejected_frames"] == 0


def received_range(db: Path) -> tuple[int, int]:
    """First and last receive time of any trade or ticker row: what the session recorded."""
    ((first, last),) = db_rows(
        db,
        "SELECT min(t), max(t) FROM (SELECT received_ts_ms AS t FROM public_trades "
        "UNION ALL SELECT received_ts_ms FROM ticker_snapshots)",
    )
    return first, last


def test_the_time_between_sessions_is_a_hole(tree: Tree, report: dict[str, Any]) -> None:
    between = [h for h in report["holes"] if h["kind"] == "between sessions"]
    assert [h["symbol"] for h in between] == ["BTCUSDT"]  # ETHUSDT was never recorded again
    last_before = max(
        received_range(tree.root / f / "recorder.db")[1]
        for f in ("day1/multirun/0_btc", "day1/gap")
    )
    first_after = received_range(tree.after / "recorder.db")[0]
    ((after_started,),) = db_rows(tree.after / "recorder.db", "SELECT started_at_ms FROM runs")
    assert last_before < after_started < first_after
    assert (between[0]["start_ms"], between[0]["end_ms"]) == (last_before, first_after)
    assert between[0]["fill_status"] == "missing"
    btc = [c for c in report["coverage"] if c["symbol"] == "BTCUSDT"]
    assert len(btc) >= 2
    assert btc[-1]["start_ms"] == first_after
    days = {(d["symbol"], d["date"]) for d in report["days"]}
    assert {s for s, _ in days} == {"BTCUSDT", "ETHUSDT"}
    assert any("between sessions" in line for line in report["findings"])


def test_plot_is_a_png_of_sensible_size(report: dict[str, Any]) -> None:
    data = Path(report["_plot"]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 600
    assert height >= 400
    assert len(data) > 10_000


def test_report_prints_rich_tables(tree: Tree) -> None:
    done = run_tool(script("recorder-report"), str(tree.root))
    assert done.returncode == 0, done.stderr
    for shown in (
        "Sessions",
        "Trades and tickers per instrument",
        "Coverage",
        "Holes",
        "Reconnects",
        "day1/multirun/0_btc",
        "between sessions",
    ):
        assert shown in done.stdout, shown
    one = run_tool(script("recorder-report"), str(tree.gap / "recorder.db"), "--json")
    assert [s["folder"] for s in json.loads(one.stdout)["sessions"]] == ["gap"]
    missing = run_tool(script("recorder-report"), str(tree.root / "nowhere"))
    assert missing.returncode == 1
    assert "no such file" in missing.stderr


def test_export_round_trips_every_trade_once_with_exact_values(tree: Tree, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = run_tool(script("recorder-export"), str(tree.root), "--out", str(out))
    assert done.returncode == 0, done.stderr
    trades = ds.dataset(out / "public_trades", format="parquet", partitioning="hive").to_table()
    assert str(trades.schema.field("price_decimal").type).startswith("decimal128(")
    assert str(trades.schema.field("trade_time").type) == "timestamp[ms, tz=UTC]"
    rows = trades.to_pylist()
    keys = [(r["category"], r["symbol"], r["trade_id"]) for r in rows]
    assert len(keys) == len(set(keys))
    stored: dict[tuple[str, str, str], tuple[str, str, int]] = {}
    rest_rows_in_both = False
    per_db_ids = []
    for db in tree.databases:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            found = conn.execute(
                "SELECT category, symbol, trade_id, price, size, trade_time_ms, source FROM public_trades"
            ).fetchall()
        per_db_ids.append({(r[0], r[1], r[2]): r[6] for r in found})
        for r in found:
            stored.setdefault((r[0], r[1], r[2]), (r[3], r[4], r[5]))
    for a in per_db_ids:
        for b in per_db_ids:
            if a is not b and any(src == "rest" and key in b for key, src in a.items()):
                rest_rows_in_both = True
    assert rest_rows_in_both, "no REST-refilled trade stored by two sessions"
    assert set(keys) == set(stored)
    for r in rows:
        price, size, time_ms = stored[(r["category"], r["symbol"], r["trade_id"])]
        assert (r["price"], r["size"], r["trade_time_ms"]) == (price, size, time_ms)
        assert r["price_decimal"] == Decimal(price)
        assert r["size_decimal"] == Decimal(size)
        assert int(r["trade_time"].timestamp() * 1000) == time_ms
    partitions = sorted(
        p.relative_to(out / "public_trades").parts[:2]
        for p in (out / "public_trades").rglob("*.parquet")
    )
    assert {p[0] for p in partitions} == {"symbol=BTCUSDT", "symbol=ETHUSDT"}
    assert all(p[1].startswith("date=") for p in partitions)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["public_trades"]["duplicates_dropped"] == sum(
        len(ids) for ids in per_db_ids
    ) - len(stored)
    tickers = ds.dataset(out / "ticker_snapshots", format="parquet", partitioning="hive").to_table()
    assert tickers.num_rows == sum(
        db_count(db, "SELECT count(*) FROM ticker_snapshots") for db in tree.databases
    )
    gaps = ds.dataset(out / "gaps", format="parquet").to_table()
    assert gaps.num_rows == sum(db_count(db, "SELECT count(*) FROM gaps") for db in tree.databases)
    runs = ds.dataset(out / "runs", format="parquet").to_table().to_pylist()
    assert sorted(r["session"] for r in runs) == [
        "day1/gap",
        "day1/multirun/0_btc",
        "day1/multirun/1_eth",
        "day2/after",
    ]
    again = run_tool(script("recorder-export"), str(tree.root), "--out", str(out))
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
