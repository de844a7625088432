"""Check a recorded session against the trades the exchange really printed.

The promise: every trade the exchange printed during a session is in the database
exactly once, or lies inside a ``gaps`` row (stream ``publicTrade``, ``fill_status``
``partial`` or ``unfillable``) that says it could not be recovered. This module
compares a session database with a *ground truth* of trades and reports, per
(category, symbol):

* **present**: truth trades stored under their ``trade_id``;
* **missing, excused**: not stored, but inside a ``partial`` gap
  (``start_ts_ms <= T <= recovered_from_ts_ms``, both ends included) or an
  ``unfillable`` gap (``start_ts_ms <= T <= end_ts_ms``) of the same category and symbol;
* **violations**: missing and not excused;
* **duplicates**: one (category, symbol, trade_id) stored more than once (the unique key
  forbids it; checked anyway). A trade seen by two runs of one database is one row,
  stored under the run that saw it first, which is fine;
* **mismatches**: stored with a different price, size, side or trade time;
* **unexpected** (informational, does not fail the check): stored trades inside the
  window that the truth does not know.

The report is ``ok`` when there are no violations, duplicates or mismatches.

Ground truth (``load_truth``) comes from a running bybit-sim (``http://host:port``), a
``.jsonl``/``.json`` file, or a Bybit public trading-history archive
(``https://public.bybit.com/trading/<SYMBOL>/<SYMBOL><date>.csv.gz``).

Command line::

    recorder-check outputs/2026-11-24/09-15-02-123456_btc --truth http://127.0.0.1:8765
    recorder-check recorder.db --truth BTCUSDT2026-11-24.csv.gz --symbols BTCUSDT --json

Exit code 0 when ok, 1 when there are violations, duplicates or mismatches, 2 on a usage
error (missing database, unreachable simulator, unreadable truth file).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from grid_db import FillStatus, Gap, PublicTrade, Run

__all__ = [
    "CompletenessError",
    "CompletenessReport",
    "DuplicateTrade",
    "MissingTrade",
    "TruthTrade",
    "ValueMismatch",
    "Window",
    "check_completeness",
    "is_archive_source",
    "load_truth",
    "main",
    "symbols_in_db",
]

#: The gap stream whose rows can excuse a missing public trade.
TRADE_STREAM = "publicTrade"
#: Default number of list items printed per symbol and kind by ``format_text``.
DEFAULT_TEXT_LIMIT = 20
#: How long ``load_truth`` waits for a simulator reply.
HTTP_TIMEOUT_SECONDS = 30.0
#: Columns a Bybit trading-history archive must have (others are ignored).
ARCHIVE_COLUMNS = ("timestamp", "symbol", "side", "size", "price", "trdMatchID")
#: Trade ids looked up per query when searching for trades stored outside the window.
_ID_CHUNK = 500


class CompletenessError(Exception):
    """The database or the ground truth cannot be read; the message is one line."""


# ---- ground truth ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TruthTrade:
    """One trade the exchange printed: strings exactly as the source gives them.

    Slotted: a day of a busy symbol is millions of these.
    """

    category: str
    symbol: str
    trade_id: str
    time_ms: int
    price: str
    size: str
    side: str


def is_archive_source(source: str) -> bool:
    """Whether ``source`` names a Bybit trading-history archive (``.csv`` / ``.csv.gz``).

    Archive values are compared as decimals, not strings (see ``load_truth``).
    """
    return source.lower().endswith((".csv", ".csv.gz"))


def _is_http_source(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def load_truth(
    source: str, *, category: str = "linear", symbols: Sequence[str] | None = None
) -> list[TruthTrade]:
    """Read ground-truth trades from ``source``.

    ``source`` is one of:

    * ``http://host:port``: a running bybit-sim. For each symbol,
      ``GET {source}/sim/ground-truth/trades?category=..&symbol=..``. ``symbols`` is
      required here (``recorder-check`` defaults it to the symbols of the database).
    * a ``.jsonl`` file: one JSON object per line with the ``TruthTrade`` field names
      (``category``, ``symbol``, ``trade_id``, ``time_ms``, ``price``, ``size``,
      ``side``); bybit-sim's ground-truth items have these keys, extra keys are ignored,
      ``trade_time_ms`` is accepted for ``time_ms`` and a missing ``category`` defaults
      to ``category``. A ``.json`` file holding a list of such objects (e.g. a saved
      ``/sim/ground-truth/trades`` reply) works too.
    * a Bybit public trading-history archive, ``.csv`` or ``.csv.gz``
      (``https://public.bybit.com/trading/<SYMBOL>/<SYMBOL><date>.csv.gz``; columns
      ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,...``). ``trdMatchID``
      is the trade id, ``time_ms = round(timestamp * 1000)`` (``timestamp`` is in seconds
      with a fraction), size and price are taken as they appear in the file, and every
      row gets ``category``. **The archive's number formatting may differ from the
      websocket strings** (e.g. ``"28560.5"`` against ``"28560.50"``, or trailing zeros
      on sizes), so compare archive truth with ``exact_strings=False`` (decimal values)
      and ``time_tolerance_ms=1``; ``recorder-check`` does this by itself.

    ``symbols`` (optional for files) keeps only those symbols. Raises ``CompletenessError`` with
    a one-line message when the source cannot be read.
    """
    wanted = _symbol_filter(symbols)
    if _is_http_source(source):
        if not wanted:
            raise CompletenessError(f"{source}: symbols are required for a simulator source")
        return [
            trade for symbol in wanted for trade in _load_from_simulator(source, category, symbol)
        ]
    path = Path(source).expanduser()
    if not path.is_file():
        raise CompletenessError(f"truth file {source} does not exist or is not a file")
    if is_archive_source(source):
        trades = _load_archive(path, category)
    elif path.suffix.lower() == ".json":
        trades = _load_json_list(path, category)
    else:
        trades = _load_jsonl(path, category)
    if wanted:
        trades = [t for t in trades if t.symbol in wanted]
    return trades


def _symbol_filter(symbols: Sequence[str] | None) -> list[str]:
    if symbols is None:
        return []
    if isinstance(symbols, str):
        symbols = symbols.split(",")
    return list(dict.fromkeys(s.strip() for s in symbols if s.strip()))


def _load_from_simulator(base_url: str, category: str, symbol: str) -> list[TruthTrade]:
    query = urllib.parse.urlencode({"category": category, "symbol": symbol})
    url = f"{base_url.rstrip('/')}/sim/ground-truth/trades?{query}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise CompletenessError(
            f"simulator at {base_url} answered HTTP {exc.code} for {url}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CompletenessError(f"simulator at {base_url} is unreachable: {reason}") from None
    try:
        items = json.loads(body)
    except ValueError:
        raise CompletenessError(f"simulator at {base_url} sent a reply that is not JSON") from None
    if not isinstance(items, list):
        raise CompletenessError(f"simulator at {base_url} sent {type(items).__name__}, not a list")
    return [_truth_from_mapping(item, category, f"{url} item {n}") for n, item in enumerate(items)]


def _load_jsonl(path: Path, category: str) -> list[TruthTrade]:
    trades: list[TruthTrade] = []
    try:
        with _open_text(path) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise CompletenessError(f"{path}:{number}: not a JSON object") from None
                trades.append(_truth_from_mapping(item, category, f"{path}:{number}"))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CompletenessError(f"cannot read {path}: {exc}") from None
    return trades


def _load_json_list(path: Path, category: str) -> list[TruthTrade]:
    try:
        with _open_text(path) as handle:
            items = json.load(handle)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CompletenessError(f"cannot read {path}: {exc}") from None
    except ValueError:
        raise CompletenessError(f"{path}: not valid JSON") from None
    if not isinstance(items, list):
        raise CompletenessError(f"{path}: expected a JSON list of trades")
    return [_truth_from_mapping(item, category, f"{path} item {n}") for n, item in enumerate(items)]


def _truth_from_mapping(item: Any, default_category: str, where: str) -> TruthTrade:
    if not isinstance(item, dict):
        raise CompletenessError(f"{where}: expected a JSON object")
    time_ms = item.get("time_ms", item.get("trade_time_ms"))
    if isinstance(time_ms, float) and time_ms.is_integer():
        time_ms = int(time_ms)
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise CompletenessError(f"{where}: 'time_ms' must be an integer (ms since the epoch)")
    trade_id = item.get("trade_id")
    if isinstance(trade_id, int) and not isinstance(trade_id, bool):
        trade_id = str(trade_id)
    values: dict[str, str] = {}
    for key, value in (
        ("category", item.get("category", default_category)),
        ("symbol", item.get("symbol")),
        ("trade_id", trade_id),
        ("price", item.get("price")),
        ("size", item.get("size")),
        ("side", item.get("side")),
    ):
        if not isinstance(value, str) or not value:
            raise CompletenessError(f"{where}: {key!r} must be a non-empty string")
        values[key] = value
    return TruthTrade(time_ms=time_ms, **values)


def _open_text(path: Path) -> io.TextIOWrapper:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _load_archive(path: Path, category: str) -> list[TruthTrade]:
    trades: list[TruthTrade] = []
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            absent = [name for name in ARCHIVE_COLUMNS if name not in header]
            if absent:
                raise CompletenessError(
                    f"{path}: not a Bybit trading-history archive (no column "
                    f"{', '.join(absent)}; expected {','.join(ARCHIVE_COLUMNS)},...)"
                )
            reader.fieldnames = header
            for row in reader:
                trades.append(_truth_from_archive_row(row, category, path, reader.line_num))
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise CompletenessError(f"cannot read {path}: {exc}") from None
    return trades


def _truth_from_archive_row(
    row: dict[str, str | Any], category: str, path: Path, line: int
) -> TruthTrade:
    values = {name: row.get(name) for name in ARCHIVE_COLUMNS}
    if not all(isinstance(value, str) and value.strip() for value in values.values()):
        raise CompletenessError(f"{path}:{line}: incomplete row")
    text = {name: str(value).strip() for name, value in values.items()}
    try:
        seconds = Decimal(text["timestamp"])
        time_ms = round(seconds * 1000)
    except (InvalidOperation, ValueError, OverflowError):
        raise CompletenessError(f"{path}:{line}: bad timestamp {text['timestamp']!r}") from None
    for name in ("price", "size"):
        if _decimal(text[name]) is None:
            raise CompletenessError(f"{path}:{line}: bad {name} {text[name]!r}")
    return TruthTrade(
        category=category,
        symbol=sys.intern(text["symbol"]),
        trade_id=text["trdMatchID"],
        time_ms=time_ms,
        price=text["price"],
        size=text["size"],
        side=sys.intern(text["side"]),
    )


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


# ---- report ---------------------------------------------------------------------------


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
        totals = dict.fromkeys((*keys, "mismatches", "unexpected", "stored_rows"), 0)
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


# ---- the check ------------------------------------------------------------------------


def resolve_database(db: Path | str) -> Path:
    """The SQLite file of ``db``: the file itself, or ``recorder.db`` inside a folder."""
    path = Path(db).expanduser()
    if path.is_dir():
        path = path / "recorder.db"
    if not path.is_file():
        raise CompletenessError(f"no recorder database at {db}")
    return path


def open_read_only(path: Path) -> Engine:
    """A read-only engine on a SQLite file: the check never writes to the database.

    Works while a recorder is writing the same file (WAL readers do not block writers).
    """
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=10.0)

    engine = create_engine("sqlite://", creator=connect)
    try:
        tables = set(inspect(engine).get_table_names())
    except (SQLAlchemyError, sqlite3.Error) as exc:
        engine.dispose()
        raise CompletenessError(
            f"{path} is not a readable SQLite database: {_first_line(exc)}"
        ) from None
    needed = {PublicTrade.__tablename__, Gap.__tablename__, Run.__tablename__}
    if not needed <= tables:
        engine.dispose()
        raise CompletenessError(
            f"{path} is not a recorder database (no {', '.join(sorted(needed))})"
        )
    return engine


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def symbols_in_db(db: Path | str, category: str = "linear") -> list[str]:
    """Symbols of ``category`` the database has trades for, or that a run was told to record.

    Raises ``CompletenessError`` when the database cannot be opened.
    """
    engine = open_read_only(resolve_database(db))
    try:
        with engine.connect() as conn:
            stored = conn.scalars(
                select(PublicTrade.symbol)
                .where(PublicTrade.category == category)
                .distinct()
                .order_by(PublicTrade.symbol)
            ).all()
            configs = conn.scalars(select(Run.config_json)).all()
    finally:
        engine.dispose()
    found = dict.fromkeys(stored)
    for text in configs:
        found.update(dict.fromkeys(_configured_symbols(text, category)))
    return list(found)


def _configured_symbols(config_json: str, category: str) -> list[str]:
    try:
        config = json.loads(config_json)
    except ValueError:
        return []
    if not isinstance(config, dict) or config.get("category", category) != category:
        return []
    symbols = config.get("symbols")
    if not isinstance(symbols, list):
        return []
    return [s for s in symbols if isinstance(s, str) and s]


@dataclass
class _Stored:
    time_ms: int
    price: str
    size: str
    side: str
    run_id: str | None


def check_completeness(
    db: Path | str,
    truth: Iterable[TruthTrade],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    run_id: str | None = None,
    exact_strings: bool = True,
    time_tolerance_ms: int = 0,
) -> CompletenessReport:
    """Compare the trades of a session database with ``truth``.

    ``db`` is a SQLite file or a session folder holding ``recorder.db``; it is opened
    read-only. Only (category, symbol) pairs present in ``truth`` are checked.

    **Window.** Truth trades with ``since_ms <= T <= until_ms`` are expected. A bound that
    is not given defaults, per (category, symbol), to the first / last ``trade_time_ms``
    stored for that symbol. When nothing is stored for the symbol, it defaults to the
    ``runs`` table instead: the earliest ``started_at_ms`` to the latest ``ended_at_ms``
    (now, if no run has ended yet), so that a symbol the session recorded nothing of
    shows up as violations (unless gaps excuse them). With neither trades nor runs, every
    truth trade of the symbol is expected. The window used is in the report.

    ``run_id`` narrows the defaults to that run's trades (or its start and end). Presence
    is still judged against every row of the database: a trade seen by two runs is stored
    once, under the run that saw it first. Gaps of every run excuse missing trades.

    ``exact_strings=False`` compares price and size as decimal values (for archive truth);
    ``time_tolerance_ms`` allows that much difference in the trade time.

    Raises ``CompletenessError`` when the database cannot be opened.
    """
    path = resolve_database(db)
    grouped: dict[tuple[str, str], dict[str, TruthTrade]] = {}
    truth_duplicates: dict[tuple[str, str], int] = {}
    for trade in truth:
        trades = grouped.setdefault((trade.category, trade.symbol), {})
        if trade.trade_id in trades:
            key = (trade.category, trade.symbol)
            truth_duplicates[key] = truth_duplicates.get(key, 0) + 1
            continue
        trades[trade.trade_id] = trade
    report = CompletenessReport(
        database=str(path),
        symbols=[],
        exact_strings=exact_strings,
        time_tolerance_ms=time_tolerance_ms,
        run_id=run_id,
    )
    engine = open_read_only(path)
    try:
        with engine.connect() as conn:
            for (category, symbol), trades in sorted(grouped.items()):
                checker = _SymbolCheck(
                    conn, category, symbol, trades, run_id, exact_strings, time_tolerance_ms
                )
                symbol_report = checker.run(since_ms, until_ms)
                repeated = truth_duplicates.get((category, symbol))
                if repeated:
                    symbol_report.notes.append(
                        f"the truth lists {repeated} trade id(s) more than once; "
                        "the first occurrence was used"
                    )
                report.symbols.append(symbol_report)
    except SQLAlchemyError as exc:
        raise CompletenessError(f"cannot read {path}: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    return report


class _SymbolCheck:
    def __init__(
        self,
        conn: Any,
        category: str,
        symbol: str,
        truth: dict[str, TruthTrade],
        run_id: str | None,
        exact_strings: bool,
        time_tolerance_ms: int,
    ) -> None:
        self.conn = conn
        self.category = category
        self.symbol = symbol
        self.truth = truth
        self.run_id = run_id
        self.exact_strings = exact_strings
        self.time_tolerance_ms = time_tolerance_ms

    def _trades_where(self) -> list[Any]:
        return [PublicTrade.category == self.category, PublicTrade.symbol == self.symbol]

    def window(self, since_ms: int | None, until_ms: int | None) -> Window:
        if since_ms is not None and until_ms is not None:
            return Window(since_ms, until_ms, "explicit")
        query = select(func.min(PublicTrade.trade_time_ms), func.max(PublicTrade.trade_time_ms))
        query = query.where(*self._trades_where())
        if self.run_id is not None:
            query = query.where(PublicTrade.run_id == self.run_id)
        first, last = self.conn.execute(query).one()
        source = "trades"
        if first is None or last is None:
            first, last, source = self._runs_window()
        if first is None or last is None:
            times = [t.time_ms for t in self.truth.values()]
            first, last, source = min(times), max(times), "truth"
        if since_ms is not None or until_ms is not None:
            source = f"explicit+{source}"
        return Window(
            since_ms if since_ms is not None else int(first),
            until_ms if until_ms is not None else int(last),
            source,
        )

    def _runs_window(self) -> tuple[int | None, int | None, str]:
        query = select(
            func.min(Run.started_at_ms),
            func.max(Run.ended_at_ms),
            func.count(),
            func.count(Run.ended_at_ms),
        )
        if self.run_id is not None:
            query = query.where(Run.id == self.run_id)
        started, ended, runs, ended_runs = self.conn.execute(query).one()
        if started is None:
            return None, None, "runs"
        if ended is None or ended_runs < runs:
            # A run still recording (or that died without an end): up to now.
            ended = max(ended or 0, time.time_ns() // 1_000_000)
        return int(started), int(ended), "runs"

    def run(self, since_ms: int | None, until_ms: int | None) -> SymbolReport:
        window = self.window(since_ms, until_ms)
        report = SymbolReport(self.category, self.symbol, window)
        stored: dict[str, list[_Stored]] = {}
        rows = self.conn.execute(
            select(
                PublicTrade.trade_id,
                PublicTrade.trade_time_ms,
                PublicTrade.price,
                PublicTrade.size,
                PublicTrade.side,
                PublicTrade.run_id,
            )
            .where(*self._trades_where())
            .where(PublicTrade.trade_time_ms.between(window.since_ms, window.until_ms))
        )
        for trade_id, time_ms, price, size, side, row_run in rows:
            stored.setdefault(trade_id, []).append(_Stored(time_ms, price, size, side, row_run))
        report.stored_rows = sum(len(v) for v in stored.values())
        expected = sorted(
            (t for t in self.truth.values() if window.contains(t.time_ms)),
            key=lambda t: (t.time_ms, t.trade_id),
        )
        report.expected = len(expected)
        if not expected:
            report.notes.append("the truth has no trade of this symbol inside the window")
        # Trades stored with a trade time outside the window still count as present
        # (with a trade_time_ms mismatch): look them up by id.
        elsewhere = [t.trade_id for t in expected if t.trade_id not in stored]
        for found_id, rows_of_id in self._stored_by_ids(elsewhere).items():
            stored[found_id] = rows_of_id
        gaps = self._excusing_gaps()
        for trade in expected:
            copies = stored.get(trade.trade_id)
            if not copies:
                gap = next((g for g in gaps if g[1] <= trade.time_ms <= g[2]), None)
                missing = MissingTrade(
                    trade.trade_id,
                    trade.time_ms,
                    gap[0] if gap else None,
                    gap[3] if gap else None,
                )
                (report.excused if gap else report.violations).append(missing)
                continue
            report.present += 1
            self._compare(trade, copies[0], report)
        for trade_id, copies in stored.items():
            if len(copies) > 1:
                report.duplicates.append(
                    DuplicateTrade(trade_id, len(copies), tuple(c.run_id for c in copies))
                )
            elif trade_id not in self.truth:
                report.unexpected.append(trade_id)
        report.duplicates.sort(key=lambda d: d.trade_id)
        report.unexpected.sort()
        return report

    def _stored_by_ids(self, trade_ids: list[str]) -> dict[str, list[_Stored]]:
        found: dict[str, list[_Stored]] = {}
        for start in range(0, len(trade_ids), _ID_CHUNK):
            chunk = trade_ids[start : start + _ID_CHUNK]
            rows = self.conn.execute(
                select(
                    PublicTrade.trade_id,
                    PublicTrade.trade_time_ms,
                    PublicTrade.price,
                    PublicTrade.size,
                    PublicTrade.side,
                    PublicTrade.run_id,
                )
                .where(*self._trades_where())
                .where(PublicTrade.trade_id.in_(chunk))
            )
            for trade_id, time_ms, price, size, side, row_run in rows:
                found.setdefault(trade_id, []).append(_Stored(time_ms, price, size, side, row_run))
        return found

    def _excusing_gaps(self) -> list[tuple[int, int, int, str]]:
        """(id, from, to, fill_status) of the gaps that excuse a missing trade."""
        rows = self.conn.execute(
            select(
                Gap.id,
                Gap.start_ts_ms,
                Gap.end_ts_ms,
                Gap.recovered_from_ts_ms,
                Gap.fill_status,
            )
            .where(
                Gap.stream == TRADE_STREAM,
                Gap.category == self.category,
                Gap.symbol == self.symbol,
                Gap.fill_status.in_([FillStatus.PARTIAL.value, FillStatus.UNFILLABLE.value]),
            )
            .order_by(Gap.start_ts_ms, Gap.id)
        )
        excusing: list[tuple[int, int, int, str]] = []
        for gap_id, start, end, recovered_from, status in rows:
            if status == FillStatus.PARTIAL.value and recovered_from is not None:
                # Still missing: [start, recovered_from], both ends included.
                end = recovered_from
            excusing.append((int(gap_id), int(start), int(end), str(status)))
        return excusing

    def _compare(self, trade: TruthTrade, row: _Stored, report: SymbolReport) -> None:
        for name, expected_value, stored_value in (
            ("price", trade.price, row.price),
            ("size", trade.size, row.size),
        ):
            if not self._same_decimal(expected_value, stored_value):
                report.mismatches.append(
                    ValueMismatch(trade.trade_id, name, expected_value, stored_value)
                )
        if trade.side != row.side:
            report.mismatches.append(ValueMismatch(trade.trade_id, "side", trade.side, row.side))
        if abs(trade.time_ms - row.time_ms) > self.time_tolerance_ms:
            report.mismatches.append(
                ValueMismatch(trade.trade_id, "trade_time_ms", trade.time_ms, row.time_ms)
            )

    def _same_decimal(self, expected: str, stored: str) -> bool:
        if self.exact_strings or expected == stored:
            return expected == stored
        a, b = _decimal(expected), _decimal(stored)
        return a is not None and b is not None and a == b


# ---- command line ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that ends with one line and exit code 2 on a usage error."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recorder-check",
        description=(
            "Check that a recorded session holds every trade of a ground truth exactly "
            "once, or inside a partial/unfillable gap. Exit 0 when ok, 1 on violations, "
            "duplicates or mismatches, 2 on usage errors."
        ),
    )
    parser.add_argument("path", help="session folder (holding recorder.db) or SQLite file")
    parser.add_argument(
        "--truth",
        action="append",
        required=True,
        metavar="SOURCE",
        help=(
            "http://host:port of a running bybit-sim, a .jsonl/.json file, or a Bybit "
            "trading-history archive .csv/.csv.gz; repeat for several files"
        ),
    )
    parser.add_argument("--category", default="linear", help="category (default: linear)")
    parser.add_argument(
        "--symbols",
        help="comma-separated symbols (default: every symbol of the truth; for a simulator, "
        "the symbols found in the database)",
    )
    parser.add_argument("--since", type=int, metavar="MS", help="window start, ms UTC, included")
    parser.add_argument("--until", type=int, metavar="MS", help="window end, ms UTC, included")
    parser.add_argument("--run-id", help="default the window to this run's trades")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"list at most N entries of each kind per symbol (default: {DEFAULT_TEXT_LIMIT} "
        "for text, all for --json)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``recorder-check`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.since is not None and args.until is not None and args.since > args.until:
        parser.error("--since is after --until")
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be >= 0")
    try:
        report = _check_from_args(args)
    except CompletenessError as exc:
        print(f"recorder-check: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(args.limit), indent=2))
    else:
        print(report.format_text(DEFAULT_TEXT_LIMIT if args.limit is None else args.limit))
    return 0 if report.ok else 1


def _check_from_args(args: argparse.Namespace) -> CompletenessReport:
    path = resolve_database(args.path)
    symbols = _symbol_filter(args.symbols) or None
    sources: list[str] = args.truth
    if symbols is None and any(_is_http_source(s) for s in sources):
        symbols = symbols_in_db(path, args.category) or None
        if symbols is None:
            raise CompletenessError(
                f"the database has no {args.category} symbol to ask the simulator about; "
                "pass --symbols"
            )
    archives = [is_archive_source(s) for s in sources]
    truth: list[TruthTrade] = []
    for source in sources:
        truth.extend(load_truth(source, category=args.category, symbols=symbols))
    return check_completeness(
        path,
        truth,
        since_ms=args.since,
        until_ms=args.until,
        run_id=args.run_id,
        exact_strings=not any(archives),
        time_tolerance_ms=1 if any(archives) else 0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
