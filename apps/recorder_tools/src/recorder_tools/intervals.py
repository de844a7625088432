"""Closed millisecond intervals ``(start_ms, end_ms)``: union, difference, holes, days.

The arithmetic behind the coverage section of ``recorder-report``: what a session recorded is
its lifetime minus the windows its gaps left unrecovered, and what several sessions recorded
is the union of that.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

Interval = tuple[int, int]

DAY_MS = 86_400_000


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same time; touching ones merge."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] >= i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Iterable[Interval], removed: Iterable[Interval]) -> list[Interval]:
    """``intervals`` without the time in ``removed``; pieces shorter than 1 ms vanish."""
    result: list[Interval] = []
    cuts = union(removed)
    for start, end in union(intervals):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end < cursor or cut_start > end:
                continue
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            result.append((cursor, end))
    return result


def holes(intervals: Iterable[Interval]) -> list[Interval]:
    """The time between consecutive intervals of the union."""
    merged = union(intervals)
    return [(a[1], b[0]) for a, b in itertools.pairwise(merged)]


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def total_ms(intervals: Iterable[Interval]) -> int:
    return sum(end - start for start, end in union(intervals))


def covered_ms_per_day(intervals: Iterable[Interval]) -> dict[int, int]:
    """Covered milliseconds per UTC day, keyed by the day's start (ms)."""
    per_day: dict[int, int] = {}
    for start, end in union(intervals):
        day = start - start % DAY_MS
        while day < end:
            piece = min(end, day + DAY_MS) - max(start, day)
            if piece > 0:
                per_day[day] = per_day.get(day, 0) + piece
            day += DAY_MS
    return per_day
