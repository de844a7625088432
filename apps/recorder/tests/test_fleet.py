"""A fleet: recorders on three hosts record into one PostgreSQL on a fourth, from a fifth.

Real separate hosts on one machine (``testing/netns.py``): one network namespace per host,
each joined by a veth pair to a bridge in the root namespace, on a private /24::

    root  .1  the test: admin SQL, recorder-check and recorder-report on the database URL
    sim   .2  bybit-sim --host <its address>
    pg    .3  PostgreSQL (testing/pg_cluster.py) listening on its address only; the fleet's
              role logs in with a password (scram-sha-256), the recorders read it from
              $RECORDER_DB_PASSWORD
    r1    .4  recorder symbols=btc_eth            host name r1 (unshare --uts)
    r2    .5  recorder symbols=btc_eth            host name r2: r1's redundant twin
    r3    .6  recorder symbols=[SOLUSDT,XRPUSDT]  host name r3: another shard

With every recorder recording, the simulator's REST window shrinks to 20 trades (at 25 trades
per second and symbol: under a second) and r1's link is cut at the bridge until the simulator
printed far more than that: a real network fault (r1 loses the exchange and the database at
once). When the link is back, r1 refills what REST still holds: its gaps end ``partial``. r2
recorded everything meanwhile, so the union of the fleet misses nothing: ``recorder-check``
on the database URL finds every trade exactly once, and ``recorder-report`` lists the three
hosts' sessions and health, shows r1's partial gaps covered by r2, and no hole for any symbol.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from netns import Host, Lab, unavailable_reason
from pg_cluster import DEBIAN_BINDIRS, SERVER_PROGRAMS, PostgresCluster, find_postgres_binaries
from psycopg import sql

from recorder_tools.report.findings import NO_HOLES_IN_UNION
from testkit import SimProcess, script, wait_sync

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]

REDUNDANT = ["BTCUSDT", "ETHUSDT"]
SHARD = ["SOLUSDT", "XRPUSDT"]
RECORDERS = {"r1": "symbols=btc_eth", "r2": "symbols=btc_eth", "r3": "symbols=[SOLUSDT,XRPUSDT]"}
TRADE_RATE = 25  # per symbol and second
REST_WINDOW = 20  # trades REST's recent-trade endpoint returns while r1 is cut off
#: how many trades per symbol the simulator prints while r1 is cut off: many REST windows
CUT_TRADES = 6 * REST_WINDOW
FLEET_ROLE = "fleet"


@dataclass
class Fleet:
    lab: Lab
    sim: SimProcess
    cluster: PostgresCluster
    database: str
    password: str
    outputs: Path
    hosts: dict[str, Host]
    recorders: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    admin: psycopg.Connection[tuple[Any, ...]] | None = None

    def url(self, *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        host = self.hosts["pg"].ip
        return f"postgresql://{FLEET_ROLE}{secret}@{host}:{self.cluster.port}/{self.database}"

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """Rows of ``statement``; none while the first recorder has not made the tables."""
        assert self.admin is not None
        try:
            return list(self.admin.execute(statement.encode()).fetchall())
        except psycopg.errors.UndefinedTable:
            return []

    def per_host(self, statement: str) -> dict[str, int]:
        """``statement`` selects (host, count): as a dict, every recorder host present."""
        counts = {host: 0 for host in RECORDERS}
        counts.update({str(h): int(n) for h, n in self.query(statement)})
        return counts

    def log(self, name: str) -> str:
        path = self.outputs / name / "recorder.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _skip_reason() -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return f"the fleet test needs separate hosts: {reason}"
    if find_postgres_binaries() is None:
        where = "$PG_BINDIR" if os.environ.get("PG_BINDIR", "").strip() else "PATH"
        return (
            f"the fleet test needs PostgreSQL server binaries ({'/'.join(SERVER_PROGRAMS)} "
            f"in {where} or {DEBIAN_BINDIRS}); none found"
        )
    return None


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    binaries = find_postgres_binaries()
    assert binaries is not None
    with contextlib.ExitStack() as cleanup:
        lab = Lab().start()
        cleanup.callback(lab.close)  # last: every process left in a namespace, the links
        hosts = {name: lab.add_host(name) for name in ("sim", "pg", *RECORDERS)}
        cluster = PostgresCluster(
            binaries,
            host=hosts["pg"].ip,
            netns=hosts["pg"].netns,
            hba=(
                f"host all postgres {lab.gateway}/32 trust",  # the test's admin connection
                f"host all {FLEET_ROLE} {lab.subnet} scram-sha-256",
            ),
        )
        cleanup.callback(cluster.stop)
        cluster.start()
        database = cluster.create_database()
        password = secrets.token_hex(12)
        admin = psycopg.connect(
            host=cluster.host,
            port=cluster.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )
        cleanup.callback(admin.close)
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(FLEET_ROLE), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(FLEET_ROLE)
            )
        )
        admin.close()
        sim = SimProcess(
            "--host",
            hosts["sim"].ip,
            "--trade-rate",
            str(TRADE_RATE),
            "--seed",
            "13",
            prefix=lab.command(hosts["sim"], []),
        )
        cleanup.callback(sim.stop)
        fleet = Fleet(lab, sim, cluster, database, password, tmp_path / "outputs", hosts)
        fleet.admin = psycopg.connect(
            host=cluster.host, port=cluster.port, user="postgres", dbname=database, autocommit=True
        )
        cleanup.callback(fleet.admin.close)
        cleanup.callback(_kill_recorders, fleet)
        yield fleet


def _kill_recorders(fleet: Fleet) -> None:
    """A failed test must not leave a recorder running (lab.close() would end it too); a
    link the test cut comes back first, so that the connections close."""
    fleet.lab.restore_all()
    for proc in fleet.recorders.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _start_recorder(fleet: Fleet, name: str, log_file: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "RECORDER_DB_PASSWORD": fleet.password}
    database_url = fleet.url(password=False).replace(
        f"{FLEET_ROLE}@", f"{FLEET_ROLE}:${{oc.env:RECORDER_DB_PASSWORD}}@"
    )
    argv = [
        script("recorder"),
        RECORDERS[name],
        *fleet.sim.recording_overrides(),
        f"database_url={database_url}",
        f"hydra.run.dir={fleet.outputs / name}",
    ]
    return fleet.lab.popen(fleet.hosts[name], argv, hostname=name, env=env, stdout=log_file)


def _run_tool(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
    )


def _truth_count(sim: SimProcess, symbol: str) -> int:
    return len(sim.truth_trades(symbol))


TICKERS_PER_HOST = (
    "SELECT r.host, count(*) FROM ticker_snapshots t JOIN run_refs rr ON rr.ref = t.run_ref "
    "JOIN runs r ON r.id = rr.run_id GROUP BY r.host"
)
TRADES_PER_SYMBOL = "SELECT symbol, count(*) FROM public_trades GROUP BY symbol"
R1_TRADE_GAPS = (
    "SELECT g.symbol, g.fill_status, g.cause, g.start_ts_ms, g.end_ts_ms, "
    "g.recovered_from_ts_ms, g.rows_recovered FROM gaps g JOIN runs r ON r.id = g.run_id "
    "WHERE r.host = 'r1' AND g.stream = 'publicTrade' ORDER BY g.id"
)


def test_a_fleet_of_hosts_records_once_and_the_union_has_no_hole(
    fleet: Fleet, tmp_path: Path
) -> None:
    figures: dict[str, Any] = {}
    began = time.monotonic()
    r1 = fleet.hosts["r1"]

    # ---- three recorders on three hosts, one database --------------------------------
    logs = {name: (tmp_path / f"{name}.out").open("w") for name in RECORDERS}
    try:
        for name in RECORDERS:
            fleet.recorders[name] = _start_recorder(fleet, name, logs[name])
        wait_sync(
            lambda: min(fleet.per_host(TICKERS_PER_HOST).values()) > 20,
            60,
            "every recorder host writing rows",
        )
        wait_sync(
            lambda: all(
                dict(fleet.query(TRADES_PER_SYMBOL)).get(s, 0) > 20 for s in REDUNDANT + SHARD
            ),
            30,
            "trades of every symbol",
        )
        figures["startup_s"] = round(time.monotonic() - began, 1)

        # ---- r1's link cut for far longer than REST's window ---------------------------
        fleet.sim.post("/sim/faults/recent_trade_limit", {"n": REST_WINDOW})
        printed = {s: _truth_count(fleet.sim, s) for s in REDUNDANT}
        cut_at = time.monotonic()
        fleet.lab.cut(r1)
        wait_sync(
            lambda: re.search(r"connection lost", fleet.log("r1")) is not None,
            15,
            "r1 noticing its lost link",
        )
        wait_sync(
            lambda: all(_truth_count(fleet.sim, s) > printed[s] + CUT_TRADES for s in REDUNDANT),
            30,
            f"{CUT_TRADES} trades per symbol printed while r1 is cut off",
        )
        figures["cut_s"] = round(time.monotonic() - cut_at, 1)
        figures["trades_printed_during_cut"] = {
            s: _truth_count(fleet.sim, s) - printed[s] for s in REDUNDANT
        }
        fleet.lab.restore(r1)
        restored_at = time.monotonic()
        wait_sync(
            lambda: {row[0] for row in fleet.query(R1_TRADE_GAPS)} == set(REDUNDANT),
            60,
            "r1's trade gaps in the database after its link came back",
        )
        figures["r1_gaps_written_after_s"] = round(time.monotonic() - restored_at, 1)
        fleet.sim.post("/sim/faults/recent_trade_limit", {"n": None})
        r1_gaps = [g for g in fleet.query(R1_TRADE_GAPS) if g[1] != "filled"]
        # REST held 20 trades of each symbol: r1 could not refill its gaps
        assert sorted((g[0], g[1]) for g in r1_gaps) == [(s, "partial") for s in REDUNDANT], r1_gaps
        for _symbol, _status, _cause, start, end, recovered_from, rows in r1_gaps:
            assert recovered_from is not None
            assert start < recovered_from <= end
            assert rows <= REST_WINDOW
        figures["r1_gaps"] = [
            {
                "symbol": g[0],
                "fill": g[1],
                "cause": g[2],
                "window_ms": g[4] - g[3],
                "unrecovered_ms": g[5] - g[3],
                "rows_recovered": g[6],
            }
            for g in r1_gaps
        ]
        # r1 records again
        r1_rows = fleet.per_host(TICKERS_PER_HOST)["r1"]
        wait_sync(
            lambda: fleet.per_host(TICKERS_PER_HOST)["r1"] > r1_rows + 20, 30, "r1 recording again"
        )

        # ---- every recorder stopped by SIGINT ------------------------------------------
        stop_at = time.monotonic()
        for proc in fleet.recorders.values():
            os.kill(proc.pid, signal.SIGINT)
        for name, proc in fleet.recorders.items():
            try:
                code = proc.wait(40)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"recorder {name} did not stop within 40s") from None
            assert code == 0, f"{name} exited {code}: {fleet.log(name)[-2000:]}"
        figures["stop_s"] = round(time.monotonic() - stop_at, 1)
    finally:
        for handle in logs.values():
            handle.close()

    runs = fleet.query("SELECT host, status, pid FROM runs ORDER BY host")
    assert [(h, s) for h, s, _ in runs] == [
        ("r1", "completed"),
        ("r2", "completed"),
        ("r3", "completed"),
    ]
    symbols = dict(fleet.query(TRADES_PER_SYMBOL))
    figures["trades_stored"] = symbols
    figures["rows_per_host"] = fleet.per_host(
        "SELECT r.host, count(*) FROM public_trades t JOIN run_refs rr ON rr.ref = t.run_ref "
        "JOIN runs r ON r.id = rr.run_id GROUP BY r.host"
    )

    # ---- recorder-check: the union holds every trade exactly once --------------------
    tools_at = time.monotonic()
    checked = _run_tool(
        script("recorder-check"),
        fleet.url(password=False),
        "--truth",
        fleet.sim.rest_url,
        "--json",
        env={"PGPASSWORD": fleet.password},  # libpq's own variable: no password on the line
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr
    check = json.loads(checked.stdout)
    totals = check["totals"]
    assert (totals["violations"], totals["duplicates"], totals["mismatches"]) == (0, 0, 0)
    assert totals["missing_excused"] == 0  # nothing is missing at all: r2 had it
    by_symbol = {s["symbol"]: s for s in check["symbols"]}
    assert set(by_symbol) == set(REDUNDANT + SHARD)
    for symbol, result in by_symbol.items():
        assert result["present"] == result["expected"] == symbols[symbol] > 0, symbol
    for symbol in REDUNDANT:
        # inside r1's unrecovered windows, stored by r2: the union at work
        assert by_symbol[symbol]["covered_by_other_runs"] > 0, by_symbol[symbol]
    figures["check"] = {
        s: (r["expected"], r["present"], r["covered_by_other_runs"]) for s, r in by_symbol.items()
    }
    text_check = _run_tool(script("recorder-check"), fleet.url(), "--truth", fleet.sim.rest_url)
    assert text_check.returncode == 0, text_check.stdout[-3000:]

    # ---- recorder-report: the fleet's sessions, per-host health, coverage ------------
    done = _run_tool(script("recorder-report"), fleet.url(), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    sessions = {s["host"]: s for s in report["sessions"]}
    assert set(sessions) == {"r1", "r2", "r3"}
    for name, session in sessions.items():
        assert session["status"] == "completed"
        assert session["folder"] == f"{name}/{name}"  # host/folder name of hydra.run.dir
        assert session["network_host"] == f"{fleet.hosts['sim'].ip}:{fleet.sim.port}"
    assert sessions["r3"]["symbols"] == SHARD
    assert sessions["r1"]["symbols"] == sessions["r2"]["symbols"] == REDUNDANT

    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {"r1", "r2", "r3"}
    for host in hosts.values():
        assert (host["sessions"], host["running"], host["state"]) == (1, 0, "ended"), host
        assert host["statuses"] == {"completed": 1}
        assert host["last_row_ms"] is not None
        assert host["missing_trade_gaps"] == 0, host
    assert hosts["r1"]["reconnects"] >= 1
    assert hosts["r1"]["unfilled_trade_gaps"] == hosts["r1"]["covered_trade_gaps"] >= 2
    assert hosts["r3"]["symbols"] == SHARD

    r1_holes = [
        h
        for h in report["holes"]
        if h["kind"] == "gap" and h["host"] == "r1" and h["fill_status"] == "partial"
    ]
    assert {h["symbol"] for h in r1_holes} == set(REDUNDANT)
    for hole in r1_holes:
        assert hole["missing_from_ms"] < hole["missing_until_ms"]  # r1's own truth, as written
        assert hole["covered"] is True
        assert hole["uncovered"] == []
        assert hole["covered_by_hosts"] == ["r2"]
    # r1 lost its tickers too (never refillable), r2 recorded them
    ticker_holes = [h for h in report["holes"] if h["stream"] == "tickers" and h["host"] == "r1"]
    assert ticker_holes
    assert all(h["covered_by_hosts"] == ["r2"] and h["covered"] for h in ticker_holes)
    assert not [h for h in report["holes"] if h["kind"] == "between sessions"]
    assert not [
        h
        for h in report["holes"]
        if h["stream"] == "publicTrade" and h["missing_from_ms"] is not None and not h["covered"]
    ]
    coverage: dict[str, list[dict[str, Any]]] = {}
    for interval in report["coverage"]:
        coverage.setdefault(interval["symbol"], []).append(interval)
    assert set(coverage) == set(REDUNDANT + SHARD)
    for symbol, pieces in coverage.items():
        assert len(pieces) == 1, (symbol, pieces)  # one continuous stretch: no hole
        expected_hosts = ["r1", "r2"] if symbol in REDUNDANT else ["r3"]
        assert pieces[0]["hosts"] == expected_hosts
    findings = report["findings"]
    assert findings[0].startswith("3 recorder hosts: r1 (1 session(s), ended)")
    assert any("were recorded by another session" in line for line in findings), findings
    # r1's own account of its run stays, with what the union makes of it
    assert any(
        line.startswith("r1/r1: completed, but 2 gap(s) REST could not fill")
        and line.endswith("(every one of them was recorded by r2)")
        for line in findings
    ), findings
    assert not any(line.startswith("trades may be missing") for line in findings), findings
    assert findings[-1] == NO_HOLES_IN_UNION

    text = _run_tool(script("recorder-report"), fleet.url())
    assert text.returncode == 0, text.stderr
    for title in ("Sessions", "Recorder hosts (from the database", "Coverage", "Holes"):
        assert title in text.stdout
    assert "covered by r2" in text.stdout
    figures["tools_s"] = round(time.monotonic() - tools_at, 1)
    figures["total_s"] = round(time.monotonic() - began, 1)

    # ---- the database password is nowhere ---------------------------------------------
    outputs = [checked, text_check, done, text]
    for result in outputs:
        assert fleet.password not in result.stdout + result.stderr
    written = [p for p in fleet.outputs.rglob("*") if p.is_file()]
    written += [tmp_path / f"{name}.out" for name in RECORDERS]
    for path in written:
        assert fleet.password not in path.read_text(errors="replace"), path
    config = " ".join(str(row[0]) for row in fleet.query("SELECT config_json FROM runs"))
    assert fleet.password not in config

    print("\nfleet figures: " + json.dumps(figures))
    print(text.stdout)
