"""A buffered, retrying, back-pressured writer of one table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError, StatementError

from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from grid_db.writes import insert_ignore, insert_rows, insert_values

E = TypeVar("E")
# What a bad row raises (constraint, type, out-of-range integer); OperationalError,
# a locked or full database, is transient and handled before these.
_ROW_ERRORS = (StatementError, DBAPIError, SQLAlchemyError, ValueError, TypeError, OverflowError)
Row = dict[str, Any]
Values = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class WriterSettings:
    batch_size: int = 100
    flush_interval: float = 5.0
    max_buffer: int = 100_000
    #: rows per transaction at most (never fewer than batch_size): a long buffer is
    #: written in several transactions back to back, so no flush holds a huge copy of it
    max_batch_rows: int = 20_000
    retry_initial: float = 0.25
    retry_max: float = 5.0
    # On stop, keep retrying transient failures this long before giving up loudly.
    stop_deadline: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if self.max_buffer < self.batch_size:
            raise ValueError("max_buffer must be at least batch_size")
        if self.max_batch_rows < 1:
            raise ValueError("max_batch_rows must be at least 1")


@dataclass(frozen=True, slots=True)
class WriterStats:
    name: str
    received: int
    written: int
    duplicates: int
    buffered: int
    peak_buffered: int
    rows_rejected: int
    failed_flushes: int
    flushes: int
    last_flush_latency_ms: float | None
    messages_per_second: float
    backpressure_active: bool


class BufferedWriter(Generic[E]):
    """Buffers events and writes them in batches on the database worker.

    Flushes when ``batch_size`` rows wait or ``flush_interval`` has passed, and
    on ``stop()``; one transaction takes at most ``max_batch_rows`` of them. A
    failed batch stays at the head of the buffer and is retried with backoff; a
    batch rejected for its content is split so one bad row is logged and dropped
    alone. Past ``max_buffer`` rows the gate is closed so producers stop reading
    instead of growing memory.

    ``to_row`` makes a mapping of column names to values; with ``columns`` it makes
    a tuple of the values of those columns instead, which ``insert_values`` writes
    as one prepared executemany (the hot path, for the high-volume tables).
    """

    #: natural-key tables ignore duplicates; others append every row
    dedupe: bool = False

    def __init__(
        self,
        name: str,
        table: Table,
        engine: Engine,
        worker: DatabaseWorker,
        to_row: Callable[[E], Row] | Callable[[E], Values],
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
        on_commit: Callable[[list[E]], None] | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or WriterSettings()
        self._batch_rows = max(self.settings.batch_size, self.settings.max_batch_rows)
        self._columns = tuple(columns) if columns is not None else None
        self._table = table
        self._engine = engine
        self._worker = worker
        self._to_row = to_row
        self._gate = gate
        #: called on the event loop with each batch once it is committed (may be set later)
        self.on_commit = on_commit
        self._buffer: deque[E] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._log = logging.getLogger(f"event_saver.writer.{name}")
        self._received = 0
        self._written = 0
        self._duplicates = 0
        self._rejected = 0
        self._failed_flushes = 0
        self._flushes = 0
        self._peak = 0
        self._last_latency_ms: float | None = None
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._flush_lock = asyncio.Lock()

    # ---- producer side --------------------------------------------------------

    def add(self, event: E) -> None:
        self._buffer.append(event)
        self._after_add(1)

    def add_many(self, events: list[E]) -> None:
        self._buffer.extend(events)
        self._after_add(len(events))

    def _after_add(self, count: int) -> None:
        self._received += count
        size = len(self._buffer)
        if size > self._peak:
            self._peak = size
        if size >= self.settings.batch_size:
            self._wake.set()
        if size >= self.settings.max_buffer and self._gate is not None and self._gate_free():
            self._log.warning(
                "%s: buffer at its bound (%d rows); pausing reads until the database catches up",
                self.name,
                size,
            )
            self._gate.hold(self.name)

    def _gate_free(self) -> bool:
        return self._gate is not None and not self._gate.is_held_by(self.name)

    # ---- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._loop(), name=f"writer-{self.name}")

    async def stop(self) -> None:
        """Flush everything buffered, then stop; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        deadline = time.monotonic() + self.settings.stop_deadline
        delay = self.settings.retry_initial
        while self._buffer:
            if await self.flush():
                continue
            if time.monotonic() > deadline:
                self._log.error(
                    "%s: %d rows could not be written before shutdown", self.name, len(self._buffer)
                )
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_max)
        if self._gate is not None:
            self._gate.release(self.name)

    async def _loop(self) -> None:
        delay = self.settings.retry_initial
        while True:
            # asyncio.timeout, not wait_for: no extra task per wait (many per second
            # with a short flush_interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                delay = self.settings.retry_initial
                if len(self._buffer) >= self.settings.batch_size:
                    self._wake.set()
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max)
                self._wake.set()

    # ---- flushing -------------------------------------------------------------

    async def flush(self) -> bool:
        """Write what is buffered now (up to ``max_batch_rows``); False: retry later."""
        async with self._flush_lock:
            count = min(len(self._buffer), self._batch_rows)
            if count == 0:
                self._update_rate()
                return True
            batch = [self._buffer[i] for i in range(count)]
            started = time.perf_counter()
            try:
                inserted, rejected = await self._worker.run(lambda: self._write(batch))
            except OperationalError as exc:
                self._failed_flushes += 1
                self._log.warning(
                    "%s: flush of %d rows failed (%s); keeping them and retrying",
                    self.name,
                    count,
                    _one_line(exc),
                )
                return False
            for _ in range(count):
                self._buffer.popleft()
            self._flushes += 1
            self._last_latency_ms = (time.perf_counter() - started) * 1000
            self._written += inserted
            self._rejected += rejected
            if self.dedupe:
                self._duplicates += count - inserted - rejected
            self._update_rate()
            if self._gate is not None and len(self._buffer) < self.settings.max_buffer // 2:
                self._gate.release(self.name)
            if self.on_commit is not None:
                self.on_commit(batch)
            return True

    def _write(self, batch: list[E]) -> tuple[int, int]:
        """Runs on the worker thread: the batch in one transaction, else row by row."""
        to_row = self._to_row
        rows = [to_row(event) for event in batch]
        try:
            return self._insert(rows), 0
        except OperationalError:
            raise
        except _ROW_ERRORS:
            pass  # some row is unacceptable: find it without losing the others
        inserted = rejected = 0
        for row in rows:
            try:
                inserted += self._insert([row])
            except OperationalError:
                raise
            except _ROW_ERRORS as exc:
                rejected += 1
                shown = (
                    row if self._columns is None else dict(zip(self._columns, row, strict=False))
                )
                self._log.error("%s: row not stored (%s): %r", self.name, _one_line(exc), shown)
        return inserted, rejected

    def _insert(self, rows: list[Any]) -> int:
        with self._engine.begin() as conn:
            if self._columns is not None:
                return insert_values(
                    conn, self._table, self._columns, rows, ignore_conflicts=self.dedupe
                )
            if self.dedupe:
                return insert_ignore(conn, self._table, rows)
            insert_rows(conn, self._table, rows)
            return len(rows)

    # ---- stats ----------------------------------------------------------------

    def _update_rate(self) -> None:
        now = time.monotonic()
        mark_time, mark_count = self._rate_mark
        if now - mark_time >= 1.0:
            self._rate = (self._received - mark_count) / (now - mark_time)
            self._rate_mark = (now, self._received)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def stats(self) -> WriterStats:
        return WriterStats(
            name=self.name,
            received=self._received,
            written=self._written,
            duplicates=self._duplicates,
            buffered=len(self._buffer),
            peak_buffered=self._peak,
            rows_rejected=self._rejected,
            failed_flushes=self._failed_flushes,
            flushes=self._flushes,
            last_flush_latency_ms=self._last_latency_ms,
            messages_per_second=self._rate,
            backpressure_active=self._gate is not None and not self._gate_free(),
        )


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
