"""``make bench``: every benchmark scenario in one run, a table, and docs/benchmarks.md.

    uv run python bench/run.py                 # the full run (about 7 minutes on 2 cores)
    uv run python bench/run.py --smoke         # every scenario at tiny sizes (the CI smoke)
    uv run python bench/run.py --only postgresql   # the PostgreSQL scenarios alone
    uv run --with py-spy python bench/run.py --profile prof/   # py-spy the recorder too

The pipeline stage compares our parser with cryptofeed's, which is an optional dependency
(the ``bench`` group of the root pyproject): it runs in a throw-away environment made by
``uv run --isolated --group bench``, so the recorder's own environment stays as users have
it. Without uv or cryptofeed the table says so and shows our figures alone.

The PostgreSQL scenarios start a throwaway cluster with ``testing/pg_cluster.py`` (the test
suite's); without the server binaries they are skipped, with one line in the log and one
in the table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import bench_books
import bench_pipeline
import bench_postgres
import bench_report
import bench_scenarios
from bench_frames import firehose_like_trades

from bybit_sim import TruthTrade

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Sizes:
    #: SQLite: the floor's and the limit's rows, and the trades of each flood
    flood_trades: int = 1_000_000
    #: trades per frame of the SQLite floods
    flood_frame: int = 1_000
    #: the writer config group options the recorder is flooded with
    flood_writers: tuple[str, ...] = ("default", "bulk")
    limit_batches: tuple[int, ...] = (5_000, 20_000, 100_000)
    trades: int = 500_000  # PostgreSQL: the limit's rows and the flat-out trades
    frame: int = 1_024  # PostgreSQL: trades per firehose frame, Bybit's largest
    seconds: float = 60.0  # each realistic run's measuring window
    warmup: float = 5.0
    pipeline_trades: int = 102_400
    repeats: int = 5
    pg_limit_batches: tuple[int, ...] = (5_000, 20_000, 100_000)
    #: the recorder flat out on the cluster with fsync on, too
    durable_flat_out: bool = True
    #: runs of two recorders into one database (their figure varies from run to run)
    two_recorder_runs: int = 3
    #: the book flood: updates of one orderbook.{book_depth} stream, one per frame, each
    #: of a mean ``book_events`` engine events (twice the simulator's own pace at 100 ms)
    book_updates: int = 50_000
    book_depth: int = 200
    book_events: float = 20.0
    #: the realistic scenario's books: that depth for every symbol
    realistic_book_depth: int = 50


SMOKE = Sizes(
    flood_trades=4_000,
    trades=4_000,
    limit_batches=(1_000, 4_000),
    seconds=2.0,
    warmup=0.5,
    pipeline_trades=2_048,
    repeats=1,
    pg_limit_batches=(1_000, 4_000),
    durable_flat_out=False,
    two_recorder_runs=1,
    book_updates=2_000,
)


def log(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def run_pipeline(trades: int, repeats: int, with_peer: bool) -> bench_pipeline.PipelineResult:
    """In an isolated environment with the ``bench`` group (cryptofeed), else here without."""
    sizes = ("1", "mix", "100", "1024")
    if with_peer:
        uv = shlex.split(os.environ.get("UV", "uv"))
        command = [
            *uv,
            "run",
            "--frozen",
            "--isolated",
            "--group",
            "bench",
            "python",
            str(HERE / "bench_pipeline.py"),
            "--trades",
            str(trades),
            "--repeats",
            str(repeats),
            "--sizes",
            ",".join(sizes),
        ]
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
            )
            return bench_pipeline.PipelineResult.from_json(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            log(f"pipeline with cryptofeed failed, running ours alone: {detail[-500:]}")
            result = bench_pipeline.pipeline(trades, sizes, repeats)
            result.peer_note = f"the bench environment could not be made ({type(exc).__name__})"
            return result
    return bench_pipeline.pipeline(trades, sizes, repeats)


def run(args: argparse.Namespace) -> bench_report.Run:
    size = replace(
        SMOKE if args.smoke else Sizes(),
        **{
            k: v
            for k, v in (
                ("trades", args.trades),
                ("flood_trades", args.trades),
                ("seconds", args.seconds),
            )
            if v
        },
    )
    if args.profile:
        bench_scenarios.PROFILE_DIR = Path(args.profile).resolve()
    report = bench_report.Run(smoke=args.smoke)
    started = time.monotonic()
    sqlite = args.only in (None, "sqlite")
    postgres = args.only in (None, "postgresql")

    if sqlite:
        log("pipeline stages: parse + normalize, ours and cryptofeed's")
        report.pipeline = run_pipeline(
            size.pipeline_trades, size.repeats, with_peer=not args.smoke and not args.no_peer
        )

    trades = firehose_like_trades(max(size.trades, size.flood_trades if sqlite else 0))
    if sqlite:
        rows = trades[: size.flood_trades]
        log(f"floor: plain sqlite3 executemany of {len(rows):,} trade rows, unindexed")
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
            report.floor = bench_scenarios.floor(rows, size.limit_batches, Path(tmp))
        log(f"limit: plain sqlite3 executemany of {len(rows):,} trade rows, recorder's schema")
        with tempfile.TemporaryDirectory(prefix="bench-limit-") as tmp:
            report.limit = bench_scenarios.limit(rows, size.limit_batches, Path(tmp))
        del rows
        for writer in size.flood_writers:
            log(
                f"recorder flood, writer={writer}: {size.flood_trades:,} trades in frames of "
                f"{size.flood_frame:,} through the simulator's firehose"
            )
            report.flat_outs.append(
                bench_scenarios.flat_out(
                    size.flood_trades, size.flood_frame, writer=writer, name=f"flood_{writer}"
                )
            )

        run_books(report, size)
        for writer, depth in (
            ("default", None),
            ("low_latency", None),
            ("default", size.realistic_book_depth),
        ):
            books = f" + orderbook.{depth} of each symbol" if depth else ""
            log(f"recorder realistic, writer={writer}{books}: {size.seconds:.0f} s")
            report.realistic.append(
                bench_scenarios.realistic(
                    writer,
                    seconds=size.seconds,
                    warmup=size.warmup,
                    trade_rate=args.trade_rate,
                    book_depth=depth,
                )
            )
    if postgres:
        run_postgres(report, size, trades[: size.trades])
    bench_report.finish(report, time.monotonic() - started)
    return report


def run_books(report: bench_report.Run, size: Sizes) -> None:
    """The book flood, then plain sqlite3 inserts of the rows it stored (its limit)."""
    log(
        f"recorder book flood: {size.book_updates:,} orderbook.{size.book_depth} updates, "
        "one per frame, through the simulator's book firehose; then its rows by plain sqlite3"
    )
    with tempfile.TemporaryDirectory(prefix="bench-book-limit-") as tmp:
        report.book_flood = bench_books.book_flood(
            size.book_updates, size.book_depth, size.book_events, size.limit_batches, Path(tmp)
        )


def run_postgres(report: bench_report.Run, size: Sizes, trades: list[TruthTrade]) -> None:
    """The PostgreSQL scenarios, on a cluster with fsync off, then restarted with it on.

    Without server binaries, or when the cluster fails, ``report.postgres.skipped`` says
    why in one line (what ran before a failure stays in the report).
    """
    pg = report.postgres
    pg.version = bench_postgres.version()
    pg.skipped = bench_postgres.unavailable()
    if pg.skipped is not None:
        log(pg.skipped)
        return
    try:
        with bench_postgres.server() as server:
            label = f"PostgreSQL ({server.label})"
            log(f"{label} limit: plain psycopg COPY of {size.trades:,} trade rows")
            pg.limit = bench_postgres.limit(trades, size.pg_limit_batches, server)
            log(f"{label} recorder flat out: {size.trades:,} trades")
            pg.flat_out = pg_flat_out(server, size, "pg_flat_out", pg)
            for i in range(size.two_recorder_runs):
                log(
                    f"{label} two recorders, one database: {size.trades:,} trades, "
                    f"run {i + 1} of {size.two_recorder_runs}"
                )
                pg.two_recorders.append(
                    bench_postgres.two_recorders(size.trades, size.frame, server)
                )
            log(
                "PostgreSQL: restarting the server with fsync, synchronous_commit and full_page_writes on"
            )
            server.make_durable()
            label = f"PostgreSQL ({server.label})"
            log(f"{label} limit: plain psycopg COPY of {size.trades:,} trade rows")
            pg.durable_limit = bench_postgres.limit(trades, size.pg_limit_batches, server)
            if size.durable_flat_out:
                log(f"{label} recorder flat out: {size.trades:,} trades")
                pg.durable_flat_out = pg_flat_out(server, size, "pg_durable_flat_out")
    except bench_postgres.PostgresClusterError as error:
        pg.skipped = f"the PostgreSQL cluster failed: {error}"
        log(pg.skipped)


def pg_flat_out(
    server: bench_postgres.Server,
    size: Sizes,
    name: str,
    sizes_into: bench_report.PostgresRun | None = None,
) -> bench_scenarios.FlatOutResult:
    """The recorder flat out into a fresh database; ``sizes_into``: note its row sizes."""
    url = server.database()
    result = bench_scenarios.flat_out(
        size.trades, size.frame, database_url=url, server_pid=server.pid, name=name
    )
    if sizes_into is not None:
        sizes_into.row_bytes = bench_postgres.row_bytes(url)
    server.drop(url)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not figures")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-peer", action="store_true", help="skip cryptofeed")
    parser.add_argument(
        "--only",
        choices=("sqlite", "postgresql"),
        help="sqlite: every scenario but PostgreSQL's; postgresql: PostgreSQL's alone",
    )
    parser.add_argument("--profile", help="py-spy the recorder of each scenario into DIR")
    parser.add_argument(
        "--trades", type=int, help="trades for the floor, the limits, the floods and flat out"
    )
    parser.add_argument("--seconds", type=float, help="measuring window of realistic runs")
    parser.add_argument(
        "--trade-rate", type=float, default=10.0, help="realistic: trades/s per symbol"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    text = bench_report.document(report, (HERE / "method.md").read_text())
    lines = [*bench_report.machine(report), "", *bench_report.tables(report)]
    sys.stdout.write("\n".join(lines) + "\n")
    if not args.no_write:
        Path(args.output).write_text(text)
        log(f"wrote {args.output}")
    for line in bench_report.missed(report):
        log(f"target missed: {line}")
    log(f"done in {report.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
