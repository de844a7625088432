"""``hydra/launcher=process``: every job of a multirun in its own forked process, all at once.

Hydra's basic launcher runs jobs one after the other, so a recorder that runs until stopped would
block the next job forever; joblib/loky SIGKILLs or orphans its workers on SIGINT/SIGTERM. Here:

* each job is a fork of the launcher that calls ``hydra.core.utils.run_job`` (same output dirs,
  ``.hydra/`` files and job log as any launcher) and dies with it (``PR_SET_PDEATHSIG``);
* SIGINT/SIGTERM to the launcher are forwarded to every running job and stop further launches;
  a job still alive ``grace_period_s`` after the first signal is SIGKILLed;
* a job that exits non-zero (or is killed) makes the launcher fail, so ``recorder -m`` exits 1;
* every line it logs goes through ``recorder.redaction`` (no secret in the launcher's log).
"""

# No `from __future__ import annotations` in this module: Hydra executes plugin modules without
# registering them in sys.modules, and a dataclass with string annotations then breaks every run.

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.context import ForkProcess
from pathlib import Path
from types import FrameType, TracebackType

from hydra.core.config_store import ConfigStore
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from recorder.redaction import install_log_redaction

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class ProcessLauncherConf:
    _target_: str = "hydra_plugins.recorder_launcher.process_launcher.ProcessLauncher"
    # Seconds a job may take to shut down after a forwarded SIGINT/SIGTERM before SIGKILL.
    grace_period_s: float = 30.0


ConfigStore.instance().store(
    group="hydra/launcher", name="process", node=ProcessLauncherConf, provider="recorder_launcher"
)


class JobFailedError(CompactHydraException):
    """A job exited with a non-zero code; Hydra prints just this message."""


class ProcessLauncher(Launcher):
    def __init__(self, grace_period_s: float = 30.0) -> None:
        self.grace_period_s = float(grace_period_s)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.stop_signal: int | None = None  # once set, later batches of the sweep never start

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        assert self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        install_log_redaction()  # the launcher's lines show every job's overrides
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("Launching %d jobs, one process each", len(job_overrides))
        started: list[tuple[int, Sequence[str]]] = []
        with _JobProcesses(self.grace_period_s) as jobs:
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                shown = " ".join(filter_overrides(overrides))
                if self.stop_signal is not None or jobs.stop_signal is not None:
                    log.warning("\t#%d : %s NOT started: stop requested", idx, shown)
                    continue
                sweep_config = self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(overrides)
                )
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = idx
                    sweep_config.hydra.job.num = idx
                pid = jobs.start(partial(self._run_job, sweep_config))
                log.info("\t#%d : %s (pid %d)", idx, shown, pid)
                started.append((idx, overrides))
            exit_codes = jobs.wait()
        self.stop_signal = self.stop_signal or jobs.stop_signal
        log.info("Jobs finished, exit codes %s", exit_codes)
        return [_job_return(*job, code) for job, code in zip(started, exit_codes, strict=True)]

    def _run_job(self, sweep_config: DictConfig) -> int:
        """In the job's process: run it like any Hydra launcher does."""
        assert self.hydra_context is not None
        assert self.task_function is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.COMPLETED:
            return 0
        error = ret._return_value  # the property would raise it
        log.error("Error executing job with overrides: %s", ret.overrides, exc_info=error)
        return 1


def _job_return(idx: int, overrides: Sequence[str], exit_code: int) -> JobReturn:
    ret = JobReturn(overrides=list(overrides))
    if exit_code == 0:
        ret.status = JobStatus.COMPLETED
    else:
        ret.status = JobStatus.FAILED
        how = (
            f"was killed by signal {-exit_code}"
            if exit_code < 0
            else f"exited with code {exit_code}"
        )
        ret.return_value = JobFailedError(f"job #{idx} {how}")
    return ret


class _JobProcesses:
    """The running jobs, plus SIGINT/SIGTERM forwarding while the launcher waits for them."""

    def __init__(self, grace_period_s: float) -> None:
        self.grace_period_s = grace_period_s
        self.stop_signal: int | None = None
        self._deadline: float | None = None
        self._processes: list[ForkProcess] = []
        self._exited: set[int] = set()  # pids whose exit was seen: never signal them again
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_w, False)
        self._previous_handlers: dict[int, object] = {}

    def __enter__(self) -> "_JobProcesses":
        for sig in STOP_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._on_stop_signal)
        return self

    def __exit__(
        self, exc_type: object, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self._processes:  # e.g. a broken sweep config: stop what runs
            self._on_stop_signal(signal.SIGTERM, None)
            self.wait()
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)

    def start(self, run: Callable[[], int]) -> int:
        """Fork a job running ``run()``; its return value is the exit code. Returns the pid."""
        parent = os.getpid()
        process = get_context("fork").Process(target=self._child_main, args=(parent, run))
        # Blocked across the fork so the child cannot run our forwarding handler; the job is
        # registered before a pending signal is delivered, so it gets forwarded to it too.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
            self._processes.append(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        assert process.pid is not None
        return process.pid

    def _child_main(self, parent: int, run: Callable[[], int]) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)
        _die_with_parent(signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if os.getppid() != parent:
            sys.exit("launcher exited before the job started")
        sys.exit(run())

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self._deadline = time.monotonic() + self.grace_period_s
        for process in self._processes:
            if process.pid is not None and process.pid not in self._exited:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signum)
        with suppress(BlockingIOError):  # full pipe: wait() is being woken up already
            os.write(self._wakeup_w, b"\0")  # wakes wait() so the deadline is honoured

    def wait(self) -> list[int]:
        """Wait for every job; SIGKILL stragglers after the grace period. Returns exit codes."""
        running = {process.sentinel: process for process in self._processes}
        announced = False
        while running:
            if self.stop_signal is not None and not announced:
                announced = True
                log.info(
                    "Received %s: forwarded to %d running jobs, waiting up to %.0f s",
                    signal.Signals(self.stop_signal).name,
                    len(running),
                    self.grace_period_s,
                )
            timeout = (
                None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            )
            ready = wait([self._wakeup_r, *running], timeout)
            if self._wakeup_r in ready:
                os.read(self._wakeup_r, 512)
            for sentinel in [sentinel for sentinel in running if sentinel in ready]:
                process = running.pop(sentinel)
                assert process.pid is not None
                self._exited.add(process.pid)
                process.join()
            if self._deadline is not None and time.monotonic() >= self._deadline and running:
                for process in running.values():
                    log.error(
                        "Job pid %s still running after the grace period: SIGKILL", process.pid
                    )
                    process.kill()
                self._deadline = None  # the SIGKILLed jobs end now; wait for them without limit
        return [
            process.exitcode if process.exitcode is not None else -1 for process in self._processes
        ]


def _die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when the launcher dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
