"""Optional Prometheus metrics of a session (``metrics_port``; off by default).

The exporter keeps the latest ``HealthSnapshot`` (given on every health tick) and turns it into
metrics when Prometheus scrapes ``http://HOST:metrics_port/metrics``; between ticks nothing is
done. Counters carry the session's running totals; ``recorder_last_message_timestamp_seconds``
lets a query compute the current age of the last message between ticks (``time() - ...``).

| metric | type | labels |
| --- | --- | --- |
| ``recorder_messages_total`` | counter | stream |
| ``recorder_rows_written_total`` | counter | writer (``trades``, ``tickers``, ...) |
| ``recorder_duplicate_rows_total`` | counter | writer |
| ``recorder_rejected_frames_total`` | counter | stream |
| ``recorder_reconnects_total`` | counter | stream |
| ``recorder_gaps_total`` | counter | fill_status (trade and private gaps) |
| ``recorder_ticker_gaps_total`` | counter | |
| ``recorder_gap_rows_recovered_total`` | counter | |
| ``recorder_stream_connected`` | gauge (1/0) | stream |
| ``recorder_stream_state`` | gauge (1 for the current state) | stream, state |
| ``recorder_last_message_age_seconds`` | gauge, at the last tick | stream |
| ``recorder_last_message_timestamp_seconds`` | gauge | stream |
| ``recorder_buffered_rows`` | gauge | writer |
| ``recorder_backpressure`` | gauge (1/0) | writer |
| ``recorder_gaps_pending`` | gauge | |
| ``recorder_uptime_seconds`` | gauge, at the last tick | |
| ``recorder_resident_memory_bytes`` | gauge, at the last tick (Linux) | |
| ``recorder_asyncio_tasks`` | gauge, at the last tick | |
| ``recorder_health_timestamp_seconds`` | gauge: when the values were taken | |
| ``recorder_db_size_bytes`` | gauge: SQLite file + -wal + -shm (SQLite only) | |
| ``recorder_disk_free_bytes`` | gauge: free on the database's filesystem (SQLite only) | |
| ``recorder_db_growth_bytes_per_hour`` | gauge: over the last hour, once measured | |
| ``recorder_disk_days_left`` | gauge: free / growth, while the database grows | |

Every metric also has the label ``run_id``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from bybit_records import FillStatus
from recorder.health import HealthSnapshot

STATES = ("idle", "connecting", "connected", "reconnecting", "stopped")


class MetricsExporter(Collector):
    """Serves the latest health snapshot as Prometheus metrics on ``port``."""

    def __init__(self, port: int, run_id: str, address: str = "0.0.0.0") -> None:
        self.port = port
        self.address = address
        self.run_id = run_id
        self._snapshot: tuple[float, HealthSnapshot] | None = None
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.registry: CollectorRegistry | None = None

    def start(self) -> None:
        """Listen on the port; raises ``OSError`` when it is taken."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server, self._thread = start_http_server(
            self.port, addr=self.address, registry=self.registry
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def update(self, snapshot: HealthSnapshot) -> None:
        """Keep ``snapshot`` for the next scrape (cheap: no metric is built here)."""
        with self._lock:
            self._snapshot = (time.time(), snapshot)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        """Called by prometheus_client on every scrape."""
        with self._lock:
            taken = self._snapshot
        if taken is None:
            return
        taken_at, snapshot = taken
        run = [self.run_id]

        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=["run_id", *labels])

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["run_id", *labels])

        messages = counter("recorder_messages", "Data messages received", ["stream"])
        rejected = counter("recorder_rejected_frames", "Frames rejected", ["stream"])
        reconnects = counter("recorder_reconnects", "Reconnects of the stream", ["stream"])
        connected = gauge("recorder_stream_connected", "1 when the stream is connected", ["stream"])
        state = gauge(
            "recorder_stream_state", "1 for the stream's current state", ["stream", "state"]
        )
        age = gauge(
            "recorder_last_message_age_seconds",
            "Age of the stream's last message at the last health tick",
            ["stream"],
        )
        last = gauge(
            "recorder_last_message_timestamp_seconds",
            "Unix time of the stream's last message",
            ["stream"],
        )
        for s in snapshot.streams:
            labels = [*run, s.name]
            messages.add_metric(labels, s.frames)
            rejected.add_metric(labels, s.rejected_frames)
            reconnects.add_metric(labels, s.reconnects)
            connected.add_metric(labels, 1.0 if s.state == "connected" else 0.0)
            for name in (*STATES, *([s.state] if s.state not in STATES else [])):
                state.add_metric([*labels, name], 1.0 if s.state == name else 0.0)
            if s.last_message_age_s is not None:
                age.add_metric(labels, s.last_message_age_s)
                last.add_metric(labels, taken_at - s.last_message_age_s)
        written = counter("recorder_rows_written", "Rows written to the database", ["writer"])
        duplicates = counter(
            "recorder_duplicate_rows", "Rows skipped as already stored", ["writer"]
        )
        buffered = gauge("recorder_buffered_rows", "Rows waiting to be written", ["writer"])
        backpressure = gauge(
            "recorder_backpressure", "1 while the writer holds the readers back", ["writer"]
        )
        for w in snapshot.writers:
            labels = [*run, w.name]
            written.add_metric(labels, w.written)
            duplicates.add_metric(labels, w.duplicates)
            buffered.add_metric(labels, w.buffered)
            backpressure.add_metric(labels, 1.0 if w.backpressure_active else 0.0)
        gaps = counter("recorder_gaps", "Trade and private gaps by fill status", ["fill_status"])
        for status in FillStatus:
            gaps.add_metric([*run, status.value], snapshot.gaps.gaps[status])
        ticker_gaps = counter("recorder_ticker_gaps", "Ticker gaps (never refillable)", [])
        ticker_gaps.add_metric(run, snapshot.gaps.ticker_gaps)
        recovered = counter("recorder_gap_rows_recovered", "Rows refilled over REST", [])
        recovered.add_metric(run, snapshot.gaps.rows_recovered)
        pending = gauge("recorder_gaps_pending", "Outages waiting for reconciliation", [])
        pending.add_metric(run, snapshot.gaps_pending)
        uptime = gauge("recorder_uptime_seconds", "Session uptime at the last health tick", [])
        uptime.add_metric(run, snapshot.uptime_s)
        memory = gauge("recorder_resident_memory_bytes", "Resident memory at the last tick", [])
        if snapshot.rss_mb is not None:
            memory.add_metric(run, snapshot.rss_mb * 1e6)
        tasks = gauge("recorder_asyncio_tasks", "Asyncio tasks at the last tick", [])
        if snapshot.asyncio_tasks is not None:
            tasks.add_metric(run, snapshot.asyncio_tasks)
        stamp = gauge("recorder_health_timestamp_seconds", "When these values were taken", [])
        stamp.add_metric(run, taken_at)
        disk = snapshot.disk
        db_size = gauge("recorder_db_size_bytes", "Database file plus -wal and -shm", [])
        free = gauge("recorder_disk_free_bytes", "Free bytes on the database's filesystem", [])
        growth = gauge(
            "recorder_db_growth_bytes_per_hour", "Database growth over the last hour", []
        )
        days_left = gauge("recorder_disk_days_left", "Days until the disk is full at that rate", [])
        if disk is not None:
            db_size.add_metric(run, disk.db_bytes)
            free.add_metric(run, disk.free_bytes)
            if disk.growth_bytes_per_hour is not None:
                growth.add_metric(run, disk.growth_bytes_per_hour)
            if disk.days_left is not None:
                days_left.add_metric(run, disk.days_left)
        yield from (
            messages,
            rejected,
            reconnects,
            connected,
            state,
            age,
            last,
            written,
            duplicates,
            buffered,
            backpressure,
            gaps,
            ticker_gaps,
            recovered,
            pending,
            uptime,
            memory,
            tasks,
            stamp,
            db_size,
            free,
            growth,
            days_left,
        )
