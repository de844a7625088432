"""``recorder-report --plot FILE.png``: trades per minute per symbol, holes shaded.

One panel per instrument, one shared time axis (UTC). Shaded: time between sessions (grey),
gaps REST could not fill (red: unfillable, orange: partial), gaps another session recorded
(purple) and refilled gaps (green).
Dashed lines mark reconnects. Rendered with matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from sqlalchemy import Engine

from recorder_tools.report.model import BETWEEN_SESSIONS, RECONNECT_CAUSES, Hole, Report
from recorder_tools.schema import STREAM_PUBLIC_TRADE
from recorder_tools.trade_activity import trade_counts

#: bucket sizes tried, smallest first; the rate is always shown per minute
_BUCKETS_MS = (1_000, 5_000, 10_000, 15_000, 30_000, 60_000, 300_000, 900_000, 3_600_000)
_MAX_POINTS = 20_000
_SHADE = {
    BETWEEN_SESSIONS: ("#9e9e9e", "between sessions"),
    "unfillable": ("#e53935", "gap, trades missing"),
    "partial": ("#fb8c00", "gap, partly refilled"),
    "filled": ("#43a047", "gap, refilled"),
    "covered": ("#8e24aa", "gap, recorded by another session"),
}


def bucket_for(span_ms: int) -> int:
    """The smallest bucket that keeps a panel under ``_MAX_POINTS`` points."""
    return next((b for b in _BUCKETS_MS if span_ms / b <= _MAX_POINTS), _BUCKETS_MS[-1])


def _time(ms: float) -> float:
    """Matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return ms / 86_400_000


def plot_report(report: Report, file: Path, engines: Sequence[Engine]) -> None:
    """Draw the report's instruments into ``file`` (PNG).

    ``engines`` are the databases the report was built from (the trade rates are counted
    again, in buckets that fit the time shown).
    """
    instruments = [i for i in report.instruments if i.first_trade_ms is not None]
    starts = [s.recorded_from_ms for s in report.sessions if s.recorded_from_ms is not None]
    ends = [s.recorded_until_ms for s in report.sessions if s.recorded_until_ms is not None]
    start_ms = min(starts + [i.first_trade_ms or 0 for i in instruments], default=0)
    end_ms = max(ends + [i.last_trade_ms or 0 for i in instruments], default=start_ms + 1)
    bucket = bucket_for(max(1, end_ms - start_ms))
    counts = trade_counts(engines, bucket)

    panels = max(1, len(instruments))
    figure = Figure(figsize=(12, 0.9 + 2.4 * panels), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(f"recorder report: {report.path}  (UTC)")
    if not instruments:
        axes[0].text(0.5, 0.5, "no trades recorded", ha="center", va="center")
    grid_start = start_ms - start_ms % bucket
    grid = np.arange(grid_start, end_ms + bucket, bucket, dtype=np.int64)
    times = grid / 86_400_000
    per_minute = 60_000 / bucket
    for axis, instrument in zip(axes, instruments, strict=False):
        key = (instrument.category, instrument.symbol)
        series = counts.get(key, {})
        covered = [(c.start_ms, c.end_ms) for c in report.coverage if (c.category, c.symbol) == key]
        values = np.full(len(grid), np.nan)
        for index, bucket_start in enumerate(grid):
            count = series.get(int(bucket_start))
            if count is not None:
                values[index] = count * per_minute
            elif any(a <= bucket_start + bucket and bucket_start <= b for a, b in covered):
                values[index] = 0.0
        axis.plot(times, values, color="#1e88e5", linewidth=0.9, label="trades/min")
        holes = [h for h in report.holes if _concerns(h, instrument.category, instrument.symbol)]
        _shade(axis, holes)
        _mark_reconnects(axis, holes)
        axis.set_ylabel(f"trades/min\n({bucket // 1000:,}s buckets)", fontsize=9)
        axis.set_ylim(bottom=0)
        axis.set_title(
            f"{instrument.category} {instrument.symbol}: {instrument.trades:,} trades, "
            f"peak {instrument.peak_trades_per_minute:,}/min",
            loc="left",
            fontsize=10,
        )
        axis.grid(True, alpha=0.3)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        axis.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8)
    locator = AutoDateLocator(tz=dt.UTC)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(
        ConciseDateFormatter(locator, tz=dt.UTC)  # type: ignore[no-untyped-call]
    )
    axes[-1].set_xlim(_time(start_ms), _time(end_ms))
    file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(file, format="png")


def _concerns(hole: Hole, category: str, symbol: str) -> bool:
    if hole.category not in (None, category) or hole.symbol not in (None, symbol):
        return False
    return hole.kind == BETWEEN_SESSIONS or hole.stream == STREAM_PUBLIC_TRADE


def _shade(axis: Axes, holes: list[Hole]) -> None:
    for hole in holes:
        kind = BETWEEN_SESSIONS if hole.kind == BETWEEN_SESSIONS else hole.fill_status
        kind = "covered" if hole.covered else kind
        color, label = _SHADE.get(kind, _SHADE["unfillable"])
        axis.axvspan(
            _time(hole.start_ms),
            _time(max(hole.end_ms, hole.start_ms + 1)),
            color=color,
            alpha=0.3,
            linewidth=0,
            label=label,
        )


def _mark_reconnects(axis: Axes, holes: list[Hole]) -> None:
    for hole in holes:
        if hole.kind == "gap" and hole.cause in RECONNECT_CAUSES:
            axis.axvline(
                _time(hole.start_ms),
                color="#6a1b9a",
                linestyle="--",
                linewidth=0.9,
                label=f"reconnect ({hole.cause})" if hole.cause != "disconnect" else "reconnect",
            )
