"""RecordingPipeline against the simulator and a real database (SQLite and PostgreSQL).

Every test checks the product's promise on what was recorded: each trade the simulator
printed is stored exactly once with its exact values, or lies inside a gap row that says
it may be missing; and every outage is a gap row with the right window and cause.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bybit_adapter import PublicStream, RestSettings
from bybit_records import OutageCause
from event_saver import AccountAccess, RecordingPipeline
from event_saver.reconciler import NOT_REFILLED
from grid_db import DatabaseFactory, tables
from testkit import FAST_PRIVATE, invariant_violations, wait_until

from .conftest import ACCOUNT, SYMBOLS, Start


def trades_received(p: RecordingPipeline) -> int:
    return p.writer(tables.public_trades.record).stats().received


def gap_rows(db: DatabaseFactory, stream: str = "publicTrade") -> list[Any]:
    g = tables.gaps.table
    with db.engine.connect() as conn:
        return list(conn.execute(select(g).where(g.c.stream == stream).order_by(g.c.id)).all())


def trade_rows(db: DatabaseFactory, **where: Any) -> list[Any]:
    t = tables.public_trades.table
    with db.engine.connect() as conn:
        query = select(t).where(*(t.c[k] == v for k, v in where.items()))
        return list(conn.execute(query).all())


async def outages_recorded(p: RecordingPipeline, count: int = 1, timeout: float = 20) -> None:
    assert p.reconciler is not None
    await wait_until(
        lambda: p.reconciler is not None and p.reconciler.stats.outages_handled >= count, timeout
    )
    await p.reconciler.wait_idle()


async def stop_and_check(sim: Any, db: DatabaseFactory, p: RecordingPipeline) -> None:
    """Stop, then assert the invariant for every symbol up to the last stored trade."""
    await p.stop()
    for symbol in SYMBOLS:
        stored = trade_rows(db, symbol=symbol)
        # Not that trade's millisecond itself: another trade of it can be in flight as the
        # stream stops (the simulator, like Bybit, prints several frames in one ms).
        until = max(row.trade_time_ms for row in stored) - 1
        problems = invariant_violations(
            db.engine, sim.ground_truth.trades("linear", symbol), symbol, until
        )
        assert not problems, problems[:5]


def public(p: RecordingPipeline) -> PublicStream:
    """The pipeline's public stream (every pipeline here has one)."""
    assert p.public is not None
    return p.public


async def streaming(start: Start, trades: int = 20, **overrides: Any) -> RecordingPipeline:
    """A started pipeline, once it has received more than ``trades`` public trades."""
    p = await start(**overrides)
    await wait_until(lambda: trades_received(p) > trades)
    return p


def disconnect(sim: Any, seconds: float) -> None:
    """Drop every connection, and refuse new ones for ``seconds``."""
    sim.faults.refuse_connections(seconds)
    sim.faults.drop_connections()


def printed_between(sim: Any, symbol: str, start_ms: int, end_ms: int) -> set[str]:
    return {
        t.trade_id
        for t in sim.ground_truth.trades("linear", symbol)
        if start_ms < t.time_ms < end_ms
    }


# ---- disconnects ----------------------------------------------------------------------


async def test_trades_printed_while_disconnected_are_refilled_exactly_once(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    disconnect(sim, 1.5)
    await outages_recorded(p)
    gaps = gap_rows(db)
    await stop_and_check(sim, db, p)
    assert {(g.symbol, g.fill_status, g.cause) for g in gaps} == {
        ("BTCUSDT", "filled", "disconnect"),
        ("ETHUSDT", "filled", "disconnect"),
    }
    refilled = trade_rows(db, source="rest")
    assert len(refilled) == sum(g.rows_recovered for g in gaps) > 0
    for row in refilled:  # every refilled row lies in a gap of its symbol
        assert any(g.symbol == row.symbol and g.start_ts_ms <= row.trade_time_ms for g in gaps)
    assert {g.fill_status for g in gap_rows(db, "tickers")} == {"unfillable"}


async def test_an_outage_longer_than_the_rest_window_leaves_a_partial_gap(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    sim.faults.recent_trade_limit(3)
    disconnect(sim, 2.0)
    await outages_recorded(p)
    gaps = gap_rows(db)
    await stop_and_check(sim, db, p)  # every missing trade is inside a partial gap
    assert {g.fill_status for g in gaps} == {"partial"}
    stored = {row.trade_id for row in trade_rows(db)}
    assert any(
        t.trade_id not in stored for s in SYMBOLS for t in sim.ground_truth.trades("linear", s)
    ), "the test needs trades beyond the REST window"


async def test_a_rest_failure_records_an_unfillable_gap(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start, trades=5)
    sim.faults.rest_errors("http500", 100)
    sim.faults.drop_connections()
    await outages_recorded(p)
    await p.stop()
    gaps = gap_rows(db)
    assert {g.fill_status for g in gaps} == {"unfillable"}
    assert all("500" in (g.detail or "") for g in gaps)


# ---- outages found from the data ---------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "cause", "reconnects"),
    [(1.5, "pause", 0), (6.0, "stall", 1)],
    ids=["heals-itself", "longer-than-the-stall-timeout"],
)
async def test_a_pause_is_a_gap_and_is_refilled(
    seconds: float, cause: str, reconnects: int, sim: Any, db: DatabaseFactory, start: Start
) -> None:
    """Bybit stops pushing but answers pings, then resumes on the same socket: only the data
    can tell, from the stretch the resumed frames' stamps show the server sent nothing. A
    pause longer than the stall timeout replaces the connection."""
    p = await streaming(start)
    sim.faults.pause(seconds, pongs=True)
    await outages_recorded(p)
    assert public(p).reconnects == reconnects
    gaps = gap_rows(db)
    assert {(g.symbol, g.cause, g.fill_status) for g in gaps} == {
        (s, cause, "filled") for s in SYMBOLS
    }
    await stop_and_check(sim, db, p)
    for gap in gaps:
        assert gap.end_ts_ms - gap.start_ts_ms >= 1_200
        # the trades the socket never sent are in the window, and came from REST
        refilled = {r.trade_id for r in trade_rows(db, symbol=gap.symbol, source="rest")}
        assert len(refilled) == gap.rows_recovered > 0
        assert refilled <= printed_between(sim, gap.symbol, gap.start_ts_ms - 1, gap.end_ts_ms + 1)


async def test_one_silent_symbol_is_a_gap_of_that_symbol_only(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    sim.faults.mute("ETHUSDT", 3.0)
    await outages_recorded(p)
    (gap,) = gap_rows(db)
    assert (gap.symbol, gap.cause, gap.fill_status) == ("ETHUSDT", "silence", "filled")
    assert printed_between(sim, "ETHUSDT", gap.start_ts_ms, gap.end_ts_ms)
    assert public(p).reconnects == 0
    await stop_and_check(sim, db, p)


async def test_a_black_holed_reconnect_is_bounded_and_the_hole_refilled(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    sim.faults.black_hole(2.5)
    sim.faults.drop_connections()
    began = time.monotonic()
    await outages_recorded(p)
    # handshakes are bounded by open_timeout (1 s): streaming resumes soon after the hole
    assert time.monotonic() - began < 2.5 + 1.0 + 2.0
    (btc, eth) = gap_rows(db)
    assert {btc.fill_status, eth.fill_status} == {"filled"}
    assert btc.end_ts_ms - btc.start_ts_ms >= 2_000
    await stop_and_check(sim, db, p)


async def test_an_unanswered_subscribe_ends_the_connection_and_is_a_gap(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    sim.faults.slow_ack(3.0, count=1)
    sim.faults.drop_connections()
    await outages_recorded(p)
    assert public(p).stats.losses.get(OutageCause.ACK_TIMEOUT.value) == 1
    assert {g.fill_status for g in gap_rows(db)} == {"filled"}
    await stop_and_check(sim, db, p)


async def test_an_outage_still_open_at_stop_is_recorded(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start)
    disconnect(sim, 30)
    await wait_until(lambda: public(p).tracker.is_open)
    await stop_and_check(sim, db, p)
    assert {g.symbol for g in gap_rows(db)} == set(SYMBOLS)


async def test_outages_still_queued_at_stop_are_recorded_as_unfillable(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    """A refill that cannot finish before the stop deadline still leaves its gap rows:
    here every refill waits longer than the drain allows, one in flight, one queued."""
    p = await streaming(start, reconcile_delay=600.0, refill_drain_timeout=0.5)
    assert p.reconciler is not None
    reconciler = p.reconciler
    for queued in (1, 2):
        disconnect(sim, 0.5)
        await wait_until(lambda n=queued: reconciler.pending >= n)
        await wait_until(lambda: not public(p).tracker.is_open)
    began = time.monotonic()
    await stop_and_check(sim, db, p)  # every missing trade lies in a gap row
    assert time.monotonic() - began < 10, "the drain is bounded by refill_drain_timeout"
    gaps = gap_rows(db)
    assert sorted(g.symbol for g in gaps) == sorted(SYMBOLS * 2)
    for gap in gaps:
        assert (gap.fill_status, gap.rows_recovered) == ("unfillable", 0)
        assert gap.detail == NOT_REFILLED
    assert sorted(g.symbol for g in gap_rows(db, "tickers")) == sorted(SYMBOLS * 2)
    assert not trade_rows(db, source="rest")


async def test_a_refill_waiting_on_rest_at_stop_is_cut_short_and_recorded(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    """REST holds the refill's request (30 s in the simulator) and the client would wait 60:
    stop cuts that wait at the drain deadline, and each symbol's gap row still lands."""
    patient = RestSettings(timeout=60.0, max_retries=0)
    p = await streaming(start, rest=patient, refill_drain_timeout=0.5)
    assert p.reconciler is not None
    sim.faults.rest_errors("timeout", 100)
    disconnect(sim, 0.5)
    await wait_until(lambda: sim.stats.rest_requests["/v5/market/recent-trade"] > 0)
    began = time.monotonic()
    await stop_and_check(sim, db, p)
    assert time.monotonic() - began < 10, "the REST wait is cut at refill_drain_timeout"
    assert {(g.symbol, g.fill_status, g.detail) for g in gap_rows(db)} == {
        (s, "unfillable", NOT_REFILLED) for s in SYMBOLS
    }


async def test_an_unexpected_refill_error_is_still_a_gap(
    sim: Any, db: DatabaseFactory, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one symbol's refill leaves that symbol's gap unfillable; the other
    symbol's refill and its count stand."""
    p = await streaming(start)
    assert p.rest is not None
    assert p.reconciler is not None
    recent_trades = p.rest.recent_trades

    async def broken_for_eth(category: Any, symbol: str, limit: int) -> Any:
        if symbol == "ETHUSDT":
            raise RuntimeError("a bug in the refill")
        return await recent_trades(category, symbol, limit)

    monkeypatch.setattr(p.rest, "recent_trades", broken_for_eth)
    disconnect(sim, 0.5)
    await outages_recorded(p)
    await stop_and_check(sim, db, p)
    assert {(g.symbol, g.fill_status, g.detail) for g in gap_rows(db)} == {
        ("BTCUSDT", "filled", None),
        ("ETHUSDT", "unfillable", "refill failed unexpectedly: RuntimeError: a bug in the refill"),
    }
    assert p.reconciler.stats.gaps_detected == len(SYMBOLS)


# ---- bad input ------------------------------------------------------------------------------


async def test_malformed_frames_are_kept_in_rejected_frames(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    p = await streaming(start, trades=5)
    sim.faults.malformed_frames(4)
    await wait_until(lambda: public(p).stats.rejected_frames >= 4)
    received = trades_received(p)
    await wait_until(lambda: trades_received(p) > received + 5)
    await p.stop()
    with db.engine.connect() as conn:
        rows = conn.execute(tables.rejected_frames.table.select()).all()
    assert len(rows) >= 4
    assert all(r.reason and r.payload and r.stream == "public.linear" for r in rows)


# ---- private --------------------------------------------------------------------------------


async def test_a_private_outage_recovers_every_execution(
    sim: Any, db: DatabaseFactory, start: Start
) -> None:
    access = AccountAccess(sim.private_ws_url, "sim-key", "sim-secret", ACCOUNT, FAST_PRIVATE)
    p = await start(account=access)
    assert p.private is not None
    await wait_until(lambda: p.private is not None and p.private.stats.data_frames > 0, timeout=20)
    count = len(sim.ground_truth.executions())
    disconnect(sim, 2.0)
    await wait_until(lambda: len(sim.ground_truth.executions()) > count, timeout=20)
    await outages_recorded(p, count=2)  # the public stream's outage and the private one
    await p.stop()
    cutoff = time.time_ns() // 1_000_000
    e = tables.private_executions.table
    with db.engine.connect() as conn:
        stored = list(conn.execute(select(e.c.exec_id)).scalars())
        positions = conn.execute(
            select(func.count()).select_from(tables.position_snapshots.table)
        ).scalar()
        wallets = conn.execute(
            select(func.count()).select_from(tables.wallet_snapshots.table)
        ).scalar()
    assert len(stored) == len(set(stored))
    truth = [
        x["execId"] for x in sim.ground_truth.executions() if int(x["execTime"]) <= cutoff - 2000
    ]
    assert set(truth) <= set(stored)
    assert any(g.fill_status == "filled" for g in gap_rows(db, "execution"))
    assert positions
    assert wallets
