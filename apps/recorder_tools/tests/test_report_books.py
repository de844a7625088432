"""``recorder-report`` shows each order book beside the trades: what is stored of it, its book
gaps by cause, and the share of its span it was known-good.

Real sessions record BTCUSDT's books at depths 50 and 1 from the in-process simulator into
SQLite and PostgreSQL (``db``), with one book fault injected through the simulator's faults.
The real ``recorder-report`` (the console script's JSON; its text, in-process) must show each
book's updates as the database holds them, the fault's gap with its cause, and the book
known-good for its span less exactly that gap. A session without books, and a database without
the ``orderbook_updates`` table (a layout older than books), report no book section.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import func, select, text

from bybit_sim import BybitSimulator
from grid_db import DatabaseFactory
from recorder_tools.database import SessionDatabase
from recorder_tools.report.books import book_facts
from recorder_tools.report.cli import main as report_main
from recorder_tools.report.contents import DatabaseContents
from recorder_tools.report.model import GapTally, Report
from recorder_tools.report.tables import print_report
from recorder_tools.schema import GAPS, ORDERBOOK_UPDATES, PUBLIC_TRADES, STREAM_ORDERBOOK
from testkit import script, wait_until

SYMBOL = "BTCUSDT"
DEPTHS = (50, 1)
BOOKS_TITLE = "Order books: updates stored"
#: every depth's book, a checkpoint every 20 deltas (depth 50 pushes 50 a second)
WITH_BOOKS = ("symbols=btc", "books.depths=[50,1]", "books.checkpoint_every_updates=20")


def count(db: DatabaseFactory, table: Any, *where: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def stored(db: DatabaseFactory, depth: int, kind: str | None = None) -> int:
    c = ORDERBOOK_UPDATES.c
    of_kind = [] if kind is None else [c.kind == kind]
    return count(db, ORDERBOOK_UPDATES, c.symbol == SYMBOL, c.depth == depth, *of_kind)


def book_gaps(db: DatabaseFactory, depth: int | None = None) -> list[Any]:
    g = GAPS.c
    topic = f"orderbook.{depth}.{SYMBOL}:" if depth is not None else "orderbook."
    query = select(GAPS).where(g.stream == STREAM_ORDERBOOK, g.detail.startswith(topic))
    with db.engine.connect() as conn:
        return list(conn.execute(query.order_by(g.start_ts_ms)))


def as_stored(db: DatabaseFactory, depth: int) -> dict[str, Any]:
    """What the database holds of one book, as the report names it."""
    c = ORDERBOOK_UPDATES.c
    query = (
        select(c.kind, func.count(), func.min(c.exchange_ts_ms), func.max(c.exchange_ts_ms))
        .where(c.symbol == SYMBOL, c.depth == depth)
        .group_by(c.kind)
    )
    with db.engine.connect() as conn:
        kinds = {
            kind: (int(n), int(first), int(last)) for kind, n, first, last in conn.execute(query)
        }
    return {
        "updates": sum(n for n, _, _ in kinds.values()),
        **{f"{kind}s": kinds.get(kind, (0,))[0] for kind in ("delta", "snapshot", "checkpoint")},
        "first_ms": min(first for _, first, _ in kinds.values()),
        "last_ms": max(last for _, _, last in kinds.values()),
    }


def run_report(url: str, *args: str) -> str:
    """The real ``recorder-report`` on ``url``: its output (it must succeed)."""
    done = subprocess.run(
        [script("recorder-report"), url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def report_text(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The tables ``recorder-report`` prints for ``url`` (its entry point, in-process: the
    console script costs seconds of imports)."""
    assert report_main([url]) == 0
    return capsys.readouterr().out


def books_section(text: str) -> list[list[str]]:
    """The cells of the rows of the text report's book table."""
    section = text.split(BOOKS_TITLE, 1)[1].split("Holes:", 1)[0]
    rows = [line for line in section.splitlines() if SYMBOL in line]
    return [[cell.strip() for cell in row.split("│")[1:-1]] for row in rows]


async def record_a_book_fault(
    recording: Any,
    sim: BybitSimulator,
    db: DatabaseFactory,
    folder: Path,
    arm: Callable[[], int],
    gaps: int,
) -> None:
    """A session that stored both books for a while, then the fault (``arm``) and its
    ``gaps`` book gaps, then both books again for a while."""
    async with recording(sim, db, folder, *WITH_BOOKS):
        await wait_until(
            lambda: stored(db, 50, "checkpoint") >= 2 and stored(db, 1) >= 3, timeout=20
        )
        assert arm() >= 1
        await wait_until(lambda: len(book_gaps(db)) == gaps, timeout=20)
        healed_at = {depth: stored(db, depth) for depth in DEPTHS}
        # both books run on past the gap: it lies inside their spans
        await wait_until(
            lambda: stored(db, 50) > healed_at[50] + 40 and stored(db, 1) > healed_at[1] + 3,
            timeout=20,
        )


@pytest.mark.parametrize(
    ("fault", "cause", "broken"),
    [
        ("book_skip_update", "skipped_update", (50,)),
        ("book_crossed_delta", "crossed_book", (50,)),
        ("book_restart", "book_restart", (50, 1)),  # every depth of the symbol restarts
    ],
)
async def test_the_report_shows_each_books_updates_and_the_faults_gap(
    recording: Any,
    sim: BybitSimulator,
    db: DatabaseFactory,
    database_url: str,
    tmp_path: Path,
    fault: str,
    cause: str,
    broken: tuple[int, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    faults = getattr(sim.faults, fault)
    arm = (lambda: faults(SYMBOL)) if fault == "book_restart" else (lambda: faults(SYMBOL, 50))
    await record_a_book_fault(recording, sim, db, tmp_path, arm, len(broken))

    report = json.loads(await asyncio.to_thread(run_report, database_url, "--json"))
    books = {(b["symbol"], b["depth"]): b for b in report["books"]}
    assert sorted(books) == [(SYMBOL, 1), (SYMBOL, 50)]
    for depth in DEPTHS:
        book, held = books[(SYMBOL, depth)], as_stored(db, depth)
        assert {k: book[k] for k in held} == held, depth
        assert (book["category"], book["topic"]) == ("linear", f"orderbook.{depth}.{SYMBOL}")
        span_ms = held["last_ms"] - held["first_ms"]
        assert book["span_s"] == span_ms / 1000
        if depth not in broken:
            assert book["gaps_by_cause"] == {}
            assert (book["gaps"], book["known_good_fraction"]) == (0, 1.0)
            continue
        (gap,) = book_gaps(db, depth)
        gap_ms = gap.end_ts_ms - gap.start_ts_ms
        assert held["first_ms"] < gap.start_ts_ms < gap.end_ts_ms < held["last_ms"]
        assert (book["gaps"], book["gap_s"]) == (1, gap_ms / 1000)
        assert book["gaps_by_cause"] == {cause: {"gaps": 1, "duration_s": gap_ms / 1000}}
        # known-good: the span less exactly the gap
        assert book["known_good_s"] == (span_ms - gap_ms) / 1000
        assert book["known_good_fraction"] == round((span_ms - gap_ms) / span_ms, 6) < 1
    assert books[(SYMBOL, 50)]["deltas"] > 0
    assert books[(SYMBOL, 50)]["checkpoints"] >= 2
    assert books[(SYMBOL, 1)]["deltas"] == 0  # depth 1 is snapshots only
    assert any(line.startswith("order books: ") for line in report["findings"])

    rows = books_section(report_text(database_url, capsys))
    assert {row[2] for row in rows} == {"50", "1"}
    for row in rows:
        book = books[(SYMBOL, int(row[2]))]
        assert row[:4] == ["linear", SYMBOL, row[2], f"{book['updates']:,}"]
        assert row[-1] == f"{book['known_good_fraction'] * 100:.2f}%"
        if book["gaps"]:
            assert row[-2].startswith(f"{cause} 1 ("), row
        else:
            assert row[-2] == "-", row


async def test_no_books_no_book_section_even_without_the_books_table(
    recording: Any,
    sim: BybitSimulator,
    db: DatabaseFactory,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with recording(sim, db, tmp_path, "symbols=btc"):
        await wait_until(lambda: count(db, PUBLIC_TRADES) > 10, timeout=20)

    report = json.loads(await asyncio.to_thread(run_report, database_url, "--json"))
    assert report["books"] == []
    assert report["instruments"]
    assert report["coverage"]
    assert BOOKS_TITLE not in report_text(database_url, capsys)
    # a layout older than books has no orderbook_updates table at all
    with db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {ORDERBOOK_UPDATES.name}"))
    old = json.loads(await asyncio.to_thread(run_report, database_url, "--json"))
    assert old["books"] == []
    for part in ("sessions", "instruments", "coverage", "holes", "days"):
        assert old[part] == report[part], part
    assert BOOKS_TITLE not in report_text(database_url, capsys)


def book_gap(depth: int, run_id: str, window: tuple[int, int]) -> Any:
    """A ``gaps`` row of one of BTCUSDT's books (read by column name, as the report does)."""
    return SimpleNamespace(
        stream=STREAM_ORDERBOOK,
        category="linear",
        symbol=SYMBOL,
        detail=f"orderbook.{depth}.{SYMBOL}: u jumped",
        cause="skipped_update",
        fill_status="unfillable",
        run_id=run_id,
        start_ts_ms=window[0],
        end_ts_ms=window[1],
    )


def test_known_good_leaves_out_the_time_between_sessions_and_counts_only_its_books_gaps() -> None:
    """Two sessions stored the depth-50 book, the first with a gap; the depth-1 book has a gap
    and no update: it is listed, with nothing to measure."""
    books = {
        ("a", "linear", SYMBOL, 50, "snapshot"): (1, 1_000, 1_000),
        ("a", "linear", SYMBOL, 50, "delta"): (10, 1_001, 2_000),
        ("b", "linear", SYMBOL, 50, "snapshot"): (2, 3_000, 3_500),
        ("b", "linear", SYMBOL, 50, "checkpoint"): (1, 3_500, 3_500),
        ("b", "linear", SYMBOL, 50, "delta"): (5, 3_001, 4_000),
    }
    gaps = [book_gap(50, "a", (1_500, 1_600)), book_gap(1, "a", (1_200, 1_300))]
    db = DatabaseContents(SessionDatabase("x", "x"), [], {}, {}, {}, gaps, {}, books)
    depth_1, depth_50 = book_facts([db])
    assert (depth_50.updates, depth_50.deltas, depth_50.snapshots, depth_50.checkpoints) == (
        19,
        15,
        3,
        1,
    )
    assert (depth_50.first_ms, depth_50.last_ms, depth_50.span_s) == (1_000, 4_000, 3.0)
    # 1000..2000 less the gap, and 3000..4000; not the 2000..3000 no session stored
    assert (depth_50.gaps, depth_50.gap_s, depth_50.known_good_s) == (1, 0.1, 1.9)
    assert depth_50.known_good_fraction == round(1_900 / 3_000, 6)
    assert depth_50.gaps_by_cause == {"skipped_update": GapTally(1, 0.1)}
    assert (depth_1.updates, depth_1.first_ms, depth_1.gaps, depth_1.known_good_fraction) == (
        0,
        None,
        1,
        None,
    )
    out = io.StringIO()
    report = Report("x", 0, [], [], [], [], [], [], [], [], [], books=[depth_1, depth_50])
    print_report(report, Console(file=out, width=220))
    rows = {row[2]: row for row in books_section(out.getvalue())}
    assert rows["1"][-4:] == ["0ms", "1", "skipped_update 1 (100ms)", "-"]
    assert rows["50"][-4:] == ["3.0s", "1", "skipped_update 1 (100ms)", "63.33%"]
