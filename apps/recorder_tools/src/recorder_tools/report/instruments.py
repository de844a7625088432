"""Per instrument: trades (each counted once over every database), tickers, trade rates."""

from __future__ import annotations

from collections import defaultdict

from recorder_tools import intervals
from recorder_tools.intervals import Interval
from recorder_tools.report.contents import DatabaseContents
from recorder_tools.report.model import MINUTE_MS, InstrumentFacts
from recorder_tools.trade_activity import Instrument


def instrument_facts(
    contents: list[DatabaseContents],
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
