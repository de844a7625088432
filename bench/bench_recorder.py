"""The recorder under test, as its own process, driven by ``bench_scenarios`` over stdin/stdout.

It runs the real ``recorder.session.Recorder`` (what ``recorder`` runs for each session:
its ``RecordingPipeline``) against a simulator in another process, so that psutil can
measure this process alone. The only additions are observers:

* an ``on_commit`` hook on the trade, ticker and order-book writers, which counts rows
  and notes the time of each commit (``time.time_ns()`` once the batch's commit returned);
* ``ArrivalClock``, a ``StreamSink`` wrapped around the pipeline's own sink (its router)
  that notes ``time.time_ns()`` when a frame's records reach the sink, before passing
  them on unchanged. Records carry ``received_ts_ms``, whole milliseconds, too coarse for
  commits that take a fraction of one; the sink is called in the same step as the
  socket read, microseconds after it. With ``--latency`` it keeps that time per record
  until the record is committed; without, only the first arrival.

Protocol (one JSON object per stdout line; commands are stdin lines):

* <- ``connect REST_URL WS_URL`` (unless ``--rest-url`` and ``--ws-url`` were given): the
  simulator to record from. The bench starts this process first, so that its imports
  overlap the simulator's start.
* -> ``{"event": "ready", "threads": {...}}`` once every topic is subscribed; ``threads``
  names the native ids of the event loop's thread and of the database worker's thread,
  whose CPU time the bench reads from ``/proc`` (``/proc/PID/task/TID/schedstat``)
* <- ``mark``: start a measuring window; -> ``{"event": "marked"}``
* -> ``{"event": "reached", ...}`` when ``--expect-trades`` trades (or ``--expect-books``
  book updates, checkpoints not counted) are committed: the first arrival of that record
  type since ``ready`` and the last commit
* <- ``report``: end the window; -> ``{"event": "report", "latency_ms": {...}, "arrived":
  {record type: records that reached the sink in the window}, ...}``
* <- ``stop``: stop the recorder (flush, close the run); -> ``{"event": "stopped", ...}``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bybit_adapter import Outage, PublicStream, StreamSink, public_topics
from bybit_records import BookKind, BookUpdate, Record, RejectedFrame, Ticker, Trade
from event_saver import RecordingPipeline
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


class ArrivalClock:
    """The pipeline's sink, observed: when each frame's records reached it (``time_ns``)."""

    def __init__(self, sink: StreamSink, per_record: bool) -> None:
        self._sink = sink
        self.per_record = per_record
        #: record type -> when its first frame arrived (since ``restart``)
        self.first_ns: dict[type[Record], int] = {}
        #: record type name -> records arrived (since ``mark``)
        self.arrived: dict[str, int] = {}
        #: id(record) -> arrival, until the record is committed (``take``)
        self._arrivals: dict[int, int] = {}

    def restart(self) -> None:
        """Forget the first arrivals: the subscriptions' snapshots came before the push."""
        self.first_ns.clear()

    def records(self, records: Sequence[Record]) -> None:
        now = time.time_ns()
        kind = type(records[0])
        self.first_ns.setdefault(kind, now)
        name = kind.__name__
        self.arrived[name] = self.arrived.get(name, 0) + len(records)
        if self.per_record:
            self._arrivals.update(dict.fromkeys(map(id, records), now))
        self._sink.records(records)

    def take(self, record: Record) -> int | None:
        """The arrival of a committed record (None: it came before the clock was put in)."""
        return self._arrivals.pop(id(record), None)

    def outage(self, outage: Outage) -> None:
        self._sink.outage(outage)

    def rejected(self, frame: RejectedFrame) -> None:
        self._sink.rejected(frame)

    @property
    def ready(self) -> bool:
        return self._sink.ready

    async def wait_ready(self) -> None:
        await self._sink.wait_ready()


class Probe:
    """The on_commit hooks: rows committed per record type (book updates without the
    checkpoints, counted apart), first arrival to last commit, optional latencies."""

    def __init__(self, arrivals: ArrivalClock, expect: tuple[type[Record], int] | None) -> None:
        self.arrivals = arrivals
        #: (record type, rows): emit ``reached`` once that many are committed
        self.expect = expect
        self.committed: dict[type[Record], int] = {Trade: 0, Ticker: 0, BookUpdate: 0}
        self.checkpoints = 0
        self.reached = False
        self.window_open = False
        self.latencies_ms: list[float] = []
        #: committed rows whose arrival the clock had not seen (none once it is in)
        self.unclocked = 0

    def _latencies(self, batch: Sequence[Record], now: int) -> None:
        if not self.arrivals.per_record:
            return
        take = self.arrivals.take
        arrivals = [take(r) for r in batch]
        if self.window_open:
            self.latencies_ms.extend([(now - a) / 1e6 for a in arrivals if a is not None])
            self.unclocked += arrivals.count(None)

    def commit(self, batch: Sequence[Record]) -> None:
        now = time.time_ns()
        kind = type(batch[0])
        rows = len(batch)
        if kind is BookUpdate:
            books = cast("Sequence[BookUpdate]", batch)
            checkpoints = sum(1 for r in books if r.kind is BookKind.CHECKPOINT)
            self.checkpoints += checkpoints
            rows -= checkpoints
        self.committed[kind] += rows
        self._latencies(batch, now)
        if self.expect is not None and not self.reached:
            want, n = self.expect
            if kind is want and self.committed[kind] >= n:
                self.reached = True
                emit(
                    "reached",
                    rows=self.committed[kind],
                    first_arrival_ns=self.arrivals.first_ns.get(kind),
                    last_commit_ns=now,
                )


async def read_command() -> str:
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() or "stop"  # EOF: the parent is gone


def install_probe(pipeline: RecordingPipeline, args: argparse.Namespace) -> Probe:
    """The clock in the read path and the commit hooks on the market-data writers."""
    public = pipeline.public
    assert public is not None
    # The one observer in the read path: the stream hands its records to the clock,
    # which passes them on to the pipeline's own sink (installed before any firehose
    # or measuring window starts).
    arrivals = ArrivalClock(public._sink, per_record=args.latency)
    public._sink = arrivals
    expect: tuple[type[Record], int] | None = None
    if args.expect_trades is not None:
        expect = (Trade, args.expect_trades)
    elif args.expect_books is not None:
        expect = (BookUpdate, args.expect_books)
    probe = Probe(arrivals, expect)
    for writer in pipeline.writers:
        if writer.table.record in probe.committed:
            writer.on_commit = probe.commit
    return probe


async def subscribed(public: PublicStream, book_depths: Sequence[int]) -> bool:
    """Wait until every topic is confirmed (30 s at most)."""
    wanted = set(public_topics(public.symbols, book_depths=book_depths))
    deadline = time.monotonic() + 30
    while not wanted <= public.confirmed_topics:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def serve(probe: Probe) -> None:
    """The commands, until ``stop``."""
    while True:
        command = await read_command()
        if command == "mark":
            probe.window_open = True
            probe.latencies_ms.clear()
            probe.unclocked = 0
            probe.arrivals.arrived.clear()
            emit("marked")
        elif command == "report":
            probe.window_open = False
            emit(
                "report",
                latency_ms=percentiles(probe.latencies_ms),
                unclocked=probe.unclocked,
                arrived=probe.arrivals.arrived,
            )
        elif command == "stop":
            return


def stopped_report(pipeline: RecordingPipeline, probe: Probe) -> dict[str, Any]:
    """The counters the bench checks and reports once the recorder stopped."""
    stats = {w.name: w.stats() for w in pipeline.writers}
    public, reconciler = pipeline.public, pipeline.reconciler
    assert public is not None
    books = stats.get("books")
    return {
        "trades_committed": probe.committed[Trade],
        "tickers_committed": probe.committed[Ticker],
        "books_committed": probe.committed[BookUpdate],
        "checkpoints_committed": probe.checkpoints,
        "trades_received": stats["trades"].received,
        "tickers_received": stats["tickers"].received,
        "books_received": books.received if books else 0,
        "trades_written": stats["trades"].written,
        "books_written": books.written if books else 0,
        "books_peak_buffered": books.peak_buffered if books else 0,
        "duplicates": stats["trades"].duplicates,
        "book_duplicates": books.duplicates if books else 0,
        "trade_flushes": stats["trades"].flushes,
        "peak_buffered": stats["trades"].peak_buffered,
        "rows_rejected": sum(s.rows_rejected for s in stats.values()),
        "buffered": sum(s.buffered for s in stats.values()),
        "rejected_frames": public.stats.rejected_frames,
        "book_gaps": public.stats.book_gaps,
        "reconnects": public.reconnects,
        "frames": public.stats.data_frames,
        "outages": public.stats.outages,
        "backpressure_pauses": pipeline.gate.pauses,
        "gaps": (
            reconciler.stats.gaps_detected + reconciler.stats.ticker_gaps
            if reconciler is not None
            else None
        ),
    }


async def main(args: argparse.Namespace) -> int:
    if args.rest_url is None or args.ws_url is None:
        command, _, urls = (await read_command()).partition(" ")
        if command != "connect":
            return 0  # stopped before it was connected
        args.rest_url, args.ws_url = urls.split()
    workdir = Path(args.workdir)
    database_url = args.database_url or f"sqlite:///{workdir / 'recorder.db'}"
    overrides = [
        "network=local",
        f"network.rest_url={args.rest_url}",
        f"network.public_ws_url='{args.ws_url}'",
        f"writer={args.writer}",
        f"database_url='{database_url}'",
        *args.override,
    ]
    composed = compose_config(overrides, output_dir=workdir)
    config = validate_config({**composed.model_dump(), "symbols": args.symbols.split(",")})
    assert config.database_url is not None  # set by the overrides above
    db = DatabaseFactory(DatabaseSettings(url=config.database_url))
    recorder = Recorder(config, db, workdir)
    pipeline = recorder.pipeline
    try:
        await recorder.start()
        probe = install_probe(pipeline, args)
        public = pipeline.public
        assert public is not None
        if not await subscribed(public, config.books.depths):
            emit("error", error="topics not confirmed within 30 s")
            return 1
        # The writers share one database worker thread: its id, asked on that thread.
        database_tid = await pipeline.writer(Trade)._worker.run(threading.get_native_id)
        threads = {"event_loop": threading.get_native_id(), "database": database_tid}
        probe.arrivals.restart()
        emit("ready", topics=len(public.confirmed_topics), threads=threads)
        await serve(probe)
    finally:
        await recorder.stop()
        db.dispose()
    emit("stopped", **stopped_report(pipeline, probe))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rest-url", help="default: from the first stdin line, connect ...")
    parser.add_argument("--ws-url", help="public WS URL with {category}")
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--writer", default="default", help="writer config group option")
    parser.add_argument(
        "--database-url", default=None, help="default: sqlite:///WORKDIR/recorder.db"
    )
    parser.add_argument("--expect-trades", type=int, default=None)
    parser.add_argument(
        "--expect-books", type=int, default=None, help="book updates (checkpoints not counted)"
    )
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--override", action="append", default=[], help="Hydra override")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(parse_args())))
