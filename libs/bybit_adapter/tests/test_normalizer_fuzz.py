"""Property-based fuzzing of the normalizer and of the connection's frame handling.

Inputs are real frames (tests/fixtures/captured/*.jsonl) and documented private and
REST shapes, mutated: keys dropped, values replaced by JSON of other types, huge or
unicode strings, deep nesting, out-of-range numbers, duplicated and shuffled trades,
mutated topics, ``data`` swapped between list and object.

The properties:

* the normalizer returns a list of well-formed events or raises ``FrameRejected`` with a
  non-empty reason, never another exception;
* ``ReconnectingWebSocket._handle_frame`` never raises, whatever text or bytes arrive,
  and counts invalid frames and failing handlers.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bybit_adapter import (
    BybitNormalizer,
    ExecutionEvent,
    FrameRejected,
    OrderEvent,
    PositionEvent,
    PublicWebSocketClient,
    TickerEvent,
    TradeEvent,
    WalletEvent,
)

CAPTURED = Path(__file__).parent / "fixtures" / "captured"
INVERSE_SYMBOLS = {"BTCUSD", "BTCUSDU23", "XRPUSD"}
RECEIVED_NS = 1_700_000_000_123_456_789
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: What a price or size must look like, matched against the whole string.
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _captured() -> list[tuple[str, dict[str, Any]]]:
    seeds: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(CAPTURED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            frame = json.loads(line)
            if "_option_" in path.name:
                category = "option"
            elif "_spot_" in path.name:
                category = "spot"
            else:
                symbol = frame["topic"].rsplit(".", 1)[-1]
                category = "inverse" if symbol in INVERSE_SYMBOLS else "linear"
            seeds.append((category, frame))
    return seeds


PUBLIC_SEEDS = _captured()
#: Trade and ticker frames (the ones the normalizer accepts) weigh three times as much
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
def public_frame(draw: Draw, max_depth: int = 500) -> tuple[str, dict[str, Any]]:
    """A mutated public frame; two times in three only its ``data`` is mutated, so that
    most examples get past the envelope checks to the trade and ticker fields."""
    category, seed = draw(st.sampled_from(WEIGHTED_PUBLIC_SEEDS))
    if draw(st.integers(0, 2)) and isinstance(seed.get("data"), (list, dict)):
        frame = copy.deepcopy(seed)
        frame["data"] = draw(mutated([frame["data"]], max_depth))
    else:
        frame = draw(mutated([seed], max_depth))
    category = draw(st.sampled_from([category, category, "linear", "spot", "inverse", "option"]))
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


def check_trade(event: TradeEvent, category: str) -> None:
    assert event.category == category
    assert is_text(event.symbol)
    assert is_name(event.trade_id)
    assert event.side in ("Buy", "Sell")
    for name in ("price", "size"):
        value = getattr(event, name)
        assert isinstance(value, str), (name, value)
        assert DECIMAL.fullmatch(value), (name, value)
    assert is_ms(event.trade_time_ms), event.trade_time_ms
    assert is_ms(event.exchange_ts_ms), event.exchange_ts_ms
    assert optional(is_ms, event.seq)
    assert isinstance(event.is_block_trade, bool)
    assert optional(lambda v: isinstance(v, bool), event.is_rpi)
    assert optional(is_text, event.tick_direction)


def check_public_events(events: Any, category: str) -> None:
    assert isinstance(events, list)
    for event in events:
        if isinstance(event, TradeEvent):
            check_trade(event, category)
        elif isinstance(event, TickerEvent):
            assert event.category == category
            assert isinstance(event.state, dict)
            assert "symbol" in event.state
            assert event.state["symbol"] == event.symbol
            assert is_name(event.symbol)
            assert event.frame_type in ("snapshot", "delta")
            assert is_ms(event.exchange_ts_ms)
            assert optional(is_ms, event.cross_seq)
        else:
            raise AssertionError(f"unexpected event {event!r}")


def check_private_events(events: Any) -> None:
    assert isinstance(events, list)
    for event in events:
        assert optional(is_ms, event.exchange_ts_ms)
        assert isinstance(event.raw, dict)
        if isinstance(event, ExecutionEvent):
            assert is_name(event.category)
            assert is_name(event.symbol)
            assert is_name(event.exec_id)
            assert is_ms(event.exec_time_ms)
            assert optional(is_ms, event.seq)
            assert optional(lambda v: isinstance(v, bool), event.is_maker)
            for name in ("order_id", "side", "exec_price", "exec_qty", "exec_fee", "exec_type"):
                assert optional(is_text, getattr(event, name)), name
        elif isinstance(event, OrderEvent):
            assert is_name(event.order_id)
            assert is_name(event.order_status)
            assert is_ms(event.updated_time_ms)
            assert optional(is_ms, event.created_time_ms)
            assert optional(lambda v: isinstance(v, bool), event.reduce_only)
            for name in ("price", "qty", "avg_price", "leaves_qty", "cum_exec_qty"):
                assert optional(is_text, getattr(event, name)), name
        elif isinstance(event, PositionEvent):
            assert is_name(event.category)
            assert is_name(event.symbol)
            assert optional(is_ms, event.position_idx)
            assert optional(is_ms, event.updated_time_ms)
            for name in ("side", "size", "entry_price", "mark_price", "leverage"):
                assert optional(is_text, getattr(event, name)), name
        elif isinstance(event, WalletEvent):
            assert isinstance(event.coins, list)
            for name in ("account_type", "total_equity", "total_wallet_balance"):
                assert optional(is_text, getattr(event, name)), name
        else:
            raise AssertionError(f"unexpected event {event!r}")


def primed_normalizer() -> BybitNormalizer:
    """A normalizer that has seen every clean ticker snapshot, so deltas apply."""
    normalizer = BybitNormalizer()
    for category, frame in PUBLIC_SEEDS:
        if frame["topic"].startswith("tickers.") and frame.get("type") == "snapshot":
            normalizer.normalize_public(category, copy.deepcopy(frame), RECEIVED_NS)
    return normalizer


def test_every_clean_seed_is_accepted_or_rejected_with_a_reason() -> None:
    """The seeds themselves satisfy the properties (and most of them are accepted)."""
    normalizer = primed_normalizer()
    accepted = 0
    for category, frame in PUBLIC_SEEDS:
        try:
            events = normalizer.normalize_public(category, copy.deepcopy(frame), RECEIVED_NS)
        except FrameRejected as exc:
            assert_rejected_properly(exc)
            continue
        check_public_events(events, category)
        accepted += 1
    assert accepted == 12
    for frame in PRIVATE_SEEDS:
        private = BybitNormalizer().normalize_private(copy.deepcopy(frame), RECEIVED_NS)
        check_private_events(private)
        assert len(private) == 1
    trades = BybitNormalizer.trades_from_rest("spot", copy.deepcopy(REST_TRADE_SEEDS), 1, 2)
    assert len(trades) == 2


@FUZZ
@given(st.lists(public_frame(), min_size=1, max_size=3))
def test_normalize_public_returns_events_or_rejects(frames: list[tuple[str, Any]]) -> None:
    normalizer = primed_normalizer()  # a session: ticker state carries over between frames
    for category, frame in frames:
        try:
            events = normalizer.normalize_public(category, frame, RECEIVED_NS)
        except FrameRejected as exc:
            assert_rejected_properly(exc)
        else:
            check_public_events(events, category)


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
def trade_frame_with_tricky_fields(draw: Draw) -> tuple[str, dict[str, Any]]:
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
def test_trade_items_with_tricky_fields(frame: tuple[str, dict[str, Any]]) -> None:
    category, message = frame
    try:
        events = BybitNormalizer().normalize_public(category, message, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
    else:
        check_public_events(events, category)
        assert len(events) == len(message["data"])


@FUZZ
@given(
    st.sampled_from(TRADE_SEEDS),
    st.sampled_from(["p", "v"]),
    st.one_of(NEAR_DECIMALS, st.sampled_from(TRICKY_STRINGS)),
)
def test_price_and_size_are_accepted_exactly_when_plain_decimals(
    seed: tuple[str, dict[str, Any]], field: str, value: str
) -> None:
    """An oracle for the decimal slots: accepted, unchanged, iff a plain decimal."""
    category, frame = seed
    message = copy.deepcopy(frame)
    message["data"][0][field] = value
    try:
        events = BybitNormalizer().normalize_public(category, message, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
        assert not DECIMAL.fullmatch(value), f"{value!r} is a plain decimal"
    else:
        assert DECIMAL.fullmatch(value), f"{value!r} accepted as a decimal"
        trade = events[0]
        assert isinstance(trade, TradeEvent)
        assert (trade.price if field == "p" else trade.size) == value


@FUZZ
@given(st.lists(mutated(PRIVATE_SEEDS), min_size=1, max_size=3))
def test_normalize_private_returns_events_or_rejects(frames: list[Any]) -> None:
    normalizer = BybitNormalizer()
    for frame in frames:
        try:
            events = normalizer.normalize_private(frame, RECEIVED_NS)
        except FrameRejected as exc:
            assert_rejected_properly(exc)
        else:
            check_private_events(events)


@FUZZ
@given(mutated([REST_TRADE_SEEDS]))
def test_trades_from_rest_returns_events_or_rejects(items: Any) -> None:
    if not isinstance(items, list):
        items = [items]
    try:
        events = BybitNormalizer.trades_from_rest("linear", items, 1_700_000_000_000, RECEIVED_NS)
    except FrameRejected as exc:
        assert_rejected_properly(exc)
    else:
        for event in events:
            check_trade(event, "linear")
            assert event.source == "rest"


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


def _classify(raw: str | bytes) -> str:
    try:
        message = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "invalid"
    if not isinstance(message, dict):
        return "invalid"
    return "data" if "topic" in message else "control"


class FrameSink:
    """Handlers for a client: the normalizer, and a record of what it said."""

    def __init__(self, category: str = "linear") -> None:
        self.category = category
        self.normalizer = BybitNormalizer()
        self.events = 0
        self.rejected: list[str] = []
        self.invalid: list[str] = []

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        # What the recorder's collector does: FrameRejected is stored, nothing else
        # is expected, so any other exception is counted as a handler error.
        try:
            events = self.normalizer.normalize_public(self.category, message, received_ns)
        except FrameRejected as exc:
            self.rejected.append(exc.reason)
            return
        check_public_events(events, self.category)
        self.events += len(events)

    def on_invalid(self, text: str, reason: str, received_ns: int) -> None:
        assert reason
        self.invalid.append(reason)


def _client(on_message: Callable[[dict[str, Any], int], None], sink: FrameSink) -> Any:
    return PublicWebSocketClient(
        "ws://127.0.0.1:9/v5/public/{category}",
        ["publicTrade.BTCUSDT", "tickers.BTCUSDT"],
        category="linear",
        on_message=on_message,
        on_invalid=sink.on_invalid,
    )


def _explode(message: dict[str, Any], received_ns: int) -> None:
    raise RuntimeError("handler failed")


async def _feed(frames: list[str | bytes]) -> tuple[Any, Any, FrameSink]:
    sink = FrameSink()
    normalizing = _client(sink.on_message, sink)
    failing = _client(_explode, FrameSink())
    try:
        for n, raw in enumerate(frames):
            normalizing._handle_frame(raw, RECEIVED_NS + n)
            failing._handle_frame(raw, RECEIVED_NS + n)
        await asyncio.sleep(0)  # let resubscribe tasks spawned by control replies run
    finally:
        await normalizing.stop()
        await failing.stop()
    return normalizing, failing, sink


@FUZZ
@given(st.lists(raw_frame(), min_size=1, max_size=6))
def test_handle_frame_never_raises_and_counts(frames: list[str | bytes]) -> None:
    normalizing, failing, sink = asyncio.run(_feed(frames))
    kinds = [_classify(raw) for raw in frames]
    for client in (normalizing, failing):
        assert client.stats.frames == len(frames)
        assert client.stats.invalid_frames == kinds.count("invalid")
        assert client.stats.data_frames == kinds.count("data")
    assert len(sink.invalid) == kinds.count("invalid")
    # The normalizing handler only ever meets FrameRejected; the failing one always fails.
    assert normalizing.stats.handler_errors == 0
    assert failing.stats.handler_errors == kinds.count("data")


def test_handle_frame_counts_the_obvious_cases() -> None:
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
    normalizing, failing, sink = asyncio.run(_feed(frames))
    assert normalizing.stats.invalid_frames == 3
    assert normalizing.stats.data_frames == 3
    assert normalizing.stats.pongs == 1
    assert normalizing.stats.handler_errors == 0
    assert sink.events == 2 * len(trade["data"])
    assert len(sink.rejected) == 1
    assert failing.stats.handler_errors == 3


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,
        b'{"topic": "publicTrade.BTCUSDT", "data": "\xff"}',
    ],
    ids=["deep-nesting", "invalid-utf8-in-binary-string"],
)
def test_handle_frame_survives_known_crashers(raw: str | bytes) -> None:
    """Frames that once escaped ``_handle_frame`` and killed the read loop.

    msgspec raises ``RecursionError`` for nesting deeper than the recursion limit and
    ``UnicodeDecodeError`` for invalid UTF-8 inside a JSON string of a *binary* frame;
    both must be counted as invalid frames, not end the connection.
    """
    normalizing, _, _ = asyncio.run(_feed([raw]))
    assert normalizing.stats.invalid_frames == 1
