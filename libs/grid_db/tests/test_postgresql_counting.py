"""write_records' count and statement on PostgreSQL (psycopg 3), against the real server.

The count is the executemany's rowcount: psycopg 3 sums the rows each execution changed,
and a row skipped by ``ON CONFLICT DO NOTHING`` changes none. These tests pin that down
on the driver itself and through ``write_records``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import make_url

from grid_db import DatabaseFactory, RowContext, tables, write_records, writes
from testkit import prepared_database

trades = tables.public_trades


@pytest.fixture
def pg(postgres_url: str) -> Iterator[DatabaseFactory]:
    with prepared_database(postgres_url) as factory:
        yield factory


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "no-pipeline"])
def test_psycopg_executemany_rowcount_sums_over_the_rows(
    postgres_url: str, pipeline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg 3 adds up every execution's row count, on its pipeline path (libpq >= 14)
    and on the plain one (older libpq)."""
    if not pipeline:
        monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    elif not psycopg.Pipeline.is_supported():
        pytest.skip("this libpq has no pipeline mode")
    with psycopg.connect(_psycopg_dsn(postgres_url)) as connection:
        connection.execute("CREATE TABLE t (k text PRIMARY KEY)")
        cursor = connection.cursor()
        insert = "INSERT INTO t (k) VALUES (%s) ON CONFLICT DO NOTHING"
        cursor.executemany(insert, [("a",), ("b",), ("a",), ("c",)])
        assert cursor.rowcount == 3
        cursor.executemany(insert, [(str(i),) for i in range(3000)] + [("a",)])
        assert cursor.rowcount == 3000
        cursor.executemany(insert, [("a",), ("b",)])
        assert cursor.rowcount == 0


def _count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(trades.table)).scalar_one())


def test_write_records_returns_the_new_rows_exactly(pg: DatabaseFactory, records: Any) -> None:
    """3,000 records of which 500 are stored already: 2,500 new."""
    with pg.engine.begin() as connection:
        stored = [records.trade(i) for i in range(0, 3000, 6)]
        assert write_records(connection, trades, stored, RowContext()) == 500
    batch = [records.trade(i) for i in range(3000)]
    with pg.engine.begin() as connection:
        assert write_records(connection, trades, batch, RowContext()) == 2500
    # Again, with 1,000 repeats inside the batch: nothing is new.
    with pg.engine.begin() as connection:
        assert write_records(connection, trades, batch + batch[:1000], RowContext()) == 0
        # Within one batch, a record and its repeat: counted once.
        fresh = [records.trade(i) for i in range(3000, 3010)]
        assert write_records(connection, trades, fresh + fresh, RowContext()) == 10
    with pg.engine.connect() as connection:
        assert _count(connection) == 3010
        key = [trades.table.c.category, trades.table.c.symbol, trades.table.c.trade_id]
        duplicates = select(*key).group_by(*key).having(func.count() > 1)
        assert connection.execute(duplicates).all() == []


def test_prepared_statements_follow_parameter_types_not_batch_sizes(
    pg: DatabaseFactory, records: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg keys a prepared statement by its text *and* its parameter types, and sends a
    Python int as int2, int4 or int8 by magnitude. One fixed text gives one prepared
    statement per type signature the data shows (a few, bounded), never one per batch."""
    seqs = [None, 7, 70_000, 2**40]  # NULL, int2, int4, int8
    monkeypatch.setattr(writes, "COPY_MIN_ROWS", 10**9)  # the executemany path

    def batch(start: int, size: int) -> list[Any]:
        return [
            msgspec.structs.replace(records.trade(start + i), seq=seqs[(start + i) % len(seqs)])
            for i in range(size)
        ]

    def prepared(connection: Connection) -> int:
        """The INSERTs this session prepared (pg_prepared_statements is per session)."""
        with connection.begin():
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_prepared_statements "
                        "WHERE statement LIKE 'INSERT INTO public_trades %'"
                    )
                ).scalar_one()
            )

    with pg.engine.connect() as connection:
        start = 0
        for size in range(1, 21):
            with connection.begin():
                write_records(connection, trades, batch(start, size), RowContext())
            start += size
        seen = prepared(connection)
        assert 1 <= seen <= len(seqs)
        for size in range(21, 121):
            with connection.begin():
                assert write_records(connection, trades, batch(start, size), RowContext()) == size
            start += size
        assert prepared(connection) == seen
    with pg.engine.connect() as connection:
        assert _count(connection) == start
