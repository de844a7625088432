"""Shared fixtures: a real SQLite file per test, with reference rows and a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grid_db import DatabaseFactory, DatabaseSettings, ReferenceDataRepository, RunRepository

USER_ID = "00000000-0000-4000-8000-000000000001"
ACCOUNT_ID = "00000000-0000-4000-8000-000000000002"
STRATEGY_ID = "00000000-0000-4000-8000-000000000003"
BASE_MS = 1_700_000_000_000


@pytest.fixture
def rows() -> RowBuilder:
    return RowBuilder()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "recorder.db"


@pytest.fixture
def factory(db_path: Path) -> Iterator[DatabaseFactory]:
    database = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{db_path}"))
    database.create_tables()
    yield database
    database.dispose()


@pytest.fixture
def account_id(factory: DatabaseFactory) -> str:
    ReferenceDataRepository(factory.engine).upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True, user_name="tester"
    )
    return ACCOUNT_ID


@pytest.fixture
def run_id(factory: DatabaseFactory) -> str:
    run = RunRepository(factory.engine).create_run(
        config_json="{}", host="test-host", pid=4242, software_version="0.1.0"
    )
    return run.id


class RowBuilder:
    """Builds rows shaped as the recorder builds them (handed to tests by the ``rows`` fixture;
    pytest's importlib import mode keeps test modules from importing conftest directly)."""

    base_ms = BASE_MS

    @staticmethod
    def trade(
        index: int,
        *,
        run_id: str | None = None,
        symbol: str = "BTCUSDT",
        price: str = "28560.50",
        size: str = "0.000036",
        source: str = "ws",
    ) -> dict[str, Any]:
        """A public_trades row as the recorder would build it from a publicTrade item."""
        return {
            "category": "linear",
            "symbol": symbol,
            "trade_id": f"{index:08d}-5a3c-4f0e-9b1d-000000000000",
            "trade_time_ms": BASE_MS + index,
            "side": "Buy" if index % 2 else "Sell",
            "price": price,
            "size": size,
            "tick_direction": "PlusTick",
            "is_block_trade": False,
            "is_rpi": None,
            "seq": 1_000_000 + index,
            "exchange_ts_ms": BASE_MS + index + 1,
            "received_ts_ms": BASE_MS + index + 5,
            "source": source,
            "run_id": run_id,
        }

    @staticmethod
    def execution(exec_id: str, account_id: str, *, exec_time_ms: int = BASE_MS) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "run_id": None,
            "category": "linear",
            "symbol": "BTCUSDT",
            "exec_id": exec_id,
            "order_id": "order-1",
            "order_link_id": "",
            "side": "Buy",
            "order_type": "Limit",
            "exec_type": "Trade",
            "exec_price": "28560.50",
            "exec_qty": "0.001",
            "exec_value": "28.5605",
            "exec_fee": "0.01713630",
            "fee_rate": "0.0006",
            "closed_size": "0",
            "exec_pnl": "0",
            "is_maker": False,
            "exec_time_ms": exec_time_ms,
            "seq": 42,
            "raw": '{"execId": "' + exec_id + '"}',
            "exchange_ts_ms": exec_time_ms + 3,
            "received_ts_ms": exec_time_ms + 9,
            "source": "ws",
        }

    @staticmethod
    def order(
        order_id: str, account_id: str, *, updated_time_ms: int, order_status: str
    ) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "run_id": None,
            "category": "linear",
            "symbol": "BTCUSDT",
            "order_id": order_id,
            "order_link_id": "link-1",
            "side": "Buy",
            "order_type": "Limit",
            "price": "28000.0",
            "qty": "0.010",
            "order_status": order_status,
            "avg_price": "",
            "leaves_qty": "0.010",
            "cum_exec_qty": "0",
            "cum_exec_value": "0",
            "cum_exec_fee": "0",
            "time_in_force": "GTC",
            "reduce_only": False,
            "created_time_ms": BASE_MS,
            "updated_time_ms": updated_time_ms,
            "raw": "{}",
            "exchange_ts_ms": updated_time_ms + 1,
            "received_ts_ms": updated_time_ms + 2,
            "source": "ws",
        }

    @staticmethod
    def ticker(
        exchange_ts_ms: int, *, last_price: str, frame_type: str = "delta"
    ) -> dict[str, Any]:
        return {
            "category": "linear",
            "symbol": "BTCUSDT",
            "exchange_ts_ms": exchange_ts_ms,
            "received_ts_ms": exchange_ts_ms + 4,
            "cross_seq": 77,
            "frame_type": frame_type,
            "last_price": last_price,
            "mark_price": "28561.00",
            "index_price": None,
            "bid1_price": "28560.40",
            "bid1_size": "1.5",
            "ask1_price": "28560.60",
            "ask1_size": "0.2",
            "open_interest": None,
            "open_interest_value": None,
            "funding_rate": "-0.00005",
            "next_funding_time": "1700006400000",
            "volume_24h": None,
            "turnover_24h": None,
            "high_price_24h": None,
            "low_price_24h": None,
            "prev_price_24h": None,
            "price_24h_pcnt": "0.012",
            "data": '{"lastPrice": "' + last_price + '"}',
            "run_id": None,
        }
