"""Helpers shared by the tests of every workspace member."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json as _json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, insert, select

from bybit_adapter import RestSettings, WebSocketSettings
from bybit_records import BookKind, BookLevels, BookUpdate, Category, Trade
from event_saver import WriterSettings
from grid_db import Base, DatabaseFactory, DatabaseSettings

_ids = itertools.count(1)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


class FakeClock:
    """Monotonic seconds that move only when the test moves them (``advance``, or ``now``),
    and a wall clock in nanoseconds that moves with them. Pass ``clock`` (or
    ``clock.monotonic``) and ``clock.wall_ns`` where the code under test takes its clocks."""

    def __init__(self, now: float = 0.0, wall_start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.now = now
        self.wall_start_ns = wall_start_ns

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall_ns(self) -> int:
        return self.wall_start_ns + round(self.now * 1e9)

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: (symbol, trade id) -> the counter value its time was made from
_trade_times: dict[tuple[str, str], int] = {}


def make_trade(symbol: str = "BTCUSDT", trade_id: str | None = None, **kw: object) -> Trade:
    """A ``Trade`` record with distinct id, time and seq; override any field by keyword.

    A trade id given again keeps the time it was first given: a trade's time is part of
    its key, as on the exchange."""
    n = next(_ids)
    trade_id = trade_id or f"id-{n}"
    fields: dict[str, object] = {
        "category": Category.LINEAR,
        "symbol": symbol,
        "trade_id": trade_id,
        "trade_time_ms": 1_700_000_000_000 + _trade_times.setdefault((symbol, trade_id), n),
        "side": "Buy",
        "price": "28560.50",
        "size": "0.001",
        "tick_direction": "PlusTick",
        "is_block_trade": False,
        "is_rpi": False,
        "seq": n,
        "exchange_ts_ms": 1_700_000_000_000 + n,
        "received_ts_ms": time.time_ns() // 1_000_000,
    }
    fields.update(kw)
    return Trade(**fields)  # type: ignore[arg-type]


def make_book_update(
    kind: BookKind,
    update_id: int,
    ts: int,
    bids: Sequence[Sequence[str]] | None = None,
    asks: Sequence[Sequence[str]] | None = None,
    **kw: object,
) -> BookUpdate:
    """A ``BookUpdate`` of BTCUSDT's linear 50-level book, sent at ``ts`` (no levels unless
    given, as ``[price, size]`` pairs); its seq and match time follow from ``update_id`` and
    ``ts``. Override any field by keyword."""
    fields: dict[str, object] = {
        "category": Category.LINEAR,
        "symbol": "BTCUSDT",
        "depth": 50,
        "kind": kind,
        "update_id": update_id,
        "seq": update_id * 7,
        "match_ts_ms": ts - 1,
        "exchange_ts_ms": ts,
        "received_ts_ms": ts + 5,
        "bids": levels(bids or ()),
        "asks": levels(asks or ()),
    }
    fields.update(kw)
    return BookUpdate(**fields)  # type: ignore[arg-type]


def levels(pairs: Iterable[Sequence[str]]) -> BookLevels:
    """``[[price, size], ...]`` as a ``BookUpdate`` holds them."""
    return tuple((price, size) for price, size in pairs)


@contextmanager
def prepared_database(url: str, **settings: Any) -> Iterator[DatabaseFactory]:
    """A ``DatabaseFactory`` on ``url`` (``settings``: more ``DatabaseSettings`` fields) with
    every table created; disposed of on exit."""
    with DatabaseFactory(DatabaseSettings(url=url, **settings)) as database:
        database.create_tables()
        yield database


def recorder_sqlite(path: Path) -> Engine:
    """A SQLite database at ``path`` (its folders made) with every grid_db table, for rows
    written by column name; dispose of the engine when done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    return engine


# ---- one set of fast timings for every test that records --------------------------

#: stream bounds scaled down so faults are found and healed within a second or two
FAST_STREAM = WebSocketSettings(
    ping_interval=0.5,
    pong_timeout=1.0,
    # Half of it is the jump between two frames' exchange stamps read as a pause: one
    # second, more than the in-process simulator's loop stalls on a loaded machine.
    silence_timeout=2.0,
    stall_timeout=4.0,
    open_timeout=1.0,
    connect_timeout=1.0,
    # generous: a loaded CI machine can take a second to answer (slow_ack tests use 3 s)
    ack_timeout=2.0,
    backoff_initial=0.05,
    backoff_max=0.3,
)
#: private streams are quiet by nature: pongs, not data, prove them alive
FAST_PRIVATE = dataclasses.replace(
    FAST_STREAM, silence_timeout=None, stall_timeout=None, auth_retry_min=0.5
)
FAST_REST = RestSettings(timeout=2.0, max_retries=2, retry_initial=0.05, retry_max=0.1)
FAST_WRITER = WriterSettings(batch_size=50, flush_interval=0.2)
#: the same timings as Hydra overrides of the ``recorder`` command
FAST_OVERRIDES = [
    "connection.ping_interval_seconds=0.5",
    "connection.pong_timeout_seconds=1",
    "connection.stall_timeout_seconds=3",
    "connection.open_timeout_seconds=1",
    "connection.ack_timeout_seconds=2",
    "connection.reconnect_initial_delay_seconds=0.1",
    "connection.reconnect_max_delay_seconds=1",
    "gap_threshold_seconds=1.5",
    "flush_interval=0.3",
    "health_log_interval=0.5",
    "rest.timeout_seconds=1",
    "rest.max_retries=2",
]


# ---- end-to-end helpers: real console scripts as subprocesses ----------------


def script(name: str) -> str:
    """A console script of this environment (next to the interpreter)."""
    return str(Path(sys.executable).with_name(name))


def unused_port() -> int:
    """A local TCP port nothing listens on: free to listen on, refused when connected to."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def start_process(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stderr: int = subprocess.STDOUT,
) -> subprocess.Popen[str]:
    """``command`` (a console script) in a process group of its own, its output piped as text
    (stderr into stdout, unless ``stderr=subprocess.PIPE``); ``env`` adds to this environment."""
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def start_recorder(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """The ``recorder`` console script with ``args`` (Hydra overrides), as ``start_process``."""
    return start_process([script("recorder"), *args], env=env)


def finish(proc: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Wait for ``proc`` to exit, with its output; after ``timeout`` seconds kill its process
    group and fail the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{proc.args!r} did not exit within {timeout}s:\n{out[-3000:]}\n{(err or '')[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_sync(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def stop_process_group(proc: subprocess.Popen[Any]) -> None:
    """End a process started with ``start_new_session``, and its children: SIGTERM to its
    group, SIGKILL if it is still running 10 s later. Nothing to do once it has exited."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


#: The account ``SimProcess.with_account()`` serves: a key and secret no real account has.
SIM_API_KEY = "KEY-e2e-7f3a91c0d2"
SIM_API_SECRET = "SECRET-e2e-5b8e4d1f6a"


def sim_account_env(secret: str = SIM_API_SECRET) -> dict[str, str]:
    """The environment that hands a recorder run with ``account=env`` the key of
    ``SimProcess.with_account()``'s account, with its secret (or ``secret``: a wrong one)."""
    return {"BYBIT_API_KEY": SIM_API_KEY, "BYBIT_API_SECRET": secret}


def recording_overrides(sim: Any) -> list[str]:
    """Overrides that point a recorder at ``sim``, an in-process simulator
    (``bybit_sim.BybitSimulator``), with the tests' fast timings."""
    return [
        f"network.rest_url={sim.rest_url}",
        f"network.public_ws_url='{sim.public_ws_url}'",
        f"network.private_ws_url={sim.private_ws_url}",
        *FAST_OVERRIDES,
        "flush_interval=0.2",
    ]


class SimProcess:
    """``bybit-sim`` on a free port, as a subprocess (``prefix``: run it through, e.g.,
    ``ip netns exec NS``; then pass ``--host`` an address of that namespace)."""

    @classmethod
    def with_account(cls, *args: str) -> SimProcess:
        """20 trades/s, and an account whose keys are ``SIM_API_KEY``/``SIM_API_SECRET``."""
        account = ("--api-key", SIM_API_KEY, "--api-secret", SIM_API_SECRET)
        return cls("--trade-rate", "20", *account, *args)

    def __init__(self, *args: str, prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, script("bybit-sim"), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"listening on (http://([\d.]+):(\d+))", line)
            if match:
                self.rest_url = match.group(1)
                self.host = match.group(2)
                self.port = int(match.group(3))
                break
            if not line and self.proc.poll() is not None:
                break
        else:
            self.stop()
            raise AssertionError(f"bybit-sim did not start: {line!r}")
        if not hasattr(self, "port"):
            raise AssertionError(f"bybit-sim did not start: {line!r}")

    def network_overrides(self) -> list[str]:
        base = f"ws://{self.host}:{self.port}"
        return [
            "network=local",
            f"network.rest_url={self.rest_url}",
            f"network.public_ws_url='{base}/v5/public/{{category}}'",
            f"network.private_ws_url={base}/v5/private",
        ]

    def recording_overrides(self) -> list[str]:
        """``network_overrides`` and ``FAST_OVERRIDES``: a recorder on this simulator, with
        the tests' fast timings."""
        return [*self.network_overrides(), *FAST_OVERRIDES]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.rest_url + path, timeout=10) as reply:
            return _json.loads(reply.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.rest_url + path,
            data=_json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return _json.loads(reply.read())

    def drop_connections(self, refuse_for: float = 0) -> None:
        """Drop every connection; with ``refuse_for``, refuse reconnects for that many seconds."""
        if refuse_for:
            self.post("/sim/faults/refuse_connections", {"seconds": refuse_for})
        self.post("/sim/faults/drop_connections", {})

    def truth_trades(self, symbol: str, category: str = "linear") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            f"/sim/ground-truth/trades?category={category}&symbol={symbol}"
        )
        return result

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def db_count(db: Path, sql: str) -> int:
    """A count from a session DB, 0 while it does not exist yet."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return list(conn.execute(sql).fetchall())


# ---- the completeness invariant, checked against a simulator's truth -----------------


def invariant_violations(engine: Any, truth: list[Any], symbol: str, until_ms: int) -> list[str]:
    """What breaks "every trade is stored exactly once, or lies inside a gap that says so".

    ``truth`` holds the simulator's trades (``trade_id``, ``time_ms``, ``price``, ``size``,
    ``side``) of one symbol; trades after ``until_ms`` are not judged. A missing trade is
    excused only by a ``partial`` gap's unrecovered range or an ``unfillable`` gap, never
    by a ``filled`` one.
    """
    from sqlalchemy import select

    from grid_db import tables

    t, g = tables.public_trades.table.c, tables.gaps.table.c
    with engine.connect() as conn:
        stored = conn.execute(
            select(t.trade_id, t.trade_time_ms, t.price, t.size, t.side).where(t.symbol == symbol)
        ).all()
        gaps = conn.execute(
            select(g.fill_status, g.start_ts_ms, g.end_ts_ms, g.recovered_from_ts_ms).where(
                g.symbol == symbol, g.stream == "publicTrade"
            )
        ).all()
    problems = []
    ids = [row.trade_id for row in stored]
    if len(ids) != len(set(ids)):
        problems.append(f"{symbol}: {len(ids) - len(set(ids))} duplicate trade(s) stored")
    by_id = {row.trade_id: row for row in stored}

    def excused(at: int) -> bool:
        for gap in gaps:
            if gap.fill_status == "unfillable" and gap.start_ts_ms <= at <= gap.end_ts_ms:
                return True
            if gap.fill_status == "partial" and gap.start_ts_ms <= at <= gap.recovered_from_ts_ms:
                return True
        return False

    for trade in truth:
        if trade.time_ms > until_ms:
            continue
        row = by_id.get(trade.trade_id)
        if row is None:
            if not excused(trade.time_ms):
                problems.append(f"{symbol}: trade {trade.trade_id} at {trade.time_ms} missing")
        elif (row.price, row.size, row.side, row.trade_time_ms) != (
            trade.price,
            trade.size,
            trade.side,
            trade.time_ms,
        ):
            problems.append(f"{symbol}: trade {trade.trade_id} stored with other values")
    return problems


def settled_violations(
    sim: Any, engine: Any, symbols: Sequence[str], settle_ms: int = 2_000
) -> list[str]:
    """``invariant_violations`` of every symbol of an in-process simulator (linear), judging
    the trades printed until ``settle_ms`` ago: the newest may still be on their way."""
    now_ms = time.time_ns() // 1_000_000
    problems = []
    for symbol in symbols:
        truth = sim.ground_truth.trades("linear", symbol)
        until = max((t.time_ms for t in truth if t.time_ms < now_ms - settle_ms), default=0)
        problems += invariant_violations(engine, truth, symbol, until)
    return problems


# ---- a database as the first release made it ------------------------------------------

#: the first release's schema (git 9e51506), per dialect: see the file's header
RELEASE_1_SQL = Path(__file__).with_name("release_1.sql")


def release_1_ddl(dialect: str) -> list[str]:
    """The first release's CREATE statements on ``dialect``, in order."""
    id_type = {"sqlite": "INTEGER", "postgresql": "BIGSERIAL"}[dialect]
    text = RELEASE_1_SQL.read_text().replace("ID_TYPE", id_type)
    lines = [line for line in text.splitlines() if not line.startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def create_release_1(engine: Any) -> MetaData:
    """The first release's tables in ``engine``'s database, as that release made them."""
    with engine.begin() as connection:
        for statement in release_1_ddl(engine.dialect.name):
            connection.exec_driver_sql(statement)
    old = MetaData()
    old.reflect(bind=engine)
    return old


def by_run_ref(conn: Any, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of trades or tickers given with a ``run_id``, as stored: with the run's number
    (``run_ref``, numbering the run in ``run_refs`` first if it has no number yet)."""
    from grid_db import RunRef

    refs = {r.run_id: r.ref for r in conn.execute(select(RunRef.run_id, RunRef.ref))}
    for run_id in {row["run_id"] for row in rows} - refs.keys() - {None}:
        conn.execute(insert(RunRef).values(run_id=run_id))
        refs[run_id] = conn.scalar(select(RunRef.ref).where(RunRef.run_id == run_id))
    return [
        {**{k: v for k, v in row.items() if k != "run_id"}, "run_ref": refs.get(row["run_id"])}
        for row in rows
    ]
