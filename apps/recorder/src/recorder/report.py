"""``recorder-report PATH``: is the recording healthy, and is the data continuous?

PATH is a session folder, a database file or a whole ``outputs/`` tree; every ``recorder.db``
below it is read (read-only). The report has the sessions, per-instrument trade and ticker
counts, coverage (the continuous intervals per symbol and every hole: gaps inside sessions and
the time between sessions), coverage per UTC day, and reconnects, stalls and rejected frames.
``--json`` prints the same facts as JSON, ``--plot FILE.png`` draws trades per minute per symbol
with the holes shaded and reconnects marked.

Times are milliseconds since the epoch, UTC. Session lifetimes are on the recorder host's clock;
trade times and gap windows are on the exchange clock (see docs/schema.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from grid_db import Gap, PublicTrade, RejectedFrame, Run, TickerSnapshot
from recorder import intervals
from recorder.health_file import FILE_NAME as HEALTH_FILE_NAME
from recorder.health_file import read_health_file
from recorder.intervals import Interval
from recorder.provenance import host_name, pid_alive
from recorder.session_dbs import SessionDatabase, find_databases, open_read_only
from recorder.trade_activity import Instrument, trade_counts

#: gap causes that mean the connection was lost and re-established
RECONNECT_CAUSES = ("disconnect", "stall", "pong_timeout", "connect_failed")
PUBLIC_STREAMS = frozenset({"publicTrade", "tickers"})
MINUTE_MS = 60_000
BETWEEN_SESSIONS = "between sessions"


# ---- the facts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """One ``runs`` row: a recording session."""

    folder: str
    database: str
    run_id: str
    status: str  # completed | error | aborted | running
    #: ``running``, but its process is gone (this host only): it died without closing the run
    process_gone: bool
    started_at_ms: int
    ended_at_ms: int | None
    #: the recorded time: from the first row received to the last one (to now while the
    #: session runs); None when the session received nothing (it never connected)
    recorded_from_ms: int | None
    recorded_until_ms: int | None
    duration_s: float
    category: str | None
    symbols: list[str]
    network_host: str | None
    trades: int
    ticker_rows: int
    error: str | None


@dataclass(frozen=True, slots=True)
class InstrumentFacts:
    """Trades and tickers of one (category, symbol) over every session."""

    category: str
    symbol: str
    #: distinct trades (a trade stored by two sessions counts once)
    trades: int
    #: rows of trades stored by more than one session (dropped by ``recorder-export``)
    repeated_trade_rows: int
    ticker_rows: int
    first_trade_ms: int | None
    last_trade_ms: int | None
    recorded_s: float
    #: trades per minute of recorded time
    avg_trades_per_minute: float
    peak_trades_per_minute: int
    peak_minute_ms: int | None


@dataclass(frozen=True, slots=True)
class CoveredInterval:
    """A stretch of time in which every trade of the symbol is stored."""

    category: str
    symbol: str
    start_ms: int
    end_ms: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Hole:
    """A gap row of a session, or time between sessions (``kind``)."""

    kind: str  # "gap" | "between sessions"
    category: str | None
    symbol: str | None  # None: every symbol of the category (private streams)
    stream: str | None  # None between sessions
    start_ms: int
    end_ms: int
    duration_s: float
    cause: str  # disconnect, stall, pong_timeout, silence, auth, ...; "not recording"
    fill_status: str  # filled | partial | unfillable; "missing" between sessions
    rows_recovered: int
    #: the part still missing; None when filled
    missing_from_ms: int | None
    missing_until_ms: int | None
    folder: str | None  # the session of a gap
    detail: str | None


@dataclass(frozen=True, slots=True)
class DayCoverage:
    """How much of one UTC day of one symbol has every trade stored."""

    category: str
    symbol: str
    date: str  # YYYY-MM-DD
    covered_fraction: float  # of the whole day
    holes: int  # holes that overlap the day (gaps with missing data, time between sessions)


@dataclass(frozen=True, slots=True)
class ConnectionEvents:
    """Reconnects, stalls, silences and rejected frames of one session."""

    folder: str
    run_id: str
    reconnects: int
    disconnects: int
    stalls: int
    pong_timeouts: int
    silences: int
    auth_failures: int
    rejected_frames: int
    gaps: int
    #: trade and private gaps REST did not fully refill (ticker gaps never can; not counted)
    unfilled_gaps: int


@dataclass(frozen=True, slots=True)
class StreamLiveness:
    name: str
    state: str
    last_message_age_s: float | None
    messages_per_s: float | None


@dataclass(frozen=True, slots=True)
class LiveHealth:
    """The ``health.json`` of a session that is recording now."""

    folder: str
    run_id: str
    written_at_ms: int
    age_s: float
    stale: bool  # not rewritten within twice the health interval
    streams: list[StreamLiveness]
    buffered_rows: int
    reconnects: int


@dataclass(slots=True)
class Report:
    path: str
    generated_at_ms: int
    databases: list[str]
    findings: list[str]
    sessions: list[SessionFacts]
    instruments: list[InstrumentFacts]
    coverage: list[CoveredInterval]
    holes: list[Hole]
    days: list[DayCoverage]
    connection_events: list[ConnectionEvents]
    live: list[LiveHealth]
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ---- reading one database ----------------------------------------------------------------


@dataclass(slots=True)
class _DatabaseContents:
    source: SessionDatabase
    runs: list[Run]
    #: (run_id, category, symbol) -> (rows, first and last received_ts_ms)
    trades: dict[tuple[str | None, str, str], tuple[int, int, int]]
    tickers: dict[tuple[str | None, str, str], tuple[int, int, int]]
    #: (category, symbol) -> (first, last trade time)
    trade_span: dict[Instrument, tuple[int, int]]
    gaps: list[Gap]
    rejected: dict[str | None, int]


def _read(source: SessionDatabase, engine: Engine) -> _DatabaseContents:
    with Session(engine) as session:
        runs = list(session.scalars(select(Run).order_by(Run.started_at_ms)))
        gaps = list(session.scalars(select(Gap).order_by(Gap.start_ts_ms, Gap.id)))
        trades = {
            (run_id, category, symbol): (int(count), int(first), int(last))
            for run_id, category, symbol, count, first, last in session.execute(
                select(
                    PublicTrade.run_id,
                    PublicTrade.category,
                    PublicTrade.symbol,
                    func.count(),
                    func.min(PublicTrade.received_ts_ms),
                    func.max(PublicTrade.received_ts_ms),
                ).group_by(PublicTrade.run_id, PublicTrade.category, PublicTrade.symbol)
            )
        }
        tickers = {
            (run_id, category, symbol): (int(count), int(first), int(last))
            for run_id, category, symbol, count, first, last in session.execute(
                select(
                    TickerSnapshot.run_id,
                    TickerSnapshot.category,
                    TickerSnapshot.symbol,
                    func.count(),
                    func.min(TickerSnapshot.received_ts_ms),
                    func.max(TickerSnapshot.received_ts_ms),
                ).group_by(TickerSnapshot.run_id, TickerSnapshot.category, TickerSnapshot.symbol)
            )
        }
        trade_span = {
            (category, symbol): (int(first), int(last))
            for category, symbol, first, last in session.execute(
                select(
                    PublicTrade.category,
                    PublicTrade.symbol,
                    func.min(PublicTrade.trade_time_ms),
                    func.max(PublicTrade.trade_time_ms),
                ).group_by(PublicTrade.category, PublicTrade.symbol)
            )
        }
        rejected = {
            run_id: int(count)
            for run_id, count in session.execute(
                select(RejectedFrame.run_id, func.count()).group_by(RejectedFrame.run_id)
            )
        }
        session.expunge_all()
    return _DatabaseContents(source, runs, trades, tickers, trade_span, gaps, rejected)


# ---- building the report -----------------------------------------------------------------


def build_report(path: Path, now_ms: int | None = None) -> Report:
    """Every fact of the report for the databases below ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no recorder database.
    """
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    sources = find_databases(path)
    contents: list[_DatabaseContents] = []
    engines: list[Engine] = []
    skipped: list[str] = []
    try:
        for source in sources:
            try:
                engine = open_read_only(source.path)
            except Exception as exc:
                skipped.append(f"{source.path}: {exc}")
                continue
            engines.append(engine)
            contents.append(_read(source, engine))
        if not contents:
            detail = f" ({'; '.join(skipped)})" if skipped else ""
            raise FileNotFoundError(f"no recorder database below {path}{detail}")
        minute_counts = trade_counts(engines, MINUTE_MS)
    finally:
        for engine in engines:
            engine.dispose()
    return _assemble(path, now_ms, contents, minute_counts, skipped)


def _assemble(
    path: Path,
    now_ms: int,
    contents: list[_DatabaseContents],
    minute_counts: dict[Instrument, dict[int, int]],
    skipped: list[str],
) -> Report:
    sessions = [_session_facts(db, run, now_ms) for db in contents for run in db.runs]
    sessions.sort(key=lambda s: (s.started_at_ms, s.folder))
    folder_of_run = {s.run_id: s.folder for s in sessions}
    gaps = [(db.source.label, gap) for db in contents for gap in db.gaps]
    gaps.sort(key=lambda item: (item[1].start_ts_ms, item[0], item[1].id))

    spans = _recorded_spans(sessions)
    missing = _missing_windows(gaps)
    covered = _covered(spans, missing)
    between = _between_sessions(spans)

    instruments = _instrument_facts(contents, minute_counts, covered)
    coverage = [
        CoveredInterval(c, s, start, end, (end - start) / 1000)
        for (c, s), pieces in sorted(covered.items())
        for start, end in pieces
    ]
    holes = [_gap_hole(folder_of_run.get(gap.run_id or "", folder), gap) for folder, gap in gaps]
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
    days = _day_coverage(covered, holes)
    runs = {run.id: (db, run) for db in contents for run in db.runs}
    events = [_connection_events(*runs[s.run_id], s.folder) for s in sessions]
    live = _live_health(contents, sessions, now_ms)
    report = Report(
        path=str(path),
        generated_at_ms=now_ms,
        databases=[str(db.source.path) for db in contents],
        findings=[],
        sessions=sessions,
        instruments=instruments,
        coverage=coverage,
        holes=holes,
        days=days,
        connection_events=events,
        live=live,
        skipped=skipped,
    )
    report.findings = _findings(report)
    return report


def _config_summary(config_json: str) -> tuple[str | None, list[str], str | None]:
    """(category, symbols, network host) from a run's saved configuration."""
    try:
        config = json.loads(config_json)
    except ValueError:
        return None, [], None
    if not isinstance(config, dict):
        return None, [], None
    category = config.get("category")
    symbols = [str(s) for s in config.get("symbols") or []]
    network = config.get("network") or {}
    url = (
        network.get("public_ws_url") or network.get("rest_url")
        if isinstance(network, dict)
        else None
    )
    host = urlsplit(str(url)).netloc or None if url else None
    return (str(category) if category else None), symbols, host


def _session_facts(db: _DatabaseContents, run: Run, now_ms: int) -> SessionFacts:
    category, symbols, host = _config_summary(run.config_json)
    trades = {k: v for k, v in db.trades.items() if k[0] == run.id}
    tickers = {k: v for k, v in db.tickers.items() if k[0] == run.id}
    symbols = list(dict.fromkeys([*symbols, *(k[2] for k in trades), *(k[2] for k in tickers)]))
    rows = [*trades.values(), *tickers.values()]
    # Rows, not the run's start and end, bound what was recorded: a session that could not
    # connect, or ended while reconnecting, writes no gap row for that time. (ended_at_ms of
    # an aborted run is when the abort was noticed, not when the process died.)
    recorded_from = min((r[1] for r in rows), default=None)
    recorded_until = max((r[2] for r in rows), default=None)
    process_gone = False
    if run.status == "running":
        alive = run.host == host_name() and pid_alive(run.pid)
        process_gone = run.host == host_name() and not alive
        if alive and recorded_until is not None:
            recorded_until = now_ms
    end_for_duration = run.ended_at_ms
    if end_for_duration is None:
        end_for_duration = now_ms if not process_gone else recorded_until or run.started_at_ms
    return SessionFacts(
        folder=db.source.label,
        database=str(db.source.path),
        run_id=run.id,
        status=run.status,
        process_gone=process_gone,
        started_at_ms=run.started_at_ms,
        ended_at_ms=run.ended_at_ms,
        recorded_from_ms=recorded_from,
        recorded_until_ms=recorded_until,
        duration_s=(end_for_duration - run.started_at_ms) / 1000,
        category=category,
        symbols=symbols,
        network_host=host,
        trades=sum(v[0] for v in trades.values()),
        ticker_rows=sum(v[0] for v in tickers.values()),
        error=run.error,
    )


def _recorded_spans(sessions: list[SessionFacts]) -> dict[Instrument, list[tuple[str, Interval]]]:
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


def _missing_windows(
    gaps: list[tuple[str, Gap]],
) -> dict[Instrument, list[tuple[str | None, Interval]]]:
    """(run_id, still-missing window) of every trade gap that REST did not fill."""
    missing: dict[Instrument, list[tuple[str | None, Interval]]] = defaultdict(list)
    for _, gap in gaps:
        window = _still_missing(gap)
        if gap.stream != "publicTrade" or window is None or gap.category is None:
            continue
        if gap.symbol is not None:
            missing[(gap.category, gap.symbol)].append((gap.run_id, window))
    return missing


def _still_missing(gap: Gap) -> Interval | None:
    if gap.fill_status == "filled":
        return None
    if gap.fill_status == "partial" and gap.recovered_from_ts_ms is not None:
        return gap.start_ts_ms, gap.recovered_from_ts_ms
    return gap.start_ts_ms, gap.end_ts_ms


def _covered(
    spans: dict[Instrument, list[tuple[str, Interval]]],
    missing: dict[Instrument, list[tuple[str | None, Interval]]],
) -> dict[Instrument, list[Interval]]:
    """Per instrument: the union over sessions of (lifetime - its unrecovered windows)."""
    covered: dict[Instrument, list[Interval]] = {}
    for instrument, run_spans in spans.items():
        gaps = missing.get(instrument, [])
        run_ids = {run_id for run_id, _ in run_spans}
        orphans = [w for run_id, w in gaps if run_id not in run_ids]
        pieces: list[Interval] = []
        for run_id, span in run_spans:
            own = [w for gap_run, w in gaps if gap_run == run_id]
            pieces += intervals.subtract([span], own + orphans)
        covered[instrument] = intervals.union(pieces)
    return covered


def _between_sessions(
    spans: dict[Instrument, list[tuple[str, Interval]]],
) -> dict[Instrument, list[Interval]]:
    return {
        instrument: intervals.holes(span for _, span in run_spans)
        for instrument, run_spans in spans.items()
    }


def _instrument_facts(
    contents: list[_DatabaseContents],
    minute_counts: dict[Instrument, dict[int, int]],
    covered: dict[Instrument, list[Interval]],
) -> list[InstrumentFacts]:
    rows: dict[Instrument, int] = defaultdict(int)
    tickers: dict[Instrument, int] = defaultdict(int)
    spans: dict[Instrument, list[tuple[int, int]]] = defaultdict(list)
    for db in contents:
        for (_, category, symbol), (count, *_) in db.trades.items():
            rows[(category, symbol)] += count
        for (_, category, symbol), (count, *_) in db.tickers.items():
            tickers[(category, symbol)] += count
        for instrument, span in db.trade_span.items():
            spans[instrument].append(span)
    facts = []
    for instrument in sorted(set(rows) | set(tickers) | set(covered)):
        category, symbol = instrument
        minutes = minute_counts.get(instrument, {})
        trades = sum(minutes.values())
        recorded_ms = intervals.total_ms(covered.get(instrument, []))
        first = min((s[0] for s in spans[instrument]), default=None)
        last = max((s[1] for s in spans[instrument]), default=None)
        if recorded_ms <= 0 and first is not None and last is not None:
            recorded_ms = last - first
        peak_minute = max(minutes, key=lambda m: (minutes[m], -m), default=None)
        facts.append(
            InstrumentFacts(
                category=category,
                symbol=symbol,
                trades=trades,
                repeated_trade_rows=rows[instrument] - trades,
                ticker_rows=tickers[instrument],
                first_trade_ms=first,
                last_trade_ms=last,
                recorded_s=recorded_ms / 1000,
                avg_trades_per_minute=round(trades / (recorded_ms / MINUTE_MS), 3)
                if recorded_ms > 0
                else 0.0,
                peak_trades_per_minute=minutes[peak_minute] if peak_minute is not None else 0,
                peak_minute_ms=peak_minute,
            )
        )
    return facts


def _gap_hole(folder: str, gap: Gap) -> Hole:
    window = _still_missing(gap)
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
    )


def _day_coverage(
    covered: dict[Instrument, list[Interval]], holes: list[Hole]
) -> list[DayCoverage]:
    days = []
    for (category, symbol), pieces in sorted(covered.items()):
        relevant = [
            h
            for h in holes
            if h.missing_from_ms is not None
            and h.missing_until_ms is not None
            and h.stream in (None, "publicTrade")
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


def _connection_events(db: _DatabaseContents, run: Run, folder: str) -> ConnectionEvents:
    gaps = [g for g in db.gaps if g.run_id == run.id]

    def outages(*causes: str) -> int:
        # one outage writes a gap row per stream and symbol, all detected at the same moment
        return len(
            {(g.stream in PUBLIC_STREAMS, g.detected_at_ms) for g in gaps if g.cause in causes}
        )

    return ConnectionEvents(
        folder=folder,
        run_id=run.id,
        reconnects=outages(*RECONNECT_CAUSES),
        disconnects=outages("disconnect"),
        stalls=outages("stall"),
        pong_timeouts=outages("pong_timeout"),
        silences=len({(g.symbol, g.detected_at_ms) for g in gaps if g.cause == "silence"}),
        auth_failures=outages("auth"),
        rejected_frames=db.rejected.get(run.id, 0),
        gaps=len(gaps),
        unfilled_gaps=sum(1 for g in gaps if g.stream != "tickers" and g.fill_status != "filled"),
    )


def _live_health(
    contents: list[_DatabaseContents], sessions: list[SessionFacts], now_ms: int
) -> list[LiveHealth]:
    running = {s.run_id: s for s in sessions if s.status == "running" and not s.process_gone}
    live = []
    for db in contents:
        document = read_health_file(db.source.path.parent / HEALTH_FILE_NAME)
        if document is None or document.get("run_id") not in running:
            continue
        if document.get("status") != "running":
            continue
        written = int(document.get("written_at_ms") or 0)
        interval = float(document.get("interval_s") or 0)
        age = (now_ms - written) / 1000
        streams = [
            StreamLiveness(
                name=str(s.get("name")),
                state=str(s.get("state")),
                last_message_age_s=s.get("last_message_age_s"),
                messages_per_s=s.get("messages_per_s"),
            )
            for s in document.get("streams") or []
            if isinstance(s, dict)
        ]
        live.append(
            LiveHealth(
                folder=db.source.label,
                run_id=str(document["run_id"]),
                written_at_ms=written,
                age_s=age,
                stale=age > 2 * interval + 30,
                streams=streams,
                buffered_rows=sum(
                    int(w.get("buffered") or 0) for w in document.get("writers") or []
                ),
                reconnects=int(document.get("reconnects") or 0),
            )
        )
    return live


def _findings(report: Report) -> list[str]:
    """A few sentences that answer: is it healthy now, and is anything missing?"""
    lines = []
    running = [s for s in report.sessions if s.status == "running" and not s.process_gone]
    live = {h.run_id: h for h in report.live}
    for s in running:
        health = live.get(s.run_id)
        if health is None:
            lines.append(f"{s.folder}: recording, no health.json to check")
            continue
        problems = [f"{x.name} {x.state}" for x in health.streams if x.state != "connected"]
        if health.stale:
            problems.append(f"health.json not updated for {health.age_s:.0f}s")
        state = "; ".join(problems) if problems else "all streams connected"
        lines.append(
            f"{s.folder}: recording, {state} (health.json {health.age_s:.0f}s old, "
            f"{health.reconnects} reconnects)"
        )
    for s in report.sessions:
        if s.recorded_from_ms is None:
            lines.append(f"{s.folder}: received no data at all (could it connect?)")
        if s.process_gone:
            lines.append(f"{s.folder}: marked running but its process is gone (crashed?)")
        elif s.status in ("error", "aborted"):
            lines.append(f"{s.folder}: ended {s.status}" + (f": {s.error}" if s.error else ""))
    if not running:
        lines.append("no session is recording now")
    missing = [h for h in report.holes if h.missing_from_ms is not None]
    trade_gaps = [h for h in missing if h.stream == "publicTrade"]
    between = [h for h in missing if h.kind == BETWEEN_SESSIONS]
    if trade_gaps or between:
        parts = []
        if trade_gaps:
            parts.append(f"{len(trade_gaps)} trade gap(s) REST could not fill")
        if between:
            parts.append(f"{len(between)} stretch(es) between sessions")
        lines.append("trades may be missing in " + " and ".join(parts))
    else:
        lines.append("no holes: every trade gap was refilled, and no time between sessions")
    return lines


# ---- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recorder-report",
        description="Health and coverage of recorded sessions: a session folder, a database "
        "file, or an outputs/ tree of many sessions.",
    )
    parser.add_argument("path", type=Path, help="session folder, recorder.db, or outputs/ tree")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw trades per minute per symbol, holes shaded, reconnects marked",
    )
    args = parser.parse_args(argv)
    try:
        report = build_report(args.path)
    except FileNotFoundError as exc:
        print(f"recorder-report: {exc}", file=sys.stderr)
        return 1
    if args.plot is not None:
        from recorder.report_plot import plot_report

        plot_report(report, args.plot)
    if args.json:
        print(report.to_json())
    else:
        from recorder.report_tables import print_report

        print_report(report)
        if args.plot is not None:
            print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
