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
from testkit import SimProcess, db_count, db_rows, finish, script, start_process, wait_sync

pytestmark = pytest.mark.e2e

TRADES = "SELECT count(*) FROM public_trades"
TIMEOUT_S = 60


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess("--trade-rate", "20") as process:
        yield process


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


def start(command: list[str], cwd: Path, output_root: Path) -> subprocess.Popen[str]:
    """``command`` in ``cwd``, its sessions under ``output_root`` ($RECORDER_OUTPUT_ROOT)."""
    env = {"RECORDER_OUTPUT_ROOT": str(output_root)}
    return start_process(command, cwd=cwd, env=env, stderr=subprocess.PIPE)


def run_successfully(
    command: list[str], cwd: Path, output_root: Path
) -> subprocess.CompletedProcess[str]:
    """``start`` it and wait for it to end; fail when it fails."""
    done = finish(start(command, cwd, output_root), TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


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
    proc = start([script("recorder-main"), "--config", str(file)], tmp_path, root)
    try:
        wait_sync(
            lambda: root.exists() and any(root.rglob("recorder.db")), 30, "the session folder"
        )
        folder = session_folder(root)
        wait_sync(lambda: db_count(folder / "recorder.db", TRADES) > 20, 30, "trades")
    finally:
        os.kill(proc.pid, sig)
    done = finish(proc, TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
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
    run_successfully(
        [sys.executable, "-m", "recorder.main", "--config", str(file), "--debug"], tmp_path, root
    )
    log = (session_folder(root) / "recorder.log").read_text()
    assert "[recorder.session][DEBUG] - pipeline: public " in log
    assert "[recorder.session][DEBUG] - verdict: " in log


def test_without_debug_there_is_no_debug_line(sim: SimProcess, tmp_path: Path) -> None:
    file = config_file(tmp_path, sim, "duration_seconds: 1")
    root = tmp_path / "out"
    run_successfully([script("recorder-main"), "--config", str(file)], tmp_path, root)
    assert "[DEBUG]" not in (session_folder(root) / "recorder.log").read_text()


def test_the_hydra_script_takes_a_config_file_too(sim: SimProcess, tmp_path: Path) -> None:
    file = config_file(tmp_path, sim, "duration_seconds: 1", name="plain")
    root = tmp_path / "out"
    run_successfully([script("recorder"), "--config", str(file)], tmp_path, root)
    folder = session_folder(root)
    assert folder.name.endswith("_plain")
    assert not (folder / ".hydra").exists()
    assert db_count(folder / "recorder.db", TRADES) > 0
    assert db_rows(folder / "recorder.db", "SELECT status FROM runs") == [("completed",)]


def test_the_config_is_searched_for(
    sim: SimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$RECORDER_CONFIG_PATH, else conf/recorder.yaml, else recorder.yaml."""
    (tmp_path / "conf").mkdir()
    config_file(tmp_path / "conf", sim, "duration_seconds: 1", name="recorder")
    monkeypatch.delenv("RECORDER_CONFIG_PATH", raising=False)
    run_successfully([script("recorder-main")], tmp_path, tmp_path / "out")
    assert session_folder(tmp_path / "out").name.endswith("_recorder")
    other = tmp_path / "elsewhere"
    other.mkdir()
    config_file(other, sim, "duration_seconds: 1", name="picked")
    monkeypatch.setenv("RECORDER_CONFIG_PATH", str(other / "picked.yaml"))
    run_successfully([script("recorder-main")], tmp_path, tmp_path / "out2")
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
    proc = finish(
        start([script("recorder-main"), "--config", str(file)], tmp_path, root), TIMEOUT_S
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
