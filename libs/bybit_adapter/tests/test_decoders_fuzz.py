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
import re
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
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
    Record,
    Ticker,
    Topic,
    Trade,
    Wallet,
)

from .conftest import FAST, FAST_PRIVATE, RECEIVED_NS, RecordingSink, all_captured

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: What a price or size must look like, matched against the whole string.
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The streams' frame handling: the decoders behind it are fuzzed at FUZZ above; this
#: checks the routing and the counting around them (and costs two streams an example).
FUZZ_STREAM = settings(FUZZ, max_examples=150)


PUBLIC_SEEDS = all_captured()
#: Trade and ticker frames (the ones the decoders accept) weigh three times as much
#: as order books and liquidations, which are rejected on their topic.
WEIGHTED_PUBLIC_SEEDS = [
    seed
    for seed in PUBLIC_SEEDS
    for _ in range(3 if seed[1]["topic"].startswith(("publicTrade.", "tickers.")) else 1)
]

# Private and REST frames shaped like the examples of Bybit's V5 documentation (there
# is no captured private frame in fixtures/captured).
PRIVATE_SEEDS: list[dict[str, Any]] = [
    {
        "id": "592324803b2785-26fa-4214-9963-bdd4727f07be",
        "topic": "execution",
        "creationTime": 1672364174455,
        "data": [
            {
                "category": "linear",
                "symbol": "XRPUSDT",
                "execFee": "0.005061",
                "execId": "7e2ae69c-4edf-5800-a352-893d52b446aa",
                "execPrice": "0.3374",
                "execQty": "25",
                "execType": "Trade",
                "execValue": "8.435",
                "isMaker": False,
                "feeRate": "0.0006",
                "markPrice": "0.3391",
                "orderId": "f6e324ff-99c2-4e89-9739-3086e47f9381",
                "orderLinkId": "",
                "orderType": "Market",
                "side": "Sell",
                "execTime": "1672364174443",
                "closedSize": "",
                "seq": 4688002127,
            }
        ],
    },
    {
        "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90",
        "topic": "order",
        "creationTime": 1672364262474,
        "data": [
            {
                "category": "option",
                "symbol": "ETH-30DEC22-1400-C",
                "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020",
                "side": "Sell",
                "orderType": "Market",
                "price": "72.5",
                "qty": "1",
                "timeInForce": "IOC",
                "orderStatus": "Filled",
                "orderLinkId": "",
                "reduceOnly": False,
                "leavesQty": "",
                "cumExecQty": "1",
                "cumExecValue": "75",
                "avgPrice": "75",
                "positionIdx": 0,
                "cumExecFee": "0.358635",
                "createdTime": "1672364262444",
                "updatedTime": "1672364262457",
            }
        ],
    },
    {
        "id": "1003076014fb7eedb-c7e6-45d6-a8c1-270f0169171a",
        "topic": "position",
        "creationTime": 1697682317044,
        "data": [
            {
                "category": "linear",
                "symbol": "BTCUSDT",
                "positionIdx": 2,
                "side": "",
                "size": "0",
                "entryPrice": "0",
                "leverage": "10",
                "positionValue": "0",
                "markPrice": "28184.5",
                "unrealisedPnl": "0",
                "cumRealisedPnl": "-25.06579337",
                "createdTime": "1694402496913",
                "updatedTime": "1697682317038",
                "liqPrice": "0",
                "seq": 8327597863,
            }
        ],
    },
    {
        "id": "592324d2bce751-ad38-48eb-8f42-4671d1fb4d4e",
        "topic": "wallet",
        "creationTime": 1700034722104,
        "data": [
            {
                "accountType": "UNIFIED",
                "totalEquity": "10262.91335023",
                "totalWalletBalance": "9684.46297164",
                "totalMarginBalance": "9684.46297164",
                "totalAvailableBalance": "9556.6056555",
                "coin": [
                    {
                        "coin": "BTC",
                        "equity": "0.00102964",
                        "walletBalance": "0.00102964",
                        "collateralSwitch": True,
                    }
                ],
            }
        ],
    },
]

REST_TRADE_SEEDS: list[dict[str, Any]] = [
    {
        "execId": "2100000000007764263",
        "symbol": "BTCUSDT",
        "price": "16618.49",
        "size": "0.00012",
        "side": "Buy",
        "time": "1672052955758",
        "isBlockTrade": False,
        "isRPITrade": False,
        "seq": "47386728960",
    },
    {
        "execId": "bf3a6c2e-9e3a-5a8e-8b0c-2f1bdd0d0e2f",
        "symbol": "BTCUSDT",
        "price": "16618.5",
        "size": "1.5",
        "side": "Sell",
        "time": "1672052955759",
        "isBlockTrade": True,
    },
]


# ---- strategies -----------------------------------------------------------------------


def _keys(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key)
            _keys(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys(item, found)
    return found


KNOWN_KEYS = sorted(_keys([f for _, f in PUBLIC_SEEDS] + PRIVATE_SEEDS + REST_TRADE_SEEDS, set()))

TRICKY_STRINGS = [
    "",
    " ",
    "1.5\n",
    "\n1.5",
    " 1.5",
    "1.5 ",
    "1e5",
    "1E-8",
    "-0",
    "+1",
    ".5",
    "5.",
    "0x1F",
    "NaN",
    "Infinity",
    "١٢٣",  # Arabic-Indic digits
    "\uff11\uff12",  # full-width digits
    "28560.50\x00",
    "9" * 19,
    "9" * 5000,  # beyond int()'s default digit limit
    "-" + "9" * 30,
    "x" * 100_000,
    "Buy",
    "Sell",
    "snapshot",
    "delta",
    "publicTrade.",
    "tickers.",
    "💥\u200b\ufeff",
    "\ud800",  # a lone surrogate
]

TRICKY_NUMBERS: list[Any] = [
    0,
    -1,
    1.5,
    -1.5,
    INT64_MIN - 1,
    INT64_MAX,
    INT64_MAX + 1,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(TRICKY_NUMBERS),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(TRICKY_STRINGS),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)), children, max_size=4
        ),
    ),
    max_leaves=12,
)

Path_ = tuple[Any, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]


def _paths(value: Any, prefix: Path_ = (), depth: int = 6) -> list[Path_]:
    """Every location in ``value`` down to ``depth`` levels (the root is ``()``)."""
    found = [prefix]
    if depth == 0:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key), depth - 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index), depth - 1)
    return found


def _get(root: Any, path: Path_) -> Any:
    for step in path:
        root = root[step]
    return root


def _set(root: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _pick(draw: Draw, frame: Any, where: Callable[[Any], bool] = lambda _: True) -> Path_ | None:
    candidates = [p for p in _paths(frame) if where(_get(frame, p))]
    return draw(st.sampled_from(candidates)) if candidates else None


def _replace(draw: Draw, frame: Any, value: Any) -> Any:
    path = _pick(draw, frame)
    if path is None or path == ():
        return frame  # the frame itself stays an object
    return _set(frame, path, value)


def m_drop_key(draw: Draw, frame: Any, max_depth: int) -> Any:
    path = _pick(draw, frame, lambda v: isinstance(v, dict) and bool(v))
    if path is not None:
        target = _get(frame, path)
        del target[draw(st.sampled_from(sorted(target)))]
    return frame


def m_random_json(draw: Draw, frame: Any, max_depth: int) -> Any:
    return _replace(draw, frame, draw(JSON_VALUES))


def m_huge_string(draw: Draw, frame: Any, max_depth: int) -> Any:
    size = draw(st.sampled_from([1_000, 100_000, 1_000_000]))
    return _replace(draw, frame, draw(st.sampled_from(["9", "x", "é", "\U0001f4a5"])) * size)


def m_deep_nesting(draw: Draw, frame: Any, max_depth: int) -> Any:
    depth = draw(st.integers(1, max_depth))
    value: Any = draw(SCALARS)
    as_list = draw(st.booleans())
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return _replace(draw, frame, value)


def m_unicode(draw: Draw, frame: Any, max_depth: int) -> Any:
    path = _pick(draw, frame, lambda v: isinstance(v, str))
    if path is None:
        return frame
    text = draw(st.text(min_size=1, max_size=30))
    return _set(frame, path, draw(st.sampled_from([text, _get(frame, path) + text])))


def m_number(draw: Draw, frame: Any, max_depth: int) -> Any:
    number = draw(st.one_of(st.sampled_from(TRICKY_NUMBERS), st.integers(), st.floats()))
    return _replace(draw, frame, draw(st.sampled_from([number, str(number)])))


def m_field_value(draw: Draw, frame: Any, max_depth: int) -> Any:
    """One field of an object (often a trade item) set to a tricky value of any type."""
    path = _pick(draw, frame, lambda v: isinstance(v, dict) and bool(v))
    if path is not None:
        target = _get(frame, path)
        value = draw(st.one_of(st.sampled_from(TRICKY_NUMBERS), st.sampled_from(TRICKY_STRINGS)))
        target[draw(st.sampled_from(sorted(target)))] = draw(st.sampled_from([value, str(value)]))
    return frame


def m_duplicate_items(draw: Draw, frame: Any, max_depth: int) -> Any:
    path = _pick(draw, frame, lambda v: isinstance(v, list) and bool(v))
    if path is not None:
        items = _get(frame, path)
        items.extend(items[: draw(st.integers(1, len(items)))])  # the same objects again
    return frame


def m_shuffle(draw: Draw, frame: Any, max_depth: int) -> Any:
    path = _pick(draw, frame, lambda v: isinstance(v, list) and len(v) > 1)
    if path is not None:
        _set(frame, path, draw(st.permutations(_get(frame, path))))
    return frame


def m_topic(draw: Draw, frame: Any, max_depth: int) -> Any:
    if not isinstance(frame, dict):
        return frame
    topic = frame.get("topic")
    text = draw(st.text(max_size=12))
    choices: list[Any] = [text, "publicTrade." + text, "tickers." + text, "orderbook.1." + text]
    choices += ["publicTrade", "tickers", "publicTrade.", "tickers.", "execution.linear"]
    choices += ["order", "position", "wallet", "wallet.", "greeks", draw(JSON_VALUES)]
    if isinstance(topic, str):
        cut = draw(st.integers(0, len(topic)))
        choices += [topic[:cut], topic.upper(), topic + text, text + topic, topic.replace(".", "")]
        # the other stream's prefix on this frame's data
        choices.append(
            topic.replace("publicTrade.", "tickers.", 1)
            if topic.startswith("publicTrade.")
            else topic.replace("tickers.", "publicTrade.", 1)
        )
    frame["topic"] = draw(st.sampled_from(choices))
    return frame


def m_swap_data(draw: Draw, frame: Any, max_depth: int) -> Any:
    if not isinstance(frame, dict):
        return frame
    data = frame.get("data")
    if isinstance(data, list):
        frame["data"] = data[0] if data and draw(st.booleans()) else {}
    elif isinstance(data, dict):
        frame["data"] = draw(st.sampled_from([[data], [data, data], list(data.values())]))
    else:
        frame["data"] = draw(st.sampled_from([[], {}, [None], [[]]]))
    return frame


def m_envelope(draw: Draw, frame: Any, max_depth: int) -> Any:
    if not isinstance(frame, dict):
        return frame
    key = draw(st.sampled_from(["type", "ts", "cs", "creationTime", "id", "extra"]))
    frame[key] = draw(
        st.one_of(st.sampled_from(["snapshot", "delta", "Snapshot", ""]), JSON_VALUES)
    )
    return frame


def m_unknown_keys(draw: Draw, frame: Any, max_depth: int) -> Any:
    path = _pick(draw, frame, lambda v: isinstance(v, dict))
    if path is not None:
        _get(frame, path).update(draw(st.dictionaries(st.text(max_size=6), JSON_VALUES)))
    return frame


MUTATIONS = [
    m_drop_key,
    m_random_json,
    m_huge_string,
    m_deep_nesting,
    m_unicode,
    m_number,
    m_field_value,
    m_duplicate_items,
    m_shuffle,
    m_topic,
    m_swap_data,
    m_envelope,
    m_unknown_keys,
]


@st.composite
def mutated(draw: Draw, seeds: list[Any], max_depth: int = 500, max_mutations: int = 4) -> Any:
    """A deep copy of one seed with 1..max_mutations mutations applied."""
    frame = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_mutations))):
        frame = draw(st.sampled_from(MUTATIONS))(draw, frame, max_depth)
    return frame


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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_ms(value: Any) -> bool:
    """An integer the database's BIGINT columns can hold."""
    return is_int(value) and INT64_MIN <= value <= INT64_MAX


def optional(check: Callable[[Any], bool], value: Any) -> bool:
    return value is None or check(value)


def is_text(value: Any) -> bool:
    return isinstance(value, str)


def is_name(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def assert_rejected_properly(exc: FrameRejected) -> None:
    assert isinstance(exc.reason, str)
    assert exc.reason.strip(), "FrameRejected without a reason"

    assert "\n" not in exc.reason, "a reason is one line"


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

    def decode(self, message: dict[str, Any]) -> list[Record]:
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
    trades = TradeDecoder(Category.SPOT).rest(copy.deepcopy(REST_TRADE_SEEDS), 1, 2)
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
#: Decimal strings with a little corruption around them (or none): the near misses.
NEAR_DECIMALS = st.builds(
    lambda before, number, after: before + number + after,
    st.sampled_from(["", "", " ", "\n", "+", "0x", "\ufeff"]),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["", "", " ", "\n", "\r\n", "\x00", "e5", ".", "_1", "\u0663"]),
)
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
@given(
    st.sampled_from(TRADE_SEEDS),
    st.sampled_from(["p", "v"]),
    st.one_of(NEAR_DECIMALS, st.sampled_from(TRICKY_STRINGS)),
)
def test_price_and_size_are_accepted_exactly_when_plain_decimals(
    seed: tuple[Category, dict[str, Any]], field: str, value: str
) -> None:
    """An oracle for the decimal slots: accepted, unchanged, iff a plain decimal."""
    category, frame = seed
    message = copy.deepcopy(frame)
    message["data"][0][field] = value
    try:
        records = TradeDecoder(category).frame(message, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
        assert not DECIMAL.fullmatch(value), f"{value!r} is a plain decimal"
    else:
        assert DECIMAL.fullmatch(value), f"{value!r} accepted as a decimal"
        trade = records[0]
        assert (trade.price if field == "p" else trade.size) == value


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
@given(mutated([REST_TRADE_SEEDS]))
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


@FUZZ_STREAM
@given(st.lists(raw_frame(), min_size=1, max_size=6))
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
    # The recording sink never fails; the failing one fails for every data frame.
    assert recording.stats.handler_errors == 0
    assert failing.stats.handler_errors == data


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
