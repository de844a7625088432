"""``recorder-export PATH_OR_URL --out DIR``: every table of every session as Parquet.

PATH_OR_URL is a session folder, a database file, a whole ``outputs/`` tree (every
``recorder.db`` below it) or a database URL (``postgresql://user:password@host/db``); every
database is read read-only. Each table becomes a Parquet dataset under ``DIR/<table>/``:

* Market and private data are partitioned hive style by symbol and UTC day
  (``public_trades/symbol=BTCUSDT/date=2026-11-24/part-0.parquet``; ``wallet_snapshots`` by
  day only). The partition columns live in the folder names, not in the files.
* Rows recorded by more than one session are written once: ``public_trades`` by
  (category, symbol, trade_id), ``private_executions`` by exec_id, ``orders`` by (order_id,
  updated_time_ms, order_status); the copy of the earliest session is kept. ``runs`` and the
  reference tables are kept once per id. Every other table is exported as it is.
* Every row carries ``session``: the session folder (relative to PATH) it was read from (for a
  URL, the URL with the password hidden); the data tables also keep ``run_id``.
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

import sys
from collections.abc import Sequence
from pathlib import Path

from recorder_tools.arguments import sessions_parser
from recorder_tools.database import ReadOnlyOpenError
from recorder_tools.export.exporter import export


def main(argv: Sequence[str] | None = None) -> int:
    parser = sessions_parser(
        "recorder-export",
        "Export every table of recorded sessions to Parquet, deduplicated across sessions and "
        "partitioned by symbol and UTC day.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="export folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in DIR")
    args = parser.parse_args(argv)
    try:
        manifest = export(args.path, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, ReadOnlyOpenError) as exc:
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
