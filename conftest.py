"""Fixtures shared by every member's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bybit_sim import BybitSimulator, SimulatorConfig
from event_saver import DatabaseWorker
from grid_db import DatabaseFactory, DatabaseSettings


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "recorder.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{db_path}", busy_timeout_ms=200))
    factory.create_tables()
    yield factory
    factory.dispose()


@pytest.fixture
def worker() -> Iterator[DatabaseWorker]:
    w = DatabaseWorker()
    yield w
    w.close()


@pytest.fixture
async def sim() -> AsyncIterator[BybitSimulator]:
    """A simulator on an ephemeral port, trading fast enough for quick tests."""
    simulator = BybitSimulator(SimulatorConfig(host="127.0.0.1", port=0, trade_rate=40.0, seed=7))
    await simulator.start()
    yield simulator
    await simulator.stop()
