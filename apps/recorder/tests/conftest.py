"""Fixtures of the recorder app's tests: a session config pointed at the in-process simulator,
a started recorder stopped at teardown, and the session folder's own SQLite database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grid_db import DatabaseFactory, DatabaseSettings
from recorder.config import RecorderConfig, compose_config
from recorder.session import Recorder
from testkit import recording_overrides

MakeConfig = Callable[..., RecorderConfig]
StartRecording = Callable[[RecorderConfig, DatabaseFactory], Awaitable[Recorder]]


@pytest.fixture
def make_config(sim: Any, tmp_path: Path) -> MakeConfig:
    """``make_config(*overrides)``: the packaged config, recording BTCUSDT and ETHUSDT from
    the simulator with the fast test timings, and the overrides on top."""

    def make(*overrides: str) -> RecorderConfig:
        return compose_config(
            [
                "symbols=btc_eth",
                *recording_overrides(sim),
                *overrides,
            ],
            output_dir=tmp_path,
        )

    return make


@pytest.fixture
def account_config(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> MakeConfig:
    """``account_config(secret, *overrides)``: ``make_config`` recording the simulator's account
    too (``account=env``), with its API key and ``secret`` in the environment (the simulator's
    own secret is ``sim-secret``; any other is refused)."""

    def make(secret: str, *overrides: str) -> RecorderConfig:
        monkeypatch.setenv("BYBIT_API_KEY", "sim-key")
        monkeypatch.setenv("BYBIT_API_SECRET", secret)
        return make_config("account=env", *overrides)

    return make


@pytest.fixture
async def recording(tmp_path: Path) -> AsyncIterator[StartRecording]:
    """``await recording(config, db)``: a started ``Recorder`` of ``config``, its session folder
    ``tmp_path``, writing to ``db``. Stopped at teardown (stop is idempotent), so a test that
    fails midway leaves no stream running."""
    async with contextlib.AsyncExitStack() as started:

        async def start(config: RecorderConfig, db: DatabaseFactory) -> Recorder:
            return await started.enter_async_context(Recorder(config, db, tmp_path))

        yield start


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[DatabaseFactory]:
    """The session folder's own database, as the CLI makes it (the report reads the folder)."""
    factory = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{tmp_path}/recorder.db"))
    yield factory
    factory.dispose()
