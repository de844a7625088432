"""One exact ``decimal128(precision, scale)`` per decimal column, chosen from the data.

Scale: the most fraction digits of any value of the column in any database; precision: the
scale plus max(``MIN_INTEGER_DIGITS``, the most integer digits). The digits are counted in SQL
(SQLite or PostgreSQL), so a week of trades is not read into Python for it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from sqlalchemy import text

from recorder_tools.database import OpenDatabase
from recorder_tools.export.tables import TableExport, TableResult

MAX_DECIMAL_PRECISION = 38  # decimal128; what polars and DuckDB read
#: integer digits every decimal column holds at least, so that exports of different days
#: usually agree on the type (the scale is the data's)
MIN_INTEGER_DIGITS = 12
#: a decimal number as the exchange writes it (``28560.50``, ``-1``, ``1e-8``)
DECIMAL_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def decimal_digits(values: Iterator[str]) -> tuple[int, int]:
    """(integer digits, fraction digits) needed by the decimal numbers among ``values``."""
    integer, fraction = 0, 0
    for value in values:
        if not re.match(DECIMAL_TEXT, value):
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


class _Sql:
    """The few SQL pieces the digit scan needs that SQLite and PostgreSQL spell differently."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def only_number_characters(self, column: str) -> str:
        """Holds nothing but digits, ``.``, ``+`` and ``-`` (a plain decimal)."""
        if self.postgres:
            return f"{column} !~ '[^0-9.+-]'"
        return f"{column} NOT GLOB '*[^0-9.+-]*'"

    def other_characters(self, column: str) -> str:
        """Holds another character (an exponent, or no number at all)."""
        if self.postgres:
            return f"{column} ~ '[^0-9.+-]'"
        return f"{column} GLOB '*[^0-9.+-]*'"

    def position_of_point(self, value: str) -> str:
        return f"strpos({value}, '.')" if self.postgres else f"instr({value}, '.')"


def decimal_types(
    spec: TableExport, sources: Sequence[OpenDatabase], result: TableResult
) -> dict[str, Any]:
    """One exact decimal type per decimal column, wide enough for every value of every source."""
    if not spec.decimals:
        return {}
    integer: dict[str, int] = defaultdict(int)
    fraction: dict[str, int] = defaultdict(int)
    for source in sources:
        sql = _Sql(source.engine.dialect.name)
        parts = []
        for c in spec.decimals:
            plain = f"{c} <> '' AND {sql.only_number_characters(c)}"
            value = f"ltrim({c}, '+-')"
            point = sql.position_of_point(value)
            parts.append(
                f"max(CASE WHEN {plain} THEN CASE WHEN {point} > 0 "
                f"THEN length({value}) - {point} ELSE 0 END END)"
            )
            parts.append(
                f"max(CASE WHEN {plain} THEN CASE WHEN {point} > 0 "
                f"THEN {point} - 1 ELSE length({value}) END END)"
            )
        scan = text(f"SELECT {', '.join(parts)} FROM {spec.name}")  # names from TABLES only
        with source.engine.connect() as conn:
            row = conn.execute(scan).one()
            for i, c in enumerate(spec.decimals):
                fraction[c] = max(fraction[c], int(row[2 * i] or 0))
                integer[c] = max(integer[c], int(row[2 * i + 1] or 0))
            for c in spec.decimals:
                # exponents and other forms the plain scan skipped: few distinct values
                odd = conn.execute(
                    text(f"SELECT DISTINCT {c} FROM {spec.name} WHERE {sql.other_characters(c)}")
                ).scalars()
                odd_integer, odd_fraction = decimal_digits(iter(str(v) for v in odd))
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
