"""The completeness check: every truth trade stored exactly once, or excused by a gap.

For each (category, symbol) of the truth, within a window (explicit, or derived from the stored
trades or the runs), each truth trade is looked up by its trade id:

* stored once with the same values: **present**;
* not stored, inside a ``publicTrade`` gap whose ``fill_status`` is ``partial``
  (``start_ts_ms <= T <= recovered_from_ts_ms``) or ``unfillable``
  (``start_ts_ms <= T <= end_ts_ms``): **excused**, unless another run of the database was
  recording the symbol at T without such a gap (a fleet: two recorders on two hosts record the
  same symbols into one database, and a trade is missing only where every one of them missed
  it; the one that did not miss it should have stored it);
* not stored otherwise: a **violation**;
* stored by another run inside a run's still-missing gap window: **covered by another run**
  (counted; the union of the recorders at work);
* stored more than once: a **duplicate**; stored with another price, size, side or time: a
  **mismatch**. Stored trades the truth does not know are listed as **unexpected**.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import func, select

from recorder_tools.check.database import checked_database
from recorder_tools.check.model import (
    CompletenessReport,
    DuplicateTrade,
    MissingTrade,
    SymbolReport,
    ValueMismatch,
    Window,
)
from recorder_tools.check.truth import TruthTrade, decimal_value
from recorder_tools.schema import (
    FILL_PARTIAL,
    FILL_UNFILLABLE,
    GAPS,
    PUBLIC_TRADES,
    RUNS,
    STREAM_PUBLIC_TRADE,
    TICKER_SNAPSHOTS,
    RunColumn,
    run_column,
)

#: The gap stream whose rows can excuse a missing public trade.
TRADE_STREAM = STREAM_PUBLIC_TRADE
#: Trade ids looked up per query when searching for trades stored outside the window.
_ID_CHUNK = 500
#: A run counts as recording a symbol at T when T lies this far inside the span of its rows
#: of the symbol (receive times): a trade printed just before a recorder's first row or just
#: before its last one may not have reached it, and host clocks differ by a little.
LIVE_MARGIN_MS = 2_000


@dataclass
class _Stored:
    time_ms: int
    price: str
    size: str
    side: str
    run_id: str | None


@dataclass(frozen=True)
class _Gap:
    """A gap that may excuse a missing trade: its still-missing window, both ends included."""

    id: int
    start_ms: int
    end_ms: int
    fill_status: str
    run_id: str | None

    def contains(self, time_ms: int) -> bool:
        return self.start_ms <= time_ms <= self.end_ms


def check_completeness(
    db: str | os.PathLike[str],
    truth: Iterable[TruthTrade],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    run_id: str | None = None,
    exact_strings: bool = True,
    time_tolerance_ms: int = 0,
) -> CompletenessReport:
    """Compare the trades of a session database with ``truth``.

    ``db`` is a SQLite file, a session folder holding ``recorder.db``, or a database URL
    (``postgresql://...``); it is opened read-only. Only (category, symbol) pairs present in
    ``truth`` are checked.

    **Window.** Truth trades with ``since_ms <= T <= until_ms`` are expected. A bound that
    is not given defaults, per (category, symbol), to the first / last ``trade_time_ms``
    stored for that symbol. When nothing is stored for the symbol, it defaults to the
    ``runs`` table instead: the earliest ``started_at_ms`` to the latest ``ended_at_ms``
    (now, if no run has ended yet), so that a symbol the session recorded nothing of
    shows up as violations (unless gaps excuse them). With neither trades nor runs, every
    truth trade of the symbol is expected. The window used is in the report.

    ``run_id`` narrows the defaults to that run's trades (or its start and end). Presence
    is still judged against every row of the database: a trade seen by two runs is stored
    once, under the run that saw it first. Gaps of every run excuse missing trades.

    ``exact_strings=False`` compares price and size as decimal values (for archive truth);
    ``time_tolerance_ms`` allows that much difference in the trade time.

    Raises ``CompletenessError`` when the database cannot be opened.
    """
    grouped: dict[tuple[str, str], dict[str, TruthTrade]] = {}
    truth_duplicates: dict[tuple[str, str], int] = {}
    for trade in truth:
        trades = grouped.setdefault((trade.category, trade.symbol), {})
        if trade.trade_id in trades:
            key = (trade.category, trade.symbol)
            truth_duplicates[key] = truth_duplicates.get(key, 0) + 1
            continue
        trades[trade.trade_id] = trade
    with checked_database(db) as (source, engine), engine.connect() as conn:
        report = CompletenessReport(
            database=source.location,
            symbols=[],
            exact_strings=exact_strings,
            time_tolerance_ms=time_tolerance_ms,
            run_id=run_id,
        )
        for (category, symbol), trades in sorted(grouped.items()):
            checker = _SymbolCheck(
                conn, category, symbol, trades, run_id, exact_strings, time_tolerance_ms
            )
            symbol_report = checker.run(since_ms, until_ms)
            repeated = truth_duplicates.get((category, symbol))
            if repeated:
                symbol_report.notes.append(
                    f"the truth lists {repeated} trade id(s) more than once; "
                    "the first occurrence was used"
                )
            report.symbols.append(symbol_report)
    return report


@dataclass
class _SymbolCheck:
    conn: Any
    category: str
    symbol: str
    truth: dict[str, TruthTrade]
    run_id: str | None
    exact_strings: bool
    time_tolerance_ms: int

    def _trades_where(self) -> list[Any]:
        return [PUBLIC_TRADES.c.category == self.category, PUBLIC_TRADES.c.symbol == self.symbol]

    @cached_property
    def _trade_run(self) -> RunColumn:
        return run_column(self.conn, PUBLIC_TRADES)

    def _stored(self, condition: Any) -> dict[str, list[_Stored]]:
        """The stored trades of the symbol that meet ``condition``, by trade id."""
        rows = self.conn.execute(
            select(
                PUBLIC_TRADES.c.trade_id,
                PUBLIC_TRADES.c.trade_time_ms,
                PUBLIC_TRADES.c.price,
                PUBLIC_TRADES.c.size,
                PUBLIC_TRADES.c.side,
                self._trade_run.column,
            )
            .where(*self._trades_where())
            .where(condition)
        )
        run_id = self._trade_run.run_id
        found: dict[str, list[_Stored]] = {}
        for trade_id, time_ms, price, size, side, row_run in rows:
            stored = _Stored(time_ms, price, size, side, run_id(row_run))
            found.setdefault(trade_id, []).append(stored)
        return found

    def window(self, since_ms: int | None, until_ms: int | None) -> Window:
        if since_ms is not None and until_ms is not None:
            return Window(since_ms, until_ms, "explicit")
        query = select(
            func.min(PUBLIC_TRADES.c.trade_time_ms), func.max(PUBLIC_TRADES.c.trade_time_ms)
        )
        query = query.where(*self._trades_where())
        if self.run_id is not None:
            query = query.where(self._trade_run.of(self.run_id))
        first, last = self.conn.execute(query).one()
        source = "trades"
        if first is None or last is None:
            first, last, source = self._runs_window()
        if first is None or last is None:
            times = [t.time_ms for t in self.truth.values()]
            first, last, source = min(times), max(times), "truth"
        if since_ms is not None or until_ms is not None:
            source = f"explicit+{source}"
        return Window(
            since_ms if since_ms is not None else int(first),
            until_ms if until_ms is not None else int(last),
            source,
        )

    def _runs_window(self) -> tuple[int | None, int | None, str]:
        query = select(
            func.min(RUNS.c.started_at_ms),
            func.max(RUNS.c.ended_at_ms),
            func.count(),
            func.count(RUNS.c.ended_at_ms),
        )
        if self.run_id is not None:
            query = query.where(RUNS.c.id == self.run_id)
        started, ended, runs, ended_runs = self.conn.execute(query).one()
        if started is None:
            return None, None, "runs"
        if ended is None or ended_runs < runs:
            # A run still recording (or that died without an end): up to now.
            ended = max(ended or 0, time.time_ns() // 1_000_000)
        return int(started), int(ended), "runs"

    def run(self, since_ms: int | None, until_ms: int | None) -> SymbolReport:
        window = self.window(since_ms, until_ms)
        report = SymbolReport(self.category, self.symbol, window)
        stored = self._stored(
            PUBLIC_TRADES.c.trade_time_ms.between(window.since_ms, window.until_ms)
        )
        report.stored_rows = sum(len(v) for v in stored.values())
        expected = sorted(
            (t for t in self.truth.values() if window.contains(t.time_ms)),
            key=lambda t: (t.time_ms, t.trade_id),
        )
        report.expected = len(expected)
        if not expected:
            report.notes.append("the truth has no trade of this symbol inside the window")
        # Trades stored with a trade time outside the window still count as present
        # (with a trade_time_ms mismatch): look them up by id.
        elsewhere = [t.trade_id for t in expected if t.trade_id not in stored]
        for found_id, rows_of_id in self._stored_by_ids(elsewhere).items():
            stored[found_id] = rows_of_id
        gaps = self._excusing_gaps()
        live = self._live_spans() if gaps else {}
        known_runs = set(self.conn.scalars(select(RUNS.c.id))) if gaps else set()
        missed_by_one = 0
        for trade in expected:
            copies = stored.get(trade.trade_id)
            inside = [g for g in gaps if g.contains(trade.time_ms)]
            if not copies:
                gap = inside[0] if inside else None
                if gap is not None and self._recorded_without_gap(
                    trade.time_ms, inside, live, known_runs
                ):
                    gap, missed_by_one = None, missed_by_one + 1
                missing = MissingTrade(
                    trade.trade_id,
                    trade.time_ms,
                    gap.id if gap else None,
                    gap.fill_status if gap else None,
                )
                (report.excused if gap else report.violations).append(missing)
                continue
            report.present += 1
            if any(g.run_id != copies[0].run_id for g in inside):
                report.covered_by_other_runs += 1
            self._compare(trade, copies[0], report)
        if missed_by_one:
            report.notes.append(
                f"{missed_by_one} missing trade(s) lie in a gap of one run while another run "
                "recorded the symbol without a gap: violations"
            )
        for trade_id, copies in stored.items():
            if len(copies) > 1:
                report.duplicates.append(
                    DuplicateTrade(trade_id, len(copies), tuple(c.run_id for c in copies))
                )
            elif trade_id not in self.truth:
                report.unexpected.append(trade_id)
        report.duplicates.sort(key=lambda d: d.trade_id)
        report.unexpected.sort()
        return report

    def _stored_by_ids(self, trade_ids: list[str]) -> dict[str, list[_Stored]]:
        found: dict[str, list[_Stored]] = {}
        for start in range(0, len(trade_ids), _ID_CHUNK):
            chunk = trade_ids[start : start + _ID_CHUNK]
            found.update(self._stored(PUBLIC_TRADES.c.trade_id.in_(chunk)))
        return found

    def _excusing_gaps(self) -> list[_Gap]:
        """The gaps that excuse a missing trade, with their still-missing windows."""
        rows = self.conn.execute(
            select(
                GAPS.c.id,
                GAPS.c.start_ts_ms,
                GAPS.c.end_ts_ms,
                GAPS.c.recovered_from_ts_ms,
                GAPS.c.fill_status,
                GAPS.c.run_id,
            )
            .where(
                GAPS.c.stream == TRADE_STREAM,
                GAPS.c.category == self.category,
                GAPS.c.symbol == self.symbol,
                GAPS.c.fill_status.in_([FILL_PARTIAL, FILL_UNFILLABLE]),
            )
            .order_by(GAPS.c.start_ts_ms, GAPS.c.id)
        )
        excusing: list[_Gap] = []
        for gap_id, start, end, recovered_from, status, gap_run in rows:
            if status == FILL_PARTIAL and recovered_from is not None:
                # Still missing: [start, recovered_from], both ends included.
                end = recovered_from
            excusing.append(_Gap(int(gap_id), int(start), int(end), str(status), gap_run))
        return excusing

    def _live_spans(self) -> dict[str, tuple[int, int]]:
        """Per run: the first and last receive time of its trade and ticker rows of the symbol
        (ticker rows are every run's own; a trade is stored under the run that saw it first)."""
        spans: dict[str, tuple[int, int]] = {}
        for table in (PUBLIC_TRADES, TICKER_SNAPSHOTS):
            run_of = run_column(self.conn, table)
            rows = self.conn.execute(
                select(
                    run_of.column,
                    func.min(table.c.received_ts_ms),
                    func.max(table.c.received_ts_ms),
                )
                .where(table.c.category == self.category, table.c.symbol == self.symbol)
                .group_by(run_of.column)
            )
            for value, first, last in rows:
                run = run_of.run_id(value)
                if run is None or first is None or last is None:
                    continue
                before = spans.get(run, (int(first), int(last)))
                spans[run] = (min(before[0], int(first)), max(before[1], int(last)))
        return spans

    @staticmethod
    def _recorded_without_gap(
        time_ms: int,
        inside: list[_Gap],
        live: dict[str, tuple[int, int]],
        known_runs: set[str],
    ) -> bool:
        """Whether some run was recording at ``time_ms`` and has no gap there: the trade should
        be stored. A gap of no known run (its run deleted) excuses every run."""
        if any(g.run_id is None or g.run_id not in known_runs for g in inside):
            return False
        excused = {g.run_id for g in inside}
        return any(
            first + LIVE_MARGIN_MS <= time_ms <= last - LIVE_MARGIN_MS
            for run, (first, last) in live.items()
            if run not in excused
        )

    def _compare(self, trade: TruthTrade, row: _Stored, report: SymbolReport) -> None:
        for name, expected_value, stored_value in (
            ("price", trade.price, row.price),
            ("size", trade.size, row.size),
        ):
            if not self._same_decimal(expected_value, stored_value):
                report.mismatches.append(
                    ValueMismatch(trade.trade_id, name, expected_value, stored_value)
                )
        if trade.side != row.side:
            report.mismatches.append(ValueMismatch(trade.trade_id, "side", trade.side, row.side))
        if abs(trade.time_ms - row.time_ms) > self.time_tolerance_ms:
            report.mismatches.append(
                ValueMismatch(trade.trade_id, "trade_time_ms", trade.time_ms, row.time_ms)
            )

    def _same_decimal(self, expected: str, stored: str) -> bool:
        if self.exact_strings or expected == stored:
            return expected == stored
        a, b = decimal_value(expected), decimal_value(stored)
        return a is not None and b is not None and a == b
