"""``recorder-export``: every table of recorded sessions as Parquet (see ``cli``).

Modules: ``tables`` (what is exported, and how), ``decimals`` (the exact decimal types),
``arrow`` (rows to Arrow), ``writing`` (one table's files), ``exporter`` (``export`` and the
manifest), ``cli``.
"""

from recorder_tools.export.exporter import MANIFEST, export
from recorder_tools.export.tables import TABLES, TableExport

__all__ = ["MANIFEST", "TABLES", "TableExport", "export"]
