"""A run's final status and the report's headline tell the truth.

Sessions against the in-process simulator, each ending one way: never connected, a topic
refused, private auth never accepted, gaps REST could not fill, and the clean case. Each
asserts the ``runs`` row (status and ``error``), the exit code of ``run_until_shutdown`` and
what ``recorder-report``'s headline (``findings``) says about the session folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bybit_records import FillStatus, Trade
from event_saver import ReconcilerStats
from grid_db import DatabaseFactory, RunRepository, RunStatus
from recorder.session import Recorder, verdict
from recorder_tools.report import build_report
from recorder_tools.report.findings import NO_HOLES, findings
from recorder_tools.report.model import Hole, Report, SessionFacts
from testkit import unused_port, wait_until


def run_row(recorder: Recorder) -> tuple[str, str | None]:
    run = RunRepository(recorder.db.engine).get(recorder.run_id)
    assert run is not None
    return run.status, run.error


def headline(folder: Path) -> list[str]:
    return build_report(folder).findings


async def test_a_clean_session_is_completed_with_no_note(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config(), sqlite_db)
    await wait_until(lambda: recorder.pipeline.writer(Trade).stats().received > 5)
    await recorder.stop()
    assert run_row(recorder) == ("completed", None)
    assert headline(tmp_path)[-1] == NO_HOLES


async def test_a_session_that_never_connected_ends_error(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    port = unused_port()
    config = make_config(
        f"network.public_ws_url='ws://127.0.0.1:{port}/v5/public/{{category}}'",
        f"network.rest_url=http://127.0.0.1:{port}",
        "duration_seconds=1",
    )
    recorder = Recorder(config, sqlite_db, tmp_path)
    assert await asyncio.wait_for(recorder.run_until_shutdown(), 20) == 1
    status, error = run_row(recorder)
    assert status == "error"
    assert error == f"never connected to ws://127.0.0.1:{port}/v5/public/linear"
    lines = headline(tmp_path)
    assert f"{tmp_path.name}: received no data at all (could it connect?)" in lines
    assert f"{tmp_path.name}: ended error: {error}" in lines
    assert NO_HOLES not in lines
    assert lines[-1].startswith("1 session(s) did not record all they were asked to")


async def test_a_refused_topic_ends_the_run_error(
    make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory
) -> None:
    recorder = Recorder(
        make_config("symbols=custom", "custom_symbols=[BTCUSDT,NOPEUSDT]"), sqlite_db, tmp_path
    )
    await recorder.start()
    public = recorder.pipeline.public
    assert public is not None
    await wait_until(lambda: len(public.refused_topics) == 2)
    await wait_until(lambda: recorder.pipeline.writer(Trade).stats().received > 5)
    await recorder.stop()
    status, error = run_row(recorder)
    assert status == "error"
    assert error is not None
    assert error.startswith("Bybit refused publicTrade.NOPEUSDT: ")
    assert "Bybit refused tickers.NOPEUSDT: " in error
    assert NO_HOLES not in headline(tmp_path)


async def test_private_auth_that_never_succeeds_ends_the_run_error(
    account_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(account_config("not-the-sim-secret"), sqlite_db)
    private = recorder.pipeline.private
    assert private is not None
    await wait_until(lambda: private.auth_failures >= 1)
    await wait_until(lambda: recorder.pipeline.writer(Trade).stats().received > 5)
    await recorder.stop()
    status, error = run_row(recorder)
    assert status == "error"
    assert error is not None
    assert error.startswith(
        f"private auth never succeeded ({private.auth_failures} attempt(s) refused; last: "
        "private auth failed (invalid_key): Signature verification failed)"
    )
    assert "sim-key" not in error
    assert "not-the-sim-secret" not in error
    lines = headline(tmp_path)
    assert any(
        line.startswith(f"{tmp_path.name}: ended error: private auth never") for line in lines
    )
    assert NO_HOLES not in lines


async def test_gaps_rest_could_not_fill_are_noted_on_a_completed_run(
    sim: Any, make_config: Any, tmp_path: Path, sqlite_db: DatabaseFactory, recording: Any
) -> None:
    recorder = await recording(make_config("symbols=btc"), sqlite_db)
    reconciler = recorder.pipeline.reconciler
    assert reconciler is not None
    await wait_until(lambda: recorder.pipeline.writer(Trade).stats().received > 5)
    sim.faults.rest_errors("http500", 1000)
    sim.faults.drop_connections()
    await wait_until(lambda: reconciler.stats.gaps_detected >= 1 and reconciler.pending == 0, 20)
    await recorder.stop()
    status, error = run_row(recorder)
    assert status == "completed"
    assert (
        error == "1 gap(s) REST could not fill (0 partial, 1 unfillable): data may be missing there"
    )
    lines = headline(tmp_path)
    assert f"{tmp_path.name}: completed, but {error}" in lines
    assert "trades may be missing in 1 trade gap(s) REST could not fill" in lines
    assert NO_HOLES not in lines


# --------------------------------------------------------------------------- the headline alone


def _session(**changes: Any) -> SessionFacts:
    facts: dict[str, Any] = {
        "folder": "s1",
        "database": "s1/recorder.db",
        "run_id": "r1",
        "status": "completed",
        "process_gone": False,
        "started_at_ms": 1_000,
        "ended_at_ms": 61_000,
        "recorded_from_ms": 1_500,
        "recorded_until_ms": 60_000,
        "duration_s": 60.0,
        "category": "linear",
        "symbols": ["BTCUSDT"],
        "network_host": "127.0.0.1:8765",
        "trades": 100,
        "ticker_rows": 100,
        "error": None,
    }
    facts.update(changes)
    return SessionFacts(**facts)


def _report(sessions: list[SessionFacts], holes: list[Hole] | None = None) -> Report:
    return Report(
        path="x",
        generated_at_ms=100_000,
        databases=[],
        findings=[],
        sessions=sessions,
        instruments=[],
        coverage=[],
        holes=holes or [],
        days=[],
        connection_events=[],
        live=[],
    )


def _hole(stream: str) -> Hole:
    return Hole(
        kind="gap",
        category="linear",
        symbol=None,
        stream=stream,
        start_ms=10_000,
        end_ms=20_000,
        duration_s=10.0,
        cause="auth",
        fill_status="unfillable",
        rows_recovered=0,
        missing_from_ms=10_000,
        missing_until_ms=20_000,
        folder="s1",
        detail=None,
    )


@pytest.mark.parametrize(
    ("session", "line"),
    [
        (_session(), NO_HOLES),
        (
            _session(status="aborted", error="killed"),
            "1 session(s) did not record all they were asked to (s1): see above; the holes listed below may not be all",
        ),
        (
            _session(status="running", process_gone=True),
            "1 session(s) did not record all they were asked to (s1): see above; the holes listed below may not be all",
        ),
        (
            _session(recorded_from_ms=None, recorded_until_ms=None, trades=0, ticker_rows=0),
            "1 session(s) did not record all they were asked to (s1): see above; the holes listed below may not be all",
        ),
    ],
    ids=["clean", "aborted", "crashed", "no-data"],
)
def test_the_headline_says_no_holes_only_when_true(session: SessionFacts, line: str) -> None:
    assert findings(_report([session]))[-1] == line


def test_unfilled_private_gaps_are_in_the_headline() -> None:
    lines = findings(_report([_session()], [_hole("execution")]))
    assert (
        "private data (executions, orders) may be missing in 1 gap(s) REST could not fill" in lines
    )
    assert NO_HOLES not in lines
    # a ticker gap is never refillable: it is not a hole of the headline
    assert findings(_report([_session()], [_hole("tickers")]))[-1] == NO_HOLES


def test_gaps_the_stop_cut_short_are_noted_among_the_unfilled() -> None:
    stats = ReconcilerStats(not_refilled=2)
    stats.gaps[FillStatus.UNFILLABLE] = 3
    stopped = SimpleNamespace(
        public=None, private=None, writers=[], reconciler=SimpleNamespace(stats=stats)
    )
    outcome = verdict(stopped)  # type: ignore[arg-type]
    assert outcome.status is RunStatus.COMPLETED
    assert outcome.text == (
        "3 gap(s) REST could not fill (0 partial, 3 unfillable): data may be missing there; "
        "2 of them not refilled: the recorder stopped first"
    )
