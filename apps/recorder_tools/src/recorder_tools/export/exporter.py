"""``export``: every table of every database of a target into Parquet datasets, and the manifest.

``DIR/manifest.json`` lists the sources, the row counts, the duplicates dropped and the
decimal types chosen.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from recorder_tools.database import OpenDatabase, open_all_read_only
from recorder_tools.export.tables import TABLES
from recorder_tools.export.writing import export_table
from recorder_tools.schema import RUNS

MANIFEST = "manifest.json"


def export(target: str | os.PathLike[str], out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Export every table of the databases of ``target`` (path or URL) into ``out``; the manifest.

    Raises:
        FileNotFoundError: ``target`` holds no recorder database.
        FileExistsError: ``out`` is not empty and ``overwrite`` is false.
        ReadOnlyOpenError: ``target`` is a URL the tools cannot use.
    """
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty (use --overwrite to replace the export)")
        for spec in TABLES:
            shutil.rmtree(out / spec.name, ignore_errors=True)
        (out / MANIFEST).unlink(missing_ok=True)
    with open_all_read_only(target) as databases:
        if not databases.opened:
            raise FileNotFoundError(f"no recorder database below {databases.target}")
        # the earliest session first: its copy of a row stored twice is the one kept
        sources = sorted(databases, key=lambda s: (_first_start(s.engine), s.source.label))
        out.mkdir(parents=True, exist_ok=True)
        # A table an older release did not have (order books) is exported from the rest.
        tables = {
            spec.name: export_table(spec, [s for s in sources if _holds(s, spec.name)], out)
            for spec in TABLES
        }
    manifest = {
        "created_at_ms": time.time_ns() // 1_000_000,
        "source": databases.target,
        "sessions": [{"session": s.source.label, "database": s.source.location} for s in sources],
        "skipped": databases.skipped,
        "tables": {
            name: {
                "rows": r.rows,
                "files": r.files,
                "duplicates_dropped": r.duplicates_dropped,
                "partitioning": r.partitioning,
                "decimal_columns": r.decimal_columns,
                "not_decimal": r.not_decimal,
                "non_numeric_values": r.non_numeric_values,
            }
            for name, r in tables.items()
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _holds(source: OpenDatabase, table: str) -> bool:
    return inspect(source.engine).has_table(table)


def _first_start(engine: Engine) -> int:
    with engine.connect() as conn:
        first = conn.execute(select(func.min(RUNS.c.started_at_ms))).scalar()
    return int(first) if first is not None else 0
