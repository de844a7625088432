"""The Hydra config groups compose, and RecorderConfig validates them (no run, no subprocess)."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig
from pydantic import SecretStr

from bybit_records import Category
from recorder.config import (
    MAINNET,
    TESTNET,
    AccountConfig,
    ConnectionConfig,
    NetworkConfig,
    RecorderConfig,
    RestConfig,
    compose_config,
    config_from_omegaconf,
    is_secret_key,
    load_config,
    validate_config,
)
from recorder.errors import ConfigError
from recorder.paths import CONFIG_DIR_ENV, config_dir
from recorder.redaction import SECRETS

EXAMPLE = Path(__file__).resolve().parents[1] / "conf" / "recorder.yaml.example"
GROUP_OPTIONS = {
    "symbols": {"btc", "eth", "btc_eth", "majors", "custom"},
    "network": {"mainnet", "testnet", "local"},
    "account": {"none", "env"},
    "writer": {"default", "low_latency", "bulk"},
}
KEY, SECRET = "key-1234567890", "secret-abcdefghij"

Compose = Callable[..., DictConfig]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator[Compose]:
    """Compose ``configs/`` like ``recorder <overrides>`` (the DB goes to tmp_path)."""

    def _compose(*overrides: str) -> DictConfig:
        database = f"database_url=sqlite:///{tmp_path}/x.db"
        return compose("config", overrides=[database, *overrides])

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield _compose


@pytest.fixture
def validated(compose_cfg: Compose) -> Callable[..., RecorderConfig]:
    return lambda *overrides: config_from_omegaconf(compose_cfg(*overrides))


@pytest.fixture
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)


def problems(error: pytest.ExceptionInfo[ConfigError]) -> tuple[str, ...]:
    return error.value.problems


# --------------------------------------------------------------------------- composition


def test_defaults(validated: Callable[..., RecorderConfig], tmp_path: Path) -> None:
    config = validated()
    assert config.symbols == ("BTCUSDT",)
    assert config.category is Category.LINEAR
    assert config.database_url == f"sqlite:///{tmp_path}/x.db"
    assert config.testnet is False
    assert (config.batch_size, config.flush_interval, config.max_buffer_rows) == (100, 5.0, 100_000)
    assert (config.gap_threshold_seconds, config.health_log_interval) == (5.0, 300)
    assert config.duration_seconds is None
    assert config.account is None
    assert config.network.rest_url == "https://api.bybit.com"
    assert config.network.public_ws_url == "wss://stream.bybit.com/v5/public/{category}"
    assert config.network.private_ws_url == "wss://stream.bybit.com/v5/private"
    assert config.public_ws_url_for_category == "wss://stream.bybit.com/v5/public/linear"
    assert config.connection.model_dump() == {
        "ping_interval_seconds": 20,
        "pong_timeout_seconds": 10,
        "stall_timeout_seconds": 10,
        "open_timeout_seconds": 10,
        "ack_timeout_seconds": 10,
        "reconnect_initial_delay_seconds": 1,
        "reconnect_max_delay_seconds": 60,
        "max_connects_per_5min": 100,
    }
    assert config.rest.model_dump() == {"timeout_seconds": 10, "max_retries": 4}


@pytest.mark.parametrize("group", sorted(GROUP_OPTIONS))
def test_group_has_the_documented_options(group: str) -> None:
    options = {path.stem for path in (config_dir() / group).glob("*.yaml")}
    assert options == GROUP_OPTIONS[group]


@pytest.mark.parametrize(
    "override",
    [
        f"{group}={option}"
        for group in GROUP_OPTIONS
        for option in GROUP_OPTIONS[group]
        if option != "custom"
    ],
)
@pytest.mark.usefixtures("api_keys")
def test_every_group_option_composes_and_validates(
    validated: Callable[..., RecorderConfig], override: str
) -> None:
    assert isinstance(validated(override), RecorderConfig)


@pytest.mark.parametrize(
    ("option", "symbols"),
    [
        ("btc", ("BTCUSDT",)),
        ("eth", ("ETHUSDT",)),
        ("btc_eth", ("BTCUSDT", "ETHUSDT")),
        ("majors", ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT")),
    ],
)
def test_symbols_options(
    validated: Callable[..., RecorderConfig], option: str, symbols: tuple[str, ...]
) -> None:
    assert validated(f"symbols={option}").symbols == symbols


def test_network_testnet(validated: Callable[..., RecorderConfig]) -> None:
    config = validated("network=testnet", "category=spot")
    assert config.testnet is True
    assert config.network.rest_url == "https://api-testnet.bybit.com"
    assert config.public_ws_url_for_category == "wss://stream-testnet.bybit.com/v5/public/spot"
    assert config.network.private_ws_url == "wss://stream-testnet.bybit.com/v5/private"


def test_network_local_is_the_bundled_simulator(validated: Callable[..., RecorderConfig]) -> None:
    config = validated("network=local")
    assert config.testnet is False
    assert config.network.rest_url == "http://127.0.0.1:8765"
    assert config.public_ws_url_for_category == "ws://127.0.0.1:8765/v5/public/linear"
    assert config.network.private_ws_url == "ws://127.0.0.1:8765/v5/private"


@pytest.mark.parametrize(
    ("option", "batch_size", "flush_interval"),
    [("default", 100, 5.0), ("low_latency", 10, 0.2), ("bulk", 2000, 10.0)],
)
def test_writer_options_set_top_level_keys(
    validated: Callable[..., RecorderConfig], option: str, batch_size: int, flush_interval: float
) -> None:
    config = validated(f"writer={option}")
    assert (config.batch_size, config.flush_interval) == (batch_size, flush_interval)


def test_top_level_and_nested_overrides(validated: Callable[..., RecorderConfig]) -> None:
    config = validated(
        "writer=bulk",
        "batch_size=500",
        "category=inverse",
        "duration_seconds=90",
        "network.rest_url=http://localhost:9000",
        "connection.ping_interval_seconds=5",
    )
    assert (config.batch_size, config.flush_interval) == (500, 10.0)
    assert config.category is Category.INVERSE
    assert config.duration_seconds == 90
    assert config.network.rest_url == "http://localhost:9000"
    assert config.connection.ping_interval_seconds == 5


def test_unknown_symbols_option_is_a_hydra_error(compose_cfg: Compose) -> None:
    with pytest.raises(HydraException, match="Could not find 'symbols/doge'"):
        compose_cfg("symbols=doge")


def test_unknown_key_without_plus_is_a_hydra_error(compose_cfg: Compose) -> None:
    with pytest.raises(ConfigCompositionException, match="Could not override 'bogus'"):
        compose_cfg("bogus=1")


def test_the_default_database_is_in_the_session_folder(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config")
    config = config_from_omegaconf(cfg)  # no run needed: nothing to resolve
    assert config.database_url is None
    placed = config.with_database_in(tmp_path)
    assert placed.database_url == f"sqlite:///{tmp_path}/recorder.db"
    assert placed.with_database_in(tmp_path / "other") == placed  # an explicit URL stays


def test_output_dir_interpolation_resolves_to_the_output_dir(tmp_path: Path) -> None:
    config = compose_config(
        ["symbols=btc_eth", "database_url=sqlite:///${hydra:runtime.output_dir}/mine.db"],
        output_dir=tmp_path,
    )
    assert config.database_url == f"sqlite:///{tmp_path}/mine.db"
    assert config.symbols == ("BTCUSDT", "ETHUSDT")


def test_symbols_of_your_own(tmp_path: Path) -> None:
    config = compose_config(["symbols=custom", "custom_symbols=[SOLUSDT,XRPUSDT]"])
    assert config.symbols == ("SOLUSDT", "XRPUSDT")
    assert "custom_symbols" not in config.redacted_dict()
    with pytest.raises(ConfigError) as error:
        compose_config(["symbols=custom"])
    assert problems(error) == ("custom_symbols: Missing mandatory value: custom_symbols",)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("batch_size=-1", "batch_size: Input should be greater than 0 (got -1)"),
        (
            "batch_size=abc",
            "batch_size: Input should be a valid integer, unable to parse string as an integer (got 'abc')",
        ),
        ("flush_interval=0", "flush_interval: Input should be greater than 0 (got 0)"),
        ("max_buffer_rows=10", "max_buffer_rows: must be >= batch_size (100) (got 10)"),
        (
            "gap_threshold_seconds=0",
            "gap_threshold_seconds: Input should be greater than 0 (got 0)",
        ),
        ("health_log_interval=-5", "health_log_interval: Input should be greater than 0 (got -5)"),
        ("duration_seconds=0", "duration_seconds: Input should be greater than 0 (got 0)"),
        ("category=futures", "category: must be linear, spot or inverse (got 'futures')"),
        (
            "category=option",
            "category: options are not supported: Bybit keys option trades by base coin "
            "(publicTrade.BTC), not by contract, and the recorder would store none; use linear, "
            "spot or inverse (got 'option')",
        ),
        (
            "database_url=mysql://rec:hunter2@db/x",
            "database_url: unsupported database 'mysql': use sqlite:///PATH or "
            "postgresql://USER@HOST/DB (got 'mysql://rec:***@db/x')",
        ),
        (
            "database_url=postgresql+asyncpg://rec@db/x",
            "database_url: unsupported database 'postgresql+asyncpg': use sqlite:///PATH or "
            "postgresql://USER@HOST/DB (got 'postgresql+asyncpg://rec@db/x')",
        ),
        (
            "database_url=recorder.db",
            "database_url: must be a database URL such as sqlite:///path/to/recorder.db or "
            "postgresql://user@host/db (got 'recorder.db')",
        ),
        ("symbols=[]", "symbols: Field required"),  # Hydra: selects no option of the group
        (
            "symbols.0=btcusdt",
            "symbols[0]: symbol 'btcusdt' must be upper-case letters and digits, e.g. BTCUSDT (got 'btcusdt')",
        ),
        (
            "network.rest_url=ftp://x",
            "network.rest_url: must be a http or https URL (got 'ftp://x')",
        ),
        (
            "network.public_ws_url=wss://stream.bybit.com/v5/public/linear",
            "network.public_ws_url: must contain {category}, e.g. wss://stream.bybit.com/v5/public/{category} "
            "(got 'wss://stream.bybit.com/v5/public/linear')",
        ),
        (
            "connection.pong_timeout_seconds=0",
            "connection.pong_timeout_seconds: Input should be greater than 0 (got 0)",
        ),
        (
            "connection.reconnect_max_delay_seconds=0.5",
            "connection.reconnect_max_delay_seconds: must be >= reconnect_initial_delay_seconds (1.0) (got 0.5)",
        ),
        ("+bogus=1", "bogus: Extra inputs are not permitted (got 1)"),
        ("+network.extra=x", "network.extra: Extra inputs are not permitted (got 'x')"),
    ],
)
def test_invalid_values_give_one_readable_line_naming_the_key(
    validated: Callable[..., RecorderConfig], override: str, problem: str | None
) -> None:
    with pytest.raises(ConfigError) as error:
        validated(override)
    assert problems(error) == (problem,)


def test_duplicate_symbols(validated: Callable[..., RecorderConfig]) -> None:
    with pytest.raises(ConfigError) as error:
        validated("symbols=btc_eth", "symbols.1=BTCUSDT")
    assert problems(error) == ("symbols: duplicate symbols: BTCUSDT",)


def test_every_problem_is_reported(validated: Callable[..., RecorderConfig]) -> None:
    with pytest.raises(ConfigError) as error:
        validated("batch_size=0", "flush_interval=-1", "category=x")
    assert [line.split(":")[0] for line in problems(error)] == [
        "category",
        "batch_size",
        "flush_interval",
    ]
    assert str(error.value).startswith("invalid recorder configuration (3 problems):\n  category: ")


def test_models_are_frozen(validated: Callable[..., RecorderConfig]) -> None:
    config = validated()
    with pytest.raises(ValueError, match="frozen"):
        config.batch_size = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- secrets


@pytest.mark.usefixtures("api_keys")
def test_account_env_reads_the_keys_from_the_environment(
    validated: Callable[..., RecorderConfig],
) -> None:
    config = validated("account=env")
    assert config.account is not None
    assert isinstance(config.account.api_key, SecretStr)
    assert config.account.api_key.get_secret_value() == KEY
    assert config.account.api_secret.get_secret_value() == SECRET
    assert (config.account.api_key_env, config.account.api_secret_env) == (
        "BYBIT_API_KEY",
        "BYBIT_API_SECRET",
    )


def test_account_env_var_names_can_be_overridden(
    validated: Callable[..., RecorderConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUB_KEY", KEY)
    monkeypatch.setenv("SUB_SECRET", SECRET)
    config = validated(
        "account=env", "account.api_key_env=SUB_KEY", "account.api_secret_env=SUB_SECRET"
    )
    assert config.account is not None
    assert config.account.api_secret.get_secret_value() == SECRET


def test_missing_env_var_is_named(
    validated: Callable[..., RecorderConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)
    with pytest.raises(ConfigError) as error:
        validated("account=env")
    assert problems(error) == (
        "account: environment variable not set: BYBIT_API_SECRET (export the API key pair, or use account=none)",
    )
    assert KEY not in str(error.value)


@pytest.mark.usefixtures("api_keys")
def test_secrets_never_appear_in_dumps(validated: Callable[..., RecorderConfig]) -> None:
    config = validated("account=env")
    for text in (
        repr(config),
        str(config),
        config.to_safe_json(),
        str(config.redacted_dict()),
        str(config.model_dump()),
    ):
        assert KEY not in text
        assert SECRET not in text
    assert config.redacted_dict()["account"] == {
        "api_key_env": "BYBIT_API_KEY",
        "api_secret_env": "BYBIT_API_SECRET",
    }


def test_keys_in_a_config_file_only_its_owner_can_read(tmp_path: Path) -> None:
    file = tmp_path / "recorder.yaml"
    file.write_text(f"account:\n  api_key: {KEY}\n  api_secret: {SECRET}\n")
    file.chmod(0o644)
    with pytest.raises(ConfigError) as error:
        load_config(file, output_dir=tmp_path)
    assert problems(error) == (
        f"{file}: holds account.api_key/api_secret but others can read it (mode 0644): "
        f"chmod 600 {file}",
    )
    file.chmod(0o600)
    config = load_config(file, output_dir=tmp_path)
    assert config.account is not None
    assert config.account.api_key.get_secret_value() == KEY
    assert config.account.api_secret.get_secret_value() == SECRET
    assert config.account.keys_from == "config file"
    for text in (repr(config), config.to_safe_json(), str(config.model_dump())):
        assert KEY not in text
        assert SECRET not in text
    assert SECRETS.redact(f"key {KEY} secret {SECRET}") == "key *** secret ***"


def test_keys_in_a_config_file_go_together(tmp_path: Path) -> None:
    file = tmp_path / "recorder.yaml"
    file.write_text(f"account:\n  api_key: {KEY}\n")
    file.chmod(0o600)
    with pytest.raises(ConfigError) as error:
        load_config(file)
    assert problems(error) == (
        "account: api_key and api_secret must be given together, both non-empty",
    )
    assert KEY not in str(error.value)


def test_keys_cannot_be_set_in_hydra_configs(tmp_path: Path) -> None:
    (tmp_path / "account").mkdir()
    (tmp_path / "account" / "mine.yaml").write_text(
        f"# @package _global_\naccount:\n  api_key: {KEY}\n  api_secret: {SECRET}\n"
    )
    with pytest.raises(ConfigError) as error:
        compose_config(["account=mine"], extra_config_dir=tmp_path)
    assert problems(error) == tuple(
        f"account.{key}: API keys cannot be set in Hydra configs (Hydra saves them to "
        ".hydra/config.yaml): use account=env, or a config file of your own with "
        "recorder --config FILE"
        for key in ("api_key", "api_secret")
    )
    assert KEY not in str(error.value)


def test_redacted_dict_hides_database_password(validated: Callable[..., RecorderConfig]) -> None:
    config = validated("database_url=postgresql://rec:hunter2@db.example:5432/bybit")
    assert config.redacted_dict()["database_url"] == "postgresql://rec:***@db.example:5432/bybit"
    assert "hunter2" not in config.to_safe_json()
    assert config.database_url is not None
    assert config.database_url.endswith("hunter2@db.example:5432/bybit")
    # the password is now a known secret: hidden wherever it appears, not only in URLs
    assert SECRETS.redact("password hunter2 refused") == "password *** refused"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("account.api_key", True),
        ("account.api_secret", True),
        ("apikey", True),
        ("hydra.job.env_set.BYBIT_API_SECRET", True),
        ("db_password", True),
        ("account.api_key_env", False),
        ("account.api_secret_env", False),
        ("batch_size", False),
        ("network.rest_url", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


# --------------------------------------------------------------------------- load_config


def test_load_config_fills_missing_keys_from_the_packaged_defaults(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(
        "symbols: [SOLUSDT]\nbatch_size: 250\nnetwork:\n  rest_url: http://localhost:1\n"
    )
    config = load_config(file, output_dir=tmp_path / "run")
    assert config.symbols == ("SOLUSDT",)
    assert config.batch_size == 250
    assert config.flush_interval == 5.0
    assert config.network.rest_url == "http://localhost:1"
    assert config.network.public_ws_url == "wss://stream.bybit.com/v5/public/{category}"
    assert config.database_url is None
    overrides = ["symbols.0=SOLUSDT", "batch_size=250", "network.rest_url=http://localhost:1"]
    assert config == compose_config(overrides, output_dir=tmp_path / "run")


def test_load_config_accepts_str_paths_and_empty_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text("# nothing set\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(str(file))
    assert config == compose_config()
    assert config.database_url is None


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_invalid_yaml(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("symbols: [BTCUSDT\nbatch_size: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(file)
    (line,) = problems(error)
    assert line.startswith(f"{file}: invalid YAML (line 2): ")


def test_load_config_needs_symbols(tmp_path: Path) -> None:
    file = tmp_path / "recorder.yaml"
    file.write_text("symbols: []\n")
    with pytest.raises(ConfigError) as error:
        load_config(file)
    assert problems(error) == ("symbols: at least one symbol is required",)


def test_load_config_needs_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "list.yaml"
    file.write_text("- BTCUSDT\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(file)


def test_load_config_reports_invalid_values(tmp_path: Path) -> None:
    file = tmp_path / "recorder.yaml"
    file.write_text("batch_size: -1\ncategory: spot\nunknown: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(file)
    assert problems(error) == (
        "batch_size: Input should be greater than 0 (got -1)",
        "unknown: Extra inputs are not permitted (got 3)",
    )


def test_load_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECORDER_CONFIG_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match=r"conf/recorder\.yaml, recorder\.yaml"):
        load_config()

    (tmp_path / "recorder.yaml").write_text("batch_size: 3\n")
    assert load_config().batch_size == 3

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "recorder.yaml").write_text("batch_size: 2\n")
    assert load_config().batch_size == 2

    (tmp_path / "elsewhere.yaml").write_text("batch_size: 1\n")
    monkeypatch.setenv("RECORDER_CONFIG_PATH", str(tmp_path / "elsewhere.yaml"))
    assert load_config().batch_size == 1

    monkeypatch.setenv("RECORDER_CONFIG_PATH", str(tmp_path / "gone.yaml"))
    with pytest.raises(FileNotFoundError, match=r"gone\.yaml"):
        load_config()


def test_example_file_loads(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, output_dir=tmp_path)
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.account is None
    # "The values below ARE those defaults, except symbols"
    assert config == RecorderConfig(symbols=["BTCUSDT", "ETHUSDT"])


@pytest.mark.usefixtures("api_keys")
def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    for key in RecorderConfig.model_fields:
        assert f"\n{key}:" in text or f"\n# {key}:" in text, key
    for model in ("network", "connection"):
        for key in RecorderConfig.model_fields[model].annotation.model_fields:  # type: ignore[union-attr]
            assert f"  {key}:" in text, key
    for name, field in AccountConfig.model_fields.items():
        assert f"{field.alias or name}:" in text, name


def test_validate_config_takes_plain_data(validated: Callable[..., RecorderConfig]) -> None:
    data = validated().model_dump()
    assert validate_config(data) == validated()


# --------------------------------------------------------------------------- config_dir


def test_config_dir_is_the_repo_configs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    path = config_dir()
    assert path.is_absolute()
    assert (path / "config.yaml").is_file()


def test_config_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("{}\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    assert config_dir() == tmp_path.resolve()
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=CONFIG_DIR_ENV):
        config_dir()


# --------------------------------------------------------------------------- defaults


def test_the_model_defaults_are_the_hydra_defaults() -> None:
    """``RecorderConfig(symbols=[...])`` in code is what ``recorder`` runs with: same values."""
    in_code = RecorderConfig(symbols=["BTCUSDT"])
    composed = compose_config()
    assert in_code == composed
    assert in_code.model_dump() == composed.model_dump()
    assert (in_code.database_url, in_code.testnet, in_code.batch_size) == (None, False, 100)
    assert (in_code.flush_interval, in_code.gap_threshold_seconds) == (5.0, 5.0)
    assert in_code.health_log_interval == 300.0
    assert in_code.network == MAINNET
    assert in_code.connection == ConnectionConfig()
    assert in_code.rest == RestConfig()


def test_the_network_and_account_groups_hold_the_model_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert compose_config(["network=testnet"]).network == TESTNET
    assert compose_config(["network=mainnet"]).network == MAINNET == NetworkConfig()
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    assert compose_config(["account=env"]).account == AccountConfig()


def test_a_config_built_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    config = RecorderConfig(
        symbols=["ETHUSDT"],
        category="spot",
        account=AccountConfig(api_key=KEY, api_secret=SECRET),
    )
    assert config.symbols == ("ETHUSDT",)
    assert config.category is Category.SPOT
    assert config.account is not None
    assert config.account.api_secret.get_secret_value() == SECRET
    assert SECRET not in repr(config)
    assert config.redacted_dict()["account"] == {
        "api_key_env": "BYBIT_API_KEY",
        "api_secret_env": "BYBIT_API_SECRET",
    }
    with pytest.raises(ValueError, match="symbols"):
        RecorderConfig()  # type: ignore[call-arg]


# --------------------------------------------------------------------------- testnet / network


def test_testnet_in_code_selects_the_testnet_endpoints() -> None:
    config = RecorderConfig(symbols=["BTCUSDT"], testnet=True)
    assert config.network == TESTNET
    assert RecorderConfig(symbols=["BTCUSDT"], network=TESTNET).testnet is True


def test_testnet_in_a_file_selects_the_testnet_endpoints(tmp_path: Path) -> None:
    file = tmp_path / "recorder.yaml"
    file.write_text("symbols: [BTCUSDT]\ntestnet: true\n")
    config = load_config(file)
    assert config.testnet is True
    assert config.network == TESTNET


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"testnet": True, "network": MAINNET.model_dump()},
            "testnet: true contradicts network.rest_url https://api.bybit.com (Bybit mainnet): "
            "use network=testnet, or leave testnet out",
        ),
        (
            {"testnet": False, "network": TESTNET.model_dump()},
            "testnet: false contradicts network.rest_url https://api-testnet.bybit.com "
            "(Bybit testnet): use network=mainnet, or leave testnet out",
        ),
        (
            {"network": {**MAINNET.model_dump(), "rest_url": "https://api-testnet.bybit.com"}},
            "network: the endpoints disagree (network.rest_url is Bybit testnet, "
            "network.public_ws_url is Bybit mainnet, network.private_ws_url is Bybit mainnet)",
        ),
    ],
)
def test_testnet_and_network_cannot_disagree(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config({"symbols": ["BTCUSDT"], **data})
    assert problems(error) == (problem,)


def test_testnet_with_another_host_is_a_label(validated: Callable[..., RecorderConfig]) -> None:
    # the simulator, or a proxy: the recorder cannot tell which network is behind it
    assert validated("network=local", "testnet=true").testnet is True
    assert validated("network=local").testnet is False


def test_network_testnet_against_an_explicit_testnet_false(compose_cfg: Compose) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_omegaconf(compose_cfg("network=testnet", "testnet=false"))
    assert problems(error)[0].startswith("testnet: false contradicts network.rest_url")


# --------------------------------------------------------------------------- compose errors


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (["foo=1"], "foo: unknown key"),
        (["bacth_size=5"], "bacth_size: unknown key; did you mean batch_size?"),
        (
            ["connection.ping_intervall_seconds=5"],
            "connection.ping_intervall_seconds: unknown key; did you mean connection.ping_interval_seconds?",
        ),
        (["+batch_size=5"], "batch_size: already set; give it without the leading +"),
        (
            ["symbols=doge"],
            "symbols: no option 'doge' (options: btc, btc_eth, custom, eth, majors; or a list "
            "of your own: symbols=[SOLUSDT,XRPUSDT])",
        ),
        (["network=moon"], "network: no option 'moon' (options: local, mainnet, testnet)"),
        (
            ["batch_size=["],
            "cannot parse the override 'batch_size=[': no viable alternative at input '['",
        ),
    ],
)
def test_what_hydra_cannot_compose_is_one_line_naming_the_key(
    overrides: list[str], problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        compose_config(overrides)
    assert problems(error) == (problem,)


def test_config_files_are_not_world_readable_by_accident(tmp_path: Path) -> None:
    # the refusal is about the mode, whatever the umask made of it
    file = tmp_path / "recorder.yaml"
    file.write_text(f"account: {{api_key: {KEY}, api_secret: {SECRET}}}\n")
    os.chmod(file, 0o640)
    with pytest.raises(ConfigError, match=r"mode 0640"):
        load_config(file)
