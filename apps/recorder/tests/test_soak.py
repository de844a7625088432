"""The randomized fault soak: the real recorder under every fault it must survive, for minutes.

CI runs it for SOAK_SECONDS (default 40); ``make soak`` runs it for 10 minutes and prints
the figures. The simulator prints many times mainnet's trade rate while the soak injects,
at random, one fault every few seconds: abrupt drops, drops with reconnects refused, pauses
that heal themselves (with and without pongs), black-holed reconnects, unanswered
subscribes, one symbol going quiet, and REST failing during the refill. At the end
``recorder-check`` compares the database with the simulator's ground truth: no trade
missing outside a gap row, none stored twice, and no ``filled`` gap missing a trade.
Resident memory must stay flat once warm: every refill goes through the same fixed
statements as live rows, so no cache grows with the number of gaps.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from testkit import SimProcess, db_count, db_rows, script, wait_sync

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
# the soak, plus the recorder's start and stop and recorder-check over the whole truth
pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(SOAK_SECONDS + 300)]

# the `majors` symbol group
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT"]
RATE = 200  # trades/s per symbol: tens of times a typical mainnet rate
TIMINGS = [
    "connection.ping_interval_seconds=1",
    "connection.pong_timeout_seconds=1",
    "connection.stall_timeout_seconds=4",
    "connection.open_timeout_seconds=1",
    "connection.ack_timeout_seconds=1.5",
    "connection.reconnect_initial_delay_seconds=0.05",
    "connection.reconnect_max_delay_seconds=0.5",
    "connection.max_connects_per_5min=500",
    "gap_threshold_seconds=1.5",
    "rest.timeout_seconds=2",
    "rest.max_retries=2",
    "health_log_interval=1",
    "batch_size=500",
    "flush_interval=0.5",
]

Fault = Callable[[SimProcess, random.Random], str]


def _drop(sim: SimProcess, rng: random.Random) -> str:
    sim.drop_connections()
    return "drop"


def _refused(sim: SimProcess, rng: random.Random) -> str:
    sim.drop_connections(refuse_for=rng.uniform(0.5, 2.5))
    return "drop+refused"


def _pause(sim: SimProcess, rng: random.Random) -> str:
    pongs = rng.random() < 0.5
    sim.post("/sim/faults/pause", {"seconds": rng.uniform(1.0, 5.0), "pongs": pongs})
    return "pause+pongs" if pongs else "pause"


def _black_hole(sim: SimProcess, rng: random.Random) -> str:
    sim.post("/sim/faults/black_hole", {"seconds": rng.uniform(1.5, 3.5)})
    sim.drop_connections()
    return "black_hole"


def _slow_ack(sim: SimProcess, rng: random.Random) -> str:
    sim.post("/sim/faults/slow_ack", {"seconds": 3, "count": 1})
    sim.drop_connections()
    return "slow_ack"


def _mute(sim: SimProcess, rng: random.Random) -> str:
    symbol = rng.choice(SYMBOLS)
    sim.post("/sim/faults/mute", {"symbol": symbol, "seconds": rng.uniform(2.0, 4.0)})
    return "mute"


def _rest_failure(sim: SimProcess, rng: random.Random) -> str:
    kind = rng.choice(["http500", "http429", "retcode10006", "retcode10016"])
    sim.post("/sim/faults/rest_errors", {"kind": kind, "count": rng.randint(1, 6)})
    sim.drop_connections()
    return "rest_failure"


FAULTS: list[tuple[Fault, float]] = [
    (_drop, 3),
    (_refused, 2),
    (_pause, 3),
    (_black_hole, 1),
    (_slow_ack, 1),
    (_mute, 2),
    (_rest_failure, 1),
]


def pick(rng: random.Random) -> Fault:
    faults, weights = zip(*FAULTS, strict=True)
    return rng.choices(faults, weights)[0]


def health_tasks(log: str) -> list[int]:
    return [int(t) for t in re.findall(r"health uptime=\S+ rss=[\d.]+MB tasks=(\d+)", log)]


def test_soak(tmp_path: Path) -> None:
    seconds = SOAK_SECONDS
    every = float(os.environ.get("SOAK_FAULT_EVERY", "4"))
    sim = SimProcess("--trade-rate", str(RATE), "--seed", "11")
    run_dir = tmp_path / "soak"
    proc = subprocess.Popen(
        [
            script("recorder"),
            *sim.network_overrides(),
            "symbols=majors",
            *TIMINGS,
            f"hydra.run.dir={run_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = run_dir / "recorder.db"
    rss: list[tuple[float, float]] = []
    sockets: list[int] = []
    injected: Counter[str] = Counter()
    timeline: list[tuple[int, str]] = []
    try:
        wait_sync(lambda: db_count(db, "SELECT count(*) FROM public_trades") > 100, 60, "recording")
        recorder = psutil.Process(proc.pid)
        started = time.monotonic()
        rng = random.Random(5)
        next_fault = started + every
        while (elapsed := time.monotonic() - started) < seconds:
            rss.append((elapsed, recorder.memory_info().rss / 1e6))
            sockets.append(len(recorder.net_connections(kind="inet")))
            if time.monotonic() >= next_fault:
                at_ms = time.time_ns() // 1_000_000
                kind = pick(rng)(sim, rng)
                injected[kind] += 1
                timeline.append((at_ms, kind))
                next_fault = time.monotonic() + every * rng.uniform(0.5, 1.5)
            time.sleep(0.25)
        sim.post("/sim/faults/clear", {})
        time.sleep(3)  # let the last outage end and be refilled while recording
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(90) == 0
        log = (run_dir / "recorder.log").read_text()
        check = subprocess.run(
            [script("recorder-check"), str(run_dir), "--truth", sim.rest_url, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sim.stop()

    report = json.loads(check.stdout)
    gaps = db_rows(
        db,
        "SELECT cause, fill_status, rows_recovered FROM gaps WHERE stream='publicTrade'",
    )
    causes = Counter(cause for cause, _, _ in gaps)
    statuses = Counter(status for _, status, _ in gaps)
    noticed = [float(s) for s in re.findall(r"noticed after ([\d.]+)s", log)]
    third = len(rss) // 3
    warm_mb = max(m for _, m in rss[third // 2 : third])
    middle_mb = max(m for _, m in rss[third : 2 * third])
    end_mb = max(m for _, m in rss[2 * third :])
    tasks = health_tasks(log)
    totals = report["totals"]
    print(
        "\nsoak figures\n"
        f"  duration            {seconds:.0f} s, a fault every ~{every:.0f} s: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(injected.items()))}\n"
        f"  stored              {db_count(db, 'SELECT count(*) FROM public_trades')} trades, "
        f"{db_count(db, 'SELECT count(*) FROM ticker_snapshots')} ticker rows\n"
        f"  outages by cause    {', '.join(f'{k} {v}' for k, v in sorted(causes.items()))} "
        f"(trade gap rows, one per symbol)\n"
        f"  detection           p50 {statistics.median(noticed):.2f} s, max {max(noticed):.2f} s "
        f"after the last data frame ({len(noticed)} outages)\n"
        f"  refilled            {sum(r for _, _, r in gaps)} trades; gaps "
        f"{', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}\n"
        f"  RSS (MB)            warm {warm_mb:.1f}, middle {middle_mb:.1f}, end {end_mb:.1f}\n"
        f"  asyncio tasks       first {tasks[0]}, last {tasks[-1]}, max {max(tasks)}\n"
        f"  open sockets        max {max(sockets)}\n"
        f"  recorder-check      {json.dumps(totals)}\n"
    )
    missing = [
        (m["time_ms"], s["symbol"]) for s in report["symbols"] for m in s.get("violations", [])
    ]
    assert check.returncode == 0, (sorted(missing)[:20], timeline)
    assert totals["duplicates"] == 0
    assert totals["mismatches"] == 0
    assert sum(injected.values()) >= seconds / every / 2
    assert causes, "the faults must have caused outages"
    # memory stays flat once warm: the last third grows little beyond the middle one
    assert end_mb <= middle_mb * 1.10 + 5, (warm_mb, middle_mb, end_mb)
    # no task or socket leaks across hundreds of reconnects
    assert max(tasks[len(tasks) // 2 :]) <= max(tasks[: len(tasks) // 2]) + 2
    assert max(sockets) <= 4
