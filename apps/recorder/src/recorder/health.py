"""A periodic, one-line health summary of a session."""

from __future__ import annotations

import os
from dataclasses import dataclass

from event_saver import ReconcilerStats, WriterStats


@dataclass(frozen=True, slots=True)
class StreamHealth:
    name: str
    state: str
    reconnects: int
    frames: int
    last_message_age_s: float | None
    rejected_frames: int


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    uptime_s: float
    streams: tuple[StreamHealth, ...]
    writers: tuple[WriterStats, ...]
    gaps: ReconcilerStats
    gaps_pending: int
    rss_mb: float | None = None
    asyncio_tasks: int | None = None


def resident_memory_mb() -> float | None:
    """Current resident set size, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_health(snapshot: HealthSnapshot) -> str:
    """E.g. ``health uptime=5m00s | public.linear connected reconnects=0 ... | trades ...``."""
    process = f"health uptime={_duration(snapshot.uptime_s)}"
    if snapshot.rss_mb is not None:
        process += f" rss={snapshot.rss_mb:.1f}MB"
    if snapshot.asyncio_tasks is not None:
        process += f" tasks={snapshot.asyncio_tasks}"
    parts = [process]
    for s in snapshot.streams:
        age = "n/a" if s.last_message_age_s is None else f"{s.last_message_age_s:.1f}s"
        parts.append(
            f"{s.name} {s.state} reconnects={s.reconnects} frames={s.frames} "
            f"last_msg_age={age} rejected={s.rejected_frames}"
        )
    for w in snapshot.writers:
        latency = "n/a" if w.last_flush_latency_ms is None else f"{w.last_flush_latency_ms:.1f}ms"
        parts.append(
            f"{w.name} received={w.received} written={w.written} "
            f"rate={w.messages_per_second:.1f}/s "
            f"buffered={w.buffered} dup={w.duplicates} failed_flushes={w.failed_flushes} "
            f"flush={latency}" + (" BACKPRESSURE" if w.backpressure_active else "")
        )
    g = snapshot.gaps
    parts.append(
        f"gaps detected={g.gaps_detected} filled={g.gaps['filled']} partial={g.gaps['partial']} "
        f"unfillable={g.gaps['unfillable']} recovered_rows={g.rows_recovered} "
        f"ticker_gaps={g.ticker_gaps} pending={snapshot.gaps_pending}"
    )
    return " | ".join(parts)
