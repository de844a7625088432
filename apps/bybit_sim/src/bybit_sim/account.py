"""Private account activity: orders, executions, positions and wallet of one UNIFIED account.

From ``start()`` the account produces executions at ``private_rate`` per second whether or
not anyone is connected. A step either opens an order (``New``; market orders fill at once)
or fills the next part of a resting limit order (1..3 parts), or occasionally cancels one
without fills. Every fill pushes ``execution`` (+ ``execution.fast``), ``order``, ``position``
and ``wallet`` messages to authenticated private connections subscribed to those topics,
and is recorded in ground truth for ``/v5/execution/list``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_sim.codec import dumps, now_ms
from bybit_sim.connection import ConnectionRegistry
from bybit_sim.ids import order_uuid
from bybit_sim.instruments import InstrumentSpec, fmt, parse_symbol
from bybit_sim.market import MarketHub
from bybit_sim.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_TAKER_FEE = Decimal("0.00055")
_MAKER_FEE = Decimal("0.0002")
_ZERO = Decimal(0)
_START_BALANCE = Decimal("100000")


def dec(value: Decimal, places: int = 8) -> str:
    """Decimal -> plain string without exponent or trailing zeros (``"26.3725275"``)."""
    q = value.quantize(Decimal(1).scaleb(-places))
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(slots=True)
class _Position:
    size: Decimal = _ZERO  # signed: >0 long, <0 short
    entry: Decimal = _ZERO
    cum_realised: Decimal = _ZERO
    cur_realised: Decimal = _ZERO
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = -1


@dataclass(slots=True)
class _Working:
    spec: InstrumentSpec
    order: dict[str, Any]
    parts: list[int] = field(default_factory=list)
    fills: int = 0


class Account:
    """State and generator of the simulated account (all API keys share it)."""

    def __init__(self, hub: MarketHub, registry: ConnectionRegistry) -> None:
        self.hub = hub
        self.registry = registry
        # the simulator's config, ground truth and seed, as its markets have them
        self.cfg = hub.cfg
        self.truth = hub.truth
        self.rng = hub.rng_for("account")
        self.specs: list[InstrumentSpec] = []
        for category, symbol in self.cfg.private_symbols:
            spec = parse_symbol(category, symbol, frozenset())
            if spec is None or category == "option":
                log.warning("private symbol %s/%s not supported; ignored", category, symbol)
            else:
                self.specs.append(spec)
        self.orders: dict[str, dict[str, Any]] = {}  # orderId -> latest state (WS shape)
        self.order_ids: list[str] = []  # creation order
        self.positions: dict[tuple[str, str], _Position] = {}
        self.balance = _START_BALANCE
        self.cum_realised = _ZERO
        self._working: list[_Working] = []
        self._prices: dict[tuple[str, str], int] = {
            (s.category, s.symbol): s.start_price for s in self.specs
        }
        self._seq = self.rng.randint(100_000_000_000, 140_000_000_000)
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.cfg.private_rate <= 0 or not self.cfg.api_keys or not self.specs:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="account")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(self.cfg.private_rate))
            try:
                self.step()
            except Exception:
                log.exception("account step failed")

    # -- generation ---------------------------------------------------------------------
    def step(self) -> None:
        """One unit of activity (usually exactly one execution)."""
        if self._working and self.rng.random() < 0.6:
            work = self.rng.choice(self._working)
            if work.fills == 0 and self.rng.random() < 0.08:
                self._cancel(work)
                self.step()  # a cancel is not an execution: keep the execution rate
            else:
                self._fill(work)
            return
        work = self._open_order(self.rng.choice(self.specs))
        if work.order["orderType"] == "Market":
            self._fill(work)

    def _price(self, spec: InstrumentSpec) -> int:
        market = self.hub.market(spec.category, spec.symbol)
        price = market.last_price(spec.symbol) if market is not None else None
        key = (spec.category, spec.symbol)
        if price is None:
            price = self._prices[key]
            move = spec.tick * self.rng.randint(-3, 3)
            bias = spec.tick if price < spec.start_price * 0.9 else 0
            price = max(spec.tick, price + move + bias)
        self._prices[key] = price
        return price

    def _next_seq(self) -> int:
        self._seq += self.rng.randint(1, 500)
        return self._seq

    def _open_order(self, spec: InstrumentSpec) -> _Working:
        now = now_ms()
        pos = self.positions.get((spec.category, spec.symbol))
        side = "Buy" if self.rng.random() < 0.5 else "Sell"
        if pos is not None and abs(pos.size) > Decimal(spec.typical_qty * 5).scaleb(
            -spec.qty_scale
        ):
            side = "Sell" if pos.size > 0 else "Buy"  # keep positions bounded
        qty = max(
            spec.min_qty,
            round(spec.typical_qty * self.rng.uniform(0.2, 3) / spec.qty_step) * spec.qty_step,
        )
        market_order = self.rng.random() < 0.5
        last = self._price(spec)
        offset = spec.tick * self.rng.randint(0, 5)
        price = last if market_order else (last - offset if side == "Buy" else last + offset)
        price = max(spec.tick, price)
        n_parts = 1 if market_order else self.rng.randint(1, 3)
        parts = self._split(qty, n_parts, spec.qty_step)
        order_id = order_uuid(self.rng)
        ps, qs = spec.price_scale, spec.qty_scale
        price_txt, qty_txt = fmt(price, ps), fmt(qty, qs)
        order: dict[str, Any] = {
            "category": spec.category,
            "symbol": spec.symbol,
            "orderId": order_id,
            "orderLinkId": f"sim-{order_id[:8]}",
            "isLeverage": "0" if spec.category == "spot" else "",
            "blockTradeId": "",
            "side": side,
            "positionIdx": 0,
            "orderStatus": "New",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "timeInForce": "IOC" if market_order else "GTC",
            "price": price_txt,
            "qty": qty_txt,
            "avgPrice": "",
            "leavesQty": qty_txt,
            "leavesValue": dec(Decimal(price_txt) * Decimal(qty_txt)),
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "orderType": "Market" if market_order else "Limit",
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "triggerBy": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "placeType": "",
            "lastPriceOnCreated": fmt(last, ps),
            "closeOnTrigger": False,
            "reduceOnly": False,
            "smpGroup": 0,
            "smpType": "None",
            "smpOrderId": "",
            "slLimitPrice": "0",
            "tpLimitPrice": "0",
            "tpslMode": "UNKNOWN",
            "createType": "CreateByUser",
            "marketUnit": "",
            "createdTime": str(now),
            "updatedTime": str(now),
            "feeCurrency": "",
            "closedPnl": "0",
            "slippageTolerance": "0",
            "slippageToleranceType": "UNKNOWN",
            "cumFeeDetail": {},
            "parentOrderLinkId": "",
            "brokerOrderPrice": "",
            "ocoTriggerBy": "",
            "rpiTakerAccess": False,
        }
        if spec.category == "spot":
            order["createType"] = ""
        work = _Working(spec, order, parts)
        self.orders[order_id] = order
        self.order_ids.append(order_id)
        self._working.append(work)
        self._publish("order", spec.category, [dict(order)])
        return work

    def _split(self, qty: int, n: int, step: int) -> list[int]:
        units = qty // step
        if n <= 1 or units < n:
            return [qty]
        cuts = sorted(self.rng.sample(range(1, units), n - 1))
        bounds = [0, *cuts, units]
        return [(b - a) * step for a, b in itertools.pairwise(bounds)]

    def _cancel(self, work: _Working) -> None:
        order = dict(work.order)
        order.update(
            orderStatus="Cancelled",
            cancelType="CancelByUser",
            leavesQty="0",
            leavesValue="0",
            updatedTime=str(now_ms()),
        )
        work.order = order
        self.orders[order["orderId"]] = order
        self._working.remove(work)
        self._publish("order", work.spec.category, [dict(order)])

    def _fill(self, work: _Working) -> None:
        spec, order = work.spec, work.order
        now = now_ms()
        ps, qs = spec.price_scale, spec.qty_scale
        qty_units = work.parts.pop(0)
        work.fills += 1
        is_maker = order["orderType"] == "Limit"
        price_units = _to_units(order["price"], ps) if is_maker else self._price(spec)
        price = Decimal(fmt(price_units, ps))
        qty = Decimal(fmt(qty_units, qs))
        value = price * qty
        fee_rate = _MAKER_FEE if is_maker else _TAKER_FEE
        fee = value * fee_rate
        side = order["side"]
        closed, pnl = self._apply_position(spec, side, qty, price, now)
        seq = self._next_seq()
        self.balance += pnl - fee
        self.cum_realised += pnl - fee
        cum_qty = Decimal(order["cumExecQty"]) + qty
        cum_value = Decimal(order["cumExecValue"]) + value
        cum_fee = Decimal(order["cumExecFee"]) + fee
        leaves = Decimal(order["qty"]) - cum_qty
        fee_coin = spec.base if spec.category == "spot" and side == "Buy" else "USDT"
        execution: dict[str, Any] = {
            "category": spec.category,
            "symbol": spec.symbol,
            "closedSize": dec(closed),
            "execFee": dec(fee),
            "execId": order_uuid(self.rng),
            "execPrice": fmt(price_units, ps),
            "execQty": fmt(qty_units, qs),
            "execType": "Trade",
            "execValue": dec(value),
            "feeRate": dec(fee_rate),
            "tradeIv": "",
            "markIv": "",
            "blockTradeId": "",
            "markPrice": fmt(price_units, ps),
            "indexPrice": "",
            "underlyingPrice": "",
            "leavesQty": dec(leaves),
            "orderId": order["orderId"],
            "orderLinkId": order["orderLinkId"],
            "orderPrice": order["price"],
            "orderQty": order["qty"],
            "orderType": order["orderType"],
            "stopOrderType": "UNKNOWN",
            "side": side,
            "execTime": str(now),
            "isLeverage": "0",
            "isMaker": is_maker,
            "seq": seq,
            "marketUnit": "",
            "execPnl": dec(pnl),
            "createType": "CreateByUser",
            "extraFees": "",
            "feeCurrency": fee_coin,
        }
        if spec.category == "spot":
            del execution["createType"]
        self.truth.add_execution(execution)
        self._publish("execution", spec.category, [dict(execution)])
        self._publish(
            "execution.fast",
            spec.category,
            [
                {
                    "category": spec.category,
                    "symbol": spec.symbol,
                    "execId": execution["execId"],
                    "execPrice": execution["execPrice"],
                    "execQty": execution["execQty"],
                    "orderId": order["orderId"],
                    "isMaker": is_maker,
                    "orderLinkId": order["orderLinkId"],
                    "side": side,
                    "execTime": str(now),
                    "seq": seq,
                }
            ],
        )
        order = dict(order)
        order.update(
            orderStatus="Filled" if leaves <= 0 else "PartiallyFilled",
            avgPrice=dec(cum_value / cum_qty),
            leavesQty=dec(leaves),
            leavesValue=dec(leaves * Decimal(order["price"])),
            cumExecQty=dec(cum_qty),
            cumExecValue=dec(cum_value),
            cumExecFee=dec(cum_fee),
            cumFeeDetail={fee_coin: dec(cum_fee)},
            feeCurrency=fee_coin if spec.category == "spot" else "",
            closedPnl=dec(Decimal(order["closedPnl"]) + pnl),
            updatedTime=str(now),
        )
        work.order = order
        self.orders[order["orderId"]] = order
        if leaves <= 0:
            self._working.remove(work)
        self._publish("order", spec.category, [dict(order)])
        if spec.category != "spot":
            self._publish("position", spec.category, [self.position_item(spec)])
        self._publish("wallet", None, [self.wallet_item()])

    def _apply_position(
        self, spec: InstrumentSpec, side: str, qty: Decimal, price: Decimal, now: int
    ) -> tuple[Decimal, Decimal]:
        """Update the position; return (closed size, realised PnL before fees)."""
        if spec.category == "spot":
            return _ZERO, _ZERO
        pos = self.positions.setdefault((spec.category, spec.symbol), _Position(created_ms=now))
        signed = qty if side == "Buy" else -qty
        closed = _ZERO
        pnl = _ZERO
        if pos.size != 0 and (pos.size > 0) != (signed > 0):
            closed = min(abs(pos.size), qty)
            direction = 1 if pos.size > 0 else -1
            pnl = (price - pos.entry) * closed * direction
            remaining = abs(pos.size) - closed
            if remaining == 0 and qty > closed:  # flipped
                pos.entry = price
            pos.size += signed
            if pos.size == 0:
                pos.entry = _ZERO
        else:
            total = abs(pos.size) + qty
            pos.entry = (pos.entry * abs(pos.size) + price * qty) / total
            pos.size += signed
        pos.cum_realised += pnl
        pos.cur_realised += pnl
        pos.updated_ms = now
        pos.seq = self._seq
        return closed, pnl

    # -- views (WS and REST shapes) ---------------------------------------------------------
    def mark_price(self, spec: InstrumentSpec) -> int:
        market = self.hub.market(spec.category, spec.symbol)
        price = market.last_price(spec.symbol) if market is not None else None
        return price if price is not None else self._prices[(spec.category, spec.symbol)]

    def position_item(self, spec: InstrumentSpec) -> dict[str, Any]:
        pos = self.positions.get((spec.category, spec.symbol)) or _Position()
        ps = spec.price_scale
        mark = Decimal(fmt(self.mark_price(spec), ps))
        size = abs(pos.size)
        value = size * pos.entry
        upl = (mark - pos.entry) * pos.size if pos.size else _ZERO
        im = value / 10
        return {
            "positionIdx": 0,
            "tradeMode": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": spec.symbol,
            "side": "" if pos.size == 0 else ("Buy" if pos.size > 0 else "Sell"),
            "size": dec(size),
            "entryPrice": dec(pos.entry, ps + 2),
            "sessionAvgPrice": "",
            "leverage": "10",
            "positionValue": dec(value),
            "positionBalance": dec(im),
            "markPrice": fmt(self.mark_price(spec), ps),
            "positionIM": dec(im),
            "positionIMByMp": dec(im),
            "positionMM": dec(value * Decimal("0.005")),
            "positionMMByMp": dec(value * Decimal("0.005")),
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": dec(upl),
            "cumRealisedPnl": dec(pos.cum_realised),
            "curRealisedPnl": dec(pos.cur_realised),
            "createdTime": str(pos.created_ms or now_ms()),
            "updatedTime": str(pos.updated_ms or now_ms()),
            "tpslMode": "Full",
            "liqPrice": ""
            if pos.size == 0
            else dec(pos.entry * (Decimal("0.9") if pos.size > 0 else Decimal("1.1")), ps),
            "bustPrice": "",
            "category": spec.category,
            "positionStatus": "Normal",
            "adlRankIndicator": 0 if pos.size == 0 else 2,
            "autoAddMargin": 0,
            "leverageSysUpdatedTime": "",
            "mmrSysUpdatedTime": "",
            "seq": pos.seq,
            "isReduceOnly": False,
            "breakEvenPrice": dec(pos.entry, ps + 2),
        }

    def wallet_item(self) -> dict[str, Any]:
        upl = _ZERO
        im = _ZERO
        for spec in self.specs:
            if spec.category == "spot":
                continue
            item = self.position_item(spec)
            upl += Decimal(item["unrealisedPnl"])
            im += Decimal(item["positionIM"])
        equity = self.balance + upl
        mm = im * Decimal("0.05")
        im_rate = dec(im / equity if equity else _ZERO, 4)
        mm_rate = dec(mm / equity if equity else _ZERO, 4)
        return {
            "accountIMRate": im_rate,
            "accountIMRateByMp": im_rate,
            "accountMMRate": mm_rate,
            "accountMMRateByMp": mm_rate,
            "totalEquity": dec(equity),
            "totalWalletBalance": dec(self.balance),
            "totalMarginBalance": dec(equity),
            "totalAvailableBalance": dec(equity - im),
            "totalPerpUPL": dec(upl),
            "totalInitialMargin": dec(im),
            "totalInitialMarginByMp": dec(im),
            "totalMaintenanceMargin": dec(mm),
            "totalMaintenanceMarginByMp": dec(mm),
            "coin": [
                {
                    "coin": "USDT",
                    "equity": dec(equity),
                    "usdValue": dec(equity),
                    "walletBalance": dec(self.balance),
                    "availableToWithdraw": "",
                    "availableToBorrow": "",
                    "borrowAmount": "0",
                    "accruedInterest": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": dec(im),
                    "totalPositionMM": dec(mm),
                    "unrealisedPnl": dec(upl),
                    "cumRealisedPnl": dec(self.cum_realised),
                    "bonus": "0",
                    "collateralSwitch": True,
                    "marginCollateral": True,
                    "locked": "0",
                    "spotHedgingQty": "0",
                    "spotBorrow": "0",
                }
            ],
            "accountLTV": "0",
            "accountType": "UNIFIED",
        }

    def spec_for(self, category: str, symbol: str) -> InstrumentSpec | None:
        for spec in self.specs:
            if spec.category == category and spec.symbol == symbol:
                return spec
        return None

    # -- publishing ---------------------------------------------------------------------
    def _frame_id(self, topic: str, items: list[dict[str, Any]]) -> str:
        if topic == "execution" and items:
            return f"{self.cfg.account_uid}_{items[0]['symbol']}_{items[0]['seq']}"
        return f"{self.cfg.account_uid}{order_uuid(self.rng)}"

    def _publish(self, topic: str, category: str | None, items: list[dict[str, Any]]) -> None:
        """Send to every authenticated private connection subscribed to the topic.

        A connection subscribed to the categorised name (``order.linear``) gets frames whose
        ``topic`` is that name; the all-in-one name gets the plain topic.
        """
        names = [topic] if category is None else [topic, f"{topic}.{category}"]
        created = now_ms()
        frame_id = self._frame_id(topic, items)
        encoded: dict[str, bytes] = {}
        for conn in self.registry.private():
            if conn.api_key is None:
                continue
            for name in names:
                if name in conn.topics:
                    data = encoded.get(name)
                    if data is None:
                        data = encoded[name] = dumps(_private_frame(name, frame_id, created, items))
                    conn.send(data, name)


def _private_frame(
    topic: str, frame_id: str, created: int, items: list[dict[str, Any]]
) -> dict[str, Any]:
    if topic.startswith("execution.fast"):
        return {"topic": topic, "creationTime": created, "data": items}
    if topic.startswith("execution"):
        return {"topic": topic, "id": frame_id, "creationTime": created, "data": items}
    return {"id": frame_id, "topic": topic, "creationTime": created, "data": items}


def _to_units(text: str, scale: int) -> int:
    return int(Decimal(text).scaleb(scale).to_integral_value())
