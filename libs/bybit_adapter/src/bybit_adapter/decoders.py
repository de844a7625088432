"""One decoder per topic: WebSocket frames and REST rows into records.

Pure and synchronous: no I/O, no clock. The WebSocket and the REST form of a topic go
through the same decoder, so a refilled row is exactly what the live row would have
been. A frame that cannot become records raises ``FrameRejected`` with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import msgspec

from bybit_adapter.errors import FrameRejected
from bybit_adapter.wire import ItemReader, wire_fields, ws_struct
from bybit_records import (
    DECIMAL_PATTERN,
    INT64,
    TICKER_WIRE_KEYS,
    Category,
    DataSource,
    Execution,
    FrameType,
    Order,
    Position,
    PrivateRecord,
    Record,
    Ticker,
    Trade,
    Wallet,
    record_fields,
)

R = TypeVar("R", bound=Record)
Int64 = Annotated[int, INT64]

TRADE_PREFIX = "publicTrade."
TICKER_PREFIX = "tickers."

_WsTrade: Any = ws_struct(Trade)
#: The keys of a trade item in the order Bybit sends them (linear and inverse). msgspec
#: matches each key first against the field after the last one matched, so the hot
#: path's struct lists its fields in this order (a 1,024-trade frame decodes 15% faster);
#: a field this list does not know goes last.
_WS_TRADE_KEY_ORDER = ("T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq")


def _in_key_order(struct: Any, order: Sequence[str]) -> Any:
    """``struct`` with its fields (types, constraints, defaults kept) in ``order`` first."""
    fields = {f.name: f for f in msgspec.structs.fields(struct)}
    names = [n for n in order if n in fields] + [n for n in fields if n not in order]
    return msgspec.defstruct(
        struct.__name__,
        [(name, fields[name].type, fields[name].default) for name in names],
        kw_only=True,
        forbid_unknown_fields=False,
        gc=False,
    )


_FastTrade: Any = _in_key_order(ws_struct(Trade, check_decimals=False), _WS_TRADE_KEY_ORDER)
_TradeFrame: Any = msgspec.defstruct(
    "TradeFrame", [("topic", str), ("ts", Int64), ("data", list[_FastTrade])], gc=False
)
_decode_trade_frame = msgspec.json.Decoder(_TradeFrame).decode
_decimal = re.compile(DECIMAL_PATTERN.removeprefix("^").removesuffix(r"\Z")).fullmatch
# A large frame's decimals are joined by NUL and checked in one match: each is a plain
# decimal exactly when the whole string matches and holds one NUL fewer than values.
_DECIMALS_JOINED = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:\x00-?[0-9]+(?:\.[0-9]+)?)*")
_SMALL_FRAME = 8
_TRADE_DECIMALS = tuple(f.wire.ws for f in wire_fields(Trade) if f.decimal and f.wire)
_TICK_DIRECTIONS = {d: d for d in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")}
#: ``Trade`` called positionally with the wire values (see ``_trade_builders``)
_trade: Callable[..., Trade] = Trade


#: What a trade decoder fills in itself: everything of ``Trade`` Bybit's item does not hold.
_TRADE_ENVELOPE = {
    "category": "c",
    "exchange_ts_ms": "ts",
    "received_ts_ms": "ms",
    "source": "_WS",
}


def _trade_builders() -> dict[str, Callable[..., Any]]:
    """The hot path's loops, written out from ``Trade``'s fields (its one declaration).

    ``small(c, items, ts, ms)`` checks each decimal and builds the records in one pass
    (None for a bad decimal); ``large(c, items, ts, ms, symbol)`` builds them sharing the
    topic's symbol string and the tick-direction strings (a burst in the writer's buffer
    takes a fifth less memory); ``plain(c, items, ts, ms)`` builds them from items already
    checked. Spelled-out attribute reads in the record's field order, not a splat of
    ``astuple(item)``: a tuple per trade made the loop twice as slow. A field added to
    ``Trade`` (with its ``Wire`` name) appears here by itself.
    """
    plain, shared = [], []
    for f in record_fields(Trade):
        if f.wire is None:
            if f.name not in _TRADE_ENVELOPE:
                raise TypeError(f"Trade.{f.name} has no Wire name and no envelope value")
            plain.append(_TRADE_ENVELOPE[f.name])
            shared.append(_TRADE_ENVELOPE[f.name])
            continue
        read = f"t.{f.wire.ws}"
        plain.append(read)
        if f.name == "symbol":
            shared.append(f"symbol if {read} == symbol else {read}")
        elif f.name == "tick_direction":
            shared.append(f"tick({read}, {read})")
        else:
            shared.append(read)
    checks = " or ".join(f"_decimal(t.{name}) is None" for name in _TRADE_DECIMALS)
    source = f"""
def small(c, items, ts, ms):
    records = []
    add = records.append
    for t in items:
        if {checks}:
            return None
        add(_trade({", ".join(plain)}))
    return records

def large(c, items, ts, ms, symbol):
    tick = _TICK_DIRECTIONS.get
    return [_trade({", ".join(shared)}) for t in items]

def plain(c, items, ts, ms):
    return [_trade({", ".join(plain)}) for t in items]
"""
    namespace: dict[str, Any] = {
        "_trade": _trade,
        "_decimal": _decimal,
        "_TICK_DIRECTIONS": _TICK_DIRECTIONS,
        "_WS": DataSource.WS,
    }
    exec(compile(source, "<Trade builders>", "exec"), namespace)
    return {name: namespace[name] for name in ("small", "large", "plain")}


_BUILD = _trade_builders()
_build_small, _build_large, _build_plain = _BUILD["small"], _BUILD["large"], _BUILD["plain"]


def _ms(received_ns: int) -> int:
    return received_ns // 1_000_000


def _int64(value: Any) -> int | None:
    """``value`` if it is an integer a BIGINT column can hold, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def envelope_ts(message: dict[str, Any], key: str = "ts") -> int:
    ts = _int64(message.get(key))
    if ts is None:
        raise FrameRejected(f"envelope {key!r} missing or not a 64-bit integer")
    return ts


class TradeDecoder:
    """``publicTrade`` frames and REST ``recent-trade`` rows of one category."""

    def __init__(self, category: Category) -> None:
        self.category = category
        self._rest = ItemReader(Trade, rest=True)
        self._wire_names = [f.name for f in wire_fields(Trade)]

    def fast(self, raw: str | bytes, received_ns: int) -> list[Trade] | None:
        """The hot path: a frame's trades, or None to let ``frame()`` decide.

        Decodes the text straight into typed structs (no dicts) and checks the decimals
        with one regex per frame; it accepts exactly what ``frame()`` accepts and makes
        the same records. Anything else (another topic, a malformed or empty frame)
        gives None.
        """
        try:
            frame = _decode_trade_frame(raw)
        except Exception:  # any failure: frame() decides what the frame is
            return None
        items = frame.data
        if not items or not frame.topic.startswith(TRADE_PREFIX):
            return None
        ts, ms = frame.ts, received_ns // 1_000_000
        if len(items) <= _SMALL_FRAME:
            # One pass, checking and building: cheaper than a check and a comprehension
            # (a frame of one trade, the most common one, takes a tenth less).
            records: list[Trade] | None = _build_small(self.category, items, ts, ms)
            return records
        values = [getattr(t, name) for name in _TRADE_DECIMALS for t in items]
        joined = "\x00".join(values)
        if joined.count("\x00") != len(values) - 1 or not _DECIMALS_JOINED.fullmatch(joined):
            return None
        built: list[Trade] = _build_large(
            self.category, items, ts, ms, frame.topic[len(TRADE_PREFIX) :]
        )
        return built

    def frame(self, message: dict[str, Any], received_ns: int) -> list[Trade]:
        """The trades of a decoded frame; raises ``FrameRejected`` with the reason."""
        ts = envelope_ts(message)
        data = message.get("data")
        if not isinstance(data, list):
            raise FrameRejected("publicTrade data is not a list")
        try:
            items = msgspec.convert(data, list[_WsTrade])
        except (msgspec.ValidationError, UnicodeEncodeError) as exc:
            # UnicodeEncodeError: msgspec meets a lone surrogate in a str it must match.
            raise FrameRejected(f"publicTrade: {exc}") from None
        return self._records(items, ts, _ms(received_ns))

    def rest(self, items: Sequence[Any], response_ms: int, received_ns: int) -> list[Trade]:
        """The trades of a ``recent-trade`` list (newest first, as Bybit sends it)."""
        received_ms = _ms(received_ns)
        out = []
        for item in items:
            try:
                values = self._rest.values(item)
            except FrameRejected as exc:
                raise FrameRejected(f"recent-trade: {exc.reason}") from None
            out.append(
                Trade(
                    **dict(zip(self._wire_names, values, strict=True)),
                    category=self.category,
                    exchange_ts_ms=response_ms,
                    received_ts_ms=received_ms,
                    source=DataSource.REST,
                )
            )
        return out

    def _records(self, items: Sequence[Any], ts: int, received_ms: int) -> list[Trade]:
        records: list[Trade] = _build_plain(self.category, items, ts, received_ms)
        return records


class TickerDecoder:
    """``tickers`` frames of one category, merged into complete states.

    Linear and inverse send a snapshot, then deltas holding only the fields that
    changed (absent: unchanged; present, even ``""``: the new value). Spot and option
    send snapshots only.
    """

    _fields = TICKER_WIRE_KEYS
    #: the state's keys stored elsewhere than in ``data``: its typed fields, and the symbol
    _columns = frozenset(key for _, key in TICKER_WIRE_KEYS) | {"symbol"}

    def __init__(self, category: Category) -> None:
        self.category = category
        self._states: dict[str, dict[str, Any]] = {}

    def frame(self, message: dict[str, Any], received_ns: int) -> Ticker:
        ts = envelope_ts(message)
        data = message.get("data")
        if not isinstance(data, dict):
            raise FrameRejected("tickers data is not an object")
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise FrameRejected("tickers data has no symbol")
        kind = message.get("type")
        if kind == FrameType.SNAPSHOT:
            state = dict(data)
        elif kind == FrameType.DELTA:
            previous = self._states.get(symbol)
            if previous is None:
                raise FrameRejected(f"ticker delta for {symbol} before any snapshot")
            state = {**previous, **data}
        else:
            raise FrameRejected(f"unknown ticker frame type {kind!r}")
        self._states[symbol] = state
        cs = message.get("cs")
        typed = {name: _text(state.get(key)) for name, key in self._fields}
        return Ticker(
            category=self.category,
            symbol=symbol,
            exchange_ts_ms=ts,
            received_ts_ms=_ms(received_ns),
            cross_seq=_int64(cs),
            frame_type=FrameType(kind),
            # The other fields as this frame sent them (a delta: the changed ones): a
            # ticker pushed every 100 ms rarely changes them, and would repeat them all.
            data={key: value for key, value in data.items() if key not in self._columns},
            **typed,
        )

    def reset(self) -> None:
        """Forget every state: a resubscribe sends fresh snapshots."""
        self._states.clear()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None if value is None else str(value)


class PrivateDecoder:
    """``execution``/``order``/``position``/``wallet`` items, from frames or REST lists."""

    TOPICS: dict[str, type[PrivateRecord]] = {
        "execution": Execution,
        "order": Order,
        "position": Position,
        "wallet": Wallet,
    }

    def __init__(self) -> None:
        self._readers = {record: ItemReader(record) for record in self.TOPICS.values()}

    def frame(self, message: dict[str, Any], received_ns: int) -> list[PrivateRecord]:
        topic = message.get("topic")
        if not isinstance(topic, str):
            raise FrameRejected("frame has no topic")
        record = self.TOPICS.get(topic.split(".", 1)[0])
        if record is None:
            raise FrameRejected(f"unsupported private topic {topic!r}")
        data = message.get("data")
        if not isinstance(data, list):
            raise FrameRejected(f"{topic}: data is not a list")
        exchange_ts = _int64(message.get("creationTime"))
        return [
            self._build(record, item, None, exchange_ts, received_ns, DataSource.WS)
            for item in data
        ]

    def rest(
        self, record: type[R], items: Sequence[Any], category: Category | None, received_ns: int
    ) -> list[R]:
        """Records of a REST list (executions, orders, positions, wallet)."""
        return [
            self._build(record, item, category, None, received_ns, DataSource.REST)
            for item in items
        ]

    def _build(
        self,
        record: type[R],
        item: Any,
        category: Category | None,
        exchange_ts: int | None,
        received_ns: int,
        source: DataSource,
    ) -> R:
        reader = self._readers[record]  # type: ignore[index]
        values = reader.values(item)
        fields = dict(zip((f.name for f in wire_fields(record)), values, strict=True))
        if "category" in record.__struct_fields__:
            fields["category"] = _category(item.get("category", category))
        return record(
            **fields,
            raw=item,
            exchange_ts_ms=exchange_ts,
            received_ts_ms=_ms(received_ns),
            source=source,
        )


def _category(value: Any) -> Category:
    try:
        return Category(value)
    except ValueError:
        raise FrameRejected(f"unknown category {value!r:.40}") from None


def topic_kind(topic: str) -> str:
    """``publicTrade`` of ``publicTrade.BTCUSDT``."""
    return topic.split(".", 1)[0]
