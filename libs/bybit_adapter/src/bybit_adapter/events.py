"""Typed events produced by the normalizer.

Prices, sizes and values are the exchange's decimal strings, never floats.
Every event carries the exchange timestamp (ms) and the local receive time
(``received_ns``, ``time.time_ns()`` when the frame arrived).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Source = Literal["ws", "rest"]


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """One public trade (``publicTrade`` item or REST ``recent-trade`` row)."""

    category: str
    symbol: str
    trade_id: str
    trade_time_ms: int
    side: str
    price: str
    size: str
    tick_direction: str | None
    is_block_trade: bool
    is_rpi: bool | None
    seq: int | None
    exchange_ts_ms: int
    received_ns: int
    source: Source = "ws"


class TickerEvent(msgspec.Struct, frozen=True):
    """The complete ticker state after applying one snapshot or delta frame."""

    category: str
    symbol: str
    frame_type: str
    exchange_ts_ms: int
    received_ns: int
    cross_seq: int | None
    state: dict[str, Any]


class ExecutionEvent(msgspec.Struct, frozen=True):
    """One private execution (fill, funding, settlement ...)."""

    category: str
    symbol: str
    exec_id: str
    order_id: str | None
    order_link_id: str | None
    side: str | None
    order_type: str | None
    exec_type: str | None
    exec_price: str | None
    exec_qty: str | None
    exec_value: str | None
    exec_fee: str | None
    fee_rate: str | None
    closed_size: str | None
    exec_pnl: str | None
    is_maker: bool | None
    exec_time_ms: int
    seq: int | None
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ns: int
    source: Source = "ws"


class OrderEvent(msgspec.Struct, frozen=True):
    """One order update."""

    category: str
    symbol: str
    order_id: str
    order_link_id: str | None
    side: str | None
    order_type: str | None
    price: str | None
    qty: str | None
    order_status: str
    avg_price: str | None
    leaves_qty: str | None
    cum_exec_qty: str | None
    cum_exec_value: str | None
    cum_exec_fee: str | None
    time_in_force: str | None
    reduce_only: bool | None
    created_time_ms: int | None
    updated_time_ms: int
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ns: int
    source: Source = "ws"


class PositionEvent(msgspec.Struct, frozen=True):
    """One position state."""

    category: str
    symbol: str
    side: str | None
    size: str | None
    position_idx: int | None
    entry_price: str | None
    mark_price: str | None
    position_value: str | None
    unrealised_pnl: str | None
    cum_realised_pnl: str | None
    leverage: str | None
    liq_price: str | None
    updated_time_ms: int | None
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ns: int
    source: Source = "ws"


class WalletEvent(msgspec.Struct, frozen=True):
    """One account wallet state (all coins)."""

    account_type: str | None
    total_equity: str | None
    total_wallet_balance: str | None
    total_available_balance: str | None
    total_margin_balance: str | None
    coins: list[dict[str, Any]]
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ns: int
    source: Source = "ws"


PrivateEvent = ExecutionEvent | OrderEvent | PositionEvent | WalletEvent
PublicEvent = TradeEvent | TickerEvent
