"""Health logging: the one-line summary, its parts, and its interval in a live session."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import pytest

from bybit_adapter import ConnectionState, StreamStats
from bybit_records import FillStatus, OutageCause
from event_saver import PipelineHealth, ReconcilerStats, WriterStats
from event_saver.pipeline import StreamHealth as PipelineStream
from grid_db import DatabaseFactory
from recorder.health import HealthSnapshot, StreamHealth, format_health, health_snapshot
from testkit import wait_until


def writer(name: str, **changes: Any) -> WriterStats:
    stats: dict[str, Any] = {
        "name": name,
        "received": 120,
        "written": 100,
        "duplicates": 2,
        "buffered": 18,
        "peak_buffered": 40,
        "rows_rejected": 0,
        "failed_flushes": 1,
        "flushes": 7,
        "last_flush_latency_ms": 3.25,
        "messages_per_second": 12.5,
        "backpressure_active": False,
    }
    stats.update(changes)
    return WriterStats(**stats)


def gaps() -> ReconcilerStats:
    return ReconcilerStats(
        gaps=Counter({FillStatus.FILLED: 3, FillStatus.PARTIAL: 1, FillStatus.UNFILLABLE: 2}),
        causes=Counter({OutageCause.DISCONNECT: 4, OutageCause.STALL: 2}),
        ticker_gaps=6,
        rows_recovered=812,
        outages_handled=6,
    )


def snapshot(**changes: Any) -> HealthSnapshot:
    values: dict[str, Any] = {
        "uptime_s": 3725.9,
        "streams": (
            StreamHealth("public.linear", "connected", 4, 9000, 0.25, 1, outages=6),
            StreamHealth("private", "reconnecting", 1, 12, None, 0, outages=1, auth_failures=2),
        ),
        "writers": (writer("trades"), writer("tickers", backpressure_active=True)),
        "gaps": gaps(),
        "gaps_pending": 1,
        "rss_mb": 88.84,
        "asyncio_tasks": 17,
    }
    values.update(changes)
    return HealthSnapshot(**values)


def test_format_health_is_one_line_with_every_part() -> None:
    line = format_health(snapshot())
    assert "\n" not in line
    assert line.split(" | ") == [
        "health uptime=1h02m05s rss=88.8MB tasks=17",
        "public.linear connected reconnects=4 outages=6 frames=9000 last_msg_age=0.2s rejected=1",
        "private reconnecting reconnects=1 outages=1 frames=12 last_msg_age=n/a rejected=0 auth_failures=2",
        "trades received=120 written=100 rate=12.5/s buffered=18 dup=2 failed_flushes=1 flush=3.2ms",
        "tickers received=120 written=100 rate=12.5/s buffered=18 dup=2 failed_flushes=1 flush=3.2ms BACKPRESSURE",
        "gaps detected=6 filled=3 partial=1 unfillable=2 recovered_rows=812 ticker_gaps=6 pending=1 causes=disconnect:4,stall:2",
    ]


def test_format_health_without_process_figures_or_gaps() -> None:
    line = format_health(
        snapshot(rss_mb=None, asyncio_tasks=None, gaps=ReconcilerStats(), gaps_pending=0)
    )
    assert line.startswith("health uptime=1h02m05s | ")
    assert line.endswith(
        "gaps detected=0 filled=0 partial=0 unfillable=0 recovered_rows=0 ticker_gaps=0 pending=0"
    )


def test_format_health_counts_the_tickers_sampled_out() -> None:
    """With ``tickers.min_interval_ms`` the tickers writer says how many states it never got."""
    parts = format_health(snapshot(tickers_sampled_out=4321)).split(" | ")
    assert parts[4].startswith("tickers received=120 written=100 ")
    assert parts[4].endswith(" BACKPRESSURE sampled_out=4321")
    assert "sampled_out" not in format_health(snapshot())  # every push kept: not shown


def test_short_uptimes_are_minutes_and_seconds() -> None:
    assert format_health(snapshot(uptime_s=65.2)).startswith("health uptime=1m05s ")


def test_health_snapshot_from_the_pipelines_counters() -> None:
    stats = StreamStats(data_frames=40, rejected_frames=3, outages=2)
    never = StreamStats()
    pipeline = PipelineHealth(
        streams=(
            PipelineStream("public.spot", ConnectionState.CONNECTED, 2, stats),
            PipelineStream("private", ConnectionState.CONNECTING, 0, never, auth_failures=5),
        ),
        writers=(writer("trades"),),
        gaps=gaps(),
        gaps_pending=0,
    )
    taken = health_snapshot(pipeline, uptime_s=12.0)
    public, private = taken.streams
    assert (public.name, public.state, public.reconnects, public.frames) == (
        "public.spot",
        "connected",
        2,
        40,
    )
    assert (public.rejected_frames, public.outages, public.last_message_age_s) == (3, 2, None)
    assert (private.state, private.auth_failures) == ("connecting", 5)
    assert taken.uptime_s == 12.0
    assert taken.asyncio_tasks is None or taken.asyncio_tasks >= 0
    assert taken.writers == pipeline.writers


async def test_health_is_logged_every_interval_and_at_stop(
    make_config: Any, sqlite_db: DatabaseFactory, caplog: pytest.LogCaptureFixture, recording: Any
) -> None:
    caplog.set_level(logging.INFO, logger="recorder.session")
    recorder = await recording(make_config("health_log_interval=0.2"), sqlite_db)
    await wait_until(lambda: recorder.health_lines >= 3, timeout=5)
    ticking = [m for m in caplog.messages if m.startswith("health ")]
    assert len(ticking) >= 3
    assert all(" public.linear connected " in line for line in ticking)
    await recorder.stop()
    lines = [m for m in caplog.messages if m.startswith("health ")]
    assert " public.linear stopped " in lines[-1]  # the last line is written at stop
    last = lines[-1]
    for part in (
        r"uptime=\d+m\d\ds",
        r"rss=[\d.]+MB",
        r"tasks=\d+",
        r"trades received=\d+ written=\d+",
        r"tickers received=\d+ written=\d+",
        r"buffered=0",
        r"gaps detected=0",
    ):
        assert re.search(part, last), part


async def test_no_health_line_before_the_interval(
    make_config: Any, sqlite_db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config("health_log_interval=3600"), sqlite_db)
    await wait_until(lambda: recorder.pipeline.health().writers[0].received > 5)
    assert recorder.health_lines == 0
    await recorder.stop()
    assert recorder.health_lines == 1  # the one at stop
