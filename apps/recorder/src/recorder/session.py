"""One recording session: the run's bookkeeping around a ``RecordingPipeline``.

``Recorder`` prepares the database (schema, the ``runs`` row), runs the pipeline the
configuration describes, logs its health, and closes the run with a status that says
what happened (``verdict``). Everything that records lives in ``event_saver.RecordingPipeline``.

``record_session`` (async) and ``run_session`` are the one session code of both front ends: the
Hydra ``recorder`` command and the plain-YAML ``recorder --config FILE`` / ``recorder-main``.

The final status of a run:

* ``error`` when it did not record what it was asked to: the public stream never connected,
  Bybit refused a topic, the private stream never authenticated (or never connected), rows
  were left unwritten, the disk guard stopped it (free space below ``disk.stop_free_mb``, exit
  code 4), or the session failed; ``runs.error`` says which;
* ``completed`` otherwise; ``runs.error`` then still notes what was not perfect (gaps REST
  could not fill, among them those the stop cut short; private auth failures after a success).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from sqlalchemy.exc import DBAPIError

from bybit_adapter import RestSettings, WebSocketSettings, public_topics
from bybit_adapter.lifecycle import StartStop
from bybit_records import FillStatus
from event_saver import AccountAccess, PipelineConfig, RecordingPipeline, WriterSettings
from grid_db import (
    DatabaseFactory,
    DatabaseSettings,
    GridDbError,
    ReferenceDataRepository,
    RunRepository,
    RunStatus,
)
from recorder.config import DB_PASSWORD_ENV, RecorderConfig
from recorder.dead_runs import abort_dead_sessions
from recorder.disk_guard import DiskGuard, DiskLevel
from recorder.health import HealthSnapshot, format_health, health_snapshot
from recorder.health_file import FILE_NAME as HEALTH_FILE_NAME
from recorder.health_file import HealthFileWriter
from recorder.provenance import (
    git_commit,
    git_diff,
    git_revision,
    host_name,
    pid_alive,
    software_version,
)
from recorder.redaction import SECRETS, redact

if TYPE_CHECKING:
    from recorder.metrics import MetricsExporter

_log = logging.getLogger("recorder.session")

# Fixed ids: every session of every recorder refers to the same reference rows,
# so datasets from many sessions join without a lookup table.
_NAMESPACE = uuid.UUID("6f1f3e0e-6c1b-4c55-9d1e-3c1f8e6b2a10")
USER_ID = str(uuid.uuid5(_NAMESPACE, "user:default"))
ACCOUNT_ID = str(uuid.uuid5(_NAMESPACE, "bybit_account:default"))
STRATEGY_ID = str(uuid.uuid5(_NAMESPACE, "strategy:recorder"))

EXIT_ERROR = 1
EXIT_DATABASE = 3
#: the disk guard stopped the session: free space fell below ``disk.stop_free_mb``
EXIT_DISK_FULL = 4


def stream_settings(config: RecorderConfig, *, private: bool = False) -> WebSocketSettings:
    """The connection bounds and detection thresholds of a public or the private stream."""
    c = config.connection
    return WebSocketSettings(
        ping_interval=c.ping_interval_seconds,
        pong_timeout=c.pong_timeout_seconds,
        # Private streams are quiet by nature: pongs, not data, prove them alive.
        silence_timeout=None if private else config.gap_threshold_seconds,
        stall_timeout=None if private else c.stall_timeout_seconds,
        connect_timeout=c.open_timeout_seconds,
        open_timeout=c.open_timeout_seconds,
        ack_timeout=c.ack_timeout_seconds,
        backoff_initial=c.reconnect_initial_delay_seconds,
        backoff_max=c.reconnect_max_delay_seconds,
        max_connects_per_window=c.max_connects_per_5min,
        connect_window=300.0,
    )


def pipeline_config(config: RecorderConfig, run_id: str) -> PipelineConfig:
    account = config.account
    return PipelineConfig(
        category=config.category,
        symbols=tuple(config.symbols),
        public_ws_url=config.network.public_ws_url,
        rest_url=config.network.rest_url,
        run_id=run_id,
        public=stream_settings(config),
        rest=RestSettings(timeout=config.rest.timeout_seconds, max_retries=config.rest.max_retries),
        writer=WriterSettings(
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            max_buffer=config.max_buffer_rows,
        ),
        account=AccountAccess(
            config.network.private_ws_url,
            account.api_key.get_secret_value(),
            account.api_secret.get_secret_value(),
            ACCOUNT_ID,
            stream_settings(config, private=True),
        )
        if account is not None
        else None,
        ticker_min_interval_ms=config.tickers.min_interval_ms,
        book_depths=config.books.depths,
        book_checkpoint_every_updates=config.books.checkpoint_every_updates,
        book_checkpoint_every_ms=round(config.books.checkpoint_every_seconds * 1000),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a run ended: its status, and what ``runs.error`` says (None: nothing to say)."""

    status: RunStatus
    #: why the run is ``error``
    errors: tuple[str, ...] = ()
    #: what was not perfect in a ``completed`` run (kept in ``runs.error`` too)
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str | None:
        parts = [*self.errors, *self.notes]
        return redact("; ".join(parts)) if parts else None


def verdict(
    pipeline: RecordingPipeline,
    status: RunStatus = RunStatus.COMPLETED,
    error: str | None = None,
) -> Verdict:
    """The truth about a stopped pipeline's run (see the module doc)."""
    errors = [error] if error else []
    notes: list[str] = []
    public = pipeline.public
    if public is not None:
        if public.connects == 0:
            errors.append(f"never connected to {public.url}")
        for topic, reason in sorted(public.refused_topics.items()):
            errors.append(f"Bybit refused {topic}: {reason}")
        wanted = public_topics(public.symbols)
        if public.connects and set(wanted) <= set(public.refused_topics):
            errors.append("nothing was subscribed")
    private = pipeline.private
    if private is not None:
        if private.connects == 0:
            errors.append(f"never connected to the private stream {private.url}")
        elif private.auth_successes == 0:
            last = private.last_auth_error
            errors.append(
                f"private auth never succeeded ({private.auth_failures} attempt(s) refused; "
                f"last: {last})"
                if last is not None
                else "private auth never succeeded (no reply before the session ended)"
            )
        elif private.auth_failures:
            notes.append(
                f"private auth refused {private.auth_failures} time(s) "
                f"(last: {private.last_auth_error})"
            )
    lost = sum(w.buffered for w in pipeline.writers)
    if lost:
        errors.append(f"{lost} buffered rows could not be written")
    reconciler = pipeline.reconciler
    if reconciler is not None:
        gaps = reconciler.stats.gaps
        partial, unfillable = gaps[FillStatus.PARTIAL], gaps[FillStatus.UNFILLABLE]
        if partial or unfillable:
            notes.append(
                f"{partial + unfillable} gap(s) REST could not fill ({partial} partial, "
                f"{unfillable} unfillable): data may be missing there"
            )
        if reconciler.stats.not_refilled:
            notes.append(
                f"{reconciler.stats.not_refilled} of them not refilled: the recorder stopped first"
            )
    final = RunStatus.ERROR if errors and status is RunStatus.COMPLETED else status
    return Verdict(final, tuple(errors), tuple(notes))


class Recorder(StartStop):
    """Records the configured streams of one category into one database.

    ``start()`` prepares the database and the run and starts the pipeline; ``stop()``
    stops reading, lets pending refills finish, flushes every writer and closes the
    run with its ``verdict``. ``stop()`` is idempotent and safe after a failed ``start()``.
    ``run_until_shutdown()`` does both, and starts only if ``start()`` has not.
    """

    def __init__(
        self, config: RecorderConfig, db: DatabaseFactory, output_dir: Path | None = None
    ) -> None:
        self.config = config
        self.db = db
        self.output_dir = output_dir
        self.run_id = str(uuid.uuid4())
        self.pipeline = RecordingPipeline(db.engine, pipeline_config(config, self.run_id))
        self.health_lines = 0
        self.health_file = (
            HealthFileWriter(output_dir / HEALTH_FILE_NAME, self.run_id, config.health_log_interval)
            if output_dir is not None
            else None
        )
        self.metrics: MetricsExporter | None = None
        self._started = False
        self._stopped = False
        self._run_created = False
        self._started_monotonic = time.monotonic()
        self._health_task: asyncio.Task[None] | None = None
        self.verdict: Verdict | None = None
        self.disk_guard = DiskGuard.for_database(db.sqlite_path, config.disk)
        #: why the disk guard stopped the session (the run's error); None while it has not
        self.disk_stop: str | None = None
        self._disk_task: asyncio.Task[None] | None = None
        self._stop_event: asyncio.Event | None = None

    # ---- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._started_monotonic = time.monotonic()
        await asyncio.to_thread(self._prepare_database)
        self._run_created = True
        settings = self.pipeline.config
        _log.debug(
            "pipeline: public %s, rest %s (%s), writer %s, private %s",
            settings.public,
            settings.rest_url,
            settings.rest,
            settings.writer,
            "on" if settings.account is not None else "off",
        )
        await self.pipeline.start()
        if self.disk_guard is not None:
            await self._check_disk()
            self._disk_task = asyncio.create_task(self._disk_loop(), name="disk-guard")
        else:
            _log.info("disk guard off: the database is not a local SQLite file")
        self._health_task = asyncio.create_task(self._health_loop(), name="health")
        self._start_metrics()
        self._publish_health(self.health())
        _log.info(
            "recording %s %s into %s (run %s)",
            self.config.category,
            ",".join(self.config.symbols),
            self.db.display_url,
            self.run_id,
        )
        if self.config.tickers.min_interval_ms:
            _log.info(
                "tickers: sampled, at most one per %d ms per symbol (tickers.min_interval_ms)",
                self.config.tickers.min_interval_ms,
            )

    def _prepare_database(self) -> None:
        self.db.create_tables()
        runs = RunRepository(self.db.engine)
        for run in runs.abort_dead_runs(host_name(), pid_alive):
            _log.warning(
                "run %s (pid %d) had ended without closing; marked aborted", run.id, run.pid
            )
        if self.output_dir is not None:
            for dead in abort_dead_sessions(self.output_dir, self.db.sqlite_path):
                _log.warning(
                    "run %s (pid %d) in %s had ended without closing; marked aborted",
                    dead.run_id,
                    dead.pid,
                    dead.folder,
                )
        account = ACCOUNT_ID if self.config.account is not None else None
        ReferenceDataRepository(self.db.engine).upsert_reference_rows(
            USER_ID,
            account,
            STRATEGY_ID,
            testnet=self.config.testnet,
            strategy_name="recorder",
            strategy_description="market data recording session",
        )
        runs.create_run(
            run_id=self.run_id,
            config_json=self.config.to_safe_json(),
            host=host_name(),
            pid=os.getpid(),
            software_version=software_version(),
            git_commit=git_commit(),
            output_dir=str(self.output_dir) if self.output_dir else None,
            account_id=account,
            strategy_id=STRATEGY_ID,
        )

    async def stop(self, status: RunStatus = RunStatus.COMPLETED, error: str | None = None) -> None:
        """Stop reading, drain refills, flush writers, close the run; idempotent.

        The run is closed with ``verdict(...)``: ``status`` unless the pipeline shows that
        it did not record what it was asked to (then ``error``), and ``runs.error`` says why.
        After the disk guard stopped the session, the run ends ``error`` with its reason.
        """
        if self._stopped:
            return
        self._stopped = True
        if self.disk_stop is not None and error is None:
            status, error = RunStatus.ERROR, self.disk_stop
        for task in (self._health_task, self._disk_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.pipeline.stop()
        if self.disk_guard is not None and self._started:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.disk_guard.check)
        if self._started:
            self.verdict = verdict(self.pipeline, status, error)
        else:
            self.verdict = Verdict(status, (error,) if error else ())
        final = self.verdict
        _log.debug("verdict: %s", final)
        if self._run_created:
            try:
                await asyncio.to_thread(
                    RunRepository(self.db.engine).finish_run, self.run_id, final.status, final.text
                )
            except Exception as exc:
                _log.error("could not close run %s: %s", self.run_id, exc)
        self._log_health(final.status.value)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
        if final.errors:
            _log.error("run %s %s: %s", self.run_id, final.status.value, final.text)
        elif final.notes:
            _log.warning("run %s %s, but: %s", self.run_id, final.status.value, final.text)
        else:
            _log.info("run %s %s", self.run_id, final.status.value)

    async def run_until_shutdown(self, stop_event: asyncio.Event | None = None) -> int:
        """Run until SIGINT/SIGTERM, ``stop_event``, ``duration_seconds`` or the disk guard.

        Starts the session unless ``start()`` already did. Returns 0 when the run ended
        ``completed``, 1 when it ended ``error`` (see ``verdict``), 4 when the disk guard
        stopped it (the run ends ``error`` too). The disk guard sets ``stop_event``.
        """
        stop_event = stop_event or asyncio.Event()
        self._stop_event = stop_event
        if self.disk_stop is not None:
            stop_event.set()
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig.name)
            stop_event.set()

        # asyncio.run's own SIGINT handler, or whatever a caller installed: put back after.
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.duration_seconds):
                    await stop_event.wait()
            if self.disk_stop is not None:
                _log.info("stopping (disk almost full): flushing writers")
                await self.stop()
                return EXIT_DISK_FULL
            reason = (
                received[0]
                if received
                else ("stop requested" if stop_event.is_set() else "duration reached")
            )
            _log.info("stopping (%s): flushing writers", reason)
            await self.stop()
            assert self.verdict is not None
            return 0 if self.verdict.status is RunStatus.COMPLETED else EXIT_ERROR
        except BaseException as exc:
            await self.stop(RunStatus.ERROR, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)

    # ---- health ---------------------------------------------------------------

    def health(self) -> HealthSnapshot:
        return health_snapshot(
            self.pipeline.health(),
            time.monotonic() - self._started_monotonic,
            self.disk_guard.last if self.disk_guard is not None else None,
        )

    def _log_health(self, status: str = "running") -> None:
        self.health_lines += 1
        snapshot = self.health()
        _log.info("%s", format_health(snapshot))
        self._publish_health(snapshot, status)

    def _publish_health(self, snapshot: HealthSnapshot, status: str = "running") -> None:
        """health.json in the session folder, and the Prometheus metrics when enabled."""
        if self.metrics is not None:
            self.metrics.update(snapshot)
        if self.health_file is not None:
            try:
                self.health_file.write(snapshot, status)
            except OSError as exc:
                _log.warning("could not write %s: %s", self.health_file.path, exc)

    def _start_metrics(self) -> None:
        port = self.config.metrics_port
        if port is None:
            return
        from recorder.metrics import MetricsExporter

        exporter = MetricsExporter(port, self.run_id)
        try:
            exporter.start()
        except OSError as exc:
            _log.error("metrics disabled: cannot listen on port %d: %s", port, exc)
            return
        self.metrics = exporter
        _log.info("Prometheus metrics on port %d", port)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_log_interval)
            self._log_health()

    # ---- disk guard -----------------------------------------------------------

    async def _disk_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.disk.check_interval_seconds)
            await self._check_disk()

    async def _check_disk(self) -> None:
        """Measure the database's disk (on a worker thread); warn, or stop the session."""
        guard = self.disk_guard
        assert guard is not None
        try:
            usage = await asyncio.to_thread(guard.check)
        except OSError as exc:
            _log.warning("disk guard: cannot measure %s: %s", guard.path, exc)
            return
        if usage.level is DiskLevel.FLOOR:
            if self.disk_stop is None:
                self.disk_stop = guard.stop_reason(usage)
                _log.error("%s", self.disk_stop)
                if self._stop_event is not None:
                    self._stop_event.set()
        elif guard.warning_due():
            _log.warning("%s", guard.warning(usage))


async def record_session(
    config: RecorderConfig, output_dir: Path, command: Sequence[str] | None = None
) -> int:
    """One session in ``output_dir``: open the database, write ``session.json``, record until
    a signal or ``duration_seconds``. Returns the exit code (0 completed, 1 error, 3 the
    database cannot be used, 4 the disk guard stopped it: free space below ``disk.stop_free_mb``). ``command`` is the command line that reproduces the session
    (default: ``recorder`` and the Hydra overrides saved in ``.hydra/overrides.yaml``)."""
    config = config.with_database_in(output_dir)
    assert config.database_url is not None
    try:
        db = await asyncio.to_thread(DatabaseFactory, DatabaseSettings(url=config.database_url))
    except GridDbError as exc:
        _log.error("cannot open the database: %s", exc)
        return EXIT_DATABASE
    try:
        write_session_file(config, output_dir, command)
        return await Recorder(config, db, output_dir).run_until_shutdown()
    except GridDbError as exc:
        _log.error("database error: %s", exc)
        return EXIT_DATABASE
    except DBAPIError as exc:
        # Unreachable, refusing or failing before the run could start: one line, no trace.
        reason = str(exc.orig or exc).strip().splitlines()
        _log.error(
            "cannot use the database %s: %s", db.display_url, reason[0] if reason else type(exc)
        )
        return EXIT_DATABASE
    finally:
        db.dispose()


def run_session(config: RecorderConfig, output_dir: Path) -> int:
    """Entry point of one Hydra job: ``record_session`` in a new event loop; the exit code."""
    return asyncio.run(record_session(config, output_dir))


def write_session_file(
    config: RecorderConfig, output_dir: Path, command: Sequence[str] | None = None
) -> None:
    """``session.json``: what produced this folder, and how to run it again.

    ``reproduce`` is a shell command line (``eval "uv run $(jq -r .reproduce session.json)"``)
    and ``command`` the same as a list; ``environment`` names the variables it needs.
    ``git_revision`` is the commit to check out; when ``git_dirty``, the uncommitted changes
    to tracked files are in ``git.diff`` beside it (``git apply``). No secret is written.
    """
    overrides: list[str] = []
    if command is None:
        overrides_file = output_dir / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            overrides = list(yaml.safe_load(overrides_file.read_text()) or [])
        command = ["recorder", *overrides]
    revision = git_revision()
    environment = []
    if config.account is not None and config.account.inline_api_key is None:
        environment += [config.account.api_key_env, config.account.api_secret_env]
    if any(DB_PASSWORD_ENV in part for part in command):
        environment.append(DB_PASSWORD_ENV)
    info = {
        "software_version": software_version(),
        "git_commit": git_commit(),
        "git_revision": revision[0] if revision else None,
        "git_dirty": revision[1] if revision else None,
        "host": host_name(),
        "pid": os.getpid(),
        "overrides": overrides,
        "command": list(command),
        "reproduce": shlex.join(command),
        "environment": environment,
        "config": config.redacted_dict(),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(info, indent=2, sort_keys=True) + "\n"
    (output_dir / "session.json").write_text(redact(text))
    diff = git_diff()
    if diff is not None:
        (output_dir / "git.diff").write_text(SECRETS.redact_known(diff))
