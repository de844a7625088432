"""Property-based tests of the order book decoder and validator.

The decoder, fuzzed the house way (``fuzzing``'s mutations of the captured frames): it
returns a well-formed ``BookUpdate`` or raises ``FrameRejected`` with a one-line reason,
never anything else; its text and dict entry points agree; a price or size is accepted
exactly when it is a plain decimal.

The validator, against a model: a true book evolves by random deltas, and the stream
that carries it loses, repeats, swaps and corrupts frames, re-sends snapshots and
restarts. Whatever arrives, the validator never stores a state that differs from the
true one, and what it stores rebuilds its book.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import event, given
from hypothesis import strategies as st

from bybit_adapter import BookAction, BookDecoder, BookValidator, FrameRejected
from bybit_records import Book, BookKind, BookUpdate, Category, OutageCause
from testkit import make_book_update

from .conftest import RECEIVED_NS, all_captured
from .fuzzing import (
    DECIMAL,
    DECIMAL_CANDIDATES,
    FUZZ,
    Draw,
    assert_decimal_slot,
    assert_rejected_properly,
    is_ms,
    mutated,
)

BOOK_SEEDS = [(c, f) for c, f in all_captured() if f["topic"].startswith("orderbook.")]


def check_update(record: BookUpdate, category: Category, message: dict[str, Any]) -> None:
    assert record.category is category
    assert f"orderbook.{record.depth}.{record.symbol}" == message["topic"]
    assert record.depth >= 1
    assert record.kind in (BookKind.SNAPSHOT, BookKind.DELTA)
    assert is_ms(record.update_id)
    assert record.update_id >= 0
    assert record.seq is None or is_ms(record.seq)
    assert record.match_ts_ms is None or is_ms(record.match_ts_ms)
    assert is_ms(record.exchange_ts_ms)
    for levels in (record.bids, record.asks):
        assert isinstance(levels, tuple)
        for level in levels:
            assert isinstance(level, tuple)
            assert len(level) == 2
            assert all(isinstance(v, str) and DECIMAL.fullmatch(v) for v in level), level
    # A stored record survives the JSON the table keeps its levels in.
    assert msgspec.json.decode(msgspec.json.encode(record), type=BookUpdate) == record


def _text(message: Any) -> str | None:
    """The frame as strict JSON text, or None (NaN, lone surrogates: no such frame
    arrives as text that the dict path would see the same way)."""
    try:
        text = json.dumps(message, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return None
    return text


@st.composite
def book_frame(draw: Draw) -> tuple[Category, Any]:
    """A mutated captured book frame; two times in three only its ``data`` is mutated."""
    category, seed = draw(st.sampled_from(BOOK_SEEDS))
    if draw(st.integers(0, 2)):
        frame = copy.deepcopy(seed)
        frame["data"] = draw(mutated([frame["data"]]))
    else:
        frame = draw(mutated([seed]))
    return category, frame


@FUZZ
@given(book_frame())
def test_the_book_decoder_returns_a_record_or_rejects(frame: tuple[Category, Any]) -> None:
    category, message = frame
    decoder = BookDecoder(category)
    if not isinstance(message, dict):
        return  # the stream reads a non-object as a rejected frame before any decoder
    try:
        record = decoder.frame(message, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
        record = None
    else:
        check_update(record, category, message)
    text = _text(message)
    if text is None:
        return
    try:
        again = decoder.decode(text, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
        assert record is None, f"the text was refused ({exc.reason}), the dict accepted"
    else:
        assert again == record


@FUZZ
@given(
    st.sampled_from([s for s in BOOK_SEEDS if s[1]["data"]["b"] or s[1]["data"]["a"]]),
    st.integers(0, 1),
    DECIMAL_CANDIDATES,
)
def test_price_and_size_are_accepted_exactly_when_plain_decimals(
    seed: tuple[Category, dict[str, Any]], slot: int, value: str
) -> None:
    category, frame = seed
    message = copy.deepcopy(frame)
    side = "b" if message["data"]["b"] else "a"
    message["data"][side][0][slot] = value
    assert_decimal_slot(
        value,
        lambda: BookDecoder(category).frame(message, RECEIVED_NS),
        lambda record: (record.bids if side == "b" else record.asks)[0][slot],
    )


# ---- the validator against a model ----------------------------------------------------

BID_PRICES = [f"{90 + i * 0.5:.1f}" for i in range(20)]  # 90.0 .. 99.5
ASK_PRICES = [f"{100 + i * 0.5:.1f}" for i in range(20)]  # 100.0 .. 109.5
SIZES = ["0", "0", "0.5", "1", "2.25", "10"]


@dataclass
class Sent:
    """One frame the stream delivers, and the true book it leaves (None: a corrupt frame,
    which must never be stored)."""

    update: BookUpdate
    truth: tuple[list[list[str]], list[list[str]]] | None


def _levels(side: dict[str, str], reverse: bool) -> list[list[str]]:
    return [[p, side[p]] for p in sorted(side, key=Decimal, reverse=reverse)]


@st.composite
def stream(draw: Draw) -> list[Sent]:
    """A true book's life, as a faulty stream delivers it."""
    bids = {p: "1" for p in draw(st.lists(st.sampled_from(BID_PRICES), max_size=6, unique=True))}
    asks = {p: "1" for p in draw(st.lists(st.sampled_from(ASK_PRICES), max_size=6, unique=True))}
    u = draw(st.integers(1, 10**6))
    ts = 1_700_000_000_000

    def truth() -> tuple[list[list[str]], list[list[str]]]:
        return _levels(bids, reverse=True), _levels(asks, reverse=False)

    def full(kind_u: int) -> BookUpdate:
        b, a = truth()
        return make_book_update(BookKind.SNAPSHOT, kind_u, ts, b, a)

    # One time in five the subscription's snapshot is lost.
    sent = [Sent(full(u), truth())] if draw(st.integers(0, 4)) else []
    pending: Sent | None = None  # a delta held back to be delivered after the next frame
    for op in draw(
        st.lists(
            st.sampled_from(
                ["delta"] * 6 + ["lose", "repeat", "swap", "resend", "restart", "cross"]
            ),
            max_size=40,
        )
    ):
        ts += draw(st.integers(1, 500))
        if op == "resend":
            out = [Sent(full(u), truth())]
        elif op == "restart":
            # A delta held back arrives before the restart: after it, its id could pass
            # for one of the new numbering (a lost one), which no check can tell apart.
            if pending is not None:
                sent.append(pending)
                pending = None
            u = 1
            out = [Sent(full(u), truth())]
        elif op == "cross":
            # A delta with the right id that puts a bid at or above the best ask.
            if not asks:
                continue
            best_ask = min(asks, key=Decimal)
            bad = make_book_update(BookKind.DELTA, u + 1, ts, [[best_ask, "1"]], [])
            out = [Sent(bad, None)]
        else:
            u += 1
            changes: dict[str, list[list[str]]] = {"b": [], "a": []}
            for _ in range(draw(st.integers(1, 4))):
                side = draw(st.sampled_from("ba"))
                price = draw(st.sampled_from(BID_PRICES if side == "b" else ASK_PRICES))
                size = draw(st.sampled_from(SIZES))
                changes[side].append([price, size])
                book = bids if side == "b" else asks
                if size == "0":
                    book.pop(price, None)
                else:
                    book[price] = size
            one = Sent(make_book_update(BookKind.DELTA, u, ts, changes["b"], changes["a"]), truth())
            out = {"delta": [one], "lose": [], "repeat": [one, one], "swap": []}[op]
            if op == "swap":
                pending = one
        sent += out
        if pending is not None and op != "swap":
            sent.append(pending)
            pending = None
    return sent


@FUZZ
@given(stream(), st.sampled_from([None, 1, 3]))
def test_the_validator_never_stores_a_wrong_book(sent: list[Sent], every: int | None) -> None:
    validator = BookValidator(checkpoint_every_updates=every, checkpoint_every_ms=None)
    replay = Book()
    broken = False
    cause: OutageCause | None = None
    for item in sent:
        verdict = validator.check(item.update)
        assert verdict.update is item.update
        event(f"{verdict.action} {verdict.cause}")
        if verdict.action is BookAction.STORE:
            assert item.truth is not None, "a corrupt frame was stored"
            book = validator.book("BTCUSDT", 50)
            assert book is not None
            assert (book.bids(), book.asks()) == item.truth
            for record in verdict.records:
                replay.apply(record)
            assert (replay.bids(), replay.asks()) == item.truth
            assert not replay.crossed()
            if broken:  # the first snapshot after a break heals it
                assert item.update.kind is BookKind.SNAPSHOT
                assert verdict.healed is not None
                assert verdict.cause is cause
            elif verdict.healed is not None:  # else only a restart closes a gap
                assert verdict.cause is OutageCause.BOOK_RESTART
                assert item.update.update_id == 1
            broken = False
        elif verdict.action is BookAction.BREAK:
            assert not broken
            assert verdict.broken is not None
            broken, cause = True, verdict.cause
        elif verdict.action is BookAction.DROP:
            assert broken
            assert item.update.kind is BookKind.DELTA
        else:
            assert verdict.action is BookAction.SKIP
            assert item.update.kind is BookKind.SNAPSHOT
            assert item.truth is not None
            book = validator.book("BTCUSDT", 50)
            assert book is not None
            assert (book.bids(), book.asks()) == item.truth
    assert [g.topic for g in validator.open_gaps()] == (["orderbook.50.BTCUSDT"] if broken else [])


@FUZZ
@given(stream())
def test_a_clean_stream_is_stored_whole(sent: list[Sent]) -> None:
    """Without faults (no lost, repeated, swapped or corrupt delta) nothing breaks."""
    clean = []
    last_u = None
    for item in sent:
        u = item.update
        if item.truth is None:
            continue
        if u.kind is BookKind.DELTA and (last_u is None or u.update_id != last_u + 1):
            continue
        if clean and u.kind is BookKind.DELTA and u is clean[-1].update:
            continue
        clean.append(item)
        last_u = u.update_id
    validator = BookValidator(checkpoint_every_updates=None, checkpoint_every_ms=None)
    actions = [validator.check(item.update).action for item in clean]
    assert BookAction.BREAK not in actions
    assert BookAction.DROP not in actions
