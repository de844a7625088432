"""``recorder-export PATH --out DIR``: every table of every session as Parquet.

PATH is a session folder, a database file or a whole ``outputs/`` tree; every ``recorder.db``
below it is read (read-only). Each table becomes a Parquet dataset under ``DIR/<table>/``:

* Market and private data are partitioned hive style by symbol and UTC day
  (``public_trades/symbol=BTCUSDT/date=2026-11-24/part-0.parquet``; ``wallet_snapshots`` by
  day only). The partition columns live in the folder names, not in the files.
* Rows recorded by more than one session are written once: ``public_trades`` by
  (category, symbol, trade_id), ``private_executions`` by exec_id, ``orders`` by (order_id,
  updated_time_ms, order_status); the copy of the earliest session is kept. ``runs`` and the
  reference tables are kept once per id. Every other table is exported as it is.
* Every row carries ``session``: the session folder (relative to PATH) it was read from; the
  data tables also keep ``run_id``.
* Prices, sizes and other exchange decimals keep their exact exchange string (``price``:
  ``"28560.50"``) and gain an exact decimal column (``price_decimal``: ``decimal128(p, s)``),
  with one precision and scale per column, chosen from the data so every value fits exactly
  (scale: the most fraction digits found; precision: scale + max(12, the most integer digits)).
  A value that is not a decimal number (e.g. ``""``) is null in the decimal column.
* Every ``*_ms`` column stays as it is (int64 ms since the epoch) and gains a
  ``timestamp[ms, tz=UTC]`` column without the suffix (``trade_time_ms`` -> ``trade_time``).

``DIR/manifest.json`` lists the sources, the row counts, the duplicates dropped and the
decimal types chosen. polars, pandas and DuckDB read the datasets directly.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from sqlalchemy import BigInteger, Boolean, Column, Engine, Integer, Table, func, select, text

from grid_db import (
    Base,
    BybitAccount,
    Gap,
    Order,
    PositionSnapshot,
    PrivateExecution,
    PublicTrade,
    RejectedFrame,
    Run,
    Strategy,
    TickerSnapshot,
    User,
    WalletSnapshot,
)
from recorder.intervals import DAY_MS
from recorder.session_dbs import SessionDatabase, find_databases, open_read_only

MAX_DECIMAL_PRECISION = 38  # decimal128; what polars and DuckDB read
#: integer digits every decimal column holds at least, so that exports of different days
#: usually agree on the type (the scale is the data's)
MIN_INTEGER_DIGITS = 12
CHUNK_ROWS = 50_000
PART_FILE = "part-0.parquet"
MANIFEST = "manifest.json"
_DECIMAL_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


@dataclass(frozen=True, slots=True)
class TableExport:
    """How one table is exported."""

    model: type[Base]
    #: natural key for removing rows stored by more than one session; None keeps every row
    key: tuple[str, ...] | None = None
    by_symbol: bool = False
    #: the ``*_ms`` column that picks the day partition; None: one file
    day_column: str | None = None
    decimals: tuple[str, ...] = ()

    @property
    def table(self) -> Table:
        table = self.model.__table__
        assert isinstance(table, Table)
        return table

    @property
    def name(self) -> str:
        return self.table.name


TABLES = (
    TableExport(
        PublicTrade,
        key=("category", "symbol", "trade_id"),
        by_symbol=True,
        day_column="trade_time_ms",
        decimals=("price", "size"),
    ),
    TableExport(
        TickerSnapshot,
        by_symbol=True,
        day_column="exchange_ts_ms",
        decimals=(
            "last_price",
            "mark_price",
            "index_price",
            "bid1_price",
            "bid1_size",
            "ask1_price",
            "ask1_size",
            "open_interest",
            "open_interest_value",
            "funding_rate",
            "volume_24h",
            "turnover_24h",
            "high_price_24h",
            "low_price_24h",
            "prev_price_24h",
            "price_24h_pcnt",
        ),
    ),
    TableExport(
        PrivateExecution,
        key=("exec_id",),
        by_symbol=True,
        day_column="exec_time_ms",
        decimals=(
            "exec_price",
            "exec_qty",
            "exec_value",
            "exec_fee",
            "fee_rate",
            "closed_size",
            "exec_pnl",
        ),
    ),
    TableExport(
        Order,
        key=("order_id", "updated_time_ms", "order_status"),
        by_symbol=True,
        day_column="updated_time_ms",
        decimals=(
            "price",
            "qty",
            "avg_price",
            "leaves_qty",
            "cum_exec_qty",
            "cum_exec_value",
            "cum_exec_fee",
        ),
    ),
    TableExport(
        PositionSnapshot,
        by_symbol=True,
        day_column="received_ts_ms",
        decimals=(
            "size",
            "entry_price",
            "mark_price",
            "position_value",
            "unrealised_pnl",
            "cum_realised_pnl",
            "leverage",
            "liq_price",
        ),
    ),
    TableExport(
        WalletSnapshot,
        day_column="received_ts_ms",
        decimals=(
            "total_equity",
            "total_wallet_balance",
            "total_available_balance",
            "total_margin_balance",
        ),
    ),
    TableExport(Gap),
    TableExport(RejectedFrame),
    TableExport(Run, key=("id",)),
    TableExport(User, key=("id",)),
    TableExport(BybitAccount, key=("id",)),
    TableExport(Strategy, key=("id",)),
)


@dataclass(slots=True)
class TableResult:
    rows: int = 0
    duplicates_dropped: int = 0
    files: int = 0
    partitioning: list[str] = field(default_factory=list)
    #: decimal column -> arrow type, e.g. "decimal128(12, 2)"
    decimal_columns: dict[str, str] = field(default_factory=dict)
    #: string columns whose values did not all fit a decimal column, with the reason
    not_decimal: dict[str, str] = field(default_factory=dict)
    #: string values that are no decimal number (null in the decimal column), per column
    non_numeric_values: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Source:
    database: SessionDatabase
    engine: Engine


# ---- types -------------------------------------------------------------------------------


def _arrow_type(column: Column[Any]) -> Any:
    if isinstance(column.type, BigInteger | Integer):
        return pa.int64()
    if isinstance(column.type, Boolean):
        return pa.bool_()
    return pa.string()


def timestamp_name(ms_column: str) -> str:
    """``trade_time_ms`` -> ``trade_time``."""
    return ms_column.removesuffix("_ms")


def _decimal_digits(values: Iterator[str]) -> tuple[int, int]:
    """(integer digits, fraction digits) needed by the decimal numbers among ``values``."""
    integer, fraction = 0, 0
    for value in values:
        if not re.match(_DECIMAL_TEXT, value):
            continue
        try:
            number = Decimal(value)
        except InvalidOperation:
            continue
        _, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)
        fraction = max(fraction, -exponent)
        integer = max(integer, len(digits) + exponent)
    return integer, fraction


def _decimal_types(
    spec: TableExport, sources: Sequence[_Source], result: TableResult
) -> dict[str, Any]:
    """One exact decimal type per decimal column, wide enough for every value of every source."""
    if not spec.decimals:
        return {}
    integer: dict[str, int] = defaultdict(int)
    fraction: dict[str, int] = defaultdict(int)
    plain = "{c} <> '' AND {c} NOT GLOB '*[^0-9.+-]*'"
    parts = []
    for c in spec.decimals:
        value = f"ltrim({c}, '+-')"
        parts.append(
            f"max(CASE WHEN {plain.format(c=c)} THEN CASE WHEN instr({value}, '.') > 0 "
            f"THEN length({value}) - instr({value}, '.') ELSE 0 END END)"
        )
        parts.append(
            f"max(CASE WHEN {plain.format(c=c)} THEN CASE WHEN instr({value}, '.') > 0 "
            f"THEN instr({value}, '.') - 1 ELSE length({value}) END END)"
        )
    scan = text(f"SELECT {', '.join(parts)} FROM {spec.name}")  # names from TABLES only
    for source in sources:
        with source.engine.connect() as conn:
            row = conn.execute(scan).one()
            for i, c in enumerate(spec.decimals):
                fraction[c] = max(fraction[c], int(row[2 * i] or 0))
                integer[c] = max(integer[c], int(row[2 * i + 1] or 0))
            for c in spec.decimals:
                # exponents and other forms the plain scan skipped: few distinct values
                odd = conn.execute(
                    text(f"SELECT DISTINCT {c} FROM {spec.name} WHERE {c} GLOB '*[^0-9.+-]*'")
                ).scalars()
                odd_integer, odd_fraction = _decimal_digits(iter(str(v) for v in odd))
                integer[c] = max(integer[c], odd_integer)
                fraction[c] = max(fraction[c], odd_fraction)
    types = {}
    for c in spec.decimals:
        needed = integer[c] + fraction[c]
        if needed > MAX_DECIMAL_PRECISION:
            result.not_decimal[c] = (
                f"needs {needed} digits, more than decimal128 holds; only the string is kept"
            )
            continue
        precision = min(MAX_DECIMAL_PRECISION, max(integer[c], MIN_INTEGER_DIGITS) + fraction[c])
        types[c] = pa.decimal128(precision, fraction[c])
        result.decimal_columns[f"{c}_decimal"] = str(types[c])
    return types


def _schema(spec: TableExport, decimals: dict[str, Any]) -> Any:
    fields = [pa.field("session", pa.string(), nullable=False)]
    for column in spec.table.columns:
        if spec.by_symbol and column.name == "symbol":
            continue  # in the partition path
        fields.append(pa.field(column.name, _arrow_type(column)))
        if column.name in decimals:
            fields.append(pa.field(f"{column.name}_decimal", decimals[column.name]))
        if column.name.endswith("_ms"):
            fields.append(pa.field(timestamp_name(column.name), pa.timestamp("ms", tz="UTC")))
    return pa.schema(fields)


# ---- rows to arrow -----------------------------------------------------------------------


class _BatchBuilder:
    """Rows of one table (as read, in table column order) -> arrow tables of the schema."""

    def __init__(self, spec: TableExport, decimals: dict[str, Any], result: TableResult) -> None:
        self.spec = spec
        self.decimals = decimals
        self.result = result
        self.schema = _schema(spec, decimals)
        self.names = [c.name for c in spec.table.columns]
        self.types = {c.name: _arrow_type(c) for c in spec.table.columns}

    def build(self, session: str, rows: Sequence[Sequence[Any]]) -> Any:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        arrays: dict[str, Any] = {"session": pa.array([session] * len(rows), pa.string())}
        for name, values in zip(self.names, columns, strict=True):
            array = pa.array(values, self.types[name])
            arrays[name] = array
            if name in self.decimals:
                arrays[f"{name}_decimal"] = self._decimal(name, array)
            if name.endswith("_ms"):
                arrays[timestamp_name(name)] = array.cast(pa.timestamp("ms", tz="UTC"))
        return pa.table([arrays[f.name] for f in self.schema], schema=self.schema)

    def _decimal(self, name: str, strings: Any) -> Any:
        valid = pc.fill_null(pc.match_substring_regex(strings, _DECIMAL_TEXT), False)
        odd = len(strings) - strings.null_count - pc.sum(valid).as_py() if len(strings) else 0
        if odd:
            counts = self.result.non_numeric_values
            counts[name] = counts.get(name, 0) + int(odd)
        numbers = pc.if_else(valid, strings, pa.scalar(None, pa.string()))
        # exact: the cast fails rather than round a value that does not fit
        return pc.cast(numbers, self.decimals[name])


# ---- writing -----------------------------------------------------------------------------


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def _partitions(
    spec: TableExport, sources: Sequence[_Source]
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


def _read_chunks(engine: Engine, query: Any) -> Iterator[Sequence[Sequence[Any]]]:
    with engine.connect() as conn:
        result = conn.execute(query)
        while rows := result.fetchmany(CHUNK_ROWS):
            yield rows


class _Deduplicator:
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


def _export_table(spec: TableExport, sources: Sequence[_Source], out: Path) -> TableResult:
    result = TableResult()
    decimals = _decimal_types(spec, sources, result)
    builder = _BatchBuilder(spec, decimals, result)
    table = spec.table
    order = [table.c[spec.day_column]] if spec.day_column else []
    order.append(table.c.id)
    if spec.day_column is None:
        result.partitioning = []
        dedupe = _Deduplicator(spec, builder.names, set()) if spec.key else None
        folder = out / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(folder / PART_FILE, builder.schema) as writer:
            for source in sources:
                for rows in _read_chunks(source.engine, select(*table.columns).order_by(*order)):
                    kept = dedupe.fresh(rows) if dedupe else rows
                    writer.write_table(builder.build(source.database.label, kept))
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
        dedupe = _Deduplicator(spec, builder.names, fixed) if spec.key and several else None
        time_column = table.c[spec.day_column]
        with pq.ParquetWriter(folder / PART_FILE, builder.schema) as writer:
            for index, category in holders:
                query = select(*table.columns).where(
                    time_column >= start, time_column < start + DAY_MS
                )
                if spec.by_symbol:
                    query = query.where(table.c.category == category, table.c.symbol == symbol)
                source = sources[index]
                for rows in _read_chunks(source.engine, query.order_by(*order)):
                    kept = dedupe.fresh(rows) if dedupe else rows
                    if kept:
                        writer.write_table(builder.build(source.database.label, kept))
                        result.rows += len(kept)
        result.files += 1
        result.duplicates_dropped += dedupe.dropped if dedupe else 0
    return result


def export(path: Path, out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Export every table of the databases below ``path`` into ``out``; the manifest.

    Raises:
        FileNotFoundError: ``path`` holds no recorder database.
        FileExistsError: ``out`` is not empty and ``overwrite`` is false.
    """
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty (use --overwrite to replace the export)")
        for spec in TABLES:
            shutil.rmtree(out / spec.name, ignore_errors=True)
        (out / MANIFEST).unlink(missing_ok=True)
    databases = find_databases(path)
    sources: list[_Source] = []
    skipped: list[str] = []
    try:
        for database in databases:
            try:
                sources.append(_Source(database, open_read_only(database.path)))
            except Exception as exc:
                skipped.append(f"{database.path}: {exc}")
        if not sources:
            raise FileNotFoundError(f"no recorder database below {path}")
        sources.sort(key=lambda s: (_first_start(s.engine), s.database.label))
        out.mkdir(parents=True, exist_ok=True)
        tables = {spec.name: _export_table(spec, sources, out) for spec in TABLES}
    finally:
        for source in sources:
            source.engine.dispose()
    manifest = {
        "created_at_ms": time.time_ns() // 1_000_000,
        "source": str(path),
        "sessions": [
            {"session": s.database.label, "database": str(s.database.path)} for s in sources
        ],
        "skipped": skipped,
        "tables": {
            name: {
                "rows": r.rows,
                "files": r.files,
                "duplicates_dropped": r.duplicates_dropped,
                "partitioning": r.partitioning,
                "decimal_columns": r.decimal_columns,
                "not_decimal": r.not_decimal,
                "non_numeric_values": r.non_numeric_values,
            }
            for name, r in tables.items()
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _first_start(engine: Engine) -> int:
    with engine.connect() as conn:
        first = conn.execute(select(func.min(Run.started_at_ms))).scalar()
    return int(first) if first is not None else 0


# ---- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recorder-export",
        description="Export every table of recorded sessions to Parquet, deduplicated across "
        "sessions and partitioned by symbol and UTC day.",
    )
    parser.add_argument("path", type=Path, help="session folder, recorder.db, or outputs/ tree")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="export folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in DIR")
    args = parser.parse_args(argv)
    try:
        manifest = export(args.path, args.out, overwrite=args.overwrite)
    except FileNotFoundError as exc:
        print(f"recorder-export: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"recorder-export: {exc}", file=sys.stderr)
        return 2
    for line in manifest["skipped"]:
        print(f"skipped {line}", file=sys.stderr)
    print(f"exported {len(manifest['sessions'])} session database(s) to {args.out}")
    for name, table in manifest["tables"].items():
        if table["rows"]:
            dropped = table["duplicates_dropped"]
            print(
                f"  {name}: {table['rows']:,} rows in {table['files']} file(s)"
                + (f", {dropped:,} duplicate rows dropped" if dropped else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
