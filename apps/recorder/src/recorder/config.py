"""The validated configuration of a recording session.

Two ways in, one model:

* the Hydra groups under the repo's ``configs/`` (``recorder`` console script, see
  ``recorder.paths.config_dir``), composed and checked by ``config_from_omegaconf``;
* a plain YAML file (``recorder --config FILE``, ``recorder-main``), read by ``load_config``.

``RecorderConfig`` is frozen and typed; every field but ``symbols`` has a default, and the
defaults are the values of ``configs/`` (a test asserts they agree), so
``RecorderConfig(symbols=["BTCUSDT"])`` is what ``recorder`` records without overrides.

Secrets: the API key pair comes from the environment (``account.api_key_env`` /
``api_secret_env`` name the variables), or, in a plain YAML file that only its owner can read,
from ``account.api_key`` / ``account.api_secret``. The values are never fields of a dump
(``model_dump``, ``redacted_dict``, ``repr``) or part of an error message, and every secret a
validated config holds (keys, database password) is registered with ``recorder.redaction``.
"""

import json
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Final, Self, TypeVar, cast
from urllib.parse import urlsplit

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bybit_records import Category
from recorder.errors import ConfigError
from recorder.paths import config_dir
from recorder.redaction import SECRETS, redact

__all__ = [
    "CONFIG_PATH_ENV",
    "CUSTOM_SYMBOLS_KEY",
    "DB_PASSWORD_ENV",
    "MAINNET",
    "RECORDED_CATEGORIES",
    "TESTNET",
    "AccountConfig",
    "Category",
    "ConnectionConfig",
    "DiskGuardConfig",
    "NetworkConfig",
    "RecorderConfig",
    "RestConfig",
    "TickerConfig",
    "compose_config",
    "config_from_omegaconf",
    "is_secret_key",
    "load_config",
    "validate_config",
]

CONFIG_PATH_ENV = "RECORDER_CONFIG_PATH"
#: holds the database password that ``recorder`` takes out of a ``database_url`` override
DB_PASSWORD_ENV = "RECORDER_DB_PASSWORD"
#: the key ``symbols=custom`` reads its list from (``recorder symbols=[SOLUSDT,XRPUSDT]``)
CUSTOM_SYMBOLS_KEY = "custom_symbols"
# Searched, relative to the current directory, when load_config() gets no path and
# $RECORDER_CONFIG_PATH is unset.
DEFAULT_CONFIG_FILES = (Path("conf/recorder.yaml"), Path("recorder.yaml"))
#: the categories the recorder records. Options are refused: Bybit keys option trades by base
#: coin (publicTrade.BTC) and tickers by contract, which the streams do not handle yet.
RECORDED_CATEGORIES: Final = (Category.LINEAR, Category.SPOT, Category.INVERSE)
OPTION_REFUSED = (
    "options are not supported: Bybit keys option trades by base coin (publicTrade.BTC), not "
    "by contract, and the recorder would store none; use linear, spot or inverse"
)

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


_Number = TypeVar("_Number", int, float)


def _not_below_field(value: _Number, info: ValidationInfo, field: str) -> _Number:
    """A field validator's check: ``value`` is not below the (already validated) ``field``."""
    bound = info.data.get(field)
    if bound is not None and value < bound:
        raise ValueError(f"must be >= {field} ({bound})")
    return value


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
    """Bybit endpoints (group ``network/``). The defaults are mainnet's."""

    rest_url: HttpUrl = "https://api.bybit.com"
    public_ws_url: WsUrl = "wss://stream.bybit.com/v5/public/{category}"
    private_ws_url: WsUrl = "wss://stream.bybit.com/v5/private"

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
        return self.public_ws_url.format(category=category.value)


MAINNET: Final = NetworkConfig()
TESTNET: Final = NetworkConfig(
    rest_url="https://api-testnet.bybit.com",
    public_ws_url="wss://stream-testnet.bybit.com/v5/public/{category}",
    private_ws_url="wss://stream-testnet.bybit.com/v5/private",
)


def bybit_network_of(url: str) -> str | None:
    """``"testnet"`` or ``"mainnet"`` for a Bybit host, None for any other host (the simulator,
    a proxy)."""
    host = (urlsplit(url).hostname or "").lower()
    if not (host.endswith((".bybit.com", ".bytick.com")) or host in ("bybit.com", "bytick.com")):
        return None
    return "testnet" if "testnet" in host else "mainnet"


class ConnectionConfig(_Model):
    """WebSocket keep-alive and reconnect timing (key ``connection``)."""

    ping_interval_seconds: Seconds = 20.0
    pong_timeout_seconds: Seconds = 10.0
    stall_timeout_seconds: Seconds = 10.0  # no data frame for this long -> replace the connection
    open_timeout_seconds: Seconds = 10.0  # TCP + TLS + WebSocket upgrade, per attempt
    ack_timeout_seconds: Seconds = 10.0  # a subscribe or auth request without a reply
    reconnect_initial_delay_seconds: Seconds = 1.0
    reconnect_max_delay_seconds: Seconds = 60.0
    max_connects_per_5min: Annotated[int, Field(ge=1, le=500)] = 100

    @field_validator("reconnect_max_delay_seconds")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        return _not_below_field(value, info, "reconnect_initial_delay_seconds")


class RestConfig(_Model):
    """REST timeouts and retry budget (key ``rest``)."""

    timeout_seconds: Seconds = 10.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4


class DiskGuardConfig(_Model):
    """Free space on the SQLite database's filesystem (key ``disk``; see ``recorder.disk_guard``).

    Below ``warn_free_mb`` MiB free the session logs a warning once an hour; below
    ``stop_free_mb`` it stops cleanly, before SQLite could fail on a full disk.
    """

    warn_free_mb: Count = 5120
    stop_free_mb: Count = 1024
    check_interval_seconds: Seconds = 10.0

    @field_validator("stop_free_mb")
    @classmethod
    def _stop_below_warn(cls, value: int, info: ValidationInfo) -> int:
        warn = info.data.get("warn_free_mb")
        if warn is not None and value >= warn:
            raise ValueError(f"must be below disk.warn_free_mb ({warn})")
        return value


class TickerConfig(_Model):
    """What is kept of the ticker pushes (key ``tickers``; see ``event_saver.ticker_sampler``).

    ``min_interval_ms`` 0 keeps every push (Bybit: every 100 ms, spot 50 ms). Above 0, a
    symbol's state is kept when at least that much exchange time passed since its last kept
    one; every row is a complete state, so dropping the pushes in between loses no field.
    """

    min_interval_ms: int = 0

    @field_validator("min_interval_ms")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0 (0 keeps every push, 1000 at most one per second)")
        return value


#: the order-book depths Bybit serves for the recorded categories (linear, spot, inverse)
BOOK_DEPTHS: Final = (1, 50, 200, 1000)


class BooksConfig(_Model):
    """Order books (key ``books``; see ``bybit_adapter.book_validator``): off by default.

    ``depths`` lists the ``orderbook.{depth}.{symbol}`` streams recorded for every symbol
    (e.g. ``[50]``). Updates are stored as Bybit sent them, checked (``u`` +1 per delta, a
    book never crossed, a snapshot first); every ``checkpoint_every_updates`` deltas or
    ``checkpoint_every_seconds`` of exchange time the whole book is stored as well, so any
    instant is rebuilt from the last checkpoint before it.
    """

    depths: tuple[int, ...] = ()
    checkpoint_every_updates: Count = 1000
    checkpoint_every_seconds: Seconds = 60.0

    @field_validator("depths")
    @classmethod
    def _served_depths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        unknown = [d for d in value if d not in BOOK_DEPTHS]
        if unknown:
            raise ValueError(f"Bybit serves depths {list(BOOK_DEPTHS)}, not {unknown}")
        return tuple(dict.fromkeys(value))


class AccountConfig(_Model):
    """The API key pair of the private streams (group ``account/``).

    By default the key and secret are read from the environment variables named by
    ``api_key_env`` / ``api_secret_env`` when the model is validated. A plain YAML config file
    (``load_config``) may instead hold them as ``api_key`` / ``api_secret``. Either way the
    values are only reachable through the ``api_key`` / ``api_secret`` properties: they never
    appear in ``model_dump()``, ``repr()`` or a validation error.
    """

    api_key_env: EnvVarName = "BYBIT_API_KEY"
    api_secret_env: EnvVarName = "BYBIT_API_SECRET"
    inline_api_key: SecretStr | None = Field(default=None, alias="api_key", exclude=True)
    inline_api_secret: SecretStr | None = Field(default=None, alias="api_secret", exclude=True)
    _api_key: SecretStr = PrivateAttr()
    _api_secret: SecretStr = PrivateAttr()

    @model_validator(mode="after")
    def _read_keys(self) -> Self:
        key, secret = self.inline_api_key, self.inline_api_secret
        if key is not None or secret is not None:
            if (
                key is None
                or secret is None
                or not (key.get_secret_value() and secret.get_secret_value())
            ):
                raise ValueError("api_key and api_secret must be given together, both non-empty")
            self._api_key, self._api_secret = key, secret
        else:
            names = (self.api_key_env, self.api_secret_env)
            missing = [name for name in names if not os.environ.get(name)]
            if missing:
                raise ValueError(
                    f"environment variable{'s' if len(missing) > 1 else ''} not set: "
                    f"{', '.join(missing)} (export the API key pair, or use account=none)"
                )
            self._api_key = SecretStr(os.environ[self.api_key_env])
            self._api_secret = SecretStr(os.environ[self.api_secret_env])
        SECRETS.add(self._api_key.get_secret_value(), self._api_secret.get_secret_value())
        return self

    @property
    def api_key(self) -> SecretStr:
        return self._api_key

    @property
    def api_secret(self) -> SecretStr:
        return self._api_secret

    @property
    def keys_from(self) -> str:
        """Where the key pair was read: ``config file`` or ``$NAME/$NAME``."""
        if self.inline_api_key is not None:
            return "config file"
        return f"${self.api_key_env}/${self.api_secret_env}"


class RecorderConfig(_Model):
    """Everything a recording session needs; see ``configs/config.yaml`` for the meaning.

    ``database_url`` None (the default) is ``recorder.db`` in the session's output folder
    (``with_database_in``). ``testnet`` and ``network`` cannot disagree: a missing ``network``
    is mainnet's or testnet's endpoints as ``testnet`` says, a missing ``testnet`` follows the
    endpoints, and a Bybit endpoint of the other network is refused.
    """

    symbols: tuple[Symbol, ...]
    category: Category = Category.LINEAR
    database_url: str | None = None
    testnet: bool = False
    batch_size: Count = 100
    flush_interval: Seconds = 5.0
    max_buffer_rows: Count = 100_000
    gap_threshold_seconds: Seconds = 5.0
    health_log_interval: Seconds = 300.0
    duration_seconds: Seconds | None = None  # None: until SIGINT/SIGTERM
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # None: no Prometheus
    account: AccountConfig | None = None
    network: NetworkConfig = MAINNET
    connection: ConnectionConfig = ConnectionConfig()
    rest: RestConfig = RestConfig()
    disk: DiskGuardConfig = DiskGuardConfig()
    tickers: TickerConfig = TickerConfig()
    books: BooksConfig = BooksConfig()

    @model_validator(mode="before")
    @classmethod
    def _testnet_and_network_agree(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        testnet = data.get("testnet")
        network = data.get("network")
        if network is None:
            data["network"] = TESTNET if testnet is True else MAINNET
            return data
        urls = {
            key: network.get(key) if isinstance(network, Mapping) else getattr(network, key, None)
            for key in NetworkConfig.model_fields
        }
        kinds = {
            key: bybit_network_of(url)
            for key, url in urls.items()
            if isinstance(url, str) and bybit_network_of(url)
        }
        if len(set(kinds.values())) > 1:
            shown = ", ".join(f"network.{key} is Bybit {kind}" for key, kind in kinds.items())
            raise ValueError(f"network: the endpoints disagree ({shown})")
        kind = next(iter(kinds.values()), None)
        if testnet is None:
            data["testnet"] = kind == "testnet"
        elif isinstance(testnet, bool) and kind is not None and testnet != (kind == "testnet"):
            key, url = next(iter(kinds)), urls[next(iter(kinds))]
            raise ValueError(
                f"testnet: {str(testnet).lower()} contradicts network.{key} {url} (Bybit {kind}): "
                f"use network={'testnet' if testnet else 'mainnet'}, or leave testnet out"
            )
        return data

    @field_validator("symbols")
    @classmethod
    def _some_and_unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if not symbols:
            raise ValueError("at least one symbol is required")
        duplicates = sorted(symbol for symbol, count in Counter(symbols).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate symbols: {', '.join(duplicates)}")
        return symbols

    @field_validator("category", mode="before")
    @classmethod
    def _recorded_category(cls, value: Any) -> Any:
        text = value.value if isinstance(value, Category) else value
        if text == Category.OPTION.value:
            raise ValueError(OPTION_REFUSED)
        if text not in [c.value for c in RECORDED_CATEGORIES]:
            raise ValueError("must be linear, spot or inverse")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            raise ValueError(
                "must be a database URL such as sqlite:///path/to/recorder.db or "
                "postgresql://user@host/db"
            ) from None
        SECRETS.add(parsed.password if isinstance(parsed.password, str) else None)
        backend, _, driver = parsed.drivername.partition("+")
        supported = (backend == "sqlite" and driver in ("", "pysqlite")) or (
            backend in ("postgresql", "postgres") and driver in ("", "psycopg")
        )
        if not supported:
            raise ValueError(
                f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or "
                "postgresql://USER@HOST/DB"
            )
        return url

    @field_validator("max_buffer_rows")
    @classmethod
    def _holds_a_batch(cls, value: int, info: ValidationInfo) -> int:
        return _not_below_field(value, info, "batch_size")

    @property
    def public_ws_url_for_category(self) -> str:
        """The public stream URL for ``category``."""
        return self.network.public_ws_url_for(self.category)

    def with_database_in(self, folder: Path) -> "RecorderConfig":
        """This config, with the default database (``recorder.db`` in ``folder``) made explicit."""
        if self.database_url is not None:
            return self
        url = f"sqlite:///{Path(folder).resolve() / 'recorder.db'}"
        return self.model_copy(update={"database_url": url})

    def redacted_dict(self) -> dict[str, Any]:
        """JSON-ready dict without secrets: for the ``runs`` row, ``session.json`` and logs."""
        data = self.model_dump(mode="json")
        if self.database_url is not None:
            data["database_url"] = redact(self.database_url)
        return data

    def to_safe_json(self) -> str:
        """``redacted_dict()`` as JSON with sorted keys."""
        return json.dumps(self.redacted_dict(), sort_keys=True)


# --------------------------------------------------------------------------- building


def validate_config(data: Mapping[str, Any]) -> RecorderConfig:
    """Validate plain data; raise ``ConfigError`` with one readable line per problem."""
    try:
        return RecorderConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(error) for error in exc.errors(include_url=False)) from None


def config_from_omegaconf(cfg: DictConfig, *, keys_allowed: bool = False) -> RecorderConfig:
    """Resolve a composed config (without its ``hydra`` node) and validate it.

    ``keys_allowed`` False (Hydra's configs): ``account.api_key`` / ``api_secret`` are refused,
    since Hydra saves the composed config to ``.hydra/config.yaml``.
    """
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = redact(str(exc).splitlines()[0])
        raise ConfigError([f"{key}: {reason}" if key else reason]) from None
    assert isinstance(data, dict)
    data = cast(dict[str, Any], data)
    if CUSTOM_SYMBOLS_KEY in data and not keys_allowed:
        data.pop(CUSTOM_SYMBOLS_KEY)  # symbols=custom: already interpolated into `symbols`
    account = data.get("account")
    if not keys_allowed and isinstance(account, dict):
        inline = [key for key in ("api_key", "api_secret") if key in account]
        if inline:
            raise ConfigError(
                f"account.{key}: API keys cannot be set in Hydra configs (Hydra saves them to "
                ".hydra/config.yaml): use account=env, or a config file of your own with "
                "recorder --config FILE"
                for key in inline
            )
    return validate_config(data)


def _describe(error: Mapping[str, Any]) -> str:
    """``batch_size: Input should be greater than 0 (got -1)``; no value under ``account``."""
    loc: tuple[int | str, ...] = error["loc"]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    line = f"{key}: {message}" if key else message
    value = error.get("input")
    secret = bool(loc) and (loc[0] == "account" or any(is_secret_key(str(p)) for p in loc))
    shown = isinstance(value, str | int | float | bool) and error["type"] != "missing"
    return redact(f"{line} (got {value!r})" if shown and not secret else line)


def describe_hydra_error(exc: BaseException, known_keys: Sequence[str] = ()) -> str:
    """One line, naming the key, for an error Hydra or OmegaConf raised while composing."""
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, MissingConfigException) or first.startswith("In '"):
        missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
        if missing:
            group, option = missing.groups()
            options = _group_options(group)
            hint = f" (options: {', '.join(options)}" if options else " ("
            if group == "symbols":
                hint += (
                    "; " if options else ""
                ) + "or a list of your own: symbols=[SOLUSDT,XRPUSDT]"
            return f"{group}: no option {option!r}{hint})"
    override = re.search(r"Could not (override|append to config)[^']*'([^']+)'", text)
    if override is None:
        override = re.search(r"Key '([^']+)' is not in struct", text)
        key = override.group(1) if override else None
    else:
        key = override.group(2)
    if key is not None and "An item is already at" in text:
        return f"{key}: already set; give it without the leading +"
    if key is not None and ("not in struct" in text or "Could not override" in text):
        close = get_close_matches(key, known_keys, n=1)
        suggestion = f"; did you mean {close[0]}?" if close else ""
        return f"{key}: unknown key{suggestion}"
    if isinstance(exc, OverrideParseException):
        return redact(f"cannot parse the override {exc.override!r}: {first}")
    full_key = getattr(exc, "full_key", None)
    if full_key:
        return redact(f"{full_key}: {first}")
    return redact(first.rstrip("."))


def known_keys() -> list[str]:
    """The dotted keys a run's config may set (for "did you mean" hints)."""
    keys: list[str] = []
    for name, field in RecorderConfig.model_fields.items():
        keys.append(name)
        annotation = field.annotation
        for model in (
            NetworkConfig,
            ConnectionConfig,
            RestConfig,
            AccountConfig,
            DiskGuardConfig,
            TickerConfig,
        ):
            if annotation is model or annotation == model | None:
                keys.extend(f"{name}.{sub}" for sub in model.model_fields)
    return keys


def _group_options(group: str) -> list[str]:
    try:
        directory = config_dir() / group
    except FileNotFoundError:
        return []
    return sorted(path.stem for path in directory.glob("*.yaml"))


def compose_config(
    overrides: Sequence[str] = (),
    *,
    output_dir: str | Path | None = None,
    config_name: str = "config",
    extra_config_dir: str | Path | None = None,
) -> RecorderConfig:
    """The config ``recorder <overrides>`` would run with, composed without starting a run.

    ``${hydra:runtime.output_dir}`` resolves to ``output_dir``, by default the current
    directory. ``extra_config_dir`` is ``recorder --config-dir DIR``. Raises ``ConfigError``
    (one line per problem) for invalid values and for what Hydra cannot compose (an unknown
    key or group option, an override it cannot parse).
    """
    return _compose_and_validate(
        overrides, output_dir, config_name=config_name, extra_config_dir=extra_config_dir
    )


def load_config(
    path: str | Path | None = None, *, output_dir: str | Path | None = None
) -> RecorderConfig:
    """Load a plain YAML file, without Hydra's command line (see ``conf/recorder.yaml.example``).

    Without ``path``: ``$RECORDER_CONFIG_PATH``, else ``conf/recorder.yaml``, else
    ``recorder.yaml`` (relative to the current directory). The file is a mapping of the same
    top-level keys as the Hydra config; a key it leaves out takes the value of the packaged
    default composition (``recorder`` without overrides), except that ``testnet: true`` without
    ``network`` takes the testnet endpoints. ``${hydra:runtime.output_dir}`` resolves to
    ``output_dir`` (default: the current directory).

    The file may hold the API key pair (``account: {api_key: ..., api_secret: ...}``) only when
    no one but its owner can read it (``chmod 600``).

    Raises:
        FileNotFoundError: no such file, or none of the default places holds one.
        ConfigError: the file is not valid YAML or not a mapping, is readable by others while
            holding keys, or a value is invalid.
    """
    file = find_config_file(path)
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
    account = data.get("account")
    if isinstance(account, dict) and ({"api_key", "api_secret"} & set(account)):
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                [
                    f"{file}: holds account.api_key/api_secret but others can read it "
                    f"(mode {mode:04o}): chmod 600 {file}"
                ]
            )
    overrides = ["network=testnet"] if data.get("testnet") is True and "network" not in data else []
    return _compose_and_validate(overrides, output_dir, data, source=file)


def find_config_file(path: str | Path | None = None) -> Path:
    """The plain YAML file ``load_config(path)`` reads (see there for the search order)."""
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
    *,
    config_name: str = "config",
    extra_config_dir: str | Path | None = None,
) -> RecorderConfig:
    """Compose the packaged configs, merge ``data`` on top, resolve as a run in ``output_dir``."""
    if GlobalHydra.instance().is_initialized():
        raise RuntimeError("cannot compose the recorder config inside a running Hydra app")
    overrides = list(overrides)
    if extra_config_dir is not None:
        directory = Path(extra_config_dir).resolve()
        if not directory.is_dir():
            raise ConfigError([f"--config-dir: no such directory: {directory}"])
        overrides.append(f"hydra.searchpath=[file://{directory}]")
    try:
        with initialize_config_dir(str(config_dir()), job_name="recorder", version_base="1.3"):
            full = compose(config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError([describe_hydra_error(exc, known_keys())]) from None
    with read_write(full.hydra.runtime), open_dict(full.hydra.runtime):
        full.hydra.runtime.output_dir = str(Path(output_dir or Path.cwd()).resolve())
    cfg = OmegaConf.masked_copy(full, [str(key) for key in full if key != "hydra"])
    if data is not None:
        OmegaConf.set_struct(cfg, False)  # unknown keys are reported by the model instead
        try:
            merged = OmegaConf.merge(cfg, OmegaConf.create(dict(data)))
        except OmegaConfBaseException as exc:
            raise ConfigError([redact(f"{source}: {str(exc).splitlines()[0]}")]) from None
        assert isinstance(merged, DictConfig)
        cfg = merged
    # ${hydra:...} resolves against HydraConfig, which run_job sets for a real run.
    holder = HydraConfig.instance()
    saved = holder.cfg
    holder.set_config(full)
    try:
        return config_from_omegaconf(cfg, keys_allowed=data is not None)
    finally:
        holder.cfg = saved
