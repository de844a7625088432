"""Shared fixtures: a database per test (SQLite file, or both backends), records to write.

``database`` runs a test on each backend of the root conftest's ``database_url`` (a SQLite
file, then a fresh PostgreSQL database); ``factory`` is a SQLite file only, for what is
SQLite's own (pragmas, file paths, the write lock).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Connection, Engine, func, select

from bybit_records import (
    BookKind,
    BookUpdate,
    Category,
    DataSource,
    Execution,
    FillStatus,
    FrameType,
    Gap,
    Order,
    OutageCause,
    Position,
    Record,
    RejectedFrame,
    Ticker,
    Topic,
    Trade,
    Wallet,
)
from grid_db import (
    DatabaseFactory,
    RecordTable,
    ReferenceDataRepository,
    RowContext,
    RunRef,
    RunRepository,
    table_of,
    write_records,
)
from testkit import make_book_update, prepared_database

USER_ID = "00000000-0000-4000-8000-000000000001"
ACCOUNT_ID = "00000000-0000-4000-8000-000000000002"
STRATEGY_ID = "00000000-0000-4000-8000-000000000003"
BASE_MS = 1_700_000_000_000


@pytest.fixture
def records() -> RecordBuilder:
    return RecordBuilder()


@pytest.fixture
def db() -> DbHelpers:
    return DbHelpers()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "recorder.db"


@pytest.fixture
def factory(db_path: Path) -> Iterator[DatabaseFactory]:
    """A prepared SQLite file (tests of what only SQLite has)."""
    with prepared_database(f"sqlite:///{db_path}") as database:
        yield database


@pytest.fixture
def database(database_url: str) -> Iterator[DatabaseFactory]:
    """A prepared database, once on SQLite and once on PostgreSQL."""
    with prepared_database(database_url) as prepared:
        yield prepared


@pytest.fixture
def account_id(database: DatabaseFactory) -> str:
    ReferenceDataRepository(database.engine).upsert_reference_rows(
        USER_ID, ACCOUNT_ID, STRATEGY_ID, testnet=True, user_name="tester"
    )
    return ACCOUNT_ID


@pytest.fixture
def run_id(database: DatabaseFactory) -> str:
    run = RunRepository(database.engine).create_run(
        config_json="{}", host="test-host", pid=4242, software_version="0.1.0"
    )
    return run.id


class DbHelpers:
    """Writes and reads through the one write path and plain Core queries."""

    @staticmethod
    def write(
        engine: Engine | Connection,
        batch: Sequence[Record],
        *,
        run_id: str | None = None,
        account_id: str | None = None,
    ) -> int:
        """``write_records`` of a batch of one record type, in its own transaction (the
        run's number looked up as the recorder does)."""
        table = table_of(type(batch[0]))

        def write(connection: Connection) -> int:
            ref = None
            if run_id is not None:
                ref = connection.scalar(select(RunRef.ref).where(RunRef.run_id == run_id))
            context = RowContext(run_id=run_id, account_id=account_id, run_ref=ref)
            return write_records(connection, table, batch, context)

        if isinstance(engine, Connection):
            return write(engine)
        with engine.begin() as connection:
            return write(connection)

    @staticmethod
    def count(engine: Engine, table: RecordTable[Any], *where: Any) -> int:
        statement = select(func.count()).select_from(table.table).where(*where)
        with engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    @staticmethod
    def stored(engine: Engine, table: RecordTable[Any], *where: Any) -> list[Any]:
        """The records of ``table`` in insertion order."""
        return [table.record_of(row) for row in DbHelpers.rows(engine, table, *where)]

    @staticmethod
    def rows(engine: Engine, table: RecordTable[Any], *where: Any) -> list[Any]:
        """The raw rows of ``table`` (every column, context ones included), insertion order."""
        statement = select(table.table).where(*where).order_by(*table.storage_order)
        with engine.connect() as connection:
            return list(connection.execute(statement).all())


class RecordBuilder:
    """Records shaped as the adapter decodes them (handed out by the ``records`` fixture:
    pytest's importlib import mode keeps test modules from importing conftest)."""

    base_ms = BASE_MS

    @staticmethod
    def trade(
        index: int,
        *,
        symbol: str = "BTCUSDT",
        category: Category = Category.LINEAR,
        price: str = "28560.50",
        size: str = "0.000036",
        source: DataSource | str = DataSource.WS,
        trade_time_ms: int | None = None,
    ) -> Trade:
        return Trade(
            category=category,
            symbol=symbol,
            trade_id=f"{index:08d}-5a3c-4f0e-9b1d-000000000000",
            trade_time_ms=BASE_MS + index if trade_time_ms is None else trade_time_ms,
            side="Buy" if index % 2 else "Sell",
            price=price,
            size=size,
            tick_direction="PlusTick",
            is_block_trade=False,
            is_rpi=None,
            seq=1_000_000 + index,
            exchange_ts_ms=BASE_MS + index + 1,
            received_ts_ms=BASE_MS + index + 5,
            source=source,  # type: ignore[arg-type]
        )

    @staticmethod
    def ticker(
        exchange_ts_ms: int,
        *,
        last_price: str = "28560.50",
        frame_type: FrameType | str = FrameType.DELTA,
        symbol: str = "BTCUSDT",
    ) -> Ticker:
        return Ticker(
            category=Category.LINEAR,
            symbol=symbol,
            exchange_ts_ms=exchange_ts_ms,
            received_ts_ms=exchange_ts_ms + 4,
            cross_seq=77,
            frame_type=frame_type,  # type: ignore[arg-type]
            last_price=last_price,
            mark_price="28561.00",
            index_price=None,
            bid1_price="28560.40",
            bid1_size="1.5",
            ask1_price="28560.60",
            ask1_size="0.2",
            open_interest=None,
            open_interest_value=None,
            funding_rate="-0.00005",
            next_funding_time="1700006400000",
            volume_24h=None,
            turnover_24h=None,
            high_price_24h=None,
            low_price_24h=None,
            prev_price_24h=None,
            price_24h_pcnt="0.012",
            data={"lastPrice": last_price, "symbol": symbol, "nested": {"a": [1, 2.5, None]}},
        )

    @staticmethod
    def execution(
        exec_id: str, *, exec_time_ms: int = BASE_MS, exec_fee: str = "0.01713630"
    ) -> Execution:
        return Execution(
            category=Category.LINEAR,
            symbol="BTCUSDT",
            exec_id=exec_id,
            order_id="order-1",
            order_link_id="",
            side="Buy",
            order_type="Limit",
            exec_type="Trade",
            exec_price="28560.50",
            exec_qty="0.001",
            exec_value="28.5605",
            exec_fee=exec_fee,
            fee_rate="0.0006",
            closed_size="0",
            exec_pnl="0",
            is_maker=False,
            exec_time_ms=exec_time_ms,
            seq=42,
            raw={"execId": exec_id, "execFee": exec_fee, "isMaker": False},
            exchange_ts_ms=exec_time_ms + 3,
            received_ts_ms=exec_time_ms + 9,
        )

    @staticmethod
    def order(order_id: str, *, updated_time_ms: int = BASE_MS, order_status: str = "New") -> Order:
        return Order(
            category=Category.LINEAR,
            symbol="BTCUSDT",
            order_id=order_id,
            order_link_id="link-1",
            side="Buy",
            order_type="Limit",
            price="28000.0",
            qty="0.010",
            order_status=order_status,
            avg_price="",
            leaves_qty="0.010",
            cum_exec_qty="0",
            cum_exec_value="0",
            cum_exec_fee="0",
            time_in_force="GTC",
            reduce_only=False,
            created_time_ms=BASE_MS,
            updated_time_ms=updated_time_ms,
            raw={"orderId": order_id, "orderStatus": order_status},
            exchange_ts_ms=updated_time_ms + 1,
            received_ts_ms=updated_time_ms + 2,
        )

    @staticmethod
    def position(received_ts_ms: int = BASE_MS, *, size: str = "0.010") -> Position:
        return Position(
            category=Category.LINEAR,
            symbol="BTCUSDT",
            side="Buy",
            size=size,
            position_idx=0,
            entry_price="28000.5",
            mark_price="28560.50",
            position_value="280.005",
            unrealised_pnl="5.6",
            cum_realised_pnl="-0.17",
            leverage="10",
            liq_price="",
            updated_time_ms=received_ts_ms - 2,
            raw={"symbol": "BTCUSDT", "size": size},
            exchange_ts_ms=received_ts_ms - 1,
            received_ts_ms=received_ts_ms,
        )

    @staticmethod
    def wallet(received_ts_ms: int = BASE_MS, *, source: DataSource = DataSource.WS) -> Wallet:
        return Wallet(
            account_type="UNIFIED",
            total_equity="1000.00",
            total_wallet_balance="999.5",
            total_available_balance="900",
            total_margin_balance="999.5",
            coins=[
                {"coin": "USDT", "walletBalance": "999.5", "locked": "0"},
                {"coin": "BTC", "walletBalance": "0.00000001", "marginCollateral": True},
            ],
            raw={"accountType": "UNIFIED", "coin": []},
            exchange_ts_ms=None,
            received_ts_ms=received_ts_ms,
            source=source,
        )

    @staticmethod
    def gap(
        start_ts_ms: int = BASE_MS,
        *,
        stream: Topic = Topic.PUBLIC_TRADE,
        fill_status: FillStatus | str = FillStatus.PARTIAL,
        symbol: str | None = "BTCUSDT",
    ) -> Gap:
        return Gap(
            stream=stream,
            category=Category.LINEAR if symbol else None,
            symbol=symbol,
            start_ts_ms=start_ts_ms,
            end_ts_ms=start_ts_ms + 7_000,
            cause=OutageCause.DISCONNECT,
            fill_status=fill_status,  # type: ignore[arg-type]
            rows_recovered=1000,
            recovered_from_ts_ms=start_ts_ms + 3_000,
            detail=None,
            detected_at_ms=start_ts_ms + 7_100,
            resolved_at_ms=start_ts_ms + 7_500,
        )

    @staticmethod
    def unfillable_gap() -> Gap:
        """An unfillable gap of a private stream: no category or symbol, never resolved."""
        return Gap(
            stream=Topic.EXECUTION,
            category=None,
            symbol=None,
            start_ts_ms=1_000,
            end_ts_ms=1_500,
            cause=OutageCause.AUTH,
            fill_status=FillStatus.UNFILLABLE,
            rows_recovered=0,
            recovered_from_ts_ms=None,
            detail="HTTP 403",
            detected_at_ms=1_600,
            resolved_at_ms=None,
        )

    @staticmethod
    def rejected(
        received_ts_ms: int = BASE_MS, *, reason: str = "missing field 'p'"
    ) -> RejectedFrame:
        return RejectedFrame(
            stream="public.linear",
            received_ts_ms=received_ts_ms,
            reason=reason,
            payload='{"topic": "publicTrade.BTCUSDT", "data": [{"T": 1}]}',
        )

    @staticmethod
    def book(exchange_ts_ms: int, kind: BookKind, update_id: int) -> BookUpdate:
        return make_book_update(
            kind,
            update_id,
            exchange_ts_ms,
            bids=(("28560.40", "1.5"), ("28560.30", "0")),
            asks=(("28560.60", "0.2"),),
        )

    def one_of_each(self) -> list[list[Record]]:
        """Two records of every type: one with every optional field set, one with None."""
        b = BASE_MS
        return [
            [self.trade(1), _replace(self.trade(2), tick_direction=None, is_rpi=True, seq=None)],
            [
                self.ticker(b, frame_type=FrameType.SNAPSHOT),
                _replace(self.ticker(b + 1), cross_seq=None, last_price=None, data={}),
            ],
            [
                self.book(b, BookKind.SNAPSHOT, 10),
                _replace(self.book(b + 20, BookKind.DELTA, 11), seq=None, match_ts_ms=None),
            ],
            [
                self.execution("e-1"),
                _replace(
                    self.execution("e-2"),
                    order_link_id=None,
                    is_maker=None,
                    seq=None,
                    exchange_ts_ms=None,
                    source=DataSource.REST,
                ),
            ],
            [
                self.order("o-1"),
                _replace(self.order("o-2"), reduce_only=None, created_time_ms=None, side=None),
            ],
            [
                self.position(b),
                _replace(self.position(b + 1), position_idx=None, updated_time_ms=None, raw={}),
            ],
            [self.wallet(b), _replace(self.wallet(b + 1), coins=[], total_equity=None)],
            [self.gap(b), self.unfillable_gap()],
            [self.rejected(b), self.rejected(b + 1, reason="bad 'é' ✓ \\ \" '")],
        ]


def _replace(record: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(record, **changes)
