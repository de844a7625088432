"""``health.json``: the session's latest health, for external monitors.

Written at start, on every health tick (``health_log_interval``) and at stop, atomically (a
temporary file in the same folder, then ``os.replace``), so a reader never sees half a file.
The recorder keeps it small (well under 2 KB). Per-stream message rates are derived here from
the change in message counts between two writes.

Fields: ``run_id``, ``pid``, ``status`` (``running`` while recording, then the run's final
status), ``written_at_ms`` (host clock), ``interval_s`` (seconds until the next write while
running), ``uptime_s``, ``streams`` (``state``, ``reconnects``, ``messages``,
``messages_per_s``, ``last_message_age_s``, ``rejected_frames``), ``writers`` (rows
``written``, ``rows_per_s``, ``buffered``, ``duplicates``, ``failed_flushes``,
``backpressure``), ``gaps``, the total ``reconnects``, and ``rss_mb`` and ``asyncio_tasks``
when known.

``disk`` (SQLite only; absent for PostgreSQL, whose disk is on another host), from the disk
guard's latest measurement (every ``disk.check_interval_seconds``): ``db_bytes`` (the database
file plus its ``-wal`` and ``-shm``), ``free_bytes`` (free on its filesystem),
``growth_bytes_per_hour`` (over the last hour; null until two measurements),
``days_left`` (``free_bytes`` / growth; null while the database does not grow) and ``level``
(``ok``; ``low``: below ``disk.warn_free_mb``; ``floor``: below ``disk.stop_free_mb``, the
session stops).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bybit_records import FillStatus
from recorder.health import HealthSnapshot

FILE_NAME = "health.json"
FORMAT_VERSION = 1


class HealthFileWriter:
    """Writes ``health.json`` into a session folder from ``HealthSnapshot``s."""

    def __init__(self, path: Path, run_id: str, interval_s: float) -> None:
        self.path = path
        self.run_id = run_id
        self.interval_s = interval_s
        self.writes = 0
        self._previous: tuple[float, dict[str, int]] | None = None

    def write(self, snapshot: HealthSnapshot, status: str = "running") -> None:
        """Replace the file with ``snapshot``; raises ``OSError`` if the folder is unwritable."""
        document = self.document(snapshot, status)
        data = json.dumps(document, separators=(",", ":")) + "\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(data, encoding="utf-8")
        os.replace(temporary, self.path)
        self.writes += 1

    def document(self, snapshot: HealthSnapshot, status: str) -> dict[str, Any]:
        """The JSON document for ``snapshot``; remembers its counts for the next rates."""
        messages = {s.name: s.frames for s in snapshot.streams}
        rates = self._rates(snapshot.uptime_s, messages)
        self._previous = (snapshot.uptime_s, messages)
        gaps = snapshot.gaps
        document: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "run_id": self.run_id,
            "pid": os.getpid(),
            "status": status,
            "written_at_ms": time.time_ns() // 1_000_000,
            "interval_s": self.interval_s,
            "uptime_s": round(snapshot.uptime_s, 3),
            "streams": [
                {
                    "name": s.name,
                    "state": s.state,
                    "reconnects": s.reconnects,
                    "messages": s.frames,
                    "messages_per_s": rates.get(s.name),
                    "last_message_age_s": _rounded(s.last_message_age_s),
                    "rejected_frames": s.rejected_frames,
                }
                for s in snapshot.streams
            ],
            "writers": [
                {
                    "name": w.name,
                    "written": w.written,
                    "rows_per_s": round(w.messages_per_second, 3),
                    "buffered": w.buffered,
                    "duplicates": w.duplicates,
                    "failed_flushes": w.failed_flushes,
                    "backpressure": w.backpressure_active,
                }
                for w in snapshot.writers
            ],
            "gaps": {
                "detected": gaps.gaps_detected,
                "filled": gaps.gaps[FillStatus.FILLED],
                "partial": gaps.gaps[FillStatus.PARTIAL],
                "unfillable": gaps.gaps[FillStatus.UNFILLABLE],
                "ticker_gaps": gaps.ticker_gaps,
                "rows_recovered": gaps.rows_recovered,
                "pending": snapshot.gaps_pending,
            },
            "reconnects": sum(s.reconnects for s in snapshot.streams),
        }
        if snapshot.rss_mb is not None:
            document["rss_mb"] = round(snapshot.rss_mb, 1)
        if snapshot.asyncio_tasks is not None:
            document["asyncio_tasks"] = snapshot.asyncio_tasks
        disk = snapshot.disk
        if disk is not None:
            growth = disk.growth_bytes_per_hour
            document["disk"] = {
                "db_bytes": disk.db_bytes,
                "free_bytes": disk.free_bytes,
                "growth_bytes_per_hour": None if growth is None else round(growth),
                "days_left": _rounded(disk.days_left),
                "level": disk.level.value,
            }
        return document

    def _rates(self, uptime_s: float, messages: dict[str, int]) -> dict[str, float]:
        """Messages per second of each stream since the previous write (or since start)."""
        since, before = self._previous if self._previous is not None else (0.0, {})
        elapsed = uptime_s - since
        if elapsed <= 0:
            return {}
        return {
            name: round(max(0, count - before.get(name, 0)) / elapsed, 3)
            for name, count in messages.items()
        }


def read_health_file(path: Path) -> dict[str, Any] | None:
    """The parsed ``health.json`` at ``path``; None when missing or unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
