"""A periodic, one-line health summary of a session."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from bybit_records import FillStatus
from event_saver import PipelineHealth, ReconcilerStats, WriterStats
from recorder.disk_guard import DiskLevel, DiskUsage, mib


@dataclass(frozen=True, slots=True)
class StreamHealth:
    name: str
    state: str
    reconnects: int
    frames: int
    last_message_age_s: float | None
    rejected_frames: int
    outages: int = 0
    auth_failures: int = 0
    book_gaps: int = 0


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    uptime_s: float
    streams: tuple[StreamHealth, ...]
    writers: tuple[WriterStats, ...]
    gaps: ReconcilerStats
    gaps_pending: int
    rss_mb: float | None = None
    asyncio_tasks: int | None = None
    #: the disk guard's latest measurement (None: PostgreSQL, or not measured yet)
    disk: DiskUsage | None = None
    #: ticker states dropped by ``tickers.min_interval_ms`` (None: every push is kept)
    tickers_sampled_out: int | None = None


def health_snapshot(
    pipeline: PipelineHealth, uptime_s: float, disk: DiskUsage | None = None
) -> HealthSnapshot:
    """The session's health now, from its pipeline's counters (and the disk guard's last
    measurement)."""
    now_ns = time.time_ns()
    streams = []
    for stream in pipeline.streams:
        last = stream.stats.last_data_received_ns
        streams.append(
            StreamHealth(
                name=stream.name,
                state=stream.state.value,
                reconnects=stream.reconnects,
                frames=stream.stats.data_frames,
                last_message_age_s=None if last is None else (now_ns - last) / 1e9,
                rejected_frames=stream.stats.rejected_frames,
                outages=stream.stats.outages,
                auth_failures=stream.auth_failures,
                book_gaps=stream.stats.book_gaps,
            )
        )
    return HealthSnapshot(
        uptime_s=uptime_s,
        streams=tuple(streams),
        writers=pipeline.writers,
        gaps=pipeline.gaps,
        gaps_pending=pipeline.gaps_pending,
        rss_mb=resident_memory_mb(),
        asyncio_tasks=_tasks(),
        disk=disk,
        tickers_sampled_out=pipeline.tickers_sampled_out,
    )


def _tasks() -> int | None:
    """Tasks of the running event loop; None outside one."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return None


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


def _causes(gaps: ReconcilerStats) -> str:
    return ",".join(f"{cause.value}:{n}" for cause, n in sorted(gaps.causes.items()))


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
            f"{s.name} {s.state} reconnects={s.reconnects} outages={s.outages} frames={s.frames} "
            f"last_msg_age={age} rejected={s.rejected_frames}"
            + (f" auth_failures={s.auth_failures}" if s.auth_failures else "")
            + (f" book_gaps={s.book_gaps}" if s.book_gaps else "")
        )
    for w in snapshot.writers:
        latency = "n/a" if w.last_flush_latency_ms is None else f"{w.last_flush_latency_ms:.1f}ms"
        parts.append(
            f"{w.name} received={w.received} written={w.written} "
            f"rate={w.messages_per_second:.1f}/s "
            f"buffered={w.buffered} dup={w.duplicates} failed_flushes={w.failed_flushes} "
            f"flush={latency}" + (" BACKPRESSURE" if w.backpressure_active else "")
        )
        if w.name == "tickers" and snapshot.tickers_sampled_out is not None:
            parts[-1] += f" sampled_out={snapshot.tickers_sampled_out}"
    g = snapshot.gaps
    parts.append(
        f"gaps detected={g.gaps_detected} filled={g.gaps[FillStatus.FILLED]} partial={g.gaps[FillStatus.PARTIAL]} "
        f"unfillable={g.gaps[FillStatus.UNFILLABLE]} recovered_rows={g.rows_recovered} "
        f"ticker_gaps={g.ticker_gaps} pending={snapshot.gaps_pending}"
        + (f" causes={causes}" if (causes := _causes(g)) else "")
    )
    if snapshot.disk is not None:
        parts.append(format_disk(snapshot.disk))
    return " | ".join(parts)


def format_disk(disk: DiskUsage) -> str:
    """E.g. ``disk db=812.4MiB growth=+35.2MiB/h free=20480.0MiB days_left=24.21``."""
    growth = disk.growth_bytes_per_hour
    return (
        f"disk db={mib(disk.db_bytes, unit='MiB')} "
        f"growth={'n/a' if growth is None else mib(growth, signed=True, unit='MiB')}/h "
        f"free={mib(disk.free_bytes, unit='MiB')} "
        f"days_left={'n/a' if disk.days_left is None else f'{disk.days_left:.2f}'}"
        + ("" if disk.level is DiskLevel.OK else f" {disk.level.value.upper()}")
    )
