"""Order books recorded through the pipeline into a real database (SQLite and PostgreSQL).

Against the simulator, whose own books are the truth: rebuilt from the database at many
instants (``grid_db.books.book_at``) or walked update by update (``book_states``), a book
equals the simulator's level by level;
each fault of a book (a lost update, a crossed delta, a service restart, a changed depth-1
re-send) yields one ``gaps`` row of stream ``orderbook`` with its cause, nothing of that
book is stored inside the gap, and the book is right again after it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bybit_records import BookKind, OutageCause, Topic
from event_saver import RecordingPipeline
from grid_db import DatabaseFactory, tables
from grid_db.books import book_at, book_states
from testkit import wait_until

from .conftest import Start

BOOKS = tables.orderbook_updates.table
GAPS = tables.gaps.table
SYMBOL = "BTCUSDT"


async def recording(start: Start, *depths: int) -> RecordingPipeline:
    """A pipeline recording books of ``depths`` (checkpoints every 25 deltas or 2 s)."""
    return await start(
        book_depths=depths or (50,),
        book_checkpoint_every_updates=25,
        book_checkpoint_every_ms=2_000,
    )


def stored(db: DatabaseFactory, depth: int, *where: Any) -> list[Any]:
    c = BOOKS.c
    query = select(BOOKS).where(c.symbol == SYMBOL, c.depth == depth, *where)
    with db.engine.connect() as conn:
        return list(conn.execute(query.order_by(c.exchange_ts_ms, c.update_id)))


def count(db: DatabaseFactory, depth: int) -> int:
    c = BOOKS.c
    query = select(func.count()).where(c.symbol == SYMBOL, c.depth == depth)
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def book_gaps(db: DatabaseFactory, depth: int) -> list[Any]:
    g = GAPS.c
    query = select(GAPS).where(
        g.stream == Topic.ORDERBOOK.value,
        g.symbol == SYMBOL,
        g.detail.startswith(f"orderbook.{depth}.{SYMBOL}:"),
    )
    with db.engine.connect() as conn:
        return list(conn.execute(query.order_by(g.start_ts_ms)))


def assert_books_match(sim: Any, db: DatabaseFactory, depth: int, instants: list[int]) -> None:
    """At each instant the book rebuilt from the database is the simulator's."""
    assert instants
    with db.engine.connect() as conn:
        for ts in instants:
            truth = sim.ground_truth.book_at("linear", SYMBOL, depth, ts)
            assert truth is not None, ts
            ours = book_at(conn, "linear", SYMBOL, depth, ts)
            assert ours is not None, f"no book at {ts}"
            got = ([tuple(level) for level in ours.bids()], [tuple(x) for x in ours.asks()])
            assert got == ([tuple(x) for x in truth.bids], [tuple(x) for x in truth.asks]), ts
            assert ours.update_id == truth.u, ts


def spread_over(rows: list[Any], n: int = 40) -> list[int]:
    """``n`` update times spread over ``rows`` (each a time the book changed)."""
    step = max(1, len(rows) // n)
    return [row.exchange_ts_ms for row in rows[::step]]


async def test_a_book_rebuilt_from_the_database_is_the_simulators_at_every_instant(
    sim: Any, start: Start, db: DatabaseFactory
) -> None:
    pipeline = await recording(start, 50, 1)
    await wait_until(lambda: count(db, 50) > 150, timeout=20)
    await wait_until(lambda: count(db, 1) > 20, timeout=20)
    await pipeline.stop()

    rows = stored(db, 50)
    kinds = {row.kind for row in rows}
    assert kinds == {BookKind.SNAPSHOT, BookKind.DELTA, BookKind.CHECKPOINT}
    assert_books_match(sim, db, 50, spread_over(rows))
    # depth 1 is snapshot-only: each stored snapshot is the simulator's book then
    assert {row.kind for row in stored(db, 1)} == {BookKind.SNAPSHOT}
    assert_books_match(sim, db, 1, spread_over(stored(db, 1)))
    assert book_gaps(db, 50) == []
    # u grows by one per delta between full books: nothing lost, nothing stored twice
    deltas = [r.update_id for r in rows if r.kind == BookKind.DELTA]
    assert len(deltas) > 100
    assert deltas == list(range(deltas[0], deltas[0] + len(deltas)))


async def test_book_states_walks_every_update_with_the_simulators_book_after_it(
    sim: Any, start: Start, db: DatabaseFactory
) -> None:
    pipeline = await recording(start, 50)
    await wait_until(lambda: count(db, 50) > 120, timeout=20)
    await pipeline.stop()
    updates = stored(db, 50, BOOKS.c.kind != BookKind.CHECKPOINT)
    since, until = updates[10].exchange_ts_ms, updates[-10].exchange_ts_ms
    expected = [
        (r.exchange_ts_ms, r.update_id) for r in updates if since < r.exchange_ts_ms <= until
    ]

    walked, states = [], {}
    with db.engine.connect() as conn:
        for update, book in book_states(conn, "linear", SYMBOL, 50, since, until):
            walked.append((update.exchange_ts_ms, update.update_id))
            # the book after the last update of each instant (the simulator's at that ts)
            states[update.exchange_ts_ms] = (book.update_id, book.bids(), book.asks())
        # from before the first full book: nothing until the subscription's snapshot
        first, _ = next(book_states(conn, "linear", SYMBOL, 50, 0, until))
    for ts, (update_id, bids, asks) in states.items():
        truth = sim.ground_truth.book_at("linear", SYMBOL, 50, ts)
        assert update_id == truth.u, ts
        assert [tuple(x) for x in bids] == [tuple(x) for x in truth.bids], ts
        assert [tuple(x) for x in asks] == [tuple(x) for x in truth.asks], ts
    assert walked == expected
    assert len(walked) > 50  # a real walk, whatever the rate
    assert first.kind is BookKind.SNAPSHOT


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("book_skip_update", OutageCause.SKIPPED_UPDATE),
        ("book_crossed_delta", OutageCause.CROSSED_BOOK),
        ("book_restart", OutageCause.BOOK_RESTART),
    ],
)
async def test_a_broken_book_is_a_gap_and_right_again_after_it(
    sim: Any, start: Start, db: DatabaseFactory, fault: str, cause: OutageCause
) -> None:
    pipeline = await recording(start, 50)
    await wait_until(lambda: count(db, 50) > 50, timeout=20)
    arm = getattr(sim.faults, fault)
    assert (arm(SYMBOL) if fault == "book_restart" else arm(SYMBOL, 50)) >= 1
    await wait_until(lambda: len(book_gaps(db, 50)) == 1, timeout=20)
    (gap,) = book_gaps(db, 50)
    healed_at = count(db, 50)
    await wait_until(lambda: count(db, 50) > healed_at + 50, timeout=20)
    await pipeline.stop()

    assert pipeline.public is not None
    assert pipeline.public.stats.book_gaps == 1
    assert (gap.cause, gap.fill_status) == (cause.value, "unfillable")
    assert gap.start_ts_ms < gap.end_ts_ms
    rows = stored(db, 50)
    # nothing of the book was stored inside the gap: only its last update before, and the
    # snapshot that ends it
    inside = [r for r in rows if gap.start_ts_ms < r.exchange_ts_ms < gap.end_ts_ms]
    assert inside == []
    # the first update at its end (in (ts, u) order: a delta may follow in the same ms)
    healing = next(r for r in rows if r.exchange_ts_ms == gap.end_ts_ms)
    assert healing.kind == BookKind.SNAPSHOT
    if cause is OutageCause.BOOK_RESTART:
        assert healing.update_id == 1
    # no book inside the gap; the right one on both sides of it
    with db.engine.connect() as conn:
        assert book_at(conn, "linear", SYMBOL, 50, (gap.start_ts_ms + gap.end_ts_ms) // 2) is None
    before = [r.exchange_ts_ms for r in rows if r.exchange_ts_ms <= gap.start_ts_ms]
    after = [r.exchange_ts_ms for r in rows if r.exchange_ts_ms >= gap.end_ts_ms]
    assert_books_match(sim, db, 50, before[-5:] + after[:20] + after[-5:])


async def test_a_changed_depth_1_resend_under_the_same_u_is_a_gap(
    sim: Any, start: Start, db: DatabaseFactory
) -> None:
    pipeline = await recording(start, 1)
    await wait_until(lambda: count(db, 1) > 20, timeout=20)
    assert sim.faults.book_stale_resend(SYMBOL) >= 1
    await wait_until(lambda: len(book_gaps(db, 1)) == 1, timeout=20)
    (gap,) = book_gaps(db, 1)
    healed_at = count(db, 1)
    await wait_until(lambda: count(db, 1) > healed_at + 10, timeout=20)
    await pipeline.stop()
    assert gap.cause == OutageCause.SKIPPED_UPDATE.value
    rows = stored(db, 1)
    assert [r for r in rows if gap.start_ts_ms < r.exchange_ts_ms < gap.end_ts_ms] == []
    after = [r.exchange_ts_ms for r in rows if r.exchange_ts_ms >= gap.end_ts_ms]
    assert_books_match(sim, db, 1, after[:10])


async def test_a_disconnect_is_a_book_gap_and_the_book_is_right_after_it(
    sim: Any, start: Start, db: DatabaseFactory
) -> None:
    pipeline = await recording(start, 50)
    await wait_until(lambda: count(db, 50) > 50, timeout=20)
    sim.faults.drop_connections()
    await wait_until(lambda: len(book_gaps(db, 50)) == 1, timeout=20)
    healed_at = count(db, 50)
    await wait_until(lambda: count(db, 50) > healed_at + 50, timeout=20)
    await pipeline.stop()
    (gap,) = book_gaps(db, 50)
    assert (gap.cause, gap.fill_status) == (OutageCause.DISCONNECT.value, "unfillable")
    rows = stored(db, 50)
    after = [r.exchange_ts_ms for r in rows if r.exchange_ts_ms >= gap.end_ts_ms]
    assert_books_match(sim, db, 50, after[:20])
