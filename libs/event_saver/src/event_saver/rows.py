"""Event -> row mappings, one per table; values are copied, never converted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from bybit_adapter import (
    ExecutionEvent,
    OrderEvent,
    PositionEvent,
    TickerEvent,
    TradeEvent,
    WalletEvent,
)

Row = dict[str, Any]
#: a row as positional values, in the order of its writer's column tuple
Values = tuple[Any, ...]
_json = msgspec.json.Encoder()


def _ms(ns: int) -> int:
    return ns // 1_000_000


def to_json(value: Any) -> str:
    return _json.encode(value).decode()


TRADE_COLUMNS = (
    "category",
    "symbol",
    "trade_id",
    "trade_time_ms",
    "side",
    "price",
    "size",
    "tick_direction",
    "is_block_trade",
    "is_rpi",
    "seq",
    "exchange_ts_ms",
    "received_ts_ms",
    "source",
    "run_id",
)


def trade_values(run_id: str | None) -> Callable[[TradeEvent], Values]:
    """A trade as the values of ``TRADE_COLUMNS`` (the writers' hot path)."""

    def values(e: TradeEvent) -> Values:
        return (
            e.category,
            e.symbol,
            e.trade_id,
            e.trade_time_ms,
            e.side,
            e.price,
            e.size,
            e.tick_direction,
            e.is_block_trade,
            e.is_rpi,
            e.seq,
            e.exchange_ts_ms,
            e.received_ns // 1_000_000,
            e.source,
            run_id,
        )

    return values


def trade_row(run_id: str | None) -> Callable[[TradeEvent], Row]:
    values = trade_values(run_id)

    def row(e: TradeEvent) -> Row:
        return dict(zip(TRADE_COLUMNS, values(e), strict=True))

    return row


_TICKER_COLUMNS = {
    "last_price": "lastPrice",
    "mark_price": "markPrice",
    "index_price": "indexPrice",
    "bid1_price": "bid1Price",
    "bid1_size": "bid1Size",
    "ask1_price": "ask1Price",
    "ask1_size": "ask1Size",
    "open_interest": "openInterest",
    "open_interest_value": "openInterestValue",
    "funding_rate": "fundingRate",
    "next_funding_time": "nextFundingTime",
    "volume_24h": "volume24h",
    "turnover_24h": "turnover24h",
    "high_price_24h": "highPrice24h",
    "low_price_24h": "lowPrice24h",
    "prev_price_24h": "prevPrice24h",
    "price_24h_pcnt": "price24hPcnt",
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None if value is None else str(value)


_TICKER_KEYS = tuple(_TICKER_COLUMNS.values())
TICKER_COLUMNS = (
    *_TICKER_COLUMNS,
    "category",
    "symbol",
    "exchange_ts_ms",
    "received_ts_ms",
    "cross_seq",
    "frame_type",
    "data",
    "run_id",
)


def ticker_values(run_id: str | None) -> Callable[[TickerEvent], Values]:
    """A ticker state as the values of ``TICKER_COLUMNS``."""

    def values(e: TickerEvent) -> Values:
        state = e.state
        get = state.get
        return (
            *[_text(get(key)) for key in _TICKER_KEYS],
            e.category,
            e.symbol,
            e.exchange_ts_ms,
            e.received_ns // 1_000_000,
            e.cross_seq,
            e.frame_type,
            to_json(state),
            run_id,
        )

    return values


def ticker_row(run_id: str | None) -> Callable[[TickerEvent], Row]:
    values = ticker_values(run_id)

    def row(e: TickerEvent) -> Row:
        return dict(zip(TICKER_COLUMNS, values(e), strict=True))

    return row


def _account_row(
    run_id: str | None, account_id: str | None, json_fields: tuple[str, ...]
) -> Callable[[Any], Row]:
    """Private events name their fields after their table's columns: copy them all,
    encode the JSON ones, and turn the receive time into ms."""

    def row(event: Any) -> Row:
        out: Row = msgspec.structs.asdict(event)
        out["received_ts_ms"] = _ms(out.pop("received_ns"))
        for name in json_fields:
            out[name] = to_json(out[name])
        out["account_id"] = account_id
        out["run_id"] = run_id
        return out

    return row


def execution_row(run_id: str | None, account_id: str | None) -> Callable[[ExecutionEvent], Row]:
    return _account_row(run_id, account_id, ("raw",))


def order_row(run_id: str | None, account_id: str | None) -> Callable[[OrderEvent], Row]:
    return _account_row(run_id, account_id, ("raw",))


def position_row(run_id: str | None, account_id: str | None) -> Callable[[PositionEvent], Row]:
    return _account_row(run_id, account_id, ("raw",))


def wallet_row(run_id: str | None, account_id: str | None) -> Callable[[WalletEvent], Row]:
    return _account_row(run_id, account_id, ("coins", "raw"))
