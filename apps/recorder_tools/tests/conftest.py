"""Fixtures of the recorder tools' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from bybit_sim import BybitSimulator
from grid_db import DatabaseFactory, DatabaseSettings
from recorder.config import compose_config
from recorder.session import Recorder
from testkit import db_count, recording_overrides, wait_until

RecordWithAnOutage = Callable[[BybitSimulator, Path], Awaitable[None]]

STORED_TRADES = "SELECT count(*) FROM public_trades"
#: written once REST has refilled (or given up on) a symbol's outage
TRADE_GAP_SYMBOLS = "SELECT count(DISTINCT symbol) FROM gaps WHERE stream = 'publicTrade'"


async def _record_with_an_outage(sim: BybitSimulator, folder: Path) -> None:
    db_file = folder / "recorder.db"
    config = compose_config(
        [
            "symbols=btc_eth",
            f"network.rest_url={sim.rest_url}",
            f"network.public_ws_url='{sim.public_ws_url}'",
            f"network.private_ws_url={sim.private_ws_url}",
            f"database_url=sqlite:///{db_file}",
            "flush_interval=0.2",
            "connection.ping_interval_seconds=0.3",
            "connection.pong_timeout_seconds=0.5",
            "connection.stall_timeout_seconds=2",
            "connection.reconnect_initial_delay_seconds=0.05",
            "connection.reconnect_max_delay_seconds=0.3",
        ],
        output_dir=folder,
    )
    database = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{db_file}"))
    try:
        recorder = Recorder(config, database, folder)
        await recorder.start()
        try:
            # Waits on what is stored, not on the recorder's internals.
            await wait_until(lambda: db_count(db_file, STORED_TRADES) > 40, timeout=15)
            # An outage in the middle: the trades printed meanwhile come back over REST.
            sim.faults.refuse_connections(0.5)
            sim.faults.drop_connections()
            await wait_until(lambda: db_count(db_file, TRADE_GAP_SYMBOLS) == 2, timeout=20)
            stored = db_count(db_file, STORED_TRADES)
            await wait_until(lambda: db_count(db_file, STORED_TRADES) > stored + 20, timeout=15)
        finally:
            await recorder.stop()
    finally:
        database.dispose()  # the tools open the file on their own, read-only


@pytest.fixture(scope="session")
def record_with_an_outage() -> RecordWithAnOutage:
    """``await record_with_an_outage(sim, folder)``: a session recording BTCUSDT and ETHUSDT
    from the in-process simulator into ``folder/recorder.db``, with an outage in the middle
    (connections dropped, reconnects refused for a while), so that it holds refilled gap rows
    of both symbols; it has ended, and its database is closed, when the call returns."""
    return _record_with_an_outage


@asynccontextmanager
async def _recording(
    sim: BybitSimulator, database: DatabaseFactory, folder: Path, *overrides: str
) -> AsyncIterator[Recorder]:
    config = compose_config(
        [
            *recording_overrides(sim),
            *overrides,
        ],
        output_dir=folder,
    )
    recorder = Recorder(config, database, folder)
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.stop()


@pytest.fixture(scope="session")
def recording() -> Callable[..., AbstractAsyncContextManager[Recorder]]:
    """``async with recording(sim, database, folder, *overrides) as recorder:`` a session
    recording from the in-process simulator into ``database`` (the packaged config, the fast
    test timings, ``overrides`` on top); stopped on leaving the block, its run closed."""
    return _recording
