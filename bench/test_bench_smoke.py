"""``make bench`` at tiny sizes: every scenario runs, checks its counts and fills the table.

The figures of such a run mean nothing; the point is that the benchmark cannot rot. The
PostgreSQL scenarios are a test of their own, skipped (with the suite's one-line reason)
on a machine without the server binaries.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import bench_books
import bench_disk
import bench_postgres
import bench_report
import pytest
import run

pytestmark = pytest.mark.bench


def _document(report: bench_report.Run, tmp_path: Path) -> str:
    document = bench_report.document(report, (Path(run.__file__).parent / "method.md").read_text())
    output = tmp_path / "benchmarks.md"
    output.write_text(document)
    return output.read_text()


def test_every_scenario_runs_at_tiny_sizes_and_writes_the_table(tmp_path: Path) -> None:
    report = run.run(run.parse_args(["--smoke", "--no-peer", "--only", "sqlite"]))

    for plain in (report.floor, report.limit):
        assert plain is not None
        assert plain.rows == run.SMOKE.flood_trades
        assert set(plain.by_batch) == set(run.SMOKE.limit_batches)
        assert plain.rows_per_second > 0
        assert plain.cpu_us_per_row is not None
        assert plain.cpu_us_per_row > 0
    assert [f.writer for f in report.flat_outs] == list(run.SMOKE.flood_writers)
    assert report.flat_out is report.flat_outs[0]
    for flat in report.flat_outs:
        assert flat.batch == run.SMOKE.flood_frame
        assert flat.stored == flat.truth == flat.trades == run.SMOKE.flood_trades
        assert flat.trades_per_second > 0
        assert flat.cpu_seconds > 0
        assert flat.peak_rss_mb > 0
        assert set(flat.threads) == {"event_loop", "database"}
        assert all(0 < t.on_cpu <= t.wall for t in flat.threads.values())
        assert flat.trade_bytes is not None
        assert flat.trade_bytes.rows == flat.trades
        assert flat.trade_bytes.btrees["public_trades"] > 0
    assert [(r.writer, r.book_depth) for r in report.realistic] == [
        ("default", None),
        ("low_latency", None),
        ("default", run.SMOKE.realistic_book_depth),
    ]
    for realistic in report.realistic:
        assert realistic.trades > 0
        assert realistic.tickers > 0
        assert realistic.latency_ms["n"]
        assert 0 < realistic.cpu_share < 2
        assert realistic.ticker_bytes is not None
        assert realistic.ticker_bytes.rows == realistic.tickers
        assert realistic.ticker_bytes.per_row
    with_books = report.realistic_run(books=True)
    assert with_books is not None
    assert with_books.books > 0
    assert with_books.book_bytes is not None
    assert with_books.book_bytes.rows == with_books.books + with_books.checkpoints
    _check_book_flood(report.book_flood)
    assert report.pipeline is not None
    assert [s.frame_size for s in report.pipeline.stages] == ["1", "1-4", "100", "1024"]
    assert all(s.decoder_s > 0 and s.read_loop_s > 0 for s in report.pipeline.stages)

    text = _document(report, tmp_path)
    for heading in (
        "**Floor**",
        "**Limit**",
        "**Recorder, flood**",
        "**On disk**",
        "**Recorder, realistic**",
        "**Book limit**",
        "**Recorder, book flood**",
    ):
        assert heading in text
    for measure in (
        "x the floor",
        "x the limit",
        "where the time went",
        "bytes per trade row",
        "bytes per ticker row",
        "GB a day",
        "writer=bulk",
        "x the book limit",
        "bytes per book update",
        f"`orderbook.{run.SMOKE.realistic_book_depth}` of each",
    ):
        assert measure in text
    assert "Parse + normalize" in text
    assert "Machine" in text
    assert "writer=low_latency" in text


def _check_book_flood(book: bench_books.BookFloodResult | None) -> None:
    """Every update stored once (with the subscription's snapshot), measured, on disk,
    and its rows inserted again by the limit."""
    assert book is not None
    assert book.updates == run.SMOKE.book_updates
    assert book.stored == book.updates + 1
    assert book.updates_per_second > 0
    assert book.push.cpu_seconds > 0
    assert book.levels_per_delta > 1
    assert set(book.push.threads) == {"event_loop", "database"}
    assert book.book_bytes is not None
    assert book.book_bytes.rows == book.stored + book.checkpoints
    assert book.bytes_per_update
    assert book.limit is not None
    assert book.limit.rows == book.book_bytes.rows
    assert book.limit_updates_per_second


def test_bytes_per_row_sum_the_table_and_every_index_of_it(tmp_path: Path) -> None:
    db = tmp_path / "layout.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (k TEXT UNIQUE, v INTEGER)")
        conn.execute("CREATE INDEX t_v ON t (v)")
        conn.execute("CREATE TABLE c (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(f"{i:08}", i) for i in range(5000)])
        conn.executemany("INSERT INTO c VALUES (?, ?)", [(f"{i:08}", "x" * 40) for i in range(900)])
        conn.commit()

        t = bench_disk.table_bytes(db, "t")
        assert t.method == "dbstat"
        assert t.rows == 5000
        assert set(t.btrees) == {"t", "sqlite_autoindex_t_1", "t_v"}
        assert all(size > 0 for size in t.btrees.values())
        c = bench_disk.table_bytes(db, "c")
        assert set(c.btrees) == {"c"}
        assert c.per_row is not None
        assert 40 < c.per_row < 200
        # Without dbstat: the pages a copy loses when the table goes (about the same).
        dropped = bench_disk._dropped_bytes(conn, "t")
    assert 0.7 * t.total < dropped <= 1.1 * t.total
    assert 0.5 < bench_disk.gb_per_day(150, 300, 3_000_000) < 0.75


@pytest.mark.postgresql
def test_the_postgresql_scenarios_run_at_tiny_sizes(tmp_path: Path) -> None:
    if bench_postgres.unavailable() is not None:
        pytest.skip(bench_postgres.missing_binaries_reason())

    report = run.run(run.parse_args(["--smoke", "--only", "postgresql"]))

    pg = report.postgres
    trades = run.SMOKE.trades
    assert pg.skipped is None
    for limit in (pg.limit, pg.durable_limit):
        assert limit is not None
        assert limit.rows == trades
        assert set(limit.by_batch) == set(run.SMOKE.pg_limit_batches)
        assert limit.rows_per_second > 0
        assert limit.server_cpu_ms_per_1000 > 0
    assert pg.durable_limit is not None
    assert pg.durable_limit.durable
    flat = pg.flat_out
    assert flat is not None
    assert flat.database == "postgresql"
    assert flat.stored == flat.truth == flat.trades == trades
    assert flat.trades_per_second > 0
    assert flat.server_cpu_seconds is not None
    assert flat.server_cpu_seconds > 0
    assert len(pg.two_recorders) == run.SMOKE.two_recorder_runs
    two = pg.two_recorders[0]
    assert two.stored == two.distinct == two.truth == trades
    assert sum(two.written) == trades
    assert [w + d for w, d in zip(two.written, two.duplicates, strict=True)] == [trades] * 2
    assert two.trades_per_second > 0

    text = _document(report, tmp_path)
    for heading in (
        "**Limit, PostgreSQL**",
        "**Recorder, flat out, PostgreSQL**",
        "**Two recorders, one PostgreSQL database**",
        "fsync, synchronous_commit and full_page_writes on",
    ):
        assert heading in text
    assert "PostgreSQL 1" in text  # the server's version on the Software line


def test_without_server_binaries_the_postgresql_rows_say_why_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_postgres, "find_postgres_binaries", lambda: None)
    report = bench_report.Run(smoke=True)
    run.run_postgres(report, run.SMOKE, [])

    assert report.postgres.skipped is not None
    assert "PostgreSQL server binaries not found" in report.postgres.skipped
    rows = bench_report.postgres_rows(report.postgres)
    assert rows == [("**PostgreSQL**", "not run", report.postgres.skipped, "", "")]
