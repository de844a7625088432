"""health.json and the optional Prometheus endpoint of a live Recorder session."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bybit_records import Trade
from event_saver import ReconcilerStats, WriterStats
from grid_db import DatabaseFactory
from recorder.health import HealthSnapshot, StreamHealth
from recorder.health_file import HealthFileWriter, read_health_file
from recorder.session import Recorder
from testkit import unused_port, wait_until


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_health_json_is_written_at_start_on_every_tick_and_at_stop(
    make_config: Any, tmp_path: Path, db: DatabaseFactory, recording: Any
) -> None:
    path = tmp_path / "health.json"
    recorder = await recording(make_config("health_log_interval=0.2"), db)
    first = read_health_file(path)
    assert first is not None  # written by start(), before any tick
    assert (first["status"], first["run_id"]) == ("running", recorder.run_id)
    assert [s["name"] for s in first["streams"]] == ["public.linear"]
    await wait_until(lambda: _messages(path) > 20, timeout=10)
    earlier = read_health_file(path)
    assert earlier is not None
    await wait_until(
        lambda: (_document(path).get("written_at_ms") or 0) > earlier["written_at_ms"],
        timeout=5,
    )
    later = _document(path)
    assert later["uptime_s"] > earlier["uptime_s"]
    stream = later["streams"][0]
    assert stream["state"] == "connected"
    assert stream["messages_per_s"] is not None
    assert stream["messages_per_s"] >= 0
    assert stream["last_message_age_s"] is not None
    trades = next(w for w in later["writers"] if w["name"] == "trades")
    assert {"written", "rows_per_s", "buffered", "duplicates"} <= set(trades)
    assert set(later["gaps"]) >= {"detected", "filled", "partial", "unfillable", "pending"}
    assert later["interval_s"] == 0.2
    assert len(path.read_bytes()) < 2048
    await recorder.stop()
    final = _document(path)
    assert final["status"] == "completed"
    assert final["streams"][0]["state"] == "stopped"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert recorder.metrics is None  # metrics_port defaults to null: no endpoint


def _document(path: Path) -> dict[str, Any]:
    return read_health_file(path) or {}


def _messages(path: Path) -> int:
    streams = _document(path).get("streams") or [{}]
    return int(streams[0].get("messages") or 0)


async def test_prometheus_endpoint_serves_the_counters_when_metrics_port_is_set(
    make_config: Any, db: DatabaseFactory, recording: Any
) -> None:
    port = unused_port()
    recorder = await recording(make_config(f"metrics_port={port}"), db)
    assert recorder.metrics is not None

    async def trades_written() -> float:
        text = await asyncio.to_thread(scrape, port)
        return metric(text, "recorder_rows_written_total", writer="trades") or 0.0

    deadline = asyncio.get_running_loop().time() + 10
    while await trades_written() <= 0:
        assert asyncio.get_running_loop().time() < deadline, "no trades in the metrics"
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(scrape, port)
    run = {"run_id": recorder.run_id}
    stream = {**run, "stream": "public.linear"}
    assert (metric(text, "recorder_messages_total", **stream) or 0) > 0
    assert metric(text, "recorder_stream_connected", **stream) == 1.0
    assert metric(text, "recorder_stream_state", **stream, state="connected") == 1.0
    assert metric(text, "recorder_last_message_age_seconds", **stream) is not None
    assert metric(text, "recorder_rejected_frames_total", **stream) == 0.0
    assert metric(text, "recorder_reconnects_total", **stream) == 0.0
    assert metric(text, "recorder_duplicate_rows_total", writer="trades") is not None
    assert metric(text, "recorder_buffered_rows", writer="trades") is not None
    assert metric(text, "recorder_gaps_total", fill_status="filled") == 0.0
    await recorder.stop()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, port)


async def test_a_taken_metrics_port_does_not_stop_the_recording(
    make_config: Any, tmp_path: Path, db: DatabaseFactory
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        recorder = Recorder(make_config(f"metrics_port={port}"), db, tmp_path)
        await recorder.start()
        try:
            assert recorder.metrics is None
            await wait_until(
                lambda: recorder.pipeline.writer(Trade).stats().written > 0, timeout=10
            )
        finally:
            await recorder.stop()


def _snapshot(uptime_s: float, frames: int) -> HealthSnapshot:
    stream = StreamHealth("public.linear", "connected", 0, frames, 0.5, 0)
    writer = WriterStats("trades", frames, frames, 0, 3, 5, 0, 0, 2, 1.0, 10.0, False)
    return HealthSnapshot(uptime_s, (stream,), (writer,), ReconcilerStats(), 0)


def test_message_rates_come_from_the_change_between_two_writes(tmp_path: Path) -> None:
    writer = HealthFileWriter(tmp_path / "health.json", "run-1", 10.0)
    writer.write(_snapshot(10.0, 100))
    assert _document(tmp_path / "health.json")["streams"][0]["messages_per_s"] == 10.0
    writer.write(_snapshot(20.0, 400))
    document = _document(tmp_path / "health.json")
    assert document["streams"][0]["messages_per_s"] == 30.0
    assert document["streams"][0]["messages"] == 400
    assert json.loads((tmp_path / "health.json").read_text()) == document
    assert sorted(p.name for p in tmp_path.iterdir()) == ["health.json"]
