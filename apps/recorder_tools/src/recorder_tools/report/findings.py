"""The few sentences at the top of the report: is it healthy now, and is anything missing?

"No holes" is said only when it is true: no trade or private gap REST could not fill (unless
another session recorded the whole of a trade gap's window: the union of every session counts),
no time between sessions, and every session that ended recorded what it was asked to (not
``error``, ``aborted`` or crashed, and not without any data). Otherwise the headline says what
is wrong. With several recorder hosts it also says, per host, what the database shows of it.
Book gaps are said apart: they never refill, and a missing book is no missing trade.
"""

from __future__ import annotations

from recorder_tools.report.model import (
    BETWEEN_SESSIONS,
    PUBLIC_STREAMS,
    BookFacts,
    Hole,
    HostFacts,
    Report,
    SessionFacts,
)
from recorder_tools.schema import NEVER_REFILLED, RUN_RUNNING, STREAM_PUBLIC_TRADE

NO_HOLES = "no holes: every trade gap was refilled, and no time between sessions"
#: "no holes" when some trade gap was not refilled but other sessions recorded its window
NO_HOLES_IN_UNION = (
    "no holes: every trade gap was refilled or recorded by another session, "
    "and no time between sessions"
)
#: how many covered gaps the headline names one by one
_NAMED_GAPS = 4


def findings(report: Report) -> list[str]:
    """A few sentences that answer: is it healthy now, and is anything missing?"""
    lines = _fleet(report.hosts) if len(report.hosts) > 1 else []
    lines += [
        f"host {h.host}: a session is running but wrote no row for {h.last_row_age_s:.0f}s "
        f"(its health.json is on {h.host})"
        for h in report.hosts
        if h.state == "quiet" and h.last_row_age_s is not None
    ]
    running = [s for s in report.sessions if s.status == RUN_RUNNING and not s.process_gone]
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
    incomplete: list[SessionFacts] = []
    for s in report.sessions:
        no_data = s.recorded_from_ms is None
        if no_data:
            lines.append(f"{s.folder}: received no data at all (could it connect?)")
        if s.process_gone:
            lines.append(f"{s.folder}: marked running but its process is gone (crashed?)")
        elif s.status in ("error", "aborted"):
            lines.append(f"{s.folder}: ended {s.status}" + (f": {s.error}" if s.error else ""))
        elif s.status == "completed" and s.error:
            lines.append(f"{s.folder}: completed, but {s.error}{_union_note(report, s)}")
        if s.process_gone or s.status in ("error", "aborted") or (no_data and s not in running):
            incomplete.append(s)
    if not running:
        lines.append("no session is recording now")
    missing = [h for h in report.holes if h.missing_from_ms is not None]
    covered = [h for h in missing if h.stream == STREAM_PUBLIC_TRADE and h.covered]
    trade_gaps = [h for h in missing if h.stream == STREAM_PUBLIC_TRADE and not h.covered]
    if covered:
        lines.append(_covered_line(covered))
    private_gaps = [h for h in missing if h.stream is not None and h.stream not in PUBLIC_STREAMS]
    between = [h for h in missing if h.kind == BETWEEN_SESSIONS]
    if trade_gaps or between:
        parts = []
        if trade_gaps:
            parts.append(f"{len(trade_gaps)} trade gap(s) REST could not fill")
        if between:
            parts.append(f"{len(between)} stretch(es) between sessions")
        lines.append("trades may be missing in " + " and ".join(parts))
    if private_gaps:
        lines.append(
            f"private data (executions, orders) may be missing in {len(private_gaps)} "
            "gap(s) REST could not fill"
        )
    lines += _book_gaps(report.books)
    if incomplete:
        folders = ", ".join(dict.fromkeys(s.folder for s in incomplete))
        lines.append(
            f"{len(incomplete)} session(s) did not record all they were asked to ({folders}): "
            "see above; the holes listed below may not be all"
        )
    if not (trade_gaps or between or private_gaps or incomplete):
        lines.append(NO_HOLES_IN_UNION if covered else NO_HOLES)
    return lines


def _union_note(report: Report, session: SessionFacts) -> str:
    """A session's own unfilled gaps that other sessions recorded in full: say so."""
    # trade and private gaps: what runs.error counts (ticker gaps never refill)
    unfilled = [
        h
        for h in report.holes
        if h.kind == "gap"
        and h.folder == session.folder
        and h.stream not in NEVER_REFILLED
        and h.missing_from_ms is not None
    ]
    if unfilled and all(h.covered for h in unfilled):
        hosts = sorted({name for h in unfilled for name in h.covered_by_hosts})
        return f" (every one of them was recorded by {', '.join(hosts) or 'another session'})"
    return ""


def _book_gaps(books: list[BookFacts]) -> list[str]:
    """One line when a book has gaps: the books, and the causes."""
    broken = [b for b in books if b.gaps]
    if not broken:
        return []
    named = [
        f"{b.topic} {', '.join(f'{cause} {t.gaps}' for cause, t in b.gaps_by_cause.items())}"
        for b in broken[:_NAMED_GAPS]
    ]
    more = f", and {len(broken) - _NAMED_GAPS} more" if len(broken) > _NAMED_GAPS else ""
    return [
        f"order books: {sum(b.gaps for b in broken)} book gap(s), no book known inside them "
        f"({'; '.join(named)}{more})"
    ]


def _fleet(hosts: list[HostFacts]) -> list[str]:
    def one(h: HostFacts) -> str:
        state = {"recording": "recording", "quiet": "quiet", "gone": "process gone"}.get(
            h.state, "ended"
        )
        return f"{h.host} ({h.sessions} session(s), {state})"

    return [f"{len(hosts)} recorder hosts: " + ", ".join(one(h) for h in hosts)]


def _covered_line(covered: list[Hole]) -> str:
    named = [
        f"{h.host or h.folder} {h.symbol} by {', '.join(h.covered_by_hosts) or 'another session'}"
        for h in covered[:_NAMED_GAPS]
    ]
    more = f", and {len(covered) - _NAMED_GAPS} more" if len(covered) > _NAMED_GAPS else ""
    return (
        f"{len(covered)} trade gap(s) REST could not fill were recorded by another session, "
        f"nothing is missing there ({'; '.join(named)}{more})"
    )
