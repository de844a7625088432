"""``hydra/launcher=process`` with a tiny Hydra app: concurrency, signal forwarding, failures.

The app (written to tmp_path) appends ``hb N`` to ``heartbeat.txt`` in its job dir until SIGINT or
SIGTERM, then writes ``FLUSHED reason=<signal>``. The plugin is found because the recorder package
(which ships ``hydra_plugins/recorder_launcher``) is installed in this environment.
"""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

pytestmark = pytest.mark.e2e

TIMEOUT_S = 20.0

APP = """
import os, signal, sys, time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(config_path=None, config_name=None, version_base="1.3")
def task(cfg):
    stop = []
    handler = signal.SIG_IGN if cfg.ignore_signals else (lambda signum, _: stop.append(signum))
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if cfg.exit_code:
        sys.exit(cfg.exit_code)
    with open(Path(HydraConfig.get().runtime.output_dir) / "heartbeat.txt", "a") as out:
        out.write(f"pid {os.getpid()}\\n")
        beats = 0
        while not stop and (cfg.beats is None or beats < cfg.beats):
            beats += 1
            out.write(f"hb {beats}\\n")
            out.flush()
            time.sleep(0.02)
        reason = signal.Signals(stop[0]).name if stop else "done"
        out.write(f"FLUSHED reason={reason} beats={beats}\\n")


if __name__ == "__main__":
    task()
"""

CONFIG = """
defaults:
  - override hydra/launcher: process
  - _self_
name: a
beats: null
exit_code: 0
ignore_signals: false
hydra:
  job:
    name: probe
  sweep:
    subdir: ${hydra.job.num}_${name}
"""


@dataclass
class Sweep:
    process: subprocess.Popen[bytes]
    dir: Path
    log: Path

    def heartbeat(self, job_dir: str) -> str:
        path = self.dir / job_dir / "heartbeat.txt"
        return path.read_text() if path.exists() else ""

    def job_pid(self, job_dir: str) -> int:
        return int(self.heartbeat(job_dir).splitlines()[0].split()[1])

    def output(self) -> str:
        return self.log.read_text()


def wait_until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def beating(sweep: Sweep, job_dir: str) -> bool:
    return "hb 2\n" in sweep.heartbeat(job_dir)


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def session_members(sid: int) -> list[int]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members


@pytest.fixture
def probe_app(tmp_path: Path) -> list[str]:
    """The command line that starts the probe app with its config dir."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(CONFIG)
    script = tmp_path / "probe_app.py"
    script.write_text(APP)
    return [sys.executable, str(script), "-cp", str(conf), "-cn", "config"]


@pytest.fixture
def start_sweep(tmp_path: Path, probe_app: list[str]) -> Iterator[Callable[..., Sweep]]:
    started: list[Sweep] = []

    def start(*overrides: str) -> Sweep:
        sweep_dir = tmp_path / f"sweep{len(started)}"
        log = tmp_path / f"sweep{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*probe_app, "-m", f"hydra.sweep.dir={sweep_dir}", *overrides],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Sweep(process, sweep_dir, log))
        return started[-1]

    yield start
    for sweep in started:  # a failed test must not leave recorders running
        if sweep.process.poll() is None:
            os.killpg(sweep.process.pid, signal.SIGKILL)
            sweep.process.wait()
        for pid in session_members(sweep.process.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_jobs_run_concurrently_and_flush_on_a_signal_to_the_launcher(
    start_sweep: Callable[..., Sweep], sig: signal.Signals
) -> None:
    sweep = start_sweep("name=a,b")
    wait_until(lambda: beating(sweep, "0_a") and beating(sweep, "1_b"), "both jobs' heartbeats")
    job_pids = [sweep.job_pid("0_a"), sweep.job_pid("1_b")]
    assert sweep.process.pid not in job_pids
    assert len(set(job_pids)) == 2

    sweep.process.send_signal(sig)

    assert sweep.process.wait(TIMEOUT_S) == 0, sweep.output()
    for job in ("0_a", "1_b"):
        assert sweep.heartbeat(job).splitlines()[-1].startswith(f"FLUSHED reason={sig.name} "), job
    assert all(gone(pid) for pid in job_pids)
    assert session_members(sweep.process.pid) == []
    output = sweep.output()
    assert "#0 : name=a (pid " in output
    assert "#1 : name=b (pid " in output
    assert f"Received {sig.name}: forwarded to 2 running jobs" in output


def test_ctrl_c_to_the_whole_process_group(start_sweep: Callable[..., Sweep]) -> None:
    """A terminal's Ctrl-C reaches the launcher and every job: each job flushes once."""
    sweep = start_sweep("name=a,b")
    wait_until(lambda: beating(sweep, "0_a") and beating(sweep, "1_b"), "both jobs' heartbeats")

    os.killpg(sweep.process.pid, signal.SIGINT)

    assert sweep.process.wait(TIMEOUT_S) == 0, sweep.output()
    for job in ("0_a", "1_b"):
        assert sweep.heartbeat(job).count("FLUSHED reason=SIGINT") == 1
    assert session_members(sweep.process.pid) == []


def test_no_job_starts_after_a_stop_signal(start_sweep: Callable[..., Sweep]) -> None:
    """With batches of one job, the stop arrives while batch #0 runs: batch #1 never starts."""
    sweep = start_sweep("name=a,b", "hydra.sweeper.max_batch_size=1")
    wait_until(lambda: beating(sweep, "0_a"), "job #0's heartbeat")

    sweep.process.send_signal(signal.SIGTERM)

    assert sweep.process.wait(TIMEOUT_S) == 0, sweep.output()
    assert sweep.heartbeat("0_a").splitlines()[-1].startswith("FLUSHED reason=SIGTERM ")
    assert not (sweep.dir / "1_b").exists()
    assert "#1 : name=b NOT started: stop requested" in sweep.output()


def test_a_failing_job_fails_the_launcher(start_sweep: Callable[..., Sweep]) -> None:
    sweep = start_sweep("exit_code=0,3", "beats=5")

    assert sweep.process.wait(TIMEOUT_S) == 1
    output = sweep.output()
    assert "Jobs finished, exit codes [0, 3]" in output
    assert "job #1 exited with code 3" in output
    assert sweep.heartbeat("0_a").splitlines()[-1] == "FLUSHED reason=done beats=5"


def test_a_job_ignoring_signals_is_killed_after_the_grace_period(
    start_sweep: Callable[..., Sweep],
) -> None:
    sweep = start_sweep("ignore_signals=true,false", "hydra.launcher.grace_period_s=1")
    wait_until(lambda: beating(sweep, "0_a") and beating(sweep, "1_a"), "both jobs' heartbeats")
    stubborn = sweep.job_pid("0_a")

    sent = time.monotonic()
    sweep.process.send_signal(signal.SIGTERM)

    assert sweep.process.wait(TIMEOUT_S) == 1
    assert time.monotonic() - sent >= 1.0
    assert sweep.heartbeat("1_a").splitlines()[-1].startswith("FLUSHED reason=SIGTERM ")
    assert "FLUSHED" not in sweep.heartbeat("0_a")
    output = sweep.output()
    assert f"Job pid {stubborn} still running after the grace period: SIGKILL" in output
    assert "job #0 was killed by signal 9" in output
    assert gone(stubborn)
    assert session_members(sweep.process.pid) == []


def test_jobs_die_with_a_killed_launcher(start_sweep: Callable[..., Sweep]) -> None:
    """SIGKILL cannot be forwarded: PR_SET_PDEATHSIG sends the jobs SIGTERM instead."""
    sweep = start_sweep("name=a,b")
    wait_until(lambda: beating(sweep, "0_a") and beating(sweep, "1_b"), "both jobs' heartbeats")
    job_pids = [sweep.job_pid("0_a"), sweep.job_pid("1_b")]

    sweep.process.kill()

    assert sweep.process.wait(TIMEOUT_S) == -signal.SIGKILL
    flushed = ("0_a", "1_b")
    wait_until(
        lambda: all("FLUSHED reason=SIGTERM" in sweep.heartbeat(job) for job in flushed),
        "both jobs to flush",
    )
    wait_until(lambda: all(gone(pid) for pid in job_pids), "the orphaned jobs to exit")


def test_single_run_does_not_use_the_launcher(probe_app: list[str], tmp_path: Path) -> None:
    """Without -m the task runs in the launcher's process, as Hydra always does."""
    run_dir = tmp_path / "single"
    result = subprocess.run(
        [*probe_app, f"hydra.run.dir={run_dir}", "beats=3"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (run_dir / "heartbeat.txt").read_text().splitlines()[-1] == "FLUSHED reason=done beats=3"
    assert (run_dir / "probe.log").exists()


def test_the_launchers_lines_are_redacted(start_sweep: Callable[..., Sweep]) -> None:
    """The launcher logs every job's overrides: a URL's password is masked on the way out."""
    sweep = start_sweep("name=a,b", "beats=3", "+url=postgresql://rec:PW-launcher-5e1@db/x")
    assert sweep.process.wait(TIMEOUT_S) == 0, sweep.output()
    output = sweep.output()
    assert "PW-launcher-5e1" not in output
    # (Hydra escapes the override it shows: postgresql\://rec\:...)
    assert re.search(r"#0 : .*\+url=postgresql\\?://rec\\?:\*\*\*@db/x", output), output
