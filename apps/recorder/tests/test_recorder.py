"""The ``Recorder`` lifecycle: start, stop, run_until_shutdown, duration, signals.

Each session records from the in-process simulator into a SQLite file of its own; the
database behaviour (SQLite and PostgreSQL) is in ``test_session.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bybit_records import Trade
from grid_db import DatabaseFactory, RunRepository, tables
from recorder.config import RecorderConfig
from recorder.session import Recorder
from testkit import wait_until


def received(recorder: Recorder) -> int:
    """Trades received so far (0 while the pipeline is still starting)."""
    if not recorder.pipeline.writers:
        return 0
    return recorder.pipeline.writer(Trade).stats().received


def stored_trades(db: DatabaseFactory) -> int:
    with db.engine.connect() as conn:
        query = select(func.count()).select_from(tables.public_trades.table)
        return int(conn.execute(query).scalar_one())


def status_of(recorder: Recorder) -> tuple[str, str | None]:
    run = RunRepository(recorder.db.engine).get(recorder.run_id)
    assert run is not None
    return run.status, run.error


def test_a_config_built_in_code_drives_a_recorder(
    tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    recorder = Recorder(RecorderConfig(symbols=["BTCUSDT"]), sqlite_db, tmp_path)
    assert recorder.pipeline.config.symbols == ("BTCUSDT",)
    assert recorder.pipeline.config.public_ws_url == "wss://stream.bybit.com/v5/public/{category}"


async def test_start_and_stop(make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory) -> None:
    recorder = Recorder(make_config(), sqlite_db, tmp_path)
    await recorder.start()
    await recorder.start()  # a second start is a no-op
    await wait_until(lambda: received(recorder) > 10)
    assert status_of(recorder) == ("running", None)
    await recorder.stop()
    await recorder.stop()  # idempotent
    assert status_of(recorder) == ("completed", None)
    assert len(RunRepository(sqlite_db.engine).list()) == 1
    assert stored_trades(sqlite_db) == received(recorder)  # flushed before the run closed


async def test_stop_without_start_does_nothing(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    recorder = Recorder(make_config(), sqlite_db, tmp_path)
    await recorder.stop()
    sqlite_db.create_tables()
    assert RunRepository(sqlite_db.engine).list() == []


async def test_the_seeds_start_then_run_until_shutdown_starts_once(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    recorder = Recorder(make_config("duration_seconds=1"), sqlite_db, tmp_path)
    await recorder.start()
    assert await asyncio.wait_for(recorder.run_until_shutdown(), 15) == 0
    assert status_of(recorder) == ("completed", None)
    assert len(RunRepository(sqlite_db.engine).list()) == 1


async def test_duration_ends_the_session(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recorder.session")
    recorder = Recorder(make_config("duration_seconds=1.5"), sqlite_db, tmp_path)
    started = time.monotonic()
    assert await asyncio.wait_for(recorder.run_until_shutdown(), 15) == 0
    took = time.monotonic() - started
    assert 1.5 <= took < 10, took
    assert status_of(recorder) == ("completed", None)
    assert stored_trades(sqlite_db) > 0
    assert "stopping (duration reached): flushing writers" in caplog.messages


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_ends_the_session_cleanly(
    make_config: Any,
    tmp_path: Path,
    sqlite_db: DatabaseFactory,
    caplog: pytest.LogCaptureFixture,
    sig: signal.Signals,
) -> None:
    caplog.set_level(logging.INFO, logger="recorder.session")
    previous = signal.getsignal(sig)
    recorder = Recorder(make_config(), sqlite_db, tmp_path)
    session = asyncio.create_task(recorder.run_until_shutdown())
    await wait_until(lambda: received(recorder) > 10)
    os.kill(os.getpid(), sig)
    assert await asyncio.wait_for(session, 15) == 0
    assert status_of(recorder) == ("completed", None)
    assert stored_trades(sqlite_db) == received(recorder)
    assert f"stopping ({sig.name}): flushing writers" in caplog.messages
    # the session's signal handlers are gone with it
    assert signal.getsignal(sig) == previous


async def test_a_stop_event_ends_the_session(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    stop = asyncio.Event()
    recorder = Recorder(make_config(), sqlite_db, tmp_path)
    session = asyncio.create_task(recorder.run_until_shutdown(stop))
    await wait_until(lambda: received(recorder) > 5)
    stop.set()
    assert await asyncio.wait_for(session, 15) == 0
    assert status_of(recorder) == ("completed", None)


async def test_a_cancelled_session_closes_its_run_as_error(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    recorder = Recorder(make_config(), sqlite_db, tmp_path)
    session = asyncio.create_task(recorder.run_until_shutdown())
    await wait_until(lambda: received(recorder) > 5)
    session.cancel()
    with pytest.raises(asyncio.CancelledError):
        await session
    status, error = status_of(recorder)
    assert status == "error"
    assert error is not None
    assert error.startswith("CancelledError")
    assert stored_trades(sqlite_db) == received(recorder)  # still flushed
