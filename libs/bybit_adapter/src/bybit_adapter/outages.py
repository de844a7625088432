"""Outages found from the data: "no data frame for T" becomes an outage, however it ends.

``OutageTracker`` is pure (the clocks are injected) and is fed by a stream with every
data frame. It opens an outage when

* the whole connection delivered no data frame for the silence threshold (``pause``,
  until the stream replaces the socket: then ``stall``), or the socket was lost
  (``disconnect``, ``pong_timeout``, ``ack_timeout``, ``auth``);
* one symbol delivered nothing for the threshold while the others flowed
  (``silence``).

It closes the outage when data flows again, on the same socket or a new one, and
reports it with, per symbol, the window from the last trade received before the
silence to the first trade after it: the window a REST refill must cover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bybit_records import Category, OutageCause, Trade

#: A symbol with no trade seen yet starts its window this long before the last frame:
#: a trade printed just before it may still have been in flight.
IN_FLIGHT_MARGIN_MS = 5_000
#: reported outages whose first trades are still being noted, at most
_MAX_FILLING = 8


@dataclass(frozen=True, slots=True)
class SymbolWindow:
    """Where trades of one symbol may be missing."""

    #: the time of the last trade received before the silence (or a safe fallback)
    start_ms: int
    #: the time of the first trade after it, when one arrived before the report
    first_after_ms: int | None


@dataclass(frozen=True, slots=True)
class Outage:
    """A period in which a stream (or one symbol of it) delivered no data."""

    stream: str
    category: Category | None
    cause: OutageCause
    #: the last data frame before the silence: when it arrived, its exchange time
    last_received_ns: int | None
    last_exchange_ts_ms: int | None
    #: when the silence was noticed (the threshold crossed, or the socket lost)
    detected_ns: int
    #: when data flowed again (or the stream stopped), and the first exchange time then
    recovered_ns: int
    first_exchange_ts_ms: int | None
    reconnect_attempts: int
    #: per symbol, the last trade received before the silence (public streams only)
    starts: Mapping[str, int] = field(default_factory=dict)
    #: per symbol, the first trade received after it: filled in as those trades arrive,
    #: also after the report (a refill bounds itself by them, whenever it runs)
    first_trades: Mapping[str, int] = field(default_factory=dict)
    #: the stream stopped before data flowed again
    unrecovered: bool = False

    @property
    def symbols(self) -> dict[str, SymbolWindow]:
        """Per symbol, where trades may be missing, as known now."""
        return {
            s: SymbolWindow(start, self.first_trades.get(s)) for s, start in self.starts.items()
        }

    @property
    def end_ms(self) -> int:
        """Where the outage ends on the exchange clock."""
        if self.first_exchange_ts_ms is not None:
            return self.first_exchange_ts_ms
        return self.recovered_ns // 1_000_000

    @property
    def start_ns(self) -> int:
        return self.last_received_ns if self.last_received_ns is not None else self.detected_ns

    @property
    def duration_seconds(self) -> float:
        return max(0.0, (self.recovered_ns - self.start_ns) / 1e9)

    @property
    def detection_seconds(self) -> float:
        """How long the silence lasted before it was noticed."""
        return max(0.0, (self.detected_ns - self.start_ns) / 1e9)


@dataclass(slots=True)
class _Open:
    cause: OutageCause
    last_received_ns: int | None
    last_exchange_ts_ms: int | None
    detected_ns: int
    starts: dict[str, int]
    first_after: dict[str, int] = field(default_factory=dict)
    first_exchange_ts_ms: int | None = None
    attempts: int = 0
    lost: bool = False


class OutageTracker:
    """The outage bookkeeping of one stream (a public category, or the private stream).

    Two ways find a silence. While it lasts, ``check()`` (called every keepalive tick)
    opens an outage once no frame came for ``silence_seconds``. When it has ended,
    ``data()`` sees it on the exchange clock: a frame stamped more than half the
    threshold after the previous one ends a stretch in which the server sent nothing,
    even if it was shorter than the threshold or the keepalive did not tick in time,
    and it is reported as a ``pause`` at once. The exchange clock is immune to this
    process being slow to read (a loaded machine, back-pressure): frames waiting in the
    socket keep their stamps.
    """

    def __init__(
        self,
        stream: str,
        category: Category | None,
        symbols: Iterable[str] = (),
        *,
        silence_seconds: float | None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.stream = stream
        self.category = category
        self.silence_seconds = silence_seconds
        # Tickers push every 100 ms (spot 50 ms): a jump of half the threshold between
        # two frames' exchange stamps is a stretch in which frames were not sent.
        self._quiet_ms = None if silence_seconds is None else int(silence_seconds * 500)
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        now = monotonic()
        self._symbols = list(dict.fromkeys(symbols))
        self._started_ms = wall_ns() // 1_000_000
        self._last_frame = now
        self._last_heard = dict.fromkeys(self._symbols, now)
        self._last_received_ns: int | None = None
        self._last_exchange_ms: int | None = None
        self._last_trade_ms: dict[str, int] = {}
        self._open: _Open | None = None
        self._silent: dict[str, _Open] = {}
        self._held_since: float | None = None
        #: first-trade maps of outages already reported, still being filled in
        self._reported: list[dict[str, int]] = []
        self.outages_reported = 0

    # ---- what the stream tells --------------------------------------------------

    @property
    def is_open(self) -> bool:
        """A stream-wide outage is open (data has not flowed again yet)."""
        return self._open is not None

    @property
    def held(self) -> bool:
        """The reader is stopped by back-pressure (``hold()`` without ``release()``)."""
        return self._held_since is not None

    def silent_for(self) -> float:
        """Seconds since the last data frame on the current connection."""
        now = self._held_since if self._held_since is not None else self._monotonic()
        return now - self._last_frame

    def hold(self) -> None:
        """The reader stops reading (back-pressure): the silence clock stops too."""
        if self._held_since is None:
            self._held_since = self._monotonic()

    def release(self) -> None:
        """Reading goes on: the time not read is not a silence."""
        if self._held_since is not None:
            self._shift(self._monotonic() - self._held_since)
            self._held_since = None

    def connected(self) -> None:
        """A new socket: its silence is counted from now."""
        self._held_since = None
        now = self._monotonic()
        self._last_frame = now
        for symbol in self._last_heard:
            self._last_heard[symbol] = now

    def _shift(self, seconds: float) -> None:
        self._last_frame += seconds
        for symbol in self._last_heard:
            self._last_heard[symbol] += seconds

    def forget(self, symbol: str) -> None:
        """A symbol whose topics were refused: it will never speak."""
        self._last_heard.pop(symbol, None)
        self._silent.pop(symbol, None)

    def data(
        self,
        symbol: str | None,
        exchange_ts_ms: int | None,
        received_ns: int,
        trades: Sequence[Trade] = (),
    ) -> Outage | None:
        """A data frame arrived (with its trades); returns the outage it ends, if any.

        That is a stretch without data the frame reveals on the exchange clock (reported
        as a ``pause`` of the whole stream), or the silence of its symbol.
        """
        now = self._monotonic()
        quiet = self._quiet_ms
        stretch = (
            quiet is not None
            and exchange_ts_ms is not None
            and self._last_exchange_ms is not None
            and exchange_ts_ms - self._last_exchange_ms >= quiet
            and self._open is None
        )
        if stretch:
            self._open = self._new(OutageCause.PAUSE)  # before the frame's trades count
        self._last_frame = now
        self._last_received_ns = received_ns
        if trades:
            self._note_trades(trades)
        if exchange_ts_ms is not None:
            if self._last_exchange_ms is None or exchange_ts_ms > self._last_exchange_ms:
                self._last_exchange_ms = exchange_ts_ms
            if self._open is not None and self._open.first_exchange_ts_ms is None:
                self._open.first_exchange_ts_ms = exchange_ts_ms
        if stretch:
            return self.resolve(subscriptions_complete=True)
        if symbol is None or symbol not in self._last_heard:
            return None
        self._last_heard[symbol] = now
        silence = self._silent.pop(symbol, None)
        if silence is None:
            return None
        silence.first_exchange_ts_ms = exchange_ts_ms
        return self._report(silence, received_ns, {symbol})

    def _note_trades(self, trades: Sequence[Trade]) -> None:
        last = self._last_trade_ms
        for trade in trades:
            symbol, at = trade.symbol, trade.trade_time_ms
            if at > last.get(symbol, -1):
                last[symbol] = at
        if self._open is None and not self._silent and not self._reported:
            return  # no outage waits for its first trade after: nearly every frame
        firsts = [o.first_after for o in (self._open, *self._silent.values()) if o is not None]
        firsts += self._reported
        for trade in trades:
            for first in firsts:
                first.setdefault(trade.symbol, trade.trade_time_ms)
        if self._reported:
            self._reported = [m for m in self._reported if len(m) < len(self._symbols)]

    def lost(self, cause: OutageCause) -> None:
        """The socket is gone (closed, replaced, refused auth ...)."""
        if self._open is None:
            self._open = self._new(cause)
        elif not self._open.lost:
            # Opened by a silence: now say how it ended (e.g. replaced as a stall).
            self._open.cause = cause
        self._open.lost = True
        # Only what follows the last loss is continuous: trades that came over a socket
        # lost since then do not bound the window.
        self._open.first_exchange_ts_ms = None
        self._open.first_after.clear()

    def attempt(self) -> None:
        """A reconnect attempt during the outage."""
        if self._open is not None:
            self._open.attempts += 1

    def resolve(self, subscriptions_complete: bool) -> Outage | None:
        """Close the open outage if data flows again and every topic is live."""
        pending = self._open
        if pending is None or pending.first_exchange_ts_ms is None or not subscriptions_complete:
            return None
        self._open = None
        # Every symbol's silence up to now is in this outage's windows: a symbol whose
        # first frame comes a moment after the one that ended it is not silent itself.
        now = self._monotonic()
        for symbol in self._last_heard:
            self._last_heard[symbol] = now
        return self._report(pending, self._wall_ns(), set(pending.starts))

    def resolve_without_data(self) -> Outage | None:
        """Close the open outage of a stream that proves itself without data (private)."""
        pending = self._open
        if pending is None:
            return None
        self._open = None
        return self._report(pending, self._wall_ns(), set(pending.starts))

    def check(self) -> list[str]:
        """Open outages for silences past the threshold; returns what went silent."""
        threshold = self.silence_seconds
        if threshold is None or self._open is not None or self._held_since is not None:
            return []
        now = self._monotonic()
        if now - self._last_frame >= threshold:
            self._open = self._new(OutageCause.PAUSE)
            return ["*"]
        quiet = []
        for symbol, heard in self._last_heard.items():
            if symbol not in self._silent and now - heard >= threshold:
                self._silent[symbol] = self._new(OutageCause.SILENCE, [symbol])
                quiet.append(symbol)
        return quiet

    def stop(self) -> list[Outage]:
        """The stream stops: report what is still open, so nothing vanishes."""
        out = []
        now = self._wall_ns()
        if self._open is not None:
            pending, self._open = self._open, None
            out.append(self._report(pending, now, set(pending.starts), unrecovered=True))
        for symbol, silence in list(self._silent.items()):
            del self._silent[symbol]
            out.append(self._report(silence, now, {symbol}, unrecovered=True))
        return out

    # ---- internals ----------------------------------------------------------------

    def _new(self, cause: OutageCause, symbols: Sequence[str] | None = None) -> _Open:
        if self._last_exchange_ms is not None:
            fallback = self._last_exchange_ms - IN_FLIGHT_MARGIN_MS
        else:
            fallback = self._started_ms
        chosen = self._symbols if symbols is None else symbols
        starts = {s: self._last_trade_ms.get(s, fallback) for s in chosen}
        last_received, last_exchange = self._last_received_ns, self._last_exchange_ms
        if symbols is None:
            # A symbol already silent keeps the earlier start of its own silence.
            for symbol, silence in self._silent.items():
                starts[symbol] = min(starts.get(symbol, fallback), silence.starts[symbol])
            self._silent.clear()
        return _Open(
            cause=cause,
            last_received_ns=last_received,
            last_exchange_ts_ms=last_exchange,
            detected_ns=self._wall_ns(),
            starts=starts,
        )

    def _report(
        self, pending: _Open, recovered_ns: int, symbols: set[str], *, unrecovered: bool = False
    ) -> Outage:
        self.outages_reported += 1
        starts = {s: pending.starts[s] for s in sorted(symbols) if s in pending.starts}
        if any(s not in pending.first_after for s in starts):
            # Symbols still waiting for their first trade keep being filled in; a map
            # is dropped once complete, or when too many newer outages followed.
            self._reported = [*self._reported[-(_MAX_FILLING - 1) :], pending.first_after]
        return Outage(
            stream=self.stream,
            category=self.category,
            cause=pending.cause,
            last_received_ns=pending.last_received_ns,
            last_exchange_ts_ms=pending.last_exchange_ts_ms,
            detected_ns=pending.detected_ns,
            recovered_ns=recovered_ns,
            first_exchange_ts_ms=pending.first_exchange_ts_ms,
            reconnect_attempts=pending.attempts,
            starts=starts,
            first_trades=pending.first_after,
            unrecovered=unrecovered,
        )
