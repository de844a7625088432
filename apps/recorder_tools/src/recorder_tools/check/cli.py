"""``recorder-check PATH_OR_URL --truth SOURCE``: the completeness check on the command line.

::

    recorder-check outputs/2026-11-24/09-15-02-123456_btc --truth http://127.0.0.1:8765
    recorder-check recorder.db --truth BTCUSDT2026-11-24.csv.gz --symbols BTCUSDT --json
    recorder-check postgresql://reader@db-host/recorder --truth http://127.0.0.1:8765

Exit code 0 when ok, 1 when there are violations, duplicates or mismatches, 2 on a usage
error (missing database, unreachable simulator, unreadable truth file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from recorder_tools.check.algorithm import check_completeness
from recorder_tools.check.database import checked_database, symbols_in_db
from recorder_tools.check.errors import CompletenessError
from recorder_tools.check.model import DEFAULT_TEXT_LIMIT, CompletenessReport
from recorder_tools.check.truth import (
    TruthTrade,
    is_archive_source,
    is_simulator_source,
    load_truth,
    symbol_list,
)


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
    parser.add_argument(
        "path",
        help="session folder (holding recorder.db), SQLite file, or database URL "
        "(postgresql://user:password@host/db)",
    )
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
    with checked_database(args.path):
        pass  # a missing or unreadable database is reported before any truth is loaded
    symbols = symbol_list(args.symbols) or None
    sources: list[str] = args.truth
    if symbols is None and any(is_simulator_source(s) for s in sources):
        symbols = symbols_in_db(args.path, args.category) or None
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
        args.path,
        truth,
        since_ms=args.since,
        until_ms=args.until,
        run_id=args.run_id,
        exact_strings=not any(archives),
        time_tolerance_ms=1 if any(archives) else 0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
