"""The report of a completeness check, as text or as JSON-ready dicts.

Per (category, symbol): the window checked, and the truth trades present, missing but excused by
a gap, missing (violations), stored twice or stored with different values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Default number of list items printed per symbol and kind by ``format_text``.
DEFAULT_TEXT_LIMIT = 20


@dataclass(frozen=True)
class Window:
    """The time range checked for one symbol: truth trades with since <= T <= until.

    ``source`` says where it came from: ``explicit`` (both ends given), ``trades``
    (first and last stored trade of the symbol), ``runs`` (no stored trade: the runs'
    earliest start to latest end), ``truth`` (nothing stored and no run: every truth
    trade), or a combination such as ``explicit+trades`` when only one end was given.
    """

    since_ms: int
    until_ms: int
    source: str

    def contains(self, time_ms: int) -> bool:
        return self.since_ms <= time_ms <= self.until_ms


@dataclass(frozen=True)
class MissingTrade:
    """A truth trade not stored; ``gap_id`` is the gap that excuses it, if any."""

    trade_id: str
    time_ms: int
    gap_id: int | None = None
    gap_fill_status: str | None = None


@dataclass(frozen=True)
class DuplicateTrade:
    """One trade id stored ``rows`` times."""

    trade_id: str
    rows: int
    run_ids: tuple[str | None, ...]


@dataclass(frozen=True)
class ValueMismatch:
    """A stored trade whose ``field`` differs from the truth."""

    trade_id: str
    field: str
    expected: str | int
    stored: str | int


@dataclass
class SymbolReport:
    """The outcome for one (category, symbol)."""

    category: str
    symbol: str
    window: Window
    expected: int = 0
    present: int = 0
    excused: list[MissingTrade] = field(default_factory=list)
    violations: list[MissingTrade] = field(default_factory=list)
    duplicates: list[DuplicateTrade] = field(default_factory=list)
    mismatches: list[ValueMismatch] = field(default_factory=list)
    #: Stored trade ids in the window that the truth does not have (informational).
    unexpected: list[str] = field(default_factory=list)
    stored_rows: int = 0
    #: truth trades stored by another run inside a run's still-missing gap window: one
    #: recorder missed them, another recorded them (several recorders, one database)
    covered_by_other_runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def missing_excused(self) -> int:
        return len(self.excused)

    @property
    def ok(self) -> bool:
        return not (self.violations or self.duplicates or self.mismatches)

    def counts(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "present": self.present,
            "missing_excused": len(self.excused),
            "violations": len(self.violations),
            "duplicates": len(self.duplicates),
            "mismatches": len(self.mismatches),
            "unexpected": len(self.unexpected),
            "stored_rows": self.stored_rows,
            "covered_by_other_runs": self.covered_by_other_runs,
        }

    def to_dict(self, max_items: int | None = None) -> dict[str, Any]:
        def cap(items: Sequence[Any]) -> list[Any]:
            chosen = items if max_items is None else items[:max_items]
            return [item if isinstance(item, str) else _plain(item) for item in chosen]

        lists: dict[str, Sequence[Any]] = {
            "violations": self.violations,
            "excused": self.excused,
            "duplicates": self.duplicates,
            "mismatches": self.mismatches,
            "unexpected": self.unexpected,
        }
        return {
            "category": self.category,
            "symbol": self.symbol,
            "ok": self.ok,
            "window": _plain(self.window),
            **self.counts(),
            **{name: cap(items) for name, items in lists.items()},
            "truncated": sorted(
                name
                for name, items in lists.items()
                if max_items is not None and len(items) > max_items
            ),
            "notes": list(self.notes),
        }


def _plain(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__dataclass_fields__}


@dataclass
class CompletenessReport:
    """The outcome of ``check_completeness``: one ``SymbolReport`` per checked symbol."""

    database: str
    symbols: list[SymbolReport]
    #: True when values were compared as exact strings; False for decimal comparison
    #: (archive truth, whose number formatting differs from the websocket's).
    exact_strings: bool = True
    #: Largest trade-time difference (ms) not counted as a mismatch.
    time_tolerance_ms: int = 0
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        """No violations, no duplicates and no mismatches in any symbol."""
        return all(report.ok for report in self.symbols)

    def totals(self) -> dict[str, int]:
        keys = ("expected", "present", "missing_excused", "violations", "duplicates")
        totals = dict.fromkeys(
            (*keys, "mismatches", "unexpected", "stored_rows", "covered_by_other_runs"), 0
        )
        for report in self.symbols:
            for name, value in report.counts().items():
                totals[name] += value
        return totals

    def symbol(self, symbol: str, category: str | None = None) -> SymbolReport:
        """The report of one symbol (KeyError when it was not checked)."""
        for report in self.symbols:
            if report.symbol == symbol and (category is None or report.category == category):
                return report
        raise KeyError(symbol)

    def to_dict(self, max_items: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict; ``max_items`` caps every list (counts stay complete)."""
        return {
            "ok": self.ok,
            "database": self.database,
            "run_id": self.run_id,
            "exact_strings": self.exact_strings,
            "time_tolerance_ms": self.time_tolerance_ms,
            "totals": self.totals(),
            "symbols": [report.to_dict(max_items) for report in self.symbols],
        }

    def format_text(self, max_items: int = DEFAULT_TEXT_LIMIT) -> str:
        """A plain-text summary; at most ``max_items`` entries of each list per symbol."""
        comparison = (
            "exact strings"
            if self.exact_strings
            else f"decimal values, trade time within {self.time_tolerance_ms} ms"
        )
        lines = [
            f"database: {self.database}" + (f" (run {self.run_id})" if self.run_id else ""),
            f"values compared as {comparison}",
        ]
        if not self.symbols:
            lines.append("no symbol checked: the truth has no trades")
        for r in self.symbols:
            w = r.window
            lines.append("")
            lines.append(
                f"{r.category} {r.symbol}: {'OK' if r.ok else 'FAILED'}  window "
                f"{w.since_ms}..{w.until_ms} ms ({_iso(w.since_ms)} .. {_iso(w.until_ms)}, "
                f"from {w.source})"
            )
            lines.append(
                f"  expected={r.expected} present={r.present} "
                f"missing_excused={len(r.excused)} violations={len(r.violations)} "
                f"duplicates={len(r.duplicates)} mismatches={len(r.mismatches)} "
                f"unexpected={len(r.unexpected)}"
                + (
                    f" covered_by_other_runs={r.covered_by_other_runs}"
                    if r.covered_by_other_runs
                    else ""
                )
            )
            lines.extend(f"  note: {note}" for note in r.notes)
            lines.extend(
                _capped(
                    "violation (missing, no gap)",
                    [f"trade_id={m.trade_id} time_ms={m.time_ms}" for m in r.violations],
                    max_items,
                )
            )
            lines.extend(
                _capped(
                    "duplicate",
                    [f"trade_id={d.trade_id} rows={d.rows}" for d in r.duplicates],
                    max_items,
                )
            )
            lines.extend(
                _capped(
                    "mismatch",
                    [
                        f"trade_id={m.trade_id} {m.field}: expected {m.expected!r} "
                        f"stored {m.stored!r}"
                        for m in r.mismatches
                    ],
                    max_items,
                )
            )
            lines.extend(
                _capped(
                    "excused (inside a gap)",
                    [
                        f"trade_id={m.trade_id} time_ms={m.time_ms} gap={m.gap_id} "
                        f"({m.gap_fill_status})"
                        for m in r.excused
                    ],
                    max_items,
                )
            )
            lines.extend(
                _capped(
                    "unexpected (stored, not in the truth)",
                    [f"trade_id={t}" for t in r.unexpected],
                    max_items,
                )
            )
        totals = self.totals()
        lines.append("")
        lines.append(
            f"{'OK' if self.ok else 'FAILED'}: "
            + " ".join(f"{name}={value}" for name, value in totals.items())
        )
        return "\n".join(lines)


def _capped(title: str, entries: list[str], limit: int) -> list[str]:
    if not entries:
        return []
    shown = entries[: max(limit, 0)]
    out = [f"  {title}: {len(entries)}"]
    out.extend(f"    {entry}" for entry in shown)
    if len(entries) > len(shown):
        out.append(f"    ... and {len(entries) - len(shown)} more")
    return out


def _iso(ms: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
    except (OverflowError, OSError, ValueError):
        return "?"
