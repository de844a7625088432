"""Building the report: read every database of a target, then assemble the facts."""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter

from recorder_tools.database import OpenDatabases, open_all_read_only
from recorder_tools.report.books import book_facts
from recorder_tools.report.contents import DatabaseContents, read_contents
from recorder_tools.report.coverage import (
    CoveredPerRun,
    between_sessions,
    covered_per_run,
    day_coverage,
    gap_hole,
    missing_windows,
    recorded_spans,
    union_of,
)
from recorder_tools.report.findings import findings
from recorder_tools.report.hosts import host_facts
from recorder_tools.report.instruments import instrument_facts
from recorder_tools.report.live import live_health
from recorder_tools.report.model import (
    BETWEEN_SESSIONS,
    MINUTE_MS,
    CoveredInterval,
    Hole,
    Report,
    SessionFacts,
)
from recorder_tools.report.sessions import connection_events, session_facts
from recorder_tools.schema import STREAM_PUBLIC_TRADE, STREAM_TICKERS
from recorder_tools.trade_activity import Instrument, trade_counts


def build_report(target: str | os.PathLike[str], now_ms: int | None = None) -> Report:
    """Every fact of the report for the databases of ``target`` (path or database URL).

    Raises:
        FileNotFoundError: ``target`` does not exist or holds no recorder database.
        ReadOnlyOpenError: ``target`` is a URL the tools cannot use.
    """
    with open_all_read_only(target) as databases:
        return report_of(databases, now_ms)


def report_of(databases: OpenDatabases, now_ms: int | None = None) -> Report:
    """Every fact of the report for ``databases`` (opened by the caller, who closes them).

    Raises:
        FileNotFoundError: none of the databases could be opened.
    """
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    if not databases.opened:
        detail = f" ({'; '.join(databases.skipped)})" if databases.skipped else ""
        raise FileNotFoundError(f"no recorder database below {databases.target}{detail}")
    contents = [read_contents(db.source, db.engine) for db in databases]
    minute_counts = trade_counts(databases.engines, MINUTE_MS)
    return _assemble(databases.target, now_ms, contents, minute_counts, list(databases.skipped))


def _assemble(
    target: str,
    now_ms: int,
    contents: list[DatabaseContents],
    minute_counts: dict[Instrument, dict[int, int]],
    skipped: list[str],
) -> Report:
    sessions = _unique_labels(
        [session_facts(db, run, now_ms) for db in contents for run in db.runs]
    )
    sessions.sort(key=lambda s: (s.started_at_ms, s.folder))
    folder_of_run = {s.run_id: s.folder for s in sessions}
    host_of_run = {s.run_id: s.host for s in sessions}
    gaps = [(db.source.label, gap) for db in contents for gap in db.gaps]
    gaps.sort(key=lambda item: (item[1].start_ts_ms, item[0], item[1].id))

    spans = recorded_spans(sessions)
    per_run = covered_per_run(spans, missing_windows(gaps))
    # tickers have no history to refill, but another session may have recorded them
    per_stream: dict[str, CoveredPerRun] = {
        STREAM_PUBLIC_TRADE: per_run,
        STREAM_TICKERS: covered_per_run(spans, missing_windows(gaps, STREAM_TICKERS)),
    }
    covered = union_of(per_run)
    between = between_sessions(spans)

    instruments = instrument_facts(contents, minute_counts, covered)
    coverage = [
        CoveredInterval(
            c,
            s,
            start,
            end,
            (end - start) / 1000,
            _hosts_within(per_run[(c, s)], (start, end), host_of_run),
        )
        for (c, s), pieces in sorted(covered.items())
        for start, end in pieces
    ]
    holes = [
        gap_hole(folder_of_run.get(gap.run_id or "", folder), gap, per_stream, host_of_run)
        for folder, gap in gaps
    ]
    holes += [
        Hole(
            kind=BETWEEN_SESSIONS,
            category=c,
            symbol=s,
            stream=None,
            start_ms=start,
            end_ms=end,
            duration_s=(end - start) / 1000,
            cause="not recording",
            fill_status="missing",
            rows_recovered=0,
            missing_from_ms=start,
            missing_until_ms=end,
            folder=None,
            detail=None,
        )
        for (c, s), pieces in sorted(between.items())
        for start, end in pieces
    ]
    holes.sort(key=lambda h: (h.start_ms, h.category or "", h.symbol or "", h.stream or ""))
    days = day_coverage(covered, holes)
    runs = {run.id: (db, run) for db in contents for run in db.runs}
    events = [connection_events(*runs[s.run_id], s.folder) for s in sessions]
    live = live_health(contents, sessions, now_ms)
    hosts = host_facts(sessions, events, holes, now_ms)
    report = Report(
        path=target,
        generated_at_ms=now_ms,
        databases=[db.source.location for db in contents],
        findings=[],
        sessions=sessions,
        instruments=instruments,
        coverage=coverage,
        holes=holes,
        days=days,
        connection_events=events,
        live=live,
        skipped=skipped,
        hosts=hosts,
        books=book_facts(contents),
    )
    report.findings = findings(report)
    return report


def _unique_labels(sessions: list[SessionFacts]) -> list[SessionFacts]:
    """Two sessions of one host may share a folder name: those get their run id appended."""
    counts = Counter(s.folder for s in sessions)
    return [
        dataclasses.replace(s, folder=f"{s.folder}@{s.run_id[:8]}") if counts[s.folder] > 1 else s
        for s in sessions
    ]


def _hosts_within(
    runs: dict[str, list[tuple[int, int]]],
    interval: tuple[int, int],
    host_of_run: dict[str, str | None],
) -> list[str]:
    """The hosts whose sessions recorded part of ``interval``."""
    return sorted(
        {
            host
            for run_id, pieces in runs.items()
            if (host := host_of_run.get(run_id)) is not None
            and any(start <= interval[1] and interval[0] <= end for start, end in pieces)
        }
    )
