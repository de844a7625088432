"""The validated configuration of a recording session.

The values live in YAML only: the Hydra groups under the repo's ``configs/`` (see
``recorder.paths.config_dir``). These pydantic models declare no defaults; they check what
Hydra (or ``load_config``) composed and turn it into a frozen, typed ``RecorderConfig``.

Secrets never appear in YAML, on the command line or in a dump: ``account`` holds the *names* of
two environment variables, and ``AccountConfig`` reads their values into ``SecretStr`` when it is
validated.
"""

import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recorder.errors import ConfigError
from recorder.paths import config_dir

__all__ = [
    "CONFIG_PATH_ENV",
    "AccountConfig",
    "Category",
    "ConnectionConfig",
    "NetworkConfig",
    "RecorderConfig",
    "RestConfig",
    "compose_config",
    "config_from_omegaconf",
    "is_secret_key",
    "load_config",
    "validate_config",
]

CONFIG_PATH_ENV = "RECORDER_CONFIG_PATH"
# Searched, relative to the current directory, when load_config() gets no path and
# $RECORDER_CONFIG_PATH is unset.
DEFAULT_CONFIG_FILES = (Path("conf/recorder.yaml"), Path("recorder.yaml"))

Category = Literal["linear", "spot", "inverse", "option"]

# A key that may hold a secret. `*_env` keys hold only the NAME of an environment variable.
_SECRET_KEY = re.compile(r"(^|_)(secret|password|passwd|passphrase|token|api_?key)(_|$)")
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_secret_key(key: str) -> bool:
    """True when the last part of a dotted key looks like it holds a credential.

    >>> is_secret_key("account.api_secret"), is_secret_key("account.api_secret_env")
    (True, False)
    """
    name = key.rsplit(".", 1)[-1].lower()
    return not name.endswith("_env") and _SECRET_KEY.search(name) is not None


def _check_symbol(symbol: str) -> str:
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} must be upper-case letters and digits, e.g. BTCUSDT")
    return symbol


def _check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def _url_checker(*schemes: str) -> AfterValidator:
    def check(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"must be a {' or '.join(schemes)} URL")
        return url

    return AfterValidator(check)


Symbol = Annotated[str, AfterValidator(_check_symbol)]
EnvVarName = Annotated[str, AfterValidator(_check_env_name)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(gt=0)]
HttpUrl = Annotated[str, _url_checker("http", "https")]
WsUrl = Annotated[str, _url_checker("ws", "wss")]


class _Model(BaseModel):
    # hide_input_in_errors: pydantic's own message would otherwise echo the offending value.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class NetworkConfig(_Model):
    """Bybit endpoints (group ``network/``)."""

    rest_url: HttpUrl
    public_ws_url: WsUrl  # contains "{category}"
    private_ws_url: WsUrl

    @field_validator("public_ws_url")
    @classmethod
    def _has_category_placeholder(cls, url: str) -> str:
        try:
            filled = url.format(category="linear")
        except (KeyError, IndexError, ValueError):
            raise ValueError("the only placeholder allowed is {category}") from None
        if filled == url:
            raise ValueError(
                "must contain {category}, e.g. wss://stream.bybit.com/v5/public/{category}"
            )
        return url

    def public_ws_url_for(self, category: Category) -> str:
        """The public stream URL of one category."""
        return self.public_ws_url.format(category=category)


class ConnectionConfig(_Model):
    """WebSocket keep-alive and reconnect timing (key ``connection``)."""

    ping_interval_seconds: Seconds
    pong_timeout_seconds: Seconds
    stall_timeout_seconds: Seconds  # no message at all for this long -> reconnect
    reconnect_initial_delay_seconds: Seconds
    reconnect_max_delay_seconds: Seconds
    max_connects_per_5min: Annotated[int, Field(ge=1, le=500)]

    @field_validator("reconnect_max_delay_seconds")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("reconnect_initial_delay_seconds")
        if initial is not None and value < initial:
            raise ValueError(f"must be >= reconnect_initial_delay_seconds ({initial})")
        return value


class RestConfig(_Model):
    """REST timeouts and retry budget (key ``rest``)."""

    timeout_seconds: Seconds
    max_retries: Annotated[int, Field(ge=0, le=20)]


class AccountConfig(_Model):
    """Names of the environment variables holding the API key pair (group ``account/``).

    The values are read when the model is validated and are only reachable through the
    ``api_key`` / ``api_secret`` properties: they are not fields, so they never appear in
    ``model_dump()``, ``repr()`` or a validation error, and YAML cannot set them.
    """

    api_key_env: EnvVarName
    api_secret_env: EnvVarName
    _api_key: SecretStr = PrivateAttr()
    _api_secret: SecretStr = PrivateAttr()

    @model_validator(mode="after")
    def _read_environment(self) -> Self:
        names = (self.api_key_env, self.api_secret_env)
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise ValueError(
                f"environment variable{'s' if len(missing) > 1 else ''} not set: "
                f"{', '.join(missing)} (export the API key pair, or use account=none)"
            )
        self._api_key = SecretStr(os.environ[self.api_key_env])
        self._api_secret = SecretStr(os.environ[self.api_secret_env])
        return self

    @property
    def api_key(self) -> SecretStr:
        return self._api_key

    @property
    def api_secret(self) -> SecretStr:
        return self._api_secret


class RecorderConfig(_Model):
    """Everything a recording session needs; see ``configs/config.yaml`` for the meaning."""

    symbols: tuple[Symbol, ...]
    category: Category
    database_url: str
    testnet: bool
    batch_size: Count
    flush_interval: Seconds
    max_buffer_rows: Count
    gap_threshold_seconds: Seconds
    health_log_interval: Seconds
    duration_seconds: Seconds | None  # None: until SIGINT/SIGTERM
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None  # None: no Prometheus endpoint
    account: AccountConfig | None
    network: NetworkConfig
    connection: ConnectionConfig
    rest: RestConfig

    @field_validator("symbols")
    @classmethod
    def _some_and_unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if not symbols:
            raise ValueError("at least one symbol is required")
        duplicates = sorted(symbol for symbol, count in Counter(symbols).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate symbols: {', '.join(duplicates)}")
        return symbols

    @field_validator("database_url")
    @classmethod
    def _looks_like_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError("must be an SQLAlchemy URL such as sqlite:///path/to/recorder.db")
        return url

    @field_validator("max_buffer_rows")
    @classmethod
    def _holds_a_batch(cls, value: int, info: ValidationInfo) -> int:
        batch_size = info.data.get("batch_size")
        if batch_size is not None and value < batch_size:
            raise ValueError(f"must be >= batch_size ({batch_size})")
        return value

    @property
    def public_ws_url_for_category(self) -> str:
        """The public stream URL for ``category``."""
        return self.network.public_ws_url_for(self.category)

    def redacted_dict(self) -> dict[str, Any]:
        """JSON-ready dict without secrets: for the ``runs`` row and for logs."""
        data = self.model_dump(mode="json")
        data["database_url"] = _hide_password(self.database_url)
        return data

    def to_safe_json(self) -> str:
        """``redacted_dict()`` as JSON with sorted keys."""
        return json.dumps(self.redacted_dict(), sort_keys=True)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# --------------------------------------------------------------------------- building


def validate_config(data: Mapping[str, Any]) -> RecorderConfig:
    """Validate plain data; raise ``ConfigError`` with one readable line per problem."""
    try:
        return RecorderConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(error) for error in exc.errors(include_url=False)) from None


def config_from_omegaconf(cfg: DictConfig) -> RecorderConfig:
    """Resolve a composed config (without its ``hydra`` node) and validate it."""
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = str(exc).splitlines()[0]
        raise ConfigError([f"{key}: {reason}" if key else reason]) from None
    assert isinstance(data, dict)
    return validate_config(cast(dict[str, Any], data))


def _describe(error: Mapping[str, Any]) -> str:
    """``batch_size: Input should be greater than 0 (got -1)``; no value under ``account``."""
    loc: tuple[int | str, ...] = error["loc"]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    line = f"{key or 'config'}: {message}"
    value = error.get("input")
    secret = bool(loc) and (loc[0] == "account" or any(is_secret_key(str(p)) for p in loc))
    shown = isinstance(value, str | int | float | bool) and error["type"] != "missing"
    return f"{line} (got {value!r})" if shown and not secret else line


def compose_config(
    overrides: Sequence[str] = (), *, output_dir: str | Path | None = None
) -> RecorderConfig:
    """The config ``recorder <overrides>`` would run with, composed without starting a run.

    ``${hydra:runtime.output_dir}`` (the default ``database_url``) resolves to ``output_dir``,
    by default the current directory. Handy for scripts and tests.
    """
    return _compose_and_validate(overrides, output_dir)


def load_config(
    path: str | Path | None = None, *, output_dir: str | Path | None = None
) -> RecorderConfig:
    """Load a plain YAML file, without Hydra's command line (see ``conf/recorder.yaml.example``).

    Without ``path``: ``$RECORDER_CONFIG_PATH``, else ``conf/recorder.yaml``, else
    ``recorder.yaml`` (relative to the current directory). The file is a mapping of the same
    top-level keys as the Hydra config; a key it leaves out takes the value of the packaged default
    composition (``recorder`` without overrides), and ``${hydra:runtime.output_dir}`` resolves to
    ``output_dir`` (default: the current directory).

    Raises:
        FileNotFoundError: no such file, or none of the default places holds one.
        ConfigError: the file is not valid YAML or not a mapping, or a value is invalid.
    """
    file = _find_config_file(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: invalid YAML{line}: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ConfigError(
            [f"{file}: expected a mapping of keys such as 'symbols' at the top level"]
        )
    return _compose_and_validate((), output_dir, data, source=file)


def _find_config_file(path: str | Path | None) -> Path:
    if path is not None:
        candidates = [Path(path)]
    elif os.environ.get(CONFIG_PATH_ENV):
        candidates = [Path(os.environ[CONFIG_PATH_ENV])]
    else:
        candidates = list(DEFAULT_CONFIG_FILES)
    for candidate in candidates:
        if candidate.expanduser().is_file():
            return candidate.expanduser()
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no recorder config file found (looked for: {searched})")


def _compose_and_validate(
    overrides: Sequence[str],
    output_dir: str | Path | None,
    data: Mapping[str, Any] | None = None,
    source: Path | None = None,
) -> RecorderConfig:
    """Compose the packaged configs, merge ``data`` on top, resolve as a run in ``output_dir``."""
    if GlobalHydra.instance().is_initialized():
        raise RuntimeError("cannot compose the recorder config inside a running Hydra app")
    with initialize_config_dir(str(config_dir()), job_name="recorder", version_base="1.3"):
        full = compose("config", overrides=list(overrides), return_hydra_config=True)
    with read_write(full.hydra.runtime), open_dict(full.hydra.runtime):
        full.hydra.runtime.output_dir = str(Path(output_dir or Path.cwd()).resolve())
    cfg = OmegaConf.masked_copy(full, [str(key) for key in full if key != "hydra"])
    if data is not None:
        OmegaConf.set_struct(cfg, False)  # unknown keys are reported by the model instead
        try:
            merged = OmegaConf.merge(cfg, OmegaConf.create(dict(data)))
        except OmegaConfBaseException as exc:
            raise ConfigError([f"{source}: {str(exc).splitlines()[0]}"]) from None
        assert isinstance(merged, DictConfig)
        cfg = merged
    # ${hydra:...} resolves against HydraConfig, which run_job sets for a real run.
    holder = HydraConfig.instance()
    saved = holder.cfg
    holder.set_config(full)
    try:
        return config_from_omegaconf(cfg)
    finally:
        holder.cfg = saved
