"""``recorder-report``: health and coverage of recorded sessions.

One database may hold a fleet: sessions of several recorder hosts (``runs.host``), some
recording the same symbols. Coverage is the union of every session's recording, a gap one
session could not refill is *covered* when another recorded its window, and each host's
health is derived from the database (``hosts``).

Modules: ``model`` (the facts), ``contents`` (what is read from one database), ``sessions``,
``hosts``, ``instruments``, ``coverage``, ``books`` (order books), ``live`` and ``findings``
(the facts, one kind each), ``build`` (``build_report``), ``tables`` (rich output), ``plot``
(``--plot``), ``cli``.
"""

from recorder_tools.report.build import build_report
from recorder_tools.report.model import Report

__all__ = ["Report", "build_report"]
