"""The facts of ``recorder-report``, as plain dataclasses (``Report.to_json`` prints them all).

Sessions, recorder hosts, instruments, coverage, order books, holes, connection events and live
health.

Times are milliseconds since the epoch, UTC. Session lifetimes are on the recorder host's clock;
trade times, book update times and gap windows are on the exchange clock (see docs/schema.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from recorder_tools.schema import STREAM_ORDERBOOK, STREAM_PUBLIC_TRADE, STREAM_TICKERS

#: gap causes that mean the connection was lost and re-established
RECONNECT_CAUSES = ("disconnect", "stall", "pong_timeout", "connect_failed")
PUBLIC_STREAMS = frozenset({STREAM_PUBLIC_TRADE, STREAM_TICKERS, STREAM_ORDERBOOK})
MINUTE_MS = 60_000
#: the ``kind`` of a hole that is time no session recorded
BETWEEN_SESSIONS = "between sessions"
#: a host whose running session wrote no row for this long is ``quiet`` (a recorder writes
#: a ticker row every 100 ms and flushes every few seconds)
QUIET_AFTER_S = 60.0


# ---- the facts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """One ``runs`` row: a recording session."""

    folder: str
    #: file path, or URL with the password hidden
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
    #: ``runs.host``: the machine the recorder ran on (``socket.gethostname()``)
    host: str | None = None
    #: receive time of the last trade or ticker row the session wrote (host clock), as
    #: stored: unlike ``recorded_until_ms`` never moved to now for a live session
    last_row_ms: int | None = None
    #: the run's ``tickers.min_interval_ms``: 0 kept every ticker push; N kept a symbol's
    #: state once N ms (exchange time) passed since its last kept one
    ticker_min_interval_ms: int = 0
    #: the same in words: ``every push`` or ``sampled, at most one per N ms per symbol``
    tickers_kept: str = "every push"


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
    #: the hosts whose sessions recorded part of the interval
    hosts: list[str] = field(default_factory=list)


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
    #: the recorder host of the gap's session
    host: str | None = None
    #: a trade (or ticker) gap REST did not fill, whose whole still-missing window another
    #: session recorded: every trade of it is stored (the gap row stays as its recorder wrote
    #: it). Always False for private streams.
    covered: bool = False
    #: the parts of the still-missing window that no session recorded (the holes of the
    #: union); the whole window unless another session covered part of it
    uncovered: list[tuple[int, int]] = field(default_factory=list)
    #: the runs (and their hosts) whose recorded time covers part of the missing window
    covered_by_runs: list[str] = field(default_factory=list)
    covered_by_hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GapTally:
    """The book gaps of one cause: how many, and their time (as their rows say)."""

    gaps: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class BookFacts:
    """One order book (category, symbol, depth) over every session: the updates stored of it,
    its book gaps, and how much of its span the stored book can be trusted.

    *Known-good* is, per session, the span of the book's stored updates minus the windows of
    that session's book gaps, united over sessions (the trades' coverage, for a book): the
    span less its gap time, and less any time between sessions that recorded it.
    """

    category: str
    symbol: str
    depth: int
    #: ``orderbook.{depth}.{symbol}``: the topic, and how book gap details name the book
    topic: str
    #: rows stored: ``deltas + snapshots + checkpoints``
    updates: int
    deltas: int
    snapshots: int
    #: full books the recorder wrote itself (``BookKind.CHECKPOINT``)
    checkpoints: int
    #: exchange times (``ts``) of the first and last update stored; None without any
    first_ms: int | None
    last_ms: int | None
    span_s: float
    #: ``gaps`` rows of stream ``orderbook`` naming this book
    gaps: int
    #: their time, summed as their rows say (overlapping gaps count twice)
    gap_s: float
    #: cause (``skipped_update``, ``book_restart``, ``crossed_book``, ``disconnect``, ...)
    #: -> its gaps
    gaps_by_cause: dict[str, GapTally]
    known_good_s: float
    #: ``known_good_s / span_s``; None for an empty span (one update, or none)
    known_good_fraction: float | None


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
    #: distinct outages of any cause (pauses and silences included)
    outages: int = 0


@dataclass(frozen=True, slots=True)
class HostFacts:
    """The health of one recorder host, from the database alone (its ``health.json`` files
    are on that host): its sessions, the last row it wrote, and its outages and gaps."""

    host: str
    sessions: int
    #: sessions whose run is still ``running`` (and, on this host, whose process is alive)
    running: int
    #: sessions that ended (any status but ``running``), or died while running
    ended: int
    #: ``runs.status`` -> sessions
    statuses: dict[str, int]
    symbols: list[str]
    #: receive times (host clock) of the first and last trade or ticker row it wrote
    first_row_ms: int | None
    last_row_ms: int | None
    #: seconds since ``last_row_ms`` when the report was made
    last_row_age_s: float | None
    #: ``recording`` (a session is running and wrote within ``QUIET_AFTER_S``), ``quiet``
    #: (a session is running but wrote nothing for longer), ``gone`` (a session is marked
    #: running but its process died; this host only), ``ended`` (no session is running)
    state: str
    trade_rows: int
    ticker_rows: int
    #: distinct outages (every stream's gap rows of one outage count once)
    outages: int
    reconnects: int
    stalls: int
    pong_timeouts: int
    silences: int
    rejected_frames: int
    trade_gaps: int
    #: trade gaps REST did not fill (``partial``/``unfillable``)
    unfilled_trade_gaps: int
    #: of those, the ones another session recorded in full: nothing is missing there
    covered_trade_gaps: int
    #: of those, the ones with time no session recorded: holes
    missing_trade_gaps: int
    #: the time in its unfilled trade gaps that no session recorded
    missing_s: float


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
    """Everything ``recorder-report`` says about the databases of one target."""

    #: the target (a path, or a URL with the password hidden)
    path: str
    generated_at_ms: int
    #: where each database read is (file path, or URL with the password hidden)
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
    #: one entry per recorder host (``runs.host``): its health, from the database
    hosts: list[HostFacts] = field(default_factory=list)
    #: one entry per order book with stored updates or book gaps; empty without books
    books: list[BookFacts] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)
