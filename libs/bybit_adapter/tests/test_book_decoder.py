"""``BookDecoder`` against the captured order book frames (tests/fixtures/captured), and
corrupt variants of them: every one refused with a one-line reason."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bybit_adapter import BookDecoder, BookValidator, FrameRejected, PublicStream, book_topic
from bybit_records import BookKind, BookUpdate, Category
from testkit import levels

from .conftest import FAST, RECEIVED_MS, RECEIVED_NS, RecordingSink, all_captured

BOOK_FRAMES = [(c, f) for c, f in all_captured() if f["topic"].startswith("orderbook.")]


def decode_both(category: Category, frame: dict[str, Any]) -> BookUpdate:
    """The frame through ``frame()`` (a dict) and ``decode()`` (its text): the same."""
    decoder = BookDecoder(category)
    record = decoder.frame(copy.deepcopy(frame), RECEIVED_NS)
    assert decoder.decode(json.dumps(frame), RECEIVED_NS) == record
    assert decoder.decode(json.dumps(frame).encode(), RECEIVED_NS) == record
    return record


def test_the_captures_hold_every_book_kind() -> None:
    topics = {(c, f["topic"].split(".")[1], f["type"]) for c, f in BOOK_FRAMES}
    assert topics == {
        (Category.LINEAR, "1", "snapshot"),
        (Category.LINEAR, "1", "delta"),
        (Category.LINEAR, "50", "snapshot"),
        (Category.LINEAR, "50", "delta"),
        (Category.SPOT, "1", "snapshot"),
        (Category.SPOT, "1", "delta"),
        (Category.SPOT, "50", "snapshot"),
        (Category.SPOT, "50", "delta"),
        (Category.OPTION, "25", "snapshot"),
        (Category.OPTION, "25", "delta"),
    }


@pytest.mark.parametrize(
    ("category", "frame"),
    BOOK_FRAMES,
    ids=[f"{c}-{f['topic']}-{f['type']}" for c, f in BOOK_FRAMES],
)
def test_every_captured_book_frame_decodes_to_what_bybit_sent(
    category: Category, frame: dict[str, Any]
) -> None:
    record = decode_both(category, frame)
    data = frame["data"]
    depth, symbol = frame["topic"].split(".")[1:]
    assert record.category is category
    assert (record.symbol, record.depth) == (symbol, int(depth))
    assert record.kind is BookKind(frame["type"])
    assert record.update_id == data["u"]
    assert record.seq == data.get("seq")
    assert record.match_ts_ms is None  # 2023 frames: ``cts`` came in 2023-12
    assert record.exchange_ts_ms == frame["ts"]
    assert record.received_ts_ms == RECEIVED_MS
    assert record.bids == levels(data["b"])
    assert record.asks == levels(data["a"])


def test_a_spot_delta_exactly() -> None:
    frame = next(
        f
        for c, f in BOOK_FRAMES
        if c is Category.SPOT and f["topic"] == "orderbook.50.BTCUSDT" and f["type"] == "delta"
    )
    assert decode_both(Category.SPOT, frame) == BookUpdate(
        category=Category.SPOT,
        symbol="BTCUSDT",
        depth=50,
        kind=BookKind.DELTA,
        update_id=59438061,
        seq=4281282232,
        match_ts_ms=None,
        exchange_ts_ms=1680652808085,
        received_ts_ms=RECEIVED_MS,
        bids=(("28161.04", "0.177474"), ("28145.71", "0")),
        asks=(("28184.33", "0"),),
    )


def test_the_empty_option_snapshot_with_u_0() -> None:
    frame = next(f for _, f in BOOK_FRAMES if f["data"]["u"] == 0)
    record = decode_both(Category.OPTION, frame)
    assert (record.symbol, record.depth, record.kind) == (
        "BTC-30JUN23-45000-P",
        25,
        BookKind.SNAPSHOT,
    )
    assert (record.update_id, record.seq, record.bids, record.asks) == (0, None, (), ())


def test_cts_is_the_match_time_and_unknown_keys_are_ignored() -> None:
    frame = copy.deepcopy(BOOK_FRAMES[0][1])
    frame["cts"] = frame["ts"] - 3
    frame["id"] = "orderbook.1.BTCUSDT-1-2"
    frame["data"]["newField"] = {"x": [1, 2]}
    frame["later"] = None
    record = decode_both(Category.LINEAR, frame)
    assert record.match_ts_ms == frame["ts"] - 3
    frame["cts"] = None
    assert decode_both(Category.LINEAR, frame).match_ts_ms is None


def test_a_u_1_delta_stays_a_delta() -> None:
    frame = copy.deepcopy(next(f for _, f in BOOK_FRAMES if f["type"] == "delta"))
    frame["data"]["u"] = 1
    record = decode_both(Category.LINEAR, frame)
    assert (record.kind, record.update_id) == (BookKind.DELTA, 1)


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("orderbook.1.BTCUSDT", (1, "BTCUSDT")),
        ("orderbook.1000.1000PEPEUSDT", (1000, "1000PEPEUSDT")),
        ("orderbook.25.BTC-30JUN23-45000-P", (25, "BTC-30JUN23-45000-P")),
        ("orderbook.rpi.BTCUSDT", None),
        ("orderbook.full.BTCUSDT", None),
        ("orderbook.0.BTCUSDT", None),
        ("orderbook.050.BTCUSDT", None),
        ("orderbook.50.", None),
        ("orderbook.50", None),
        ("orderbook.50.BTC USDT", None),
        ("orderbook.50.BTCUSDT\n", None),
        ("orderbook.\uff15\uff10.BTCUSDT", None),  # full-width digits
        ("orderbook.\u0665.BTCUSDT", None),  # Arabic-Indic five
        ("Orderbook.50.BTCUSDT", None),
        ("publicTrade.BTCUSDT", None),
    ],
)
def test_book_topic(topic: str, parsed: tuple[int, str] | None) -> None:
    assert book_topic(topic) == parsed


BASE = next(
    f
    for c, f in BOOK_FRAMES
    if c is Category.SPOT and f["topic"] == "orderbook.50.BTCUSDT" and f["type"] == "delta"
)


def _set(path: str, value: Any) -> Any:
    """A mutation setting ``path`` (``data.b.0.1``) of BASE to ``value``."""

    def mutate(frame: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = frame
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _drop(path: str) -> Any:
    def mutate(frame: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = frame
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


MALFORMED = [
    ("topic missing", _drop("topic"), "not an orderbook"),
    ("topic not a string", _set("topic", 50), "not an orderbook"),
    ("another topic", _set("topic", "publicTrade.BTCUSDT"), "not an orderbook"),
    ("rpi book", _set("topic", "orderbook.rpi.BTCUSDT"), "not an orderbook"),
    ("no depth", _set("topic", "orderbook.BTCUSDT"), "not an orderbook"),
    ("type missing", _drop("type"), "`type`"),
    ("type unknown", _set("type", "partial"), "$.type"),
    ("type checkpoint", _set("type", "checkpoint"), "$.type"),
    ("ts missing", _drop("ts"), "`ts`"),
    ("ts a string", _set("ts", "1680652808085"), "$.ts"),
    ("ts a float", _set("ts", 1680652808085.5), "$.ts"),
    ("ts a bool", _set("ts", True), "$.ts"),
    ("ts past 64 bits", _set("ts", 2**63), "$.ts"),
    ("cts a string", _set("cts", "1"), "$.cts"),
    ("data missing", _drop("data"), "`data`"),
    ("data a list", _set("data", [BASE["data"]]), "$.data"),
    ("symbol missing", _drop("data.s"), "`s`"),
    ("symbol empty", _set("data.s", ""), "$.data.s"),
    ("symbol of another book", _set("data.s", "ETHUSDT"), "not the topic's symbol"),
    ("u missing", _drop("data.u"), "`u`"),
    ("u a string", _set("data.u", "59438061"), "$.data.u"),
    ("u a float", _set("data.u", 1.0), "$.data.u"),
    ("u null", _set("data.u", None), "$.data.u"),
    ("u negative", _set("data.u", -1), "negative update id"),
    ("u past 64 bits", _set("data.u", 2**64), "$.data.u"),
    ("seq a string", _set("data.seq", "4281282232"), "$.data.seq"),
    ("bids missing", _drop("data.b"), "`b`"),
    ("asks missing", _drop("data.a"), "`a`"),
    ("bids null", _set("data.b", None), "$.data.b"),
    ("bids an object", _set("data.b", {"28161.04": "1"}), "$.data.b"),
    ("a level of one", _set("data.b.0", ["28161.04"]), "$.data.b[0]"),
    ("a level of three", _set("data.b.0", ["28161.04", "1", "x"]), "$.data.b[0]"),
    ("a level an object", _set("data.a.0", {"p": "1", "s": "2"}), "$.data.a[0]"),
    ("a price as a number", _set("data.b.0.0", 28161.04), "$.data.b[0][0]"),
    ("a size as a number", _set("data.a.0.1", 0), "$.data.a[0][1]"),
    ("a size null", _set("data.a.0.1", None), "$.data.a[0][1]"),
    ("price exponent", _set("data.b.1.0", "2.8e4"), "b[1] price is not a decimal"),
    ("price empty", _set("data.b.0.0", ""), "b[0] price is not a decimal"),
    ("price with a space", _set("data.b.0.0", " 28161.04"), "b[0] price"),
    ("price with a newline", _set("data.b.0.0", "28161.04\n"), "b[0] price"),
    ("price NaN", _set("data.a.0.0", "NaN"), "a[0] price"),
    ("price Arabic digits", _set("data.a.0.0", "\u0661\u0662"), "a[0] price"),
    ("price with a NUL", _set("data.b.0.0", "1\x002"), "b[0] price"),
    ("size plus", _set("data.b.1.1", "+1"), "b[1] size is not a decimal"),
    ("size dot", _set("data.a.0.1", "1."), "a[0] size"),
    ("size leading dot", _set("data.a.0.1", ".5"), "a[0] size"),
    ("size minus alone", _set("data.a.0.1", "-"), "a[0] size"),
    ("size lone surrogate", _set("data.a.0.1", "\ud800"), "a[0] size"),
]


@pytest.mark.parametrize(
    ("mutate", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_frames_are_refused_with_a_one_line_reason(mutate: Any, reason: str) -> None:
    frame = copy.deepcopy(BASE)
    mutate(frame)
    decoder = BookDecoder(Category.SPOT)
    with pytest.raises(FrameRejected) as refused:
        decoder.frame(frame, RECEIVED_NS)
    assert reason in refused.value.reason
    assert "\n" not in refused.value.reason
    assert refused.value.reason.strip()
    try:
        text = json.dumps(frame)
    except ValueError:
        return
    with pytest.raises(FrameRejected) as also:
        decoder.decode(text, RECEIVED_NS)
    assert "\n" not in also.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        '{"topic": ' + "[" * 100_000,
        '{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"X","u":1,"b":[],"a":[]}',
        b'{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"\xff","u":1,"b":[],"a":[]}}',
    ],
    ids=["empty", "text", "bad-utf8", "array", "deep", "truncated", "bad-utf8-in-string"],
)
def test_undecodable_text_is_refused(raw: str | bytes) -> None:
    with pytest.raises(FrameRejected) as refused:
        BookDecoder(Category.LINEAR).decode(raw, RECEIVED_NS)
    assert refused.value.reason.startswith("orderbook: ")
    assert "\n" not in refused.value.reason


def test_a_negative_price_is_a_decimal() -> None:
    """The project's DECIMAL pattern allows a minus (spreads, some instruments); the book
    keeps what Bybit sent."""
    frame = copy.deepcopy(BASE)
    frame["data"]["b"][0][0] = "-1.5"
    assert BookDecoder(Category.SPOT).frame(frame, RECEIVED_NS).bids[0] == ("-1.5", "0.177474")


def test_the_captured_frames_apply_in_order_as_the_stream_applies_them() -> None:
    """Through the decoder and one validator per category, in capture order: each
    snapshot and the delta after it (``u`` + 1) are stored and make the book; the lone
    linear delta without its snapshot breaks its book instead of being applied."""
    verdicts: dict[str, list[str]] = {}
    validators = {c: BookValidator() for c in Category}
    for category, frame in BOOK_FRAMES:
        update = BookDecoder(category).frame(copy.deepcopy(frame), RECEIVED_NS)
        verdict = validators[category].check(update)
        verdicts.setdefault(f"{category.value} {update.topic}", []).append(verdict.action.value)
    assert verdicts == {
        "linear orderbook.1.BTCUSDT": ["store", "store", "break"],
        "linear orderbook.50.BTCPERP": ["store", "store"],
        "option orderbook.25.BTC-30JUN23-45000-P": ["store"],
        "option orderbook.25.SOL-28APR23-30-C": ["store", "store"],
        "spot orderbook.1.BTCUSDT": ["store", "store"],
        "spot orderbook.50.BTCUSDT": ["store", "store"],
    }
    perp = validators[Category.LINEAR].book("BTCPERP", 50)
    assert perp is not None
    assert (perp.bids(), perp.asks()) == ([["28555.20", "0.677"]], [["28555.30", "0.029"]])
    sol = validators[Category.OPTION].book("SOL-28APR23-30-C", 25)
    assert sol is not None
    assert (sol.bids(), sol.asks()) == ([["0.01", "50"]], [["1.75", "46"]])  # 1.74 deleted
    spot = validators[Category.SPOT].book("BTCUSDT", 50)
    assert spot is not None
    assert spot.best_bid() == ["28162.57", "0.07562"]
    assert ["28161.04", "0.177474"] in spot.bids()
    assert validators[Category.LINEAR].book("BTCUSDT", 1) is None  # broken: no book


async def _through_stream(frames: list[str | bytes]) -> RecordingSink:
    sink = RecordingSink()
    stream = PublicStream(
        "ws://127.0.0.1:9/v5/public/{category}",
        Category.LINEAR,
        ["BTCPERP"],
        sink,
        settings=FAST,
        topics=["orderbook.50.BTCPERP"],
        books=BookValidator(),
    )
    await stream.start()  # its connection task never gets to run before stop()
    try:
        for n, raw in enumerate(frames):
            stream._frame(raw, RECEIVED_NS + n)
    finally:
        await stream.stop()
    return sink


async def test_book_frames_as_bybit_writes_them_and_reordered_make_the_same_records() -> None:
    """A frame whose text begins with its topic (as Bybit writes them) is decoded straight
    into its record; one in another key order goes through a dict: the same records and
    the same refusal, whichever way."""
    perp = [f for c, f in BOOK_FRAMES if c is Category.LINEAR and "BTCPERP" in f["topic"]]
    broken = copy.deepcopy(perp[1])
    broken["data"]["a"][0][1] = "1e5"
    frames = [*perp, broken]
    compact = [json.dumps(f, separators=(",", ":")) for f in frames]  # as Bybit sends them
    assert all(raw.startswith('{"topic":"orderbook.') for raw in compact)
    reordered = [json.dumps(dict(reversed(f.items()))) for f in frames]
    sinks = [await _through_stream(list(raws)) for raws in (compact, reordered)]
    assert [len(s.received) for s in sinks] == [2, 2]
    assert sinks[0].received == sinks[1].received
    reasons = [[r.reason for r in s.rejections] for s in sinks]
    assert reasons[0] == reasons[1]
    (reason,) = reasons[0]
    assert "a[0] size is not a decimal" in reason
