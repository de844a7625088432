"""The benchmark's scenarios; ``run.py`` runs them and formats the table.

* ``limit``: plain ``sqlite3`` executemany of the firehose's trade rows, the ceiling.
* ``flat_out``: the simulator's firehose over a real WebSocket into the recorder process.
* ``realistic``: 20 symbols at typical mainnet rates, CPU share and arrival-to-commit latency.

(``bench_pipeline`` is the fourth: parse + normalize per frame, ours against cryptofeed's.)

The simulator and the recorder each run in their own process (``bybit-sim`` and
``bench_recorder.py``), so psutil measures the recorder alone. Every scenario checks the
rows stored against the simulator's ground truth: a figure bought by dropping frames fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bybit_sim import TruthTrade
from event_saver.rows import TRADE_COLUMNS
from grid_db import DatabaseFactory, DatabaseSettings

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

#: the 20 symbols of the realistic scenario (all linear perpetuals)
REALISTIC_SYMBOLS = [
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "DOGEUSDT",
    "BNBUSDT",
    "ADAUSDT",
    "LTCUSDT",
    "AVAXUSDT",
    "LINKUSDT",
    "DOTUSDT",
    "TRXUSDT",
    "SUIUSDT",
    "NEARUSDT",
    "APTUSDT",
    "ARBUSDT",
    "OPUSDT",
    "TONUSDT",
    "WIFUSDT",
    "ATOMUSDT",
]


#: set by ``run.py --profile DIR``: py-spy records the recorder process of each scenario there
PROFILE_DIR: Path | None = None


class BenchError(RuntimeError):
    """A scenario could not produce an honest figure (lost rows, a crash, a timeout)."""


# ---------------------------------------------------------------------------- processes


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


class SimProcess:
    """``bybit-sim`` on a free port of 127.0.0.1."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "bybit-sim"), "--port", "0", "--log-level", "WARNING", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://[\d.]+:(\d+))", line)
        if match is None:
            self.stop()
            raise BenchError(f"bybit-sim did not start: {line!r}")
        self.rest_url = match.group(1)
        self.ws_url = f"ws://127.0.0.1:{match.group(2)}/v5/public/{{category}}"
        # Keep reading its output so a chatty simulator never blocks on a full pipe.
        self._reader = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._reader.start()

    def get(self, path: str) -> Any:
        return http_json(self.rest_url + path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return http_json(self.rest_url + path, body)

    def trade_count(self, symbol: str, category: str = "linear") -> int:
        return int(
            self.get(f"/sim/ground-truth/trade-count?category={category}&symbol={symbol}")["trades"]
        )

    def truth_trades(self, symbol: str, category: str = "linear") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            f"/sim/ground-truth/trades?category={category}&symbol={symbol}"
        )
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_reader"):
            self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class RecorderProcess:
    """``bench_recorder.py``: the Recorder in its own process, driven over stdin/stdout."""

    def __init__(self, sim: SimProcess, workdir: Path, symbols: list[str], *args: str) -> None:
        self.workdir = workdir
        self.db_path = workdir / "recorder.db"
        self._stderr = open(workdir / "recorder.stderr", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "bench_recorder.py"),
                "--rest-url",
                sim.rest_url,
                "--ws-url",
                sim.ws_url,
                "--symbols",
                ",".join(symbols),
                "--workdir",
                str(workdir),
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)
        self._profiler: subprocess.Popen[bytes] | None = None
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self._events.append(event)
                self._lock.notify_all()
        with self._lock:
            self._events.append({"event": "exited"})
            self._lock.notify_all()

    def wait(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self._events:
                    if event["event"] == name:
                        self._events.remove(event)
                        return event
                    if event["event"] in ("error", "exited"):
                        raise BenchError(f"recorder {event}: {self.stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"recorder: no {name!r} within {timeout:.0f}s")
                self._lock.wait(left)

    def profile(self, name: str, idle: bool) -> None:
        """With ``PROFILE_DIR`` set: sample this process with py-spy until it stops.

        Collapsed stacks (``--format raw``) per thread; ``idle`` keeps the samples of
        waiting threads too, which shows how busy each thread was.
        """
        if PROFILE_DIR is None:
            return
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        pyspy = shutil.which("py-spy") or str(BIN / "py-spy")
        self._profiler = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(self.proc.pid),
                "--rate",
                "250",
                "--threads",
                *(["--idle"] if idle else []),
                "--format",
                "raw",
                "-o",
                str(PROFILE_DIR / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # let it attach

    def _stop_profile(self) -> None:
        if self._profiler is not None:
            self._profiler.send_signal(signal.SIGINT)
            self._profiler.wait(30)
            self._profiler = None

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        times = self.ps.cpu_times()
        return float(times.user), float(times.system)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)

    def stderr_tail(self) -> str:
        try:
            return (self.workdir / "recorder.stderr").read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> dict[str, Any]:
        self._stop_profile()
        self.command("stop")
        stopped = self.wait("stopped", 60)
        self.proc.wait(30)
        return stopped

    def kill(self) -> None:
        """Make sure the process is gone (SIGKILL if still running) and close its pipes."""
        self._stop_profile()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None:
                stream.close()


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@contextmanager
def processes(sim_args: list[str]) -> Iterator[tuple[SimProcess, Path]]:
    sim = SimProcess(*sim_args)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            yield sim, Path(tmp)
    finally:
        sim.stop()


def db_scalar(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute(sql).fetchone()[0])


# ---------------------------------------------------------------------------- the limit


@dataclass
class LimitResult:
    rows: int
    #: rows per second by batch size (rows per transaction)
    by_batch: dict[int, float]

    @property
    def batch(self) -> int:
        return max(self.by_batch, key=lambda size: self.by_batch[size])

    @property
    def rows_per_second(self) -> float:
        return self.by_batch[self.batch]


def limit(trades: list[TruthTrade], batches: tuple[int, ...], workdir: Path) -> LimitResult:
    """The most plain sqlite3 persists of these trades: the best of ``batches`` sizes."""
    by_batch = {}
    for batch in batches:
        path = workdir / f"limit-{batch}.db"
        by_batch[batch] = limit_once(trades, batch, path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return LimitResult(len(trades), by_batch)


def limit_once(trades: list[TruthTrade], batch: int, path: Path) -> float:
    """Rows/s of ``executemany`` of the trade rows, one transaction per ``batch``, WAL.

    The same schema and indexes (created by grid_db), the same PRAGMAs as the recorder's
    connections (WAL, synchronous=NORMAL, foreign_keys=ON), the same row values (with a
    run id, as the recorder's) and the same ``ON CONFLICT DO NOTHING``; the rows are
    built before the clock starts.
    """
    factory = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{path}"))
    factory.create_tables()
    factory.dispose()
    run_id = "00000000-0000-4000-8000-000000000001"
    now_ms = time.time_ns() // 1_000_000
    rows = [
        (
            "linear",
            t.symbol,
            t.trade_id,
            t.time_ms,
            t.side,
            t.price,
            t.size,
            t.tick_direction,
            t.is_block_trade,
            t.is_rpi,
            t.seq,
            t.time_ms,
            now_ms,
            "ws",
            run_id,
        )
        for t in trades
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "INSERT INTO runs (id, started_at_ms, status, config_json, host, pid,"
            " software_version) VALUES (?, ?, 'running', '{}', 'bench', 0, 'bench')",
            (run_id, now_ms),
        )
        sql = (
            f"INSERT INTO public_trades ({', '.join(TRADE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(TRADE_COLUMNS))}) ON CONFLICT DO NOTHING"
        )
        inserted = 0
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            conn.execute("BEGIN")
            inserted += conn.executemany(sql, rows[start : start + batch]).rowcount
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    if inserted != len(rows):
        raise BenchError(f"limit: {inserted} of {len(rows)} rows inserted")
    return len(rows) / seconds


# ---------------------------------------------------------------------------- flat out


@dataclass
class FlatOutResult:
    trades: int
    batch: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    sim_cpu_share: float
    stored: int
    truth: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def trades_per_second(self) -> float:
        return self.trades / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_seconds / self.trades * 1e6


def flat_out(trades: int, batch: int, writer: str = "default") -> FlatOutResult:
    """The firehose into the recorder: committed trades/s, CPU per 1,000 trades, peak RSS."""
    with processes(["--trade-rate", "0", "--seed", "1"]) as (sim, workdir):
        recorder = RecorderProcess(
            sim, workdir, ["BTCUSDT"], "--writer", writer, "--expect-trades", str(trades)
        )
        try:
            recorder.wait("ready", 60)
            recorder.profile("flat_out", idle=True)
            sim.post(
                "/sim/firehose",
                {"category": "linear", "symbol": "BTCUSDT", "trades": trades, "batch": batch},
            )
            deadline = time.monotonic() + 120
            while (status := sim.get("/sim/firehose"))["state"] == "generating":
                if time.monotonic() > deadline:
                    raise BenchError("firehose: generation took over 120 s")
                time.sleep(0.005)
            if status["state"] == "failed":
                raise BenchError(f"firehose failed: {status['error']}")
            cpu_before = recorder.cpu_seconds()
            sim_ps = psutil.Process(sim.proc.pid)
            sim_cpu_before = sum(sim_ps.cpu_times()[:2])
            wall_before = time.monotonic()
            reached = recorder.wait("reached", 60 + trades / 2000)
            cpu = recorder.cpu_seconds() - cpu_before
            sim_cpu = sum(sim_ps.cpu_times()[:2]) - sim_cpu_before
            wall = time.monotonic() - wall_before
            rss = recorder.peak_rss_mb()
            status = sim.get("/sim/firehose")
            stopped = recorder.stop()
        finally:
            recorder.kill()
        stored = db_scalar(recorder.db_path, "SELECT count(*) FROM public_trades")
        truth = sim.trade_count("BTCUSDT")
        seconds = (reached["last_commit_ns"] - reached["first_arrival_ns"]) / 1e9
        result = FlatOutResult(
            trades=trades,
            batch=batch,
            seconds=seconds,
            cpu_seconds=cpu,
            peak_rss_mb=rss,
            sim_cpu_share=sim_cpu / wall,
            stored=stored,
            truth=truth,
            details={"firehose": status, "recorder": stopped},
        )
        check_no_loss("flat out", stored, truth, stopped, expected=trades)
        return result


def check_no_loss(
    name: str, stored: int, truth: int, stopped: dict[str, Any], expected: int | None = None
) -> None:
    problems = []
    if stored != truth:
        problems.append(f"{stored} trades stored, the simulator printed {truth}")
    if expected is not None and truth != expected:
        problems.append(f"the simulator printed {truth} trades, {expected} were asked for")
    for key in ("reconnects", "rejected_frames", "rows_rejected", "buffered", "duplicates"):
        if stopped.get(key):
            problems.append(f"{key}={stopped[key]}")
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))


# ---------------------------------------------------------------------------- realistic


@dataclass
class RealisticResult:
    writer: str
    symbols: int
    trade_rate: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    latency_ms: dict[str, float | None]
    flush_interval: float
    trades: int
    tickers: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.seconds


WRITER_FLUSH_INTERVAL = {"default": 5.0, "low_latency": 0.2, "bulk": 10.0}


def realistic(
    writer: str, seconds: float, warmup: float, trade_rate: float, symbols: int = 20
) -> RealisticResult:
    """``symbols`` linear symbols, ``trade_rate`` trades/s each and a ticker every 100 ms."""
    names = list(REALISTIC_SYMBOLS[:symbols])
    with processes(["--trade-rate", str(trade_rate), "--seed", "2"]) as (sim, workdir):
        recorder = RecorderProcess(sim, workdir, names, "--writer", writer, "--latency")
        try:
            recorder.wait("ready", 60)
            recorder.profile(f"realistic_{writer}", idle=False)
            time.sleep(warmup)
            recorder.command("mark")
            recorder.wait("marked", 10)
            user_before, system_before = recorder.cpu_split()
            wall_before = time.monotonic()
            time.sleep(seconds)
            user, system = recorder.cpu_split()
            user, system = user - user_before, system - system_before
            cpu = user + system
            wall = time.monotonic() - wall_before
            recorder.command("report")
            report = recorder.wait("report", 10)
            rss = recorder.peak_rss_mb()
            stopped = recorder.stop()
        finally:
            recorder.kill()
        check_realistic_no_loss(sim, recorder.db_path, names, stopped)
        return RealisticResult(
            writer=writer,
            symbols=len(names),
            trade_rate=trade_rate,
            seconds=wall,
            cpu_seconds=cpu,
            peak_rss_mb=rss,
            latency_ms=report["latency_ms"],
            flush_interval=WRITER_FLUSH_INTERVAL.get(writer, float("nan")),
            trades=stopped["trades_committed"],
            tickers=stopped["tickers_committed"],
            details={"recorder": stopped, "cpu_user_s": user, "cpu_system_s": system},
        )


def check_realistic_no_loss(
    sim: SimProcess, db: Path, symbols: list[str], stopped: dict[str, Any]
) -> None:
    """Every trade the simulator printed up to the last one stored is stored, once."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = {
            symbol: dict(
                conn.execute(
                    "SELECT trade_id, trade_time_ms FROM public_trades WHERE symbol = ?", (symbol,)
                ).fetchall()
            )
            for symbol in symbols
        }
        ticker_rows = int(conn.execute("SELECT count(*) FROM ticker_snapshots").fetchone()[0])
    problems = []
    for symbol in symbols:
        rows = stored[symbol]
        if not rows:
            problems.append(f"no {symbol} trades stored")
            continue
        last = max(rows.values())
        truth = {t["trade_id"] for t in sim.truth_trades(symbol) if t["time_ms"] <= last}
        missing, extra = truth - rows.keys(), rows.keys() - truth
        if missing or extra:
            problems.append(f"{symbol}: {len(missing)} missing, {len(extra)} not printed")
    if ticker_rows != stopped["tickers_received"]:
        problems.append(f"{ticker_rows} ticker rows for {stopped['tickers_received']} received")
    if stopped["trades_written"] != stopped["trades_received"]:
        problems.append(
            f"{stopped['trades_written']} trades written of {stopped['trades_received']} received"
        )
    for key in ("reconnects", "rejected_frames", "rows_rejected", "buffered", "gaps"):
        if stopped.get(key):
            problems.append(f"{key}={stopped[key]}")
    if problems:
        raise BenchError("realistic: " + "; ".join(problems))
