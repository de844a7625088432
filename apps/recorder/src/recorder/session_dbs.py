"""The recorder databases below a path, opened read-only.

``recorder-report`` and ``recorder-export`` take a session folder, a database file, or a whole
``outputs/`` tree (multirun folders and day-after-day restarts included) and work on every
``recorder.db`` found below it. The files are opened with SQLite's ``mode=ro``: a session that
is still recording keeps writing undisturbed (WAL lets readers and the writer work side by side).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.pool import NullPool

DATABASE_FILE_NAME = "recorder.db"
#: how long a read waits for a lock (a checkpoint of the recording process, at most)
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SessionDatabase:
    """One database file and the name it is shown under."""

    path: Path
    #: the folder holding the file, relative to the path the user gave (e.g.
    #: ``2026-11-24/09-15-02-123456_multirun/0_btc``), or the folder's name
    label: str


def find_databases(path: Path) -> list[SessionDatabase]:
    """``path`` itself when it is a file, else every ``recorder.db`` below it, sorted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_file():
        return [SessionDatabase(path, path.resolve().parent.name)]
    found = sorted(path.rglob(DATABASE_FILE_NAME))
    databases = []
    for file in found:
        folder = file.parent.relative_to(path)
        label = str(folder) if str(folder) != "." else path.resolve().name
        databases.append(SessionDatabase(file, label))
    return databases


def open_read_only(path: Path) -> Engine:
    """A SQLAlchemy engine on ``path`` that can only read (``mode=ro``).

    Raises:
        ValueError: the file is not a recorder database (it has no ``runs`` table).
    """
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception:
        engine.dispose()
        raise
    if "runs" not in tables:
        engine.dispose()
        raise ValueError(f"{path} is not a recorder database (no 'runs' table)")
    return engine
