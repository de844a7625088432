"""Repositories: the reads tools and tests need, plus one-transaction batch writes.

Each repository wraps an ``Engine`` and opens a short transaction per call, so one
instance per thread is cheap and no Session is shared between threads. Reads return
ORM objects that stay readable after their session closed.

Time-range filters are half-open, ``start_ms <= t < end_ms``, matching how gaps
describe unrecovered windows.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, sessionmaker

from grid_db.errors import InvalidArgumentError, RunNotFoundError
from grid_db.models import (
    Base,
    BybitAccount,
    FillStatus,
    Gap,
    Order,
    PositionSnapshot,
    PrivateExecution,
    PublicTrade,
    RejectedFrame,
    Run,
    RunStatus,
    Strategy,
    TickerSnapshot,
    User,
    WalletSnapshot,
)
from grid_db.writes import Row, insert_ignore, insert_rows, upsert_rows

ModelT = TypeVar("ModelT", bound=Base)

#: ``runs.error`` given to runs found still ``running`` by a newer recorder.
STALE_RUN_ERROR = "aborted: still marked running when a later run started (process died?)"


def now_ms() -> int:
    """Current wall-clock time in ms since the Unix epoch, UTC."""
    return time.time_ns() // 1_000_000


class DuplicateTradeKey(NamedTuple):
    """A natural key of ``public_trades`` stored more than once (should never happen)."""

    category: str
    symbol: str
    trade_id: str
    copies: int


class _Repository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine

    def _all(self, statement: Select[ModelT]) -> builtins.list[ModelT]:
        with self._sessions() as session:
            return list(session.scalars(statement).all())

    def _first(self, statement: Select[ModelT]) -> ModelT | None:
        with self._sessions() as session:
            return session.scalars(statement.limit(1)).first()

    def _count_where(self, model: type[Base], conditions: Sequence[ColumnElement[bool]]) -> int:
        statement = select(func.count()).select_from(model).where(*conditions)
        with self._engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())


def _equal_to(
    *filters: tuple[InstrumentedAttribute[Any], object],
) -> builtins.list[ColumnElement[bool]]:
    """``column == value`` for every (column, value) filter whose value is not None."""
    return [column == value for column, value in filters if value is not None]


def _in_range(
    column: InstrumentedAttribute[int], start_ms: int | None, end_ms: int | None
) -> builtins.list[ColumnElement[bool]]:
    conditions: builtins.list[ColumnElement[bool]] = []
    if start_ms is not None:
        conditions.append(column >= start_ms)
    if end_ms is not None:
        conditions.append(column < end_ms)
    return conditions


class _BatchRepository(_Repository):
    """A table written in batches; ``insert_many`` is one transaction per batch."""

    _model: ClassVar[type[Base]]
    #: True where the table has a natural key: duplicates are skipped, not stored.
    _skip_duplicates: ClassVar[bool]

    def insert_many(self, rows: Sequence[Row]) -> int:
        """Insert ``rows`` in one transaction; returns how many were stored.

        For tables with a natural key (trades, executions, orders) rows colliding
        with stored rows or with each other are skipped, so ``len(rows) - result``
        is the number of duplicates. Other tables store every row.
        """
        if not rows:
            return 0
        with self._engine.begin() as connection:
            if self._skip_duplicates:
                return insert_ignore(connection, self._model, rows)
            return insert_rows(connection, self._model, rows)


class RunRepository(_Repository):
    """Lifecycle of ``runs`` rows."""

    def create_run(
        self,
        *,
        config_json: str,
        host: str,
        pid: int,
        software_version: str,
        started_at_ms: int | None = None,
        run_id: str | None = None,
        git_commit: str | None = None,
        output_dir: str | None = None,
        account_id: str | None = None,
        strategy_id: str | None = None,
    ) -> Run:
        """Insert a ``running`` run. ``config_json`` must already be free of secrets."""
        run = Run(
            id=run_id or str(uuid.uuid4()),
            status=RunStatus.RUNNING.value,
            started_at_ms=now_ms() if started_at_ms is None else started_at_ms,
            ended_at_ms=None,
            config_json=config_json,
            host=host,
            pid=pid,
            software_version=software_version,
            git_commit=git_commit,
            output_dir=output_dir,
            account_id=account_id,
            strategy_id=strategy_id,
            error=None,
        )
        with self._sessions.begin() as session:
            session.add(run)
        return run

    def finish_run(
        self,
        run_id: str,
        status: RunStatus | str,
        error: str | None = None,
        *,
        ended_at_ms: int | None = None,
    ) -> Run:
        """Set a terminal status (completed/error/aborted), the end time and the error.

        Overwrites an earlier terminal status on purpose: a run another recorder
        marked ``aborted`` as stale but that was in fact alive reports its real end.
        """
        final_status = _terminal_status(status)
        with self._sessions.begin() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            run.status = final_status.value
            run.ended_at_ms = now_ms() if ended_at_ms is None else ended_at_ms
            run.error = error
        return run

    def get(self, run_id: str) -> Run | None:
        with self._sessions() as session:
            return session.get(Run, run_id)

    def list(
        self,
        *,
        status: RunStatus | str | None = None,
        started_since_ms: int | None = None,
        limit: int | None = None,
    ) -> builtins.list[Run]:
        """Runs, newest first (by ``started_at_ms``)."""
        conditions = _equal_to((Run.status, None if status is None else str(status)))
        if started_since_ms is not None:
            conditions.append(Run.started_at_ms >= started_since_ms)
        statement = (
            select(Run).where(*conditions).order_by(Run.started_at_ms.desc(), Run.id).limit(limit)
        )
        return self._all(statement)

    def mark_stale_running_as_aborted(
        self,
        exclude_id: str | None = None,
        *,
        ended_at_ms: int | None = None,
        error: str = STALE_RUN_ERROR,
    ) -> int:
        """Mark every ``running`` run except ``exclude_id`` as ``aborted``; returns how many.

        A recorder that crashed never finished its run; the next one calls this at
        start-up so the table does not claim sessions are still recording. An error
        already recorded on such a run is kept.
        """
        conditions = [Run.status == RunStatus.RUNNING.value]
        if exclude_id is not None:
            conditions.append(Run.id != exclude_id)
        statement = (
            update(Run)
            .where(*conditions)
            .values(
                status=RunStatus.ABORTED.value,
                ended_at_ms=now_ms() if ended_at_ms is None else ended_at_ms,
                error=func.coalesce(Run.error, error),
            )
        )
        with self._engine.begin() as connection:
            # A single-statement UPDATE: rowcount is the number of matched rows.
            return connection.execute(statement).rowcount


def _terminal_status(status: RunStatus | str) -> RunStatus:
    try:
        parsed = RunStatus(status)
    except ValueError:
        raise InvalidArgumentError(f"unknown run status {status!r}") from None
    if parsed is RunStatus.RUNNING:
        raise InvalidArgumentError("finish_run needs a terminal status, not 'running'")
    return parsed


class TradeRepository(_BatchRepository):
    """``public_trades``: de-duplicated on (category, symbol, trade_id)."""

    _model = PublicTrade
    _skip_duplicates = True

    def count(self, category: str | None = None, symbol: str | None = None) -> int:
        conditions = _equal_to((PublicTrade.category, category), (PublicTrade.symbol, symbol))
        return self._count_where(PublicTrade, conditions)

    def list(
        self,
        category: str,
        symbol: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[PublicTrade]:
        """Trades with ``start_ms <= trade_time_ms < end_ms``, oldest first.

        Ties on ``trade_time_ms`` are ordered by insertion (``id``).
        """
        statement = (
            select(PublicTrade)
            .where(
                PublicTrade.category == category,
                PublicTrade.symbol == symbol,
                *_in_range(PublicTrade.trade_time_ms, start_ms, end_ms),
            )
            .order_by(PublicTrade.trade_time_ms, PublicTrade.id)
            .limit(limit)
        )
        return self._all(statement)

    def trade_ids(self, category: str, symbol: str) -> builtins.list[str]:
        """Every stored ``trade_id`` of one symbol, in trade-time order."""
        statement = (
            select(PublicTrade.trade_id)
            .where(PublicTrade.category == category, PublicTrade.symbol == symbol)
            .order_by(PublicTrade.trade_time_ms, PublicTrade.id)
        )
        with self._engine.connect() as connection:
            return list(connection.execute(statement).scalars().all())

    def duplicate_keys(self) -> builtins.list[DuplicateTradeKey]:
        """Natural keys stored more than once; empty unless the UNIQUE constraint is gone.

        The same query users can run to validate a database (see docs/schema.md).
        """
        copies = func.count().label("copies")
        statement = (
            select(PublicTrade.category, PublicTrade.symbol, PublicTrade.trade_id, copies)
            .group_by(PublicTrade.category, PublicTrade.symbol, PublicTrade.trade_id)
            .having(func.count() > 1)
            .order_by(PublicTrade.category, PublicTrade.symbol, PublicTrade.trade_id)
        )
        with self._engine.connect() as connection:
            return [DuplicateTradeKey(*row) for row in connection.execute(statement).all()]


class TickerRepository(_BatchRepository):
    """``ticker_snapshots``: every merged state is stored (no natural key)."""

    _model = TickerSnapshot
    _skip_duplicates = False

    def count(self, category: str | None = None, symbol: str | None = None) -> int:
        conditions = _equal_to((TickerSnapshot.category, category), (TickerSnapshot.symbol, symbol))
        return self._count_where(TickerSnapshot, conditions)

    def latest(self, category: str, symbol: str) -> TickerSnapshot | None:
        """The snapshot with the highest ``exchange_ts_ms`` (last stored on a tie)."""
        statement = (
            select(TickerSnapshot)
            .where(TickerSnapshot.category == category, TickerSnapshot.symbol == symbol)
            .order_by(TickerSnapshot.exchange_ts_ms.desc(), TickerSnapshot.id.desc())
        )
        return self._first(statement)

    def list(
        self,
        category: str,
        symbol: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[TickerSnapshot]:
        """Snapshots with ``start_ms <= exchange_ts_ms < end_ms``, oldest first."""
        statement = (
            select(TickerSnapshot)
            .where(
                TickerSnapshot.category == category,
                TickerSnapshot.symbol == symbol,
                *_in_range(TickerSnapshot.exchange_ts_ms, start_ms, end_ms),
            )
            .order_by(TickerSnapshot.exchange_ts_ms, TickerSnapshot.id)
            .limit(limit)
        )
        return self._all(statement)


class ExecutionRepository(_BatchRepository):
    """``private_executions``: de-duplicated on ``exec_id``."""

    _model = PrivateExecution
    _skip_duplicates = True

    def count(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
    ) -> int:
        return self._count_where(
            PrivateExecution, _account_symbol_filter(PrivateExecution, account_id, category, symbol)
        )

    def list(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[PrivateExecution]:
        """Executions with ``start_ms <= exec_time_ms < end_ms``, oldest first."""
        statement = (
            select(PrivateExecution)
            .where(
                *_account_symbol_filter(PrivateExecution, account_id, category, symbol),
                *_in_range(PrivateExecution.exec_time_ms, start_ms, end_ms),
            )
            .order_by(PrivateExecution.exec_time_ms, PrivateExecution.id)
            .limit(limit)
        )
        return self._all(statement)


class OrderRepository(_BatchRepository):
    """``orders``: one row per (order_id, updated_time_ms, order_status)."""

    _model = Order
    _skip_duplicates = True

    def count(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
    ) -> int:
        return self._count_where(Order, _account_symbol_filter(Order, account_id, category, symbol))

    def list(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        order_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Order]:
        """Order states with ``start_ms <= updated_time_ms < end_ms``, oldest first."""
        statement = (
            select(Order)
            .where(
                *_account_symbol_filter(Order, account_id, category, symbol),
                *_equal_to((Order.order_id, order_id)),
                *_in_range(Order.updated_time_ms, start_ms, end_ms),
            )
            .order_by(Order.updated_time_ms, Order.id)
            .limit(limit)
        )
        return self._all(statement)


class PositionRepository(_BatchRepository):
    """``position_snapshots``: every pushed position state is stored."""

    _model = PositionSnapshot
    _skip_duplicates = False

    def count(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
    ) -> int:
        return self._count_where(
            PositionSnapshot, _account_symbol_filter(PositionSnapshot, account_id, category, symbol)
        )

    def list(
        self,
        account_id: str | None = None,
        category: str | None = None,
        symbol: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[PositionSnapshot]:
        """Position states with ``start_ms <= received_ts_ms < end_ms``, oldest first."""
        statement = (
            select(PositionSnapshot)
            .where(
                *_account_symbol_filter(PositionSnapshot, account_id, category, symbol),
                *_in_range(PositionSnapshot.received_ts_ms, start_ms, end_ms),
            )
            .order_by(PositionSnapshot.received_ts_ms, PositionSnapshot.id)
            .limit(limit)
        )
        return self._all(statement)


class WalletRepository(_BatchRepository):
    """``wallet_snapshots``: every pushed wallet state is stored."""

    _model = WalletSnapshot
    _skip_duplicates = False

    def count(self, account_id: str | None = None) -> int:
        return self._count_where(WalletSnapshot, _equal_to((WalletSnapshot.account_id, account_id)))

    def list(
        self,
        account_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[WalletSnapshot]:
        """Wallet states with ``start_ms <= received_ts_ms < end_ms``, oldest first."""
        statement = (
            select(WalletSnapshot)
            .where(
                *_equal_to((WalletSnapshot.account_id, account_id)),
                *_in_range(WalletSnapshot.received_ts_ms, start_ms, end_ms),
            )
            .order_by(WalletSnapshot.received_ts_ms, WalletSnapshot.id)
            .limit(limit)
        )
        return self._all(statement)


class RejectedFrameRepository(_BatchRepository):
    """``rejected_frames``: frames that could not be parsed or stored."""

    _model = RejectedFrame
    _skip_duplicates = False

    def count(self, run_id: str | None = None) -> int:
        return self._count_where(RejectedFrame, _equal_to((RejectedFrame.run_id, run_id)))

    def list(
        self, run_id: str | None = None, *, limit: int | None = None
    ) -> builtins.list[RejectedFrame]:
        """Rejected frames, oldest first."""
        statement = (
            select(RejectedFrame)
            .where(*_equal_to((RejectedFrame.run_id, run_id)))
            .order_by(RejectedFrame.received_ts_ms, RejectedFrame.id)
            .limit(limit)
        )
        return self._all(statement)


class GapRepository(_Repository):
    """``gaps``: outage windows and the outcome of their REST reconciliation."""

    def add(
        self,
        *,
        run_id: str | None,
        stream: str,
        start_ts_ms: int,
        end_ts_ms: int,
        cause: str,
        fill_status: FillStatus | str,
        category: str | None = None,
        symbol: str | None = None,
        rows_recovered: int = 0,
        recovered_from_ts_ms: int | None = None,
        detail: str | None = None,
        detected_at_ms: int | None = None,
        resolved_at_ms: int | None = None,
    ) -> Gap:
        """Record one gap; ``detected_at_ms`` defaults to now. Returns it with its id."""
        try:
            checked_fill_status = FillStatus(fill_status)
        except ValueError:
            raise InvalidArgumentError(f"unknown gap fill_status {fill_status!r}") from None
        gap = Gap(
            run_id=run_id,
            stream=stream,
            category=category,
            symbol=symbol,
            start_ts_ms=start_ts_ms,
            end_ts_ms=end_ts_ms,
            cause=cause,
            fill_status=checked_fill_status.value,
            rows_recovered=rows_recovered,
            recovered_from_ts_ms=recovered_from_ts_ms,
            detail=detail,
            detected_at_ms=now_ms() if detected_at_ms is None else detected_at_ms,
            resolved_at_ms=resolved_at_ms,
        )
        with self._sessions.begin() as session:
            session.add(gap)
        return gap

    def count(self, run_id: str | None = None) -> int:
        return self._count_where(Gap, _equal_to((Gap.run_id, run_id)))

    def list(self, run_id: str | None = None, *, stream: str | None = None) -> builtins.list[Gap]:
        """Gaps ordered by window start, then by recording order."""
        statement = (
            select(Gap)
            .where(*_equal_to((Gap.run_id, run_id), (Gap.stream, stream)))
            .order_by(Gap.start_ts_ms, Gap.id)
        )
        return self._all(statement)


class ReferenceDataRepository(_Repository):
    """``users``, ``bybit_accounts`` and ``strategies`` rows with fixed ids from config."""

    def upsert_reference_rows(
        self,
        user_id: str,
        account_id: str | None,
        strategy_id: str | None,
        *,
        testnet: bool,
        user_name: str = "default",
        account_label: str = "default",
        strategy_name: str = "default",
        strategy_description: str | None = None,
        created_at_ms: int | None = None,
    ) -> None:
        """Create the rows, or bring their names up to date; safe to call on every start.

        ``created_at_ms`` (default now) is only written when a row is first created.
        ``account_id``/``strategy_id`` of None skip that row. No credential is stored.
        """
        created = now_ms() if created_at_ms is None else created_at_ms
        with self._engine.begin() as connection:
            upsert_rows(
                connection,
                User,
                [{"id": user_id, "name": user_name, "created_at_ms": created}],
                key_columns=["id"],
                update_columns=["name"],
            )
            if account_id is not None:
                upsert_rows(
                    connection,
                    BybitAccount,
                    [
                        {
                            "id": account_id,
                            "user_id": user_id,
                            "label": account_label,
                            "testnet": testnet,
                            "created_at_ms": created,
                        }
                    ],
                    key_columns=["id"],
                    update_columns=["user_id", "label", "testnet"],
                )
            if strategy_id is not None:
                upsert_rows(
                    connection,
                    Strategy,
                    [
                        {
                            "id": strategy_id,
                            "user_id": user_id,
                            "name": strategy_name,
                            "description": strategy_description,
                        }
                    ],
                    key_columns=["id"],
                    update_columns=["user_id", "name", "description"],
                )

    def get_user(self, user_id: str) -> User | None:
        with self._sessions() as session:
            return session.get(User, user_id)

    def get_account(self, account_id: str) -> BybitAccount | None:
        with self._sessions() as session:
            return session.get(BybitAccount, account_id)

    def get_strategy(self, strategy_id: str) -> Strategy | None:
        with self._sessions() as session:
            return session.get(Strategy, strategy_id)


def _account_symbol_filter(
    model: type[PrivateExecution] | type[Order] | type[PositionSnapshot],
    account_id: str | None,
    category: str | None,
    symbol: str | None,
) -> builtins.list[ColumnElement[bool]]:
    return _equal_to(
        (model.account_id, account_id),
        (model.category, category),
        (model.symbol, symbol),
    )
