"""One recording session: wiring, lifecycle, health and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bybit_adapter import (
    BybitAuthError,
    BybitRestClient,
    Outage,
    RestSettings,
    WebSocketSettings,
)
from event_saver import (
    AccountContext,
    DatabaseWorker,
    ExecutionWriter,
    FlowGate,
    GapReconciler,
    OrderWriter,
    PositionWriter,
    PrivateCollector,
    PublicCollector,
    RejectedFrameWriter,
    TickerWriter,
    TradeWriter,
    WalletWriter,
    WriterSettings,
)
from event_saver.buffered_writer import BufferedWriter
from grid_db import (
    DatabaseFactory,
    DatabaseSettings,
    GridDbError,
    ReferenceDataRepository,
    RunRepository,
)
from recorder.config import RecorderConfig
from recorder.health import HealthSnapshot, StreamHealth, format_health, resident_memory_mb
from recorder.health_file import FILE_NAME as HEALTH_FILE_NAME
from recorder.health_file import HealthFileWriter
from recorder.provenance import git_commit, host_name, pid_alive, software_version

if TYPE_CHECKING:
    from recorder.metrics import MetricsExporter

_log = logging.getLogger("recorder.session")

# Fixed ids: every session of every recorder refers to the same reference rows,
# so datasets from many sessions join without a lookup table.
_NAMESPACE = uuid.UUID("6f1f3e0e-6c1b-4c55-9d1e-3c1f8e6b2a10")
USER_ID = str(uuid.uuid5(_NAMESPACE, "user:default"))
ACCOUNT_ID = str(uuid.uuid5(_NAMESPACE, "bybit_account:default"))
STRATEGY_ID = str(uuid.uuid5(_NAMESPACE, "strategy:recorder"))


def websocket_settings(config: RecorderConfig, private: bool = False) -> WebSocketSettings:
    c = config.connection
    return WebSocketSettings(
        ping_interval=c.ping_interval_seconds,
        pong_timeout=c.pong_timeout_seconds,
        stall_timeout=None if private else c.stall_timeout_seconds,
        backoff_initial=c.reconnect_initial_delay_seconds,
        backoff_max=c.reconnect_max_delay_seconds,
        max_connects_per_window=c.max_connects_per_5min,
        connect_window=300.0,
    )


class Recorder:
    """Records the configured streams of one category into one database.

    ``start()`` creates the schema, the ``runs`` row, writers, the gap
    reconciler and collectors; ``stop()`` stops reading, lets pending gap
    fills finish, flushes every writer and closes the run. ``stop()`` is
    idempotent and safe after a failed ``start()``.
    """

    def __init__(
        self, config: RecorderConfig, db: DatabaseFactory, output_dir: Path | None = None
    ) -> None:
        self.config = config
        self.db = db
        self.output_dir = output_dir
        self.run_id = str(uuid.uuid4())
        self.worker = DatabaseWorker()
        self.gate = FlowGate()
        self.writers: list[BufferedWriter[Any]] = []
        self.public: PublicCollector | None = None
        self.private: PrivateCollector | None = None
        self.reconciler: GapReconciler | None = None
        self.rest: BybitRestClient | None = None
        self._run_created = False
        self._stopped = False
        self._started_monotonic = time.monotonic()
        self._health_task: asyncio.Task[None] | None = None
        self.health_lines = 0
        self.auth_errors: list[BybitAuthError] = []
        self.health_file = (
            HealthFileWriter(output_dir / HEALTH_FILE_NAME, self.run_id, config.health_log_interval)
            if output_dir is not None
            else None
        )
        self.metrics: MetricsExporter | None = None

    # ---- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._started_monotonic = time.monotonic()
        await self.worker.run(self._prepare_database)
        self._run_created = True
        config = self.config
        writer_settings = WriterSettings(
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            max_buffer=config.max_buffer_rows,
        )
        engine = self.db.engine
        self.trades = TradeWriter(engine, self.worker, self.run_id, writer_settings, self.gate)
        self.tickers = TickerWriter(engine, self.worker, self.run_id, writer_settings, self.gate)
        self.rejected = RejectedFrameWriter(engine, self.worker, self.run_id, writer_settings)
        self.writers = [self.trades, self.tickers, self.rejected]
        account = config.account
        context = None
        if account is not None:
            context = AccountContext(ACCOUNT_ID, self.run_id, (config.category,))
            self.executions = ExecutionWriter(
                engine, self.worker, self.run_id, ACCOUNT_ID, writer_settings, self.gate
            )
            self.orders = OrderWriter(
                engine, self.worker, self.run_id, ACCOUNT_ID, writer_settings, self.gate
            )
            self.positions = PositionWriter(
                engine, self.worker, self.run_id, ACCOUNT_ID, writer_settings, self.gate
            )
            self.wallets = WalletWriter(
                engine, self.worker, self.run_id, ACCOUNT_ID, writer_settings, self.gate
            )
            self.writers += [self.executions, self.orders, self.positions, self.wallets]
        for writer in self.writers:
            await writer.start()
        self.rest = BybitRestClient(
            config.network.rest_url,
            account.api_key.get_secret_value() if account else None,
            account.api_secret.get_secret_value() if account else None,
            settings=RestSettings(
                timeout=config.rest.timeout_seconds, max_retries=config.rest.max_retries
            ),
        )
        await self.rest.start()
        self.reconciler = GapReconciler(
            self.rest, engine, self.worker, self.run_id, account=context
        )
        await self.reconciler.start()
        self.public = PublicCollector(
            config.network.public_ws_url,
            config.symbols,
            category=config.category,
            on_trades=self.trades.add_many,
            on_ticker=self.tickers.add,
            on_outage=self.reconciler.submit_public,
            on_rejected=self.rejected.add,
            settings=websocket_settings(config),
            gate=self.gate,
            silence_threshold=config.gap_threshold_seconds,
        )
        await self.public.start()
        if account is not None and context is not None:
            self.private = PrivateCollector(
                config.network.private_ws_url,
                account.api_key.get_secret_value(),
                account.api_secret.get_secret_value(),
                context,
                on_execution=self.executions.add,
                on_order=self.orders.add,
                on_position=self.positions.add,
                on_wallet=self.wallets.add,
                on_outage=self._private_outage,
                on_rejected=self.rejected.add,
                on_auth_error=self.auth_errors.append,
                settings=websocket_settings(config, private=True),
                gate=self.gate,
            )
            await self.private.start()
            await self.reconciler.refresh_private_state()
        self._health_task = asyncio.create_task(self._health_loop(), name="health")
        self._start_metrics()
        self._publish_health(self.health())
        _log.info(
            "recording %s %s into %s (run %s)",
            config.category,
            ",".join(config.symbols),
            self.db.settings.url if self.db.sqlite_path is None else self.db.sqlite_path,
            self.run_id,
        )

    def _prepare_database(self) -> None:
        self.db.create_tables()
        runs = RunRepository(self.db.engine)
        self._abort_crashed_runs(runs)
        ReferenceDataRepository(self.db.engine).upsert_reference_rows(
            USER_ID,
            ACCOUNT_ID if self.config.account is not None else None,
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
            account_id=ACCOUNT_ID if self.config.account is not None else None,
            strategy_id=STRATEGY_ID,
        )

    def _abort_crashed_runs(self, runs: RunRepository) -> None:
        """Runs left ``running`` by a dead process of this host were cut short."""
        host = host_name()
        for run in runs.list(status="running"):
            if run.host == host and not pid_alive(run.pid):
                runs.finish_run(
                    run.id,
                    "aborted",
                    run.error or "the recorder process ended without closing this run",
                )
                _log.warning("run %s (pid %d) had crashed; marked aborted", run.id, run.pid)

    def _private_outage(self, outage: Outage) -> None:
        assert self.reconciler is not None
        self.reconciler.submit_private(outage)

    async def stop(self, status: str = "completed", error: str | None = None) -> None:
        """Stop reading, drain gap fills, flush writers, close the run; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for collector in (self.public, self.private):
            if collector is not None:
                await collector.stop()
        if self.reconciler is not None:
            await self.reconciler.stop()
        for writer in self.writers:
            await writer.stop()
        lost = sum(w.buffered for w in self.writers)
        if lost and status == "completed":
            status, error = "error", f"{lost} buffered rows could not be written"
        if self.rest is not None:
            await self.rest.stop()
        if self._run_created:
            try:
                await self.worker.run(
                    lambda: RunRepository(self.db.engine).finish_run(self.run_id, status, error)
                )
            except Exception as exc:
                _log.error("could not close run %s: %s", self.run_id, exc)
        self.worker.close()
        self._log_health(status)
        if self.metrics is not None:
            self.metrics.stop()
        _log.info("run %s %s", self.run_id, status)

    async def run_until_shutdown(self, stop_event: asyncio.Event | None = None) -> int:
        """Run until SIGINT/SIGTERM, ``stop_event`` or ``duration_seconds``; returns 0."""
        stop_event = stop_event or asyncio.Event()
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig.name)
            stop_event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), self.config.duration_seconds)
            reason = (
                received[0]
                if received
                else ("duration reached" if not stop_event.is_set() else "stop requested")
            )
            _log.info("stopping (%s): flushing writers", reason)
            await self.stop()
            return 0
        except BaseException as exc:
            await self.stop("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    # ---- health ---------------------------------------------------------------

    def health(self) -> HealthSnapshot:
        now_ns = time.time_ns()
        streams = []
        for collector in (self.public, self.private):
            if collector is None:
                continue
            stats = collector.connection_stats
            last = stats.last_data_received_ns
            streams.append(
                StreamHealth(
                    name=collector.client.stream,
                    state=collector.state.value,
                    reconnects=stats.reconnects,
                    frames=stats.data_frames,
                    last_message_age_s=None if last is None else (now_ns - last) / 1e9,
                    rejected_frames=collector.rejected_frames,
                )
            )
        assert self.reconciler is not None
        return HealthSnapshot(
            uptime_s=time.monotonic() - self._started_monotonic,
            streams=tuple(streams),
            writers=tuple(w.stats() for w in self.writers),
            gaps=self.reconciler.stats,
            gaps_pending=self.reconciler.pending,
            rss_mb=resident_memory_mb(),
            asyncio_tasks=len(asyncio.all_tasks()),
        )

    def _log_health(self, status: str = "running") -> None:
        if self.reconciler is None:
            return
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


def run_session(config: RecorderConfig, output_dir: Path) -> int:
    """Entry point of one Hydra job: record until a signal or the duration; exit code."""
    try:
        db = DatabaseFactory(DatabaseSettings(url=config.database_url))
    except GridDbError as exc:
        _log.error("cannot open the database: %s", exc)
        return 3
    write_session_file(config, output_dir)
    try:
        return asyncio.run(Recorder(config, db, output_dir).run_until_shutdown())
    except GridDbError as exc:
        _log.error("database error: %s", exc)
        return 3
    finally:
        db.dispose()


def write_session_file(config: RecorderConfig, output_dir: Path) -> None:
    """``session.json``: what produced this folder, and how to run it again."""
    overrides_file = output_dir / ".hydra" / "overrides.yaml"
    overrides: list[str] = []
    if overrides_file.exists():
        overrides = list(yaml.safe_load(overrides_file.read_text()) or [])
    info = {
        "software_version": software_version(),
        "git_commit": git_commit(),
        "host": host_name(),
        "pid": os.getpid(),
        "overrides": overrides,
        "reproduce": "recorder " + " ".join(overrides),
        "config": config.redacted_dict(),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "session.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
