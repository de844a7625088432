"""The ``recorder`` console script.

Hydra composes ``configs/config.yaml`` with the command-line overrides, ``RecorderConfig``
validates the result, and ``recorder.session.run_session`` records into the run's output folder
until ``duration_seconds`` is over or SIGINT/SIGTERM arrives. Exit codes: 0 done, 1 a Hydra or
session error, 2 an invalid configuration (one line per problem on stderr, no traceback).
"""

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from recorder.config import config_from_omegaconf, is_secret_key
from recorder.errors import ConfigError
from recorder.paths import config_dir

log = logging.getLogger(__name__)

EXIT_INVALID_CONFIG = 2
SECRETS_ON_COMMAND_LINE = (
    "pass API keys through the environment (BYBIT_API_KEY, BYBIT_API_SECRET), "
    "not on the command line"
)
_MAPPING_KEY = re.compile(r"([A-Za-z_][\w.]*)\s*:")  # keys inside a value such as {api_key: x}


def main() -> None:
    """Entry point: refuse secrets on the command line, then run Hydra."""
    refused = secret_overrides(sys.argv[1:])
    if refused:
        # Checked before Hydra starts: it would write the value to .hydra/*.yaml, multirun.yaml
        # and its log before any task code runs.
        print(f"refused {', '.join(refused)}: {SECRETS_ON_COMMAND_LINE}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID_CONFIG)
    run = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
    run(_record)()


def secret_overrides(args: Sequence[str]) -> list[str]:
    """The keys of command-line overrides that would carry a secret (values are not returned).

    ``account.api_secret=x``, ``+account.api_key=x`` and ``account={api_key: x}`` are secret;
    ``account.api_key_env=MY_KEY`` (the NAME of a variable) is not.
    """
    found = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if any(is_secret_key(name) for name in (key, *_MAPPING_KEY.findall(value))):
            found.append(key)
    return found


def _record(cfg: DictConfig) -> None:
    """The Hydra task: validate, then hand over to the session (in this process)."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = config_from_omegaconf(cfg)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
            _log_to_files_only(f"invalid configuration: {problem}")
        raise SystemExit(EXIT_INVALID_CONFIG) from None
    log.info("Validated config (secrets redacted): %s", config.to_safe_json())
    # Imported here: --help, --cfg and a bad config do not need the session's dependencies.
    from recorder.session import run_session

    exit_code = run_session(config, output_dir)
    if exit_code:
        raise SystemExit(exit_code)


def _log_to_files_only(message: str) -> None:
    """Log to the run's recorder.log but not to the console, where stderr already has it."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


if __name__ == "__main__":
    main()
