"""Bytes on disk per stored row, read from a SQLite database the bench recorded, and what
a day of one busy symbol takes.

Whatever layout the database has: a table's bytes are those of every b-tree that
``sqlite_master`` files under it (``tbl_name``): the table itself (its rowid b-tree, or its
primary-key b-tree when it is ``WITHOUT ROWID``), its indexes and the automatic indexes of
its UNIQUE and PRIMARY KEY constraints. No index is named here.

* With SQLite's ``dbstat`` virtual table (compiled into most builds, Python's included): the
  sum of ``pgsize`` of those b-trees' pages, after a WAL checkpoint, so the pages the WAL
  still held are counted in the file. Whole pages, as on disk: free space inside a page
  counts, pages on the freelist do not.
* Without it: a copy of the database (``VACUUM INTO``), then its ``page_count`` before and
  after ``DROP TABLE`` and ``VACUUM``: the pages the table and its indexes took.
"""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

#: Bybit mainnet, BTCUSDT (its busiest linear symbol): trades and ticker pushes a day
TRADES_PER_DAY = (1_000_000, 3_000_000)
TICKERS_PER_DAY = 860_000


@dataclass(frozen=True)
class TableBytes:
    """One table of a recorded database: its rows, and the bytes of each of its b-trees."""

    table: str
    rows: int
    #: b-tree name (the table, each index) -> bytes on disk
    btrees: dict[str, int]
    #: "dbstat" or "page_count"
    method: str

    @property
    def total(self) -> int:
        return sum(self.btrees.values())

    @property
    def per_row(self) -> float | None:
        return self.total / self.rows if self.rows else None


def table_bytes(db: Path, table: str) -> TableBytes:
    """The bytes ``table`` and all its indexes take in the SQLite database ``db``.

    Checkpoints the WAL first (the database must not be in use by a writer).
    """
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = ?", (table,))
        ]
        if not names:
            raise ValueError(f"{db}: no table {table!r}")
        try:
            sizes = dict(
                conn.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat "
                    f"WHERE name IN ({', '.join('?' * len(names))}) GROUP BY name",
                    names,
                ).fetchall()
            )
        except sqlite3.OperationalError:  # no dbstat in this SQLite build
            return TableBytes(table, rows, {table: _dropped_bytes(conn, table)}, "page_count")
    return TableBytes(table, rows, {n: int(sizes.get(n) or 0) for n in names}, "dbstat")


def _dropped_bytes(conn: sqlite3.Connection, table: str) -> int:
    """The bytes ``table`` (with its indexes) takes, as the pages a copy loses without it."""
    with tempfile.TemporaryDirectory(prefix="bench-bytes-") as tmp:
        copy = Path(tmp) / "copy.db"
        conn.execute("VACUUM INTO ?", (str(copy),))
        with closing(sqlite3.connect(copy, isolation_level=None)) as other:
            other.execute("PRAGMA foreign_keys = OFF")
            before = _file_bytes(other)
            other.execute(f'DROP TABLE "{table}"')
            other.execute("VACUUM")
            after = _file_bytes(other)
    return before - after


def _file_bytes(conn: sqlite3.Connection) -> int:
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    return pages * int(conn.execute("PRAGMA page_size").fetchone()[0])


def gb_per_day(trade_row: float, ticker_row: float, trades_per_day: int) -> float:
    """GB (10^9 bytes) a day for one symbol: ``trades_per_day`` trades and every ticker push
    (``TICKERS_PER_DAY``, Bybit's 100 ms linear ticker, none sampled out)."""
    return (trades_per_day * trade_row + TICKERS_PER_DAY * ticker_row) / 1e9
