"""The Makefile's front door: ``make run`` ends cleanly on a terminal's Ctrl-C, and a busy
``SIM_PORT`` in ``make sim`` / ``make demo`` is one line with the hint.

``make -o install``: the environment is already installed (``install`` would run ``uv sync``).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import SimProcess, db_count, db_rows

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine"),
]

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_S = 60


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("target", ["sim", "demo"])
def test_a_busy_sim_port_is_one_line_with_the_hint(busy_port: int, target: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "install", target, f"SIM_PORT={busy_port}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert f"port {busy_port} is in use" in line
    assert f"make {target} SIM_PORT={busy_port + 1}" in line
    assert "Traceback" not in result.stdout + result.stderr


def test_the_demo_script_says_it_too(busy_port: int, tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), str(busy_port), "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"port {busy_port} is in use (another bybit-sim?): pick a free one, "
        f"e.g. make demo SIM_PORT={busy_port + 1}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_make_run_ends_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    sim = SimProcess("--trade-rate", "20")
    run_dir = tmp_path / "session"
    args = " ".join(
        [
            "network=local",
            f"network.rest_url={sim.rest_url}",
            f"'network.public_ws_url=\"ws://127.0.0.1:{sim.port}/v5/public/{{category}}\"'",
            "flush_interval=0.3",
            f"hydra.run.dir={run_dir}",
        ]
    )
    pid, terminal = pty.fork()
    if pid == 0:  # the child: make on a terminal of its own, as in a shell
        os.chdir(REPO)
        os.execvp("make", ["make", "--no-print-directory", "-o", "install", "run", f"ARGS={args}"])
    output = bytearray()

    def read_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(terminal, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                output.extend(chunk)

    try:
        db = run_dir / "recorder.db"
        deadline = time.monotonic() + TIMEOUT_S
        while db_count(db, "SELECT count(*) FROM public_trades") < 10:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            read_for(0.2)
        os.write(terminal, b"\x03")  # Ctrl-C, as typed
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            read_for(0.2)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, output.decode(errors="replace")
        read_for(0.5)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(terminal)
        sim.stop()
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "stopping (SIGINT): flushing writers" in text
    assert not re.search(r"make: \*\*\*|Error 130|Interrupt", text), text
    assert db_rows(run_dir / "recorder.db", "SELECT status FROM runs") == [("completed",)]
