"""Order-book streams (``orderbook.{depth}.{symbol}``): snapshot on subscribe, then deltas.

Each (symbol, depth) stream keeps its own book and update id ``u`` (+1 per delta, as
observed on the real feed). The book follows the market's best bid/ask; levels leaving the
depth window are sent with size ``"0"``. Level 1 is snapshot-only (Bybit since 2025-03-20).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bybit_sim.frames import orderbook_frame
from bybit_sim.instruments import InstrumentSpec, fmt

TopOfBook = Callable[[], tuple[int, int]]


class BookStream:
    def __init__(
        self,
        category: str,
        spec: InstrumentSpec,
        depth: int,
        rng: random.Random,
        top: TopOfBook,
    ) -> None:
        self.category = category
        self.spec = spec
        self.depth = depth
        self.topic = f"orderbook.{depth}.{spec.symbol}"
        self._rng = rng
        self._top = top
        self.u = rng.randint(1_000_000, 60_000_000)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._changed: dict[str, dict[int, int]] = {"b": {}, "a": {}}
        self._align()
        self._fill()
        self._changed = {"b": {}, "a": {}}

    # -- state changes ------------------------------------------------------------------
    def _size(self) -> int:
        base = self.spec.typical_qty * self._rng.lognormvariate(0.0, 1.0)
        step = self.spec.qty_step
        return max(step, round(base / step) * step)

    def _set(self, side: str, price: int, size: int) -> None:
        book = self.bids if side == "b" else self.asks
        if size == 0:
            if price in book:
                del book[price]
                self._changed[side][price] = 0
            return
        if book.get(price) != size:
            book[price] = size
            self._changed[side][price] = size

    def _align(self) -> None:
        bid, ask = self._top()
        for p in [p for p in self.bids if p >= ask or p > bid]:
            self._set("b", p, 0)
        for p in [p for p in self.asks if p <= bid or p < ask]:
            self._set("a", p, 0)
        if bid not in self.bids:
            self._set("b", bid, self._size())
        if ask not in self.asks:
            self._set("a", ask, self._size())

    def _fill(self) -> None:
        tick = self.spec.tick
        for side, book, direction in (("b", self.bids, -1), ("a", self.asks, 1)):
            ordered = sorted(book, reverse=(side == "b"))
            for p in ordered[self.depth :]:
                self._set(side, p, 0)
            if len(book) >= self.depth:
                continue
            edge = ordered[min(len(ordered), self.depth) - 1] if ordered else self._top()[0]
            while len(book) < self.depth:
                edge += direction * tick * self._rng.randint(1, 3)
                if edge <= 0:
                    break
                self._set(side, edge, self._size())

    def _jiggle(self) -> None:
        for _ in range(self._rng.randint(1, 3)):
            side = self._rng.choice(("b", "a"))
            book = self.bids if side == "b" else self.asks
            if not book:
                continue
            ordered = sorted(book, reverse=(side == "b"))
            price = ordered[min(len(ordered) - 1, int(self._rng.expovariate(0.3)))]
            if price != ordered[0] and self._rng.random() < 0.15:
                self._set(side, price, 0)
            else:
                self._set(side, price, self._size())

    # -- frames -------------------------------------------------------------------------
    def _levels(self, side: str, prices: list[int], book: dict[int, int]) -> list[list[str]]:
        ps, qs = self.spec.price_scale, self.spec.qty_scale
        # a removed level is sent with size "0" (not "0.000"), as on the real feed
        return [[fmt(p, ps), fmt(book[p], qs) if book.get(p) else "0"] for p in prices]

    def _data(self, bids: list[list[str]], asks: list[list[str]], seq: int) -> dict[str, Any]:
        data: dict[str, Any] = {"s": self.spec.symbol, "b": bids, "a": asks, "u": self.u}
        if self.category != "option":
            data["seq"] = seq
        return data

    def snapshot(self, ts: int, seq: int, frame_id: str | None = None) -> dict[str, Any]:
        data = self._data(
            self._levels("b", sorted(self.bids, reverse=True), self.bids),
            self._levels("a", sorted(self.asks), self.asks),
            seq,
        )
        return orderbook_frame(self.category, self.topic, "snapshot", ts, data, ts - 1, frame_id)

    def step(self, ts: int, seq: int, frame_id: str | None = None) -> dict[str, Any] | None:
        """Advance the book; return the frame to publish (delta, or snapshot for depth 1)."""
        self._changed = {"b": {}, "a": {}}
        self._align()
        self._jiggle()
        self._fill()
        changed_b, changed_a = self._changed["b"], self._changed["a"]
        if not changed_b and not changed_a:
            return None
        self.u += 1
        if self.depth == 1:
            return self.snapshot(ts, seq, frame_id)
        data = self._data(
            self._levels("b", sorted(changed_b, reverse=True), changed_b),
            self._levels("a", sorted(changed_a), changed_a),
            seq,
        )
        return orderbook_frame(self.category, self.topic, "delta", ts, data, ts - 1, frame_id)
