"""The ``recorder`` console script up to ``run_session``: overrides, errors, secrets, output dirs.

Most tests run the real console script. The tests that need a session run ``recorder.app.main``
through a small driver that installs a stub ``recorder.session`` module first (it records what
it was given in ``session.json``, and the process's log handlers and levels).
"""

import json
import logging
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from recorder.app import SECRETS_ON_COMMAND_LINE, secret_overrides

RECORDER = Path(sys.executable).with_name("recorder")
TIMEOUT_S = 60
SECRET = "XYZ-not-a-real-secret-4242"

DRIVER = """
import json, logging, os, sys, types

def run_session(config, output_dir):
    handlers = [h for h in logging.getLogger().handlers]
    record = {
        "config": config.redacted_dict(),
        "output_dir": str(output_dir),
        "pid": os.getpid(),
        "recorder_log_level": logging.getLogger("recorder").getEffectiveLevel(),
        "handlers": len(handlers),
        "handlers_redacting": sum(
            any(type(f).__name__ == "RedactingFilter" for f in h.filters) for h in handlers
        ),
        "database_url_is_real": config.database_url == os.environ.get("EXPECTED_DATABASE_URL"),
    }
    logging.getLogger("recorder.stub").info("stub session, database %s", config.database_url)
    (output_dir / "session.json").write_text(json.dumps(record))
    return int(os.environ.get("STUB_EXIT_CODE", "0"))

stub = types.ModuleType("recorder.session")
stub.run_session = run_session
sys.modules["recorder.session"] = stub

from recorder.app import main

sys.argv[0] = "recorder"
main()
"""


def recorder(
    *args: str, cwd: Path, env: dict[str, str] | None = None, driver: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(driver)] if driver else [str(RECORDER)]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text in p.read_text(errors="replace")]


def assert_refused(result: subprocess.CompletedProcess[str], *lines: str) -> None:
    """Exit code 2, exactly these lines on stderr, nothing on stdout, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == list(lines)
    assert result.stdout == ""


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["account.api_secret=x"], ["account.api_secret"]),
        (["account=env", "+account.api_key=x"], ["account.api_key"]),
        (["++account.api_key=x"], ["account.api_key"]),
        (["account={api_key_env: A, api_secret: x}"], ["account"]),
        (["-m", "symbols=btc,eth", "account.api_secret=a,b"], ["account.api_secret"]),
        (["hydra.job.env_set.BYBIT_API_SECRET=x"], ["hydra.job.env_set.BYBIT_API_SECRET"]),
        (["account=env", "account.api_key_env=MY_KEY", "account.api_secret_env=MY_SECRET"], []),
        (["network.rest_url=https://x", "--cfg", "job", "batch_size=5"], []),
    ],
)
def test_secret_overrides(args: list[str], refused: list[str]) -> None:
    assert secret_overrides(args) == refused


# --------------------------------------------------------------------------- console script


@pytest.mark.e2e
def test_invalid_value_exits_2_with_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    result = recorder("batch_size=-1", cwd=tmp_path)
    assert_refused(result, "batch_size: Input should be greater than 0 (got -1)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_several_problems_one_line_each(tmp_path: Path) -> None:
    result = recorder(
        "batch_size=0",
        "category=futures",
        "+bogus=1",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert_refused(
        result,
        "category: must be linear, spot or inverse (got 'futures')",
        "batch_size: Input should be greater than 0 (got 0)",
        "bogus: Extra inputs are not permitted (got 1)",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["foo=1"], "foo: unknown key"),
        (["bacth_size=5"], "bacth_size: unknown key; did you mean batch_size?"),
        (["symbols=[]"], "symbols: at least one symbol is required"),
        (
            ["symbols=doge"],
            "symbols: no option 'doge' (options: btc, btc_eth, custom, eth, majors; or a list "
            "of your own: symbols=[SOLUSDT,XRPUSDT])",
        ),
        (
            ["database_url=mysql://rec:hunter2@db/x"],
            "database_url: unsupported database 'mysql': use sqlite:///PATH or "
            "postgresql://USER@HOST/DB (got 'mysql://rec:***@db/x')",
        ),
        (
            ["category=option"],
            "category: options are not supported: Bybit keys option trades by base coin "
            "(publicTrade.BTC), not by contract, and the recorder would store none; use "
            "linear, spot or inverse (got 'option')",
        ),
        (
            ["network=testnet", "testnet=false"],
            "testnet: false contradicts network.rest_url https://api-testnet.bybit.com "
            "(Bybit testnet): use network=mainnet, or leave testnet out",
        ),
        (
            ["network=mainnet", "testnet=true"],
            "testnet: true contradicts network.rest_url https://api.bybit.com (Bybit mainnet): "
            "use network=testnet, or leave testnet out",
        ),
        (["--cfg", "job", "batch_size=0"], "batch_size: Input should be greater than 0 (got 0)"),
        (["--cfg", "job", "foo=1"], "foo: unknown key"),
        (
            ["hydra.job.env_set.MY_KEY=abc"],
            "refused hydra.job.env_set.MY_KEY: set environment variables in your shell, not "
            "with hydra.job.env_set (Hydra saves its values in .hydra/hydra.yaml)",
        ),
    ],
    ids=[
        "unknown-key",
        "typo",
        "empty-symbols",
        "unknown-option",
        "mysql",
        "option",
        "testnet-false",
        "testnet-true",
        "cfg-value",
        "cfg-key",
        "env-set",
    ],
)
def test_a_refused_command_is_one_line_exit_2_and_no_folder(
    tmp_path: Path, args: list[str], line: str
) -> None:
    env = {"RECORDER_OUTPUT_ROOT": str(tmp_path / "out")}
    result = recorder(*args, cwd=tmp_path, env=env)
    assert_refused(result, line)
    assert "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_missing_api_keys_are_named(tmp_path: Path) -> None:
    env = {"BYBIT_API_KEY": SECRET, "BYBIT_API_SECRET": ""}
    result = recorder("account=env", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "account: environment variable not set: BYBIT_API_SECRET (export the API key pair, or use account=none)"
    ]
    assert files_containing(tmp_path, SECRET) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [
        [f"account.api_secret={SECRET}"],
        ["account=env", f"+account.api_key={SECRET}"],
        [f"account={{api_key_env: A, api_secret_env: B, api_secret: {SECRET}}}"],
        ["-m", "symbols=btc,eth", f"+account.api_secret={SECRET}"],
        ["--cfg", "job", f"+account.api_secret={SECRET}"],
    ],
    ids=["override", "add", "mapping", "multirun", "cfg"],
)
def test_secrets_on_the_command_line_are_refused_before_anything_is_written(
    tmp_path: Path, args: list[str]
) -> None:
    result = recorder(
        *args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path
    )
    assert result.returncode == 2
    assert SECRETS_ON_COMMAND_LINE in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert files_containing(tmp_path, SECRET) == []


@pytest.mark.e2e
def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    env = {"BYBIT_API_KEY": SECRET + "-key", "BYBIT_API_SECRET": SECRET}
    result = recorder(
        "--cfg", "job", "symbols=majors", "network=testnet", "account=env", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    assert list(tmp_path.iterdir()) == []
    cfg = yaml.safe_load(result.stdout)
    assert cfg["symbols"][:2] == ["BTCUSDT", "ETHUSDT"]
    assert cfg["testnet"] is True
    assert cfg["account"] == {"api_key_env": "BYBIT_API_KEY", "api_secret_env": "BYBIT_API_SECRET"}
    assert cfg["database_url"] is None  # recorder.db in the session folder
    assert "hydra" not in cfg


@pytest.mark.e2e
def test_help_lists_the_groups(tmp_path: Path) -> None:
    result = recorder("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for shown in (
        "account: env, none",
        "network: local, mainnet, testnet",
        "symbols: btc, btc_eth, custom, eth, majors",
        "writer: bulk, default, low_latency",
        "BYBIT_API_KEY",
        "$RECORDER_OUTPUT_ROOT",
        "recorder symbols=[SOLUSDT,XRPUSDT]",
        "recorder --config FILE [--debug]",
    ):
        assert shown in result.stdout, shown


@pytest.mark.e2e
def test_output_dirs_are_under_recorder_output_root(tmp_path: Path, driver: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {"RECORDER_OUTPUT_ROOT": str(tmp_path / "out")}
    result = recorder("symbols=btc_eth", cwd=cwd, env=env, driver=driver)
    assert result.returncode == 0, result.stderr
    (day,) = (tmp_path / "out").iterdir()
    (run_dir,) = day.iterdir()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", day.name)
    assert date.fromisoformat(day.name) <= date.today()
    # microseconds keep two sessions started in the same second apart
    assert re.fullmatch(r"\d{2}-\d{2}-\d{2}-\d{6}_btc_eth", run_dir.name)
    assert (run_dir / "recorder.log").is_file()
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert list(cwd.iterdir()) == []


# --------------------------------------------------------------------------- through run_session


@pytest.mark.e2e
def test_main_hands_the_validated_config_to_run_session(tmp_path: Path, driver: Path) -> None:
    run_dir = tmp_path / "run"
    result = recorder(
        "symbols=btc_eth", "batch_size=7", f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "session.json").read_text())
    assert record["output_dir"] == str(run_dir)
    assert record["config"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert record["config"]["batch_size"] == 7
    assert record["config"]["database_url"] == f"sqlite:///{run_dir}/recorder.db"
    log = (run_dir / "recorder.log").read_text()
    assert "Validated config (secrets redacted): {" in log
    assert '"batch_size": 7' in log


@pytest.mark.e2e
def test_run_session_exit_code_is_the_process_exit_code(tmp_path: Path, driver: Path) -> None:
    result = recorder(
        f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, driver=driver, env={"STUB_EXIT_CODE": "3"}
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_account_keys_reach_run_session_but_no_file(tmp_path: Path, driver: Path) -> None:
    env = {"BYBIT_API_KEY": SECRET + "-key", "BYBIT_API_SECRET": SECRET}
    run_dir = tmp_path / "run"
    result = recorder(
        "account=env", f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver, env=env
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "session.json").read_text())
    assert record["config"]["account"] == {
        "api_key_env": "BYBIT_API_KEY",
        "api_secret_env": "BYBIT_API_SECRET",
    }
    assert files_containing(tmp_path, SECRET) == []
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.e2e
def test_multirun_starts_one_process_per_job(tmp_path: Path, driver: Path) -> None:
    env = {"RECORDER_OUTPUT_ROOT": str(tmp_path / "out")}
    result = recorder("-m", "symbols=btc,eth", cwd=tmp_path, driver=driver, env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"#0 : symbols=btc \(pid \d+\)", result.stdout)
    assert re.search(r"#1 : symbols=eth \(pid \d+\)", result.stdout)
    (sweep_dir,) = (tmp_path / "out").glob("*/*_multirun")
    assert re.fullmatch(r"\d{2}-\d{2}-\d{2}-\d{6}_multirun", sweep_dir.name)
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0_btc", "1_eth", "multirun.yaml"]
    records = [
        json.loads((sweep_dir / job / "session.json").read_text()) for job in ("0_btc", "1_eth")
    ]
    assert [r["config"]["symbols"] for r in records] == [["BTCUSDT"], ["ETHUSDT"]]
    assert records[0]["pid"] != records[1]["pid"]
    assert (sweep_dir / "1_eth" / "recorder.log").is_file()


@pytest.mark.e2e
def test_multirun_with_invalid_jobs_is_refused_before_any_job_starts(tmp_path: Path) -> None:
    result = recorder(
        "-m",
        "batch_size=-1,5",
        f"hydra.sweep.dir={tmp_path}/sweep",
        "duration_seconds=-1",
        cwd=tmp_path,
    )
    assert_refused(
        result,
        "job #0 (batch_size=-1): batch_size: Input should be greater than 0 (got -1)",
        "job #0 (batch_size=-1): duration_seconds: Input should be greater than 0 (got -1)",
    )
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- rewrites


@pytest.mark.e2e
def test_symbols_of_your_own_on_the_command_line(tmp_path: Path, driver: Path) -> None:
    run_dir = tmp_path / "run"
    result = recorder(
        "symbols=[SOLUSDT,XRPUSDT]", f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "session.json").read_text())
    assert record["config"]["symbols"] == ["SOLUSDT", "XRPUSDT"]
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert overrides == ["symbols=custom", "custom_symbols=[SOLUSDT,XRPUSDT]"]
    # a single symbol of your own, too
    result = recorder("symbols=SOLUSDT", f"hydra.run.dir={run_dir}2", cwd=tmp_path, driver=driver)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run2" / "session.json").read_text())["config"]["symbols"] == [
        "SOLUSDT"
    ]


@pytest.mark.e2e
def test_testnet_true_records_from_testnet(tmp_path: Path, driver: Path) -> None:
    run_dir = tmp_path / "run"
    result = recorder("testnet=true", f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver)
    assert result.returncode == 0, result.stderr
    config = json.loads((run_dir / "session.json").read_text())["config"]
    assert config["testnet"] is True
    assert config["network"]["rest_url"] == "https://api-testnet.bybit.com"
    assert (
        config["network"]["public_ws_url"] == "wss://stream-testnet.bybit.com/v5/public/{category}"
    )


@pytest.mark.e2e
def test_debug_turns_the_recorders_loggers_to_debug(tmp_path: Path, driver: Path) -> None:
    for args, level in (([], logging.INFO), (["--debug"], logging.DEBUG)):
        run_dir = tmp_path / f"run{level}"
        result = recorder(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver)
        assert result.returncode == 0, result.stderr
        record = json.loads((run_dir / "session.json").read_text())
        assert record["recorder_log_level"] == level


@pytest.mark.e2e
def test_every_log_handler_of_a_job_redacts(tmp_path: Path, driver: Path) -> None:
    run_dir = tmp_path / "run"
    result = recorder(f"hydra.run.dir={run_dir}", cwd=tmp_path, driver=driver)
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "session.json").read_text())
    assert record["handlers"] >= 2  # Hydra's console and its recorder.log
    assert record["handlers_redacting"] == record["handlers"]


@pytest.mark.e2e
@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_a_database_password_reaches_the_session_but_no_file_and_no_line(
    tmp_path: Path, driver: Path, multirun: bool
) -> None:
    password = "pw-" + SECRET
    url = f"postgresql://rec:{password}@127.0.0.1:1/bybit"
    env = {"RECORDER_OUTPUT_ROOT": str(tmp_path / "out"), "EXPECTED_DATABASE_URL": url}
    args = ["-m", "symbols=btc,eth"] if multirun else []
    result = recorder(*args, f"database_url={url}", cwd=tmp_path, env=env, driver=driver)
    assert result.returncode == 0, result.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("session.json")]
    assert len(records) == (2 if multirun else 1)
    for record in records:
        assert record["database_url_is_real"] is True  # the session got the password
        assert record["config"]["database_url"] == "postgresql://rec:***@127.0.0.1:1/bybit"
    assert files_containing(tmp_path, password) == []
    assert password not in result.stdout + result.stderr
    # the saved overrides name the variable (Hydra escapes them in a multirun)
    for saved in (tmp_path / "out").rglob("overrides.yaml"):
        (override,) = [o for o in yaml.safe_load(saved.read_text()) if "database_url" in o]
        unescaped = re.sub(r"\\(.)", r"\1", override)
        assert (
            unescaped
            == "database_url=postgresql://rec:${oc.env:RECORDER_DB_PASSWORD}@127.0.0.1:1/bybit"
        )
    assert "stub session, database postgresql://rec:***@127.0.0.1:1/bybit" in "\n".join(
        p.read_text() for p in (tmp_path / "out").rglob("recorder.log")
    )
