"""A session recorded by the first release (its table layout) opens in every tool.

The first release stored trades under a surrogate id with a unique index on
(category, symbol, trade_id), and ticker rows with the whole state in ``data``. The
tools read such a database as it is, read-only: the copy of a session into that layout
must report, export and check exactly as the session itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.dataset as ds
from sqlalchemy import create_engine, inspect, select

from bybit_sim import BybitSimulator
from grid_db import tables
from recorder_tools.check import check_completeness, load_truth
from testkit import create_release_1, script

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def copy_into_release_1(source: Path, target: Path) -> None:
    """Every row of ``source`` in a new database laid out as the first release made it,
    its ticker rows holding the whole state in ``data``, as that release wrote them."""
    engine = create_engine(f"sqlite:///{target}")
    try:
        old = create_release_1(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ATTACH DATABASE '{source}' AS today")
            for table in old.sorted_tables:
                today = {
                    c[1] for c in conn.exec_driver_sql(f"PRAGMA today.table_info({table.name})")
                }
                names = [c.name for c in table.columns if c.name in today]
                values = list(names)
                if "run_ref" in today:  # today's number of the run, that release's run id
                    names.append("run_id")
                    values.append("(SELECT run_id FROM today.run_refs WHERE ref = run_ref)")
                conn.exec_driver_sql(
                    f"INSERT INTO main.{table.name} ({', '.join(names)}) "
                    f"SELECT {', '.join(values)} FROM today.{table.name}"
                )
            tickers = tables.ticker_snapshots
            for row in conn.execute(select(old.tables[tickers.name])).all():
                state = msgspec.json.encode(tickers.record_of(row).state()).decode()
                conn.exec_driver_sql(
                    "UPDATE ticker_snapshots SET data = ? WHERE id = ?", (state, row.id)
                )
    finally:
        engine.dispose()


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def report_of(db: Path) -> dict[str, Any]:
    done = run_tool(script("recorder-report"), str(db), "--json")
    assert done.returncode == 0, done.stderr
    facts: dict[str, Any] = json.loads(done.stdout)
    for part in facts.values():  # where each fact was read differs, nothing else may
        for item in part if isinstance(part, list) else []:
            if isinstance(item, dict):
                item.pop("folder", None)
                item.pop("database", None)
    return facts


def export(db: Path, out: Path) -> Path:
    done = run_tool(script("recorder-export"), str(db), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def exported(out: Path, table: str, key: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ds.dataset(out / table, partitioning="hive").to_table().to_pylist()
    for row in rows:
        del row["session"]  # the session's name: its folder
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))


async def test_a_first_release_session_reports_exports_and_checks_as_today(
    sim: BybitSimulator, tmp_path: Path, record_with_an_outage: Any
) -> None:
    await record_with_an_outage(sim, tmp_path / "today")
    today, old = tmp_path / "today" / "recorder.db", tmp_path / "old.db"
    copy_into_release_1(today, old)
    engine = create_engine(f"sqlite:///{old}")
    try:  # it is the old layout indeed
        assert "id" in {c["name"] for c in inspect(engine).get_columns("public_trades")}
        assert "schema_migrations" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()

    reports = [await asyncio.to_thread(report_of, db) for db in (today, old)]
    for part in ("sessions", "instruments", "coverage", "holes", "days"):
        assert reports[1][part] == reports[0][part], part
    assert sum(i["trades"] for i in reports[0]["instruments"]) > 0

    exports = [await asyncio.to_thread(export, db, tmp_path / db.stem) for db in (today, old)]
    trade_key = ["category", "symbol", "trade_time_ms", "trade_id"]
    for table, key in (("public_trades", trade_key), ("gaps", ["start_ts_ms", "symbol"])):
        copies = [exported(out, table, key) for out in exports]
        assert copies[1] == copies[0], table
        assert copies[0], table

    truth = await asyncio.to_thread(load_truth, sim.rest_url, symbols=SYMBOLS)
    checks = [await asyncio.to_thread(check_completeness, db, truth) for db in (today, old)]
    assert checks[1].ok, checks[1].format_text()
    assert [(s.expected, s.present) for s in checks[1].symbols] == [
        (s.expected, s.present) for s in checks[0].symbols
    ]
