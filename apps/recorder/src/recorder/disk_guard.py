"""The disk guard: free space on the SQLite database's filesystem, and how long it lasts.

``DiskGuard.check()`` measures the database (the file plus its ``-wal`` and ``-shm``) and the
space free on its filesystem (``os.statvfs`` of its folder: the blocks an unprivileged writer
may still use). From the sizes measured over the last hour it derives the growth per hour and
the days left at that rate (free space / growth). ``DiskLevel`` places free space against the
thresholds of ``disk`` (``DiskGuardConfig``, in MiB):

* ``ok``: at least ``warn_free_mb`` free;
* ``low``: below ``warn_free_mb``: the session logs a warning, at most once an hour
  (``warning_due``);
* ``floor``: below ``stop_free_mb``: the session stops cleanly (every buffered row flushed, the
  run closed ``error`` saying why, exit code 4) while SQLite still has room to finish.

A PostgreSQL database (or in-memory SQLite) is not on this host's disk: ``for_database``
returns no guard, and the health shows no disk fields.

The stat calls block, if only briefly: the session makes them on a worker thread every
``check_interval_seconds``, never on the event loop's hot path.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from pathlib import Path

from recorder.config import DiskGuardConfig

MIB = 1 << 20
#: the growth per hour is measured over this sliding window of samples
GROWTH_WINDOW_S = 3600.0
#: the low-space warning is logged at most this often
WARN_EVERY_S = 3600.0
#: SQLite's companion files in WAL mode
SQLITE_SUFFIXES = ("", "-wal", "-shm")


class DiskLevel(StrEnum):
    """Where free space stands against ``disk.warn_free_mb`` and ``disk.stop_free_mb``."""

    OK = "ok"
    LOW = "low"
    FLOOR = "floor"


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """One measurement of the database and its filesystem."""

    #: the SQLite database file
    path: Path
    #: the database file plus its -wal and -shm
    db_bytes: int
    #: bytes free on the database's filesystem
    free_bytes: int
    #: database growth per hour over the window; None until two samples span some time
    growth_bytes_per_hour: float | None
    #: free / growth, in days; None while the database does not grow
    days_left: float | None
    level: DiskLevel


def database_bytes(path: Path) -> int:
    """The size of a SQLite database: the file and its ``-wal`` and ``-shm`` (missing ones: 0)."""
    total = 0
    for suffix in SQLITE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(f"{path}{suffix}").st_size
    return total


def free_bytes(folder: Path) -> int:
    """Bytes available to an unprivileged writer on the filesystem holding ``folder``."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


@dataclass(eq=False)
class DiskGuard:
    """Measures one SQLite database's size and free space; says when to warn and to stop.

    ``observe`` is the arithmetic alone (``clock`` gives the time, monotonic seconds), so it can
    be tested without a disk; ``check`` measures and observes.
    """

    path: Path
    config: DiskGuardConfig
    clock: Callable[[], float] = time.monotonic
    _: KW_ONLY
    window_s: float = GROWTH_WINDOW_S
    warn_every_s: float = WARN_EVERY_S
    #: the latest measurement
    last: DiskUsage | None = field(default=None, init=False)
    _samples: deque[tuple[float, int]] = field(default_factory=deque, init=False, repr=False)
    _warned_at: float | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_database(cls, sqlite_path: Path | None, config: DiskGuardConfig) -> DiskGuard | None:
        """The guard of a SQLite database file; None for any other database."""
        return None if sqlite_path is None else cls(sqlite_path, config)

    @property
    def warn_bytes(self) -> int:
        return self.config.warn_free_mb * MIB

    @property
    def stop_bytes(self) -> int:
        return self.config.stop_free_mb * MIB

    def check(self) -> DiskUsage:
        """Measure now (blocking stat calls); raises ``OSError`` when the folder is gone."""
        return self.observe(database_bytes(self.path), free_bytes(self.path.parent))

    def observe(self, db_bytes: int, free: int) -> DiskUsage:
        """Add one measurement taken now; the usage it makes, also kept as ``last``."""
        now = self.clock()
        samples = self._samples
        samples.append((now, db_bytes))
        while len(samples) > 2 and samples[1][0] <= now - self.window_s:
            samples.popleft()
        (first_t, first_bytes), (last_t, last_bytes) = samples[0], samples[-1]
        growth = (
            (last_bytes - first_bytes) / (last_t - first_t) * 3600.0 if last_t > first_t else None
        )
        days_left = free / growth / 24.0 if growth is not None and growth > 0 else None
        if free < self.stop_bytes:
            level = DiskLevel.FLOOR
        elif free < self.warn_bytes:
            level = DiskLevel.LOW
        else:
            level = DiskLevel.OK
        self.last = DiskUsage(self.path, db_bytes, free, growth, days_left, level)
        return self.last

    def warning_due(self) -> bool:
        """True when free space is low and no warning was given in the last ``warn_every_s``
        (counts as giving it)."""
        if self.last is None or self.last.level is DiskLevel.OK:
            return False
        now = self.clock()
        if self._warned_at is not None and now - self._warned_at < self.warn_every_s:
            return False
        self._warned_at = now
        return True

    def describe(self, usage: DiskUsage) -> str:
        """``12.0 MiB free on /data (recorder.db 3.1 MiB, +1.2 MiB/h, 0.42 days left)``."""
        growth = usage.growth_bytes_per_hour
        rate = "growth n/a" if growth is None else f"{mib(growth, signed=True)}/h"
        days = "n/a" if usage.days_left is None else f"{usage.days_left:.2f}"
        return (
            f"{mib(usage.free_bytes)} free on {usage.path.parent} ({usage.path.name} "
            f"{mib(usage.db_bytes)}, {rate}, {days} days left)"
        )

    def stop_reason(self, usage: DiskUsage) -> str:
        """The run's error text when free space fell below the floor."""
        return (
            f"disk almost full: {self.describe(usage)}, below disk.stop_free_mb="
            f"{self.config.stop_free_mb}: the session stopped before the disk filled up"
        )

    def warning(self, usage: DiskUsage) -> str:
        return (
            f"disk space low: {self.describe(usage)}, below disk.warn_free_mb="
            f"{self.config.warn_free_mb}; the session stops below disk.stop_free_mb="
            f"{self.config.stop_free_mb}"
        )


def mib(value: float, *, signed: bool = False, unit: str = " MiB") -> str:
    """``12.3 MiB`` (``+12.3 MiB`` with ``signed``)."""
    return f"{value / MIB:{'+' if signed else ''}.1f}{unit}"
