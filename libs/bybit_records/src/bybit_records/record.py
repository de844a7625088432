"""The base of every stored record, and how a field names its place on the wire.

A record is a frozen msgspec struct whose fields are its table's columns, in order.
Everything about a field is said once, on the field:

* its type, which gives the column type (``str``, ``int``, ``bool``, an enum, or a
  ``dict``/``list`` stored as JSON text) and whether it may be NULL (``| None``);
* ``Wire(...)``: the name Bybit gives it in a WebSocket item and in a REST row, from
  which the adapter builds its decoders (a field without ``Wire`` is filled by the
  decoder from the frame: category, timestamps, source);
* ``DECIMAL``: a price, size or amount, kept as the exact decimal string Bybit sent.

The class says whether two copies of a record are the same: ``natural_key`` names the
fields that identify it (a second copy is skipped and counted as a duplicate); a record
without one (a snapshot of a state) is appended every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, get_args, get_origin, get_type_hints

import msgspec

#: A price, size or amount as Bybit sends it ("28560.50"): digits, one optional point,
#: an optional minus; anything else is corrupt input. (``\Z``, not ``$``: ``$`` also
#: matches before a trailing newline.)
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?\Z"
DECIMAL = msgspec.Meta(pattern=DECIMAL_PATTERN)
Decimal = Annotated[str, DECIMAL]

#: Every integer ends up in a BIGINT column.
INT64 = msgspec.Meta(ge=-(2**63), le=2**63 - 1)
#: An identifier: never empty.
NONEMPTY = msgspec.Meta(min_length=1)


@dataclass(frozen=True, slots=True)
class Wire:
    """Bybit's name for a field: in a WebSocket item (``ws``) and in a REST row (``rest``).

    ``Wire("execId")`` means the same name on both; ``rest=None``: REST rows do not
    carry the field. ``fallback`` is read when the first name is absent or empty (a
    position's ``entryPrice`` is ``avgPrice`` on some categories).
    """

    ws: str
    rest: str | bool | None = True
    fallback: str | None = None

    @property
    def rest_name(self) -> str | None:
        """The REST name, or None when REST rows do not carry the field."""
        if self.rest is True:
            return self.ws
        return self.rest if isinstance(self.rest, str) else None


class Record(msgspec.Struct, frozen=True, gc=False):
    """Base of every stored record; subclasses set ``natural_key`` when they have one."""

    #: The fields that identify a record; None: every copy is a new row.
    natural_key: ClassVar[tuple[str, ...] | None] = None


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a record, as the table builder and the decoders see it."""

    name: str
    #: the type without ``| None`` and without ``Annotated``
    type: Any
    nullable: bool
    wire: Wire | None
    decimal: bool
    has_default: bool
    #: the field's msgspec constraints (``DECIMAL``, ``NONEMPTY`` ...), for wire decoders
    constraints: tuple[msgspec.Meta, ...] = ()


def record_fields(record: type[Record]) -> tuple[FieldInfo, ...]:
    """The fields of ``record`` in declaration order (its column order)."""
    hints = get_type_hints(record, include_extras=True)
    out = []
    for field in msgspec.structs.fields(record):
        base, extras = _unwrap_annotated(hints[field.name])
        base, nullable = _unwrap_optional(base)
        wire = next((m for m in extras if isinstance(m, Wire)), None)
        decimal = any(m is DECIMAL for m in extras)
        has_default = (
            field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT
        )
        constraints = tuple(m for m in extras if isinstance(m, msgspec.Meta))
        out.append(FieldInfo(field.name, base, nullable, wire, decimal, has_default, constraints))
    return tuple(out)


def _unwrap_annotated(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        inner, more = _unwrap_annotated(base)
        return inner, (*extras, *more)
    return hint, ()


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner, _ = _unwrap_annotated(rest[0])
            return inner, True
    return hint, False
