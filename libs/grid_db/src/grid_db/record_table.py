"""A table built from a record: its columns are the record's fields.

``RecordTable`` is the one place that knows how a record becomes a row: the column
types come from the field types, the unique key from the record's ``natural_key``,
and the row values from the struct in field order (JSON fields encoded), followed by
the context columns the writer adds (the run, and the account for private data).
Adding a field to a record adds the column here; an existing database gets it from a
migration (``grid_db.migrations``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar, get_origin

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from bybit_records import (
    BookKind,
    DataSource,
    FieldInfo,
    FillStatus,
    FrameType,
    Record,
    record_fields,
)

R = TypeVar("R", bound=Record)

#: Surrogate key: BIGINT on PostgreSQL (billions of rows over a long recording), plain
#: INTEGER on SQLite, where only ``INTEGER PRIMARY KEY`` is the autoincrementing rowid.
AutoincrementId = BigInteger().with_variant(Integer(), "sqlite")
UUID_STRING_LENGTH = 36
#: Enums whose values this project defines once and for all: CHECK-constrained. Open
#: vocabularies (categories, topics, outage causes) grow without a migration.
CHECKED_ENUMS: tuple[type[enum.StrEnum], ...] = (DataSource, FrameType, FillStatus, BookKind)

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class RowContext:
    """What a writer adds to each record: the run that recorded it (its id, and its
    number in ``run_refs``), and whose account."""

    run_id: str | None = None
    account_id: str | None = None
    run_ref: int | None = None


class ContextColumn(enum.StrEnum):
    RUN = "run_id"
    #: the run's number (``run_refs.ref``): what the big tables store instead of its id
    RUN_REF = "run_ref"
    ACCOUNT = "account_id"

    def column(self) -> Column[Any]:
        # SET NULL: recorded data outlives the bookkeeping row of its session.
        # RESTRICT: deleting an account must not silently delete its records.
        if self is ContextColumn.RUN_REF:
            return Column(
                self.value,
                Integer(),
                ForeignKey("run_refs.ref", ondelete="SET NULL"),
                nullable=True,
            )
        target, on_delete, nullable = {
            ContextColumn.RUN: ("runs.id", "SET NULL", True),
            ContextColumn.ACCOUNT: ("bybit_accounts.id", "RESTRICT", False),
        }[self]
        return Column(
            self.value,
            String(UUID_STRING_LENGTH),
            ForeignKey(target, ondelete=on_delete),
            nullable=nullable,
        )

    def value_of(self, context: RowContext) -> str | int | None:
        if self is ContextColumn.RUN_REF:
            return context.run_ref
        return context.run_id if self is ContextColumn.RUN else context.account_id


class RecordTable(Generic[R]):
    """The table of one record type, and how its records become rows."""

    def __init__(
        self,
        record: type[R],
        name: str,
        metadata: MetaData,
        *,
        context: Sequence[ContextColumn],
        indexes: Sequence[Sequence[str]] = (),
        clustered: bool = False,
    ) -> None:
        self.record = record
        self.fields = record_fields(record)
        self.context = tuple(context)
        self.natural_key = record.natural_key
        self.clustered = clustered
        columns: list[Any] = []
        if not clustered:
            columns.append(Column("id", AutoincrementId, primary_key=True, autoincrement=True))
        columns += [Column(f.name, _sql_type(f), nullable=f.nullable) for f in self.fields]
        columns += [c.column() for c in self.context]
        constraints: list[Any] = [
            CheckConstraint(
                f"{f.name} IN ({', '.join(repr(m.value) for m in f.type)})", name=f.name
            )
            for f in self.fields
            if f.type in CHECKED_ENUMS
        ]
        if clustered:
            # The natural key is the primary key and the rows are stored in its order
            # (SQLite: WITHOUT ROWID): no surrogate id, no second index to maintain.
            assert self.natural_key is not None, f"{name}: a clustered table needs a natural key"
            constraints.append(PrimaryKeyConstraint(*self.natural_key))
        elif self.natural_key is not None:
            constraints.append(UniqueConstraint(*self.natural_key))
        constraints += [Index(None, *names) for names in indexes]
        self.table = Table(name, metadata, *columns, *constraints, sqlite_with_rowid=not clustered)
        self._to_row = self._row_builder()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def ignores_duplicates(self) -> bool:
        """A record with a natural key is stored once; a second copy is skipped."""
        return self.natural_key is not None

    @property
    def storage_order(self) -> tuple[Column[Any], ...]:
        """The columns rows are stored in order of: the key of a clustered table, else
        the surrogate id (the order rows were written in)."""
        c = self.table.c
        return (
            tuple(c[n] for n in self.natural_key)
            if self.clustered and self.natural_key
            else (c.id,)
        )

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        """The columns a write fills, in the order of ``rows()``' values."""
        return (*(f.name for f in self.fields), *(c.value for c in self.context))

    def rows(self, records: Sequence[R], context: RowContext) -> list[tuple[Any, ...]]:
        """The records as tuples of column values, in ``column_names`` order."""
        extra = tuple(c.value_of(context) for c in self.context)
        to_row = self._to_row
        return [to_row(r, extra) for r in records]

    def record_of(self, row: Any) -> R:
        """A record back from a row holding its columns (e.g. a SELECT of ``column_names``)."""
        mapping = row._mapping if hasattr(row, "_mapping") else row
        values = {}
        for f in self.fields:
            value = mapping[f.name]
            if _is_json(f) and isinstance(value, str):
                value = msgspec.json.decode(value)
            values[f.name] = value
        return msgspec.convert(values, self.record, strict=False)

    def _row_builder(self) -> Callable[[R, tuple[Any, ...]], tuple[Any, ...]]:
        json_positions = [i for i, f in enumerate(self.fields) if _is_json(f)]
        # Enum members go to the driver as plain strings. A member is an object with a
        # ``__dict__``: a row holding one stays tracked by the garbage collector (a row of
        # plain values is untracked at its first collection), which then walks every row
        # of a pending batch again and again; and sqlite3 binds a str subclass through
        # its slower adaptation path. Rows of plain values are twice as cheap to build.
        enum_positions = [i for i, f in enumerate(self.fields) if _is_enum(f)]
        astuple = msgspec.structs.astuple
        if not json_positions and not enum_positions:
            return lambda record, extra: (*astuple(record), *extra)
        plain = str.__str__  # a StrEnum member's value, as an exact str

        def row(record: R, extra: tuple[Any, ...]) -> tuple[Any, ...]:
            values = list(astuple(record))
            for i in enum_positions:
                value = values[i]
                if value is not None:
                    values[i] = plain(value)
            for i in json_positions:
                values[i] = _json.encode(values[i]).decode()
            return (*values, *extra)

        return row


def _is_enum(f: FieldInfo) -> bool:
    return isinstance(f.type, type) and issubclass(f.type, enum.StrEnum)


def _is_json(f: FieldInfo) -> bool:
    origin = getattr(f.type, "__origin__", f.type)
    return origin in (dict, list, tuple)


def _sql_type(f: FieldInfo) -> TypeEngine[Any]:
    if isinstance(f.type, type) and issubclass(f.type, enum.StrEnum):
        # An open vocabulary may grow longer values later; a closed one is checked.
        return String(16) if f.type in CHECKED_ENUMS else String()
    if f.type is bool:
        return Boolean()
    if f.type is int:
        return BigInteger()
    if f.type is str or get_origin(f.type) is Literal:
        # Exchange-sent strings (decimals included) are kept exactly as sent, unbounded.
        return String()
    if _is_json(f):
        return Text()
    raise TypeError(f"no column type for field {f.name!r} of type {f.type!r}")
