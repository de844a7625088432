"""No secret reaches a log line, an output file, a saved config, the launcher's lines, a report
or the database.

The secrets: the API key and secret (a WRONG secret, so that Bybit's answers carry the key:
the simulator echoes it in ``origin_string[...]`` of REST retCode 10004, as Bybit does), and a
database password (PostgreSQL, in the URL). Each end-to-end test runs a real session, then
greps every file the session wrote, its stdout/stderr, ``recorder-report``'s output and every
row of every table for each secret, and checks that the redacted paths were really taken.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from recorder.redaction import (
    MASK,
    RedactingFilter,
    Redactor,
    install_log_redaction,
    scrub_files,
)
from testkit import (
    SIM_API_KEY,
    SIM_API_SECRET,
    SimProcess,
    finish,
    script,
    sim_account_env,
    start_process,
    wait_sync,
)

API_KEY = SIM_API_KEY
API_SECRET = SIM_API_SECRET
WRONG_SECRET = "WRONG-e2e-c4a7e09b13"
DB_PASSWORD = "PW-e2e-93d1aa7c5e"
SECRETS = (API_KEY, WRONG_SECRET, DB_PASSWORD)
TIMEOUT_S = 60


# --------------------------------------------------------------------------- unit


def test_redactor_hides_known_secrets_url_passwords_and_echoed_requests() -> None:
    redactor = Redactor()
    redactor.add("s3cr3t/+=", None, "", "ab")
    assert redactor.redact("key s3cr3t/+= and s3cr3t%2F%2B%3D") == f"key {MASK} and {MASK}"
    assert redactor.redact("ab stays: too short to hunt as bare text") == (
        "ab stays: too short to hunt as bare text"
    )
    assert redactor.redact("postgresql+psycopg://rec:ab@db:5432/x") == (
        f"postgresql+psycopg://rec:{MASK}@db:5432/x"
    )
    assert redactor.redact("error sign! origin_string[1700000000000KEY5000category=linear]") == (
        "error sign! origin_string[<redacted>]"
    )
    # as Hydra escapes an override in a multirun
    assert redactor.redact(r"postgresql\://rec\:pw-x@db/x") == rf"postgresql\://rec\:{MASK}@db/x"
    # an interpolation that names the variable holding the password is not a secret
    reference = "postgresql://rec:${oc.env:RECORDER_DB_PASSWORD}@db/x"
    assert redactor.redact(reference) == reference


def test_redaction_keeps_the_other_lines_of_a_text() -> None:
    text = "a origin_string[123KEY\nsecond line]\nthird"
    assert Redactor().redact(text) == "a origin_string[<redacted>]\nsecond line]\nthird"
    redactor = Redactor()
    redactor.add(API_KEY)
    diff = f"+url = 'postgresql://u:pw@h/db'\n+key = '{API_KEY}'\n"
    assert redactor.redact_known(diff) == f"+url = 'postgresql://u:pw@h/db'\n+key = '{MASK}'\n"


def test_the_filter_redacts_messages_arguments_and_tracebacks() -> None:
    redactor = Redactor()
    redactor.add(API_KEY)
    logger = logging.getLogger("test_secrets.filter")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key %s in an argument", API_KEY)
        try:
            raise ValueError(f"key {API_KEY} in an exception")
        except ValueError:
            logger.exception("failed with %s", "postgresql://u:" + DB_PASSWORD + "@h/db")
    finally:
        logger.removeHandler(handler)
    formatter = logging.Formatter()
    text = "\n".join(formatter.format(r) for r in records)
    assert API_KEY not in text
    assert DB_PASSWORD not in text
    assert f"key {MASK} in an argument" in text
    assert f"ValueError: key {MASK} in an exception" in text
    assert f"failed with postgresql://u:{MASK}@h/db" in text


def test_install_puts_the_filter_on_every_handler() -> None:
    root_handler = logging.StreamHandler()
    named = logging.getLogger("test_secrets.named")
    named_handler = logging.StreamHandler()
    logging.getLogger().addHandler(root_handler)
    named.addHandler(named_handler)
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent: one filter per handler
        for handler in (root_handler, named_handler, logging.lastResort):
            assert handler is not None
            assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logging.getLogger().removeHandler(root_handler)
        named.removeHandler(named_handler)


def test_scrub_files_rewrites_only_files_holding_a_secret(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.add(API_KEY)
    dirty, clean = tmp_path / "dirty.yaml", tmp_path / "clean.yaml"
    dirty.write_text(f"x: {API_KEY}\n")
    clean.write_text("x: 1\n")
    assert scrub_files([dirty, clean, tmp_path / "missing.yaml"], redactor) == [dirty]
    assert dirty.read_text() == f"x: {MASK}\n"
    assert clean.read_text() == "x: 1\n"


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess.with_account() as process:
        yield process


def with_password(url: str) -> str:
    """``postgres_url`` with ``DB_PASSWORD`` in it (the throwaway cluster trusts any)."""
    assert "://postgres@" in url
    return url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@")


def files_holding_secrets(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                if secret.encode() in data:
                    found.setdefault(secret, []).append(str(path))
    return found


def rows_holding_secrets(url: str) -> dict[str, list[str]]:
    """Every row of every table of the database, searched for each secret."""
    engine = create_engine(url)
    found: dict[str, list[str]] = {}
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    text = repr(tuple(row))
                    for secret in SECRETS:
                        if secret in text:
                            found.setdefault(secret, []).append(table.name)
    finally:
        engine.dispose()
    return found


def run_until_the_secrets_were_exercised(
    command: list[str], cwd: Path, env: dict[str, str], logs: Path
) -> subprocess.CompletedProcess[str]:
    """Start a session, wait until private auth was refused and a REST call answered 10004
    (whose ``origin_string`` holds the API key), then stop it with SIGINT."""
    proc = start_process(command, cwd=cwd, env=env, stderr=subprocess.PIPE)

    def log_text() -> str:
        return "\n".join(p.read_text(errors="replace") for p in logs.rglob("recorder.log"))

    try:
        wait_sync(lambda: "private auth failed (invalid_key)" in log_text(), 40, "a refused auth")
        wait_sync(lambda: "retCode 10004" in log_text(), 40, "a REST 10004")
    except AssertionError as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{exc}\n{out[-3000:]}\n{err[-3000:]}") from None
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    return finish(proc, TIMEOUT_S)


def assert_no_secret_anywhere(
    result: subprocess.CompletedProcess[str], outputs: Path, database_url: str, report_target: str
) -> None:
    logs = "\n".join(p.read_text(errors="replace") for p in outputs.rglob("recorder.log"))
    # the paths that carry a secret when unredacted were taken, and redacted:
    assert "origin_string[<redacted>]" in logs
    assert "private auth failed (invalid_key)" in logs
    assert files_holding_secrets(outputs) == {}
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr, secret
    assert rows_holding_secrets(database_url) == {}
    report = subprocess.run(
        [script("recorder-report"), report_target],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert report.returncode == 0, report.stderr
    assert "private auth never succeeded" in report.stdout
    for secret in SECRETS:
        assert secret not in report.stdout + report.stderr, secret


def hydra_command(sim: SimProcess, database_url: str | None, *extra: str) -> list[str]:
    return [
        script("recorder"),
        "account=env",
        *sim.recording_overrides(),
        *([f"database_url={database_url}"] if database_url else []),
        *extra,
    ]


WRONG_KEYS = sim_account_env(WRONG_SECRET)


@pytest.mark.e2e
def test_hydra_session_with_a_wrong_secret_sqlite(sim: SimProcess, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_until_the_secrets_were_exercised(
        hydra_command(sim, None, "symbols=btc", f"hydra.run.dir={run_dir}"),
        tmp_path,
        WRONG_KEYS,
        tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the run ended error
    database = f"sqlite:///{run_dir}/recorder.db"
    assert_no_secret_anywhere(result, tmp_path, database, str(run_dir))


@pytest.mark.e2e
@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_hydra_session_with_a_wrong_secret_and_a_database_password(
    sim: SimProcess, tmp_path: Path, postgres_url: str, multirun: bool
) -> None:
    url = with_password(postgres_url)
    extra = (
        ["-m", "symbols=btc,eth", f"hydra.sweep.dir={tmp_path}/sweep"]
        if multirun
        else ["symbols=btc", f"hydra.run.dir={tmp_path}/run"]
    )
    result = run_until_the_secrets_were_exercised(
        hydra_command(sim, url, *extra), tmp_path, WRONG_KEYS, tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    if multirun:
        # the launcher's lines show every job's overrides, the database URL among them
        assert re.search(r"#0 : .*database_url=\S*RECORDER_DB_PASSWORD", result.stdout)
    assert_no_secret_anywhere(result, tmp_path, url, url)


@pytest.mark.e2e
def test_plain_config_file_with_keys_and_a_database_password(
    sim: SimProcess, tmp_path: Path, postgres_url: str
) -> None:
    url = with_password(postgres_url)
    base = f"127.0.0.1:{sim.port}"
    file = tmp_path / "mine.yaml"
    file.write_text(
        "\n".join(
            [
                "symbols: [BTCUSDT]",
                f"database_url: {url}",
                "network:",
                f"  rest_url: http://{base}",
                f"  public_ws_url: ws://{base}/v5/public/{{category}}",
                f"  private_ws_url: ws://{base}/v5/private",
                "account:",
                f"  api_key: {API_KEY}",
                f"  api_secret: {WRONG_SECRET}",
                "flush_interval: 0.3",
                "health_log_interval: 0.5",
                "rest:",
                "  timeout_seconds: 1",
                "  max_retries: 1",
            ]
        )
        + "\n"
    )
    file.chmod(0o600)
    outputs = tmp_path / "out"
    env_without_keys = {"RECORDER_OUTPUT_ROOT": str(outputs)}
    result = run_until_the_secrets_were_exercised(
        [script("recorder-main"), "--config", str(file)], tmp_path, env_without_keys, outputs
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_secret_anywhere(result, outputs, url, url)
