"""The plain-YAML front end (``recorder.main``): ``recorder-main``, ``python -m recorder.main``
and ``recorder --config``, as real processes against the real simulator, with real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from recorder.main import parse_args
from testkit import SimProcess, db_count, db_rows, script, wait_sync

pytestmark = pytest.mark.e2e

TRADES = "SELECT count(*) FROM public_trades"
TIMEOUT_S = 60


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    process = SimProcess("--trade-rate", "20")
    yield process
    process.stop()


def config_file(directory: Path, sim: SimProcess | None, *extra: str, name: str = "my") -> Path:
    """A plain YAML config recording from ``sim`` with fast timings, plus ``extra`` lines."""
    lines = ["symbols: [BTCUSDT, ETHUSDT]", "flush_interval: 0.3", "health_log_interval: 0.5"]
    if sim is not None:
        base = f"127.0.0.1:{sim.port}"
        lines += [
            "network:",
            f"  rest_url: http://{base}",
            f"  public_ws_url: ws://{base}/v5/public/{{category}}",
            f"  private_ws_url: ws://{base}/v5/private",
            "connection:",
            "  ping_interval_seconds: 0.5",
            "  reconnect_initial_delay_seconds: 0.1",
            "  reconnect_max_delay_seconds: 1",
        ]
    path = directory / f"{name}.yaml"
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return path


def start(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"did not exit in time:\n{out}\n{err}") from None
    return proc.returncode, out, err


def session_folder(root: Path) -> Path:
    (day,) = root.iterdir()
    assert date.fromisoformat(day.name) <= date.today()
    (folder,) = day.iterdir()
    return folder


def test_parse_args() -> None:
    args = parse_args(["--config", "my.yaml", "--debug"])
    assert (args.config, args.debug) == ("my.yaml", True)
    args = parse_args([])
    assert (args.config, args.debug) == (None, False)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_recorder_main_records_until_a_signal(
    sim: SimProcess, tmp_path: Path, sig: signal.Signals
) -> None:
    file = config_file(tmp_path, sim)
    root = tmp_path / "out"
    proc = start(
        [script("recorder-main"), "--config", str(file)],
        tmp_path,
        {"RECORDER_OUTPUT_ROOT": str(root)},
    )
    try:
        wait_sync(
            lambda: root.exists() and any(root.rglob("recorder.db")), 30, "the session folder"
        )
        folder = session_folder(root)
        wait_sync(lambda: db_count(folder / "recorder.db", TRADES) > 20, 30, "trades")
    finally:
        os.kill(proc.pid, sig)
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert re.fullmatch(r"\d{2}-\d{2}-\d{2}-\d{6}_my", folder.name)
    assert {"recorder.db", "recorder.log", "session.json", "health.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert db_rows(folder / "recorder.db", "SELECT status, error FROM runs") == [
        ("completed", None)
    ]
    log = (folder / "recorder.log").read_text()
    assert f"stopping ({sig.name}): flushing writers" in log
    assert "[recorder.session][INFO] - recording linear BTCUSDT,ETHUSDT into" in log
    assert "health uptime=" in log
    info = json.loads((folder / "session.json").read_text())
    assert info["command"] == ["recorder", "--config", str(file)]
    assert info["reproduce"] == f"recorder --config {file}"
    assert info["config"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert info["config"]["database_url"] == f"sqlite:///{folder}/recorder.db"
    # the same session code as the Hydra command: the same files, the same health line
    assert json.loads((folder / "health.json").read_text())["status"] == "completed"


def test_python_dash_m_with_debug(sim: SimProcess, tmp_path: Path) -> None:
    file = config_file(tmp_path, sim, "duration_seconds: 2")
    root = tmp_path / "out"
    proc = start(
        [sys.executable, "-m", "recorder.main", "--config", str(file), "--debug"],
        tmp_path,
        {"RECORDER_OUTPUT_ROOT": str(root)},
    )
    code, out, err = finish(proc)
    assert code == 0, out + err
    log = (session_folder(root) / "recorder.log").read_text()
    assert "[recorder.session][DEBUG] - pipeline: public " in log
    assert "[recorder.session][DEBUG] - verdict: " in log


def test_without_debug_there_is_no_debug_line(sim: SimProcess, tmp_path: Path) -> None:
    file = config_file(tmp_path, sim, "duration_seconds: 1")
    root = tmp_path / "out"
    code, out, err = finish(
        start(
            [script("recorder-main"), "--config", str(file)],
            tmp_path,
            {"RECORDER_OUTPUT_ROOT": str(root)},
        )
    )
    assert code == 0, out + err
    assert "[DEBUG]" not in (session_folder(root) / "recorder.log").read_text()


def test_the_hydra_script_takes_a_config_file_too(sim: SimProcess, tmp_path: Path) -> None:
    file = config_file(tmp_path, sim, "duration_seconds: 1", name="plain")
    root = tmp_path / "out"
    code, out, err = finish(
        start(
            [script("recorder"), "--config", str(file)],
            tmp_path,
            {"RECORDER_OUTPUT_ROOT": str(root)},
        )
    )
    assert code == 0, out + err
    folder = session_folder(root)
    assert folder.name.endswith("_plain")
    assert not (folder / ".hydra").exists()
    assert db_count(folder / "recorder.db", TRADES) > 0
    assert db_rows(folder / "recorder.db", "SELECT status FROM runs") == [("completed",)]


def test_the_config_is_searched_for(sim: SimProcess, tmp_path: Path) -> None:
    """$RECORDER_CONFIG_PATH, else conf/recorder.yaml, else recorder.yaml."""
    (tmp_path / "conf").mkdir()
    config_file(tmp_path / "conf", sim, "duration_seconds: 1", name="recorder")
    env = {"RECORDER_OUTPUT_ROOT": str(tmp_path / "out")}
    env_without = {k: v for k, v in os.environ.items() if k != "RECORDER_CONFIG_PATH"}
    proc = subprocess.run(
        [script("recorder-main")],
        cwd=tmp_path,
        env={**env_without, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert session_folder(tmp_path / "out").name.endswith("_recorder")
    other = tmp_path / "elsewhere"
    other.mkdir()
    config_file(other, sim, "duration_seconds: 1", name="picked")
    env = {
        "RECORDER_OUTPUT_ROOT": str(tmp_path / "out2"),
        "RECORDER_CONFIG_PATH": str(other / "picked.yaml"),
    }
    code, out, err = finish(start([script("recorder-main")], tmp_path, env))
    assert code == 0, out + err
    assert session_folder(tmp_path / "out2").name.endswith("_picked")


@pytest.mark.parametrize(
    ("content", "mode", "line"),
    [
        ("batch_size: 0\n", 0o644, "batch_size: Input should be greater than 0 (got 0)"),
        ("bacth_size: 5\n", 0o644, "bacth_size: Extra inputs are not permitted (got 5)"),
        ("symbols: []\n", 0o644, "symbols: at least one symbol is required"),
        (
            "symbols: [BTCUSDT\n",
            0o644,
            "{file}: invalid YAML (line 2): expected ',' or ']', but got '<stream end>'",
        ),
        ("category: option\n", 0o644, None),
        (
            "database_url: mysql://u:hunter2@h/db\n",
            0o644,
            "database_url: unsupported database 'mysql': use sqlite:///PATH or postgresql://USER@HOST/DB (got 'mysql://u:***@h/db')",
        ),
        (
            "testnet: false\nnetwork:\n  rest_url: https://api-testnet.bybit.com\n"
            "  public_ws_url: wss://stream-testnet.bybit.com/v5/public/{category}\n"
            "  private_ws_url: wss://stream-testnet.bybit.com/v5/private\n",
            0o644,
            "testnet: false contradicts network.rest_url https://api-testnet.bybit.com (Bybit testnet): use network=mainnet, or leave testnet out",
        ),
        (
            "account: {api_key: k-hunter2, api_secret: s-hunter2}\n",
            0o644,
            "{file}: holds account.api_key/api_secret but others can read it (mode 0644): chmod 600 {file}",
        ),
    ],
    ids=[
        "value",
        "unknown-key",
        "empty-symbols",
        "yaml",
        "option",
        "mysql",
        "testnet",
        "readable-keys",
    ],
)
def test_a_bad_file_is_refused_in_one_line_and_leaves_no_folder(
    tmp_path: Path, content: str, mode: int, line: str | None
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(content)
    file.chmod(mode)
    root = tmp_path / "out"
    proc = subprocess.run(
        [script("recorder-main"), "--config", str(file)],
        cwd=tmp_path,
        env={**os.environ, "RECORDER_OUTPUT_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (problem,) = proc.stderr.splitlines()
    if line is not None:
        assert problem == line.format(file=file)
    else:
        assert problem.startswith("category: options are not supported")
    assert "hunter2" not in proc.stderr
    assert proc.stdout == ""
    assert not root.exists()


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [script("recorder-main"), "--config", "nope.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["no recorder config file found (looked for: nope.yaml)"]
    assert list(tmp_path.iterdir()) == []
