"""The plain-YAML front end: ``recorder --config FILE``, ``recorder-main``, ``python -m recorder.main``.

    recorder-main --config my.yaml --debug
    python -m recorder.main --config my.yaml
    recorder --config my.yaml                 # the same, through the Hydra command's script

Reads the file with ``recorder.config.load_config`` (without ``--config``: ``$RECORDER_CONFIG_PATH``,
else ``conf/recorder.yaml``, else ``recorder.yaml``; see ``apps/recorder/conf/recorder.yaml.example``)
and runs the same session code as the Hydra ``recorder`` command (``recorder.session``) into the
same kind of folder: ``$RECORDER_OUTPUT_ROOT`` (default ``outputs``)``/<date>/<time>_<file stem>/``
with ``recorder.db``, ``recorder.log``, ``session.json`` and ``health.json``. No secret is written:
the file itself is not copied, ``session.json`` holds the validated config without secrets.

An invalid file is refused before any folder exists, with one line per problem and exit code 2.
Exit codes are the Hydra command's: 0 completed, 1 the run ended ``error``, 2 an invalid
configuration, 3 the database cannot be used, 4 the disk guard stopped the session (free space
below ``disk.stop_free_mb``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from recorder.config import CONFIG_PATH_ENV, find_config_file, load_config
from recorder.dead_runs import outputs_root
from recorder.errors import ConfigError
from recorder.redaction import install_log_redaction
from recorder.session import record_session

log = logging.getLogger("recorder.main")

EXIT_INVALID_CONFIG = 2
EXIT_INTERRUPTED = 130
LOG_FILE = "recorder.log"
#: the same lines as the Hydra command's job log
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
DEBUG_LOGGERS = ("recorder", "bybit_adapter", "event_saver", "grid_db")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--config PATH`` and ``--debug``."""
    parser = argparse.ArgumentParser(
        prog="recorder-main",
        description=(
            "Record Bybit V5 market data with the settings of a plain YAML file "
            "(the Hydra command `recorder` takes overrides instead)."
        ),
        epilog=(
            f"Without --config: ${CONFIG_PATH_ENV}, else conf/recorder.yaml, else recorder.yaml. "
            "Output: $RECORDER_OUTPUT_ROOT (default ./outputs)/<date>/<time>_<file stem>/. "
            "Exit codes: 0 completed, 1 the run ended error, 2 invalid configuration, "
            "3 database unusable, 4 stopped: disk almost full (disk.stop_free_mb)."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="the YAML config file (see apps/recorder/conf/recorder.yaml.example)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="DEBUG logs of the recorder's own loggers"
    )
    return parser.parse_args(argv)


def new_output_dir(name: str, now: datetime | None = None) -> Path:
    """``<outputs root>/<YYYY-MM-DD>/<HH-MM-SS-ffffff>_<name>`` (not created)."""
    now = now or datetime.now()
    return outputs_root() / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S-%f')}_{name}"


async def main(config_path: str | Path | None = None, debug: bool = False) -> int:
    """Validate the file, then record one session into a new folder; the exit code."""
    try:
        file = find_config_file(config_path).resolve()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID_CONFIG
    output_dir = new_output_dir(file.stem)
    try:
        config = load_config(file, output_dir=output_dir)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID_CONFIG
    output_dir.mkdir(parents=True)
    handlers = _configure_logging(output_dir, debug)
    try:
        config = config.with_database_in(output_dir)
        log.info("config %s (secrets redacted): %s", file, config.to_safe_json())
        if config.account is not None:
            log.info("private streams: keys from %s", config.account.keys_from)
        command = ["recorder", "--config", str(file), *(["--debug"] if debug else [])]
        return await record_session(config, output_dir, command)
    finally:
        _remove(handlers)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console script ``recorder-main`` (and ``recorder --config FILE``)."""
    args = parse_args(argv)
    try:
        code = asyncio.run(main(args.config, args.debug))
    except KeyboardInterrupt:  # before the session's own signal handlers were installed
        code = EXIT_INTERRUPTED
    raise SystemExit(code)


def _configure_logging(output_dir: Path, debug: bool) -> list[logging.Handler]:
    formatter = logging.Formatter(LOG_FORMAT)
    console = logging.StreamHandler(sys.stdout)
    file = logging.FileHandler(output_dir / LOG_FILE, encoding="utf-8")
    root = logging.getLogger()
    for handler in (console, file):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.NOTSET)
    install_log_redaction()
    return [console, file]


def _remove(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    cli()
