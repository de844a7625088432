"""The tools on a PostgreSQL database holding a recorded session: the same answers as on SQLite.

One session is recorded once for the module from the in-process simulator (with an outage, so
it has refilled gap rows) into SQLite, together with the simulator's ground truth. Each test
copies every row into a fresh PostgreSQL database through grid_db's metadata, names it by a
plain ``postgresql://`` URL carrying a password (the trust-auth test server ignores it), and
compares what a tool says about it with what the same tool says about the SQLite file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pytest
from sqlalchemy import create_engine, delete, inspect, make_url, select, text
from sqlalchemy.exc import DBAPIError

from bybit_sim import BybitSimulator, SimulatorConfig
from grid_db import Base
from recorder_tools.check import TruthTrade, check_completeness, load_truth, symbols_in_db
from recorder_tools.database import (
    BUSY_TIMEOUT_S,
    STATEMENT_TIMEOUT_S,
    find_session_database,
    open_read_only,
)
from recorder_tools.export import export
from recorder_tools.report import build_report
from recorder_tools.schema import GAPS, PUBLIC_TRADES
from testkit import script

pytestmark = pytest.mark.postgresql

SECRET = "not-needed-but-secret"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@dataclasses.dataclass(frozen=True)
class Recorded:
    folder: Path
    truth_file: Path
    truth: list[TruthTrade]

    @property
    def db(self) -> Path:
        return self.folder / "recorder.db"


async def _record(
    folder: Path, record_with_an_outage: Callable[[BybitSimulator, Path], Awaitable[None]]
) -> list[TruthTrade]:
    """Record from the simulator, with an outage in the middle; the simulator's truth."""
    sim = BybitSimulator(SimulatorConfig(host="127.0.0.1", port=0, trade_rate=40.0, seed=11))
    await sim.start()
    try:
        await record_with_an_outage(sim, folder)
        return await asyncio.to_thread(load_truth, sim.rest_url, symbols=SYMBOLS)
    finally:
        await sim.stop()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, record_with_an_outage: Any) -> Recorded:
    folder = tmp_path_factory.mktemp("session")
    truth = asyncio.run(_record(folder, record_with_an_outage))
    truth_file = folder.parent / "truth.jsonl"
    truth_file.write_text("".join(json.dumps(dataclasses.asdict(t)) + "\n" for t in truth))
    return Recorded(folder, truth_file, truth)


@pytest.fixture
def pg_target(postgres_url: str, recorded: Recorded) -> str:
    """The recorded session copied into ``postgres_url``; its plain ``postgresql://`` URL."""
    source = create_engine(f"sqlite:///{recorded.db}")
    target = create_engine(postgres_url)
    try:
        Base.metadata.create_all(target)
        present = set(inspect(source).get_table_names())
        with source.connect() as src, target.begin() as dst:
            for table in Base.metadata.sorted_tables:
                if table.name not in present:
                    continue
                rows = [dict(row._mapping) for row in src.execute(select(table))]
                if rows:
                    dst.execute(table.insert(), rows)
            assert dst.scalar(select(PUBLIC_TRADES.c.trade_id).limit(1)) is not None
            assert dst.scalar(select(GAPS.c.id).limit(1)) is not None
    finally:
        source.dispose()
        target.dispose()
    url = make_url(postgres_url).set(drivername="postgresql", password=SECRET)
    return url.render_as_string(hide_password=False)


def without(item: Any, *keys: str) -> Any:
    """``item`` (dicts and lists of them) without ``keys`` at any depth."""
    if isinstance(item, dict):
        return {k: without(v, *keys) for k, v in item.items() if k not in keys}
    if isinstance(item, list):
        return [without(v, *keys) for v in item]
    return item


def test_postgresql_connections_are_read_only_and_bounded(pg_target: str) -> None:
    engine = open_read_only(find_session_database(pg_target))
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW default_transaction_read_only")) == "on"
            settings: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT name, setting FROM pg_settings "
                        "WHERE name IN ('statement_timeout', 'lock_timeout')"
                    )
                ).all()
            )
            assert settings == {
                "statement_timeout": str(STATEMENT_TIMEOUT_S * 1000),
                "lock_timeout": str(int(BUSY_TIMEOUT_S * 1000)),
            }
            with pytest.raises(DBAPIError, match="read-only transaction"):
                conn.execute(delete(PUBLIC_TRADES))
    finally:
        engine.dispose()


def test_report_on_postgresql_says_what_it_says_on_sqlite(
    pg_target: str, recorded: Recorded
) -> None:
    done = run_tool(script("recorder-report"), pg_target, "--json")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    on_pg = json.loads(done.stdout)
    on_sqlite = json.loads(build_report(recorded.folder).to_json())
    assert on_pg["path"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert on_pg["databases"] == [on_pg["path"].replace("postgresql:", "postgresql+psycopg:")]
    assert on_pg["skipped"] == []
    assert on_pg["instruments"] == on_sqlite["instruments"]
    assert {i["symbol"] for i in on_pg["instruments"]} == set(SYMBOLS)
    assert on_pg["coverage"] == on_sqlite["coverage"]
    assert on_pg["days"] == on_sqlite["days"]
    assert without(on_pg["holes"], "folder") == without(on_sqlite["holes"], "folder")
    assert any(h["stream"] == "publicTrade" for h in on_pg["holes"])
    assert without(on_pg["connection_events"], "folder") == without(
        on_sqlite["connection_events"], "folder"
    )
    assert without(on_pg["sessions"], "folder", "database") == without(
        on_sqlite["sessions"], "folder", "database"
    )
    assert on_pg["live"] == []  # a server database has no session folder, so no health.json
    tables = run_tool(script("recorder-report"), pg_target)
    assert tables.returncode == 0, tables.stderr
    assert "Trades and tickers per instrument" in tables.stdout
    assert SECRET not in tables.stdout


def test_export_of_postgresql_holds_the_same_rows_as_of_sqlite(
    pg_target: str, recorded: Recorded, tmp_path: Path
) -> None:
    done = run_tool(script("recorder-export"), pg_target, "--out", str(tmp_path / "pg"))
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    from_sqlite = export(recorded.folder, tmp_path / "sqlite")
    from_pg = json.loads((tmp_path / "pg" / "manifest.json").read_text())
    assert SECRET not in json.dumps(from_pg)
    assert from_pg["tables"] == from_sqlite["tables"]
    assert from_pg["tables"]["public_trades"]["rows"] > 0
    assert from_pg["tables"]["gaps"]["rows"] > 0
    for table, partitioning in (
        ("public_trades", "hive"),
        ("ticker_snapshots", "hive"),
        ("gaps", None),
        ("runs", None),
    ):
        pg_rows = ds.dataset(tmp_path / "pg" / table, partitioning=partitioning).to_table()
        sqlite_rows = ds.dataset(tmp_path / "sqlite" / table, partitioning=partitioning)
        assert pg_rows.schema == sqlite_rows.schema
        pg_list = sorted(without(pg_rows.to_pylist(), "session"), key=str)
        sqlite_list = sorted(without(sqlite_rows.to_table().to_pylist(), "session"), key=str)
        assert pg_list == sqlite_list, table
        assert {r["session"] for r in pg_rows.to_pylist()} == {from_pg["sessions"][0]["session"]}


def test_check_of_postgresql_agrees_with_sqlite_and_catches_a_lost_trade(
    pg_target: str, recorded: Recorded, postgres_url: str
) -> None:
    done = run_tool(
        script("recorder-check"), pg_target, "--truth", str(recorded.truth_file), "--json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    on_pg = json.loads(done.stdout)
    on_sqlite = check_completeness(recorded.db, recorded.truth).to_dict()
    assert on_pg["ok"] is True
    assert without(on_pg, "database") == without(on_sqlite, "database")
    assert [s["symbol"] for s in on_pg["symbols"]] == SYMBOLS
    assert all(s["present"] == s["expected"] > 0 for s in on_pg["symbols"])
    # with a simulator as the truth, the symbols to ask for come from the database
    assert symbols_in_db(pg_target) == symbols_in_db(recorded.db) == SYMBOLS
    # negative control: one trade lost from the middle of the PostgreSQL copy is caught
    eth = sorted((t for t in recorded.truth if t.symbol == "ETHUSDT"), key=lambda t: t.time_ms)
    victim = eth[len(eth) // 2]
    writer = create_engine(postgres_url)
    try:
        with writer.begin() as conn:
            conn.execute(delete(PUBLIC_TRADES).where(PUBLIC_TRADES.c.trade_id == victim.trade_id))
    finally:
        writer.dispose()
    report = check_completeness(pg_target, recorded.truth)
    assert [(m.trade_id, m.time_ms) for m in report.symbol("ETHUSDT").violations] == [
        (victim.trade_id, victim.time_ms)
    ]
    assert SECRET not in report.database
    failed = run_tool(script("recorder-check"), pg_target, "--truth", str(recorded.truth_file))
    assert failed.returncode == 1
    assert f"trade_id={victim.trade_id}" in failed.stdout
