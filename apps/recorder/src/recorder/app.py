"""The ``recorder`` console script.

Hydra composes ``configs/config.yaml`` with the command-line overrides, ``RecorderConfig``
validates the result, and ``recorder.session.run_session`` records into the run's output folder
until ``duration_seconds`` is over or SIGINT/SIGTERM arrives.

Before Hydra starts (it would write ``.hydra/*.yaml`` and a log first), ``preflight``:

* refuses secrets on the command line (API keys, ``hydra.job.env_set.*``);
* rewrites what Hydra's grammar cannot say: ``symbols=[SOLUSDT,XRPUSDT]`` becomes
  ``symbols=custom custom_symbols=[...]``; ``testnet=true`` without ``network=`` also selects
  ``network=testnet``; a password in ``database_url`` moves to ``$RECORDER_DB_PASSWORD`` (the
  override then says ``${oc.env:RECORDER_DB_PASSWORD}``), so no file holds it;
* composes and validates every job the command would run (``--cfg`` too), so a bad key or value
  is refused with one line per problem, exit code 2, and no output folder.

``recorder --config FILE [--debug]`` runs the plain-YAML front end instead (``recorder.main``).

Exit codes: 0 done, 1 the session ended ``error`` (or a Hydra failure), 2 an invalid
configuration, 3 the database cannot be used, 4 the disk guard stopped the session (free space
below ``disk.stop_free_mb``).
"""

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from recorder.config import (
    CUSTOM_SYMBOLS_KEY,
    DB_PASSWORD_ENV,
    compose_config,
    config_from_omegaconf,
    is_secret_key,
)
from recorder.errors import ConfigError
from recorder.paths import config_dir
from recorder.redaction import SECRETS, install_log_redaction, redact, scrub_files

log = logging.getLogger(__name__)

EXIT_INVALID_CONFIG = 2
SECRETS_ON_COMMAND_LINE = (
    "pass API keys through the environment (BYBIT_API_KEY, BYBIT_API_SECRET), "
    "not on the command line"
)
ENV_SET_REFUSED = (
    "set environment variables in your shell, not with hydra.job.env_set "
    "(Hydra saves its values in .hydra/hydra.yaml)"
)
#: the loggers ``--debug`` turns to DEBUG
DEBUG_LOGGERS = ("recorder", "bybit_adapter", "event_saver", "grid_db")
#: more jobs than this in one multirun: only the first ones are checked before Hydra starts
MAX_JOBS_CHECKED = 64
_MAPPING_KEY = re.compile(r"([A-Za-z_][\w.]*)\s*:")  # keys inside a value such as {api_key: x}
_DB_URL = re.compile(
    r"^(?P<key>[+~]*database_url=)(?P<quote>['\"]?)(?P<scheme>[A-Za-z][\w+.-]*://)"
    r"(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@(?P<rest>.*)$"
)
_SYMBOL_LIKE = re.compile(r"[A-Z0-9][A-Z0-9-]*")


def main() -> None:
    """Entry point: ``--config FILE`` runs the plain-YAML front end; otherwise check, then Hydra."""
    argv = sys.argv[1:]
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv):
        from recorder.main import cli

        cli(argv)
        return
    plan = preflight(argv)
    for problem in plan.problems:
        print(problem, file=sys.stderr)
    if plan.problems:
        raise SystemExit(EXIT_INVALID_CONFIG)
    os.environ.update(plan.environment)
    sys.argv = [sys.argv[0], *plan.argv]
    run = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
    run(_record)()


# --------------------------------------------------------------------------- preflight


@dataclass
class Preflight:
    """What ``main`` hands to Hydra: the rewritten arguments, the environment to set, or the
    problems that refuse the command (one line each)."""

    argv: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def preflight(argv: Sequence[str]) -> Preflight:
    """Check and rewrite a ``recorder`` command line before Hydra sees it (see module doc)."""
    argv = list(argv)
    if "--debug" in argv:
        argv = [arg for arg in argv if arg != "--debug"]
        argv.append(f"hydra.verbose=[{','.join(DEBUG_LOGGERS)}]")
    # Intermixed: `recorder symbols=btc -m` works, which Hydra's own parsing refuses; Hydra
    # then gets its options first. A usage error is argparse's (exit 2), printed once.
    args = _hydra_parser().parse_intermixed_args(argv)
    if args.help or args.hydra_help:
        return Preflight(argv)
    commands = [args.run, args.cfg is not None, args.multirun, args.shell_completion, args.info]
    if sum(bool(c) for c in commands) > 1:
        return Preflight(argv, problems=["give only one of --run, --multirun, --cfg, --info"])
    if args.resolve and args.cfg is None:
        return Preflight(argv, problems=["--resolve goes with --cfg"])
    if args.info or args.shell_completion:
        return Preflight(argv)
    overrides: list[str] = list(args.overrides)
    refused = secret_overrides(overrides)
    if refused:
        return Preflight(
            argv, problems=[f"refused {', '.join(refused)}: {SECRETS_ON_COMMAND_LINE}"]
        )
    env_set = [o.split("=", 1)[0].lstrip("+~") for o in overrides if _is_env_set(o)]
    if env_set:
        return Preflight(argv, problems=[f"refused {', '.join(env_set)}: {ENV_SET_REFUSED}"])
    rewritten, environment, problems = _rewrite(overrides)
    if problems:
        return Preflight(argv, problems=problems)
    if args.resolve and environment:
        return Preflight(
            argv, problems=["--resolve would print the database password: leave it out"]
        )
    if args.config_path is None:  # -cp is Hydra's own business: the task validates then
        with _environment(environment):
            problems = _validate(rewritten, args)
        if problems:
            return Preflight(argv, problems=problems)
    options = list(argv)  # Hydra's own options (and their values), in their order
    for override in overrides:
        options.remove(override)
    if args.cfg is not None:
        environment = {}  # --cfg prints the config: it never needs the password itself
    return Preflight([*options, *rewritten], environment)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def _is_env_set(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "hydra.job.env_set" or key.startswith("hydra.job.env_set.")


def _hydra_parser() -> argparse.ArgumentParser:
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def _rewrite(overrides: Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """(overrides as Hydra gets them, environment to set, problems)."""
    out: list[str] = []
    passwords: set[str] = set()
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    for override in overrides:
        key, sep, value = override.partition("=")
        bare = key.lstrip("+~")
        if sep and bare == "symbols" and _is_symbol_list(value):
            value = value if value.startswith("[") else f"[{value}]"
            out += ["symbols=custom", f"{CUSTOM_SYMBOLS_KEY}={value}"]
            continue
        match = _DB_URL.match(override)
        if match and not match["password"].startswith("${"):
            passwords.add(match["password"])
            out.append(
                f"{match['key']}{match['quote']}{match['scheme']}{match['user']}:"
                f"${{oc.env:{DB_PASSWORD_ENV}}}@{match['rest']}"
            )
            continue
        out.append(override)
    if "testnet" in keys and "network" not in keys:
        value = next(o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "testnet")
        if value.strip().lower() == "true":
            out.append("network=testnet")
    if len(passwords) > 1:
        return (
            out,
            {},
            [f"database_url: one password per command line (put it in ${DB_PASSWORD_ENV})"],
        )
    environment = {DB_PASSWORD_ENV: passwords.pop()} if passwords else {}
    SECRETS.add(*environment.values())
    return out, environment, []


def _is_symbol_list(value: str) -> bool:
    """``[SOLUSDT,XRPUSDT]`` or a single ``SOLUSDT``: symbols, not options of the group."""
    if value.startswith("["):
        return True
    return bool(_SYMBOL_LIKE.fullmatch(value)) and value.upper() == value and "," not in value


def _validate(overrides: list[str], args: argparse.Namespace) -> list[str]:
    """Compose and validate each job the command would run; the problems, one line each."""
    jobs = _jobs(overrides, multirun=bool(args.multirun))
    with tempfile.TemporaryDirectory(prefix="recorder-check-") as scratch:
        seen: set[str] = set()
        problems: list[str] = []
        for index, job in enumerate(jobs[:MAX_JOBS_CHECKED]):
            try:
                compose_config(
                    job,
                    output_dir=Path(scratch) / "run",
                    config_name=args.config_name or "config",
                    extra_config_dir=args.config_dir,
                )
            except ConfigError as exc:
                swept = [o for o in job if not all(o in other for other in jobs)]
                prefix = f"job #{index} ({' '.join(swept)}): " if len(jobs) > 1 else ""
                for problem in exc.problems:
                    if problem not in seen:
                        seen.add(problem)
                        problems.append(redact(prefix + problem) if prefix else problem)
            except FileNotFoundError as exc:
                return [str(exc)]
        return problems


def _jobs(overrides: list[str], *, multirun: bool) -> list[list[str]]:
    """The overrides of every job (one job unless a multirun sweeps)."""
    if not multirun and not any(o.startswith("hydra.mode=MULTIRUN") for o in overrides):
        return [overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException:
        return [overrides]  # compose reports the unparsable override in one line
    return [list(job) for batch in batches for job in batch]


# --------------------------------------------------------------------------- the Hydra task


def _record(cfg: DictConfig) -> None:
    """The Hydra task: validate, then hand over to the session (in this process)."""
    install_log_redaction()
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = config_from_omegaconf(cfg)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
            _log_to_files_only(f"invalid configuration: {problem}")
        raise SystemExit(EXIT_INVALID_CONFIG) from None
    for path in scrub_files(_saved_configs(output_dir)):
        log.warning("removed a secret from %s", path)
    config = config.with_database_in(output_dir)
    log.info("Validated config (secrets redacted): %s", config.to_safe_json())
    try:
        # Imported here: --help, --cfg and a bad config do not need the session's dependencies.
        from recorder.session import run_session

        exit_code = run_session(config, output_dir)
    except Exception:
        # Logged (redacted) here, rather than printed by Hydra as it is.
        log.exception("the session failed")
        _exit(1)
    if exit_code:
        _exit(exit_code)


def _exit(code: int) -> NoReturn:
    raise SystemExit(code)


def _saved_configs(output_dir: Path) -> Iterator[Path]:
    yield from (output_dir / ".hydra").glob("*.yaml")
    with contextlib.suppress(OSError):
        yield from output_dir.parent.glob("multirun.yaml")


def _log_to_files_only(message: str) -> None:
    """Log to the run's recorder.log but not to the console, where stderr already has it."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


if __name__ == "__main__":
    main()
