"""Ground truth: the trades the exchange really printed, from a simulator, a file or an archive.

``load_truth`` reads them from a running bybit-sim (``http://host:port``), a ``.jsonl``/``.json``
file, or a Bybit public trading-history archive
(``https://public.bybit.com/trading/<SYMBOL>/<SYMBOL><date>.csv.gz``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from recorder_tools.check.errors import CompletenessError

#: How long ``load_truth`` waits for a simulator reply.
HTTP_TIMEOUT_SECONDS = 30.0
#: Columns a Bybit trading-history archive must have (others are ignored).
ARCHIVE_COLUMNS = ("timestamp", "symbol", "side", "size", "price", "trdMatchID")


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


def is_simulator_source(source: str) -> bool:
    """Whether ``source`` is the ``http(s)://`` address of a running bybit-sim."""
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
    wanted = symbol_list(symbols)
    if is_simulator_source(source):
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


def symbol_list(symbols: Sequence[str] | None) -> list[str]:
    """``symbols`` (a sequence or one comma-separated string) stripped, without repeats."""
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
        if decimal_value(text[name]) is None:
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


def decimal_value(text: str) -> Decimal | None:
    """``text`` as a finite decimal, or None when it is no decimal number."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
