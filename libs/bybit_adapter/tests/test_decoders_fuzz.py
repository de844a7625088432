"""Property-based fuzzing of the decoders and of the streams' frame handling.

Inputs are real frames (tests/fixtures/captured/*.jsonl) and documented private and
REST shapes, mutated: keys dropped, values replaced by JSON of other types, huge or
unicode strings, deep nesting, out-of-range numbers, duplicated and shuffled trades,
mutated topics, ``data`` swapped between list and object.

The properties:

* a decoder returns well-formed records or raises ``FrameRejected`` with a non-empty
  one-line reason, never another exception;
* a stream's frame handler (``PublicStream._frame``, ``PrivateStream._frame``) never
  raises, whatever text or bytes arrive, hands every accepted frame's records to the
  sink, every refused one to ``rejected`` with its reason, and counts both, and a sink
  that fails is counted, not fatal.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bybit_adapter import (
    BookDecoder,
    FrameRejected,
    PrivateDecoder,
    PrivateStream,
    PublicStream,
    TickerDecoder,
    TradeDecoder,
)
from bybit_adapter.book_decoder import BOOK_PREFIX
from bybit_adapter.decoders import TICKER_PREFIX, TRADE_PREFIX
from bybit_adapter.keepalive import ConnectionLost
from bybit_records import (
    BookUpdate,
    Category,
    DataSource,
    Execution,
    FrameType,
    Gap,
    Order,
    OutageCause,
    Position,
    Ticker,
    Topic,
    Trade,
    Wallet,
)

from .conftest import FAST, FAST_PRIVATE, RECEIVED_NS, REST_TRADES, RecordingSink
from .fuzzing import (
    DECIMAL,
    DECIMAL_CANDIDATES,
    FUZZ,
    FUZZ_STREAM,
    JSON_VALUES,
    NEAR_DECIMALS,
    PRIVATE_SEEDS,
    PUBLIC_SEEDS,
    SCALARS,
    TRICKY_NUMBERS,
    TRICKY_STRINGS,
    Draw,
    assert_decimal_slot,
    assert_rejected_properly,
    is_ms,
    is_name,
    is_text,
    mutated,
    optional,
)

#: Trade and ticker frames (the ones the decoders accept) weigh three times as much
#: as order books and liquidations, which are rejected on their topic.
WEIGHTED_PUBLIC_SEEDS = [
    seed
    for seed in PUBLIC_SEEDS
    for _ in range(3 if seed[1]["topic"].startswith(("publicTrade.", "tickers.")) else 1)
]


@st.composite
def public_frame(draw: Draw, max_depth: int = 500) -> tuple[Category, dict[str, Any]]:
    """A mutated public frame; two times in three only its ``data`` is mutated, so that
    most examples get past the envelope checks to the trade and ticker fields."""
    category, seed = draw(st.sampled_from(WEIGHTED_PUBLIC_SEEDS))
    if draw(st.integers(0, 2)) and isinstance(seed.get("data"), (list, dict)):
        frame = copy.deepcopy(seed)
        frame["data"] = draw(mutated([frame["data"]], max_depth))
    else:
        frame = draw(mutated([seed], max_depth))
    category = draw(st.sampled_from([category, category, *Category]))
    return category, frame


# ---- the properties -------------------------------------------------------------------


def check_trade(trade: Trade, category: Category) -> None:
    assert trade.category is category
    assert is_text(trade.symbol)
    assert is_name(trade.trade_id)
    assert trade.side in ("Buy", "Sell")
    for name in ("price", "size"):
        value = getattr(trade, name)
        assert isinstance(value, str), (name, value)
        assert DECIMAL.fullmatch(value), (name, value)
    assert is_ms(trade.trade_time_ms), trade.trade_time_ms
    assert is_ms(trade.exchange_ts_ms), trade.exchange_ts_ms
    assert is_ms(trade.received_ts_ms), trade.received_ts_ms
    assert optional(is_ms, trade.seq)
    assert isinstance(trade.is_block_trade, bool)
    assert optional(lambda v: isinstance(v, bool), trade.is_rpi)
    assert optional(is_text, trade.tick_direction)


def check_public_records(records: Any, category: Category) -> None:
    assert isinstance(records, list)
    for record in records:
        if isinstance(record, Trade):
            check_trade(record, category)
        elif isinstance(record, Ticker):
            assert record.category is category
            assert isinstance(record.data, dict)
            # ``data`` holds the fields without a column; the symbol has one.
            assert not {"symbol", "lastPrice"} & record.data.keys()
            assert record.state()["symbol"] == record.symbol
            assert is_name(record.symbol)
            assert record.frame_type in (FrameType.SNAPSHOT, FrameType.DELTA)
            assert is_ms(record.exchange_ts_ms)
            assert optional(is_ms, record.cross_seq)
            for name in ("last_price", "mark_price", "bid1_price", "funding_rate"):
                assert optional(is_text, getattr(record, name)), name
        elif isinstance(record, BookUpdate):  # checked in depth by test_book_fuzz
            assert record.category is category
            assert is_name(record.symbol)
            assert is_ms(record.exchange_ts_ms)
        elif isinstance(record, Gap):  # a book found broken: recorded at the latest on stop
            assert record.stream is Topic.ORDERBOOK
            assert record.start_ts_ms <= record.end_ts_ms
        else:
            raise AssertionError(f"unexpected record {record!r}")


def check_private_records(records: Any) -> None:
    assert isinstance(records, list)
    for record in records:
        assert optional(is_ms, record.exchange_ts_ms)
        assert isinstance(record.raw, dict)
        assert record.source is DataSource.WS
        if isinstance(record, Execution):
            assert isinstance(record.category, Category)
            assert is_name(record.symbol)
            assert is_name(record.exec_id)
            assert is_ms(record.exec_time_ms)
            assert optional(is_ms, record.seq)
            assert optional(lambda v: isinstance(v, bool), record.is_maker)
            for name in ("order_id", "side", "exec_price", "exec_qty"):
                assert is_name(getattr(record, name)), name
            for name in ("exec_fee", "exec_type", "order_link_id"):
                assert optional(is_text, getattr(record, name)), name
        elif isinstance(record, Order):
            assert is_name(record.order_id)
            assert is_name(record.order_status)
            assert is_ms(record.updated_time_ms)
            assert optional(is_ms, record.created_time_ms)
            assert optional(lambda v: isinstance(v, bool), record.reduce_only)
            for name in ("price", "qty", "avg_price", "leaves_qty", "cum_exec_qty"):
                assert optional(is_text, getattr(record, name)), name
        elif isinstance(record, Position):
            assert isinstance(record.category, Category)
            assert is_name(record.symbol)
            assert optional(is_ms, record.position_idx)
            assert optional(is_ms, record.updated_time_ms)
            for name in ("side", "size", "entry_price", "mark_price", "leverage"):
                assert optional(is_text, getattr(record, name)), name
        elif isinstance(record, Wallet):
            assert isinstance(record.coins, list)
            for name in ("account_type", "total_equity", "total_wallet_balance"):
                assert optional(is_text, getattr(record, name)), name
        else:
            raise AssertionError(f"unexpected record {record!r}")


class PublicDecoders:
    """The decoders of one category, chosen by topic as ``PublicStream`` chooses them."""

    def __init__(self, category: Category) -> None:
        self.category = category
        self.trades = TradeDecoder(category)
        self.tickers = TickerDecoder(category)
        self.books = BookDecoder(category)

    def decode(self, message: dict[str, Any]) -> list[Trade | Ticker | BookUpdate]:
        """The records of a frame; an order-book update is data even when the stream's
        validator stores nothing of it."""
        topic = message["topic"]
        if topic.startswith(TRADE_PREFIX):
            return list(self.trades.frame(message, RECEIVED_NS))
        if topic.startswith(TICKER_PREFIX):
            return [self.tickers.frame(message, RECEIVED_NS)]
        if topic.startswith(BOOK_PREFIX):
            return [self.books.frame(message, RECEIVED_NS)]
        raise FrameRejected(f"unsupported topic {topic!r:.80}")


TICKER_SNAPSHOTS = [
    f for _, f in PUBLIC_SEEDS if f["topic"].startswith("tickers.") and f["type"] == "snapshot"
]


def primed(category: Category) -> PublicDecoders:
    """Decoders that have seen every clean ticker snapshot, so deltas apply (the decoder
    copies what it keeps: the seeds are not changed)."""
    decoders = PublicDecoders(category)
    for frame in TICKER_SNAPSHOTS:
        decoders.tickers.frame(frame, RECEIVED_NS)
    return decoders


def test_every_clean_seed_is_accepted_or_rejected_with_a_reason() -> None:
    """The seeds themselves satisfy the properties (and most of them are accepted)."""
    accepted = 0
    for category, frame in PUBLIC_SEEDS:
        try:
            records = primed(category).decode(copy.deepcopy(frame))
        except FrameRejected as exc:
            assert_rejected_properly(exc)
            continue
        check_public_records(records, category)
        accepted += 1
    assert accepted == 24  # trades, tickers, order books (liquidations are rejected)
    for frame in PRIVATE_SEEDS:
        private = PrivateDecoder().frame(copy.deepcopy(frame), RECEIVED_NS)
        check_private_records(private)
        assert len(private) == 1
    trades = TradeDecoder(Category.SPOT).rest(copy.deepcopy(REST_TRADES), 1, 2)
    assert len(trades) == 2


@FUZZ
@given(st.lists(public_frame(), min_size=1, max_size=3))
def test_public_decoders_return_records_or_reject(frames: list[tuple[Category, Any]]) -> None:
    decoders: dict[Category, PublicDecoders] = {}  # ticker states carry over between frames
    for category, frame in frames:
        if not isinstance(frame.get("topic"), str):
            continue  # not a data frame: the stream reads it as a reply
        if category not in decoders:
            decoders[category] = primed(category)
        try:
            records = decoders[category].decode(frame)
        except FrameRejected as exc:
            assert_rejected_properly(exc)
        else:
            check_public_records(records, category)


TRADE_SEEDS = [seed for seed in PUBLIC_SEEDS if seed[1]["topic"].startswith("publicTrade.")]
TRADE_FIELDS = ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]

TRICKY_VALUES = st.one_of(
    NEAR_DECIMALS,
    st.sampled_from(TRICKY_NUMBERS),
    st.sampled_from(TRICKY_NUMBERS).map(str),
    st.sampled_from(TRICKY_STRINGS),
    SCALARS,
)


@st.composite
def trade_frame_with_tricky_fields(draw: Draw) -> tuple[Category, dict[str, Any]]:
    """A real trade frame whose items get 1..3 fields set to tricky values each."""
    category, seed = draw(st.sampled_from(TRADE_SEEDS))
    frame = copy.deepcopy(seed)
    for item in frame["data"]:
        for name in draw(st.lists(st.sampled_from(TRADE_FIELDS), max_size=3, unique=True)):
            decimal_slot = name in ("p", "v")
            item[name] = draw(
                st.one_of(NEAR_DECIMALS, TRICKY_VALUES) if decimal_slot else TRICKY_VALUES
            )
    return category, frame


@FUZZ
@given(trade_frame_with_tricky_fields())
def test_trade_items_with_tricky_fields(frame: tuple[Category, dict[str, Any]]) -> None:
    category, message = frame
    try:
        records = TradeDecoder(category).frame(message, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
    else:
        check_public_records(records, category)
        assert len(records) == len(message["data"])


@FUZZ
@given(st.sampled_from(TRADE_SEEDS), st.sampled_from(["p", "v"]), DECIMAL_CANDIDATES)
def test_price_and_size_are_accepted_exactly_when_plain_decimals(
    seed: tuple[Category, dict[str, Any]], field: str, value: str
) -> None:
    category, frame = seed
    message = copy.deepcopy(frame)
    message["data"][0][field] = value
    assert_decimal_slot(
        value,
        lambda: TradeDecoder(category).frame(message, RECEIVED_NS)[0],
        lambda trade: trade.price if field == "p" else trade.size,
    )


@FUZZ
@given(st.lists(mutated(PRIVATE_SEEDS), min_size=1, max_size=3))
def test_private_decoder_returns_records_or_rejects(frames: list[Any]) -> None:
    decoder = PrivateDecoder()
    for frame in frames:
        try:
            records = decoder.frame(frame, RECEIVED_NS)
        except FrameRejected as exc:
            assert_rejected_properly(exc)
        else:
            check_private_records(records)


@FUZZ
@given(mutated([REST_TRADES]))
def test_rest_trades_return_records_or_reject(items: Any) -> None:
    if not isinstance(items, list):
        items = [items]
    try:
        trades = TradeDecoder(Category.LINEAR).rest(items, 1_700_000_000_000, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
    else:
        for trade in trades:
            check_trade(trade, Category.LINEAR)
            assert trade.source is DataSource.REST
            assert trade.tick_direction is None  # REST rows do not carry it


# ---- the connection layer ---------------------------------------------------------------

CONTROL_FRAMES: list[dict[str, Any]] = [
    {"op": "pong", "req_id": "ping-1", "success": True, "ret_msg": "pong", "conn_id": "c"},
    {"op": "ping", "ret_msg": "pong", "success": True, "conn_id": "c"},
    {"success": True, "ret_msg": "", "conn_id": "c", "req_id": "sub-1", "op": "subscribe"},
    {
        "success": False,
        "ret_msg": "Invalid symbol :[publicTrade.NOPE]",
        "conn_id": "c",
        "req_id": "sub-1",
        "op": "subscribe",
    },
    {
        "success": True,
        "ret_msg": "",
        "conn_id": "c",
        "type": "COMMAND_RESP",
        "data": {"successTopics": ["publicTrade.BTC"], "failTopics": ["tickers.X"]},
    },
    {"success": True, "ret_msg": "", "op": "auth", "conn_id": "c"},
    {"success": False, "ret_msg": "Invalid apikey", "op": "auth", "conn_id": "c"},
]


def _encode(value: Any, ensure_ascii: bool) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii)


@st.composite
def raw_frame(draw: Draw) -> str | bytes:
    """Text or bytes as a websocket could deliver them (aiohttp TEXT frames are valid
    UTF-8, so text never holds lone surrogates)."""
    kind = draw(st.sampled_from(["text", "bytes", "json", "frame", "control"]))
    if kind == "text":
        text: str = draw(st.text(max_size=200))
        return text
    if kind == "bytes":
        data: bytes = draw(st.binary(max_size=200))
        return data
    if kind == "json":
        value: Any = draw(JSON_VALUES)
    elif kind == "frame":
        value = draw(mutated([f for _, f in PUBLIC_SEEDS] + PRIVATE_SEEDS, max_depth=200))
    else:
        value = draw(mutated(CONTROL_FRAMES, max_depth=200, max_mutations=2))
    encoded = _encode(value, ensure_ascii=draw(st.booleans()))
    if not _utf8(encoded.encode("utf-8", "surrogatepass")):
        encoded = _encode(value, ensure_ascii=True)  # lone surrogates only as \u escapes
    return encoded.encode() if draw(st.booleans()) else encoded


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(raw: str | bytes) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _message(raw: str | bytes) -> Any:
    """The frame as the stream decodes it, or None when it is not JSON at all."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None


def expected_public(frames: list[str | bytes]) -> tuple[int, int]:
    """(data frames, rejected frames) a public stream must count for ``frames``: the
    decoders' verdict on each, in order (ticker states carry over)."""
    decoders = PublicDecoders(Category.LINEAR)
    data = rejected = 0
    for raw in frames:
        message = _message(raw)
        if not isinstance(message, dict):
            rejected += 1  # not JSON, or not an object
            continue
        if not isinstance(message.get("topic"), str):
            continue  # a reply or a pong
        try:
            records = decoders.decode(message)
        except FrameRejected:
            rejected += 1
        else:
            data += bool(records)  # a trade frame without trades is no data frame
    return data, rejected


async def _feed_public(frames: list[str | bytes]) -> tuple[PublicStream, PublicStream]:
    """Feed ``frames`` to a stream with a recording sink and to one whose sink fails."""
    streams = [
        PublicStream(
            "ws://127.0.0.1:9/v5/public/{category}",
            Category.LINEAR,
            ["BTCUSDT"],
            RecordingSink(fail_records=failing),
            settings=FAST,
            topics=["publicTrade.BTCUSDT", "tickers.BTCUSDT"],
        )
        for failing in (False, True)
    ]
    try:
        for stream in streams:
            await stream.start()  # its connection task never gets to run before stop()
            for n, raw in enumerate(frames):
                stream._frame(raw, RECEIVED_NS + n)
    finally:
        for stream in streams:
            await stream.stop()
    return streams[0], streams[1]


def not_subscriptions(sink: RecordingSink) -> list[str]:
    return [r.reason for r in sink.rejections if not r.reason.startswith("subscription refused")]


def _book_snapshot() -> str:
    return json.dumps(
        next(
            f
            for category, f in PUBLIC_SEEDS
            if category is Category.LINEAR
            and f["topic"].startswith(BOOK_PREFIX)
            and f["type"] == "snapshot"
        )
    )


@FUZZ_STREAM
@given(st.lists(raw_frame(), min_size=1, max_size=6))
@example([_book_snapshot()] * 2)  # the validator stores nothing of the repeat
def test_public_frame_handling_never_raises_and_counts(frames: list[str | bytes]) -> None:
    recording, failing = asyncio.run(_feed_public(frames))
    data, rejected = expected_public(frames)
    for stream in (recording, failing):
        assert stream.stats.frames == len(frames)
        assert stream.stats.data_frames == data
        assert stream.stats.rejected_frames == rejected
    sink = recording._sink
    assert isinstance(sink, RecordingSink)
    reasons = not_subscriptions(sink)
    assert len(reasons) == rejected
    assert all(reason.strip() for reason in reasons)
    check_public_records(sink.received, Category.LINEAR)
    # The recording sink never fails; the failing one fails for every hand-over: each data
    # frame but a book update the validator stores nothing of (a repeated snapshot), plus
    # each book gap a snapshot heals.
    handed_over = sum(1 for kind, _ in sink.log if kind == "records")
    assert recording.stats.handler_errors == 0
    assert failing.stats.handler_errors == handed_over
    books = sum(1 for f in frames if BOOK_PREFIX in _text(f))
    assert data - books <= handed_over <= data + books


def test_public_frame_handling_counts_the_obvious_cases() -> None:
    trade = next(f for _, f in PUBLIC_SEEDS if f["topic"] == "publicTrade.LTCUSDT")
    frames: list[str | bytes] = [
        json.dumps(trade),
        json.dumps(trade).encode(),
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        json.dumps({"op": "pong"}),
        json.dumps({"topic": "publicTrade.X", "ts": 1, "data": [{"p": 1}]}),
    ]
    recording, failing = asyncio.run(_feed_public(frames))
    assert recording.stats.rejected_frames == 4
    assert recording.stats.data_frames == 2
    assert recording.stats.handler_errors == 0
    sink = recording._sink
    assert isinstance(sink, RecordingSink)
    assert len(sink.trades()) == 2 * len(trade["data"])
    assert len(sink.rejections) == 4
    assert failing.stats.handler_errors == 2


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,
        b'{"topic": "publicTrade.BTCUSDT", "data": "\xff"}',
    ],
    ids=["deep-nesting", "invalid-utf8-in-binary-string"],
)
def test_frame_handling_survives_known_crashers(raw: str | bytes) -> None:
    """Frames that once escaped the frame handler and killed the read loop.

    msgspec raises ``RecursionError`` for nesting deeper than the recursion limit and
    ``UnicodeDecodeError`` for invalid UTF-8 inside a JSON string of a *binary* frame;
    both must be counted as rejected frames, not end the connection.
    """
    recording, _ = asyncio.run(_feed_public([raw]))
    assert recording.stats.rejected_frames == 1


async def _feed_private(frames: list[str | bytes]) -> tuple[PrivateStream, list[ConnectionLost]]:
    stream = PrivateStream(
        "ws://127.0.0.1:9/v5/private", "key", "secret", RecordingSink(), settings=FAST_PRIVATE
    )
    ended: list[ConnectionLost] = []
    await stream.start()
    try:
        for n, raw in enumerate(frames):
            try:
                stream._frame(raw, RECEIVED_NS + n)
            except ConnectionLost as lost:  # a refused auth ends the connection, by design
                ended.append(lost)
    finally:
        await stream.stop()
    return stream, ended


@FUZZ_STREAM
@given(st.lists(raw_frame(), min_size=1, max_size=6))
def test_private_frame_handling_never_raises_and_counts(frames: list[str | bytes]) -> None:
    stream, ended = asyncio.run(_feed_private(frames))
    assert all(lost.cause is OutageCause.AUTH for lost in ended)
    assert len(ended) == stream.auth_failures
    assert stream.stats.frames == len(frames)
    sink = stream._sink
    assert isinstance(sink, RecordingSink)
    assert len(sink.rejections) == stream.stats.rejected_frames
    assert all(r.reason.strip() for r in sink.rejections)
    check_private_records(sink.received)
    assert stream.stats.handler_errors == 0
