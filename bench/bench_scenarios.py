"""The benchmark's scenarios; ``run.py`` runs them and formats the table.

* ``floor``: plain ``sqlite3`` executemany of the firehose's trade rows into a table of the
  same columns with no key, index or constraint: an append, the floor of any layout.
* ``limit``: the same into the recorder's own schema (its key and indexes), the ceiling.
* ``flat_out``: the simulator's firehose over a real WebSocket into the recorder process
  (a flood: frames of up to 1,024 trades, pushed as fast as the recorder reads them).
* ``realistic``: 20 symbols at typical mainnet rates, CPU share and arrival-to-commit latency.

(``bench_pipeline`` is the fourth: parse + decode per frame, ours against cryptofeed's;
``bench_postgres`` runs the limit and flat out on PostgreSQL, and two recorders into one
database.)

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
from bench_disk import TableBytes, table_bytes

from bybit_records import Category, Trade
from bybit_sim import TruthTrade
from grid_db import DatabaseFactory, DatabaseSettings, RowContext, RunRepository, tables
from grid_db.writes import insert_sql

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

_TESTING = HERE.parent / "testing"
if str(_TESTING) not in sys.path:  # pytest has it on its pythonpath; bench/run.py does not
    sys.path.insert(0, str(_TESTING))

from testkit import stop_process_group  # noqa: E402

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

    def truth_book_updates(
        self, symbol: str, depth: int, category: str = "linear"
    ) -> list[dict[str, Any]]:
        """The kept updates of ``orderbook.{depth}.{symbol}``: ``ts, u, seq, cts, type``."""
        result: list[dict[str, Any]] = self.get(
            f"/sim/ground-truth/book-updates?category={category}&symbol={symbol}&depth={depth}"
        )
        return result

    def stop(self) -> None:
        stop_process_group(self.proc)
        if hasattr(self, "_reader"):
            self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class RecorderProcess:
    """``bench_recorder.py``: the Recorder in its own process, driven over stdin/stdout.

    It is started before the simulator and imports its modules meanwhile; ``connect``
    then hands it the simulator's URLs (its first stdin line), and it starts recording.
    """

    def __init__(
        self,
        workdir: Path,
        symbols: list[str],
        *args: str,
        database_url: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.db_path = workdir / "recorder.db"
        #: where it records: its own SQLite file in ``workdir`` unless told otherwise
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self._stderr = open(workdir / "recorder.stderr", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "bench_recorder.py"),
                "--symbols",
                ",".join(symbols),
                "--workdir",
                str(workdir),
                "--database-url",
                self.database_url,
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

    def connect(self, sim: SimProcess) -> None:
        """Start recording from ``sim`` (then ``wait("ready")``)."""
        self.command(f"connect {sim.rest_url} {sim.ws_url}")

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

    def stop(self, *, told: bool = False) -> dict[str, Any]:
        """Stop it (flush, close the run) and return its last report; ``told``: the
        ``stop`` command was already sent (``stop_all``)."""
        self._stop_profile()
        if not told:
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


def stop_all(recorders: list[RecorderProcess]) -> list[dict[str, Any]]:
    """Stop several recorders at once (each flushes and closes meanwhile)."""
    for recorder in recorders:
        recorder._stop_profile()
        recorder.command("stop")
    return [r.stop(told=True) for r in recorders]


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@dataclass
class Launch:
    """One recorder process of a scenario: its symbols, options, and database."""

    symbols: list[str]
    args: tuple[str, ...] = ()
    database_url: str | None = None


@contextmanager
def processes(
    sim_args: list[str], *launches: Launch
) -> Iterator[tuple[SimProcess, list[RecorderProcess]]]:
    """A simulator and recorders connected to it, each in a folder of a temporary one.

    The recorders start first, so that their imports overlap the simulator's start; each
    is killed (if ``stop`` did not end it) before the simulator stops and the folder goes.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        recorders: list[RecorderProcess] = []
        try:
            for i, launch in enumerate(launches):
                folder = Path(tmp) / f"recorder-{i}"
                folder.mkdir()
                recorders.append(
                    RecorderProcess(
                        folder, launch.symbols, *launch.args, database_url=launch.database_url
                    )
                )
            sim = SimProcess(*sim_args)
            try:
                for recorder in recorders:
                    recorder.connect(sim)
                yield sim, recorders
            finally:
                try:
                    for recorder in recorders:
                        recorder.kill()
                finally:
                    sim.stop()
        finally:
            for recorder in recorders:
                recorder.kill()


def db_scalar(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute(sql).fetchone()[0])


def url_scalars(database_url: str, sql: str) -> tuple[Any, ...]:
    """The one row of ``sql`` in any database the recorder can use (SQLite, PostgreSQL)."""
    factory = DatabaseFactory(DatabaseSettings(url=database_url))
    try:
        with factory.engine.connect() as conn:
            row = conn.exec_driver_sql(sql).one()
    finally:
        factory.dispose()
    return tuple(row)


def new_database(database_url: str) -> RowContext:
    """The recorder's schema (created by ``grid_db``) in a fresh database, a run, and the
    context the pipeline's writers give that run's rows (its id and number)."""
    factory = DatabaseFactory(DatabaseSettings(url=database_url))
    try:
        factory.create_tables()
        runs = RunRepository(factory.engine)
        run = runs.create_run(config_json="{}", host="bench", pid=0, software_version="bench")
        return RowContext(run.id, run_ref=runs.ref_of(run.id))
    finally:
        factory.dispose()


def trade_rows(trades: list[TruthTrade], context: RowContext) -> list[tuple[Any, ...]]:
    """The rows the trade writer would write for these trades: ``Trade`` records (as the
    decoder makes them from the firehose's frames) made rows by ``tables.public_trades``."""
    now_ms = time.time_ns() // 1_000_000
    records = [
        Trade(
            Category.LINEAR,
            t.symbol,
            t.trade_id,
            t.time_ms,
            t.side,  # type: ignore[arg-type]
            t.price,
            t.size,
            t.tick_direction,
            t.is_block_trade,
            t.is_rpi,
            t.seq,
            t.time_ms,
            now_ms,
        )
        for t in trades
    ]
    return tables.public_trades.rows(records, context)


# ---------------------------------------------------------------------------- the limit


@dataclass
class LimitResult:
    rows: int
    #: rows per second by batch size (rows per transaction)
    by_batch: dict[int, float]
    #: CPU seconds of the inserting thread by batch size (SQLite: all of SQLite's work)
    cpu_by_batch: dict[int, float] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return max(self.by_batch, key=lambda size: self.by_batch[size])

    @property
    def rows_per_second(self) -> float:
        return self.by_batch[self.batch]

    @property
    def cpu_us_per_row(self) -> float | None:
        """CPU per row at the best batch size, in µs."""
        cpu = self.cpu_by_batch.get(self.batch)
        return None if cpu is None else cpu / self.rows * 1e6


def limit(trades: list[TruthTrade], batches: tuple[int, ...], workdir: Path) -> LimitResult:
    """The most plain sqlite3 persists of these trades: the best of ``batches`` sizes."""
    return best_of(trades, batches, workdir, "limit", limit_once)


def floor(trades: list[TruthTrade], batches: tuple[int, ...], workdir: Path) -> LimitResult:
    """The floor: the same rows appended to an unindexed table, the best of ``batches``."""
    return best_of(trades, batches, workdir, "floor", floor_once)


def best_of(
    items: list[T],
    batches: tuple[int, ...],
    workdir: Path,
    name: str,
    once: Callable[[list[T], int, Path], tuple[float, float]],
) -> LimitResult:
    """``once(items, batch, file)`` for each batch size, each into a fresh file."""
    by_batch, cpu = {}, {}
    for batch in batches:
        path = workdir / f"{name}-{batch}.db"
        by_batch[batch], cpu[batch] = once(items, batch, path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return LimitResult(len(items), by_batch, cpu)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the recorder's PRAGMAs (``grid_db.factory``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def timed_inserts(
    conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]], batch: int, name: str
) -> tuple[float, float]:
    """(rows/s, CPU seconds) of ``executemany`` of ``rows``, one transaction per ``batch``."""
    inserted = 0
    started, cpu_started = time.perf_counter(), time.thread_time()
    for start in range(0, len(rows), batch):
        conn.execute("BEGIN")
        inserted += conn.executemany(sql, rows[start : start + batch]).rowcount
        conn.execute("COMMIT")
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    if inserted != len(rows):
        raise BenchError(f"{name}: {inserted} of {len(rows)} rows inserted")
    return len(rows) / seconds, cpu


def limit_once(trades: list[TruthTrade], batch: int, path: Path) -> tuple[float, float]:
    """(rows/s, CPU s) of ``executemany`` of the trade rows, one transaction per ``batch``.

    The same schema and indexes (created by grid_db), the same PRAGMAs as the recorder's
    connections (WAL, synchronous=NORMAL, foreign_keys=ON), the same statement
    (``grid_db``'s one INSERT of ``public_trades``, ``ON CONFLICT DO NOTHING``) and the
    same row values (``Trade`` records made rows by the table, with the run's context);
    the rows are built before the clock starts.
    """
    rows = trade_rows(trades, new_database(f"sqlite:///{path}"))
    conn = connect_sqlite(path)
    try:
        return timed_inserts(conn, insert_sql(tables.public_trades, "sqlite"), rows, batch, "limit")
    finally:
        conn.close()


FLOOR_TABLE = "floor_trades"


def floor_once(trades: list[TruthTrade], batch: int, path: Path) -> tuple[float, float]:
    """(rows/s, CPU s) of the limit's rows appended to a table with the columns of
    ``public_trades`` (whatever its layout: ``column_names``) and nothing else: no
    declared types, no key, no index, no constraint; rowids in insert order. The same
    PRAGMAs, one plain ``INSERT`` per row through ``executemany``, one transaction per
    ``batch``; the rows are built before the clock starts."""
    rows = trade_rows(trades, new_database(f"sqlite:///{path}"))
    columns = tables.public_trades.column_names
    conn = connect_sqlite(path)
    try:
        conn.execute(f"CREATE TABLE {FLOOR_TABLE} ({', '.join(columns)})")
        sql = (
            f"INSERT INTO {FLOOR_TABLE} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        return timed_inserts(conn, sql, rows, batch, "floor")
    finally:
        conn.close()


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
    #: "sqlite" or "postgresql"
    database: str = "sqlite"
    #: the database server's CPU time over the same span (PostgreSQL; None for SQLite,
    #: which runs inside the recorder process and is in ``cpu_seconds``)
    server_cpu_seconds: float | None = None
    #: the writer config group option (``writer=...``)
    writer: str = "default"
    #: the recorder's event-loop and database threads over the push (``ThreadTimes``)
    threads: dict[str, ThreadTimes] = field(default_factory=dict)
    #: public_trades on disk, in the database it recorded (SQLite)
    trade_bytes: TableBytes | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def trades_per_second(self) -> float:
        return self.trades / self.seconds

    @property
    def backpressure_pauses(self) -> int:
        return int(self.details.get("recorder", {}).get("backpressure_pauses") or 0)

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_seconds / self.trades * 1e6

    @property
    def server_cpu_ms_per_1000(self) -> float | None:
        if self.server_cpu_seconds is None:
            return None
        return self.server_cpu_seconds / self.trades * 1e6


@dataclass(frozen=True)
class ThreadTimes:
    """One thread over a span of ``wall`` seconds, from the scheduler's own accounting
    (``/proc/PID/task/TID/schedstat``): on a CPU, runnable but waiting for one (the
    machine's other work), and the rest: blocked (the GIL, the disk) or idle."""

    on_cpu: float
    run_queue: float
    wall: float

    @property
    def blocked_or_idle(self) -> float:
        return max(0.0, self.wall - self.on_cpu - self.run_queue)


class ThreadClock:
    """``ThreadTimes`` of some threads of a process, from now to ``since()``."""

    def __init__(self, pid: int, tids: dict[str, int]) -> None:
        self._paths = {
            name: Path(f"/proc/{pid}/task/{tid}/schedstat") for name, tid in tids.items()
        }
        self._start = self._snapshot()

    def _snapshot(self) -> tuple[int, dict[str, tuple[int, int]]]:
        out = {}
        for name, path in self._paths.items():
            try:
                on_cpu, run_queue, _ = path.read_text().split()
            except (OSError, ValueError):
                continue
            out[name] = (int(on_cpu), int(run_queue))
        return time.monotonic_ns(), out

    def since(self) -> dict[str, ThreadTimes]:
        (t0, before), (t1, after) = self._start, self._snapshot()
        return {
            name: ThreadTimes(
                (cpu - before[name][0]) / 1e9, (queue - before[name][1]) / 1e9, (t1 - t0) / 1e9
            )
            for name, (cpu, queue) in after.items()
            if name in before
        }


class TreeCpu:
    """CPU time (user + system) of a process and all its descendants, e.g. a PostgreSQL
    postmaster and its backends; ``since()`` counts a process started meanwhile from zero."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._start = self._snapshot()

    def _snapshot(self) -> dict[int, float]:
        out = {}
        for proc in (self.root, *self.root.children(recursive=True)):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            out[proc.pid] = float(times.user + times.system)
        return out

    def since(self) -> float:
        now = self._snapshot()
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in now.items())


def start_push(sim: SimProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Ask the simulator for a firehose (``path``) and wait until its frames are made and
    its push starts; its status then."""
    sim.post(path, body)
    deadline = time.monotonic() + 120
    while (status := sim.get(path))["state"] in ("waiting", "generating"):
        if time.monotonic() > deadline:
            raise BenchError(f"{path}: generation took over 120 s")
        time.sleep(0.005)
    if status["state"] == "failed":
        raise BenchError(f"{path} failed: {status['error']}")
    return dict(status)


def start_firehose(sim: SimProcess, symbol: str, trades: int, batch: int) -> None:
    """Ask for the trade firehose and wait until its trades are generated (the push starts)."""
    start_push(
        sim,
        "/sim/firehose",
        {"category": "linear", "symbol": symbol, "trades": trades, "batch": batch},
    )


def count_trades(database_url: str) -> tuple[int, int]:
    """(rows, distinct natural keys) in ``public_trades``."""
    rows, keys = url_scalars(
        database_url,
        "SELECT count(*), count(DISTINCT category || ' ' || symbol || ' ' || trade_id) "
        "FROM public_trades",
    )
    return int(rows), int(keys)


@dataclass
class PushTimes:
    """The recorder (and the simulator, and a database server) over one flood."""

    #: the recorder's ``reached`` event: first arrival and last commit
    reached: dict[str, Any]
    cpu_seconds: float
    threads: dict[str, ThreadTimes]
    server_cpu_seconds: float | None
    sim_cpu_share: float
    peak_rss_mb: float
    #: the firehose's status once the recorder reached its count
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """First arrival to last commit."""
        return float(self.reached["last_commit_ns"] - self.reached["first_arrival_ns"]) / 1e9


def measure_push(
    sim: SimProcess,
    recorder: RecorderProcess,
    name: str,
    firehose: tuple[str, dict[str, Any]],
    timeout: float,
    server_pid: int | None = None,
) -> PushTimes:
    """Once the recorder is ready, start the simulator's ``firehose`` (its path and
    request) and measure until the recorder reports ``reached``: its CPU, its threads',
    the server's and the simulator's."""
    ready = recorder.wait("ready", 60)
    recorder.profile(name, idle=True)
    start_push(sim, *firehose)
    threads = ThreadClock(recorder.proc.pid, ready.get("threads", {}))
    cpu_before = recorder.cpu_seconds()
    server = TreeCpu(server_pid) if server_pid is not None else None
    sim_ps = psutil.Process(sim.proc.pid)
    sim_cpu_before = sum(sim_ps.cpu_times()[:2])
    wall_before = time.monotonic()
    reached = recorder.wait("reached", timeout)
    thread_times = threads.since()
    cpu = recorder.cpu_seconds() - cpu_before
    server_cpu = server.since() if server is not None else None
    sim_cpu = sum(sim_ps.cpu_times()[:2]) - sim_cpu_before
    wall = time.monotonic() - wall_before
    return PushTimes(
        reached,
        cpu,
        thread_times,
        server_cpu,
        sim_cpu / wall,
        recorder.peak_rss_mb(),
        sim.get(firehose[0]),
    )


def flat_out(
    trades: int,
    batch: int,
    writer: str = "default",
    database_url: str | None = None,
    server_pid: int | None = None,
    name: str = "flat_out",
) -> FlatOutResult:
    """The firehose into the recorder: committed trades/s, CPU per 1,000 trades, peak RSS,
    and the time of its event-loop and database threads over the push.

    ``database_url``: where the recorder records (default: a SQLite file of its own, whose
    ``public_trades`` is then measured on disk); ``server_pid``: the database server's
    postmaster, whose CPU is measured too.
    """
    launch = Launch(["BTCUSDT"], ("--writer", writer, "--expect-trades", str(trades)), database_url)
    with processes(["--trade-rate", "0", "--seed", "1"], launch) as (sim, [recorder]):
        body = {"category": "linear", "symbol": "BTCUSDT", "trades": trades, "batch": batch}
        push = measure_push(
            sim, recorder, name, ("/sim/firehose", body), 60 + trades / 2000, server_pid
        )
        stopped = recorder.stop()
        stored, distinct = count_trades(recorder.database_url)
        truth = sim.trade_count("BTCUSDT")
        on_disk = None if database_url else table_bytes(recorder.db_path, "public_trades")
    result = FlatOutResult(
        trades=trades,
        batch=batch,
        seconds=push.seconds,
        cpu_seconds=push.cpu_seconds,
        peak_rss_mb=push.peak_rss_mb,
        sim_cpu_share=push.sim_cpu_share,
        stored=stored,
        truth=truth,
        database=recorder.database_url.split(":", 1)[0].split("+", 1)[0],
        server_cpu_seconds=push.server_cpu_seconds,
        writer=writer,
        threads=push.threads,
        trade_bytes=on_disk,
        details={"firehose": push.status, "recorder": stopped},
    )
    check_no_loss(name.replace("_", " "), stored, truth, stopped, expected=trades)
    if distinct != stored:
        raise BenchError(f"{name}: {stored} rows for {distinct} distinct trades")
    return result


#: counters of the recorder's last report that must be 0 for an honest figure
MUST_BE_ZERO = ("reconnects", "rejected_frames", "rows_rejected", "buffered", "book_gaps")


def check_no_loss(
    name: str, stored: int, truth: int, stopped: dict[str, Any], expected: int | None = None
) -> None:
    problems = []
    if stored != truth:
        problems.append(f"{stored} trades stored, the simulator printed {truth}")
    if expected is not None and truth != expected:
        problems.append(f"the simulator printed {truth} trades, {expected} were asked for")
    for key in (*MUST_BE_ZERO, "duplicates"):
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
    #: ticker_snapshots and public_trades on disk, in the database it recorded
    ticker_bytes: TableBytes | None = None
    trade_bytes: TableBytes | None = None
    #: the order-book depth recorded for every symbol (None: no books)
    book_depth: int | None = None
    #: book updates stored (snapshots and deltas) and the recorder's checkpoints
    books: int = 0
    checkpoints: int = 0
    book_bytes: TableBytes | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.seconds

    def arrival_rate(self, record: str) -> float:
        """Records of that type (``BookUpdate``, ...) per second over the window."""
        return float(self.details.get("arrived", {}).get(record, 0)) / self.seconds


WRITER_FLUSH_INTERVAL = {"default": 5.0, "low_latency": 0.2, "bulk": 10.0}


def realistic(
    writer: str,
    seconds: float,
    warmup: float,
    trade_rate: float,
    symbols: int = 20,
    book_depth: int | None = None,
) -> RealisticResult:
    """``symbols`` linear symbols, ``trade_rate`` trades/s each and a ticker every 100 ms;
    with ``book_depth``, that order book of each too, at Bybit's push interval."""
    names = list(REALISTIC_SYMBOLS[:symbols])
    books = ("--override", f"books.depths=[{book_depth}]") if book_depth else ()
    launch = Launch(names, ("--writer", writer, "--latency", *books))
    with processes(["--trade-rate", str(trade_rate), "--seed", "2"], launch) as (
        sim,
        [recorder],
    ):
        recorder.wait("ready", 60)
        recorder.profile(f"realistic_{writer}" + (f"_books{book_depth}" if books else ""), False)
        time.sleep(warmup)
        window = measure_window(recorder, seconds)
        rss = recorder.peak_rss_mb()
        stopped = recorder.stop()
        check_realistic_no_loss(sim, recorder.db_path, names, stopped)
        if book_depth:
            check_books_stored(sim, recorder.db_path, names, book_depth, "realistic")
        db = recorder.db_path
        return RealisticResult(
            writer=writer,
            symbols=len(names),
            trade_rate=trade_rate,
            seconds=window.wall,
            cpu_seconds=window.user + window.system,
            peak_rss_mb=rss,
            latency_ms=window.latency_ms,
            flush_interval=WRITER_FLUSH_INTERVAL.get(writer, float("nan")),
            trades=stopped["trades_committed"],
            tickers=stopped["tickers_committed"],
            ticker_bytes=table_bytes(db, "ticker_snapshots"),
            trade_bytes=table_bytes(db, "public_trades"),
            book_depth=book_depth,
            books=stopped["books_committed"],
            checkpoints=stopped["checkpoints_committed"],
            book_bytes=table_bytes(db, "orderbook_updates") if book_depth else None,
            details={
                "recorder": stopped,
                "cpu_user_s": window.user,
                "cpu_system_s": window.system,
                "arrived": window.arrived,
            },
        )


@dataclass(frozen=True)
class Window:
    """A measuring window of the recorder: wall time, its CPU, the rows' latencies."""

    wall: float
    user: float
    system: float
    latency_ms: dict[str, float | None]
    #: record type name (``Trade``, ``BookUpdate``, ...) -> records arrived in the window
    arrived: dict[str, int]


def measure_window(recorder: RecorderProcess, seconds: float) -> Window:
    """``mark``, ``seconds`` of recording, ``report``; every committed row clocked."""
    recorder.command("mark")
    recorder.wait("marked", 10)
    user_before, system_before = recorder.cpu_split()
    wall_before = time.monotonic()
    time.sleep(seconds)
    user, system = recorder.cpu_split()
    wall = time.monotonic() - wall_before
    recorder.command("report")
    report = recorder.wait("report", 10)
    if report["unclocked"]:
        raise BenchError(f"realistic: {report['unclocked']} rows without an arrival time")
    return Window(
        wall, user - user_before, system - system_before, report["latency_ms"], report["arrived"]
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
    for key in (*MUST_BE_ZERO, "gaps", "outages"):
        if stopped.get(key):
            problems.append(f"{key}={stopped[key]}")
    if problems:
        raise BenchError("realistic: " + "; ".join(problems))


def check_books_stored(
    sim: SimProcess, db: Path, symbols: list[str], depth: int, name: str
) -> dict[str, int]:
    """Every update of each ``orderbook.{depth}.{symbol}`` the simulator pushed, up to the
    last one stored, is stored once (snapshots and deltas by ``u`` and kind; the
    recorder's checkpoints aside), and no book gap was recorded. Returns the updates
    stored per symbol."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = {
            symbol: conn.execute(
                "SELECT update_id, kind FROM orderbook_updates WHERE symbol = ? AND depth = ? "
                "AND kind != 'checkpoint'",
                (symbol, depth),
            ).fetchall()
            for symbol in symbols
        }
        gaps = int(
            conn.execute("SELECT count(*) FROM gaps WHERE stream = 'orderbook'").fetchone()[0]
        )
    problems = [f"{gaps} book gaps recorded"] if gaps else []
    for symbol in symbols:
        problems += _book_mismatch(sim.truth_book_updates(symbol, depth), stored[symbol], symbol)
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))
    return {symbol: len(rows) for symbol, rows in stored.items()}


def _book_mismatch(
    truth: list[dict[str, Any]], stored: list[tuple[int, str]], symbol: str
) -> list[str]:
    """What differs between the pushed updates (up to the last stored) and the stored."""
    if not stored:
        return [f"no {symbol} book updates stored"]
    last = max(u for u, _ in stored)
    pushed = [(t["u"], t["type"]) for t in truth if t["u"] <= last]
    if sorted(pushed) == sorted(stored):
        return []
    missing, extra = set(pushed) - set(stored), set(stored) - set(pushed)
    twice = len(stored) - len(set(stored))
    return [f"{symbol} book: {len(missing)} missing, {len(extra)} not pushed, {twice} twice"]
