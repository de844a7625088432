"""The benchmark's table: figures, targets, the machine, and docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from bench_books import BookFloodResult
from bench_disk import TICKERS_PER_DAY, TRADES_PER_DAY, TableBytes, gb_per_day
from bench_pipeline import PipelineResult
from bench_postgres import PgLimitResult, RowBytes, TwoRecordersResult
from bench_scenarios import FlatOutResult, LimitResult, RealisticResult, ThreadTimes

from grid_db import tables as grid_tables

#: the targets of the issues, checked against every run's figures
#: SQLite, flooded: committed trades/s as a share of the floor (issue 14)
FLOOR_RATIO = 0.70
#: PostgreSQL, flat out: committed trades/s as a share of its COPY limit
FLAT_OUT_RATIO = 0.60
PARSE_SPEEDUP = 2.0
CPU_SHARE = 0.05
RSS_MB = 150.0
P99_MARGIN_MS = 100.0
#: issue 15: the book flood's committed updates/s as a share of its limit (plain sqlite3
#: inserts of the same rows; method.md says why a fifth)
BOOK_FLOOD_RATIO = 0.2
#: issue 15: the realistic scenario with depth-50 books, share of one core
BOOK_CPU_SHARE = 0.10
#: bytes on disk per stored book update, at most this share of the frame's own bytes
BOOK_BYTES_RATIO = 1.0
#: Bybit's push intervals (ms) of the depths the bench records (linear)
BOOK_PUSH_MS = {50: 20, 200: 100}


@dataclass
class PostgresRun:
    """The PostgreSQL scenarios; ``skipped`` says why they did not run."""

    version: str = "-"
    skipped: str | None = None
    limit: PgLimitResult | None = None
    flat_out: FlatOutResult | None = None
    #: one per run, in run order
    two_recorders: list[TwoRecordersResult] = field(default_factory=list)
    durable_limit: PgLimitResult | None = None
    durable_flat_out: FlatOutResult | None = None
    #: row sizes in the flat-out database (fsync off)
    row_bytes: RowBytes | None = None


@dataclass
class Run:
    smoke: bool
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    cpu_before: Any = field(default_factory=psutil.cpu_times)
    #: share of the machine's CPU time the hypervisor took (steal) during the run
    steal: float | None = None
    seconds: float = 0.0
    floor: LimitResult | None = None
    limit: LimitResult | None = None
    #: the SQLite floods, one per writer option, in run order
    flat_outs: list[FlatOutResult] = field(default_factory=list)
    realistic: list[RealisticResult] = field(default_factory=list)
    book_flood: BookFloodResult | None = None
    pipeline: PipelineResult | None = None
    postgres: PostgresRun = field(default_factory=PostgresRun)

    def realistic_run(self, writer: str = "default", books: bool = False) -> RealisticResult | None:
        """The realistic run of ``writer``, with order books or without."""
        return next(
            (
                r
                for r in self.realistic
                if r.writer == writer and (r.book_depth is not None) == books
            ),
            None,
        )

    @property
    def flat_out(self) -> FlatOutResult | None:
        """The SQLite flood with ``writer=default`` (else the first one)."""
        candidates = [f for f in self.flat_outs if f.writer == "default"] or self.flat_outs
        return candidates[0] if candidates else None


def _package(name: str) -> str:
    try:
        return version(name)
    except Exception:
        return "-"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else "")
    except Exception:
        return "unknown"


def finish(run: Run, seconds: float) -> None:
    """Note the run's length and how much CPU time the hypervisor took meanwhile."""
    run.seconds = seconds
    before, after = run.cpu_before, psutil.cpu_times()
    total = sum(after) - sum(before)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    run.steal = steal / total if total > 0 else None


def machine(run: Run) -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in run.load_before)
    steal = "" if run.steal is None else f"; CPU steal during the run: {run.steal:.1%}"
    return [
        f"- **When**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(run.started))}, "
        f"{run.seconds:.0f} s for the whole run; git {_git_commit()}",
        f"- **Machine**: {os.cpu_count()} x {_cpu_model()}, {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; load average before the run: {load}{steal}",
        f"- **Software**: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"msgspec {_package('msgspec')}, aiohttp {_package('aiohttp')}, "
        f"SQLAlchemy {_package('sqlalchemy')}, {run.postgres.version}, "
        f"psycopg {_package('psycopg')}",
    ]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _cpu_share(r: RealisticResult) -> str:
    user, system = r.details.get("cpu_user_s"), r.details.get("cpu_system_s")
    if user is None or system is None:
        return f"{r.cpu_share:.1%}"
    return f"{r.cpu_share:.1%} ({user / r.seconds:.1%} + {system / r.seconds:.1%})"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


#: (scenario, measure, result, target, met): a row of the summary table
SummaryRow = tuple[str, str, str, str, str]


def _tried(by_batch: dict[int, float]) -> str:
    return ", ".join(f"{b:,}: {_n(r)}" for b, r in sorted(by_batch.items()))


def _limit_row(limit: LimitResult, name: str) -> SummaryRow:
    return (
        name,
        f"rows/s committed, best batch size (tried {_tried(limit.by_batch)})",
        f"{_n(limit.rows_per_second)} rows/s (batches of {limit.batch:,})",
        "",
        "",
    )


def _flat_rate_row(
    flat: FlatOutResult, limit: LimitResult | None, name: str, limit_name: str
) -> SummaryRow:
    """The flat-out rate, as a share of ``limit`` (called ``limit_name``) when it ran."""
    rate = flat.trades_per_second
    if limit is None:
        return (name, "committed trades/s", _n(rate), "", "")
    ratio = rate / limit.rows_per_second
    return (
        name,
        "committed trades/s (first arrival to last commit)",
        f"{_n(rate)} = **{ratio:.0%}** of {limit_name}",
        f"≥ {FLAT_OUT_RATIO:.0%} of the limit",
        _yes(ratio >= FLAT_OUT_RATIO),
    )


def _peak_rss_row(peak_rss_mb: float, note: str = "") -> SummaryRow:
    return (
        "",
        "peak RSS",
        f"{peak_rss_mb:.0f} MB{note}",
        f"< {RSS_MB:.0f} MB",
        _yes(peak_rss_mb < RSS_MB),
    )


def _flat_stored_row(flat: FlatOutResult) -> SummaryRow:
    return (
        "",
        "trades stored / printed by the simulator",
        f"{flat.stored:,} / {flat.truth:,}",
        "none dropped",
        _yes(flat.stored == flat.truth == flat.trades),
    )


def _floor_row(floor: LimitResult) -> SummaryRow:
    cpu = floor.cpu_us_per_row
    return (
        "**Floor**: plain sqlite3, an unindexed append",
        f"rows/s committed, best batch size (tried {_tried(floor.by_batch)})",
        f"{_n(floor.rows_per_second)} rows/s (batches of {floor.batch:,})"
        + (f"; CPU {cpu:.2f} µs per row" if cpu is not None else ""),
        "",
        "",
    )


def _sqlite_limit_row(limit: LimitResult, floor: LimitResult | None) -> SummaryRow:
    name, measure, result, _, _ = _limit_row(
        limit, "**Limit**: plain sqlite3, the recorder's schema"
    )
    if floor is not None:
        result += f" = {limit.rows_per_second / floor.rows_per_second:.2f}x the floor"
    cpu = limit.cpu_us_per_row
    if cpu is not None:
        result += f"; CPU {cpu:.2f} µs per row"
    return (name, measure, result, "", "")


def _flood_rows(
    flat: FlatOutResult, floor: LimitResult | None, limit: LimitResult | None
) -> list[SummaryRow]:
    """A SQLite flood: its rate against the floor (the target) and the limit, and why."""
    rate = flat.trades_per_second
    name = (
        f"**Recorder, flood**: {flat.trades:,} trades in frames of {flat.batch:,}, "
        f"`writer={flat.writer}`"
    )
    result, target, met = f"{_n(rate)} trades/s", f"≥ {FLOOR_RATIO}x the floor", "n/a"
    if floor is not None:
        ratio = rate / floor.rows_per_second
        result = f"{_n(rate)} = **{ratio:.2f}x** the floor"
        met = _yes(ratio >= FLOOR_RATIO)
        if ratio < FLOOR_RATIO:
            needed = FLOOR_RATIO * floor.rows_per_second
            result += f" (missed by {1 - rate / needed:.0%}: {FLOOR_RATIO}x is {_n(needed)})"
    if limit is not None:
        result += f", {rate / limit.rows_per_second:.2f}x the limit"
    rows: list[SummaryRow] = [
        (name, "committed trades/s (first arrival to last commit)", result, target, met)
    ]
    rows += _why_row(_flood_why(flat, floor, limit))
    rows.append(
        ("", "CPU per 1,000 trades (all threads)", f"{flat.cpu_ms_per_1000:.1f} ms", "", "")
    )
    rows.append(_peak_rss_row(flat.peak_rss_mb))
    rows.append(_flat_stored_row(flat))
    return rows


def _flood_why(flat: FlatOutResult, floor: LimitResult | None, limit: LimitResult | None) -> str:
    """The database thread's and the event loop's time, against the plain inserts' CPU."""
    plain = [("the limit", limit), ("the floor", floor)]
    return _threads_why(flat.threads, flat.trades, "trade", plain, flat.backpressure_pauses)


def _threads_why(
    threads: dict[str, ThreadTimes],
    count: int,
    noun: str,
    plain: list[tuple[str, LimitResult | None]],
    pauses: int,
) -> str:
    """The database thread's and the event loop's time over a flood of ``count`` ``noun``s,
    against the CPU per row of the plain inserts named in ``plain``."""
    parts = []
    db, loop = threads.get("database"), threads.get("event_loop")
    if db is not None:
        text = (
            f"database thread: on a CPU {db.on_cpu / db.wall:.0%}, waiting for one "
            f"{db.run_queue / db.wall:.0%}, blocked or idle {db.blocked_or_idle / db.wall:.0%} "
            f"(the GIL, the disk, the next batch); {db.on_cpu / count * 1e6:.2f} µs of "
            f"CPU per {noun}"
        )
        cpu = [
            f"{name}'s {r.cpu_us_per_row:.2f}"
            for name, r in plain
            if r is not None and r.cpu_us_per_row is not None
        ]
        if cpu:
            text += f" (plain sqlite3: {' and '.join(cpu)} per row)"
        parts.append(text)
    if loop is not None:
        parts.append(
            f"event loop: on a CPU {loop.on_cpu / loop.wall:.0%}, "
            f"{loop.on_cpu / count * 1e6:.2f} µs per {noun}"
        )
    if parts:
        parts.append(f"reads paused by back-pressure {pauses} times")
    return "; ".join(parts)


def _why_row(why: str) -> list[SummaryRow]:
    if not why:
        return []
    return [
        ("", "where the time went (the recorder's two busy threads, over the push)", why, "", "")
    ]


#: issue 14's targets for the SQLite layout
TRADE_BYTES_TARGET = 150
TICKER_BYTES_TARGET = 250


def _disk_rows(run: Run) -> list[SummaryRow]:
    """Bytes per stored row in the databases the bench recorded, and a day of BTCUSDT."""
    flat = run.flat_out
    realistic = run.realistic_run()
    trades = flat.trade_bytes if flat is not None else None
    trades_from = f"the flood's {trades.rows:,} rows" if trades is not None else ""
    if trades is None and realistic is not None and realistic.trade_bytes is not None:
        trades = realistic.trade_bytes
        trades_from = f"the realistic run's {trades.rows:,} rows"
    tickers = realistic.ticker_bytes if realistic is not None else None
    rows: list[SummaryRow] = []
    name = "**On disk**, SQLite: the databases recorded above"
    if trades is not None and trades.per_row is not None:
        rows.append(
            (
                name,
                f"bytes per trade row: `public_trades` and its indexes ({trades_from}, "
                f"{trades.method})",
                f"{trades.per_row:,.0f} B ({_btrees(trades)})",
                f"≤ {TRADE_BYTES_TARGET} B",
                _yes(trades.per_row <= TRADE_BYTES_TARGET),
            )
        )
    if tickers is not None and tickers.per_row is not None:
        rows.append(
            (
                "" if rows else name,
                "bytes per ticker row: `ticker_snapshots` and its indexes (the realistic run's "
                f"{tickers.rows:,} rows, `writer=default`, {tickers.method})",
                f"{tickers.per_row:,.0f} B ({_btrees(tickers)})"
                + (
                    ""
                    if tickers.per_row <= TICKER_BYTES_TARGET
                    else f"; missed by {tickers.per_row / TICKER_BYTES_TARGET - 1:.0%}: the 17 "
                    "typed columns hold the whole merged state, exact strings, in every row "
                    "(meeting it means storing changed fields only, or `tickers.min_interval_ms`)"
                ),
                f"≤ {TICKER_BYTES_TARGET} B",
                _yes(tickers.per_row <= TICKER_BYTES_TARGET),
            )
        )
    if (
        trades is not None
        and tickers is not None
        and trades.per_row is not None
        and tickers.per_row is not None
    ):
        low, high = (gb_per_day(trades.per_row, tickers.per_row, n) for n in TRADES_PER_DAY)
        rows.append(
            (
                "",
                f"GB a day for BTCUSDT-like rates: {TRADES_PER_DAY[0] / 1e6:.0f}-"
                f"{TRADES_PER_DAY[1] / 1e6:.0f} M trades and {TICKERS_PER_DAY / 1e3:,.0f} k ticker "
                "pushes a day, every push kept",
                f"{low:.2f}-{high:.2f} GB a day (trades {TRADES_PER_DAY[1] * trades.per_row / 1e9:.2f} "
                f"GB at 3 M, tickers {TICKERS_PER_DAY * tickers.per_row / 1e9:.2f} GB)",
                "",
                "",
            )
        )
    return rows


def _btrees(t: TableBytes) -> str:
    """Each b-tree's share per row, the table first, then its indexes by size."""
    order = sorted(t.btrees, key=lambda n: (n != t.table, -t.btrees[n]))
    return ", ".join(f"{n} {t.btrees[n] / t.rows:,.0f}" for n in order)


def summary_rows(run: Run) -> list[SummaryRow]:
    """(scenario, measure, result, target, met) for the summary table."""
    rows: list[SummaryRow] = []
    floor, limit = run.floor, run.limit
    if floor is not None:
        rows.append(_floor_row(floor))
    if limit is not None:
        rows.append(_sqlite_limit_row(limit, floor))
    for flat in run.flat_outs:
        rows += _flood_rows(flat, floor, limit)
    if run.book_flood is not None:
        rows += _book_flood_rows(run.book_flood)
    disk = _disk_rows(run)
    rows += disk + _book_disk_rows(run, first=not disk)
    for r in run.realistic:
        rows += _realistic_rows(r, run.realistic_run(r.writer) if r.book_depth else None)
    rows += postgres_rows(run.postgres)
    if run.pipeline is not None:
        rows += _parse_rows(run.pipeline)
    return rows


def _realistic_rows(r: RealisticResult, plain: RealisticResult | None) -> list[SummaryRow]:
    """A realistic run: CPU, latency, memory, what it stored; with books, against
    ``plain``, the run of the same writer without them."""
    budget = r.flush_interval * 1000 + P99_MARGIN_MS
    lat = r.latency_ms
    p99 = lat.get("p99")
    rows = [_realistic_cpu_row(r, plain)]
    rows.append(
        (
            "",
            f"arrival → commit p50 / p99 / max ({lat.get('n', 0):,} rows)",
            f"{_ms(lat.get('p50'))} / {_ms(p99)} / {_ms(lat.get('max'))} ms",
            f"p99 < {budget:,.0f} ms",
            _yes(p99 is not None and p99 < budget),
        )
    )
    rows.append(_peak_rss_row(r.peak_rss_mb))
    stored = f"{r.trades:,} trades, {r.tickers:,} tickers"
    if r.book_depth:
        stored += (
            f", {r.books:,} book updates (and {_plural(r.checkpoints, 'checkpoint')}); no book gap, "
            "every update pushed up to the last stored"
        )
    what = "trades, tickers and book updates" if r.book_depth else "trades and tickers"
    # realistic() raises on any loss
    rows.append(("", f"{what} stored, all printed ones", stored, "none dropped", "yes"))
    return rows


def _realistic_cpu_row(r: RealisticResult, plain: RealisticResult | None) -> SummaryRow:
    name = f"**Recorder, realistic**: {r.symbols} symbols, `writer={r.writer}`"
    if not r.book_depth:
        return (
            name,
            "CPU share of one core (user + system)",
            _cpu_share(r),
            f"< {CPU_SHARE:.0%}",
            _yes(r.cpu_share < CPU_SHARE),
        )
    rate = r.arrival_rate("BookUpdate")
    name += (
        f" + `orderbook.{r.book_depth}` of each (Bybit's {BOOK_PUSH_MS.get(r.book_depth, '?')} "
        f"ms pushes, {rate:,.0f} updates/s in all)"
    )
    result = _cpu_share(r)
    if plain is not None:
        result += (
            f"; without books, in this run: {plain.cpu_share:.1%}, so the books took "
            f"{r.cpu_share - plain.cpu_share:.1%}"
        )
    if r.cpu_share > BOOK_CPU_SHARE:
        result += f" (missed by {r.cpu_share / BOOK_CPU_SHARE - 1:.0%})"
    return (
        name,
        "CPU share of one core (user + system)",
        result,
        f"≤ {BOOK_CPU_SHARE:.0%}",
        _yes(r.cpu_share <= BOOK_CPU_SHARE),
    )


def _parse_rows(pipe: PipelineResult) -> list[SummaryRow]:
    rows: list[SummaryRow] = []
    for stage in pipe.stages:
        ours = stage.trades_per_second(stage.decoder_s)
        target = f"≥ {PARSE_SPEEDUP:.0f}x cryptofeed"
        if stage.peer_s is None:
            result, met = f"{_n(ours)} trades/s (cryptofeed: not run)", "n/a"
        else:
            speedup = stage.peer_s / stage.decoder_s
            peer = stage.trades_per_second(stage.peer_s)
            result = f"{_n(ours)} vs {_n(peer)} trades/s = **{speedup:.1f}x**"
            met = _yes(speedup >= PARSE_SPEEDUP)
        name = "" if rows else "**Parse + normalize**, ours vs cryptofeed"
        rows.append((name, _frame_label(stage.frame_size), result, target, met))
    return rows


def _book_flood_rows(book: BookFloodResult) -> list[SummaryRow]:
    """The book limit, then the book flood against it (the target), and why."""
    rows: list[SummaryRow] = []
    limit = book.limit
    if limit is not None:
        name, measure, result, _, _ = _limit_row(
            limit, "**Book limit**: plain sqlite3, the book flood's rows into `orderbook_updates`"
        )
        if limit.cpu_us_per_row is not None:
            result += f"; CPU {limit.cpu_us_per_row:.2f} µs per row"
        rows.append((name, measure, result, "", ""))
    rows.append(_book_rate_row(book))
    plain = [("the book limit", limit)]
    pauses = int(book.details.get("recorder", {}).get("backpressure_pauses") or 0)
    rows += _why_row(_threads_why(book.push.threads, book.updates, "update", plain, pauses))
    rows.append(
        ("", "CPU per 1,000 updates (all threads)", f"{book.cpu_ms_per_1000:.1f} ms", "", "")
    )
    buffered = int(book.details.get("recorder", {}).get("books_peak_buffered") or 0)
    note = (
        f" (the book writer's buffer held up to {buffered:,} updates at once: the database "
        "thread waits for the busy event loop; method.md)"
        if buffered
        else ""
    )
    rows.append(_peak_rss_row(book.push.peak_rss_mb, note))
    rows.append(
        (
            "",
            "updates stored / pushed (and the subscription's snapshot); book gaps, rejected frames",
            f"{book.stored:,} / {book.updates:,} + 1 (and {_plural(book.checkpoints, 'checkpoint')}); "
            "0 gaps, 0 rejected",
            "each once, none rejected",
            "yes",  # book_flood() raises otherwise
        )
    )
    return rows


def _book_rate_row(book: BookFloodResult) -> SummaryRow:
    rate, push_ms = book.updates_per_second, BOOK_PUSH_MS.get(book.depth)
    name = (
        f"**Recorder, book flood**: {book.updates:,} `orderbook.{book.depth}` updates, one "
        f"per frame (a snapshot, then deltas of {book.levels_per_delta:.1f} changed levels "
        f"on average; {book.frame_bytes_per_update:,.0f} B a frame)"
    )
    result = f"{_n(rate)} updates/s"
    if push_ms:
        result += f" (= {rate * push_ms / 1000:,.0f} books at Bybit's {push_ms} ms)"
    target, met = f"≥ {BOOK_FLOOD_RATIO}x the book limit", "n/a"
    limit = book.limit_updates_per_second
    if limit is not None:
        ratio = rate / limit
        result = f"{result} = **{ratio:.2f}x** the book limit"
        if ratio < BOOK_FLOOD_RATIO:
            needed = BOOK_FLOOD_RATIO * limit
            result += f" (missed by {1 - rate / needed:.0%}: {BOOK_FLOOD_RATIO}x is {_n(needed)})"
        met = _yes(ratio >= BOOK_FLOOD_RATIO)
    return (name, "committed updates/s (first arrival to last commit)", result, target, met)


def _book_disk_rows(run: Run, first: bool) -> list[SummaryRow]:
    """Bytes per stored book update: the flood's (the target) and the realistic run's;
    ``first``: they open the on-disk rows."""
    rows: list[SummaryRow] = []
    book = run.book_flood
    per_update = book.bytes_per_update if book is not None else None
    if book is not None and per_update is not None and book.book_bytes is not None:
        ratio = per_update / book.frame_bytes_per_update
        push_ms = BOOK_PUSH_MS.get(book.depth)
        day = (
            f"; {DAY * 1000 / push_ms * per_update / 1e9:.2f} GB a day for one book"
            if push_ms
            else ""
        )
        rows.append(
            (
                "**On disk**, SQLite: the databases recorded above" if first else "",
                f"bytes per book update: `orderbook_updates` over the book flood's {book.stored:,} "
                f"updates, the bytes of its {_plural(book.checkpoints, 'checkpoint')} included "
                f"(`orderbook.{book.depth}`, {book.book_bytes.method})",
                f"{per_update:,.0f} B = **{ratio:.2f}x** the frame as sent "
                f"({book.frame_bytes_per_update:,.0f} B){day}",
                f"≤ {BOOK_BYTES_RATIO:.0f}x the frame",
                _yes(ratio <= BOOK_BYTES_RATIO),
            )
        )
    realistic = run.realistic_run(books=True)
    if realistic is not None and realistic.book_bytes is not None and realistic.books:
        rows.append(
            (
                "",
                f"bytes per book update in the realistic run (`orderbook.{realistic.book_depth}`, "
                f"{realistic.books:,} updates and {_plural(realistic.checkpoints, 'checkpoint')})",
                f"{realistic.book_bytes.total / realistic.books:,.0f} B",
                "",
                "",
            )
        )
    return rows


def _pg_limit_rows(limit: PgLimitResult, name: str) -> list[SummaryRow]:
    return [
        _limit_row(limit, name),
        (
            "",
            "server CPU per 1,000 rows (all PostgreSQL processes)",
            f"{limit.server_cpu_ms_per_1000:.1f} ms",
            "",
            "",
        ),
    ]


def _pg_flat_rows(
    flat: FlatOutResult, limit: PgLimitResult | None, name: str, full: bool
) -> list[SummaryRow]:
    rows = [_flat_rate_row(flat, limit, name, "the PostgreSQL limit")]
    server = flat.server_cpu_ms_per_1000
    rows.append(
        (
            "",
            "CPU per 1,000 trades: recorder (all threads) + PostgreSQL server",
            f"{flat.cpu_ms_per_1000:.1f} + {server:.1f} ms"
            if server is not None
            else f"{flat.cpu_ms_per_1000:.1f} ms",
            "",
            "",
        )
    )
    if full:
        rows.append(_peak_rss_row(flat.peak_rss_mb))
    rows.append(_flat_stored_row(flat))
    return rows


def median_run(runs: list[TwoRecordersResult]) -> TwoRecordersResult:
    """The run with the median unique trades/s (the lower middle of an even count)."""
    return sorted(runs, key=lambda r: r.trades_per_second)[(len(runs) - 1) // 2]


def _two_recorder_rows(
    runs: list[TwoRecordersResult], alone: FlatOutResult | None
) -> list[SummaryRow]:
    two = median_run(runs)
    rates = ", ".join(_n(r.trades_per_second) for r in runs)
    share = (
        f" = {two.trades_per_second / alone.trades_per_second:.0%} of one alone" if alone else ""
    )
    median = f"median of {len(runs)} runs" if len(runs) > 1 else "one run"
    return [
        (
            f"**Two recorders, one PostgreSQL database**: the same {two.trades:,} trades to "
            "both, fsync off",
            f"unique trades committed/s, {median} (first arrival to the database holding "
            "every trade)",
            f"{_n(two.trades_per_second)}{share} (runs: {rates})",
            "",
            "",
        ),
        (
            "",
            "per run: deadlocks, outages; rows inserted by recorder 1 + 2 (each found the "
            "rest stored)",
            "; ".join(
                f"run {i}: {r.deadlocks}, {r.outages}; {r.written[0]:,} + {r.written[1]:,}"
                for i, r in enumerate(runs, 1)
            ),
            "",
            "",
        ),
        (
            "",
            "median run: rows/s per recorder (new or found stored); rows/s the database took",
            " / ".join(_n(r) for r in two.recorder_rows_per_second)
            + f"; {_n(two.offered_rows_per_second)}",
            "",
            "",
        ),
        (
            "",
            "median run: CPU per 1,000 trades, each recorder + PostgreSQL server",
            " / ".join(f"{c / two.trades * 1e6:.1f}" for c in two.cpu_seconds)
            + f" + {two.server_cpu_ms_per_1000:.1f} ms",
            "",
            "",
        ),
        (
            "",
            "rows stored = distinct trades = printed by the simulator",
            f"{two.trades:,} in each of {len(runs)} run{'s' if len(runs) > 1 else ''}",
            "each exactly once",
            _yes(all(r.stored == r.distinct == r.truth == r.trades for r in runs)),
        ),
    ]


def postgres_rows(pg: PostgresRun) -> list[SummaryRow]:
    """The PostgreSQL scenarios' rows, or one row saying why they did not run."""
    rows: list[SummaryRow] = []
    if pg.skipped is not None:
        rows.append(("**PostgreSQL**", "not run", pg.skipped, "", ""))
    if pg.limit is not None:
        rows += _pg_limit_rows(pg.limit, "**Limit, PostgreSQL**: plain psycopg `COPY`, fsync off")
    flat = pg.flat_out
    if flat is not None:
        name = (
            f"**Recorder, flat out, PostgreSQL**: {flat.trades:,} trades, frames of "
            f"{flat.batch:,}, fsync off"
        )
        rows += _pg_flat_rows(flat, pg.limit, name, full=True)
    if pg.two_recorders:
        rows += _two_recorder_rows(pg.two_recorders, flat)
    if pg.durable_limit is not None:
        rows += _pg_limit_rows(
            pg.durable_limit,
            "**Limit, PostgreSQL**: plain psycopg `COPY`, fsync, synchronous_commit and "
            "full_page_writes on",
        )
    flat = pg.durable_flat_out
    if flat is not None:
        name = f"**Recorder, flat out, PostgreSQL**: {flat.trades:,} trades, fsync on"
        rows += _pg_flat_rows(flat, pg.durable_limit, name, full=False)
    return rows


def _frame_label(size: str) -> str:
    if size == "1":
        return "frames of 1 trade"
    if size == "1-4":
        return "frames of 1-4 trades (quiet market, mean 2)"
    return f"frames of {int(size):,} trades" + (" (burst)" if int(size) >= 1000 else "")


def markdown_table(headers: list[str], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def pipeline_rows(pipe: PipelineResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in pipe.stages:
        peer = (
            ("-", "-", "-")
            if s.peer_s is None
            else (
                f"{s.us_per_frame(s.peer_s):,.2f}",
                _n(s.trades_per_second(s.peer_s)),
                f"{s.peer_s / s.decoder_s:.2f}x",
            )
        )
        rows.append(
            (
                s.frame_size,
                f"{s.frames:,}",
                f"{s.us_per_frame(s.decoder_s):,.2f}",
                _n(s.trades_per_second(s.decoder_s)),
                f"{s.us_per_frame(s.read_loop_s):,.2f}",
                _n(s.trades_per_second(s.read_loop_s)),
                *peer,
            )
        )
    return rows


def tables(run: Run) -> list[str]:
    lines = markdown_table(["Scenario", "Measure", "Result", "Target", "Met"], summary_rows(run))
    if run.pipeline is not None:
        peer = run.pipeline.peer_version
        lines += [
            "",
            "Pipeline stages, per frame (best of several passes over the same frames, one process; "
            + (f"cryptofeed {peer}" if peer else f"cryptofeed not run: {run.pipeline.peer_note}")
            + "):",
            "",
        ]
        lines += markdown_table(
            [
                "Trades/frame",
                "Frames",
                "Decoder µs/frame",
                "trades/s",
                "Read loop µs/frame",
                "trades/s",
                "cryptofeed µs/frame",
                "trades/s",
                "Decoder vs cryptofeed",
            ],
            pipeline_rows(run.pipeline),
        )
    return lines


def missed(run: Run) -> list[str]:
    """The targets this run missed (by the summary's Met column)."""
    return [f"{r[0] or ''} {r[1]}: {r[2]}".strip() for r in summary_rows(run) if r[4] == "**no**"]


#: Bybit mainnet, BTCUSDT (its busiest linear symbol): trades and ticker pushes a day
MAINNET_TRADES_PER_DAY = TRADES_PER_DAY
MAINNET_TICKERS_PER_DAY = TICKERS_PER_DAY
DAY = 86_400
#: the share of one core a recorder or a database server core is planned to use on
#: average; the rest is for bursts and for catching up after an outage
HEADROOM = 0.5
TICKERS_PER_SECOND = 10  # the realistic scenario's (and Bybit's linear) 100 ms ticker
FLEET_SYMBOLS = (100, 300, 500)


def fleet(run: Run) -> list[str]:
    """ "How a fleet scales": the arithmetic, from this run's figures."""
    lines = ["## How a fleet scales", ""]
    lo, hi = ((t + MAINNET_TICKERS_PER_DAY) / DAY for t in MAINNET_TRADES_PER_DAY)
    lines += [
        "On paper, from the figures above. BTCUSDT on Bybit's mainnet makes about "
        f"{MAINNET_TRADES_PER_DAY[0] / 1e6:.0f}-{MAINNET_TRADES_PER_DAY[1] / 1e6:.0f} M "
        f"trades and {MAINNET_TICKERS_PER_DAY / 1e3:,.0f} k ticker pushes a day: "
        f"{lo:.0f}-{hi:.0f} rows/s on average. Below, every symbol is taken at BTCUSDT's top "
        f"rate, {hi:.0f} rows/s, which overstates the hundreds of quieter symbols many times "
        f"over; and a recorder, or a database server core, is planned at {HEADROOM:.0%} "
        "busy on average, the rest left for bursts and for catching up after an outage.",
        "",
    ]
    realistic = run.realistic_run()
    pg = run.postgres
    burst = pg.flat_out or run.flat_out
    per_recorder: float | None = None  # symbols at the top rate per recorder
    if realistic is not None:
        rows = realistic.symbols * (realistic.trade_rate + TICKERS_PER_SECOND)
        cpu_row = realistic.cpu_share / rows  # core-seconds per row
        per_recorder = HEADROOM / (hi * cpu_row)
        typical = realistic.trade_rate + TICKERS_PER_SECOND
        text = (
            f"- **Per recorder.** At the realistic load (SQLite, `writer=default`: "
            f"{realistic.symbols} symbols, {rows:,.0f} rows/s in frames of 1-4 trades and "
            f"single tickers) the recorder used {realistic.cpu_share:.1%} of a core: "
            f"{cpu_row * 1e6:.0f} µs per row, about {1 / cpu_row:,.0f} rows/s per core when "
            "frames are small (that load was not run into PostgreSQL, where the database's "
            "own work is the server's). A recorder is one process whose event loop is one "
            f"core: at {HEADROOM:.0%} of it, it carries about {per_recorder:,.0f} symbols at "
            f"BTCUSDT's top rate, or {HEADROOM / (typical * cpu_row):,.0f} like the realistic "
            f"scenario's ({typical:.0f} rows/s each)."
        )
        if burst is not None:
            into = "PostgreSQL" if burst.database == "postgresql" else "SQLite"
            text += (
                " Bursts are cheap per trade: Bybit batches them into frames of up to 1,024 "
                f"trades, which cost the recorder {burst.cpu_ms_per_1000:.1f} ms per 1,000 "
                f"trades (flat out into {into}: {_n(burst.trades_per_second)} trades/s); up "
                "to `max_buffer_rows` (100,000) rows wait in memory while the database "
                "catches up."
            )
        lines += [text, ""]
    flat, two, limit, sizes = pg.flat_out, pg.two_recorders, pg.limit, pg.row_bytes
    if flat is None or flat.server_cpu_ms_per_1000 is None or limit is None:
        reason = pg.skipped or "not run"
        lines += [f"- **Per database (PostgreSQL).** Not measured in this run ({reason}).", ""]
        return lines
    server_row = flat.server_cpu_ms_per_1000 / 1e6
    pair_row = median_run(two).server_cpu_ms_per_1000 / 1e6 if two else None
    text = (
        f"- **Per database (PostgreSQL).** The server spent {server_row * 1e6:.1f} µs of CPU "
        "per trade the recorder wrote flat out (COPY of batches of up to 20,000 rows): "
        f"{1 / server_row:,.0f} rows/s per server core (the plain COPY limit: "
        f"{_n(limit.rows_per_second)} rows/s on one connection). "
    )
    if pair_row is not None:
        text += (
            f"Two recorders writing the same trades cost it {pair_row * 1e6:.1f} µs per unique "
            "trade (each trade arrives twice; the second copy is found stored, through the "
            "staging table). "
        )
    text += (
        f"At {HEADROOM:.0%} of one server core that is about {HEADROOM / (hi * server_row):,.0f} "
        "symbols at BTCUSDT's top rate recorded once"
        + (f", {HEADROOM / (hi * pair_row):,.0f} by a redundant pair" if pair_row else "")
        + ". Each recorder writes on connections of its own (backends of their own), so a "
        "server with more cores takes more recorders."
    )
    lines += [text, ""]
    day_bytes: float | None = None
    if sizes is not None:
        ticker = (
            (sizes.ticker_tuple or 0.0)
            + 4
            + sizes.trade_total
            - sizes.trade_heap
            - sizes.trade_key_index
        )
        day_bytes = MAINNET_TRADES_PER_DAY[1] * sizes.trade_total + MAINNET_TICKERS_PER_DAY * ticker
        lines += [
            f"  On disk a trade row takes {sizes.trade_total:.0f} bytes (heap "
            f"{sizes.trade_heap:.0f}, the index of its unique key "
            f"{sizes.trade_key_index:.0f}, its other indexes the rest); a ticker row "
            f"about {ticker:.0f} (its own {sizes.ticker_tuple or 0:.0f} bytes, and indexes "
            f"taken as large as the trade table's other indexes). One symbol at the top rate: {day_bytes / 1e9:.1f} GB a day.",
            "",
        ]
    header = [
        "Symbols at the top rate",
        "rows/s",
        f"recorders at {HEADROOM:.0%}",
        "server cores, once",
        "server cores, redundant pair",
        "disk a day",
        "unique index growth a day",
    ]
    table = []
    for n in FLEET_SYMBOLS:
        table.append(
            (
                f"{n:,}",
                f"{n * hi:,.0f}",
                f"{-(-n // int(per_recorder))}" if per_recorder else "-",
                f"{n * hi * server_row:.2f}",
                f"{n * hi * pair_row:.2f}" if pair_row else "-",
                f"{n * day_bytes / 1e9:,.0f} GB" if day_bytes else "-",
                f"{n * MAINNET_TRADES_PER_DAY[1] * sizes.trade_key_index / 1e9:,.1f} GB"
                if sizes
                else "-",
            )
        )
    lines += [*markdown_table(header, table), ""]
    lines += [_shard_first(), ""]
    return lines


def _shard_first() -> str:
    """What to shard first: it depends on where the trade table's key puts new trades."""
    key = grid_tables.public_trades.natural_key or ()
    text = (
        "- **What to shard first.** The recorders: one carries tens of the busiest symbols "
        "before its core is half busy, so symbols go into groups, one recorder (one job of "
        "a Hydra multirun) per group, long before a database is busy. "
    )
    columns = ", ".join(key)
    if (
        "trade_time_ms" in key
        and "trade_id" in key
        and key.index("trade_time_ms") < key.index("trade_id")
    ):
        return text + (
            f"Then the database, for its CPU or its disk: the key of `public_trades` "
            f"(`{columns}`) puts each new trade after its symbol's latest ones, so only the "
            "recent end of each symbol's part of the key's index is written and must stay in "
            "memory, however many days are stored. So the database is sharded by symbol "
            "group (a database, or a server, per group of recorders: no schema change)."
        )
    return text + (
        "Then the database, and not for its CPU (hundreds of the busiest symbols take a "
        f"fraction of a core) but for its memory: the unique key of `public_trades` "
        f"(`{columns}`) takes each new trade at a random place of its symbol's part (trade "
        "ids are UUIDs), so the whole index, every day stored so far, is being written and "
        "must stay in the server's memory, and it grows by the last column a day. Once it "
        "does not fit, inserts wait on disk reads and the rates above no longer hold (the "
        "bench writes into a fresh database, its index all in memory). So the database is "
        "sharded by symbol group (a database, or a server, per group of recorders: no "
        "schema change) and, for long recordings, by time: partitions of `public_trades` "
        "by day leave only the current day's index being written (the unique key would "
        "then have to include the trade time: a schema change)."
    )


def document(run: Run, method: str) -> str:
    title = "# Benchmarks" + (" (smoke run: tiny sizes, figures meaningless)" if run.smoke else "")
    parts = [
        title,
        "",
        "Written by `make bench` (`bench/run.py`); every figure below comes from the same run.",
        "",
        *machine(run),
        "",
        *tables(run),
        "",
        *fleet(run),
        method.strip(),
        "",
    ]
    return "\n".join(parts)
