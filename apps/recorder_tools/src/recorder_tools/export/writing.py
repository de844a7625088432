"""Writing one table: a Parquet file per (symbol, UTC day) partition, or one file.

Partitions held by more than one database are de-duplicated by the table's natural key (the
copy of the earliest session is kept, as sources come sorted by their first run's start).
Rows are read in chunks (server-side cursors on PostgreSQL), so a table never has to fit in
memory.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-untyped]
from sqlalchemy import Engine, select

from recorder_tools.database import OpenDatabase
from recorder_tools.export.arrow import BatchBuilder
from recorder_tools.export.decimals import decimal_types
from recorder_tools.export.tables import TableExport, TableResult
from recorder_tools.intervals import DAY_MS

CHUNK_ROWS = 50_000
PART_FILE = "part-0.parquet"


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def _partitions(
    spec: TableExport, sources: Sequence[OpenDatabase]
) -> dict[tuple[str | None, int], list[tuple[int, str | None]]]:
    """(symbol, day) -> [(source index, category)] holding rows of that partition."""
    table = spec.table
    assert spec.day_column is not None
    day = (table.c[spec.day_column] // DAY_MS).label("day")
    found: dict[tuple[str | None, int], list[tuple[int, str | None]]] = defaultdict(list)
    for index, source in enumerate(sources):
        if spec.by_symbol:
            query = select(table.c.category, table.c.symbol, day).distinct()
        else:
            query = select(day).distinct()
        with source.engine.connect() as conn:
            for row in conn.execute(query):
                if spec.by_symbol:
                    category, symbol, number = row
                    found[(symbol, int(number))].append((index, category))
                else:
                    found[(None, int(row[0]))].append((index, None))
    return dict(sorted(found.items(), key=lambda item: (item[0][0] or "", item[0][1])))


def _selected(spec: TableExport, source: OpenDatabase) -> list[Any]:
    with source.engine.connect() as conn:
        return spec.selected(conn)


def _read_chunks(engine: Engine, query: Any) -> Iterator[Sequence[Sequence[Any]]]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        while rows := result.fetchmany(CHUNK_ROWS):
            yield rows


class Deduplicator:
    """Drops rows whose natural key was already written to the same file."""

    def __init__(self, spec: TableExport, names: list[str], fixed: set[str]) -> None:
        key = [c for c in spec.key or () if c not in fixed]
        self.indexes = [names.index(c) for c in key]
        self.seen: set[Any] = set()
        self.dropped = 0

    def fresh(self, rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        kept = []
        for row in rows:
            key = tuple(row[i] for i in self.indexes)
            if key in self.seen:
                self.dropped += 1
                continue
            self.seen.add(key)
            kept.append(row)
        return kept


def export_table(spec: TableExport, sources: Sequence[OpenDatabase], out: Path) -> TableResult:
    """Write the table of ``spec`` from every source below ``out/<table>/``."""
    result = TableResult()
    decimals = decimal_types(spec, sources, result)
    builder = BatchBuilder(spec, decimals, result)
    table = spec.table
    order = [table.c[spec.day_column]] if spec.day_column else []
    # By key where the table has one: clustered tables (trades) have no id column.
    order += [table.c[name] for name in spec.key] if spec.key else [table.c.id]
    if spec.day_column is None:
        result.partitioning = []
        dedupe = Deduplicator(spec, builder.names, set()) if spec.key else None
        folder = out / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(folder / PART_FILE, builder.schema) as writer:
            for source in sources:
                query = select(*_selected(spec, source)).order_by(*order)
                for rows in _read_chunks(source.engine, query):
                    kept = dedupe.fresh(rows) if dedupe else rows
                    writer.write_table(builder.build(source.source.label, kept))
                    result.rows += len(kept)
        result.files = 1
        result.duplicates_dropped = dedupe.dropped if dedupe else 0
        return result
    result.partitioning = ["symbol", "date"] if spec.by_symbol else ["date"]
    for (symbol, day), holders in _partitions(spec, sources).items():
        start = day * DAY_MS
        folder = out / spec.name
        if symbol is not None:
            folder /= f"symbol={symbol}"
        folder /= f"date={_day(start)}"
        folder.mkdir(parents=True, exist_ok=True)
        several = len({index for index, _ in holders}) > 1
        fixed = {"symbol"} if spec.by_symbol else set()
        dedupe = Deduplicator(spec, builder.names, fixed) if spec.key and several else None
        time_column = table.c[spec.day_column]
        with pq.ParquetWriter(folder / PART_FILE, builder.schema) as writer:
            for index, category in holders:
                query = select(*_selected(spec, sources[index])).where(
                    time_column >= start, time_column < start + DAY_MS
                )
                if spec.by_symbol:
                    query = query.where(table.c.category == category, table.c.symbol == symbol)
                source = sources[index]
                for rows in _read_chunks(source.engine, query.order_by(*order)):
                    kept = dedupe.fresh(rows) if dedupe else rows
                    if kept:
                        writer.write_table(builder.build(source.source.label, kept))
                        result.rows += len(kept)
        result.files += 1
        result.duplicates_dropped += dedupe.dropped if dedupe else 0
    return result
