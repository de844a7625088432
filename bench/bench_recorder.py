"""The recorder under test, as its own process, driven by ``bench_scenarios`` over stdin/stdout.

It runs the real ``recorder.session.Recorder`` (what ``recorder`` runs for each session)
against a simulator in another process, so that psutil can measure this process alone.
The only addition is an ``on_commit`` hook on the trade and ticker writers that counts rows
and, with ``--latency``, notes arrival-to-commit latency (``time.time_ns()`` after the
commit returned, minus the event's ``received_ns``, taken when its frame came off the socket).

Protocol (one JSON object per stdout line; commands are stdin lines):

* -> ``{"event": "ready", "pid": ...}`` once every topic is subscribed
* <- ``mark``: start a measuring window; -> ``{"event": "marked"}``
* -> ``{"event": "reached", ...}`` when ``--expect-trades`` trades are committed
* <- ``report``: end the window; -> ``{"event": "report", "latency_ms": {...}, ...}``
* <- ``stop``: stop the recorder (flush, close the run); -> ``{"event": "stopped", ...}``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bybit_adapter import TickerEvent, TradeEvent
from grid_db import DatabaseFactory, DatabaseSettings
from recorder.config import compose_config, validate_config
from recorder.session import Recorder


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)
    n = len(ordered)

    def pick(q: float) -> float:
        return ordered[min(n - 1, max(0, round(q * n) - 1))]

    return {"p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1], "n": n}


class Probe:
    """The on_commit hooks: counts, first arrival, last commit, optional latencies."""

    def __init__(self, expect_trades: int | None, latency: bool) -> None:
        self.expect = expect_trades
        self.latency = latency
        self.trades = 0
        self.tickers = 0
        self.first_arrival_ns: int | None = None
        self.last_commit_ns = 0
        self.reached = False
        self.window_open = False
        self.latencies_ms: list[float] = []

    def trades_committed(self, batch: list[TradeEvent]) -> None:
        now = time.time_ns()
        self.trades += len(batch)
        self.last_commit_ns = now
        if self.first_arrival_ns is None:
            self.first_arrival_ns = batch[0].received_ns
        if self.latency and self.window_open:
            self.latencies_ms.extend([(now - e.received_ns) / 1e6 for e in batch])
        if self.expect is not None and not self.reached and self.trades >= self.expect:
            self.reached = True
            emit(
                "reached",
                trades=self.trades,
                first_arrival_ns=self.first_arrival_ns,
                last_commit_ns=now,
            )

    def tickers_committed(self, batch: list[TickerEvent]) -> None:
        now = time.time_ns()
        self.tickers += len(batch)
        if self.latency and self.window_open:
            self.latencies_ms.extend([(now - e.received_ns) / 1e6 for e in batch])


async def read_command() -> str:
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() or "stop"  # EOF: the parent is gone


async def main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    overrides = [
        "network=local",
        f"network.rest_url={args.rest_url}",
        f"network.public_ws_url='{args.ws_url}'",
        f"writer={args.writer}",
        f"database_url=sqlite:///{workdir / 'recorder.db'}",
        *args.override,
    ]
    composed = compose_config(overrides, output_dir=workdir)
    config = validate_config({**composed.model_dump(), "symbols": args.symbols.split(",")})
    db = DatabaseFactory(DatabaseSettings(url=config.database_url))
    recorder = Recorder(config, db, workdir)
    probe = Probe(args.expect_trades, args.latency)
    try:
        await recorder.start()
        recorder.trades.on_commit = probe.trades_committed
        recorder.tickers.on_commit = probe.tickers_committed
        public = recorder.public
        assert public is not None
        wanted = set(public.client.topics)
        deadline = time.monotonic() + 30
        while not wanted <= public.client.confirmed_topics:
            if time.monotonic() > deadline:
                emit("error", error="topics not confirmed within 30 s")
                return 1
            await asyncio.sleep(0.01)
        emit("ready", topics=len(wanted))
        while True:
            command = await read_command()
            if command == "mark":
                probe.window_open = True
                probe.latencies_ms.clear()
                emit("marked")
            elif command == "report":
                probe.window_open = False
                emit("report", latency_ms=percentiles(probe.latencies_ms))
            elif command == "stop":
                break
    finally:
        await recorder.stop()
        db.dispose()
    stats = {w.name: w.stats() for w in recorder.writers}
    conn = public.client.stats
    emit(
        "stopped",
        trades_committed=probe.trades,
        tickers_committed=probe.tickers,
        trades_received=public.trades_received,
        tickers_received=public.tickers_received,
        trades_written=stats["trades"].written,
        duplicates=stats["trades"].duplicates,
        rows_rejected=sum(s.rows_rejected for s in stats.values()),
        buffered=sum(s.buffered for s in stats.values()),
        rejected_frames=public.rejected_frames,
        reconnects=conn.reconnects,
        frames=conn.data_frames,
        backpressure_pauses=recorder.gate.pauses,
        gaps=(
            recorder.reconciler.stats.gaps_detected + recorder.reconciler.stats.ticker_gaps
            if recorder.reconciler is not None
            else None
        ),
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--ws-url", required=True, help="public WS URL with {category}")
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--writer", default="default", help="writer config group option")
    parser.add_argument("--expect-trades", type=int, default=None)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--override", action="append", default=[], help="Hydra override")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(parse_args())))
