"""Market-data generators and the subscription hub.

One asyncio task per market (a spot/linear/inverse symbol, or an option base coin) drives
trades, tickers and order books on a single schedule (each order-book stream on its own
push interval, only while it has subscribers; see orderbook.py). Markets run from their first
subscription (or from ``start()`` when pre-started) until the simulator stops, whether or not
anyone is connected: every trade goes to ground truth and to the REST recent-trade window,
and is published to the connections subscribed at that moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bybit_sim.codec import dumps, now_ms
from bybit_sim.config import SimulatorConfig
from bybit_sim.connection import WsConnection
from bybit_sim.frames import MAX_TRADES_PER_FRAME, ticker_frame, trade_frame, trade_item
from bybit_sim.ids import trade_uuid
from bybit_sim.instruments import (
    InstrumentSpec,
    base_usd_price,
    default_option_contracts,
    fmt,
    fmt_float,
    parse_option_contract,
    parse_symbol,
)
from bybit_sim.orderbook import BookStream, FullBook, poisson
from bybit_sim.replay import ReplayScript
from bybit_sim.tasks import cancel_and_wait
from bybit_sim.topics import BOOK_PUSH_MS, PublicTopic
from bybit_sim.truth import GroundTruth, TruthTrade

log = logging.getLogger(__name__)

_SEQ_START = {
    "linear": 457514743450,
    "inverse": 20856433603,
    "spot": 111156121170,
    "option": 3414637898,
}
_EIGHT_HOURS_MS = 8 * 3600 * 1000
_EMPTY: frozenset[WsConnection] = frozenset()


def _to_units(text: str, scale: int) -> int:
    return int(Decimal(text).scaleb(scale).to_integral_value())


def _rate(value: float) -> str:
    """Funding-rate style string: ``0.0001``, ``-0.000212``."""
    text = f"{value:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(4, '0')}" if whole not in ("", "-") else text


def _next_funding_ms(now: int) -> int:
    return (now // _EIGHT_HOURS_MS + 1) * _EIGHT_HOURS_MS


def _wake_up(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _tick_direction(prev: int | None, price: int, last_dir: str) -> str:
    if prev is None or price == prev:
        return "ZeroPlusTick" if last_dir in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"
    return "PlusTick" if price > prev else "MinusTick"


class MarketBase:
    """Scheduling and publishing shared by every market kind."""

    def __init__(
        self,
        hub: MarketHub,
        category: str,
        key: str,
        rng: random.Random,
        script: ReplayScript | None,
    ) -> None:
        self.hub = hub
        self.category = category
        self.key = key
        self.rng = rng
        self.script = script
        window = hub.cfg.recent_trade_max
        if category == "spot":
            window = min(window, hub.cfg.recent_trade_max_spot)
        self.recent: deque[TruthTrade] = deque(maxlen=max(1, window))
        self.books: dict[tuple[str, int], BookStream] = {}  # (symbol, depth) -> stream
        self.full_books: dict[str, FullBook] = {}  # symbol -> the engine's full book
        self._task: asyncio.Task[None] | None = None
        self._sleeping: asyncio.Future[None] | None = None
        self._frame_counter = rng.randint(3_000_000_000, 3_400_000_000)
        self._script_pos = 0
        self._script_delays = script.delays_ms() if script else []
        self._last_trade_ms = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"market-{self.category}-{self.key}"
            )

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    # -- schedule -----------------------------------------------------------------------
    def _trades_enabled(self) -> bool:
        return self.script is not None or self.hub.cfg.trade_rate > 0

    def _low_mean(self) -> float:
        """Mean of the small-burst law: 1 trade (p=0.6) or uniform 2..burst_max."""
        k = max(1, self.hub.cfg.burst_max)
        return 1.0 if k == 1 else 0.6 + 0.4 * (2 + k) / 2

    def _mean_burst(self) -> float:
        cfg = self.hub.cfg
        return max(self._low_mean(), cfg.trade_rate / max(1.0, cfg.max_frame_rate))

    def _burst_size(self) -> int:
        mean, low = self._mean_burst(), self._low_mean()
        if mean > low:  # high rate: batch many trades per frame
            return 1 + poisson(self.rng, mean - 1)
        k = max(1, self.hub.cfg.burst_max)
        if k == 1 or self.rng.random() < 0.6:
            return 1
        return self.rng.randint(2, k)

    def _next_trade_delay(self) -> float:
        if self.script is not None and self._script_delays:
            return self._script_delays[self._script_pos % len(self._script_delays)] / 1000
        frame_rate = self.hub.cfg.trade_rate / self._mean_burst()
        return self.rng.expovariate(frame_rate)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.hub.cfg
        now = loop.time()
        next_trade = now + self._next_trade_delay() if self._trades_enabled() else math.inf
        next_tick = now + cfg.ticker_interval_s
        while True:
            now = loop.time()
            wake = min(next_trade, next_tick, self._next_book_push())
            if wake > now:
                await self._sleep_until(loop, wake)
                now = loop.time()
            if now >= next_trade:
                self._guard(self._emit_trades)
                next_trade += self._next_trade_delay()
                if next_trade < now - 1.0:  # fell far behind (e.g. loop blocked): skip ahead
                    next_trade = now
            if now >= next_tick:
                self._guard(self._tick)
                next_tick += cfg.ticker_interval_s
                if next_tick <= now:
                    next_tick = now + cfg.ticker_interval_s
            if self.books:
                self._guard(self._book_tick)

    async def _sleep_until(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Sleep until loop time ``when``, or until :meth:`poke` (a new book stream)."""
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_at(when, _wake_up, fut)
        self._sleeping = fut
        try:
            await fut
        finally:
            handle.cancel()
            self._sleeping = None

    def poke(self) -> None:
        """Wake the schedule now (its next deadline may have moved earlier)."""
        if self._sleeping is not None:
            _wake_up(self._sleeping)

    def _guard(self, step: Any) -> None:
        try:
            step()
        except Exception:
            log.exception("market %s/%s step failed", self.category, self.key)

    # -- trades -------------------------------------------------------------------------
    def _trade_times(self, n: int, ts: int) -> list[int]:
        """Fill times: a small burst shares one ``T``; big batches spread since last frame."""
        last = max(self._last_trade_ms, ts - 1000)
        if n <= max(1, self.hub.cfg.burst_max) or ts - last <= 1:
            t = max(last, ts - self.rng.randint(0, 2))
            times = [t] * n
        else:
            span = ts - last
            times = [max(last, last + (i + 1) * span // n) for i in range(n)]
        self._last_trade_ms = times[-1]
        return times

    def _emit_trades(self) -> None:
        ts = now_ms()
        if self.script is not None:
            frame = self.script.frames[self._script_pos % len(self.script.frames)]
            self._script_pos += 1
            trades = self._replay_trades(frame.trades, ts)
        else:
            trades = self._generate(self._burst_size(), ts)
        if not trades:
            return
        self.record_trades(trades)
        topic = f"publicTrade.{self.key}"
        subs = self.hub.subscribers(self.category, topic)
        if not subs:
            return
        for start in range(0, len(trades), MAX_TRADES_PER_FRAME):
            self.hub.publish_encoded(
                subs,
                self.encode_trade_frame(trades[start : start + MAX_TRADES_PER_FRAME], ts),
                topic,
            )

    def make_trades(self, n: int, ts: int) -> list[TruthTrade]:
        """``n`` new trades printed at ``ts``: neither recorded nor published yet."""
        return self._generate(n, ts)

    def record_trades(self, trades: list[TruthTrade]) -> None:
        """Trades are printed: into ground truth and the REST recent-trade window."""
        self.hub.truth.add_trades(self.category, self.key, trades)
        self.recent.extend(trades)

    def encode_trade_frame(self, trades: list[TruthTrade], ts: int) -> bytes:
        """One ``publicTrade`` frame (at most ``MAX_TRADES_PER_FRAME`` trades), encoded."""
        topic = f"publicTrade.{self.key}"
        items = [trade_item(self.category, t) for t in trades]
        return dumps(trade_frame(self.category, topic, ts, items, self._frame_id(topic, ts)))

    def _frame_id(self, topic: str, ts: int) -> str | None:
        if self.category != "option":
            return None
        self._frame_counter += self.rng.randint(1, 40)
        return f"{topic}-{self._frame_counter}-{ts}"

    def _generate(self, n: int, ts: int) -> list[TruthTrade]:
        raise NotImplementedError

    def _replay_trades(self, trades: Iterable[Any], ts: int) -> list[TruthTrade]:
        raise NotImplementedError

    # -- tickers / books ----------------------------------------------------------------
    def _tick(self) -> None:
        raise NotImplementedError

    def initial_frames(self, topic: PublicTopic) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _top_of_book(self, symbol: str) -> tuple[int, int]:
        raise NotImplementedError

    def book_spec(self, symbol: str) -> InstrumentSpec | None:
        """The spec an order book of ``symbol`` is built on (None: not in this market)."""
        raise NotImplementedError

    def full_book(self, symbol: str) -> FullBook | None:
        """The engine's full book of ``symbol`` (created on first use)."""
        found = self.full_books.get(symbol)
        if found is not None:
            return found
        spec = self.book_spec(symbol)
        if spec is None:
            return None
        hub = self.hub
        found = FullBook(
            spec,
            hub.rng_for(self.category, symbol, "book"),
            lambda: self._top_of_book(symbol),
            lambda: hub.next_seq(self.category),
            hub.cfg.book_update_rate,
        )
        self.full_books[symbol] = found
        return found

    def book(self, symbol: str, depth: int) -> BookStream | None:
        """The ``orderbook.{depth}.{symbol}`` stream (created, not started, on first use)."""
        stream = self.books.get((symbol, depth))
        if stream is not None:
            return stream
        full = self.full_book(symbol)
        if full is None:
            return None
        cfg, spec = self.hub.cfg, full.spec
        stream = BookStream(
            full,
            depth,
            BOOK_PUSH_MS[self.category][depth] / 1000 * cfg.book_interval_scale,
            self.hub.rng_for(self.category, symbol, str(depth), "stream"),
            self.hub.truth.book_history(
                self.category, symbol, depth, spec.price_scale, spec.qty_scale
            ),
            round(cfg.book_depth1_resend_s * 1000),
        )
        self.books[(symbol, depth)] = stream
        return stream

    def _book_snapshot(self, topic: PublicTopic) -> list[dict[str, Any]]:
        """A subscriber's first frame: start the stream if idle, send its state."""
        stream = self.book(topic.symbol, topic.depth)
        if stream is None:
            return []
        if not stream.active:
            loop_now = asyncio.get_running_loop().time()
            ts = now_ms()
            if not stream.full.streams:  # the book was idle: catch up with the market
                stream.full.step(loop_now, ts)
            stream.activate(loop_now, ts)
            self.poke()
        ts = now_ms()
        frame = stream.snapshot_frame(ts)
        if self.category == "option":
            frame["id"] = self._frame_id(stream.topic, ts) or ""
        return [frame]

    def _next_book_push(self) -> float:
        if not self.books:
            return math.inf
        return min((s.next_push for s in self.books.values() if s.active), default=math.inf)

    def _book_tick(self) -> None:
        """Push every book stream that is due (stepping each engine book once)."""
        now = asyncio.get_running_loop().time()
        ts = 0
        for stream in self.books.values():
            if not stream.active or stream.next_push > now:
                continue
            stream.next_push += stream.interval_s
            if stream.next_push <= now:
                stream.next_push = now + stream.interval_s
            subs = self.hub.subscribers(self.category, stream.topic)
            if not subs:
                stream.deactivate()  # nobody listens: stop computing it
                continue
            if not ts:
                ts = now_ms()
            if stream.full.last_step != now:
                stream.full.step(now, ts)
            frame = stream.push(ts)
            if frame is None:
                continue
            if self.category == "option":
                frame["id"] = self._frame_id(stream.topic, ts) or ""
            self.hub.publish(subs, frame)

    def rest_book(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """The ``GET /v5/market/orderbook`` result for ``symbol`` (None: unknown)."""
        full = self.full_book(symbol)
        if full is None:
            return None
        ts = now_ms()
        if not full.streams:  # nobody drives this book: bring it up to date now
            full.step(asyncio.get_running_loop().time(), ts)
        return full.rest_result(symbol, limit, ts)

    def trades_for(self, symbol: str | None) -> list[TruthTrade]:
        """The REST recent-trade window, oldest first (optionally one option contract)."""
        if symbol is None or symbol == self.key:
            return list(self.recent)
        return [t for t in self.recent if t.symbol == symbol]

    def last_price(self, symbol: str) -> int | None:
        raise NotImplementedError


class SymbolMarket(MarketBase):
    """A spot, linear or inverse symbol."""

    def __init__(
        self,
        hub: MarketHub,
        spec: InstrumentSpec,
        rng: random.Random,
        script: ReplayScript | None = None,
    ) -> None:
        if script is not None:
            pscale, qscale = script.decimals()
            first = script.frames[0].trades[0]
            start = _to_units(first.price, pscale)
            spec = replace(
                spec,
                price_scale=pscale,
                tick=1,
                qty_scale=qscale,
                qty_step=1,
                min_qty=1,
                start_price=start,
                typical_qty=max(1, _to_units(first.size, qscale)),
            )
        super().__init__(hub, spec.category, spec.symbol, rng, script)
        self.spec = spec
        tick = spec.tick
        self.spread = tick
        self.bid = spec.start_price
        self.ask = self.bid + self.spread
        self.last = self.bid
        self.prev: int | None = None
        self.last_dir = "ZeroPlusTick"
        self._spot_id = 2290000000050703789 + rng.randint(0, 10**9) * 1000

        def near_start(spread: float) -> int:
            ticks = round(spec.start_price * (1 + rng.uniform(-spread, spread)) / tick)
            return max(tick, ticks * tick)

        self.prev24h = near_start(0.03)
        self.prev1h = near_start(0.005)
        self.high24h = max(self.prev24h, self.last) + tick * rng.randint(1, 50)
        self.low24h = max(tick, min(self.prev24h, self.last) - tick * rng.randint(1, 50))
        base_qty = spec.typical_qty / 10**spec.qty_scale
        self.volume24h = base_qty * rng.uniform(20_000, 60_000)
        price_f = self.last / 10**spec.price_scale
        self.turnover24h = (
            self.volume24h / price_f if spec.category == "inverse" else self.volume24h * price_f
        )
        self.index = self.last
        self.mark = self.last
        self.open_interest = spec.typical_qty * rng.randint(5_000, 20_000)
        self.funding = 0.0001
        self.bid_size = spec.typical_qty * rng.randint(1, 20)
        self.ask_size = spec.typical_qty * rng.randint(1, 20)
        self.cs = rng.randint(10_000_000_000, 60_000_000_000)
        self._traded = False
        # the ticker state as subscribers last saw it; deltas carry the keys that differ
        self._pushed: dict[str, Any] = self._ticker_data()
        self._force: set[str] = set()  # keys a fresh snapshot changed: resend in next delta

    # -- trades -------------------------------------------------------------------------
    def _qty(self) -> int:
        spec = self.spec
        raw = spec.typical_qty * self.rng.lognormvariate(-0.7, 1.1)
        return max(spec.min_qty, round(raw / spec.qty_step) * spec.qty_step)

    def _drift(self) -> None:
        tick = self.spec.tick
        bias = max(
            -0.25, min(0.25, (self.spec.start_price - self.bid) / self.spec.start_price * 20)
        )
        if self.rng.random() < 0.35:
            step = tick if self.rng.random() < 0.5 + bias else -tick
            if self.bid + step > tick:
                self.bid += step
                self.ask += step

    def _new_id(self) -> str:
        if self.category == "spot":
            self._spot_id += 1
            return str(self._spot_id)
        return trade_uuid(self.rng)

    def _make(self, price: int, qty: int, side: str, t_ms: int, seq: int) -> TruthTrade:
        spec = self.spec
        direction = _tick_direction(self.prev, price, self.last_dir)
        self.prev = price
        self.last = price
        self.last_dir = direction
        self.high24h = max(self.high24h, price)
        self.low24h = min(self.low24h, price)
        base_qty = qty / 10**spec.qty_scale
        price_f = price / 10**spec.price_scale
        self.volume24h += base_qty
        self.turnover24h += base_qty / price_f if self.category == "inverse" else base_qty * price_f
        self._traded = True
        if self.full_books:
            full = self.full_books.get(spec.symbol)
            if full is not None and full.streams:
                full.consume(side, price, qty, seq, t_ms)
        return TruthTrade(
            category=self.category,
            symbol=spec.symbol,
            trade_id=self._new_id(),
            time_ms=t_ms,
            side=side,
            price=fmt(price, spec.price_scale),
            size=fmt(qty, spec.qty_scale),
            tick_direction=None if self.category == "spot" else direction,
            is_block_trade=False,
            seq=seq,
        )

    def _generate(self, n: int, ts: int) -> list[TruthTrade]:
        self._drift()
        tick = self.spec.tick
        side = "Buy" if self.rng.random() < 0.5 else "Sell"
        price = self.ask if side == "Buy" else self.bid
        seq = self.hub.next_seq(self.category)
        out: list[TruthTrade] = []
        for i, t_ms in enumerate(self._trade_times(n, ts)):
            if i and self.rng.random() < 0.2:
                price = price + tick if side == "Buy" else max(tick, price - tick)
            out.append(self._make(price, self._qty(), side, t_ms, seq))
        if side == "Buy":
            self.ask = max(self.ask, price)
            self.bid = self.ask - self.spread
        else:
            self.bid = min(self.bid, price)
            self.ask = self.bid + self.spread
        return out

    def _replay_trades(self, trades: Iterable[Any], ts: int) -> list[TruthTrade]:
        items = list(trades)
        seq = self.hub.next_seq(self.category)
        times = self._trade_times(len(items), ts)
        spec = self.spec
        out = [
            self._make(
                _to_units(t.price, spec.price_scale),
                _to_units(t.size, spec.qty_scale),
                t.side,
                t_ms,
                seq,
            )
            for t, t_ms in zip(items, times, strict=True)
        ]
        self.bid = self.last - (self.spread if items[-1].side == "Buy" else 0)
        self.ask = self.bid + self.spread
        return out

    def last_price(self, symbol: str) -> int | None:
        return self.last

    def _top_of_book(self, symbol: str) -> tuple[int, int]:
        return self.bid, self.ask

    def book_spec(self, symbol: str) -> InstrumentSpec | None:
        return self.spec if symbol == self.key else None

    # -- tickers ------------------------------------------------------------------------
    def _evolve(self) -> None:
        spec = self.spec
        noise = max(1, round(self.last * 0.00005))
        self.index = max(1, self.last + self.rng.randint(-noise, noise))
        self.mark = max(1, self.index + self.rng.randint(-noise, noise))
        if self.rng.random() < 0.2:
            self.open_interest = max(
                spec.typical_qty,
                self.open_interest + self.rng.randint(-20, 20) * spec.typical_qty,
            )
        if self.rng.random() < 0.01:
            self.funding = round(self.funding + self.rng.uniform(-0.00002, 0.00002), 6)
        if self.rng.random() < 0.3:
            self.bid_size = spec.typical_qty * self.rng.randint(1, 30)
            self.ask_size = spec.typical_qty * self.rng.randint(1, 30)

    def _ticker_data(self) -> dict[str, Any]:
        spec = self.spec
        ps, qs = spec.price_scale, spec.qty_scale
        last = self.last
        pct = last / self.prev24h - 1 if self.prev24h else 0.0
        if self.category == "spot":
            return {
                "symbol": spec.symbol,
                "lastPrice": fmt(last, ps),
                "highPrice24h": fmt(self.high24h, ps),
                "lowPrice24h": fmt(self.low24h, ps),
                "prevPrice24h": fmt(self.prev24h, ps),
                "volume24h": fmt_float(self.volume24h, min(8, qs + 2)),
                "turnover24h": fmt_float(self.turnover24h, 8),
                "price24hPcnt": fmt_float(pct, 4),
                "usdIndexPrice": fmt_float(self.index / 10**ps * 1.0, 6)
                if spec.symbol.endswith(("USDT", "USDC"))
                else "",
            }
        inverse = self.category == "inverse"
        mark_f = self.mark / 10**ps
        oi_f = self.open_interest / 10**qs
        oi_value = oi_f / mark_f if inverse else oi_f * mark_f
        data: dict[str, Any] = {
            "symbol": spec.symbol,
            "tickDirection": self.last_dir,
            "price24hPcnt": fmt_float(pct, 6),
            "lastPrice": fmt(last, ps),
            "prevPrice24h": fmt(self.prev24h, ps),
            "highPrice24h": fmt(self.high24h, ps),
            "lowPrice24h": fmt(self.low24h, ps),
            "prevPrice1h": fmt(self.prev1h, ps),
            "markPrice": fmt(self.mark, ps),
            "indexPrice": fmt(self.index, ps),
            "openInterest": fmt(self.open_interest, qs),
            "openInterestValue": fmt_float(oi_value, 2),
        }
        if not inverse:
            data["singleOpenInterest"] = fmt(self.open_interest // 2, qs)
            data["singleOpenInterestValue"] = fmt_float(oi_value / 2, 2)
        data["turnover24h"] = fmt_float(self.turnover24h, 4)
        data["volume24h"] = fmt_float(self.volume24h, 0 if inverse else 4)
        if spec.is_future:
            basis = (last - self.index) / 10**ps
            data["deliveryTime"] = spec.delivery
            data["basisRate"] = fmt_float(basis / (self.index / 10**ps), 8)
            data["deliveryFeeRate"] = "0.0005"
            data["predictedDeliveryPrice"] = fmt(0, ps)
            data["basis"] = fmt_float(basis, ps)
            data["basisRateYear"] = fmt_float(basis / (self.index / 10**ps) * 12, 8)
            data["nextFundingTime"] = ""
            data["fundingRate"] = ""
        else:
            data["nextFundingTime"] = str(_next_funding_ms(now_ms()))
            data["fundingRate"] = _rate(self.funding)
        data["bid1Price"] = fmt(self.bid, ps)
        data["bid1Size"] = fmt(self.bid_size, qs)
        data["ask1Price"] = fmt(self.ask, ps)
        data["ask1Size"] = fmt(self.ask_size, qs)
        data["preOpenPrice"] = ""
        data["preQty"] = ""
        data["curPreListingPhase"] = ""
        if not spec.is_future:
            data["fundingIntervalHour"] = "8"
            data["fundingCap"] = "0.005"
        return data

    def _ticker_snapshot(self) -> dict[str, Any]:
        self.cs += self.rng.randint(1, 30)
        topic = f"tickers.{self.key}"
        data = self._ticker_data()
        # Existing subscribers still hold ``_pushed``; make sure the next delta carries every
        # key in which this snapshot differs, so both kinds of subscriber converge.
        self._force |= {k for k, v in data.items() if self._pushed.get(k) != v}
        return ticker_frame(self.category, topic, "snapshot", data, self.cs, now_ms())

    def _tick(self) -> None:
        self._evolve()
        data = self._ticker_data()
        topic = f"tickers.{self.key}"
        subs = self.hub.subscribers(self.category, topic)
        if self.category == "spot":
            changed = data != self._pushed
            self._pushed = data
            if subs and changed:
                self.cs += self.rng.randint(1, 30)
                self.hub.publish(
                    subs, ticker_frame("spot", topic, "snapshot", data, self.cs, now_ms())
                )
            return
        changed_keys = {k for k, v in data.items() if self._pushed.get(k) != v} | self._force
        self._force = set()
        if changed_keys & {"bid1Price", "bid1Size", "ask1Price", "ask1Size"}:
            changed_keys |= {"bid1Price", "bid1Size", "ask1Price", "ask1Size"}
        if self._traded and not self.spec.is_future and self.rng.random() < 0.1:
            changed_keys |= {"price24hPcnt", "fundingRate"}  # real deltas repeat some fields
        self._traded = False
        self._pushed = data
        if not subs or not changed_keys:
            return
        delta = {k: v for k, v in data.items() if k == "symbol" or k in changed_keys}
        self.cs += self.rng.randint(1, 30)
        self.hub.publish(
            subs, ticker_frame(self.category, topic, "delta", delta, self.cs, now_ms())
        )

    def initial_frames(self, topic: PublicTopic) -> list[dict[str, Any]]:
        if topic.kind == "tickers":
            return [self._ticker_snapshot()]
        if topic.kind == "orderbook":
            return self._book_snapshot(topic)
        return []


class _OptionContract:
    def __init__(self, spec: InstrumentSpec, rng: random.Random) -> None:
        self.spec = spec
        self.last = 0
        self.high = 0
        self.low = 0
        self.volume = 0.0
        self.turnover = 0.0
        self.total_volume = float(rng.randint(10, 5000))
        self.total_turnover = self.total_volume * 1000
        self.open_interest = float(rng.randint(1, 500))
        self.prev_price = 0
        self.iv = rng.uniform(0.35, 0.8)


class OptionMarket(MarketBase):
    """All option contracts of one base coin (``publicTrade.BTC`` is keyed by base coin)."""

    def __init__(
        self, hub: MarketHub, base: str, rng: random.Random, script: ReplayScript | None = None
    ) -> None:
        super().__init__(hub, "option", base, rng, script)
        self.base = base
        under = base_usd_price(base)
        lin = parse_symbol("linear", f"{base}USDT", frozenset())
        self.uscale = lin.price_scale if lin else 2
        self.underlying = round(under * 10**self.uscale)
        self.start_underlying = self.underlying
        self.contracts: dict[str, _OptionContract] = {}
        for sym in default_option_contracts(base, dt.datetime.now(dt.UTC)):
            self.add_contract(sym)
        if script is not None:
            for frame in script.frames:
                for t in frame.trades:
                    self.add_contract(t.symbol)

    def add_contract(self, symbol: str) -> _OptionContract | None:
        found = self.contracts.get(symbol)
        if found is not None:
            return found
        spec = parse_option_contract(symbol, frozenset())
        if spec is None or spec.base != self.base:
            return None
        contract = _OptionContract(spec, self.rng)
        contract.last = self._fair(contract)
        contract.high = contract.low = contract.prev_price = contract.last
        self.contracts[symbol] = contract
        return contract

    # -- pricing (a crude normal model: plausible numbers, not a pricing library) --------
    def _years_left(self, spec: InstrumentSpec) -> float:
        expiry = dt.datetime.fromisoformat(spec.delivery.replace("Z", "+00:00"))
        left = (expiry - dt.datetime.now(dt.UTC)).total_seconds()
        return max(left, 3600.0) / (365 * 86400)

    def _model(self, c: _OptionContract) -> tuple[float, float, float, float, float, float]:
        """(premium, delta, gamma, vega, theta, underlying) in USD terms."""
        spec = c.spec
        s = self.underlying / 10**self.uscale
        k = spec.strike / 10**spec.underlying_scale
        t = self._years_left(spec)
        sd = max(1e-9, c.iv * math.sqrt(t))
        d1 = (math.log(s / k) + 0.5 * sd * sd) / sd if k > 0 else 10.0
        nd1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
        nd2 = 0.5 * (1 + math.erf((d1 - sd) / math.sqrt(2)))
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
        call = s * nd1 - k * nd2
        if spec.option_kind == "C":
            premium, delta = call, nd1
        else:
            premium, delta = call - s + k, nd1 - 1
        gamma = pdf / (s * sd)
        vega = s * pdf * math.sqrt(t) / 100
        theta = -s * pdf * c.iv / (2 * math.sqrt(t)) / 365
        return max(premium, 0.0), delta, gamma, vega, theta, s

    def _fair(self, c: _OptionContract) -> int:
        premium = self._model(c)[0]
        spec = c.spec
        units = round(premium * 10.0**spec.price_scale / spec.tick) * spec.tick
        return max(spec.tick, units)

    def _marks(self, c: _OptionContract) -> tuple[str, str, str, str]:
        premium, *_rest, s = self._model(c)
        return (
            fmt_float(premium, 8),
            fmt_float(s, 8),
            fmt_float(c.iv, 4),
            fmt_float(c.iv * self.rng.uniform(0.97, 1.03), 4),
        )

    # -- trades -------------------------------------------------------------------------
    def _make(
        self, c: _OptionContract, price: int, qty: int, side: str, t_ms: int, seq: int
    ) -> TruthTrade:
        spec = c.spec
        c.prev_price = c.last
        c.last = price
        c.high = max(c.high, price)
        c.low = min(c.low, price)
        q = qty / 10**spec.qty_scale
        c.volume += q
        c.total_volume += q
        c.turnover += q * self.underlying / 10**self.uscale
        c.total_turnover += q * self.underlying / 10**self.uscale
        return TruthTrade(
            category="option",
            symbol=spec.symbol,
            trade_id=trade_uuid(self.rng),
            time_ms=t_ms,
            side=side,
            price=fmt(price, spec.price_scale),
            size=fmt(qty, spec.qty_scale),
            tick_direction=None,
            is_block_trade=False,
            seq=seq,
            option_marks=self._marks(c),
        )

    def _generate(self, n: int, ts: int) -> list[TruthTrade]:
        c = self.rng.choice(list(self.contracts.values()))
        spec = c.spec
        side = "Buy" if self.rng.random() < 0.5 else "Sell"
        fair = self._fair(c)
        price = fair + spec.tick * self.rng.randint(0, 2) * (1 if side == "Buy" else -1)
        price = max(spec.tick, price)
        seq = self.hub.next_seq("option")
        return [
            self._make(
                c,
                price,
                max(1, round(spec.typical_qty * self.rng.uniform(0.5, 20))),
                side,
                t_ms,
                seq,
            )
            for t_ms in self._trade_times(n, ts)
        ]

    def _replay_trades(self, trades: Iterable[Any], ts: int) -> list[TruthTrade]:
        items = list(trades)
        seq = self.hub.next_seq("option")
        out: list[TruthTrade] = []
        for t, t_ms in zip(items, self._trade_times(len(items), ts), strict=True):
            c = self.add_contract(t.symbol)
            if c is None:
                continue
            pscale = max(c.spec.price_scale, len(t.price.partition(".")[2]))
            qscale = max(c.spec.qty_scale, len(t.size.partition(".")[2]))
            if (pscale, qscale) != (c.spec.price_scale, c.spec.qty_scale):
                c.spec = replace(c.spec, price_scale=pscale, qty_scale=qscale, tick=1)
            out.append(
                self._make(
                    c, _to_units(t.price, pscale), _to_units(t.size, qscale), t.side, t_ms, seq
                )
            )
        return out

    def last_price(self, symbol: str) -> int | None:
        c = self.contracts.get(symbol)
        return None if c is None else c.last

    def _top_of_book(self, symbol: str) -> tuple[int, int]:
        c = self.contracts.get(symbol) or self.add_contract(symbol)
        if c is None:
            return 1, 2
        fair = self._fair(c)
        return max(c.spec.tick, fair - c.spec.tick), fair + c.spec.tick

    # -- tickers ------------------------------------------------------------------------
    def _ticker_data(self, c: _OptionContract) -> dict[str, Any]:
        spec = c.spec
        ps, qs = spec.price_scale, spec.qty_scale
        premium, delta, gamma, vega, theta, s = self._model(c)
        bid, ask = self._top_of_book(spec.symbol)
        change = (c.last / c.prev_price - 1) if c.prev_price else 0.0
        return {
            "symbol": spec.symbol,
            "bidPrice": fmt(bid, ps),
            "bidSize": fmt(spec.typical_qty * 10, qs),
            "bidIv": fmt_float(c.iv * 0.97, 4),
            "askPrice": fmt(ask, ps),
            "askSize": fmt(spec.typical_qty * 12, qs),
            "askIv": fmt_float(c.iv * 1.03, 4),
            "lastPrice": fmt(c.last, ps),
            "highPrice24h": fmt(c.high, ps),
            "lowPrice24h": fmt(c.low, ps),
            "markPrice": fmt_float(premium, 8),
            "indexPrice": fmt(self.underlying, self.uscale),
            "markPriceIv": fmt_float(c.iv, 4),
            "underlyingPrice": fmt_float(s, self.uscale),
            "openInterest": fmt_float(c.open_interest, qs),
            "turnover24h": fmt_float(c.turnover, 2),
            "volume24h": fmt_float(c.volume, qs),
            "totalVolume": str(round(c.total_volume)),
            "totalTurnover": str(round(c.total_turnover)),
            "delta": fmt_float(delta, 8),
            "gamma": fmt_float(gamma, 8),
            "vega": fmt_float(vega, 8),
            "theta": fmt_float(theta, 8),
            "predictedDeliveryPrice": "0",
            "change24h": fmt_float(change, 8),
        }

    def _ticker_frame(self, c: _OptionContract) -> dict[str, Any]:
        topic = f"tickers.{c.spec.symbol}"
        ts = now_ms()
        return ticker_frame(
            "option", topic, "snapshot", self._ticker_data(c), 0, ts, self._frame_id(topic, ts)
        )

    def _tick(self) -> None:
        step = max(1, round(self.underlying * 0.0001))
        bias = (self.start_underlying - self.underlying) / self.start_underlying * 20
        self.underlying += step if self.rng.random() < 0.5 + max(-0.25, min(0.25, bias)) else -step
        for c in self.contracts.values():
            subs = self.hub.subscribers("option", f"tickers.{c.spec.symbol}")
            if subs:
                self.hub.publish(subs, self._ticker_frame(c))

    def initial_frames(self, topic: PublicTopic) -> list[dict[str, Any]]:
        if topic.kind == "publicTrade":
            return []
        c = self.add_contract(topic.symbol)
        if c is None:
            return []
        if topic.kind == "tickers":
            return [self._ticker_frame(c)]
        return self._book_snapshot(topic)

    def book_spec(self, symbol: str) -> InstrumentSpec | None:
        c = self.add_contract(symbol)
        return None if c is None else c.spec


class MarketHub:
    """Owns the markets and the public topic subscriptions."""

    def __init__(
        self,
        cfg: SimulatorConfig,
        truth: GroundTruth,
        replay: dict[tuple[str, str], ReplayScript] | None = None,
    ) -> None:
        self.cfg = cfg
        self.truth = truth
        self._replay = replay or {}
        self._markets: dict[tuple[str, str], MarketBase] = {}
        self._subs: dict[tuple[str, str], set[WsConnection]] = {}
        self._seq: dict[str, int] = dict(_SEQ_START)
        self._rng = self.rng_for("hub")
        self._running = False

    def rng_for(self, *parts: str) -> random.Random:
        if self.cfg.seed is None:
            return random.Random()
        return random.Random(":".join((str(self.cfg.seed), *parts)))

    # -- markets ------------------------------------------------------------------------
    def market(self, category: str, key: str) -> MarketBase | None:
        return self._markets.get((category, key))

    def markets(self) -> list[MarketBase]:
        return list(self._markets.values())

    def ensure_market(self, category: str, key: str) -> MarketBase | None:
        """Get or create (and start, if running) the market; None if the symbol is unknown."""
        found = self._markets.get((category, key))
        if found is not None:
            return found
        script = self._replay.get((category, key))
        rng = self.rng_for(category, key)
        market: MarketBase
        if category == "option":
            market = OptionMarket(self, key, rng, script)
        else:
            spec = parse_symbol(category, key, self.cfg.unknown_symbols)
            if spec is None:
                if script is None:
                    return None
                spec = parse_symbol(category, key, frozenset()) or InstrumentSpec(
                    category, key, key, 2, 1, 3, 1, 1, 100, 1
                )
            market = SymbolMarket(self, spec, rng, script)
        self._markets[(category, key)] = market
        log.info("market %s/%s created%s", category, key, " (replay)" if script else "")
        if self._running:
            market.start()
        return market

    def replay_markets(self) -> list[tuple[str, str]]:
        return list(self._replay)

    def start(self) -> None:
        self._running = True
        for category, key in [*self.cfg.symbols, *self._replay]:
            if category == "option" and "-" in key:
                market = self.ensure_market(category, key.split("-", 1)[0])
                if isinstance(market, OptionMarket):
                    market.add_contract(key)
            elif self.ensure_market(category, key) is None:
                log.warning("cannot pre-start unknown market %s/%s", category, key)
        for market in self._markets.values():
            market.start()

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*(m.stop() for m in self._markets.values()))

    def book_streams(self) -> list[BookStream]:
        """Every order-book stream ever subscribed (active or idle)."""
        return [s for m in self._markets.values() for s in m.books.values()]

    def rest_book(self, category: str, symbol: str, limit: int) -> dict[str, Any] | None:
        """REST order book of (category, symbol); starts the market if needed."""
        key = symbol.split("-", 1)[0] if category == "option" else symbol
        market = self.ensure_market(category, key)
        return None if market is None else market.rest_book(symbol, limit)

    def next_seq(self, category: str) -> int:
        self._seq[category] = self._seq.get(category, 1) + self._rng.randint(1, 40)
        return self._seq[category]

    # -- subscriptions ------------------------------------------------------------------
    def subscribers(self, category: str, topic: str) -> set[WsConnection] | frozenset[WsConnection]:
        return self._subs.get((category, topic), _EMPTY)

    def subscribe(self, conn: WsConnection, category: str, topic: PublicTopic) -> list[bytes]:
        """Register ``conn`` for ``topic``; return the initial frames (snapshots) to send."""
        market = self.ensure_market(category, topic.market)
        self._subs.setdefault((category, topic.name), set()).add(conn)
        if market is None:
            return []
        if isinstance(market, OptionMarket) and topic.kind != "publicTrade":
            market.add_contract(topic.symbol)
        return [dumps(frame) for frame in market.initial_frames(topic)]

    def unsubscribe(self, conn: WsConnection, category: str, topic: str) -> None:
        subs = self._subs.get((category, topic))
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._subs[(category, topic)]

    def forget(self, conn: WsConnection) -> None:
        for topic in list(conn.topics):
            self.unsubscribe(conn, conn.category, topic)

    def publish(self, subs: Iterable[WsConnection], frame: dict[str, Any]) -> None:
        self.publish_encoded(subs, dumps(frame), str(frame["topic"]))

    def publish_encoded(self, subs: Iterable[WsConnection], data: bytes, topic: str) -> None:
        """Send one data frame of ``topic`` to ``subs`` (pauses and mutes apply)."""
        for conn in list(subs):
            conn.send(data, topic)
