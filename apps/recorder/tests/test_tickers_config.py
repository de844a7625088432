"""``tickers.min_interval_ms``: validated, handed to the pipeline, and saved with the run.

(The sampling itself is tested in ``libs/event_saver/tests/test_ticker_sampler.py`` and
``test_ticker_sampling.py``; what the report makes of it in ``apps/recorder_tools/tests``.)
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bybit_records import Ticker
from grid_db import DatabaseFactory, RunRepository, tables
from recorder.config import (
    RecorderConfig,
    TickerConfig,
    compose_config,
    load_config,
    validate_config,
)
from recorder.errors import ConfigError
from recorder.session import pipeline_config, write_session_file
from testkit import wait_until


def test_the_default_keeps_every_push() -> None:
    assert RecorderConfig(symbols=["BTCUSDT"]).tickers == TickerConfig(min_interval_ms=0)
    assert compose_config().tickers.min_interval_ms == 0
    assert pipeline_config(RecorderConfig(symbols=["BTCUSDT"]), "r").ticker_min_interval_ms == 0


def test_an_override_or_a_config_file_sets_it(tmp_path: Path) -> None:
    config = compose_config(["tickers.min_interval_ms=1000"])
    assert config.tickers.min_interval_ms == 1000
    assert pipeline_config(config, "r").ticker_min_interval_ms == 1000
    assert json.loads(config.to_safe_json())["tickers"] == {"min_interval_ms": 1000}
    file = tmp_path / "my.yaml"
    file.write_text("symbols: [BTCUSDT]\ntickers:\n  min_interval_ms: 250\n")
    assert load_config(file, output_dir=tmp_path).tickers.min_interval_ms == 250


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (
            "tickers.min_interval_ms=-5",
            "tickers.min_interval_ms: must be >= 0 (0 keeps every push, 1000 at most one per "
            "second) (got -5)",
        ),
        (
            "tickers.min_interval_ms=0.5",
            "tickers.min_interval_ms: Input should be a valid integer, got a number with a "
            "fractional part (got 0.5)",
        ),
        (
            "tickers.min_interval=100",
            "tickers.min_interval: unknown key; did you mean tickers.min_interval_ms?",
        ),
    ],
)
def test_a_bad_value_or_key_is_one_line_naming_it(override: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        compose_config([override])
    assert error.value.problems == (problem,)


def test_plain_data_is_validated_the_same_way() -> None:
    with pytest.raises(ConfigError) as error:
        validate_config({"symbols": ["BTCUSDT"], "tickers": {"min_interval_ms": -1}})
    assert error.value.problems == (
        "tickers.min_interval_ms: must be >= 0 (0 keeps every push, 1000 at most one per second) "
        "(got -1)",
    )
    with pytest.raises(ConfigError, match=r"tickers\.every: Extra inputs are not permitted"):
        validate_config({"symbols": ["BTCUSDT"], "tickers": {"every": 3}})


async def test_a_sampling_session_saves_the_setting_with_its_run_and_says_so(
    make_config: Any,
    tmp_path: Path,
    sqlite_db: DatabaseFactory,
    caplog: pytest.LogCaptureFixture,
    recording: Any,
) -> None:
    caplog.set_level(logging.INFO, logger="recorder.session")
    config = make_config("tickers.min_interval_ms=400", "health_log_interval=0.3")
    write_session_file(config, tmp_path, ["recorder", "tickers.min_interval_ms=400"])
    recorder = await recording(config, sqlite_db)
    await wait_until(lambda: recorder.pipeline.writer(Ticker).stats().written >= 6)
    await wait_until(lambda: "sampled_out=" in caplog.text, timeout=5)
    await recorder.stop()
    run = RunRepository(sqlite_db.engine).get(recorder.run_id)
    assert run is not None
    assert json.loads(run.config_json)["tickers"] == {"min_interval_ms": 400}
    session = json.loads((tmp_path / "session.json").read_text())
    assert session["config"]["tickers"] == {"min_interval_ms": 400}
    assert "tickers: sampled, at most one per 400 ms per symbol" in caplog.text
    t = tables.ticker_snapshots.table
    with sqlite_db.engine.connect() as conn:
        rows = conn.execute(
            select(t.c.symbol, t.c.exchange_ts_ms).order_by(t.c.symbol, t.c.exchange_ts_ms)
        ).all()
    for symbol in {row.symbol for row in rows}:
        times = [row.exchange_ts_ms for row in rows if row.symbol == symbol]
        assert all(b - a >= 400 for a, b in itertools.pairwise(times)), times
    sampled_out = recorder.health().tickers_sampled_out
    assert sampled_out is not None
    assert sampled_out > 0
