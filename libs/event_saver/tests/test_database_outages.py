"""PostgreSQL goes away mid-run: restarted, or its link cut without a word.

Either way the writers buffer (bounded), retry, say so in one line each way, and catch up;
the stream keeps recording and no trade is lost. A cut link sends no reset: without a bound
of its own, a write in flight would wait for the kernel's retransmission timeout (about
15 minutes) and the writer with it. For that test the database runs on another host, a
network namespace (``testing/netns.py``), and its link is cut at the bridge, a real network
fault, for several times the connection's ``io_timeout_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from netns import Host, Lab, unavailable_reason
from pg_cluster import PostgresCluster, find_postgres_binaries

from bybit_records import Trade
from event_saver import RecordingPipeline
from grid_db import DatabaseFactory, DatabaseSettings
from testkit import FAST_WRITER, settled_violations, wait_until

from .conftest import SYMBOLS

pytestmark = pytest.mark.postgresql

IO_TIMEOUT_S = 4
CONNECT_TIMEOUT_S = 2
CUT_S = 3 * IO_TIMEOUT_S


@dataclasses.dataclass
class RemoteDatabase:
    lab: Lab
    host: Host
    db: DatabaseFactory


@pytest.fixture
def remote_database() -> Iterator[RemoteDatabase]:
    """A database on another host, reached over a link the test can cut."""
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
        cleanup.callback(lab.restore_all)  # first: the cluster must be reachable to stop
        cluster.start()
        settings = DatabaseSettings(
            url=cluster.url(cluster.create_database()),
            connect_timeout_s=CONNECT_TIMEOUT_S,
            io_timeout_s=IO_TIMEOUT_S,
        )
        db = DatabaseFactory(settings)
        cleanup.callback(db.dispose)
        db.create_tables()
        yield RemoteDatabase(lab, host, db)


async def record_through_a_database_outage(
    start: Any,
    db: DatabaseFactory,
    caplog: pytest.LogCaptureFixture,
    begin: Callable[[], None],
    end: Callable[[], None],
    lasting_s: float = 0,
) -> tuple[RecordingPipeline, float]:
    """Record, take the database away with ``begin()`` for at least ``lasting_s``, bring it
    back with ``end()``, and wait until the backlog is written; returns the pipeline and how
    long after ``begin()`` the first write failed."""
    caplog.set_level(logging.WARNING, logger="event_saver")
    p: RecordingPipeline = await start(
        database=db, writer=dataclasses.replace(FAST_WRITER, retry_max=0.5)
    )
    trades = p.writer(Trade)
    await wait_until(lambda: trades.stats().written > 50)
    began = time.monotonic()
    begin()
    try:
        await wait_until(lambda: trades.stats().failed_flushes >= 1, timeout=15)
        failed_after = time.monotonic() - began
        # and so does its retry: the writer is never stuck on one write for the outage
        await wait_until(lambda: trades.stats().failed_flushes >= 2, timeout=15)
        buffered = trades.buffered
        await wait_until(lambda: trades.buffered > buffered + 20)  # still recording
        await wait_until(lambda: time.monotonic() - began >= lasting_s, timeout=lasting_s + 1)
    finally:
        end()
    await wait_until(lambda: trades.buffered < 60 and trades.stats().written > 100, 30)
    await p.stop()
    assert p.public is not None
    assert p.public.stats.outages == 0  # the database's outage is not the stream's
    lines = [r.getMessage() for r in caplog.records if "database" in r.getMessage()]
    assert len([line for line in lines if "trades: database unavailable" in line]) == 1, lines
    assert any("trades: database back after" in line for line in lines), lines
    return p, failed_after


async def test_a_postgresql_restart_mid_run_loses_nothing_and_says_so_once(
    sim: Any, start: Any, pg_cluster: Any, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with DatabaseFactory(DatabaseSettings(url=postgres_url)) as db:
        db.create_tables()
        await record_through_a_database_outage(
            start, db, caplog, pg_cluster.stop_server, pg_cluster.restart_server
        )
        assert not settled_violations(sim, db.engine, SYMBOLS)


async def test_a_silently_dead_database_link_fails_writes_within_the_bound(
    sim: Any, start: Any, remote_database: RemoteDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    lab, host, db = remote_database.lab, remote_database.host, remote_database.db
    _, failed_after = await record_through_a_database_outage(
        start, db, caplog, lambda: lab.cut(host), lambda: lab.restore(host), lasting_s=CUT_S
    )
    # The pooled connection's check fails within the io timeout, the reconnect that
    # follows within the connect timeout (the slack: a flush interval, a retry pause).
    assert failed_after < IO_TIMEOUT_S + CONNECT_TIMEOUT_S + 1, failed_after
    assert not settled_violations(sim, db.engine, SYMBOLS)
