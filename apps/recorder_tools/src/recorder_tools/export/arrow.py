"""Rows of a table to Arrow: the Parquet schema, and batches of rows in it.

Each table keeps its columns (less ``symbol`` when it is a partition), gains ``session``
(where the row was read from), a ``<column>_decimal`` per decimal column and a
``timestamp[ms, tz=UTC]`` column per ``*_ms`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from sqlalchemy import BigInteger, Boolean, Column, Integer

from recorder_tools.export.decimals import DECIMAL_TEXT
from recorder_tools.export.tables import TableExport, TableResult


def _arrow_type(column: Column[Any]) -> Any:
    if isinstance(column.type, BigInteger | Integer):
        return pa.int64()
    if isinstance(column.type, Boolean):
        return pa.bool_()
    return pa.string()


def timestamp_name(ms_column: str) -> str:
    """``trade_time_ms`` -> ``trade_time``."""
    return ms_column.removesuffix("_ms")


def _schema(spec: TableExport, decimals: dict[str, Any]) -> Any:
    fields = [pa.field("session", pa.string(), nullable=False)]
    for column in spec.columns:
        if spec.by_symbol and column.name == "symbol":
            continue  # in the partition path
        fields.append(pa.field(column.name, _arrow_type(column)))
        if column.name in decimals:
            fields.append(pa.field(f"{column.name}_decimal", decimals[column.name]))
        if column.name.endswith("_ms"):
            fields.append(pa.field(timestamp_name(column.name), pa.timestamp("ms", tz="UTC")))
    return pa.schema(fields)


# ---- rows to arrow -----------------------------------------------------------------------


class BatchBuilder:
    """Rows of one table (as read, in table column order) -> arrow tables of the schema."""

    def __init__(self, spec: TableExport, decimals: dict[str, Any], result: TableResult) -> None:
        self.spec = spec
        self.decimals = decimals
        self.result = result
        self.schema = _schema(spec, decimals)
        self.names = [c.name for c in spec.columns]
        self.types = {c.name: _arrow_type(c) for c in spec.columns}

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
        valid = pc.fill_null(pc.match_substring_regex(strings, DECIMAL_TEXT), False)
        odd = len(strings) - strings.null_count - pc.sum(valid).as_py() if len(strings) else 0
        if odd:
            counts = self.result.non_numeric_values
            counts[name] = counts.get(name, 0) + int(odd)
        numbers = pc.if_else(valid, strings, pa.scalar(None, pa.string()))
        # exact: the cast fails rather than round a value that does not fit
        return pc.cast(numbers, self.decimals[name])
