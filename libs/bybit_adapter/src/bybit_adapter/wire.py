"""Bybit's wire shapes, derived from the records' ``Wire`` names.

Two ways to read an item, both built once per record type from its fields:

* ``ws_struct(record)``: a msgspec struct with Bybit's WebSocket names and the field
  types, checked by msgspec while decoding (the hot path for ``publicTrade``). Its
  fields are the record's wire fields in record order, so
  ``Record(<envelope values>, *astuple(item), ...)`` builds the record.
* ``ItemReader(record, rest=...)``: reads a decoded JSON object (a private item, a
  REST row) field by field, with Bybit's habits accepted where they are harmless:
  integers sent as digit strings, ``""`` for "no value".

Everything a frame can be wrong about raises ``FrameRejected`` with a one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec

from bybit_adapter.errors import FrameRejected
from bybit_records import DECIMAL_PATTERN, INT64, FieldInfo, Record, record_fields

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_decimal = re.compile(DECIMAL_PATTERN).match
_digits = re.compile(r"-?[0-9]+\Z").match


def wire_fields(record: type[Record]) -> tuple[FieldInfo, ...]:
    """The fields of ``record`` that Bybit sends, in record order."""
    return tuple(f for f in record_fields(record) if f.wire is not None)


def ws_struct(record: type[Record], *, check_decimals: bool = True) -> type[msgspec.Struct]:
    """A struct decoding one WebSocket item of ``record`` (unknown keys ignored).

    ``check_decimals=False`` leaves decimal strings unchecked, for a caller that checks
    them faster itself (a whole frame in one regex call).
    """
    fields: list[tuple[str, Any, Any]] = []
    for f in wire_fields(record):
        assert f.wire is not None
        metas = [m for m in f.constraints if check_decimals or m.pattern is None]
        if f.type is int:
            metas.append(INT64)
        annotated: Any = Annotated[(f.type, *metas)] if metas else f.type
        if f.nullable:
            fields.append((f.wire.ws, annotated | None, None))
        elif f.type is bool:
            fields.append((f.wire.ws, annotated, False))  # absent flag: not set
        else:
            fields.append((f.wire.ws, annotated, msgspec.NODEFAULT))
    return msgspec.defstruct(
        f"Ws{record.__name__}Item",
        fields,
        kw_only=True,
        forbid_unknown_fields=False,
        gc=False,
    )


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    key: str
    fallback: str | None
    read: Callable[[Any], Any]


class ItemReader:
    """Reads the wire fields of ``record`` from a decoded JSON object, in record order."""

    def __init__(self, record: type[Record], *, rest: bool = False) -> None:
        self.record = record
        slots = []
        for f in wire_fields(record):
            assert f.wire is not None
            key = f.wire.rest_name if rest else f.wire.ws
            if key is None:  # REST rows do not carry it
                slots.append(_Slot(f.name, "", None, lambda _v: None))
                continue
            slots.append(_Slot(f.name, key, f.wire.fallback, _reader(f)))
        self._slots = tuple(slots)

    def values(self, item: Any) -> list[Any]:
        """The record's wire fields of ``item``, in record order."""
        if not isinstance(item, dict):
            raise FrameRejected(f"{self.record.__name__}: item is not an object")
        out = []
        for slot in self._slots:
            value = item.get(slot.key) if slot.key else None
            if slot.fallback is not None and value in (None, ""):
                value = item.get(slot.fallback)
            try:
                out.append(slot.read(value))
            except FrameRejected as exc:
                raise FrameRejected(f"{slot.key or slot.name}: {exc.reason}") from None
        return out


def _reader(f: FieldInfo) -> Callable[[Any], Any]:
    if f.type is int:
        return _optional(_int) if f.nullable else _required(_int)
    if f.type is bool:
        return _optional(_bool) if f.nullable else lambda v: False if v is None else _bool(v)
    if f.type is str or get_origin(f.type) is Literal:
        allowed = get_args(f.type) if get_origin(f.type) is Literal else None
        read = _text(f.decimal, allowed)
        # An optional string keeps "" as sent (an empty orderLinkId is a value).
        return (lambda v: None if v is None else read(v)) if f.nullable else _required(read)
    origin = get_origin(f.type) or f.type
    if origin in (list, dict):
        return _required(_of_type(origin))
    raise TypeError(f"no wire reader for {f.name!r} of type {f.type!r}")


def _required(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def required(value: Any) -> Any:
        if value is None or value == "":
            raise FrameRejected("missing")
        return read(value)

    return required


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None or value == "" else read(value)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise FrameRejected(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _digits(value) is not None:
        if len(value.lstrip("-").lstrip("0")) > 19:  # int() refuses > 4300 digits anyway
            raise FrameRejected(f"integer out of the 64-bit range: {value!r:.80}")
        number = int(value)
    else:
        raise FrameRejected(f"expected an integer, got {value!r:.80}")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise FrameRejected(f"integer out of the 64-bit range: {value!r:.80}")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise FrameRejected(f"expected a boolean, got {type(value).__name__}")


def _text(decimal: bool, allowed: tuple[Any, ...] | None) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise FrameRejected(f"expected a string, got {type(value).__name__}")
        if decimal and _decimal(value) is None:
            raise FrameRejected(f"not a decimal: {value!r:.80}")
        if allowed is not None and value not in allowed:
            raise FrameRejected(f"expected one of {list(allowed)}, got {value!r:.80}")
        return value

    return text


def _of_type(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise FrameRejected(f"expected a {kind.__name__}, got {type(value).__name__}")
        return value

    return check
