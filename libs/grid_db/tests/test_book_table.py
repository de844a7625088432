"""A table built from the order-book record (``bybit_records.BookUpdate``): the record
fits ``RecordTable`` as it is (JSON levels, its natural key). The table itself is added
when books are stored."""

from __future__ import annotations

import msgspec
from sqlalchemy import BigInteger, MetaData, String, Text, UniqueConstraint

from bybit_records import BookKind, BookUpdate, Category
from grid_db.record_table import RecordTable, RowContext

TS = 1_700_000_000_000
#: a delta of a depth-50 book: (category, symbol, depth, kind, u, seq, cts, ts, received, bids, asks)
RECORD = BookUpdate(
    Category.LINEAR, "BTCUSDT", 50, BookKind.DELTA, 11, 77, TS - 1, TS, TS + 5, (), ()
)


def test_grid_db_builds_a_table_from_the_record() -> None:
    table = RecordTable(BookUpdate, "orderbook_updates", MetaData(), context=())
    columns = table.table.c
    assert [c.name for c in columns] == ["id", *BookUpdate.__struct_fields__]
    assert isinstance(columns.bids.type, Text)
    assert isinstance(columns.asks.type, Text)
    assert isinstance(columns.depth.type, BigInteger)
    assert isinstance(columns.update_id.type, BigInteger)
    assert isinstance(columns.kind.type, String)
    assert columns.seq.nullable
    assert columns.match_ts_ms.nullable
    assert not columns.exchange_ts_ms.nullable
    (unique,) = [c for c in table.table.constraints if isinstance(c, UniqueConstraint)]
    assert tuple(c.name for c in unique.columns) == BookUpdate.natural_key
    assert table.ignores_duplicates

    record = msgspec.structs.replace(RECORD, bids=(("10.50", "0"), ("10", "2")))
    (row,) = table.rows([record], RowContext())
    values = dict(zip(table.column_names, row, strict=True))
    assert values["bids"] == '[["10.50","0"],["10","2"]]'
    assert values["asks"] == "[]"
    assert values["kind"] == "delta"
    assert type(values["kind"]) is str
    assert table.record_of(values) == record
