"""``recorder-report`` says per session what was kept of the ticker pushes.

Two real sessions record from the in-process simulator, one with every push and one with
``tickers.min_interval_ms=500``; the report (text and JSON) reads the setting from each run's
saved configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bybit_records import Ticker
from grid_db import DatabaseFactory, DatabaseSettings
from recorder.config import compose_config
from recorder.session import Recorder
from recorder_tools.report.cli import main as report_main
from recorder_tools.report.sessions import ticker_min_interval_ms, tickers_kept
from testkit import recording_overrides, wait_until


async def record(sim: Any, folder: Path, *overrides: str) -> None:
    """A short session in ``folder`` (its own ``recorder.db``), stopped once it wrote a few
    ticker rows."""
    config = compose_config(
        [
            "symbols=btc_eth",
            *recording_overrides(sim),
            *overrides,
        ],
        output_dir=folder,
    ).with_database_in(folder)
    assert config.database_url is not None
    with DatabaseFactory(DatabaseSettings(url=config.database_url)) as db:
        recorder = Recorder(config, db, folder)
        await recorder.start()
        try:
            await wait_until(lambda: recorder.pipeline.writer(Ticker).stats().written >= 4)
        finally:
            await recorder.stop()


@pytest.fixture
async def outputs(sim: Any, tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    await record(sim, root / "every")
    await record(sim, root / "sampled", "tickers.min_interval_ms=500")
    return root


def test_the_report_says_what_each_session_kept_of_the_tickers(
    outputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_main([str(outputs), "--json"]) == 0
    sessions = {s["folder"]: s for s in json.loads(capsys.readouterr().out)["sessions"]}
    assert (sessions["every"]["ticker_min_interval_ms"], sessions["every"]["tickers_kept"]) == (
        0,
        "every push",
    )
    assert (
        sessions["sampled"]["ticker_min_interval_ms"],
        sessions["sampled"]["tickers_kept"],
    ) == (500, "sampled, at most one per 500 ms per symbol")
    assert report_main([str(outputs)]) == 0
    text = capsys.readouterr().out
    assert "tickers kept" in text
    # a session's row in the Sessions table is the line with its run id
    for folder, words in (
        ("every", "every push"),
        ("sampled", "sampled, at most one per 500 ms per symbol"),
    ):
        (row,) = [line for line in text.splitlines() if sessions[folder]["run_id"][:8] in line]
        assert words in row, row


@pytest.mark.parametrize(
    ("config", "interval", "words"),
    [
        (
            {"tickers": {"min_interval_ms": 1000}},
            1000,
            "sampled, at most one per 1000 ms per symbol",
        ),
        ({"tickers": {"min_interval_ms": 0}}, 0, "every push"),
        ({"category": "linear"}, 0, "every push"),  # recorded before the setting existed
        ({"tickers": {"min_interval_ms": "x"}}, 0, "every push"),
        ({"tickers": None}, 0, "every push"),
    ],
)
def test_the_setting_is_read_from_a_saved_config(
    config: dict[str, Any], interval: int, words: str
) -> None:
    assert ticker_min_interval_ms(config) == interval
    assert tickers_kept(interval) == words
