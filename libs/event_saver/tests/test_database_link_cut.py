"""PostgreSQL on another host whose link dies silently: the writers buffer, retry and catch up.

A link that drops packets sends no reset: without a bound of its own, a write in flight waits
for the kernel's retransmission timeout (about 15 minutes) and the writer with it. The
database runs in its own network namespace (``testing/netns.py``) and the test cuts its link
at the bridge, a real network fault, for several times the connection's ``io_timeout_s``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from netns import Lab, unavailable_reason
from pg_cluster import PostgresCluster, find_postgres_binaries

from bybit_records import Category, Trade
from event_saver import PipelineConfig, RecordingPipeline
from grid_db import DatabaseFactory, DatabaseSettings, RunRepository
from testkit import FAST_REST, FAST_STREAM, FAST_WRITER, invariant_violations, wait_until

pytestmark = pytest.mark.postgresql

SYMBOLS = ("BTCUSDT", "ETHUSDT")
IO_TIMEOUT_S = 4
CUT_S = 3 * IO_TIMEOUT_S


@pytest.fixture
def remote_postgres() -> Iterator[tuple[Lab, Any, str]]:
    """(lab, the database's host, a SQLAlchemy URL reaching it from this namespace)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"a database on another host needs network namespaces: {reason}")
    binaries = find_postgres_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries")
    with contextlib.ExitStack() as cleanup:
        lab = Lab().start()
        cleanup.callback(lab.close)
        host = lab.add_host("pg")
        cluster = PostgresCluster(
            binaries,
            host=host.ip,
            netns=host.netns,
            hba=(f"host all postgres {lab.gateway}/32 trust",),
        )
        cleanup.callback(cluster.stop)
        cleanup.callback(lab.restore_all)  # before the cluster stops: it must be reachable
        cluster.start()
        yield lab, host, cluster.url(cluster.create_database())


async def test_a_silently_dead_database_link_is_bounded_buffered_and_caught_up(
    sim: Any, remote_postgres: tuple[Lab, Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    lab, host, url = remote_postgres
    db = DatabaseFactory(DatabaseSettings(url=url, connect_timeout_s=2, io_timeout_s=IO_TIMEOUT_S))
    db.create_tables()
    run_id = (
        RunRepository(db.engine)
        .create_run(config_json="{}", host="test", pid=1, software_version="test")
        .id
    )
    config = PipelineConfig(
        Category.LINEAR,
        SYMBOLS,
        sim.public_ws_url,
        sim.rest_url,
        run_id,
        public=FAST_STREAM,
        rest=FAST_REST,
        writer=FAST_WRITER,
        reconcile_delay=0.1,
    )
    p = RecordingPipeline(db.engine, config)
    caplog.set_level(logging.WARNING, logger="event_saver")
    try:
        await p.start()
        trades = p.writer(Trade)
        await wait_until(lambda: trades.stats().written > 50)
        lab.cut(host)
        cut_at = time.monotonic()
        try:
            # A write in flight fails within the bound, and so does every retry meanwhile:
            # the writer is never stuck on one write for the length of the cut.
            await wait_until(lambda: trades.stats().failed_flushes >= 2, timeout=CUT_S)
            failed_after = time.monotonic() - cut_at
            buffered = trades.buffered
            await wait_until(lambda: trades.buffered > buffered + 20)  # still recording
            await wait_until(lambda: time.monotonic() - cut_at >= CUT_S, timeout=CUT_S + 1)
        finally:
            lab.restore(host)
        await wait_until(lambda: trades.buffered < 60, timeout=30)
        assert p.public is not None
        assert p.public.stats.outages == 0  # the database's outage is not the stream's
    finally:
        await p.stop()
    assert failed_after < 3 * IO_TIMEOUT_S, failed_after
    lines = [r.getMessage() for r in caplog.records if "database" in r.getMessage()]
    assert len([line for line in lines if "trades: database unavailable" in line]) == 1, lines
    assert any("trades: database back after" in line for line in lines), lines
    now_ms = time.time_ns() // 1_000_000
    for symbol in SYMBOLS:
        truth = sim.ground_truth.trades("linear", symbol)
        until = max((t.time_ms for t in truth if t.time_ms < now_ms - 2_000), default=0)
        problems = invariant_violations(db.engine, truth, symbol, until)
        assert not problems, problems[:5]
    db.dispose()
