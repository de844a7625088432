"""Check a recorded session against the trades the exchange really printed.

The promise: every trade the exchange printed during a session is in the database
exactly once, or lies inside a ``gaps`` row (stream ``publicTrade``, ``fill_status``
``partial`` or ``unfillable``) that says it could not be recovered. This package
compares a session database with a *ground truth* of trades and reports, per
(category, symbol):

* **present**: truth trades stored under their ``trade_id``;
* **missing, excused**: not stored, but inside a ``partial`` gap
  (``start_ts_ms <= T <= recovered_from_ts_ms``, both ends included) or an
  ``unfillable`` gap (``start_ts_ms <= T <= end_ts_ms``) of the same category and symbol,
  and no other run of the database was recording the symbol at T without such a gap;
* **violations**: missing and not excused;
* **covered by other runs** (informational): present, stored by another run inside a run's
  still-missing gap window. One database may hold a fleet (recorders on several hosts,
  some recording the same symbols): what one missed, another may have stored, and the
  check judges the union.
* **duplicates**: one (category, symbol, trade_id) stored more than once (the unique key
  forbids it; checked anyway). A trade seen by two runs of one database is one row,
  stored under the run that saw it first, which is fine;
* **mismatches**: stored with a different price, size, side or trade time;
* **unexpected** (informational, does not fail the check): stored trades inside the
  window that the truth does not know.

The report is ``ok`` when there are no violations, duplicates or mismatches.

Ground truth (``truth.load_truth``) comes from a running bybit-sim (``http://host:port``), a
``.jsonl``/``.json`` file, or a Bybit public trading-history archive
(``https://public.bybit.com/trading/<SYMBOL>/<SYMBOL><date>.csv.gz``).

Modules: ``truth`` (the ground-truth loaders), ``model`` (the report), ``algorithm`` (the
check), ``database`` (the session database, read-only), ``cli`` (``recorder-check``: its
usage and exit codes).
"""

from __future__ import annotations

from recorder_tools.check.algorithm import check_completeness
from recorder_tools.check.database import symbols_in_db
from recorder_tools.check.errors import CompletenessError
from recorder_tools.check.model import CompletenessReport, SymbolReport
from recorder_tools.check.truth import TruthTrade, is_archive_source, load_truth

__all__ = [
    "CompletenessError",
    "CompletenessReport",
    "SymbolReport",
    "TruthTrade",
    "check_completeness",
    "is_archive_source",
    "load_truth",
    "symbols_in_db",
]
