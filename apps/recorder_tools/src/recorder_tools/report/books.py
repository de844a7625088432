"""Order books: per (category, symbol, depth), the updates stored, the book gaps, and the time
the stored book was known-good.

A book gap is a ``gaps`` row of stream ``orderbook`` whose detail starts with the book's topic
(``orderbook.50.BTCUSDT: ...``, as ``grid_db.books`` reads it): a lost or crossed update, a
service restart, an outage. Bybit keeps no book history, so no gap is ever refilled: inside one
there is no book. Known-good time is the trades' coverage, for a book (``coverage``): per
session, the span of its stored updates minus its book gaps, united over sessions.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from recorder_tools import intervals
from recorder_tools.intervals import Interval
from recorder_tools.report.contents import DatabaseContents
from recorder_tools.report.coverage import covered_per_run, missing_windows, union_of
from recorder_tools.report.model import BookFacts, GapTally
from recorder_tools.schema import STREAM_ORDERBOOK, GapRow

#: (category, symbol, depth)
BookKey = tuple[str, str, int]

_TOPIC = re.compile(r"orderbook\.(\d+)\.([^:]+):")


@dataclass(slots=True)
class _Stored:
    """What the databases hold of one book."""

    #: ``BookKind`` value -> rows
    kinds: Counter[str] = field(default_factory=Counter)
    #: run id ("" for rows whose run is unknown) -> first and last exchange time it stored
    spans: dict[str, Interval] = field(default_factory=dict)
    gaps: list[GapRow] = field(default_factory=list)

    def add(self, run_id: str, kind: str, rows: int, span: Interval) -> None:
        self.kinds[kind] += rows
        first, last = self.spans.get(run_id, span)
        self.spans[run_id] = (min(first, span[0]), max(last, span[1]))


def book_of_gap(gap: GapRow) -> BookKey | None:
    """The book a ``gaps`` row is of; None for a gap of another stream (or one naming no book:
    the depth is only in the detail)."""
    if gap.stream != STREAM_ORDERBOOK or gap.category is None or gap.detail is None:
        return None
    named = _TOPIC.match(gap.detail)
    if named is None or named[2] != gap.symbol:
        return None
    return gap.category, gap.symbol, int(named[1])


def book_facts(contents: list[DatabaseContents]) -> list[BookFacts]:
    """One entry per book with stored updates or book gaps, in any of the databases."""
    books: dict[BookKey, _Stored] = defaultdict(_Stored)
    for db in contents:
        for (run_id, category, symbol, depth, kind), (rows, *span) in db.books.items():
            books[(category, symbol, depth)].add(run_id or "", kind, rows, (span[0], span[1]))
        for gap in db.gaps:
            key = book_of_gap(gap)
            if key is not None:
                books[key].gaps.append(gap)
    return [_facts(key, stored) for key, stored in sorted(books.items())]


def _facts(key: BookKey, stored: _Stored) -> BookFacts:
    category, symbol, depth = key
    first = min((start for start, _ in stored.spans.values()), default=None)
    last = max((end for _, end in stored.spans.values()), default=None)
    span_ms = 0 if first is None or last is None else last - first
    known_ms = intervals.total_ms(_known_good(key, stored))
    return BookFacts(
        category=category,
        symbol=symbol,
        depth=depth,
        topic=f"orderbook.{depth}.{symbol}",
        updates=stored.kinds.total(),
        deltas=stored.kinds["delta"],
        snapshots=stored.kinds["snapshot"],
        checkpoints=stored.kinds["checkpoint"],
        first_ms=first,
        last_ms=last,
        span_s=span_ms / 1000,
        gaps=len(stored.gaps),
        gap_s=_gap_ms(stored.gaps) / 1000,
        gaps_by_cause=_by_cause(stored.gaps),
        known_good_s=known_ms / 1000,
        known_good_fraction=round(known_ms / span_ms, 6) if span_ms > 0 else None,
    )


def _known_good(key: BookKey, stored: _Stored) -> list[Interval]:
    """The time some session stored the book outside its book gaps."""
    instrument = key[:2]
    # only this book's gaps: a symbol's other depths have gaps of their own
    missing = missing_windows([("", gap) for gap in stored.gaps], STREAM_ORDERBOOK)
    per_run = covered_per_run({instrument: list(stored.spans.items())}, missing)
    return union_of(per_run).get(instrument, [])


def _gap_ms(gaps: list[GapRow]) -> int:
    return sum(int(gap.end_ts_ms) - int(gap.start_ts_ms) for gap in gaps)


def _by_cause(gaps: list[GapRow]) -> dict[str, GapTally]:
    causes: dict[str, list[GapRow]] = defaultdict(list)
    for gap in gaps:
        causes[str(gap.cause)].append(gap)
    return {
        cause: GapTally(len(mine), _gap_ms(mine) / 1000) for cause, mine in sorted(causes.items())
    }
