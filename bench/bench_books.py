"""The order-book scenarios (issue 15): the book flood, and its limit.

* ``book_flood``: the simulator's book firehose (``POST /sim/book-firehose``) over a real
  WebSocket into the recorder process (``books.depths=[200]``): one update per frame, as
  Bybit frames them, pushed as fast as the recorder reads them. Committed updates/s, CPU
  per 1,000 updates, and the bytes each stored update takes on disk.
* ``book_limit``: the rows that flood stored, read back and inserted again by plain
  ``sqlite3`` into a fresh file with the recorder's ``orderbook_updates`` layout: what the
  table alone costs, the yardstick of the flood.

(The realistic scenario with books is ``bench_scenarios.realistic(book_depth=50)``.)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_disk import TableBytes, table_bytes
from bench_scenarios import (
    MUST_BE_ZERO,
    BenchError,
    Launch,
    LimitResult,
    PushTimes,
    best_of,
    check_books_stored,
    connect_sqlite,
    measure_push,
    new_database,
    processes,
    timed_inserts,
)

from grid_db import tables
from grid_db.writes import insert_sql

SYMBOL = "BTCUSDT"
_TABLE = tables.orderbook_updates


@dataclass
class BookFloodResult:
    #: updates the firehose pushed: a snapshot, then deltas
    updates: int
    depth: int
    #: mean engine events per update (the firehose's ``events``)
    events: float
    #: the recorder over the push: first arrival to last commit, CPU, threads, RSS
    push: PushTimes
    #: updates stored (snapshots and deltas, the subscription's snapshot included)
    stored: int
    #: the recorder's checkpoints among the rows
    checkpoints: int
    #: changed levels in the firehose's deltas, and its frames' bytes
    levels: int
    frame_bytes: int
    #: orderbook_updates on disk: every row, checkpoints included
    book_bytes: TableBytes | None = None
    #: plain sqlite3 inserts of the same rows
    limit: LimitResult | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.push.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.push.cpu_seconds / self.updates * 1e6

    @property
    def levels_per_delta(self) -> float:
        return self.levels / max(1, self.updates - 1)

    @property
    def frame_bytes_per_update(self) -> float:
        return self.frame_bytes / self.updates

    @property
    def bytes_per_update(self) -> float | None:
        """Table bytes (checkpoints' included) per stored update."""
        if self.book_bytes is None or not self.stored:
            return None
        return self.book_bytes.total / self.stored

    @property
    def limit_updates_per_second(self) -> float | None:
        """The limit's pace over the same rows, per update (its checkpoints ride along)."""
        if self.limit is None:
            return None
        return self.limit.rows_per_second * self.stored / (self.stored + self.checkpoints)


def book_flood(
    updates: int,
    depth: int,
    events: float,
    limit_batches: tuple[int, ...],
    workdir: Path,
    name: str = "book_flood",
) -> BookFloodResult:
    """``updates`` updates of ``orderbook.{depth}.BTCUSDT`` flat out into the recorder.

    The simulator runs with no trades and no book activity of its own, so the recorder
    gets its subscription's snapshot and then the firehose's frames alone: ``reached``
    comes once all ``updates`` + 1 are committed, timed from the firehose's first frame.
    """
    launch = Launch(
        [SYMBOL], ("--expect-books", str(updates + 1), "--override", f"books.depths=[{depth}]")
    )
    quiet = ["--trade-rate", "0", "--book-update-rate", "0", "--seed", "1"]
    body = {"category": "linear", "symbol": SYMBOL, "updates": updates, "depth": depth}
    with processes(quiet, launch) as (sim, [recorder]):
        firehose = ("/sim/book-firehose", {**body, "events": events})
        push = measure_push(sim, recorder, name, firehose, 60 + updates / 500)
        stopped = recorder.stop()
        stored = check_books_stored(sim, recorder.db_path, [SYMBOL], depth, name)[SYMBOL]
        on_disk = table_bytes(recorder.db_path, _TABLE.name)
        rows = stored_rows(recorder.db_path)
    status = push.status
    check_flood(name, status, stopped, stored, updates)
    return BookFloodResult(
        updates=updates,
        depth=depth,
        events=events,
        push=push,
        stored=stored,
        checkpoints=stopped["checkpoints_committed"],
        levels=status["levels"],
        frame_bytes=status["frame_bytes"],
        book_bytes=on_disk,
        limit=book_limit(rows, limit_batches, workdir),
        details={"firehose": status, "recorder": stopped},
    )


def check_flood(
    name: str, status: dict[str, Any], stopped: dict[str, Any], stored: int, updates: int
) -> None:
    """The firehose made and sent ``updates``, and every one (with the subscription's
    snapshot) was stored once: none rejected, none broke the book."""
    problems = []
    if status["state"] != "done" or status["updates_sent"] != updates:
        problems.append(f"firehose {status['state']}, {status['updates_sent']} of {updates} sent")
    if status["last_u"] - status["first_u"] != updates - 1:
        problems.append(f"firehose u {status['first_u']}..{status['last_u']}")
    if stored != updates + 1:
        problems.append(f"{stored} updates stored of {updates} and the subscription's snapshot")
    if stopped["books_written"] != stopped["books_received"]:
        problems.append(f"{stopped['books_written']} of {stopped['books_received']} rows written")
    problems += [f"{k}={stopped[k]}" for k in (*MUST_BE_ZERO, "book_duplicates") if stopped.get(k)]
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))


def stored_rows(db: Path) -> list[tuple[Any, ...]]:
    """Every row of ``orderbook_updates`` as stored, in the table's column order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            f"SELECT {', '.join(_TABLE.column_names)} FROM {_TABLE.name}"
        ).fetchall()


def book_limit(rows: list[tuple[Any, ...]], batches: tuple[int, ...], workdir: Path) -> LimitResult:
    """Plain sqlite3 inserts of the flood's own rows: the best of ``batches`` sizes."""
    return best_of(rows, batches, workdir, "book-limit", book_limit_once)


def book_limit_once(rows: list[tuple[Any, ...]], batch: int, path: Path) -> tuple[float, float]:
    """(rows/s, CPU s) of ``executemany`` of ``rows`` into a fresh file made by ``grid_db``
    (the recorder's layout, key and PRAGMAs), with the table's one statement, one
    transaction per ``batch``; the rows get the new file's run before the clock starts."""
    ref = new_database(f"sqlite:///{path}").run_ref
    at = _TABLE.column_names.index("run_ref")
    rows = [(*row[:at], ref, *row[at + 1 :]) for row in rows]
    conn = connect_sqlite(path)
    try:
        return timed_inserts(conn, insert_sql(_TABLE, "sqlite"), rows, batch, "book limit")
    finally:
        conn.close()
