"""Private account data: executions, orders, positions and the wallet.

Each record also keeps ``raw``, the item exactly as Bybit sent it, so a field the
typed columns do not hold is never lost.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from bybit_records.enums import Category, DataSource
from bybit_records.record import Record, Wire


class Execution(Record, frozen=True, gc=False):
    """One fill (or funding, settlement ...) of one of the account's orders."""

    natural_key: ClassVar[tuple[str, ...] | None] = ("exec_id",)

    category: Category
    symbol: Annotated[str, Wire("symbol")]
    exec_id: Annotated[str, Wire("execId")]
    order_id: Annotated[str, Wire("orderId")]
    order_link_id: Annotated[str | None, Wire("orderLinkId")]
    side: Annotated[str, Wire("side")]
    order_type: Annotated[str | None, Wire("orderType")]
    exec_type: Annotated[str | None, Wire("execType")]
    exec_price: Annotated[str, Wire("execPrice")]
    exec_qty: Annotated[str, Wire("execQty")]
    exec_value: Annotated[str | None, Wire("execValue")]
    exec_fee: Annotated[str | None, Wire("execFee")]
    fee_rate: Annotated[str | None, Wire("feeRate")]
    closed_size: Annotated[str | None, Wire("closedSize")]
    exec_pnl: Annotated[str | None, Wire("execPnl")]
    is_maker: Annotated[bool | None, Wire("isMaker")]
    exec_time_ms: Annotated[int, Wire("execTime")]
    seq: Annotated[int | None, Wire("seq")]
    raw: dict[str, Any]
    #: the frame's ``creationTime``; None for REST rows
    exchange_ts_ms: int | None
    received_ts_ms: int
    source: DataSource = DataSource.WS


class Order(Record, frozen=True, gc=False):
    """One state of one of the account's orders; a REST re-read of a state is a duplicate."""

    natural_key: ClassVar[tuple[str, ...] | None] = ("order_id", "updated_time_ms", "order_status")

    category: Category
    symbol: Annotated[str, Wire("symbol")]
    order_id: Annotated[str, Wire("orderId")]
    order_link_id: Annotated[str | None, Wire("orderLinkId")]
    side: Annotated[str | None, Wire("side")]
    order_type: Annotated[str | None, Wire("orderType")]
    price: Annotated[str | None, Wire("price")]
    qty: Annotated[str | None, Wire("qty")]
    order_status: Annotated[str, Wire("orderStatus")]
    avg_price: Annotated[str | None, Wire("avgPrice")]
    leaves_qty: Annotated[str | None, Wire("leavesQty")]
    cum_exec_qty: Annotated[str | None, Wire("cumExecQty")]
    cum_exec_value: Annotated[str | None, Wire("cumExecValue")]
    cum_exec_fee: Annotated[str | None, Wire("cumExecFee")]
    time_in_force: Annotated[str | None, Wire("timeInForce")]
    reduce_only: Annotated[bool | None, Wire("reduceOnly")]
    created_time_ms: Annotated[int | None, Wire("createdTime")]
    updated_time_ms: Annotated[int, Wire("updatedTime")]
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ts_ms: int
    source: DataSource = DataSource.WS


class Position(Record, frozen=True, gc=False):
    """One state of one of the account's positions (every state is kept)."""

    category: Category
    symbol: Annotated[str, Wire("symbol")]
    side: Annotated[str | None, Wire("side")]
    size: Annotated[str | None, Wire("size")]
    position_idx: Annotated[int | None, Wire("positionIdx")]
    entry_price: Annotated[str | None, Wire("entryPrice", fallback="avgPrice")]
    mark_price: Annotated[str | None, Wire("markPrice")]
    position_value: Annotated[str | None, Wire("positionValue")]
    unrealised_pnl: Annotated[str | None, Wire("unrealisedPnl")]
    cum_realised_pnl: Annotated[str | None, Wire("cumRealisedPnl")]
    leverage: Annotated[str | None, Wire("leverage")]
    liq_price: Annotated[str | None, Wire("liqPrice")]
    updated_time_ms: Annotated[int | None, Wire("updatedTime")]
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ts_ms: int
    source: DataSource = DataSource.WS


class Wallet(Record, frozen=True, gc=False):
    """One state of the account's wallet, every coin included (every state is kept)."""

    account_type: Annotated[str | None, Wire("accountType")]
    total_equity: Annotated[str | None, Wire("totalEquity")]
    total_wallet_balance: Annotated[str | None, Wire("totalWalletBalance")]
    total_available_balance: Annotated[str | None, Wire("totalAvailableBalance")]
    total_margin_balance: Annotated[str | None, Wire("totalMarginBalance")]
    coins: Annotated[list[dict[str, Any]], Wire("coin")]
    raw: dict[str, Any]
    exchange_ts_ms: int | None
    received_ts_ms: int
    source: DataSource = DataSource.WS


#: the records of the private stream, one per topic
PrivateRecord = Execution | Order | Position | Wallet
