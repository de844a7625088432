"""The one way event_saver tests run a pipeline: ``await start(**config_overrides)``."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bybit_records import Category
from event_saver import PipelineConfig, RecordingPipeline
from grid_db import DatabaseFactory, ReferenceDataRepository, RunRepository
from testkit import FAST_REST, FAST_STREAM, FAST_WRITER

SYMBOLS = ("BTCUSDT", "ETHUSDT")
ACCOUNT = "00000000-0000-0000-0000-0000000000a1"
Start = Callable[..., Awaitable[RecordingPipeline]]


def new_run(db: DatabaseFactory, with_account: bool = False) -> str:
    if with_account:
        ReferenceDataRepository(db.engine).upsert_reference_rows(
            "00000000-0000-0000-0000-0000000000b1", ACCOUNT, None, testnet=False
        )
    return (
        RunRepository(db.engine)
        .create_run(config_json="{}", host="test", pid=1, software_version="test")
        .id
    )


@pytest.fixture
async def start(sim: Any, request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    """``await start(**config_overrides)``: a running pipeline, stopped at teardown.

    It records into the ``db`` fixture's database (so the test runs on each backend), or
    into ``database=`` when the test brings its own.
    """
    async with contextlib.AsyncExitStack() as running:

        async def factory(
            database: DatabaseFactory | None = None, **overrides: Any
        ) -> RecordingPipeline:
            db = database if database is not None else request.getfixturevalue("db")
            config = PipelineConfig(
                category=Category.LINEAR,
                symbols=SYMBOLS,
                public_ws_url=sim.public_ws_url,
                rest_url=sim.rest_url,
                run_id=new_run(db, with_account="account" in overrides),
                public=FAST_STREAM,
                rest=FAST_REST,
                writer=FAST_WRITER,
                reconcile_delay=0.1,
            )
            pipeline = RecordingPipeline(db.engine, dataclasses.replace(config, **overrides))
            return await running.enter_async_context(pipeline)

        yield factory
