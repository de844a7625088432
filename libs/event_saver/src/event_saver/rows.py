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


def execution_row(run_id: str | None, account_id: str | None) -> Callable[[ExecutionEvent], Row]:
    def row(e: ExecutionEvent) -> Row:
        return {
            "account_id": account_id,
            "run_id": run_id,
            "category": e.category,
            "symbol": e.symbol,
            "exec_id": e.exec_id,
            "order_id": e.order_id,
            "order_link_id": e.order_link_id,
            "side": e.side,
            "order_type": e.order_type,
            "exec_type": e.exec_type,
            "exec_price": e.exec_price,
            "exec_qty": e.exec_qty,
            "exec_value": e.exec_value,
            "exec_fee": e.exec_fee,
            "fee_rate": e.fee_rate,
            "closed_size": e.closed_size,
            "exec_pnl": e.exec_pnl,
            "is_maker": e.is_maker,
            "exec_time_ms": e.exec_time_ms,
            "seq": e.seq,
            "raw": to_json(e.raw),
            "exchange_ts_ms": e.exchange_ts_ms,
            "received_ts_ms": _ms(e.received_ns),
            "source": e.source,
        }

    return row


def order_row(run_id: str | None, account_id: str | None) -> Callable[[OrderEvent], Row]:
    def row(e: OrderEvent) -> Row:
        return {
            "account_id": account_id,
            "run_id": run_id,
            "category": e.category,
            "symbol": e.symbol,
            "order_id": e.order_id,
            "order_link_id": e.order_link_id,
            "side": e.side,
            "order_type": e.order_type,
            "price": e.price,
            "qty": e.qty,
            "order_status": e.order_status,
            "avg_price": e.avg_price,
            "leaves_qty": e.leaves_qty,
            "cum_exec_qty": e.cum_exec_qty,
            "cum_exec_value": e.cum_exec_value,
            "cum_exec_fee": e.cum_exec_fee,
            "time_in_force": e.time_in_force,
            "reduce_only": e.reduce_only,
            "created_time_ms": e.created_time_ms,
            "updated_time_ms": e.updated_time_ms,
            "raw": to_json(e.raw),
            "exchange_ts_ms": e.exchange_ts_ms,
            "received_ts_ms": _ms(e.received_ns),
            "source": e.source,
        }

    return row


def position_row(run_id: str | None, account_id: str | None) -> Callable[[PositionEvent], Row]:
    def row(e: PositionEvent) -> Row:
        return {
            "account_id": account_id,
            "run_id": run_id,
            "category": e.category,
            "symbol": e.symbol,
            "side": e.side,
            "size": e.size,
            "position_idx": e.position_idx,
            "entry_price": e.entry_price,
            "mark_price": e.mark_price,
            "position_value": e.position_value,
            "unrealised_pnl": e.unrealised_pnl,
            "cum_realised_pnl": e.cum_realised_pnl,
            "leverage": e.leverage,
            "liq_price": e.liq_price,
            "updated_time_ms": e.updated_time_ms,
            "raw": to_json(e.raw),
            "exchange_ts_ms": e.exchange_ts_ms,
            "received_ts_ms": _ms(e.received_ns),
            "source": e.source,
        }

    return row


def wallet_row(run_id: str | None, account_id: str | None) -> Callable[[WalletEvent], Row]:
    def row(e: WalletEvent) -> Row:
        return {
            "account_id": account_id,
            "run_id": run_id,
            "account_type": e.account_type,
            "total_equity": e.total_equity,
            "total_wallet_balance": e.total_wallet_balance,
            "total_available_balance": e.total_available_balance,
            "total_margin_balance": e.total_margin_balance,
            "coins": to_json(e.coins),
            "raw": to_json(e.raw),
            "exchange_ts_ms": e.exchange_ts_ms,
            "received_ts_ms": _ms(e.received_ns),
            "source": e.source,
        }

    return row
