"""The database a completeness check reads: one session, opened read-only, and its symbols."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from recorder_tools.check.errors import CompletenessError
from recorder_tools.database import (
    ReadOnlyOpenError,
    SessionDatabase,
    display_target,
    find_session_database,
    first_line,
    open_read_only,
)
from recorder_tools.schema import GAPS, PUBLIC_TRADES, RUNS

#: The tables a check reads; a database without them is not a recorder database.
CHECKED_TABLES = (PUBLIC_TRADES.name, GAPS.name, RUNS.name)

Target = str | os.PathLike[str]


@contextmanager
def checked_database(db: Target) -> Iterator[tuple[SessionDatabase, Engine]]:
    """The session database of ``db`` and a read-only engine on it, disposed of on exit.

    ``db`` is a SQLite file, a session folder holding ``recorder.db`` or a database URL. An
    error while reading becomes a one-line ``CompletenessError``.

    Raises:
        CompletenessError: there is no such database, or it cannot be opened or read.
    """
    try:
        source = find_session_database(db)
    except FileNotFoundError:
        raise CompletenessError(f"no recorder database at {display_target(db)}") from None
    except ReadOnlyOpenError as exc:
        raise CompletenessError(str(exc)) from None
    try:
        engine = open_read_only(source, required_tables=CHECKED_TABLES)
    except ReadOnlyOpenError as exc:
        raise CompletenessError(str(exc)) from None
    try:
        yield source, engine
    except SQLAlchemyError as exc:
        raise CompletenessError(f"cannot read {source.location}: {first_line(exc)}") from None
    finally:
        engine.dispose()


def symbols_in_db(db: Target, category: str = "linear") -> list[str]:
    """Symbols of ``category`` the database has trades for, or that a run was told to record.

    Raises ``CompletenessError`` when the database cannot be opened.
    """
    with checked_database(db) as (_, engine), engine.connect() as conn:
        stored = conn.scalars(
            select(PUBLIC_TRADES.c.symbol)
            .where(PUBLIC_TRADES.c.category == category)
            .distinct()
            .order_by(PUBLIC_TRADES.c.symbol)
        ).all()
        configs = conn.scalars(select(RUNS.c.config_json)).all()
    found = dict.fromkeys(stored)
    for text in configs:
        found.update(dict.fromkeys(_configured_symbols(text, category)))
    return list(found)


def _configured_symbols(config_json: str, category: str) -> list[str]:
    try:
        config = json.loads(config_json)
    except ValueError:
        return []
    if not isinstance(config, dict) or config.get("category", category) != category:
        return []
    symbols = config.get("symbols")
    if not isinstance(symbols, list):
        return []
    return [s for s in symbols if isinstance(s, str) and s]
