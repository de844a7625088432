"""PostgreSQL's COPY path: exact counts whether a batch collides or not, and no deadlock
when several recorders write overlapping batches into one database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from grid_db import DatabaseFactory, RowContext, tables, write_records, writes
from testkit import prepared_database

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pg(postgres_url: str) -> Iterator[DatabaseFactory]:
    with prepared_database(postgres_url, pool_size=8) as database:
        yield database


def count(database: DatabaseFactory) -> int:
    with database.engine.connect() as conn:
        query = select(func.count()).select_from(tables.public_trades.table)
        return int(conn.execute(query).scalar_one())


def test_a_colliding_batch_is_counted_exactly_and_the_next_ones_too(
    pg: DatabaseFactory, records: Any
) -> None:
    trades = tables.public_trades
    first = [records.trade(i) for i in range(500)]
    with pg.engine.begin() as conn:
        assert write_records(conn, trades, first, RowContext()) == 500  # a plain COPY
    # half of it again, plus new trades: the COPY collides and the batch is staged instead
    overlap = first[250:] + [records.trade(1000 + i) for i in range(300)]
    with pg.engine.begin() as conn:
        assert write_records(conn, trades, overlap, RowContext()) == 300
    # the following batches are staged too, and still exact (repeats inside one batch)
    fresh = [records.trade(2000 + i) for i in range(200)]
    with pg.engine.begin() as conn:
        assert write_records(conn, trades, fresh + fresh[:50], RowContext()) == 200
    assert count(pg) == 1000


def test_a_table_without_a_natural_key_keeps_every_row(pg: DatabaseFactory, records: Any) -> None:
    tickers = tables.ticker_snapshots
    batch = [records.ticker(i) for i in range(writes.COPY_MIN_ROWS * 2)]
    with pg.engine.begin() as conn:
        assert write_records(conn, tickers, batch + batch, RowContext()) == len(batch) * 2


def test_redundant_writers_of_overlapping_batches_never_deadlock(
    pg: DatabaseFactory, records: Any
) -> None:
    # Two recorders capture the same trades, in batches that overlap in different orders.
    trades = tables.public_trades
    pool = [records.trade(i) for i in range(3_000)]
    errors: list[BaseException] = []
    inserted = [0, 0]

    def writer(index: int) -> None:
        order = pool if index == 0 else list(reversed(pool))
        try:
            for start in range(0, len(order), 250):
                with pg.engine.begin() as conn:
                    batch = order[start : start + 250]
                    inserted[index] += write_records(conn, trades, batch, RowContext())
        except BaseException as exc:  # reported below: a deadlock would land here
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:1]
    assert count(pg) == len(pool)
    assert sum(inserted) == len(pool)  # each trade counted new by exactly one writer
