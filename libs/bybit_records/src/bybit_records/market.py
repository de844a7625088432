"""Public market data: trades and ticker states."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from bybit_records.enums import Category, DataSource, FrameType
from bybit_records.record import NONEMPTY, Decimal, Record, Wire, record_fields


class Trade(Record, frozen=True, gc=False):
    """One public trade: a ``publicTrade`` item, or a REST ``recent-trade`` row.

    Identified by (category, symbol, trade_id): Bybit's ``i``/``execId`` is unique per
    symbol (a UUID on derivatives, a decimal number on spot); ``seq`` is not. The key
    puts the trade's time before its id: a trade keeps its time wherever it is read
    (WebSocket ``T``, REST ``time``), so the key identifies the same trades, and rows
    keyed in time order are appended where trades arrive instead of at a random place.
    """

    natural_key: ClassVar[tuple[str, ...] | None] = (
        "category",
        "symbol",
        "trade_time_ms",
        "trade_id",
    )

    category: Category
    symbol: Annotated[str, Wire("s", "symbol")]
    trade_id: Annotated[str, Wire("i", "execId"), NONEMPTY]
    #: when the trade happened (Bybit's ``T``), ms since the epoch
    trade_time_ms: Annotated[int, Wire("T", "time")]
    #: the taker's side, ``Buy`` or ``Sell``
    side: Annotated[Literal["Buy", "Sell"], Wire("S", "side")]
    price: Annotated[Decimal, Wire("p", "price")]
    size: Annotated[Decimal, Wire("v", "size")]
    #: ``PlusTick`` ...; REST rows do not carry it
    tick_direction: Annotated[str | None, Wire("L", rest=None)]
    is_block_trade: Annotated[bool, Wire("BT", "isBlockTrade")]
    is_rpi: Annotated[bool | None, Wire("RPI", "isRPITrade")]
    seq: Annotated[int | None, Wire("seq")]
    #: the frame's ``ts`` (WebSocket) or the reply's ``time`` (REST)
    exchange_ts_ms: int
    #: when the frame or reply arrived here
    received_ts_ms: int
    source: DataSource = DataSource.WS


class Ticker(Record, frozen=True, gc=False):
    """The ticker state after one frame.

    Linear and inverse tickers send a snapshot, then deltas holding only the fields that
    changed; each delta is merged into the last state, and the typed fields are that
    complete state, so they are self-contained in every row. ``data`` holds the frame's
    other fields (``tickDirection``, ``basisRate`` ...) as Bybit named and sent them: all
    of them in a snapshot, the changed ones in a delta (a reader who needs them merges
    forward from the last snapshot). Rows written before release 2 hold the whole state
    in ``data``.
    """

    category: Category
    symbol: str
    exchange_ts_ms: int
    received_ts_ms: int
    #: the frame's ``cs`` (cross sequence)
    cross_seq: int | None
    frame_type: FrameType
    last_price: Annotated[str | None, Wire("lastPrice")]
    mark_price: Annotated[str | None, Wire("markPrice")]
    index_price: Annotated[str | None, Wire("indexPrice")]
    bid1_price: Annotated[str | None, Wire("bid1Price")]
    bid1_size: Annotated[str | None, Wire("bid1Size")]
    ask1_price: Annotated[str | None, Wire("ask1Price")]
    ask1_size: Annotated[str | None, Wire("ask1Size")]
    open_interest: Annotated[str | None, Wire("openInterest")]
    open_interest_value: Annotated[str | None, Wire("openInterestValue")]
    funding_rate: Annotated[str | None, Wire("fundingRate")]
    next_funding_time: Annotated[str | None, Wire("nextFundingTime")]
    volume_24h: Annotated[str | None, Wire("volume24h")]
    turnover_24h: Annotated[str | None, Wire("turnover24h")]
    high_price_24h: Annotated[str | None, Wire("highPrice24h")]
    low_price_24h: Annotated[str | None, Wire("lowPrice24h")]
    prev_price_24h: Annotated[str | None, Wire("prevPrice24h")]
    price_24h_pcnt: Annotated[str | None, Wire("price24hPcnt")]
    data: dict[str, Any]

    def state(self) -> dict[str, Any]:
        """The row as Bybit names its fields: the typed state, and ``data`` (absent fields
        left out; a delta row holds only its changed fields of those without a column)."""
        state = {"symbol": self.symbol, **self.data}
        for name, key in TICKER_WIRE_KEYS:
            value = getattr(self, name)
            if value is not None:
                state[key] = value
        return state


#: (field, Bybit's name) of every ticker field copied from the state
TICKER_WIRE_KEYS: tuple[tuple[str, str], ...] = tuple(
    (f.name, f.wire.ws) for f in record_fields(Ticker) if f.wire is not None
)
