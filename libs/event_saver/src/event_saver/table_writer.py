"""A buffered, retrying, back-pressured writer of one record table.

Live records and REST refills of a table go through the same writer: the same
statement (``grid_db.write_records``), the same retries, the same accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)

from bybit_adapter.lifecycle import StartStop
from bybit_records import Record
from event_saver.db_worker import DatabaseWorker
from event_saver.flow import FlowGate
from grid_db import RecordTable, RowContext, write_rows

R = TypeVar("R", bound=Record)
# What a bad row raises (constraint, type, out-of-range integer). A locked, full or
# unreachable database is transient (``_is_transient``) and handled before these.
_ROW_ERRORS = (StatementError, DBAPIError, SQLAlchemyError, ValueError, TypeError, OverflowError)


def _is_transient(exc: BaseException) -> bool:
    """A failure of the database, not of the rows: keep them and retry."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class _Transient(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(_one_line(cause))


@dataclass(frozen=True, slots=True)
class WriterSettings:
    batch_size: int = 100
    flush_interval: float = 5.0
    #: rows buffered before the gate closes (a writer given ``weigh`` counts each
    #: record as its weight: a book update with many levels as several rows)
    max_buffer: int = 100_000
    #: rows per transaction at most (never fewer than batch_size): a long buffer is
    #: written in several transactions back to back, so no flush holds a huge copy of it
    max_batch_rows: int = 20_000
    retry_initial: float = 0.25
    retry_max: float = 5.0
    #: how long a refill, and the final flush on stop, keep retrying a failing database
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


@dataclass(slots=True)
class _Counts:
    """A writer's running totals, under their ``WriterStats`` names."""

    received: int = 0
    written: int = 0
    duplicates: int = 0
    peak_buffered: int = 0
    rows_rejected: int = 0
    failed_flushes: int = 0
    flushes: int = 0
    last_flush_latency_ms: float | None = None


class WriteDeferred(Exception):
    """A refill could not be written in time; its records wait in the buffer instead."""


class TableWriter(StartStop, Generic[R]):
    """Buffers records of one table and writes them in batches on the database worker.

    Flushes when ``batch_size`` records wait or ``flush_interval`` has passed, and on
    ``stop()``; one transaction takes at most ``max_batch_rows``. A batch that fails
    for a transient reason (a locked, full or unreachable database) stays at the head
    of the buffer and is retried with backoff; a batch rejected for its content is
    written row by row, so one bad row is logged and dropped alone. Past ``max_buffer``
    records (or their weight, by ``weigh``) the gate closes: the streams stop reading
    instead of growing memory.
    """

    def __init__(
        self,
        table: RecordTable[R],
        engine: Engine,
        worker: DatabaseWorker,
        context: RowContext,
        settings: WriterSettings | None = None,
        gate: FlowGate | None = None,
        *,
        name: str | None = None,
        weigh: Callable[[R], int] | None = None,
    ) -> None:
        self.table = table
        self.name = name or table.name
        self.settings = settings or WriterSettings()
        self._batch_rows = max(self.settings.batch_size, self.settings.max_batch_rows)
        self._engine = engine
        self._worker = worker
        self._context = context
        self._gate = gate
        #: called on the event loop with each batch once it is committed
        self.on_commit: Callable[[list[R]], None] | None = None
        self._buffer: deque[R] = deque()
        self._weigh = weigh
        #: the buffer's weight: its length, or the sum of ``weigh`` over it
        self._weight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._log = logging.getLogger(f"event_saver.writer.{self.name}")
        self._counts = _Counts()
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._flush_lock = asyncio.Lock()
        self._failing_since: float | None = None
        self._failure_logged = 0.0

    # ---- producer side --------------------------------------------------------

    def add(self, record: R) -> None:
        self._buffer.append(record)
        self._after_add(1, 1 if self._weigh is None else self._weigh(record))

    def add_many(self, records: Sequence[R]) -> None:
        self._buffer.extend(records)
        self._after_add(len(records), self._weight_of(records))

    def _weight_of(self, records: Sequence[R]) -> int:
        weigh = self._weigh
        return len(records) if weigh is None else sum(map(weigh, records))

    def _after_add(self, count: int, weight: int) -> None:
        counts = self._counts
        counts.received += count
        self._weight += weight
        size = len(self._buffer)
        if size > counts.peak_buffered:
            counts.peak_buffered = size
        if size >= self.settings.batch_size:
            self._wake.set()
        gate = self._gate
        if (
            self._weight >= self.settings.max_buffer
            and gate is not None
            and not gate.is_held_by(self.name)
        ):
            self._log.warning(
                "%s: buffer at its bound (%d rows%s); pausing reads until the database catches up",
                self.name,
                size,
                "" if self._weigh is None else f", weighing {self._weight}",
            )
            gate.hold(self.name)
            self._wake.set()  # a few heavy records can close it before a batch is full

    async def write_now(self, records: Sequence[R]) -> int:
        """Write ``records`` after everything buffered; returns how many were new.

        The refill path: the same statement, retries and accounting as live records.
        Retries a transient failure for ``stop_deadline`` seconds; then the records
        join the buffer (nothing is lost) and ``WriteDeferred`` is raised.
        """
        self._counts.received += len(records)
        deadline = time.monotonic() + self.settings.stop_deadline
        delay = self.settings.retry_initial
        while True:
            async with self._flush_lock:
                if await self._drain() and (inserted := await self._commit(list(records))) >= 0:
                    return inserted
            if time.monotonic() > deadline:
                self._buffer.extend(records)
                self._weight += self._weight_of(records)
                raise WriteDeferred(f"{self.name}: database unavailable; rows kept in the buffer")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_max)

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
            # asyncio.timeout, not wait_for: no extra task per wait
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
            return await self._flush_head()

    async def _drain(self) -> bool:
        """Flush the whole buffer (lock held); False when the database fails."""
        while self._buffer:
            if not await self._flush_head():
                return False
        return True

    async def _flush_head(self) -> bool:
        count = min(len(self._buffer), self._batch_rows)
        if count == 0:
            self._update_rate()
            return True
        batch = [self._buffer[i] for i in range(count)]
        if await self._commit(batch) < 0:
            return False
        for _ in range(count):
            self._buffer.popleft()
        self._weight -= self._weight_of(batch)
        if self._gate is not None and self._weight < self.settings.max_buffer // 2:
            self._gate.release(self.name)
        if self.on_commit is not None:
            self.on_commit(batch)
        return True

    async def _commit(self, batch: list[R]) -> int:
        """Write ``batch`` in one transaction; the number of new rows, -1 on a transient failure."""
        started = time.perf_counter()
        try:
            inserted, rejected = await self._worker.run(lambda: self._write(batch))
        except _Transient as exc:
            self._counts.failed_flushes += 1
            self._database_failed(exc)
            return -1
        if self._failing_since is not None:
            self._log.warning(
                "%s: database back after %.1fs; writing the %d rows kept meanwhile",
                self.name,
                time.monotonic() - self._failing_since,
                len(self._buffer),
            )
            self._failing_since = None
        counts = self._counts
        counts.flushes += 1
        counts.last_flush_latency_ms = (time.perf_counter() - started) * 1000
        counts.written += inserted
        counts.rows_rejected += rejected
        if self.table.ignores_duplicates:
            counts.duplicates += len(batch) - inserted - rejected
        self._update_rate()
        return inserted

    def _database_failed(self, exc: _Transient) -> None:
        """One line when the database fails, then one a minute while it stays down."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._failure_logged = now
            self._log.warning(
                "%s: database unavailable (%s); keeping %d rows in memory and retrying",
                self.name,
                exc,
                len(self._buffer),
            )
        elif now - self._failure_logged >= 60:
            self._failure_logged = now
            self._log.warning(
                "%s: database still unavailable after %.0fs (%s); %d rows kept",
                self.name,
                now - self._failing_since,
                exc,
                len(self._buffer),
            )

    def _write(self, batch: list[R]) -> tuple[int, int]:
        """Runs on the worker thread: the batch in one transaction, else row by row."""
        rows = self.table.rows(batch, self._context)
        try:
            return self._insert(rows), 0
        except _ROW_ERRORS:
            pass  # some row is unacceptable: find it without losing the others
        inserted = rejected = 0
        for row in rows:
            try:
                inserted += self._insert([row])
            except _ROW_ERRORS as exc:
                rejected += 1
                shown = dict(zip(self.table.column_names, row, strict=False))
                self._log.error("%s: row not stored (%s): %.500r", self.name, _one_line(exc), shown)
        return inserted, rejected

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        try:
            with self._engine.begin() as conn:
                return write_rows(conn, self.table, rows)
        except _ROW_ERRORS as exc:
            if _is_transient(exc):
                raise _Transient(exc) from exc
            raise

    # ---- stats ----------------------------------------------------------------

    def _update_rate(self) -> None:
        now = time.monotonic()
        mark_time, mark_count = self._rate_mark
        if now - mark_time >= 1.0:
            received = self._counts.received
            self._rate = (received - mark_count) / (now - mark_time)
            self._rate_mark = (now, received)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def stats(self) -> WriterStats:
        return WriterStats(
            name=self.name,
            buffered=len(self._buffer),
            messages_per_second=self._rate,
            backpressure_active=self._gate is not None and self._gate.is_held_by(self.name),
            **asdict(self._counts),
        )


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
