"""The PostgreSQL scenarios: the COPY limit, the recorder flat out, two recorders, one database.

* ``limit``: plain psycopg 3 ``COPY public_trades (...) FROM STDIN`` of the same trade rows
  as the SQLite limit, into a fresh database with the recorder's schema, one transaction
  per batch; the best of a few batch sizes.
* the recorder flat out is ``bench_scenarios.flat_out`` with a PostgreSQL ``database_url``.
* ``two_recorders``: two recorder processes record the same firehose symbol into one
  database at once (a redundant pair); each trade must be stored exactly once.

The server is a throwaway cluster of ``testing/pg_cluster.py``, the test suite's own: it
runs with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off. Then
``BenchCluster.make_durable`` restarts it with the three at PostgreSQL's defaults (on), for
one more run of the limit and the recorder, with commits that reach the disk.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench_scenarios import (
    BenchError,
    Launch,
    LimitResult,
    TreeCpu,
    count_trades,
    new_database,
    processes,
    start_firehose,
    stop_all,
    trade_rows,
    url_scalars,
)

# testing/, which bench_scenarios puts on sys.path. The two `X as X` are re-exported (run.py
# and test_bench_smoke.py use them as bench_postgres.X).
from pg_cluster import PostgresCluster, find_postgres_binaries
from pg_cluster import PostgresClusterError as PostgresClusterError
from pg_cluster import missing_binaries_reason as missing_binaries_reason

from bybit_sim import TruthTrade
from grid_db import tables

#: the settings the test cluster turns off, and ``BenchCluster.make_durable`` turns on
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")
_OFF = re.compile(r"-c (" + "|".join(DURABILITY) + r")=off\b")


class BenchCluster(PostgresCluster):
    """The test cluster, which ``make_durable`` restarts with fsync, synchronous_commit and
    full_page_writes on (PostgreSQL's defaults).

    ``pg_cluster`` has no switch for them: once durable, its ``pg_ctl start`` options are
    rewritten on their way to the command line, and the running server's settings are
    checked, so a change in ``pg_cluster`` fails loudly instead of measuring the wrong thing.
    """

    durable = False

    def _command(self, argv: list[str], *args: Any, **kwargs: Any) -> list[str]:
        if self.durable:
            argv = [_OFF.sub(r"-c \1=on", arg) for arg in argv]
        return super()._command(argv, *args, **kwargs)

    def settings(self) -> dict[str, str]:
        import psycopg

        with psycopg.connect(conninfo(self.url()), autocommit=True) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in DURABILITY
            }

    def check(self) -> None:
        want = "on" if self.durable else "off"
        settings = self.settings()
        if any(value != want for value in settings.values()):
            raise PostgresClusterError(f"the bench cluster runs with {settings}, not all {want}")

    def make_durable(self) -> None:
        """Restart the server (same data, same port) with the three settings on."""
        os.sync()  # what the fsync-off runs left in the page cache is not written meanwhile
        self.stop_server()
        self.durable = True
        self.restart_server()
        self.check()


def conninfo(database_url: str) -> str:
    """A libpq URL from the SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", database_url)


@dataclass
class Server:
    """The running cluster, for the scenarios: fresh databases, its processes' CPU."""

    cluster: BenchCluster

    def database(self) -> str:
        """The URL of a new, empty database."""
        return self.cluster.url(self.cluster.create_database())

    def drop(self, database_url: str) -> None:
        self.cluster.drop_database(database_url.rsplit("/", 1)[1])

    @property
    def pid(self) -> int:
        """The postmaster's (its backends and helpers are its children)."""
        return int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])

    @property
    def durable(self) -> bool:
        return self.cluster.durable

    @property
    def label(self) -> str:
        return "fsync on" if self.durable else "fsync off"

    def make_durable(self) -> None:
        self.cluster.make_durable()


def unavailable() -> str | None:
    """Why the PostgreSQL scenarios cannot run here (one line), or None."""
    if find_postgres_binaries() is None:
        return missing_binaries_reason("the PostgreSQL scenarios were skipped")
    return None


@contextmanager
def server() -> Iterator[Server]:
    """A throwaway cluster of ``testing/pg_cluster.py`` (fsync off), removed afterwards."""
    binaries = find_postgres_binaries()
    if binaries is None:
        raise PostgresClusterError(missing_binaries_reason())
    cluster = BenchCluster(binaries)
    cluster.start()
    try:
        cluster.check()
        yield Server(cluster)
    finally:
        cluster.stop()


def version() -> str:
    binaries = find_postgres_binaries()
    return binaries.version if binaries is not None else "-"


@dataclass
class RowBytes:
    """What a row takes on disk in PostgreSQL, measured in a recorder's database."""

    #: public_trades, heap and every index (``pg_total_relation_size``) per row
    trade_total: float
    #: public_trades, the heap alone (tuples, headers, free space) per row
    trade_heap: float
    #: the index of the table's unique key (whatever its columns; every unique or primary
    #: key index of the table) per row: every insert probes it, so it is the part that
    #: must stay in memory
    trade_key_index: float
    #: ticker_snapshots: the average row's own size (``pg_column_size``, no index)
    ticker_tuple: float | None


def row_bytes(database_url: str) -> RowBytes:
    """After a VACUUM, so that the sizes hold what was written, and only that."""
    import psycopg

    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("VACUUM public_trades, ticker_snapshots")
        total, heap, key, rows = conn.execute(
            "SELECT pg_total_relation_size('public_trades'), pg_relation_size('public_trades'),"
            " (SELECT coalesce(sum(pg_relation_size(indexrelid)), 0)::bigint FROM pg_index"
            "  WHERE indrelid = 'public_trades'::regclass AND indisunique),"
            " count(*) FROM public_trades"
        ).fetchone()  # type: ignore[misc]
        (ticker,) = conn.execute(
            "SELECT avg(pg_column_size(t.*)) FROM ticker_snapshots t"
        ).fetchone()  # type: ignore[misc]
    return RowBytes(
        total / rows, heap / rows, key / rows, float(ticker) if ticker is not None else None
    )


# ---------------------------------------------------------------------------- the limit


@dataclass
class PgLimitResult(LimitResult):
    durable: bool = False
    #: the server's CPU seconds by batch size
    server_cpu: dict[int, float] = field(default_factory=dict)

    @property
    def server_cpu_ms_per_1000(self) -> float:
        return self.server_cpu[self.batch] / self.rows * 1e6


def limit(truth: list[TruthTrade], batches: tuple[int, ...], pg: Server) -> PgLimitResult:
    """The most plain psycopg COPY persists of these trades: the best of ``batches`` sizes.

    Each batch size gets a fresh database (the recorder's schema, created by grid_db);
    the rows are the SQLite limit's (the firehose's trades made ``Trade`` records, then
    rows by ``tables.public_trades``), built before the clock starts.
    """
    trades = len(truth)
    by_batch, server_cpu = {}, {}
    for batch in batches:
        url = pg.database()
        rows = trade_rows(truth, new_database(url))
        by_batch[batch], server_cpu[batch] = limit_once(rows, batch, url, pg.pid)
        del rows
        stored, distinct = count_trades(url)
        if not stored == distinct == trades:
            raise BenchError(f"PostgreSQL limit: {stored} rows, {distinct} distinct, {trades} sent")
        pg.drop(url)
    return PgLimitResult(trades, by_batch, durable=pg.durable, server_cpu=server_cpu)


def limit_once(
    rows: list[tuple[Any, ...]], batch: int, database_url: str, server_pid: int
) -> tuple[float, float]:
    """(rows/s, server CPU s) of ``COPY public_trades (columns) FROM STDIN``, one
    transaction per ``batch`` rows, each row written with psycopg's ``write_row``."""
    import psycopg

    table = tables.public_trades
    statement = f"COPY {table.name} ({', '.join(table.column_names)}) FROM STDIN"
    with psycopg.connect(conninfo(database_url)) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        server = TreeCpu(server_pid)
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows[start : start + batch]:
                    copy.write_row(row)
            conn.commit()
        seconds = time.perf_counter() - started
        cpu = server.since()
    return len(rows) / seconds, cpu


# ---------------------------------------------------------------------------- two recorders


@dataclass
class TwoRecordersResult:
    trades: int
    batch: int
    #: first arrival (at either) to the first recorder's last commit: by then every
    #: trade is stored (a recorder's last commit returns once its every trade is in the
    #: table, written by it or by the other)
    seconds: float
    #: per recorder: first arrival to its own last commit
    recorder_seconds: list[float]
    #: first arrival (at either) to the last commit of both
    both_seconds: float
    #: per recorder: rows it inserted (new) and rows it found stored (duplicates)
    written: list[int]
    duplicates: list[int]
    cpu_seconds: list[float]
    server_cpu_seconds: float
    peak_rss_mb: list[float]
    stored: int
    distinct: int
    truth: int
    #: outages the recorders saw (a pause of the firehose longer than the gap threshold,
    #: each followed by a REST refill of trades found stored)
    outages: int = 0
    #: deadlocks the server detected in the database (each stalls both writers for
    #: ``deadlock_timeout``, 1 s, before the victim's transaction is rolled back)
    deadlocks: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def trades_per_second(self) -> float:
        """Unique trades committed per second, the pair together."""
        return self.trades / self.seconds

    @property
    def recorder_rows_per_second(self) -> list[float]:
        """Rows each recorder committed (new or found stored) per second."""
        return [self.trades / s for s in self.recorder_seconds]

    @property
    def offered_rows_per_second(self) -> float:
        """Rows the database took from both (each trade twice) per second."""
        return 2 * self.trades / self.both_seconds

    @property
    def server_cpu_ms_per_1000(self) -> float:
        return self.server_cpu_seconds / self.trades * 1e6


def two_recorders(trades: int, batch: int, pg: Server) -> TwoRecordersResult:
    """Two recorders record one firehose symbol into one database, at once.

    The firehose sends each frame to every subscriber of the topic (one after the other,
    each paced by its own socket), so both get every trade. The schema is created before
    either starts, as an operator would for a fleet.
    """
    url = pg.database()
    new_database(url)
    launch = Launch(["BTCUSDT"], ("--expect-trades", str(trades)), url)
    with processes(["--trade-rate", "0", "--seed", "1"], launch, launch) as (sim, recorders):
        for i, recorder in enumerate(recorders):
            recorder.wait("ready", 60)
            recorder.profile(f"two_recorders_{i}", idle=True)
        start_firehose(sim, "BTCUSDT", trades, batch)
        cpu_before = [r.cpu_seconds() for r in recorders]
        server = TreeCpu(pg.pid)
        reached = [r.wait("reached", 60 + trades / 1000) for r in recorders]
        cpu = [r.cpu_seconds() - before for r, before in zip(recorders, cpu_before, strict=True)]
        server_cpu = server.since()
        rss = [r.peak_rss_mb() for r in recorders]
        status = sim.get("/sim/firehose")
        stopped = stop_all(recorders)
        stored, distinct = count_trades(url)
        truth = sim.trade_count("BTCUSDT")
    # The backends flushed their statistics when the recorders disconnected.
    (deadlocks,) = url_scalars(
        url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    pg.drop(url)
    first = min(r["first_arrival_ns"] for r in reached)
    result = TwoRecordersResult(
        trades=trades,
        batch=batch,
        seconds=(min(r["last_commit_ns"] for r in reached) - first) / 1e9,
        recorder_seconds=[(r["last_commit_ns"] - r["first_arrival_ns"]) / 1e9 for r in reached],
        both_seconds=(max(r["last_commit_ns"] for r in reached) - first) / 1e9,
        written=[s["trades_written"] for s in stopped],
        duplicates=[s["duplicates"] for s in stopped],
        cpu_seconds=cpu,
        server_cpu_seconds=server_cpu,
        peak_rss_mb=rss,
        stored=stored,
        distinct=distinct,
        truth=truth,
        deadlocks=int(deadlocks),
        outages=sum(s["outages"] for s in stopped),
        details={"firehose": status, "recorders": stopped},
    )
    problems = []
    if not stored == distinct == truth == trades:
        problems.append(f"{stored} rows, {distinct} distinct, {truth} printed, {trades} asked")
    if sum(result.written) != truth:
        problems.append(f"the recorders inserted {result.written} rows, {truth} printed")
    for i, s in enumerate(stopped):
        # More is fine: after a pause (the firehose waits on the slower socket) a recorder
        # refills from REST, and finds those trades stored.
        if s["trades_received"] < trades:
            problems.append(f"recorder {i} received {s['trades_received']} trades")
        for key in ("reconnects", "rejected_frames", "rows_rejected", "buffered"):
            if s.get(key):
                problems.append(f"recorder {i}: {key}={s[key]}")
    if problems:
        raise BenchError("two recorders: " + "; ".join(problems))
    return result
