"""The bookkeeping rows: runs, and the reference rows a run points at.

Each repository wraps an ``Engine`` and opens a short transaction per call, so one
instance per thread is cheap and no Session is shared between threads. Rows returned
stay readable after their session closed. Recorded data is written through
``grid_db.writes`` and read with plain queries on ``grid_db.tables``.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from grid_db.errors import InvalidArgumentError, RunNotFoundError, UnsupportedDialectError
from grid_db.models import Base, BybitAccount, Run, RunRef, RunStatus, Strategy, User

#: ``runs.error`` given to a run whose process is gone but which was still ``running``.
DEAD_RUN_ERROR = "the recorder process ended without closing this run (killed or crashed)"


def now_ms() -> int:
    """Current wall-clock time in ms since the Unix epoch, UTC."""
    return time.time_ns() // 1_000_000


class _Repository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine


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
            session.flush()  # the run row first: its number refers to it
            session.add(RunRef(run_id=run.id))
        return run

    def ref_of(self, run_id: str) -> int | None:
        """The run's number (``run_refs.ref``), which trades and tickers store; None for
        a run without one."""
        with self._engine.connect() as connection:
            ref = connection.scalar(select(RunRef.ref).where(RunRef.run_id == run_id))
        return None if ref is None else int(ref)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        *,
        ended_at_ms: int | None = None,
    ) -> Run:
        """Set a terminal status (completed/error/aborted), the end time and the error."""
        if status is RunStatus.RUNNING:
            raise InvalidArgumentError("finish_run needs a terminal status, not 'running'")
        with self._sessions.begin() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            run.status = status.value
            run.ended_at_ms = now_ms() if ended_at_ms is None else ended_at_ms
            run.error = error
        return run

    def get(self, run_id: str) -> Run | None:
        with self._sessions() as session:
            return session.get(Run, run_id)

    def list(self, *, status: RunStatus | None = None) -> builtins.list[Run]:
        """Runs, newest first."""
        statement = select(Run).order_by(Run.started_at_ms.desc(), Run.id)
        if status is not None:
            statement = statement.where(Run.status == status.value)
        with self._sessions() as session:
            return list(session.scalars(statement).all())

    def abort_dead_runs(self, host: str, is_alive: Callable[[int], bool]) -> builtins.list[Run]:
        """Mark ``aborted`` the runs of ``host`` still ``running`` whose process is gone.

        Only this host's runs can be judged (a pid means nothing elsewhere), so a
        database shared by recorders on several hosts never loses a live run.
        """
        aborted = []
        for run in self.list(status=RunStatus.RUNNING):
            if run.host == host and not is_alive(run.pid):
                aborted.append(
                    self.finish_run(run.id, RunStatus.ABORTED, run.error or DEAD_RUN_ERROR)
                )
        return aborted


class ReferenceDataRepository(_Repository):
    """``users``, ``bybit_accounts`` and ``strategies`` rows with fixed ids."""

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
            upsert = _upsert(connection.dialect.name)
            connection.execute(
                upsert(User, {"id": user_id, "name": user_name, "created_at_ms": created})
            )
            if account_id is not None:
                account = {
                    "id": account_id,
                    "user_id": user_id,
                    "label": account_label,
                    "testnet": testnet,
                    "created_at_ms": created,
                }
                connection.execute(upsert(BybitAccount, account))
            if strategy_id is not None:
                strategy = {
                    "id": strategy_id,
                    "user_id": user_id,
                    "name": strategy_name,
                    "description": strategy_description,
                }
                connection.execute(upsert(Strategy, strategy))

    def get_account(self, account_id: str) -> BybitAccount | None:
        with self._sessions() as session:
            return session.get(BybitAccount, account_id)


def _upsert(dialect_name: str) -> Callable[..., Any]:
    """``INSERT ... ON CONFLICT (id) DO UPDATE`` of every column of the row but ``id`` and
    ``created_at_ms``: a row keeps the time it was first created."""
    if dialect_name == "sqlite":
        insert: Any = sqlite.insert
    elif dialect_name == "postgresql":
        insert = postgresql.insert
    else:
        raise UnsupportedDialectError(dialect_name, "upsert")

    def statement(model: type[Base], row: dict[str, Any]) -> Any:
        stmt = insert(model).values(**row)
        kept = ("id", "created_at_ms")
        update = {name: stmt.excluded[name] for name in row if name not in kept}
        return stmt.on_conflict_do_update(index_elements=["id"], set_=update)

    return statement
