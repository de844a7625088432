"""Order books: one full book per instrument, and ``orderbook.{depth}.{symbol}`` views of it.

:class:`FullBook` is the matching engine's book of one instrument: every level on a price
grid of the instrument's tick, sizes in lots, its best bid/ask pinned to the market's
quotes (so it brackets the trades: a buy prints at the best ask, a sell at the best bid,
and trades eat the size they hit). Random add/cancel/resize events, most near the touch,
happen at ``book_update_rate`` per second. Each change gets the engine's cross sequence
``seq`` (shared with trades, so comparable across depths) and engine time ``cts``.

:class:`BookStream` is one depth's view: the top N levels as last pushed. Every push
interval it diffs the current top N against that state and sends a ``delta`` of the
changed levels (size ``"0"`` deletes; a level entering the top N because another left is
an insert), with ``u`` + 1. Depth 1 is snapshot-only: a snapshot when the top changed, and
the same snapshot (same ``u``) again after ``book_depth1_resend_s`` without change. A
stream computes only while it has subscribers; every pushed state goes to ground truth.

Faults (armed by ``sim.faults.book_*``) are consumed at the stream's next push; see the
README's "Order books" section.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from typing import Any

from bybit_sim.codec import now_ms
from bybit_sim.frames import orderbook_frame
from bybit_sim.instruments import InstrumentSpec, book_size_format, fmt
from bybit_sim.truth import BookHistory

TopOfBook = Callable[[], tuple[int, int]]
SeqSource = Callable[[], int]

_LEVELS = 1100  # per side: more than the deepest stream (1000) and REST limit (500)
_LEVELS_OPTION = 40  # option books are thin
_MAX_ENGINE_STEP_S = 1.0  # an idle book catches up at most this much activity at once


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw of mean ``lam`` (normal approximation above 30)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class FullBook:
    """Every level of one instrument's book, both sides, as integer units."""

    def __init__(
        self,
        spec: InstrumentSpec,
        rng: random.Random,
        top: TopOfBook,
        next_seq: SeqSource,
        update_rate: float,
    ) -> None:
        self.spec = spec
        self.category = spec.category
        self._rng = rng
        self._top = top
        self._next_seq = next_seq
        option = spec.category == "option"
        self.levels = _LEVELS_OPTION if option else _LEVELS
        self.rate = update_rate / 5 if option else update_rate
        self._max_gap = 4 if option else 3
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_px: list[int] = []  # ascending: best bid last
        self._ask_px: list[int] = []  # ascending: best ask first
        self.version = 0  # +1 per engine change
        self.u = rng.randint(100_000, 900_000)  # the REST reply's update id
        self.seq = 0
        self.cts = 0
        self.streams = 0  # active depth streams fed by this book
        self.last_step: float | None = None  # loop time of the last engine step
        self._changed = False
        bid, ask = top()
        self._put_side(True, bid, self.size_for(0))
        self._put_side(False, ask, self.size_for(0))
        self._refill()
        self._changed = False
        self.seq = next_seq()
        self.cts = now_ms()

    # -- level primitives -----------------------------------------------------------------
    def size_for(self, level: int) -> int:
        """A random resting size (in lots) for a level ``level`` steps from the touch."""
        spec = self.spec
        raw = spec.typical_qty * self._rng.lognormvariate(0.0, 1.0) * (1 + level / 300)
        return max(spec.min_qty, round(raw / spec.qty_step) * spec.qty_step)

    def _put_side(self, bid: bool, price: int, size: int) -> None:
        book, px = (self.bids, self._bid_px) if bid else (self.asks, self._ask_px)
        if price not in book:
            bisect.insort(px, price)
        elif book[price] == size:
            return
        book[price] = size
        self._changed = True

    def _drop_side(self, bid: bool, price: int) -> None:
        book, px = (self.bids, self._bid_px) if bid else (self.asks, self._ask_px)
        if book.pop(price, None) is None:
            return
        del px[bisect.bisect_left(px, price)]
        self._changed = True

    def best(self) -> tuple[int | None, int | None]:
        return (
            self._bid_px[-1] if self._bid_px else None,
            self._ask_px[0] if self._ask_px else None,
        )

    def top_bids(self, n: int) -> list[int]:
        return self._bid_px[: -n - 1 : -1]

    def top_asks(self, n: int) -> list[int]:
        return self._ask_px[:n]

    # -- the engine -------------------------------------------------------------------------
    def _align(self) -> None:
        """Pin the best bid/ask to the market's quotes (levels beyond them were taken)."""
        bid, ask = self._top()
        while self._bid_px and self._bid_px[-1] > bid:
            self._drop_side(True, self._bid_px[-1])
        while self._ask_px and self._ask_px[0] < ask:
            self._drop_side(False, self._ask_px[0])
        if bid not in self.bids and bid > 0:
            self._put_side(True, bid, self.size_for(0))
        if ask not in self.asks:
            self._put_side(False, ask, self.size_for(0))

    def _refill(self) -> None:
        """Keep ``levels`` levels per side: add beyond the worst level, trim the far end."""
        tick, rng = self.spec.tick, self._rng
        for bid, px in ((True, self._bid_px), (False, self._ask_px)):
            while len(px) > self.levels + 100:
                self._drop_side(bid, px[0] if bid else px[-1])
            while len(px) < self.levels:
                n = len(px)
                gap = 1 if n < 25 and rng.random() < 0.85 else rng.randint(1, self._max_gap)
                if bid:
                    price = px[0] - gap * tick
                    if price <= 0:
                        break
                else:
                    price = px[-1] + gap * tick
                self._put_side(bid, price, self.size_for(n))

    def _event(self) -> None:
        rng = self._rng
        bid = rng.random() < 0.5
        px = self._bid_px if bid else self._ask_px
        n = len(px)
        if n == 0:
            return
        r = rng.random()
        if r < 0.75:
            k = min(n - 1, int(rng.expovariate(0.2)))  # mostly the first levels
        elif r < 0.95:
            k = rng.randrange(min(n, 200))
        else:
            k = rng.randrange(n)
        price = px[n - 1 - k] if bid else px[k]
        action = rng.random()
        if k == 0 or action < 0.7:
            self._put_side(bid, price, self.size_for(k))
        elif action < 0.85:
            self._drop_side(bid, price)
        else:  # a new level in the gap just beyond this one, if there is one
            tick = self.spec.tick
            new = price - tick if bid else price + tick
            book = self.bids if bid else self.asks
            if new > 0 and new not in book:
                self._put_side(bid, new, self.size_for(k))
            else:
                self._put_side(bid, price, self.size_for(k))

    def step(self, loop_now: float, ts: int) -> None:
        """Advance the engine to ``loop_now``: follow the quotes, apply random events."""
        elapsed = 0.0 if self.last_step is None else loop_now - self.last_step
        elapsed = min(max(elapsed, 0.0), _MAX_ENGINE_STEP_S)
        self.last_step = loop_now
        self._align()
        for _ in range(poisson(self._rng, self.rate * elapsed)):
            self._event()
        self._refill()
        if self._changed:
            # the last change happened somewhere in the elapsed time; never before the last
            cts = ts - self._rng.randint(0, max(0, min(int(elapsed * 1000), 8)))
            self._touch(max(cts, self.cts), self._next_seq())

    def consume(self, taker_side: str, price: int, qty: int, seq: int, t_ms: int) -> None:
        """A trade of ``qty`` at ``price`` eats the resting size it hit."""
        bid = taker_side == "Sell"
        book = self.bids if bid else self.asks
        size = book.get(price)
        if size is None:
            return
        left = size - qty
        best = self.best()[0 if bid else 1]
        if left >= self.spec.min_qty:
            self._put_side(bid, price, left)
        elif price == best:
            self._put_side(bid, price, self.size_for(0))  # the touch is quoted again at once
        else:
            self._drop_side(bid, price)
        if self._changed:
            self._touch(max(t_ms, self.cts), max(seq, self.seq))

    def _touch(self, cts: int, seq: int) -> None:
        self._changed = False
        self.version += 1
        self.u += 1
        self.seq = seq
        self.cts = cts

    def rest_result(self, symbol: str, limit: int, ts: int) -> dict[str, Any]:
        """The ``GET /v5/market/orderbook`` result (``s, b, a, ts, u, seq, cts``)."""
        ps, qs = self.spec.price_scale, self.spec.qty_scale
        size = book_size_format(self.category)
        return {
            "s": symbol,
            "b": [[fmt(p, ps), size(self.bids[p], qs)] for p in self.top_bids(limit)],
            "a": [[fmt(p, ps), size(self.asks[p], qs)] for p in self.top_asks(limit)],
            "ts": ts,
            "u": self.u,
            "seq": self.seq,
            "cts": self.cts,
        }


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    out = {p: s for p, s in new.items() if old.get(p) != s}
    for p in old:
        if p not in new:
            out[p] = 0
    return out


class BookStream:
    """``orderbook.{depth}.{symbol}``: the top ``depth`` levels of a :class:`FullBook`."""

    def __init__(
        self,
        full: FullBook,
        depth: int,
        interval_s: float,
        rng: random.Random,
        history: BookHistory,
        resend_ms: int,
    ) -> None:
        self.full = full
        # the full book's instrument: one engine feeds every depth of it
        self.spec = full.spec
        self.category = full.category
        self.depth = depth
        self.interval_s = interval_s
        self.topic = f"orderbook.{depth}.{full.spec.symbol}"
        self._rng = rng
        self.history = history
        self.resend_ms = resend_ms
        self._size_text = book_size_format(full.category)
        self.u = 0
        self.seq = 0
        self.cts = 0
        # the state as last pushed; replaced, never mutated (ground truth keeps them)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.active = False
        self.next_push = 0.0  # loop time
        self.last_sent_ms = 0
        self._seen_version = -1
        self._dirty = False  # the state is not the engine's view (after a crossed frame)
        # armed faults, consumed at the next push
        self.skip_pending = 0
        self.restart_pending = False
        self.crossed_pending = 0
        self.stale_pending = 0

    # -- life cycle -----------------------------------------------------------------------
    def activate(self, loop_now: float, ts: int) -> None:
        """Start (or resume after an idle spell) pushing: a fresh state, recorded."""
        if self.active:
            return
        if self.u == 0:
            self.u = self._rng.randint(1_000_000, 60_000_000)
        else:  # the real stream went on while nobody listened
            idle_ms = max(0, ts - self.last_sent_ms)
            self.u += max(1, int(idle_ms / 1000 / self.interval_s))
        self._set_state(*self._view(), kind="snapshot", ts=ts, changes=None)
        self.active = True
        self.full.streams += 1
        self.next_push = loop_now + self.interval_s

    def deactivate(self) -> None:
        if self.active:
            self.active = False
            self.full.streams -= 1

    def armed(self) -> dict[str, Any]:
        """The faults waiting for this stream's next push (empty when none)."""
        out: dict[str, Any] = {}
        if self.skip_pending:
            out["skip_update"] = self.skip_pending
        if self.restart_pending:
            out["restart"] = True
        if self.crossed_pending:
            out["crossed_delta"] = self.crossed_pending
        if self.stale_pending:
            out["stale_resend"] = self.stale_pending
        return out

    def disarm(self) -> None:
        self.skip_pending = self.crossed_pending = self.stale_pending = 0
        self.restart_pending = False

    # -- views and frames -------------------------------------------------------------------
    def _view(self) -> tuple[dict[int, int], dict[int, int]]:
        full, n = self.full, self.depth
        bids, asks = full.bids, full.asks
        return (
            {p: bids[p] for p in full.top_bids(n)},
            {p: asks[p] for p in full.top_asks(n)},
        )

    def _cross(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        """Put a bid one tick above the best ask (the fault), keeping ``depth`` bids."""
        tick = self.spec.tick
        if asks:
            price = min(asks) + tick
        elif bids:
            price = max(bids) + 2 * tick
        else:
            price = self.spec.start_price
        bids[price] = self.full.size_for(0)
        if len(bids) > self.depth:
            del bids[min(bids)]

    def _set_state(
        self,
        bids: dict[int, int],
        asks: dict[int, int],
        *,
        kind: str,
        ts: int,
        changes: tuple[dict[int, int], dict[int, int]] | None,
    ) -> None:
        self.bids, self.asks = bids, asks
        self.seq, self.cts = self.full.seq, self.full.cts
        self.last_sent_ms = ts
        self._seen_version = self.full.version
        self.history.record(ts, self.u, self.seq, self.cts, kind, (bids, asks), changes)

    def _levels(self, book: dict[int, int], prices: list[int]) -> list[list[str]]:
        ps, qs, size = self.spec.price_scale, self.spec.qty_scale, self._size_text
        # a removed level is sent with size "0" (not "0.000"), as on the real feed
        return [[fmt(p, ps), size(book[p], qs) if book[p] else "0"] for p in prices]

    def _frame(
        self, kind: str, ts: int, bids: dict[int, int], asks: dict[int, int]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "s": self.spec.symbol,
            "b": self._levels(bids, sorted(bids, reverse=True)),
            "a": self._levels(asks, sorted(asks)),
            "u": self.u,
        }
        if self.category != "option":
            data["seq"] = self.seq
        # option frames get their envelope "id" from the market (the key stays first)
        return orderbook_frame(self.category, self.topic, kind, ts, data, self.cts, "")

    def snapshot_frame(self, ts: int) -> dict[str, Any]:
        """The current state as a ``snapshot`` (new subscribers, depth-1 pushes/re-sends)."""
        return self._frame("snapshot", ts, self.bids, self.asks)

    def push(self, ts: int) -> dict[str, Any] | None:
        """One push interval: the frame to publish, or None when there is nothing to send.

        The caller has stepped the engine to ``ts`` first.
        """
        restart = self.restart_pending
        crossed = self.crossed_pending > 0
        if not (restart or crossed or self._dirty) and self.full.version == self._seen_version:
            return self._resend(ts)
        bids, asks = self._view()
        if crossed:
            self._cross(bids, asks)
        changes = (_diff(self.bids, bids), _diff(self.asks, asks))
        if not (restart or changes[0] or changes[1]):
            self._seen_version = self.full.version
            return self._resend(ts)
        self._dirty = crossed
        if restart:
            self.restart_pending = False
            self.u = 1
        elif self.depth == 1 and self.stale_pending:
            self.stale_pending -= 1  # the fault: new content under the previous snapshot's u
        elif self.skip_pending:
            self.skip_pending -= 1
            self.u += 2
        else:
            self.u += 1
        if crossed:
            self.crossed_pending -= 1
        kind = "snapshot" if restart or self.depth == 1 else "delta"
        self._set_state(
            bids,
            asks,
            kind=kind,
            ts=ts,
            changes=None if kind == "snapshot" else changes,
        )
        if kind == "snapshot":
            return self.snapshot_frame(ts)
        return self._frame("delta", ts, *changes)

    def _resend(self, ts: int) -> dict[str, Any] | None:
        """Depth 1 re-sends its unchanged snapshot, same ``u``, after ``resend_ms``."""
        if self.depth != 1 or ts - self.last_sent_ms < self.resend_ms:
            return None
        self.last_sent_ms = ts
        return self.snapshot_frame(ts)


# -- the book firehose (firehose.py) ----------------------------------------------------------
def churn(full: FullBook, events: int, ts: int) -> bool:
    """Apply ``events`` of the engine's own random events at once (what ``step`` draws over
    an interval of time), for a producer that sets its own pace; True when the book
    changed. The change gets a new ``seq`` and a ``cts`` a few ms before ``ts``."""
    full._align()
    for _ in range(events):
        full._event()
    full._refill()
    if not full._changed:
        return False
    full._touch(max(ts - full._rng.randint(0, 8), full.cts), full._next_seq())
    return True


def snapshot_update(stream: BookStream, ts: int) -> dict[str, Any]:
    """The stream's next update (``u`` + 1) as a whole-book ``snapshot`` frame, as Bybit
    re-sends one: a client needs nothing before it. Recorded in ground truth."""
    stream.u += 1
    stream._dirty = False
    stream._set_state(*stream._view(), kind="snapshot", ts=ts, changes=None)
    return stream.snapshot_frame(ts)
