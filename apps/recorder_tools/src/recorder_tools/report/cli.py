"""``recorder-report PATH_OR_URL``: is the recording healthy, and is the data continuous?

PATH_OR_URL is a session folder, a database file, a whole ``outputs/`` tree (every
``recorder.db`` below it) or a database URL (``postgresql://user:password@host/db``); every
database is opened read-only. The report has the sessions, the health of each recorder host
(from the database: a fleet of hosts recording into one PostgreSQL), per-instrument trade and
ticker counts, coverage (the continuous intervals per symbol, the union over every session and
host, and every hole: gaps inside sessions, each marked covered when another session recorded
its window, and the time between sessions), coverage per UTC day, the order books recorded
(updates stored, book gaps by cause, the share of each book's span it was known-good), and
reconnects, stalls and rejected frames.
``--json`` prints the same facts as JSON, ``--plot FILE.png`` draws trades per minute per symbol
with the holes shaded and reconnects marked.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from recorder_tools.arguments import sessions_parser
from recorder_tools.database import ReadOnlyOpenError, open_all_read_only
from recorder_tools.report.build import report_of


def main(argv: Sequence[str] | None = None) -> int:
    parser = sessions_parser(
        "recorder-report",
        "Health and coverage of recorded sessions: a session folder, a database file, an "
        "outputs/ tree of many sessions, or a database URL.",
    )
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw trades per minute per symbol, holes shaded, reconnects marked",
    )
    args = parser.parse_args(argv)
    try:
        with open_all_read_only(args.path) as databases:
            report = report_of(databases)
            if args.plot is not None:
                from recorder_tools.report.plot import plot_report

                plot_report(report, args.plot, databases.engines)
    except (FileNotFoundError, ReadOnlyOpenError) as exc:
        print(f"recorder-report: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(report.to_json())
    else:
        from recorder_tools.report.tables import print_report

        print_report(report)
        if args.plot is not None:
            print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
