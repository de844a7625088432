"""Per recorder host: its health, derived from the database alone.

A fleet of recorders on several hosts writes into one database; each session's ``health.json``
stays on its host, out of the report's reach. What the database tells about a host is enough
to judge it: its sessions (``runs.host``) and their status, the last row it wrote, and its
outages and gaps, each gap judged against the union of every session's recording.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from recorder_tools import intervals
from recorder_tools.report.model import (
    QUIET_AFTER_S,
    ConnectionEvents,
    Hole,
    HostFacts,
    SessionFacts,
)
from recorder_tools.schema import FILL_FILLED, RUN_RUNNING, STREAM_PUBLIC_TRADE

#: the host of runs whose ``runs.host`` is empty
UNKNOWN_HOST = "?"


def host_facts(
    sessions: list[SessionFacts],
    events: list[ConnectionEvents],
    holes: list[Hole],
    now_ms: int,
) -> list[HostFacts]:
    """One ``HostFacts`` per host that recorded a session, by host name."""
    by_host: dict[str, list[SessionFacts]] = defaultdict(list)
    for s in sessions:
        by_host[s.host or UNKNOWN_HOST].append(s)
    events_of_run = {e.run_id: e for e in events}
    facts = []
    for host, own in sorted(by_host.items()):
        runs = {s.run_id for s in own}
        own_events = [events_of_run[r] for r in runs if r in events_of_run]
        trade_gaps = [
            h
            for h in holes
            if h.kind == "gap"
            and h.stream == STREAM_PUBLIC_TRADE
            and (h.host or UNKNOWN_HOST) == host
        ]
        unfilled = [h for h in trade_gaps if h.fill_status != FILL_FILLED]
        running = [s for s in own if s.status == RUN_RUNNING and not s.process_gone]
        gone = [s for s in own if s.process_gone]
        first = min(
            (s.recorded_from_ms for s in own if s.recorded_from_ms is not None), default=None
        )
        last = max((s.last_row_ms for s in own if s.last_row_ms is not None), default=None)
        age = None if last is None else max(0.0, (now_ms - last) / 1000)
        if gone:
            state = "gone"
        elif running:
            state = "recording" if age is not None and age <= QUIET_AFTER_S else "quiet"
        else:
            state = "ended"
        facts.append(
            HostFacts(
                host=host,
                sessions=len(own),
                running=len(running),
                ended=len(own) - len(running),
                statuses=dict(sorted(Counter(s.status for s in own).items())),
                symbols=list(dict.fromkeys(sym for s in own for sym in s.symbols)),
                first_row_ms=first,
                last_row_ms=last,
                last_row_age_s=None if age is None else round(age, 3),
                state=state,
                trade_rows=sum(s.trades for s in own),
                ticker_rows=sum(s.ticker_rows for s in own),
                outages=sum(e.outages for e in own_events),
                reconnects=sum(e.reconnects for e in own_events),
                stalls=sum(e.stalls for e in own_events),
                pong_timeouts=sum(e.pong_timeouts for e in own_events),
                silences=sum(e.silences for e in own_events),
                rejected_frames=sum(e.rejected_frames for e in own_events),
                trade_gaps=len(trade_gaps),
                unfilled_trade_gaps=len(unfilled),
                covered_trade_gaps=sum(1 for h in unfilled if h.covered),
                missing_trade_gaps=sum(1 for h in unfilled if not h.covered),
                missing_s=intervals.total_ms(p for h in unfilled for p in h.uncovered) / 1000,
            )
        )
    return facts
