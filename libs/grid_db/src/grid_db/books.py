"""Order books back from a database: the book at any instant, or every state.

The recorder stores each book's updates as Bybit sent them (``orderbook_updates``:
snapshots and deltas) and, every so many updates, a checkpoint of the whole book. The
book at an instant is the last full book (snapshot or checkpoint) at or before it with
the deltas after it applied, in (``exchange_ts_ms``, ``update_id``) order. Where the
recorder could not vouch for a book (a ``gaps`` row of stream ``orderbook`` whose detail
starts with the book's topic, ``orderbook.50.BTCUSDT: ...``: a lost update, a crossed
book, a restart, a disconnect) there is no book::

    from grid_db.books import book_at
    with engine.connect() as conn:
        book = book_at(conn, "linear", "BTCUSDT", 50, ts_ms)
    if book is not None:
        print(book.best_bid(), book.best_ask())

Times are exchange times (ms): the ``ts`` of Bybit's frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select, tuple_

from bybit_records import Book, BookKind, BookUpdate, Topic
from grid_db import tables

_BOOKS = tables.orderbook_updates
_GAPS = tables.gaps.table
_FULL = (BookKind.SNAPSHOT.value, BookKind.CHECKPOINT.value)


def book_at(conn: Connection, category: str, symbol: str, depth: int, ts_ms: int) -> Book | None:
    """The book of (``symbol``, ``depth``) as it stood at ``ts_ms``; None when no full book
    was stored before it, or when a book gap covers it."""
    if _gap_covering(conn, category, symbol, depth, ts_ms):
        return None
    c = _BOOKS.table.c
    mine = (c.category == category, c.symbol == symbol, c.depth == depth)
    base = conn.execute(
        select(_BOOKS.table)
        .where(*mine, c.kind.in_(_FULL), c.exchange_ts_ms <= ts_ms)
        .order_by(c.exchange_ts_ms.desc(), c.update_id.desc(), c.kind.desc())
        .limit(1)
    ).first()
    if base is None:
        return None
    book = Book()
    book.apply(_BOOKS.record_of(base))
    after = tuple_(c.exchange_ts_ms, c.update_id) > tuple_(base.exchange_ts_ms, base.update_id)
    deltas = conn.execute(
        select(_BOOKS.table)
        .where(*mine, c.kind == BookKind.DELTA.value, after, c.exchange_ts_ms <= ts_ms)
        .order_by(c.exchange_ts_ms, c.update_id)
    )
    for row in deltas:
        book.apply(_BOOKS.record_of(row))
    return book


def book_states(
    conn: Connection, category: str, symbol: str, depth: int, since_ms: int, until_ms: int
) -> Iterator[tuple[BookUpdate, Book]]:
    """Every stored update of the book in [``since_ms``, ``until_ms``] with the book after
    it (the same ``Book`` object, updated in place: copy what you keep). Starts from
    ``book_at(since_ms)``; a stored snapshot resets it, as on the exchange."""
    book = book_at(conn, category, symbol, depth, since_ms) or Book()
    c = _BOOKS.table.c
    rows = conn.execute(
        select(_BOOKS.table)
        .where(
            c.category == category,
            c.symbol == symbol,
            c.depth == depth,
            c.kind != BookKind.CHECKPOINT.value,
            c.exchange_ts_ms > since_ms,
            c.exchange_ts_ms <= until_ms,
        )
        .order_by(c.exchange_ts_ms, c.update_id)
    )
    for row in rows:
        update = _BOOKS.record_of(row)
        if update.kind is BookKind.DELTA and book.update_id is None:
            continue  # no full book yet: a delta alone is no book
        book.apply(update)
        yield update, book


def _gap_covering(conn: Connection, category: str, symbol: str, depth: int, ts_ms: int) -> Any:
    g = _GAPS.c
    return conn.execute(
        select(g.start_ts_ms)
        .where(
            g.stream == Topic.ORDERBOOK.value,
            g.category == category,
            g.symbol == symbol,
            g.detail.startswith(f"orderbook.{depth}.{symbol}:"),  # the gap's book
            g.start_ts_ms < ts_ms,
            g.end_ts_ms > ts_ms,
        )
        .limit(1)
    ).first()
