"""Coverage: per instrument, the time in which every trade is stored, and the holes in it.

What a session recorded is the span of its rows minus the windows its trade gaps left
unrecovered; what several sessions recorded is the union of that (two recorders on two hosts
recording the same symbols into one database: a trade is stored once, whoever saw it). The
time between sessions and the unrecovered gap windows are the holes; a gap window another
session recorded is *covered*: its row stays as its recorder wrote it, but nothing is missing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping

from recorder_tools import intervals
from recorder_tools.intervals import Interval
from recorder_tools.report.model import DayCoverage, Hole, SessionFacts
from recorder_tools.schema import FILL_FILLED, FILL_PARTIAL, STREAM_PUBLIC_TRADE, GapRow
from recorder_tools.trade_activity import Instrument


def recorded_spans(sessions: list[SessionFacts]) -> dict[Instrument, list[tuple[str, Interval]]]:
    """(run_id, recorded time) of every session per instrument it recorded."""
    spans: dict[Instrument, list[tuple[str, Interval]]] = defaultdict(list)
    for s in sessions:
        if s.category is None or s.recorded_from_ms is None or s.recorded_until_ms is None:
            continue
        for symbol in s.symbols:
            spans[(s.category, symbol)].append(
                (s.run_id, (s.recorded_from_ms, s.recorded_until_ms))
            )
    return spans


def missing_windows(
    gaps: list[tuple[str, GapRow]], stream: str = STREAM_PUBLIC_TRADE
) -> dict[Instrument, list[tuple[str | None, Interval]]]:
    """(run_id, still-missing window) of every gap of ``stream`` (trades by default) that REST
    did not fill."""
    missing: dict[Instrument, list[tuple[str | None, Interval]]] = defaultdict(list)
    for _, gap in gaps:
        window = _still_missing(gap)
        if gap.stream != stream or window is None or gap.category is None:
            continue
        if gap.symbol is not None:
            missing[(gap.category, gap.symbol)].append((gap.run_id, window))
    return missing


def _still_missing(gap: GapRow) -> Interval | None:
    if gap.fill_status == FILL_FILLED:
        return None
    if gap.fill_status == FILL_PARTIAL and gap.recovered_from_ts_ms is not None:
        return gap.start_ts_ms, gap.recovered_from_ts_ms
    return gap.start_ts_ms, gap.end_ts_ms


#: per instrument, per run id: the time that run recorded with every trade stored
CoveredPerRun = dict[Instrument, dict[str, list[Interval]]]


def covered_per_run(
    spans: dict[Instrument, list[tuple[str, Interval]]],
    missing: dict[Instrument, list[tuple[str | None, Interval]]],
) -> CoveredPerRun:
    """Per instrument and session: its lifetime minus its unrecovered windows (and those of
    gap rows whose run is unknown)."""
    per_run: CoveredPerRun = {}
    for instrument, run_spans in spans.items():
        gaps = missing.get(instrument, [])
        run_ids = {run_id for run_id, _ in run_spans}
        orphans = [w for run_id, w in gaps if run_id not in run_ids]
        runs: dict[str, list[Interval]] = defaultdict(list)
        for run_id, span in run_spans:
            own = [w for gap_run, w in gaps if gap_run == run_id]
            runs[run_id] += intervals.subtract([span], own + orphans)
        per_run[instrument] = dict(runs)
    return per_run


def union_of(per_run: CoveredPerRun) -> dict[Instrument, list[Interval]]:
    """Per instrument: the union over sessions of (lifetime - its unrecovered windows)."""
    return {
        instrument: intervals.union(piece for pieces in runs.values() for piece in pieces)
        for instrument, runs in per_run.items()
    }


def in_union(
    window: Interval, run_id: str | None, runs: dict[str, list[Interval]]
) -> tuple[list[Interval], list[str]]:
    """What the other sessions make of one session's still-missing ``window`` (both ends
    included): the parts none of them recorded, and the runs that recorded part of it."""
    others = {r: pieces for r, pieces in runs.items() if r != run_id}
    covering = sorted(
        r
        for r, pieces in others.items()
        if any(start <= window[1] and window[0] <= end for start, end in pieces)
    )
    cover = intervals.union(piece for pieces in others.values() for piece in pieces)
    if window[0] == window[1]:  # one millisecond: covered only if a piece contains it
        inside = any(start <= window[0] <= end for start, end in cover)
        return ([] if inside else [window]), covering
    return intervals.subtract([window], cover), covering


def between_sessions(
    spans: dict[Instrument, list[tuple[str, Interval]]],
) -> dict[Instrument, list[Interval]]:
    return {
        instrument: intervals.holes(span for _, span in run_spans)
        for instrument, run_spans in spans.items()
    }


def gap_hole(
    folder: str,
    gap: GapRow,
    per_stream: Mapping[str, CoveredPerRun] | None = None,
    host_of_run: dict[str, str | None] | None = None,
) -> Hole:
    """The hole of one gap row; for a gap of a stream in ``per_stream`` (trades, tickers) that
    REST did not fill, also what the union of every session's recording makes of it."""
    window = _still_missing(gap)
    hosts = host_of_run or {}
    uncovered: list[Interval] = [] if window is None else [window]
    covering: list[str] = []
    per_run = (per_stream or {}).get(gap.stream)
    if (
        window is not None
        and per_run is not None
        and gap.category is not None
        and gap.symbol is not None
    ):
        runs = per_run.get((gap.category, gap.symbol), {})
        uncovered, covering = in_union(window, gap.run_id, runs)
    return Hole(
        kind="gap",
        category=gap.category,
        symbol=gap.symbol,
        stream=gap.stream,
        start_ms=gap.start_ts_ms,
        end_ms=gap.end_ts_ms,
        duration_s=(gap.end_ts_ms - gap.start_ts_ms) / 1000,
        cause=gap.cause,
        fill_status=gap.fill_status,
        rows_recovered=gap.rows_recovered,
        missing_from_ms=None if window is None else window[0],
        missing_until_ms=None if window is None else window[1],
        folder=folder,
        detail=gap.detail,
        host=hosts.get(gap.run_id or ""),
        covered=window is not None and not uncovered,
        uncovered=uncovered,
        covered_by_runs=covering,
        covered_by_hosts=sorted({h for r in covering if (h := hosts.get(r)) is not None}),
    )


def day_coverage(covered: dict[Instrument, list[Interval]], holes: list[Hole]) -> list[DayCoverage]:
    days = []
    for (category, symbol), pieces in sorted(covered.items()):
        relevant = [
            h
            for h in holes
            if h.missing_from_ms is not None
            and h.missing_until_ms is not None
            and not h.covered
            and h.stream in (None, STREAM_PUBLIC_TRADE)
            and h.category == category
            and h.symbol in (None, symbol)
        ]
        for day, covered_ms in sorted(intervals.covered_ms_per_day(pieces).items()):
            overlapping = sum(
                1
                for h in relevant
                if (h.missing_from_ms or 0) < day + intervals.DAY_MS
                and (h.missing_until_ms or 0) >= day
            )
            days.append(
                DayCoverage(
                    category=category,
                    symbol=symbol,
                    date=time.strftime("%Y-%m-%d", time.gmtime(day / 1000)),
                    covered_fraction=round(covered_ms / intervals.DAY_MS, 6),
                    holes=overlapping,
                )
            )
    return days
