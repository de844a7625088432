"""The real `recorder` console script against the real `bybit-sim`, with real signals."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from testkit import (
    SIM_API_KEY,
    SIM_API_SECRET,
    SimProcess,
    db_count,
    db_rows,
    finish,
    sim_account_env,
    start_recorder,
    wait_sync,
)

pytestmark = pytest.mark.e2e

TRADES = "SELECT count(*) FROM public_trades"
TIMEOUT_S = 30


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess.with_account() as process:
        yield process


def assert_every_generated_trade_is_stored_once(sim: SimProcess, db: Path, symbol: str) -> None:
    stored = db_rows(
        db,
        f"SELECT trade_id, price, size, side, trade_time_ms FROM public_trades WHERE symbol='{symbol}'",
    )
    ids = [r[0] for r in stored]
    assert len(ids) == len(set(ids))
    assert stored, f"no {symbol} trades stored"
    last = max(r[4] for r in stored)
    by_id = {r[0]: r[1:] for r in stored}
    truth = [t for t in sim.truth_trades(symbol) if t["time_ms"] <= last]
    missing = [t["trade_id"] for t in truth if t["trade_id"] not in by_id]
    assert not missing, f"{len(missing)} of {len(truth)} {symbol} trades missing"
    for t in truth:
        assert by_id[t["trade_id"]] == (t["price"], t["size"], t["side"], t["time_ms"])


def no_process_left(pid_group: int) -> bool:
    return not [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == pid_group]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_single_session_ends_cleanly_on_a_signal(
    sim: SimProcess, tmp_path: Path, sig: signal.Signals
) -> None:
    run_dir = tmp_path / "session"
    proc = start_recorder("symbols=btc_eth", *sim.recording_overrides(), f"hydra.run.dir={run_dir}")
    db = run_dir / "recorder.db"
    try:
        wait_sync(lambda: db_count(db, TRADES) > 30, 30, "trades in the session DB")
    finally:
        os.kill(proc.pid, sig)
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert_every_generated_trade_is_stored_once(sim, db, symbol)
    assert db_rows(db, "SELECT status, ended_at_ms IS NOT NULL FROM runs") == [("completed", 1)]
    files = {p.name for p in run_dir.iterdir()}
    assert {"recorder.db", "recorder.log", "session.json", ".hydra"} <= files
    log = (run_dir / "recorder.log").read_text()
    assert f"stopping ({sig.name})" in log
    assert "health uptime=" in log
    wait_sync(lambda: no_process_left(proc.pid), 10, "the recorder to leave no process")


def test_duration_ends_the_session(sim: SimProcess, tmp_path: Path) -> None:
    run_dir = tmp_path / "timed"
    proc = start_recorder(
        *sim.recording_overrides(), "duration_seconds=2", f"hydra.run.dir={run_dir}"
    )
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout
    assert db_rows(run_dir / "recorder.db", "SELECT status FROM runs") == [("completed",)]
    assert db_count(run_dir / "recorder.db", TRADES) > 0


def test_multirun_records_two_groups_at_once_and_stops_both_on_one_sigint(
    sim: SimProcess, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    proc = start_recorder(
        "-m",
        "symbols=btc,eth",
        *sim.recording_overrides(),
        f"hydra.sweep.dir={sweep}",
    )
    dbs = {name: sweep / name / "recorder.db" for name in ("0_btc", "1_eth")}
    try:
        wait_sync(
            lambda: all(db_count(db, TRADES) > 5 for db in dbs.values()), 40, "both jobs recording"
        )
    finally:
        os.kill(proc.pid, signal.SIGINT)
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout
    assert_every_generated_trade_is_stored_once(sim, dbs["0_btc"], "BTCUSDT")
    assert_every_generated_trade_is_stored_once(sim, dbs["1_eth"], "ETHUSDT")
    for db in dbs.values():
        assert db_rows(db, "SELECT status FROM runs") == [("completed",)]
    # one process per job, running at the same time
    pids = {db_rows(db, "SELECT pid FROM runs")[0][0] for db in dbs.values()}
    assert len(pids) == 2
    starts = [db_rows(db, "SELECT started_at_ms, ended_at_ms FROM runs")[0] for db in dbs.values()]
    assert max(s for s, _ in starts) < min(e for _, e in starts)
    wait_sync(lambda: no_process_left(proc.pid), 10, "no job left behind")


def test_a_bad_override_is_rejected_with_a_clear_message(tmp_path: Path) -> None:
    proc = start_recorder("batch_size=0", f"hydra.run.dir={tmp_path / 'bad'}")
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 2
    assert "batch_size" in done.stdout
    assert "Traceback" not in done.stdout


def test_private_streams_are_recorded_without_a_trace_of_the_secret(
    sim: SimProcess, tmp_path: Path
) -> None:
    run_dir = tmp_path / "private"
    env = sim_account_env()
    proc = start_recorder(
        "account=env",
        *sim.recording_overrides(),
        f"hydra.run.dir={run_dir}",
        env=env,
    )
    db = run_dir / "recorder.db"
    try:
        wait_sync(
            lambda: db_count(db, "SELECT count(*) FROM private_executions") > 0, 40, "executions"
        )
        wait_sync(lambda: db_count(db, "SELECT count(*) FROM orders") > 0, 20, "orders")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout
    assert db_count(db, "SELECT count(*) FROM wallet_snapshots") > 0
    assert db_count(db, "SELECT count(*) FROM position_snapshots") > 0
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SIM_API_SECRET.encode() not in data, path
            assert SIM_API_KEY.encode() not in data, path
    assert SIM_API_SECRET not in done.stdout


def test_session_json_says_how_to_run_the_session_again(sim: SimProcess, tmp_path: Path) -> None:
    run_dir = tmp_path / "session"
    proc = start_recorder(
        *sim.recording_overrides(),
        "symbols=[SOLUSDT,BTCUSDT]",
        "duration_seconds=1",
        f"hydra.run.dir={run_dir}",
    )
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout
    info = json.loads((run_dir / "session.json").read_text())
    assert shlex.split(info["reproduce"]) == info["command"]
    assert info["command"][0] == "recorder"
    assert info["environment"] == []
    # the shell line runs as it is: quotes (the URL's braces) survive the shell
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    again = subprocess.run(
        ["bash", "-c", info["reproduce"] + " --cfg job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    cfg = yaml.safe_load(again.stdout)
    assert cfg["network"]["public_ws_url"] == f"ws://127.0.0.1:{sim.port}/v5/public/{{category}}"
    assert cfg["custom_symbols"] == ["SOLUSDT", "BTCUSDT"]
    assert cfg["duration_seconds"] == 1


def test_session_json_names_a_commit_git_can_check_out(sim: SimProcess, tmp_path: Path) -> None:
    run_dir = tmp_path / "session"
    done = finish(
        start_recorder(*sim.network_overrides(), "duration_seconds=1", f"hydra.run.dir={run_dir}"),
        TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout
    info = json.loads((run_dir / "session.json").read_text())
    revision, dirty = info["git_revision"], info["git_dirty"]
    if revision is None:
        pytest.skip("not running from a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", revision)
    assert info["git_commit"] == revision + ("-dirty" if dirty else "")
    repo = Path(__file__).resolve().parent
    exists = subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=repo)
    assert exists.returncode == 0
    diff = run_dir / "git.diff"
    assert diff.exists() is dirty
    if dirty:  # the uncommitted changes, in a form `git apply` takes
        numstat = subprocess.run(
            ["git", "apply", "--numstat", str(diff)],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert numstat.returncode == 0, numstat.stderr
        assert numstat.stdout.strip()
