"""``BookUpdate`` (the record, and the table built from it) and ``Book`` (the book its
updates build): ordering by decimal value, exact strings, deletes, crossing, checkpoints."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bybit_records import Book, BookKind, BookUpdate, Category
from testkit import make_book_update


def update(
    kind: BookKind,
    bids: list[list[str]],
    asks: list[list[str]],
    *,
    u: int = 10,
    ts: int = 1_700_000_000_000,
    **kw: Any,
) -> BookUpdate:
    return make_book_update(kind, u, ts, bids, asks, **kw)


def snapshot(bids: list[list[str]], asks: list[list[str]], **kw: Any) -> BookUpdate:
    return update(BookKind.SNAPSHOT, bids, asks, **kw)


def delta(bids: list[list[str]], asks: list[list[str]], **kw: Any) -> BookUpdate:
    return update(BookKind.DELTA, bids, asks, **kw)


def book_of(*updates: BookUpdate) -> Book:
    book = Book()
    for u in updates:
        book.apply(u)
    return book


# ---- Book ---------------------------------------------------------------------------


def test_a_snapshot_is_sorted_by_value_and_keeps_the_exact_strings() -> None:
    book = book_of(
        snapshot(
            [["99.5", "1"], ["100.00", "0.10"], ["9.75", "3"], ["100.5", "2"]],
            [["101", "1.0"], ["1000.0", "5"], ["100.75", "0.5"], ["200", "7"]],
        )
    )
    # A string sort would put "9.75" first and "1000.0" before "101".
    assert book.bids() == [["100.5", "2"], ["100.00", "0.10"], ["99.5", "1"], ["9.75", "3"]]
    assert book.asks() == [["100.75", "0.5"], ["101", "1.0"], ["200", "7"], ["1000.0", "5"]]
    assert book.best_bid() == ["100.5", "2"]
    assert book.best_ask() == ["100.75", "0.5"]
    assert book.update_id == 10
    assert len(book) == 8
    assert not book.crossed()


def test_a_delta_sets_updates_inserts_and_deletes() -> None:
    book = book_of(
        snapshot([["10", "1"], ["9", "2"], ["8", "3"]], [["11", "1"], ["12", "2"]]),
        delta(
            [["9", "5"], ["8", "0"], ["9.5", "4"], ["7", "1"]],
            [["11", "0"], ["13", "9"]],
            u=11,
        ),
    )
    assert book.bids() == [["10", "1"], ["9.5", "4"], ["9", "5"], ["7", "1"]]
    assert book.asks() == [["12", "2"], ["13", "9"]]
    assert book.update_id == 11


def test_deleting_a_level_not_in_the_book_is_ignored() -> None:
    book = book_of(
        snapshot([["10", "1"]], [["11", "1"]]),
        delta([["9", "0"], ["10", "0"], ["10", "0"]], [["12.5", "0"]], u=11),
    )
    assert book.bids() == []
    assert book.asks() == [["11", "1"]]
    assert book.best_bid() is None


def test_every_zero_spelling_deletes_and_a_zero_level_of_a_snapshot_is_left_out() -> None:
    book = book_of(
        snapshot([["10", "1"], ["9", "0.000"], ["8", "2"]], [["11", "0"], ["12", "1"]]),
        delta([["10", "0.0"], ["8", "00"]], [], u=11),
    )
    assert book.bids() == []
    assert book.asks() == [["12", "1"]]
    book.apply(delta([["7", "0.5"], ["6", "10"], ["5", "0.05"]], [], u=12))
    assert book.bids() == [["7", "0.5"], ["6", "10"], ["5", "0.05"]]  # not zeros


def test_one_price_written_two_ways_is_one_level_with_the_latest_strings() -> None:
    book = book_of(
        snapshot([["1.50", "1"]], [["2.0", "1"]]),
        delta([["1.5", "3"]], [["2", "0"]], u=11),
    )
    assert book.bids() == [["1.5", "3"]]
    assert book.asks() == []


def test_a_snapshot_or_a_checkpoint_replaces_the_book() -> None:
    book = book_of(snapshot([["10", "1"], ["9", "1"]], [["11", "1"]]))
    book.apply(snapshot([["5", "1"]], [["6", "1"]], u=1))
    assert (book.bids(), book.asks(), book.update_id) == ([["5", "1"]], [["6", "1"]], 1)
    book.apply(update(BookKind.CHECKPOINT, [], [["7", "2"]], u=3))
    assert (book.bids(), book.asks(), book.update_id) == ([], [["7", "2"]], 3)


@pytest.mark.parametrize(
    ("bids", "asks", "crossed"),
    [
        ([["10", "1"]], [["10.5", "1"]], False),
        ([["10", "1"]], [["10.0", "1"]], True),  # locked: no engine leaves it so
        ([["10.01", "1"]], [["10", "1"]], True),
        ([], [["10", "1"]], False),
        ([["10", "1"]], [], False),
        ([], [], False),
    ],
)
def test_crossed(bids: list[list[str]], asks: list[list[str]], crossed: bool) -> None:
    assert book_of(snapshot(bids, asks)).crossed() is crossed


def test_a_delta_can_cross_the_book() -> None:
    book = book_of(snapshot([["10", "1"]], [["11", "1"], ["12", "1"]]))
    book.apply(delta([["11.5", "1"]], [], u=11))
    assert book.crossed()
    book.apply(delta([["11.5", "0"]], [], u=12))
    assert not book.crossed()


def test_same_levels_compares_values_not_spellings() -> None:
    book = book_of(snapshot([["28552.00", "0.047"]], [["28552.10", "25.433"]]))
    assert book.same_levels(snapshot([["28552.0", "0.0470"]], [["28552.1", "25.433"]]))
    assert not book.same_levels(snapshot([["28552.00", "0.048"]], [["28552.10", "25.433"]]))
    assert not book.same_levels(snapshot([["28552.00", "0.047"]], []))


def test_a_checkpoint_is_the_whole_book_at_an_update() -> None:
    first = snapshot([["9", "2"], ["10", "1"]], [["12", "2"], ["11", "1"]], ts=1000)
    last = delta([["9.5", "4"]], [["11", "0"]], u=11, ts=2000)
    book = book_of(first, last)
    point = book.checkpoint(last)
    assert point.kind is BookKind.CHECKPOINT
    assert (point.category, point.symbol, point.depth) == (Category.LINEAR, "BTCUSDT", 50)
    assert (point.update_id, point.seq, point.match_ts_ms) == (11, 77, 1999)
    assert (point.exchange_ts_ms, point.received_ts_ms) == (2000, 2005)
    assert point.bids == (("10", "1"), ("9.5", "4"), ("9", "2"))
    assert point.asks == (("12", "2"),)
    # The checkpoint alone rebuilds the same book.
    again = book_of(point)
    assert (again.bids(), again.asks()) == (book.bids(), book.asks())
    # Changing the book later does not change it.
    book.apply(delta([["10", "0"]], [], u=12))
    assert point.bids[0] == ("10", "1")


def test_a_book_takes_the_updates_of_one_stream_only() -> None:
    book = book_of(snapshot([["10", "1"]], []))
    for other in (
        snapshot([], [], symbol="ETHUSDT"),
        snapshot([], [], depth=1),
        snapshot([], [], category=Category.SPOT),
    ):
        with pytest.raises(ValueError, match="applied to the book"):
            book.apply(other)
        with pytest.raises(ValueError, match="checkpoint"):
            book.checkpoint(other)


def test_levels_returned_are_copies() -> None:
    book = book_of(snapshot([["10", "1"]], [["11", "1"]]))
    book.bids()[0][1] = "999"
    best = book.best_ask()
    assert best is not None
    best[1] = "999"
    assert (book.bids(), book.asks()) == ([["10", "1"]], [["11", "1"]])


@pytest.mark.parametrize("key_cache", [None, 16], ids=["key-cache", "key-cache-cleared-often"])
def test_a_deep_book_under_many_deltas_matches_a_plain_model(
    key_cache: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200-level book after 2,000 random deltas equals a dict replayed the slow way,
    also when the side's cache of price keys is cleared again and again."""
    import random
    from decimal import Decimal

    if key_cache is not None:
        monkeypatch.setattr("bybit_records.book._KEY_CACHE_SIZE", key_cache)
    rng = random.Random(7)
    bids = [[f"{50_000 - i * 0.5:.1f}", "1"] for i in range(200)]
    asks = [[f"{50_000.5 + i * 0.5:.1f}", "1"] for i in range(200)]
    book = book_of(snapshot(bids, asks))
    model = {"b": {p: s for p, s in bids}, "a": {p: s for p, s in asks}}
    for u in range(11, 2011):
        changes: dict[str, list[list[str]]] = {"b": [], "a": []}
        for _ in range(5):
            side = rng.choice("ba")
            base = 50_000 if side == "b" else 50_000.5
            step = -0.5 if side == "b" else 0.5
            price = f"{base + step * rng.randrange(250):.1f}"
            size = rng.choice(["0", f"{rng.randint(1, 999) / 100}"])
            changes[side].append([price, size])
            if size == "0":
                model[side].pop(price, None)
            else:
                model[side][price] = size
        book.apply(delta(changes["b"], changes["a"], u=u))
    assert book.bids() == [
        [p, model["b"][p]] for p in sorted(model["b"], key=Decimal, reverse=True)
    ]
    assert book.asks() == [[p, model["a"][p]] for p in sorted(model["a"], key=Decimal)]


# ---- BookUpdate, as a record and as a table -----------------------------------------


def test_the_record_key_and_topic() -> None:
    # The key (pinned with its table in grid_db's test_schema) tells a checkpoint from the
    # delta it follows, whose update id and times it carries, by kind alone.
    follows = delta([["10", "2"]], [], u=11)
    point = book_of(snapshot([["10", "1"]], [["11", "1"]]), follows).checkpoint(follows)
    key = BookUpdate.natural_key or ()
    assert [f for f in key if getattr(point, f) != getattr(follows, f)] == ["kind"]
    assert {"category", "symbol", "depth", "update_id"} < set(key)
    assert snapshot([], [], depth=200, symbol="ETHUSDT").topic == "orderbook.200.ETHUSDT"
    assert list(BookKind) == ["snapshot", "delta", "checkpoint"]


def test_the_record_round_trips_through_json() -> None:
    record = delta([["10.50", "0"]], [["11", "1.000"]], u=11)
    again = msgspec.json.decode(msgspec.json.encode(record), type=BookUpdate)
    assert again == record
