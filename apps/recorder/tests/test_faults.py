"""Nothing lost: the real recorder process under faults, checked against the simulator's truth.

Every test asserts the completeness invariant: every trade the simulator printed in
the session window is stored exactly once with the right values, or lies inside a
`partial`/`unfillable` gap row.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grid_db.repositories import DEAD_RUN_ERROR
from recorder_tools.check import CompletenessReport, SymbolReport, check_completeness, load_truth
from testkit import (
    SimProcess,
    db_count,
    db_rows,
    finish,
    script,
    sim_account_env,
    start_recorder,
    unused_port,
    wait_sync,
)

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TRADES = "SELECT count(*) FROM public_trades"


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess.with_account() as process:
        yield process


_running: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _kill_leftover_sessions() -> Iterator[None]:
    """A failed test must not leave its recorder running."""
    yield
    while _running:
        proc = _running.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


class Session:
    """One `recorder` process recording into its own folder."""

    def __init__(
        self, sim: SimProcess, run_dir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.sim = sim
        self.run_dir = run_dir
        self.db = run_dir / "recorder.db"
        self.proc = start_recorder(
            "symbols=btc_eth",
            *sim.recording_overrides(),
            *args,
            f"hydra.run.dir={run_dir}",
            env=env,
        )
        _running.append(self.proc)
        self.output = ""

    def trades(self) -> int:
        return db_count(self.db, TRADES)

    def wait_trades(self, more_than: int, timeout: float = 30) -> None:
        wait_sync(lambda: self.trades() > more_than, timeout, f"more than {more_than} trades")

    def wait_more_trades(self, n: int, timeout: float = 30) -> None:
        """Wait for ``n`` more trades than are stored now."""
        self.wait_trades(self.trades() + n, timeout)

    def log(self) -> str:
        path = self.run_dir / "recorder.log"
        return path.read_text() if path.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 30) -> None:
        wait_sync(
            lambda: re.search(pattern, self.log()) is not None, timeout, f"log line {pattern!r}"
        )

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        done = finish(self.proc, timeout)
        self.output = done.stdout
        return done.returncode

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.output, _ = self.proc.communicate(timeout=20)

    def report(self) -> CompletenessReport:
        truth = load_truth(self.sim.rest_url, symbols=SYMBOLS)
        return check_completeness(self.db, truth)

    def gaps(
        self, stream: str = "publicTrade"
    ) -> list[tuple[str, str, str, int, int, int | None, int]]:
        return db_rows(
            self.db,
            "SELECT symbol, fill_status, cause, start_ts_ms, end_ts_ms, recovered_from_ts_ms, rows_recovered "
            f"FROM gaps WHERE stream='{stream}' ORDER BY id",
        )

    def run_status(self) -> list[tuple[str, ...]]:
        return db_rows(self.db, "SELECT status FROM runs ORDER BY started_at_ms")


@pytest.fixture
def session(sim: SimProcess, tmp_path: Path) -> Session:
    """A recorder recording from ``sim`` into ``tmp_path/s``, with trades stored."""
    recording = Session(sim, tmp_path / "s")
    recording.wait_trades(20)
    return recording


def by_symbol(report: CompletenessReport) -> dict[str, SymbolReport]:
    return {s.symbol: s for s in report.symbols}


def assert_invariant(report: CompletenessReport) -> None:
    assert report.ok, report.format_text()


def test_abrupt_drop_with_refused_reconnects_is_filled(sim: SimProcess, session: Session) -> None:
    session.wait_trades(30)
    sim.drop_connections(refuse_for=3)
    session.wait_log(r"gap publicTrade linear ETHUSDT disconnect: filled")
    session.wait_log(r"gap publicTrade linear BTCUSDT disconnect: filled")
    session.wait_more_trades(10)
    assert session.stop() == 0, session.output[-3000:]
    report = session.report()
    assert_invariant(report)
    gaps = session.gaps()
    assert {(g[0], g[1], g[2]) for g in gaps} == {
        ("BTCUSDT", "filled", "disconnect"),
        ("ETHUSDT", "filled", "disconnect"),
    }
    assert all(g[4] - g[3] >= 2500 for g in gaps), gaps  # the window spans the refusal
    assert sum(g[6] for g in gaps) > 0


def test_a_stall_is_replaced_within_the_configured_time(sim: SimProcess, session: Session) -> None:
    stalled_at = time.monotonic()
    sim.post("/sim/faults/stall", {"seconds": 30})
    session.wait_log(r"connection lost \((pong_timeout|stall)", timeout=15)
    detected_after = time.monotonic() - stalled_at
    # ping every 0.5 s + 1 s pong timeout, or 3 s without data: well under 4 s
    assert detected_after < 4.5
    session.wait_log(r"gap publicTrade linear BTCUSDT (pong_timeout|stall): filled")
    session.wait_more_trades(10)
    assert session.stop() == 0
    assert_invariant(session.report())
    assert {g[1] for g in session.gaps()} == {"filled"}


def test_a_reconnect_storm_is_paced_and_loses_nothing(sim: SimProcess, tmp_path: Path) -> None:
    session = Session(sim, tmp_path / "s", "connection.max_connects_per_5min=60")
    session.wait_trades(20)
    before = sim.get("/sim/stats")["ws_connections_accepted"]
    started = time.monotonic()
    while time.monotonic() - started < 8:
        sim.drop_connections()
        time.sleep(0.2)
    accepted = sim.get("/sim/stats")["ws_connections_accepted"] - before
    elapsed = time.monotonic() - started
    # a burst of 10, then 60 per 5 minutes: far below Bybit's 500 per 5 minutes
    assert accepted <= 10 + elapsed * 60 / 300 + 1, accepted
    wait_sync(lambda: "reconnecting in" in session.log(), 5, "backoff")
    session.wait_more_trades(20, timeout=60)
    session.wait_log(r"gap publicTrade linear ETHUSDT disconnect: filled")
    time.sleep(0)  # the last outage's reconciliation is awaited by stop()
    assert session.stop() == 0
    assert_invariant(session.report())
    assert {g[1] for g in session.gaps()} == {"filled"}


@pytest.mark.parametrize("kind", ["http500", "http429", "retcode10006", "timeout"])
def test_rest_failing_during_reconciliation_records_unfillable_gaps(
    sim: SimProcess, tmp_path: Path, kind: str
) -> None:
    session = Session(sim, tmp_path / "s", "symbols=btc")
    session.wait_trades(10)
    sim.post("/sim/faults/rest_errors", {"kind": kind, "count": 1000})
    sim.drop_connections(refuse_for=1)
    session.wait_log(r"gap publicTrade linear BTCUSDT disconnect: unfillable", timeout=60)
    assert session.proc.poll() is None, "the recorder must keep running"
    session.wait_more_trades(10)
    assert session.stop() == 0
    gaps = session.gaps()
    assert [(g[0], g[1]) for g in gaps] == [("BTCUSDT", "unfillable")]
    report = check_completeness(session.db, load_truth(sim.rest_url, symbols=["BTCUSDT"]))
    assert_invariant(report)
    assert by_symbol(report)["BTCUSDT"].missing_excused > 0


def test_a_transient_rest_failure_is_retried_and_filled(sim: SimProcess, tmp_path: Path) -> None:
    session = Session(sim, tmp_path / "s", "symbols=btc")
    session.wait_trades(10)
    sim.post("/sim/faults/rest_errors", {"kind": "http502", "count": 2})
    sim.drop_connections()
    session.wait_log(r"gap publicTrade linear BTCUSDT disconnect: filled")
    assert session.stop() == 0
    report = check_completeness(session.db, load_truth(sim.rest_url, symbols=["BTCUSDT"]))
    assert_invariant(report)


def test_an_outage_longer_than_the_rest_window_is_partial_and_exact(
    sim: SimProcess, session: Session
) -> None:
    session.wait_trades(30)
    sim.post("/sim/faults/recent_trade_limit", {"n": 5})
    sim.drop_connections(refuse_for=3)
    session.wait_log(r"gap publicTrade linear BTCUSDT disconnect: partial")
    session.wait_log(r"gap publicTrade linear ETHUSDT disconnect: partial")
    session.wait_more_trades(10)
    assert session.stop() == 0
    report = session.report()
    assert_invariant(report)
    for symbol, status, _cause, start, _end, recovered_from, _rows in session.gaps():
        assert status == "partial"
        assert recovered_from is not None
        assert by_symbol(report)[symbol].missing_excused > 0
        # exact: nothing stored strictly inside the unrecovered range
        inside = db_count(
            session.db,
            f"SELECT count(*) FROM public_trades WHERE symbol='{symbol}' "
            f"AND trade_time_ms > {start} AND trade_time_ms < {recovered_from}",
        )
        assert inside == 0


LOCK_SCRIPT = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.rollback()
print("released", flush=True)
"""


def test_a_database_locked_by_another_process_delays_but_loses_nothing(
    sim: SimProcess, session: Session
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_SCRIPT, str(session.db), "4"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    locked_count = session.trades()
    assert holder.stdout.readline().strip() == "released"
    holder.wait(10)
    holder.stdout.close()
    session.wait_more_trades(20)
    assert session.stop() == 0
    log = session.log()
    buffered = [
        int(m)
        for m in re.findall(r"trades received=\d+ written=\d+ rate=[\d.]+/s buffered=(\d+)", log)
    ]
    assert max(buffered) > 0, "trades queued while the database was locked"
    assert max(buffered) <= 100_000
    assert locked_count > 0
    # the event loop kept answering pings: no connection was lost during the lock
    assert "connection lost" not in log
    assert_invariant(session.report())


def test_sigterm_in_the_middle_of_a_flush_loses_nothing_received(
    sim: SimProcess, tmp_path: Path
) -> None:
    session = Session(
        sim, tmp_path / "s", "batch_size=200", "flush_interval=60", "max_buffer_rows=100000"
    )
    session.wait_log(r"trades received=([3-9]\d|\d{3,})", timeout=30)
    assert session.stop(signal.SIGTERM) == 0
    final = re.findall(
        r"trades received=(\d+) written=(\d+) rate=[\d.]+/s buffered=(\d+) dup=(\d+)", session.log()
    )[-1]
    received, written, buffered, dup = map(int, final)
    assert buffered == 0
    assert written + dup == received
    assert session.trades() == written
    assert_invariant(session.report())
    assert session.run_status() == [("completed",)]


def test_sigkill_leaves_a_sound_database_and_the_next_session_marks_the_run_aborted(
    sim: SimProcess, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    first = Session(sim, tmp_path / "first", f"database_url=sqlite:///{db}")
    first.db = db
    first.wait_trades(50)
    first.kill()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    committed = db_count(db, TRADES)
    report = check_completeness(db, load_truth(sim.rest_url, symbols=SYMBOLS))
    assert not any(s.duplicates or s.mismatches for s in report.symbols)
    second = Session(sim, tmp_path / "second", f"database_url=sqlite:///{db}")
    second.db = db
    second.wait_trades(committed + 20)
    assert second.stop() == 0
    statuses = second.run_status()
    assert statuses == [("aborted",), ("completed",)]
    assert db_count(db, TRADES) > committed


def test_sigkill_with_the_default_per_session_database_is_marked_aborted_by_the_next_session(
    sim: SimProcess, tmp_path: Path
) -> None:
    first = Session(sim, tmp_path / "first")
    first.wait_trades(30)
    first.kill()
    assert first.run_status() == [("running",)]
    second = Session(sim, tmp_path / "second")
    second.wait_log(r"run \S+ \(pid \d+\) in \S+first had ended without closing; marked aborted")
    second.wait_trades(5)
    assert second.stop() == 0
    assert db_rows(first.db, "SELECT status, error FROM runs") == [("aborted", DEAD_RUN_ERROR)]
    assert second.run_status() == [("completed",)]  # its own database holds its own run only


def test_malformed_frames_are_counted_kept_and_not_flooding_the_log(
    sim: SimProcess, session: Session
) -> None:
    sim.post("/sim/faults/malformed_frames", {"n": 40})
    wait_sync(
        lambda: db_count(session.db, "SELECT count(*) FROM rejected_frames") >= 40,
        20,
        "rejected frames stored",
    )
    session.wait_more_trades(10)
    assert session.stop() == 0
    assert len(re.findall(r"rejected frame \(", session.log())) <= 5
    assert "connection lost" not in session.log()
    assert_invariant(session.report())


def test_a_wrong_api_key_fails_clearly_while_public_recording_continues(
    sim: SimProcess, tmp_path: Path
) -> None:
    session = Session(sim, tmp_path / "s", "account=env", env=sim_account_env("not-the-secret"))
    session.wait_log(r"private auth failed \(invalid_key\)")
    session.wait_trades(40)
    assert session.stop() == 1  # the run did not record what it was asked to
    attempts = len(re.findall(r"private: private auth failed", session.log()))
    assert 1 <= attempts <= 3, "auth failures back off; they never spin"
    assert "not-the-secret" not in session.log()
    assert_invariant(session.report())
    ((status, error),) = db_rows(session.db, "SELECT status, error FROM runs")
    assert status == "error"
    assert error.startswith("private auth never succeeded (")


def test_private_recording_resumes_after_a_drop_and_missed_executions_are_recovered(
    sim: SimProcess, tmp_path: Path
) -> None:
    session = Session(sim, tmp_path / "s", "account=env", env=sim_account_env())
    session.wait_log(r"private: authenticated")
    wait_sync(
        lambda: db_count(session.db, "SELECT count(*) FROM private_executions") > 0,
        30,
        "executions",
    )
    sim.drop_connections(refuse_for=4)
    session.wait_log(r"gap execution linear - disconnect: filled", timeout=40)
    stopped_ms = time.time_ns() // 1_000_000
    assert session.stop() == 0
    stored = {r[0] for r in db_rows(session.db, "SELECT exec_id FROM private_executions")}
    truth = [
        e
        for e in sim.get("/sim/ground-truth/executions")
        if int(e["execTime"]) <= stopped_ms - 3000
    ]
    assert truth
    assert {e["execId"] for e in truth} <= stored
    assert len(re.findall(r"private: authenticated", session.log())) >= 2


@pytest.mark.parametrize(
    "url",
    ["sqlite:////etc/hostname/inside-a-file/recorder.db", "sqlite:////dev/full"],
    ids=["not-a-dir", "disk-full"],
)
def test_an_unusable_database_fails_clearly_and_creates_nothing(tmp_path: Path, url: str) -> None:
    run_dir = tmp_path / "s"
    proc = subprocess.run(
        [script("recorder"), "network=local", f"database_url={url}", f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "cannot open the database" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (run_dir / "session.json").exists()
    assert not (run_dir / "recorder.db").exists()


def test_an_unreachable_postgresql_fails_in_one_line_within_its_connect_timeout(
    tmp_path: Path,
) -> None:
    port = unused_port()
    run_dir = tmp_path / "s"
    began = time.monotonic()
    proc = subprocess.run(
        [
            script("recorder"),
            "network=local",
            f"database_url=postgresql://rec@127.0.0.1:{port}/recorder",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output[-2000:]
    assert re.search(rf"cannot use the database postgresql\S*127\.0\.0\.1:{port}", output)
    assert "Traceback" not in output
    assert time.monotonic() - began < 30


def test_an_expired_signature_from_clock_skew_is_reported_while_public_recording_continues(
    tmp_path: Path,
) -> None:
    # The server's clock runs 60 s ahead: our `expires` (now + 10 s) is already past.
    with SimProcess.with_account("--clock-offset-ms", "60000") as skewed:
        session = Session(skewed, tmp_path / "s", "account=env", env=sim_account_env())
        session.wait_log(r"private auth failed \(expired\): Params Error; check the clock")
        session.wait_trades(40)
        assert session.stop() == 1
        assert "private: authenticated" not in session.log()
        assert_invariant(session.report())
        ((status, error),) = db_rows(session.db, "SELECT status, error FROM runs")
        assert status == "error"
        assert "private auth failed (expired): Params Error" in error
