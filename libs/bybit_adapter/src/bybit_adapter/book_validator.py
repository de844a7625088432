"""The sequence checks of order books: which updates to store, and when a book broke.

No peer checks Bybit's book sequence (cryptofeed, ccxt and nautilus reset on snapshots
and apply every delta): a lost delta leaves them a wrong book for as long as the
subscription lasts. ``BookValidator`` keeps every book of one public stream (one
category), keyed by (symbol, depth), and judges each decoded ``BookUpdate`` before it is
stored. It never lets a state it knows is wrong be stored.

Use (one validator per ``PublicStream``; pure, no I/O, no clock)::

    verdict = validator.check(update)
    match verdict.action:
        case BookAction.STORE:
            store(verdict.update)                # then the checkpoint, if any
            if verdict.checkpoint: store(verdict.checkpoint)
            if verdict.healed: gaps.write(verdict.healed.record())
        case BookAction.BREAK:
            resubscribe(verdict.update.topic)    # its fresh snapshot heals the book
        case BookAction.SKIP | BookAction.DROP:
            pass                                 # store nothing

``verdict.records`` is the list to store (the update and its checkpoint; empty unless
STORE).

The verdicts:

* ``STORE``: the update is valid and the validator's book now includes it. Store it. When
  ``checkpoint`` is set, store that too, after it: a ``CHECKPOINT`` record of the whole
  book, due every ``checkpoint_every_updates`` deltas or ``checkpoint_every_ms`` of
  exchange time since the last full book (snapshot or checkpoint). When ``healed`` is
  set, the snapshot closes a gap: write one ``gaps`` row from it (``BookGap.record()``).
* ``SKIP``: a snapshot that repeats the book's ``u`` with the same levels (depth 1
  re-sends an unchanged book every 3 s): nothing changed, store nothing.
* ``BREAK``: the update shows the book is wrong; ``broken`` says why (``cause``) and since
  when (``start_ts_ms``: the ``ts`` of the last update stored, or of this update when
  none was). The validator forgets the book; the caller resubscribes the topic. Causes:
  a delta before any snapshot (``DELTA_BEFORE_SNAPSHOT``); a delta whose ``u`` is not
  the last + 1 (``SKIPPED_UPDATE``; a ``u`` = 1 frame labelled delta lands here too); a
  snapshot repeating the last ``u`` with other levels (``SKIPPED_UPDATE``); a book crossed
  (best bid >= best ask) after a delta (``CROSSED_BOOK``).
* ``DROP``: after a BREAK, every delta of that book until a snapshot arrives: store
  nothing. The first snapshot after it is a STORE with ``healed``: the break's cause and
  start, and ``end_ts_ms`` = that snapshot's ``ts``.

A snapshot with ``u`` = 1 that replaces a book (Bybit restarted its book service) is
valid and resets the book: it is a STORE, not a BREAK, and carries ``healed`` with
cause ``BOOK_RESTART`` (from the last update stored to it), so the caller stores it and
records the gap the same way as any healed break.

Any other snapshot replaces the book and is stored (Bybit re-sends one "if there is a
problem on its end"; its ``u`` may jump). Crossing is checked after deltas only: a
snapshot is the exchange's own full state.

``reset()`` forgets the books (a new connection sends fresh snapshots) but keeps the
breaks still open, so the snapshot after a resubscribe or a reconnect closes them;
``open_gaps()`` lists them (on shutdown, close them with ``BookGap.close`` and record
them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bybit_records import (
    Book,
    BookKind,
    BookUpdate,
    Category,
    FillStatus,
    Gap,
    OutageCause,
    Topic,
)


class BookAction(StrEnum):
    """What to do with a checked update (see the module docstring)."""

    #: valid: store the update (and the verdict's checkpoint)
    STORE = "store"
    #: an unchanged snapshot re-sent with the same ``u``: store nothing
    SKIP = "skip"
    #: a delta of a broken book, before the snapshot that heals it: store nothing
    DROP = "drop"
    #: the book is wrong: store nothing, resubscribe
    BREAK = "break"


@dataclass(frozen=True, slots=True)
class BookGap:
    """A window in which one book could not be recorded (or, a restart, not trusted).

    Open (``end_ts_ms`` None) from the BREAK until the snapshot that heals it. Times:
    ``start_ts_ms``/``end_ts_ms`` are exchange times (``ts``) of the last update stored
    before and of the snapshot after; ``detected_at_ms``/``resolved_at_ms`` the receive
    times of the update that broke the book and of that snapshot.
    """

    category: Category
    symbol: str
    depth: int
    cause: OutageCause
    start_ts_ms: int
    detected_at_ms: int
    #: one line: what the update showed
    detail: str
    end_ts_ms: int | None = None
    resolved_at_ms: int | None = None

    @property
    def topic(self) -> str:
        return f"orderbook.{self.depth}.{self.symbol}"

    def close(self, end_ts_ms: int, resolved_at_ms: int) -> BookGap:
        """This gap, closed at ``end_ts_ms``."""
        return replace(self, end_ts_ms=end_ts_ms, resolved_at_ms=resolved_at_ms)

    def record(self) -> Gap:
        """The ``gaps`` row of this closed gap: ``unfillable`` (Bybit keeps no book
        history); the depth is in ``detail``."""
        if self.end_ts_ms is None:
            raise ValueError(f"{self.topic}: the gap is still open")
        return Gap(
            stream=Topic.ORDERBOOK,
            category=self.category,
            symbol=self.symbol,
            start_ts_ms=self.start_ts_ms,
            end_ts_ms=self.end_ts_ms,
            cause=self.cause,
            fill_status=FillStatus.UNFILLABLE,
            rows_recovered=0,
            recovered_from_ts_ms=None,
            detail=f"{self.topic}: {self.detail}",
            detected_at_ms=self.detected_at_ms,
            resolved_at_ms=self.resolved_at_ms,
        )


@dataclass(frozen=True, slots=True)
class BookVerdict:
    """The judgement of one update (see the module docstring)."""

    action: BookAction
    update: BookUpdate
    #: BREAK: the gap the update opened
    broken: BookGap | None = None
    #: STORE: the gap this snapshot closes (a healed break, or a restart)
    healed: BookGap | None = None
    #: STORE: a full book to store after the update
    checkpoint: BookUpdate | None = None

    @property
    def cause(self) -> OutageCause | None:
        """The cause of the gap opened (BREAK) or closed (STORE with ``healed``)."""
        gap = self.broken or self.healed
        return None if gap is None else gap.cause

    @property
    def start_ts_ms(self) -> int | None:
        """The window start of that gap: the last good update's ``ts``."""
        gap = self.broken or self.healed
        return None if gap is None else gap.start_ts_ms

    @property
    def records(self) -> list[BookUpdate]:
        """What to store, in order: the update and its checkpoint (STORE only)."""
        if self.action is not BookAction.STORE:
            return []
        if self.checkpoint is None:
            return [self.update]
        return [self.update, self.checkpoint]


class _Stream:
    """What the validator knows of one (symbol, depth) book."""

    __slots__ = ("book", "broken", "full_ts", "last_ts", "since_full")

    def __init__(self) -> None:
        #: the book, or None before its first snapshot, after a break or a reset
        self.book: Book | None = None
        #: the open gap, from a BREAK until the snapshot that heals it
        self.broken: BookGap | None = None
        #: ``ts`` of the last update stored
        self.last_ts: int | None = None
        #: ``ts`` of the last full book stored (snapshot or checkpoint), and the deltas
        #: stored since
        self.full_ts = 0
        self.since_full = 0


class BookValidator:
    """The order books of one public stream, keyed by (symbol, depth), and the verdict on
    each update (see the module docstring).

    ``checkpoint_every_updates`` / ``checkpoint_every_ms``: a checkpoint is due after
    that many deltas, or that much exchange time, since the book's last full state
    (None: never by that measure).
    """

    def __init__(
        self,
        *,
        checkpoint_every_updates: int | None = 1000,
        checkpoint_every_ms: int | None = 60_000,
    ) -> None:
        for name, value in (
            ("checkpoint_every_updates", checkpoint_every_updates),
            ("checkpoint_every_ms", checkpoint_every_ms),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, not {value}")
        self.checkpoint_every_updates = checkpoint_every_updates
        self.checkpoint_every_ms = checkpoint_every_ms
        self._streams: dict[tuple[str, int], _Stream] = {}

    def check(self, update: BookUpdate) -> BookVerdict:
        """Judge ``update`` (the next one of its book, in arrival order)."""
        key = (update.symbol, update.depth)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        if update.kind is BookKind.DELTA:
            return self._delta(stream, update)
        if update.kind is BookKind.SNAPSHOT:
            return self._snapshot(stream, update)
        raise ValueError("a checkpoint is the validator's own output, not an update to check")

    def book(self, symbol: str, depth: int) -> Book | None:
        """The current book of (symbol, depth): None before its first snapshot and while
        it is broken. Read it; do not apply updates to it."""
        stream = self._streams.get((symbol, depth))
        return None if stream is None else stream.book

    def open_gaps(self) -> list[BookGap]:
        """The breaks no snapshot has healed yet."""
        return [s.broken for s in self._streams.values() if s.broken is not None]

    def reset(self) -> None:
        """Forget every book (a new connection sends fresh snapshots); open breaks stay
        open until their snapshot."""
        for stream in self._streams.values():
            stream.book = None

    # ---- the checks -------------------------------------------------------------------

    def _delta(self, stream: _Stream, update: BookUpdate) -> BookVerdict:
        if stream.broken is not None:
            return BookVerdict(BookAction.DROP, update)
        book = stream.book
        if book is None:
            return self._break(
                stream,
                update,
                OutageCause.DELTA_BEFORE_SNAPSHOT,
                f"delta u={update.update_id} before any snapshot",
            )
        last_u = book.update_id
        if last_u is None or update.update_id != last_u + 1:
            return self._break(
                stream,
                update,
                OutageCause.SKIPPED_UPDATE,
                f"delta u={update.update_id} after u={last_u} (expected {_next(last_u)})",
            )
        book.apply(update)
        if book.crossed():
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is not None  # crossed: both sides have a level
            assert ask is not None
            return self._break(
                stream,
                update,
                OutageCause.CROSSED_BOOK,
                f"best bid {bid[0]} >= best ask {ask[0]} after delta u={update.update_id}",
            )
        ts = update.exchange_ts_ms
        stream.last_ts = ts
        stream.since_full += 1
        every_n, every_ms = self.checkpoint_every_updates, self.checkpoint_every_ms
        if (every_n is not None and stream.since_full >= every_n) or (
            every_ms is not None and ts - stream.full_ts >= every_ms
        ):
            stream.since_full = 0
            stream.full_ts = ts
            return BookVerdict(BookAction.STORE, update, checkpoint=book.checkpoint(update))
        return BookVerdict(BookAction.STORE, update)

    def _snapshot(self, stream: _Stream, update: BookUpdate) -> BookVerdict:
        healed = None
        if stream.broken is not None:
            healed = stream.broken.close(update.exchange_ts_ms, update.received_ts_ms)
            if update.update_id == 1:
                healed = replace(healed, detail=f"{healed.detail}; healed by a u=1 snapshot")
            stream.broken = None
        elif stream.book is not None:
            book, u = stream.book, update.update_id
            if u == book.update_id:
                if book.same_levels(update):
                    return BookVerdict(BookAction.SKIP, update)
                if u != 1:
                    return self._break(
                        stream,
                        update,
                        OutageCause.SKIPPED_UPDATE,
                        f"snapshot repeated u={u} with different levels",
                    )
            if u == 1:
                assert stream.last_ts is not None  # a book exists: something was stored
                healed = BookGap(
                    update.category,
                    update.symbol,
                    update.depth,
                    OutageCause.BOOK_RESTART,
                    start_ts_ms=stream.last_ts,
                    detected_at_ms=update.received_ts_ms,
                    detail=f"snapshot u=1 replaced the book at u={book.update_id}",
                    end_ts_ms=update.exchange_ts_ms,
                    resolved_at_ms=update.received_ts_ms,
                )
        if stream.book is None:
            stream.book = Book()
        stream.book.apply(update)
        stream.last_ts = stream.full_ts = update.exchange_ts_ms
        stream.since_full = 0
        return BookVerdict(BookAction.STORE, update, healed=healed)

    def _break(
        self, stream: _Stream, update: BookUpdate, cause: OutageCause, detail: str
    ) -> BookVerdict:
        gap = BookGap(
            update.category,
            update.symbol,
            update.depth,
            cause,
            start_ts_ms=update.exchange_ts_ms if stream.last_ts is None else stream.last_ts,
            detected_at_ms=update.received_ts_ms,
            detail=detail,
        )
        stream.broken = gap
        stream.book = None  # never built on again: the next snapshot starts a new one
        return BookVerdict(BookAction.BREAK, update, broken=gap)


def _next(u: int | None) -> str:
    return "a snapshot" if u is None else str(u + 1)
