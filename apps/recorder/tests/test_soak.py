"""A time-compressed soak: many times the real trade rate, a drop every second.

CI runs it for SOAK_SECONDS (default 40); `make soak` runs it for 5 minutes and
prints the figures. It shows resident memory levelling off, a stable count of
asyncio tasks and open sockets, and the completeness invariant holding.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from recorder.completeness import check_completeness, load_truth
from testkit import SimProcess, db_count, script, wait_sync

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

# the `majors` symbol group
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT"]
RATE = 200  # trades/s per symbol, ten to a hundred times a typical mainnet rate


def health_tasks(log: str) -> list[int]:
    return [int(t) for t in re.findall(r"health uptime=\S+ rss=[\d.]+MB tasks=(\d+)", log)]


def test_soak(tmp_path: Path) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "40"))
    drop_every = float(os.environ.get("SOAK_DROP_EVERY", "1.0"))
    sim = SimProcess("--trade-rate", str(RATE), "--seed", "11")
    run_dir = tmp_path / "soak"
    proc = subprocess.Popen(
        [
            script("recorder"),
            *sim.network_overrides(),
            "symbols=majors",
            "connection.ping_interval_seconds=1",
            "connection.pong_timeout_seconds=2",
            "connection.reconnect_initial_delay_seconds=0.05",
            "connection.reconnect_max_delay_seconds=0.5",
            "connection.max_connects_per_5min=500",
            "health_log_interval=1",
            "batch_size=500",
            "flush_interval=0.5",
            f"hydra.run.dir={run_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = run_dir / "recorder.db"
    rss: list[tuple[float, float]] = []
    sockets: list[int] = []
    try:
        wait_sync(lambda: db_count(db, "SELECT count(*) FROM public_trades") > 100, 60, "recording")
        recorder = psutil.Process(proc.pid)
        started = time.monotonic()
        drops = 0
        rng = random.Random(5)
        next_drop = started + drop_every
        while (elapsed := time.monotonic() - started) < seconds:
            rss.append((elapsed, recorder.memory_info().rss / 1e6))
            sockets.append(len(recorder.net_connections(kind="inet")))
            if time.monotonic() >= next_drop:
                sim.post("/sim/faults/drop_connections", {})
                drops += 1
                next_drop = time.monotonic() + drop_every * rng.uniform(0.5, 1.5)
            time.sleep(0.25)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        log = (run_dir / "recorder.log").read_text()
        stats = sim.get("/sim/stats")
        truth = load_truth(sim.rest_url, symbols=SYMBOLS)
        report = check_completeness(db, truth)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sim.stop()

    trades = db_count(db, "SELECT count(*) FROM public_trades")
    tickers = db_count(db, "SELECT count(*) FROM ticker_snapshots")
    gaps = db_count(db, "SELECT count(*) FROM gaps WHERE stream='publicTrade'")
    reconnects = stats["ws_connections_accepted"] - 1
    third = len(rss) // 3
    start_mb = max(m for _, m in rss[: max(1, len(rss) // 10)])
    middle_mb = max(m for _, m in rss[third : 2 * third])
    end_mb = max(m for _, m in rss[2 * third :])
    tasks = health_tasks(log)
    violations = sum(len(s.violations) for s in report.symbols)
    print(
        "\nsoak figures\n"
        f"  duration           {seconds:.0f} s, a drop every ~{drop_every:.1f} s ({drops} drops)\n"
        f"  messages           {trades} trades, {tickers} ticker rows stored\n"
        f"  reconnects         {reconnects}; trade gaps recorded {gaps}\n"
        f"  RSS (MB)           start {start_mb:.1f}, middle {middle_mb:.1f}, end {end_mb:.1f}\n"
        f"  asyncio tasks      first {tasks[0]}, last {tasks[-1]}, max {max(tasks)}\n"
        f"  open sockets       first {sockets[0]}, last {sockets[-1]}, max {max(sockets)}\n"
        f"  violations         {violations} (duplicates {sum(len(s.duplicates) for s in report.symbols)}, "
        f"mismatches {sum(len(s.mismatches) for s in report.symbols)})\n"
    )
    assert report.ok, report.format_text()
    assert reconnects >= drops * 0.8
    # memory levels off: the last third grows little beyond the middle third
    assert end_mb <= middle_mb * 1.15 + 10, (start_mb, middle_mb, end_mb)
    # no task or socket leaks across reconnects
    assert max(tasks[len(tasks) // 2 :]) <= max(tasks[: len(tasks) // 2]) + 2
    assert max(sockets) <= 4
