"""The house way of fuzzing a decoder, shared by ``test_decoders_fuzz`` and
``test_book_fuzz``: the seeds, the tricky values, the mutations, and the checks every
property makes of a rejection and of a decimal slot.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bybit_adapter import FrameRejected

from .conftest import REST_TRADES, all_captured

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

#: every captured frame, with its category
PUBLIC_SEEDS = all_captured()
#: Private frames shaped like the examples of Bybit's V5 documentation (there is no
#: captured private frame in fixtures/captured).
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


KNOWN_KEYS = sorted(_keys([f for _, f in PUBLIC_SEEDS] + PRIVATE_SEEDS + REST_TRADES, set()))

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


#: Decimal strings with a little corruption around them (or none): the near misses.
NEAR_DECIMALS = st.builds(
    lambda before, number, after: before + number + after,
    st.sampled_from(["", "", " ", "\n", "+", "0x", "\ufeff"]),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["", "", " ", "\n", "\r\n", "\x00", "e5", ".", "_1", "\u0663"]),
)
#: What a price or size slot is set to: near misses and tricky strings.
DECIMAL_CANDIDATES = st.one_of(NEAR_DECIMALS, st.sampled_from(TRICKY_STRINGS))


# ---- the checks -----------------------------------------------------------------------


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


def assert_decimal_slot(value: str, decode: Callable[[], Any], read: Callable[[Any], str]) -> None:
    """The oracle of a price or size slot set to ``value``: ``decode()`` accepts the frame,
    and ``read`` finds ``value`` unchanged in its record, exactly when ``value`` is a plain
    decimal."""
    try:
        record = decode()
    except FrameRejected as exc:
        assert_rejected_properly(exc)
        assert not DECIMAL.fullmatch(value), f"{value!r} is a plain decimal"
    else:
        assert DECIMAL.fullmatch(value), f"{value!r} accepted as a decimal"
        assert read(record) == value
