"""insert_values: positional rows in one prepared executemany, counted exactly."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from grid_db import (
    DatabaseFactory,
    InvalidRowsError,
    PublicTrade,
    TickerSnapshot,
    insert_ignore,
    insert_values,
)
from grid_db.writes import _sqlite_insert_sql, resolve_table


def _count(factory: DatabaseFactory, model: Any) -> int:
    with factory.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def _split(rows: list[dict[str, Any]]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    columns = tuple(rows[0])
    return columns, [tuple(row[c] for c in columns) for row in rows]


def _insert(factory: DatabaseFactory, rows: list[dict[str, Any]], ignore: bool = True) -> int:
    columns, values = _split(rows)
    with factory.engine.begin() as connection:
        return insert_values(connection, PublicTrade, columns, values, ignore_conflicts=ignore)


def test_counts_new_rows_and_skips_duplicates_in_the_batch_and_stored(
    factory: DatabaseFactory, rows: Any
) -> None:
    assert _insert(factory, [rows.trade(i) for i in range(5)]) == 5
    batch = [rows.trade(3), rows.trade(5), rows.trade(5), rows.trade(6), rows.trade(0)]
    assert _insert(factory, batch) == 2
    assert _count(factory, PublicTrade) == 7


def test_count_is_exact_over_a_large_batch(factory: DatabaseFactory, rows: Any) -> None:
    assert _insert(factory, [rows.trade(i) for i in range(0, 3000, 2)]) == 1500
    assert _insert(factory, [rows.trade(i) for i in range(3000)]) == 1500
    assert _count(factory, PublicTrade) == 3000


def test_rows_read_back_as_insert_ignore_writes_them(factory: DatabaseFactory, rows: Any) -> None:
    """Same values, same types (booleans as SQLite stores them through SQLAlchemy)."""
    batch = [rows.trade(1), dict(rows.trade(2), is_rpi=None, tick_direction=None, seq=None)]
    _insert(factory, batch)
    with factory.engine.connect() as connection:
        stored = [dict(r._mapping) for r in connection.execute(select(PublicTrade.__table__))]
    other = DatabaseFactory(factory.settings.__class__(url="sqlite://"))
    other.create_tables()
    with other.engine.begin() as connection:
        insert_ignore(connection, PublicTrade, batch)
    with other.engine.connect() as connection:
        expected = [dict(r._mapping) for r in connection.execute(select(PublicTrade.__table__))]
    other.dispose()
    assert stored == expected


def test_without_ignore_a_duplicate_fails_the_batch(factory: DatabaseFactory, rows: Any) -> None:
    _insert(factory, [rows.trade(1)])
    with pytest.raises(IntegrityError):
        _insert(factory, [rows.trade(2), rows.trade(1)], ignore=False)
    assert _count(factory, PublicTrade) == 1  # the batch's transaction rolled back


def test_plain_append_for_tables_without_a_natural_key(factory: DatabaseFactory, rows: Any) -> None:
    ticker = rows.ticker(1, last_price="28560.50")
    columns, values = _split([ticker, ticker])
    with factory.engine.begin() as connection:
        assert insert_values(connection, TickerSnapshot, columns, values, ignore_conflicts=False)
    assert _count(factory, TickerSnapshot) == 2


def test_empty_batch_is_a_no_op(factory: DatabaseFactory) -> None:
    with factory.engine.begin() as connection:
        assert insert_values(connection, PublicTrade, ("symbol",), [], ignore_conflicts=True) == 0


def test_unknown_or_no_columns_are_refused(factory: DatabaseFactory, rows: Any) -> None:
    with factory.engine.begin() as connection, pytest.raises(InvalidRowsError, match="nope"):
        insert_values(
            connection, PublicTrade, ("symbol", "nope"), [("X", 1)], ignore_conflicts=True
        )
    with pytest.raises(InvalidRowsError, match="no columns"):
        _sqlite_insert_sql(resolve_table(PublicTrade), (), True)


def test_the_statement_is_built_once_per_table_and_columns() -> None:
    table = resolve_table(PublicTrade)
    first = _sqlite_insert_sql(table, ("category", "symbol"), True)
    assert first == (
        "INSERT INTO public_trades (category, symbol) VALUES (?, ?) ON CONFLICT DO NOTHING"
    )
    assert _sqlite_insert_sql(table, ("category", "symbol"), True) is first


def test_other_dialects_get_mappings_through_insert_ignore(
    rows: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's executemany rowcount is not reliable: the RETURNING path counts there."""
    calls: list[tuple[str, list[dict[str, Any]]]] = []

    class Connection:
        dialect = postgresql.dialect()

    import grid_db.writes as writes

    monkeypatch.setattr(writes, "insert_ignore", lambda c, t, r: calls.append(("ignore", r)) or 7)
    monkeypatch.setattr(writes, "insert_rows", lambda c, t, r: calls.append(("rows", r)) or 2)
    columns, values = _split([rows.trade(1), rows.trade(2)])
    assert insert_values(Connection(), PublicTrade, columns, values, ignore_conflicts=True) == 7  # type: ignore[arg-type]
    assert insert_values(Connection(), PublicTrade, columns, values, ignore_conflicts=False) == 2  # type: ignore[arg-type]
    assert [kind for kind, _ in calls] == ["ignore", "rows"]
    assert calls[0][1] == [rows.trade(1), rows.trade(2)]
