"""The ``recorder-report`` tables, printed with rich."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from recorder_tools.report.model import Hole, Report
from recorder_tools.schema import STREAM_PUBLIC_TRADE, STREAM_TICKERS

_STATUS_STYLE = {"completed": "green", "running": "cyan", "error": "red", "aborted": "red"}
_FILL_STYLE = {"filled": "green", "partial": "yellow", "unfillable": "red", "missing": "red"}


def utc(ms: int | None, with_ms: bool = False) -> str:
    """``2026-11-24 09:15:02`` (UTC), or ``-``."""
    if ms is None:
        return "-"
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000))
    return f"{text}.{ms % 1000:03d}" if with_ms else text


def duration(seconds: float) -> str:
    """``2d 03:04:05``, ``03:04:05``, ``4.2s`` or ``36ms`` (a book gap lasts milliseconds)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _numbers(table: Table, *names: str) -> None:
    """Right-aligned columns, for counts."""
    for name in names:
        table.add_column(name, justify="right")


def _share(fraction: float, whole: bool) -> str:
    """``99.21%``: green when all of it (to 0.01%) with nothing wrong in it, else yellow."""
    style = "green" if fraction >= 0.9999 and whole else "yellow"
    return f"[{style}]{fraction * 100:.2f}%[/]"


def print_report(report: Report, console: Console | None = None) -> None:
    # a pipe or file gets wide lines rather than wrapped cells
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    console.print(
        f"[bold]recorder report[/bold] {report.path}: {len(report.databases)} database(s), "
        f"{len(report.sessions)} session(s), generated {utc(report.generated_at_ms)} UTC"
    )
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {skipped}")
    for line in report.findings:
        console.print(f"  - {line}")
    for table in (
        _sessions(report),
        _hosts(report),
        _live(report),
        _instruments(report),
        _coverage(report),
        _days(report),
        _books(report),
        _holes(report),
        _events(report),
    ):
        if table.row_count:
            console.print(table)


def _sessions(report: Report) -> Table:
    table = Table(title="Sessions (times UTC, host clock)", title_justify="left")
    for name in ("session", "run", "start", "end", "duration", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("recorder host", "category", "symbols", "endpoint"):
        table.add_column(name)
    table.add_column("trades", justify="right")
    table.add_column("tickers", justify="right")
    table.add_column("tickers kept")
    for s in report.sessions:
        status = f"[{_STATUS_STYLE.get(s.status, 'white')}]{s.status}[/]"
        if s.process_gone:
            status += " [red](process gone)[/]"
        table.add_row(
            s.folder,
            s.run_id[:8],
            utc(s.started_at_ms),
            utc(s.ended_at_ms) if s.ended_at_ms is not None else "(running)",
            duration(s.duration_s),
            status,
            s.host or "-",
            s.category or "-",
            ",".join(s.symbols) or "-",
            s.network_host or "-",
            f"{s.trades:,}",
            f"{s.ticker_rows:,}",
            s.tickers_kept,
        )
    return table


def _hosts(report: Report) -> Table:
    """Per recorder host, from the database: printed for several hosts, or for a server
    database (whose sessions' health.json files are on their hosts)."""
    table = Table(
        title="Recorder hosts (from the database; times UTC, host clock)", title_justify="left"
    )
    shown = len(report.hosts) > 1 or any("://" in s.database for s in report.sessions)
    if not shown:
        return table
    for name in ("host", "state", "sessions", "status", "symbols", "last row"):
        table.add_column(name)
    _numbers(table, "trades", "tickers", "outages", "reconnects", "stalls", "pong timeouts")
    _numbers(table, "trade gaps", "unfilled", "covered by others", "holes")
    for h in report.hosts:
        state = {"recording": "cyan", "quiet": "red", "gone": "red"}.get(h.state, "white")
        last = utc(h.last_row_ms)
        if h.last_row_age_s is not None and h.state in ("recording", "quiet"):
            last += f" ({duration(h.last_row_age_s)} ago)"
        table.add_row(
            h.host,
            f"[{state}]{h.state}[/]",
            f"{h.sessions} ({h.running} running)",
            ", ".join(f"{n} {status}" for status, n in h.statuses.items()),
            ",".join(h.symbols) or "-",
            last,
            f"{h.trade_rows:,}",
            f"{h.ticker_rows:,}",
            str(h.outages),
            str(h.reconnects),
            str(h.stalls),
            str(h.pong_timeouts),
            str(h.trade_gaps),
            str(h.unfilled_trade_gaps),
            f"[green]{h.covered_trade_gaps}[/]" if h.covered_trade_gaps else "0",
            f"[red]{h.missing_trade_gaps}[/]" if h.missing_trade_gaps else "0",
        )
    return table


def _live(report: Report) -> Table:
    table = Table(title="Recording now (health.json)", title_justify="left")
    for name in ("session", "updated", "stream", "state", "last message", "msg/s", "buffered"):
        table.add_column(name)
    for health in report.live:
        updated = f"{health.age_s:.0f}s ago" + (" [red]STALE[/]" if health.stale else "")
        for stream in health.streams or []:
            state = stream.state if stream.state == "connected" else f"[red]{stream.state}[/]"
            age = stream.last_message_age_s
            table.add_row(
                health.folder,
                updated,
                stream.name,
                state,
                "-" if age is None else f"{age:.1f}s ago",
                "-" if stream.messages_per_s is None else f"{stream.messages_per_s:.1f}",
                f"{health.buffered_rows:,}",
            )
    return table


def _instruments(report: Report) -> Table:
    table = Table(title="Trades and tickers per instrument", title_justify="left")
    for name in ("category", "symbol"):
        table.add_column(name)
    _numbers(table, "trades", "repeated rows", "tickers")
    table.add_column("first trade")
    table.add_column("last trade")
    _numbers(table, "avg/min", "peak/min")
    table.add_column("peak minute")
    for i in report.instruments:
        table.add_row(
            i.category,
            i.symbol,
            f"{i.trades:,}",
            f"{i.repeated_trade_rows:,}",
            f"{i.ticker_rows:,}",
            utc(i.first_trade_ms, with_ms=True),
            utc(i.last_trade_ms, with_ms=True),
            f"{i.avg_trades_per_minute:,.1f}",
            f"{i.peak_trades_per_minute:,}",
            utc(i.peak_minute_ms),
        )
    return table


def _coverage(report: Report) -> Table:
    table = Table(
        title="Coverage: continuous intervals with every trade stored", title_justify="left"
    )
    for name in ("category", "symbol", "from", "to", "duration", "recorded by"):
        table.add_column(name)
    for c in report.coverage:
        table.add_row(
            c.category,
            c.symbol,
            utc(c.start_ms, with_ms=True),
            utc(c.end_ms, with_ms=True),
            duration(c.duration_s),
            ",".join(c.hosts) or "-",
        )
    return table


def _days(report: Report) -> Table:
    table = Table(title="Coverage per UTC day", title_justify="left")
    for name in ("category", "symbol", "date"):
        table.add_column(name)
    _numbers(table, "covered", "holes")
    for d in report.days:
        share = _share(d.covered_fraction, whole=not d.holes)
        table.add_row(d.category, d.symbol, d.date, share, str(d.holes))
    return table


def _books(report: Report) -> Table:
    """Beside the trades' coverage: what is stored of each order book, and how much of its
    span it can be trusted (no table without books)."""
    table = Table(
        title="Order books: updates stored, book gaps, time known-good (exchange clock)",
        title_justify="left",
    )
    for name in ("category", "symbol"):
        table.add_column(name)
    _numbers(table, "depth", "updates", "deltas", "snapshots", "checkpoints")
    for name in ("first update", "last update", "span"):
        table.add_column(name, no_wrap=True)
    _numbers(table, "book gaps")
    table.add_column("gaps by cause")
    _numbers(table, "known-good")
    for b in report.books:
        causes = ", ".join(
            f"{cause} {tally.gaps} ({duration(tally.duration_s)})"
            for cause, tally in b.gaps_by_cause.items()
        )
        fraction = b.known_good_fraction
        known = "-" if fraction is None else _share(fraction, whole=not b.gaps)
        table.add_row(
            b.category,
            b.symbol,
            str(b.depth),
            f"{b.updates:,}",
            f"{b.deltas:,}",
            f"{b.snapshots:,}",
            f"{b.checkpoints:,}",
            utc(b.first_ms, with_ms=True),
            utc(b.last_ms, with_ms=True),
            duration(b.span_s),
            f"[red]{b.gaps}[/]" if b.gaps else "0",
            causes or "-",
            known,
        )
    return table


def _holes(report: Report) -> Table:
    table = Table(
        title="Holes: gaps inside sessions (exchange clock) and time between sessions",
        title_justify="left",
    )
    for name in ("kind", "category", "symbol", "stream", "from", "to", "duration", "cause"):
        table.add_column(name, no_wrap=True)
    table.add_column("fill")
    table.add_column("recovered", justify="right")
    table.add_column("still missing", justify="right")
    table.add_column("all sessions")
    table.add_column("session")
    for h in report.holes:
        missing = (
            "none"
            if h.missing_from_ms is None or h.missing_until_ms is None
            else duration((h.missing_until_ms - h.missing_from_ms) / 1000)
        )
        table.add_row(
            h.kind,
            h.category or "-",
            h.symbol or "(all)",
            h.stream or "-",
            utc(h.start_ms, with_ms=True),
            utc(h.end_ms, with_ms=True),
            duration(h.duration_s),
            h.cause,
            f"[{_FILL_STYLE.get(h.fill_status, 'white')}]{h.fill_status}[/]",
            f"{h.rows_recovered:,}",
            missing,
            _in_union(h),
            h.folder or "-",
        )
    return table


def _in_union(hole: Hole) -> str:
    """What every session's recording together makes of a hole's still-missing window."""
    if hole.missing_from_ms is None:
        return "-"
    if hole.covered:
        return f"[green]covered by {','.join(hole.covered_by_hosts) or 'another session'}[/]"
    if hole.kind != "gap" or hole.stream not in (STREAM_PUBLIC_TRADE, STREAM_TICKERS):
        return "[red]missing[/]"
    left = sum(end - start for start, end in hole.uncovered) / 1000
    partly = f" (rest by {','.join(hole.covered_by_hosts)})" if hole.covered_by_hosts else ""
    return f"[red]missing {duration(left)}[/]{partly}"


def _events(report: Report) -> Table:
    table = Table(title="Reconnects, stalls and rejected frames per session", title_justify="left")
    table.add_column("session")
    _numbers(table, "reconnects", "disconnects", "stalls", "pong timeouts", "silences")
    _numbers(table, "auth failures", "rejected frames", "gaps", "unfilled gaps")
    for e in report.connection_events:
        table.add_row(
            e.folder,
            str(e.reconnects),
            str(e.disconnects),
            str(e.stalls),
            str(e.pong_timeouts),
            str(e.silences),
            str(e.auth_failures),
            str(e.rejected_frames),
            str(e.gaps),
            str(e.unfilled_gaps),
        )
    return table
