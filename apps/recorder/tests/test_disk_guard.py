"""The disk guard: growth and days left (fake clock), thresholds, what the health shows, and the
real ``recorder`` stopping cleanly on a small filesystem before SQLite hits ENOSPC."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from event_saver import ReconcilerStats, WriterStats
from recorder.config import DiskGuardConfig, compose_config
from recorder.disk_guard import MIB, DiskGuard, DiskLevel, DiskUsage, database_bytes, free_bytes
from recorder.errors import ConfigError
from recorder.health import HealthSnapshot, StreamHealth, format_health
from recorder.health_file import HealthFileWriter
from recorder.metrics import MetricsExporter
from recorder.session import EXIT_DISK_FULL
from recorder_tools.check import check_completeness, load_truth
from testkit import (
    FakeClock,
    SimProcess,
    db_rows,
    finish,
    script,
    start_process,
)

HOUR = 3600.0


def guard(warn_mb: int = 100, stop_mb: int = 10) -> tuple[DiskGuard, FakeClock]:
    clock = FakeClock(now=1000.0)
    config = DiskGuardConfig(warn_free_mb=warn_mb, stop_free_mb=stop_mb)
    return DiskGuard(Path("/data/recorder.db"), config, clock), clock


# --------------------------------------------------------------------------- arithmetic


def test_growth_per_hour_and_days_left_from_a_fake_clock() -> None:
    g, clock = guard()
    first = g.observe(10 * MIB, 2400 * MIB)
    assert (first.growth_bytes_per_hour, first.days_left) == (None, None)  # one sample: no rate
    clock.now += 60
    usage = g.observe(11 * MIB, 2399 * MIB)  # 1 MiB a minute: 60 MiB an hour
    assert usage.growth_bytes_per_hour == pytest.approx(60 * MIB)
    assert usage.days_left == pytest.approx(2399 / 60 / 24)
    assert g.last == usage
    assert usage.level is DiskLevel.OK
    assert (usage.db_bytes, usage.free_bytes) == (11 * MIB, 2399 * MIB)


def test_growth_is_measured_over_the_last_hour() -> None:
    g, clock = guard()
    g.observe(0, 1000 * MIB)
    for _ in range(60):  # an hour of fast growth: 10 MiB a minute
        clock.now += 60
        g.observe(g.last.db_bytes + 10 * MIB, 1000 * MIB)  # type: ignore[union-attr]
    assert g.last is not None
    assert g.last.growth_bytes_per_hour == pytest.approx(600 * MIB)
    for _ in range(61):  # then an hour and a minute of slow growth: 1 MiB a minute
        clock.now += 60
        g.observe(g.last.db_bytes + 1 * MIB, 1000 * MIB)
    # the fast hour has left the window
    assert g.last.growth_bytes_per_hour == pytest.approx(60 * MIB)
    assert g.last.days_left == pytest.approx(1000 / 60 / 24)


def test_a_database_that_does_not_grow_has_no_days_left() -> None:
    g, clock = guard()
    g.observe(5 * MIB, 500 * MIB)
    clock.now += 10
    usage = g.observe(5 * MIB, 500 * MIB)
    assert usage.growth_bytes_per_hour == 0.0
    assert usage.days_left is None
    clock.now += 10
    shrunk = g.observe(4 * MIB, 501 * MIB)  # e.g. a WAL checkpoint truncated the -wal file
    assert shrunk.growth_bytes_per_hour is not None
    assert shrunk.growth_bytes_per_hour < 0
    assert shrunk.days_left is None


def test_levels_against_the_thresholds() -> None:
    g, _ = guard(warn_mb=100, stop_mb=10)
    assert g.observe(0, 100 * MIB).level is DiskLevel.OK
    assert g.observe(0, 100 * MIB - 1).level is DiskLevel.LOW
    assert g.observe(0, 10 * MIB).level is DiskLevel.LOW
    assert g.observe(0, 10 * MIB - 1).level is DiskLevel.FLOOR


def test_the_low_space_warning_is_due_at_most_once_an_hour() -> None:
    g, clock = guard(warn_mb=100, stop_mb=10)
    assert not g.warning_due()  # nothing measured yet
    g.observe(0, 500 * MIB)
    assert not g.warning_due()  # plenty of space
    g.observe(0, 50 * MIB)
    assert g.warning_due()
    due = []
    for _ in range(359):  # every 10 s for just under an hour
        clock.now += 10
        g.observe(0, 50 * MIB)
        due.append(g.warning_due())
    assert not any(due)
    clock.now += 10
    g.observe(0, 50 * MIB)
    assert g.warning_due()
    assert "below disk.warn_free_mb=100" in g.warning(g.last)  # type: ignore[arg-type]


def test_the_database_size_counts_its_wal_and_shm(tmp_path: Path) -> None:
    db = tmp_path / "recorder.db"
    assert database_bytes(db) == 0
    db.write_bytes(b"x" * 4096)
    (tmp_path / "recorder.db-wal").write_bytes(b"x" * 1000)
    (tmp_path / "recorder.db-shm").write_bytes(b"x" * 24)
    (tmp_path / "other.db-wal").write_bytes(b"x" * 99)
    assert database_bytes(db) == 5120
    assert free_bytes(tmp_path) > 0
    g = DiskGuard(db, DiskGuardConfig())
    assert g.check().db_bytes == 5120


def test_no_guard_for_a_database_on_another_host() -> None:
    # DatabaseFactory.sqlite_path is None for PostgreSQL (and in-memory SQLite)
    assert DiskGuard.for_database(None, DiskGuardConfig()) is None
    assert DiskGuard.for_database(Path("/x/recorder.db"), DiskGuardConfig()) is not None


# --------------------------------------------------------------------------- configuration


def test_the_floor_must_be_below_the_warning_threshold(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["disk.stop_free_mb=6000"], output_dir=tmp_path)
    assert refused.value.problems == (
        "disk.stop_free_mb: must be below disk.warn_free_mb (5120) (got 6000)",
    )
    config = compose_config(
        ["disk.warn_free_mb=64", "disk.stop_free_mb=8", "disk.check_interval_seconds=0.5"],
        output_dir=tmp_path,
    )
    assert config.disk == DiskGuardConfig(
        warn_free_mb=64, stop_free_mb=8, check_interval_seconds=0.5
    )
    with pytest.raises(ConfigError) as unknown:
        compose_config(["disk.warn_free_mbs=1"], output_dir=tmp_path)
    assert unknown.value.problems == (
        "disk.warn_free_mbs: unknown key; did you mean disk.warn_free_mb?",
    )


# --------------------------------------------------------------------------- what is shown


def _snapshot(disk: DiskUsage | None) -> HealthSnapshot:
    stream = StreamHealth("public.linear", "connected", 0, 10, 0.5, 0)
    writer = WriterStats("trades", 10, 10, 0, 3, 5, 0, 0, 2, 1.0, 10.0, False)
    return HealthSnapshot(1.0, (stream,), (writer,), ReconcilerStats(), 0, disk=disk)


LOW = DiskUsage(Path("/data/recorder.db"), 3 * MIB, 48 * MIB, 12 * MIB, 4.0, DiskLevel.LOW)


def test_the_health_line_shows_the_disk() -> None:
    line = format_health(_snapshot(LOW))
    assert line.endswith("| disk db=3.0MiB growth=+12.0MiB/h free=48.0MiB days_left=4.00 LOW"), line
    assert "disk" not in format_health(_snapshot(None))  # PostgreSQL: nothing to say


def test_health_json_holds_the_disk_fields(tmp_path: Path) -> None:
    writer = HealthFileWriter(tmp_path / "health.json", "run-1", 10.0)
    writer.write(_snapshot(LOW))
    document = json.loads((tmp_path / "health.json").read_text())
    assert document["disk"] == {
        "db_bytes": 3 * MIB,
        "free_bytes": 48 * MIB,
        "growth_bytes_per_hour": 12 * MIB,
        "days_left": 4.0,
        "level": "low",
    }
    assert "disk" not in writer.document(_snapshot(None), "running")


def test_the_metrics_show_the_disk() -> None:
    exporter = MetricsExporter(0, "run-1")
    exporter.update(_snapshot(LOW))
    values = {
        sample.name: sample.value for metric in exporter.collect() for sample in metric.samples
    }
    assert values["recorder_db_size_bytes"] == 3 * MIB
    assert values["recorder_disk_free_bytes"] == 48 * MIB
    assert values["recorder_db_growth_bytes_per_hour"] == 12 * MIB
    assert values["recorder_disk_days_left"] == 4.0
    exporter.update(_snapshot(None))
    names = {metric.name for metric in exporter.collect() if metric.samples}
    assert not {n for n in names if "disk" in n or "db_" in n}


# --------------------------------------------------------------------------- end to end

TMPFS_MB = 48
STOP_MB = 8
#: above the free space at start: the warning is due at the first check
WARN_MB = 32
#: free space above the floor at start; the recording's growth crosses it within seconds
HEADROOM_MB = 3
BALLAST_BYTES = (TMPFS_MB - STOP_MB - HEADROOM_MB) * MIB
TIMEOUT_S = 40

# Not root: the same in a user and mount namespace of its own; the session folder is copied
# out before the namespace (and its tmpfs) goes.
_UNSHARED = """
set -e
mount="$1" out="$4"
mount -t tmpfs -o size="$2"m tmpfs "$mount"
fallocate -l "$3" "$mount/ballast"
shift 4
set +e
"$@"
code=$?
cp -a "$mount/session" "$out/"
exit $code
"""


def _no_small_filesystem() -> str | None:
    """Why this machine cannot give the test a small filesystem; None when it can."""
    if os.geteuid() == 0:
        return None
    if shutil.which("unshare") is None:
        return f"a tmpfs needs root (uid {os.geteuid()}) or unshare (util-linux)"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return (
            f"a tmpfs needs root (uid {os.geteuid()}) or unprivileged user namespaces "
            f"(unshare: {probe.stderr.strip()})"
        )
    return None


@dataclass
class SmallFilesystem:
    """A ``TMPFS_MB`` tmpfs at ``mount`` holding a ballast file that leaves ``STOP_MB +
    HEADROOM_MB`` MiB free. Run through ``prefix``; the session's files are in ``results``
    once the process has exited."""

    mount: Path
    prefix: list[str]
    results: Path


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFilesystem]:
    reason = _no_small_filesystem()
    if reason is not None:
        pytest.skip(reason)
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        out = tmp_path / "copied"
        out.mkdir()
        prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _UNSHARED, "sh"]
        yield SmallFilesystem(
            mount, [*prefix, str(mount), str(TMPFS_MB), str(BALLAST_BYTES), str(out)], out
        )
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mount)], check=True
    )
    try:
        with open(mount / "ballast", "wb") as ballast:
            os.posix_fallocate(ballast.fileno(), 0, BALLAST_BYTES)
        assert free_bytes(mount) == (STOP_MB + HEADROOM_MB) * MIB
        yield SmallFilesystem(mount, [], mount)
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)


@pytest.mark.e2e
def test_the_recorder_stops_cleanly_before_the_disk_is_full(small_fs: SmallFilesystem) -> None:
    with SimProcess("--trade-rate", "400") as sim:
        proc = start_process(
            [
                *small_fs.prefix,
                script("recorder"),
                "symbols=btc_eth",
                *sim.recording_overrides(),
                f"hydra.run.dir={small_fs.mount / 'session'}",
                f"disk.warn_free_mb={WARN_MB}",
                f"disk.stop_free_mb={STOP_MB}",
                "disk.check_interval_seconds=0.2",
            ]
        )
        # It stops by itself: nothing is sent to it.
        done = finish(proc, TIMEOUT_S)
        session = small_fs.results / "session"
        db = session / "recorder.db"
        assert done.returncode == EXIT_DISK_FULL, done.stdout[-3000:]
        truth = load_truth(sim.rest_url, symbols=["BTCUSDT", "ETHUSDT"])
    log = done.stdout

    # below disk.warn_free_mb: one warning (once an hour), before the stop
    warnings = re.findall(r"disk space low: .* below disk\.warn_free_mb=32;", log)
    assert len(warnings) == 1, log[-3000:]
    stop = re.search(
        r"\[ERROR\] - (disk almost full: .*below disk\.stop_free_mb=8: the session stopped .*)", log
    )
    assert stop is not None, log[-3000:]
    assert log.index("disk space low") < stop.start()
    assert "stopping (disk almost full): flushing writers" in log
    # never reached ENOSPC: every flush succeeded
    assert "database or disk is full" not in log, log[-3000:]
    assert "No space left" not in log, log[-3000:]

    # the run says why it stopped
    [(status, error, ended)] = db_rows(db, "SELECT status, error, ended_at_ms FROM runs")
    assert (status, ended is not None) == ("error", True)
    assert error.startswith("disk almost full: ")
    assert "disk.stop_free_mb=8" in error

    # every row reached the database, intact
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    stored = db_rows(db, "SELECT symbol, trade_id FROM public_trades")
    health = json.loads((session / "health.json").read_text())
    assert health["status"] == "error"
    [trades] = [w for w in health["writers"] if w["name"] == "trades"]
    assert (trades["written"], trades["buffered"], trades["failed_flushes"]) == (len(stored), 0, 0)
    final_line = re.findall(r"\| trades received=(\d+) written=(\d+) .*?buffered=(\d+) ", log)[-1]
    assert final_line == (str(len(stored)),) * 2 + ("0",)
    assert len({trade_id for _, trade_id in stored}) == len(stored) > 500
    # every trade the simulator printed is stored once, or inside a gaps row's window (a
    # loaded machine may pause the stream; a refill still running at the stop is recorded)
    completeness = check_completeness(db, truth)
    assert completeness.ok, completeness.format_text()

    # health.json: the database's size, growth and days left when it stopped
    disk = health["disk"]
    assert disk["level"] == "floor"
    assert disk["free_bytes"] < STOP_MB * MIB
    assert disk["db_bytes"] >= HEADROOM_MB * MIB // 2
    assert disk["growth_bytes_per_hour"] > 0
    assert disk["days_left"] is not None
    assert disk["days_left"] < 1
    assert re.search(r"\| disk db=[\d.]+MiB growth=\+[\d.]+MiB/h free=[\d.]+MiB .*FLOOR", log)
