"""``BookValidator``: which book updates are stored, each way a book breaks, the drop
until a snapshot heals it, restarts, depth-1 re-sends, and checkpoints."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bybit_adapter import BookAction, BookDecoder, BookGap, BookValidator, BookVerdict
from bybit_records import (
    Book,
    BookKind,
    BookUpdate,
    Category,
    FillStatus,
    Gap,
    OutageCause,
    Topic,
)
from testkit import levels, make_book_update

from .conftest import RECEIVED_NS, all_captured

T0 = 1_700_000_000_000
STORE, SKIP, DROP, BREAK = BookAction.STORE, BookAction.SKIP, BookAction.DROP, BookAction.BREAK

BIDS = [["100.0", "1"], ["99.5", "2"], ["99.0", "3"]]
ASKS = [["100.5", "1"], ["101.0", "2"]]


def update(kind: BookKind, u: int, ts: int, *bids_asks: Any, **kw: Any) -> BookUpdate:
    """An update of the BTCUSDT book sent ``ts`` ms after T0, received 7 ms later."""
    return make_book_update(kind, u, T0 + ts, *bids_asks, received_ts_ms=T0 + ts + 7, **kw)


def book_gap(cause: OutageCause, **times_and_detail: Any) -> BookGap:
    """A gap of the book the tests feed (linear BTCUSDT, depth 50)."""
    return BookGap(Category.LINEAR, "BTCUSDT", 50, cause, **times_and_detail)


def snap(u: int, ts: int, bids: Any = None, asks: Any = None, **kw: Any) -> BookUpdate:
    return update(
        BookKind.SNAPSHOT,
        u,
        ts,
        copy.deepcopy(BIDS) if bids is None else bids,
        copy.deepcopy(ASKS) if asks is None else asks,
        **kw,
    )


def delta(u: int, ts: int, bids: Any = None, asks: Any = None, **kw: Any) -> BookUpdate:
    # By default a harmless change: the size of the second bid.
    return update(BookKind.DELTA, u, ts, [["99.5", str(u)]] if bids is None else bids, asks, **kw)


def validator(**kw: Any) -> BookValidator:
    """No checkpoints unless asked: they would clutter the verdicts."""
    kw.setdefault("checkpoint_every_updates", None)
    kw.setdefault("checkpoint_every_ms", None)
    return BookValidator(**kw)


def actions(v: BookValidator, *updates: BookUpdate) -> list[BookVerdict]:
    return [v.check(u) for u in updates]


def test_a_normal_stream_is_stored_and_builds_the_book() -> None:
    v = validator()
    verdicts = actions(
        v,
        snap(100, 0),
        delta(101, 20),
        delta(102, 40, [["99.0", "0"]], [["100.5", "4"], ["102", "1"]]),
        delta(103, 60, [], [["101.0", "0"]]),
    )
    assert [x.action for x in verdicts] == [STORE] * 4
    assert all(x.healed is None and x.broken is None and x.checkpoint is None for x in verdicts)
    assert [x.records for x in verdicts] == [[x.update] for x in verdicts]
    assert verdicts[0].cause is None
    book = v.book("BTCUSDT", 50)
    assert book is not None
    assert book.bids() == [["100.0", "1"], ["99.5", "101"]]
    assert book.asks() == [["100.5", "4"], ["102", "1"]]
    assert book.update_id == 103
    assert v.open_gaps() == []


def test_the_captured_frames_are_stored() -> None:
    """Real snapshot+delta pairs (spot, linear, option; depth 1, 25, 50) pass the checks."""
    validators: dict[Category, BookValidator] = {}
    stored = 0
    for category, frame in all_captured():
        if not frame["topic"].startswith("orderbook."):
            continue
        record = BookDecoder(category).frame(frame, RECEIVED_NS)
        verdict = validators.setdefault(category, BookValidator()).check(record)
        if record.kind is BookKind.SNAPSHOT or record.update_id == 24642:
            assert verdict.action is STORE, (frame, verdict)
        stored += verdict.action is STORE
    # The linear 2023-04-21 depth-1 delta (u 1188472) has no snapshot in the capture:
    # every other frame is stored.
    assert stored == 11


def test_a_delta_before_any_snapshot_breaks_and_later_deltas_are_dropped() -> None:
    v = validator()
    first = v.check(delta(101, 0))
    assert first.action is BREAK
    assert first.cause is OutageCause.DELTA_BEFORE_SNAPSHOT
    assert first.start_ts_ms == T0  # nothing was stored: the window starts at the delta
    assert first.records == []
    assert first.broken is not None
    assert first.broken.end_ts_ms is None
    assert first.broken.detected_at_ms == T0 + 7
    assert "before any snapshot" in first.broken.detail
    assert [x.action for x in actions(v, delta(102, 20), delta(103, 40))] == [DROP, DROP]
    assert v.book("BTCUSDT", 50) is None
    assert v.open_gaps() == [first.broken]

    healed = v.check(snap(200, 100))
    assert healed.action is STORE
    assert healed.healed == book_gap(
        OutageCause.DELTA_BEFORE_SNAPSHOT,
        start_ts_ms=T0,
        detected_at_ms=T0 + 7,
        detail="delta u=101 before any snapshot",
        end_ts_ms=T0 + 100,
        resolved_at_ms=T0 + 107,
    )
    assert v.open_gaps() == []
    assert v.check(delta(201, 120)).action is STORE


def test_a_skipped_update_breaks_from_the_last_stored_update() -> None:
    v = validator()
    assert [x.action for x in actions(v, snap(100, 0), delta(101, 20))] == [STORE, STORE]
    broken = v.check(delta(103, 40))
    assert broken.action is BREAK
    assert broken.cause is OutageCause.SKIPPED_UPDATE
    assert broken.start_ts_ms == T0 + 20
    assert broken.broken is not None
    assert broken.broken.detail == "delta u=103 after u=101 (expected 102)"
    # Deltas that would fit the lost state are dropped all the same: the book is wrong.
    assert [x.action for x in actions(v, delta(104, 60), delta(105, 80))] == [DROP, DROP]
    healed = v.check(snap(110, 200))
    assert healed.action is STORE
    assert healed.healed is not None
    assert (healed.cause, healed.start_ts_ms, healed.healed.end_ts_ms) == (
        OutageCause.SKIPPED_UPDATE,
        T0 + 20,
        T0 + 200,
    )
    # The gaps row: unfillable, the depth in the detail.
    assert healed.healed.record() == Gap(
        stream=Topic.ORDERBOOK,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        start_ts_ms=T0 + 20,
        end_ts_ms=T0 + 200,
        cause=OutageCause.SKIPPED_UPDATE,
        fill_status=FillStatus.UNFILLABLE,
        rows_recovered=0,
        recovered_from_ts_ms=None,
        detail="orderbook.50.BTCUSDT: delta u=103 after u=101 (expected 102)",
        detected_at_ms=T0 + 47,
        resolved_at_ms=T0 + 207,
    )
    assert v.check(delta(111, 220)).action is STORE


@pytest.mark.parametrize("u", [100, 99, 1, 0, 10**12], ids=["repeat", "back", "one", "zero", "far"])
def test_any_delta_u_but_the_next_breaks(u: int) -> None:
    v = validator()
    v.check(snap(100, 0))
    verdict = v.check(delta(u, 20))
    assert (verdict.action, verdict.cause) == (BREAK, OutageCause.SKIPPED_UPDATE)


def test_a_delta_that_crosses_the_book_breaks() -> None:
    v = validator()
    v.check(snap(100, 0))
    verdict = v.check(delta(101, 20, [["100.5", "1"]], []))  # a bid at the best ask
    assert verdict.action is BREAK
    assert verdict.cause is OutageCause.CROSSED_BOOK
    assert verdict.start_ts_ms == T0
    assert verdict.broken is not None
    assert verdict.broken.detail == "best bid 100.5 >= best ask 100.5 after delta u=101"
    assert v.book("BTCUSDT", 50) is None  # the crossed state is never used again
    assert v.check(delta(102, 40)).action is DROP
    healed = v.check(snap(102, 60))
    assert (healed.action, healed.cause) == (STORE, OutageCause.CROSSED_BOOK)


def test_a_crossed_snapshot_is_stored_as_the_exchange_sent_it() -> None:
    v = validator()
    assert v.check(snap(100, 0, [["101", "1"]], [["100", "1"]])).action is STORE


def test_a_restart_snapshot_is_stored_and_reported_as_a_gap() -> None:
    v = validator()
    actions(v, snap(7000, 0), delta(7001, 20), delta(7002, 40))
    restart = v.check(snap(1, 90, [["98", "1"]], [["99", "1"]]))
    assert restart.action is STORE  # valid: it resets the book
    assert restart.records == [restart.update]
    assert restart.broken is None
    assert restart.healed == book_gap(
        OutageCause.BOOK_RESTART,
        start_ts_ms=T0 + 40,
        detected_at_ms=T0 + 97,
        detail="snapshot u=1 replaced the book at u=7002",
        end_ts_ms=T0 + 90,
        resolved_at_ms=T0 + 97,
    )
    assert restart.healed.record().cause is OutageCause.BOOK_RESTART
    book = v.book("BTCUSDT", 50)
    assert book is not None
    assert (book.bids(), book.asks(), book.update_id) == ([["98", "1"]], [["99", "1"]], 1)
    assert v.check(delta(2, 110, [["97", "1"]])).action is STORE
    assert v.open_gaps() == []


def test_a_first_snapshot_with_u_1_is_no_restart() -> None:
    verdict = validator().check(snap(1, 0))
    assert (verdict.action, verdict.healed) == (STORE, None)


def test_a_u_1_snapshot_healing_a_break_keeps_the_break_cause() -> None:
    v = validator()
    actions(v, snap(100, 0), delta(105, 20))
    healed = v.check(snap(1, 40))
    assert healed.healed is not None
    assert healed.cause is OutageCause.SKIPPED_UPDATE
    assert healed.healed.detail.endswith("; healed by a u=1 snapshot")


def test_a_u_1_delta_after_a_book_breaks() -> None:
    v = validator()
    v.check(snap(100, 0))
    verdict = v.check(delta(1, 20))
    assert (verdict.action, verdict.cause) == (BREAK, OutageCause.SKIPPED_UPDATE)


def test_depth_1_resends_of_the_same_book_are_skipped() -> None:
    v = validator()
    first = snap(500, 0, [["28552.00", "0.047"]], [["28552.10", "25.433"]], depth=1)
    assert v.check(first).action is STORE
    same = snap(500, 3000, [["28552.00", "0.047"]], [["28552.10", "25.433"]], depth=1)
    assert v.check(same).action is SKIP
    spelled = snap(500, 6000, [["28552.0", "0.0470"]], [["28552.1", "25.433"]], depth=1)
    skipped = v.check(spelled)
    assert (skipped.action, skipped.records) == (SKIP, [])
    # A new u: a new book.
    assert (
        v.check(snap(503, 6010, [["28552.00", "1"]], [["28552.10", "2"]], depth=1)).action is STORE
    )


def test_a_depth_1_resend_with_other_levels_breaks_until_the_next_snapshot() -> None:
    v = validator()
    v.check(snap(500, 0, [["10", "1"]], [["11", "1"]], depth=1))
    verdict = v.check(snap(500, 3000, [["10", "2"]], [["11", "1"]], depth=1))
    assert verdict.action is BREAK
    assert verdict.cause is OutageCause.SKIPPED_UPDATE
    assert verdict.broken is not None
    assert verdict.broken.detail == "snapshot repeated u=500 with different levels"
    assert verdict.start_ts_ms == T0
    healed = v.check(snap(501, 3010, [["10", "2"]], [["11", "1"]], depth=1))
    assert healed.action is STORE
    assert healed.healed is not None
    assert healed.healed.end_ts_ms == T0 + 3010


def test_depth_1_snapshots_never_need_checkpoints() -> None:
    v = BookValidator(checkpoint_every_updates=2, checkpoint_every_ms=10)
    verdicts = actions(v, *(snap(u, u * 100, depth=1) for u in range(1, 30)))
    assert {x.action for x in verdicts} == {STORE}
    assert all(x.checkpoint is None for x in verdicts)


def test_checkpoints_by_count() -> None:
    v = validator(checkpoint_every_updates=3)
    verdicts = actions(v, snap(10, 0), *(delta(u, (u - 10) * 20) for u in range(11, 18)))
    due = [x.update.update_id for x in verdicts if x.checkpoint is not None]
    assert due == [13, 16]
    for verdict in verdicts:
        point = verdict.checkpoint
        if point is None:
            continue
        assert point.kind is BookKind.CHECKPOINT
        assert verdict.records == [verdict.update, point]
        at = verdict.update
        assert (point.update_id, point.seq, point.match_ts_ms) == (
            at.update_id,
            at.seq,
            at.match_ts_ms,
        )
        assert (point.exchange_ts_ms, point.received_ts_ms) == (
            at.exchange_ts_ms,
            at.received_ts_ms,
        )
    # The last checkpoint holds the book as it was then.
    last = verdicts[6].checkpoint
    assert last is not None
    assert last.bids == levels([["100.0", "1"], ["99.5", "16"], ["99.0", "3"]])
    assert last.asks == levels(ASKS)
    # A snapshot is a full book too: the count starts again from it.
    actions(v, delta(18, 200), snap(30, 220))
    verdicts = actions(v, *(delta(u, 220 + u) for u in range(31, 35)))
    assert [x.update.update_id for x in verdicts if x.checkpoint] == [33]


def test_checkpoints_by_exchange_time() -> None:
    v = validator(checkpoint_every_ms=1000)
    verdicts = actions(
        v,
        snap(10, 0),
        delta(11, 400),
        delta(12, 999),
        delta(13, 1000),  # 1000 ms after the snapshot
        delta(14, 1500),
        delta(15, 1999),
        delta(16, 2100),  # 1100 ms after the last checkpoint
    )
    assert [x.update.update_id for x in verdicts if x.checkpoint] == [13, 16]


def test_checkpoints_by_either_measure() -> None:
    v = BookValidator(checkpoint_every_updates=4, checkpoint_every_ms=1000)
    verdicts = actions(
        v,
        snap(10, 0),
        *(delta(u, (u - 10) * 10) for u in range(11, 16)),  # the 4th delta is due
        delta(16, 1100),  # 1040 ms after the checkpoint at u 14
    )
    assert [x.update.update_id for x in verdicts if x.checkpoint] == [14, 16]


def test_the_defaults_and_bad_settings() -> None:
    v = BookValidator()
    assert (v.checkpoint_every_updates, v.checkpoint_every_ms) == (1000, 60_000)
    for bad in ({"checkpoint_every_updates": 0}, {"checkpoint_every_ms": -1}):
        with pytest.raises(ValueError, match="must be positive"):
            BookValidator(**bad)


def test_a_checkpoint_is_not_an_update_to_check() -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        validator().check(update(BookKind.CHECKPOINT, 1, 0))


def test_what_is_stored_rebuilds_the_validators_book() -> None:
    """Replaying the stored records (updates and checkpoints) gives the validator's book,
    and so does starting from the last checkpoint alone."""
    v = validator(checkpoint_every_updates=5)
    stored: list[BookUpdate] = []
    updates = [snap(10, 0)]
    for u in range(11, 40):
        updates.append(delta(u, u * 10, [[f"{99 + (u % 3) * 0.5}", str(u % 4)]], []))
    for x in actions(v, *updates):
        assert x.action is STORE
        stored += x.records
    replay = Book()
    for record in stored:
        replay.apply(record)
    book = v.book("BTCUSDT", 50)
    assert book is not None
    assert (replay.bids(), replay.asks()) == (book.bids(), book.asks())
    last_point = max(i for i, r in enumerate(stored) if r.kind is BookKind.CHECKPOINT)
    from_point = Book()
    for record in stored[last_point:]:
        from_point.apply(record)
    assert (from_point.bids(), from_point.asks()) == (book.bids(), book.asks())


def test_books_of_other_symbols_and_depths_are_independent() -> None:
    v = validator()
    actions(v, snap(100, 0), snap(7, 0, depth=1), snap(100, 0, symbol="ETHUSDT"))
    assert v.check(delta(102, 20)).action is BREAK  # BTCUSDT 50 breaks
    assert v.check(snap(8, 20, depth=1)).action is STORE
    assert v.check(delta(101, 20, symbol="ETHUSDT")).action is STORE
    assert v.check(delta(103, 40)).action is DROP
    assert [g.topic for g in v.open_gaps()] == ["orderbook.50.BTCUSDT"]


def test_reset_forgets_the_books_but_keeps_open_breaks() -> None:
    v = validator()
    actions(v, snap(100, 0), delta(101, 20), snap(5, 0, symbol="ETHUSDT"))
    v.check(delta(9, 30, symbol="ETHUSDT"))  # ETHUSDT breaks
    v.reset()  # a new connection
    assert v.book("BTCUSDT", 50) is None
    # A delta before the new connection's snapshot: a break from the last stored update.
    verdict = v.check(delta(102, 40))
    assert (verdict.action, verdict.cause, verdict.start_ts_ms) == (
        BREAK,
        OutageCause.DELTA_BEFORE_SNAPSHOT,
        T0 + 20,
    )
    assert {g.symbol for g in v.open_gaps()} == {"BTCUSDT", "ETHUSDT"}
    healed = v.check(snap(50, 60, symbol="ETHUSDT"))
    assert healed.cause is OutageCause.SKIPPED_UPDATE
    assert healed.start_ts_ms == T0


def test_a_snapshot_after_reset_is_stored_without_a_gap() -> None:
    v = validator()
    actions(v, snap(100, 0), delta(101, 20))
    v.reset()
    verdict = v.check(snap(1, 5000))  # even a u=1 one: the reconnect is the stream's gap
    assert (verdict.action, verdict.healed) == (STORE, None)


def test_an_open_gap_has_no_gaps_row_until_closed() -> None:
    v = validator()
    broken = v.check(delta(5, 10)).broken
    assert broken is not None
    with pytest.raises(ValueError, match="still open"):
        broken.record()
    closed = broken.close(T0 + 500, T0 + 600).record()
    assert (closed.start_ts_ms, closed.end_ts_ms, closed.resolved_at_ms) == (
        T0 + 10,
        T0 + 500,
        T0 + 600,
    )
    assert closed.stream is Topic.ORDERBOOK
