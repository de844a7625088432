"""Order books: one record per book update, and the book they build.

``BookUpdate`` is one ``orderbook.{depth}.{symbol}`` frame (a snapshot or a delta), or a
full book the recorder writes itself (a checkpoint). Its levels are ``[price, size]``
pairs of the exact decimal strings Bybit sent; in a delta a size of ``"0"`` deletes the
level. ``Book`` applies updates in order: the state any reader rebuilds, from the last
snapshot or checkpoint before an instant and the deltas after it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Annotated, ClassVar

import msgspec

from bybit_records.enums import BookKind, Category
from bybit_records.record import NONEMPTY, Record, Wire

#: One level: ``[price, size]`` on the wire, both decimal strings exactly as Bybit sent
#: them. (The decoder checks them against ``DECIMAL_PATTERN`` for a whole frame at once: a
#: pattern here would make msgspec match each string alone, ten times slower.)
BookLevel = tuple[str, str]
#: A side's levels. Tuples, not lists: a tuple of strings leaves the garbage collector's
#: lists at its first collection, so updates waiting in a writer's buffer cost the
#: collector nothing (with lists, walking them took more time than decoding them), and
#: each takes less memory.
BookLevels = tuple[BookLevel, ...]


class BookUpdate(Record, frozen=True, gc=False):
    """One update of the book of one (category, symbol, depth): a snapshot, a delta, or
    a checkpoint (``BookKind``).

    A snapshot or checkpoint holds every level of the book; a delta holds the levels
    that changed (size ``"0"``: the level is gone). Bids are listed as Bybit sent them
    (descending), asks ascending; a checkpoint lists them in that order too.

    Identified by its book, its time, its update id and its kind: a checkpoint carries
    the update id and times of the delta it follows, so it differs from it by kind only.
    A depth-1 book re-sends an unchanged snapshot every 3 s with the same ``u`` (and a
    new ``ts``): the recorder does not store those (``BookValidator``).
    """

    natural_key: ClassVar[tuple[str, ...] | None] = (
        "category",
        "symbol",
        "depth",
        "exchange_ts_ms",
        "update_id",
        "kind",
    )

    category: Category
    symbol: Annotated[str, Wire("s"), NONEMPTY]
    #: the topic's depth: 1, 50, 200, 1000 (linear, inverse, spot); 25, 100 (option)
    depth: int
    kind: BookKind
    #: Bybit's ``u``: +1 per delta of one subscription; 1 after a service restart; a
    #: depth-1 re-send repeats it. 0 in some option snapshots of an empty book.
    update_id: Annotated[int, Wire("u")]
    #: Bybit's ``seq``, the cross sequence: comparable across depths (smaller: older).
    #: Absent on option books.
    seq: Annotated[int | None, Wire("seq")]
    #: the frame's ``cts``: the matching engine's time, comparable with a trade's time
    #: (sent since 2023-12)
    match_ts_ms: int | None
    #: the frame's ``ts``: when Bybit generated it
    exchange_ts_ms: int
    #: when the frame arrived here
    received_ts_ms: int
    #: ``((price, size), ...)``, best first
    bids: Annotated[BookLevels, Wire("b")]
    #: ``((price, size), ...)``, best first
    asks: Annotated[BookLevels, Wire("a")]

    @property
    def topic(self) -> str:
        """Bybit's topic of this book: ``orderbook.{depth}.{symbol}``."""
        return f"orderbook.{self.depth}.{self.symbol}"


def _is_zero(size: str) -> bool:
    """``size`` is a decimal string of value 0 (``"0"``, ``"0.000"``): one without a digit
    from 1 to 9 (the decoder lets only plain decimals through)."""
    return not size.strip("0.-")


#: How many price strings a side remembers the sort key of, before it starts afresh.
_KEY_CACHE_SIZE = 65_536


class _Side:
    """One side of a book: sort key → (price, size), and the keys in order, best first.

    A level's key is its price's decimal value (``"1.50"`` and ``"1.5"`` are one level),
    negated for bids so that ascending order is best first on both sides (``copy_negate``,
    not ``-``: it is exact, whatever the decimal context). The strings are kept as last
    sent. A delta names mostly prices seen before, so the key of each price string is
    remembered (``Decimal(text)`` is most of what an update costs otherwise).
    """

    __slots__ = ("_cache", "bids", "keys", "levels")

    def __init__(self, bids: bool) -> None:
        self.bids = bids
        self.levels: dict[Decimal, tuple[str, str]] = {}
        self.keys: list[Decimal] = []
        self._cache: dict[str, Decimal] = {}

    def _key(self, price: str) -> Decimal:
        key = self._cache.get(price)
        if key is None:
            if len(self._cache) >= _KEY_CACHE_SIZE:
                self._cache.clear()  # prices wander over weeks: bounded memory
            key = Decimal(price)
            if self.bids:
                key = key.copy_negate()
            self._cache[price] = key
        return key

    def reset(self, levels: Iterable[Sequence[str]]) -> None:
        key = self._key
        self.levels = {key(price): (price, size) for price, size in levels if not _is_zero(size)}
        self.keys = sorted(self.levels)

    def update(self, levels: Iterable[Sequence[str]]) -> None:
        book, keys, cache = self.levels, self.keys, self._cache
        for price, size in levels:
            key = cache.get(price) or self._key(price)
            if not size.strip("0.-"):  # _is_zero, inline: this loop is the hot path
                if book.pop(key, None) is not None:
                    del keys[bisect_left(keys, key)]
                # else: deleting a level that is not in the book is ignored (as Tardis does)
                continue
            if key not in book:
                insort(keys, key)
            book[key] = (price, size)

    def best_price(self) -> Decimal | None:
        """The best level's price, by value."""
        if not self.keys:
            return None
        key = self.keys[0]
        return key.copy_negate() if self.bids else key

    def best(self) -> list[str] | None:
        return list(self.levels[self.keys[0]]) if self.keys else None

    def in_order(self) -> BookLevels:
        levels = self.levels
        return tuple([levels[k] for k in self.keys])

    def values(self) -> dict[Decimal, Decimal]:
        return {Decimal(price): Decimal(size) for price, size in self.levels.values()}


def _values(levels: Iterable[Sequence[str]]) -> dict[Decimal, Decimal]:
    """A snapshot's levels by value (zero sizes left out, as ``reset`` leaves them)."""
    return {Decimal(p): Decimal(s) for p, s in levels if not _is_zero(s)}


class Book:
    """The book of one (category, symbol, depth) stream, built from its updates in order.

    ``apply``: a snapshot or checkpoint replaces the book; a delta sets each level it
    holds, and deletes those of size 0 (deleting a level that is not in the book is
    ignored, as Tardis documents for Bybit). Levels are ordered by decimal value and keep
    their exact strings. Nothing here checks the update ids: ``BookValidator`` in
    ``bybit_adapter`` does, and tells when the book cannot be trusted.

    A delta of k levels on a book of n costs O(k log n) comparisons plus the list
    insertions (memmove); a snapshot O(n log n).
    """

    __slots__ = ("_asks", "_bids", "_last", "_stream")

    def __init__(self) -> None:
        self._bids = _Side(bids=True)
        self._asks = _Side(bids=False)
        self._stream: tuple[Category, str, int] | None = None
        self._last: BookUpdate | None = None

    def apply(self, update: BookUpdate) -> None:
        """Apply ``update``; raises ``ValueError`` for an update of another book."""
        stream = (update.category, update.symbol, update.depth)
        if self._stream is None:
            self._stream = stream
        elif stream != self._stream:
            raise ValueError(f"an update of {stream} applied to the book of {self._stream}")
        if update.kind is BookKind.DELTA:
            self._bids.update(update.bids)
            self._asks.update(update.asks)
        else:
            self._bids.reset(update.bids)
            self._asks.reset(update.asks)
        self._last = update

    @property
    def update_id(self) -> int | None:
        """``u`` of the last update applied (None before the first)."""
        return None if self._last is None else self._last.update_id

    @property
    def last(self) -> BookUpdate | None:
        """The last update applied."""
        return self._last

    def bids(self) -> list[list[str]]:
        """``[[price, size], ...]``, highest price first."""
        return [list(level) for level in self._bids.in_order()]

    def asks(self) -> list[list[str]]:
        """``[[price, size], ...]``, lowest price first."""
        return [list(level) for level in self._asks.in_order()]

    def best_bid(self) -> list[str] | None:
        """``[price, size]`` of the highest bid, or None when there is no bid."""
        return self._bids.best()

    def best_ask(self) -> list[str] | None:
        """``[price, size]`` of the lowest ask, or None when there is no ask."""
        return self._asks.best()

    def crossed(self) -> bool:
        """The best bid is at or above the best ask: no matching engine leaves a book so,
        so the book is wrong. (An empty side is never crossed.)"""
        bid, ask = self._bids.best_price(), self._asks.best_price()
        return bid is not None and ask is not None and bid >= ask

    def same_levels(self, update: BookUpdate) -> bool:
        """A snapshot ``update`` holds exactly this book's levels (compared by value)."""
        return (
            _values(update.bids) == self._bids.values()
            and _values(update.asks) == self._asks.values()
        )

    def __len__(self) -> int:
        """The number of levels, both sides."""
        return len(self._bids.levels) + len(self._asks.levels)

    def checkpoint(self, at: BookUpdate) -> BookUpdate:
        """The whole book as a ``CHECKPOINT`` record, with the ids and times of ``at``
        (the update it follows, normally the last one applied)."""
        if self._stream is not None and (at.category, at.symbol, at.depth) != self._stream:
            raise ValueError(f"a checkpoint of {self._stream} at an update of another book")
        return msgspec.structs.replace(
            at,
            kind=BookKind.CHECKPOINT,
            bids=self._bids.in_order(),
            asks=self._asks.in_order(),
        )
