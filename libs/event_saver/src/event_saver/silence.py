"""Per-symbol silence on a connection that otherwise delivers.

A topic can stop on the server while the socket and other topics keep
flowing; the connection watchdog cannot see that. Derivative tickers push
every 100 ms, so a symbol quiet for longer than the threshold while its
neighbours are not is a gap to reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Silence:
    symbol: str
    last_exchange_ts_ms: int | None
    last_received_ns: int | None
    detected_ns: int


class SilenceMonitor:
    """Tracks when each symbol was last heard of; pure, the clock is injected."""

    def __init__(
        self,
        symbols: Iterable[str],
        threshold_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold_seconds
        self._clock = clock
        now = clock()
        self._last_seen: dict[str, float] = dict.fromkeys(symbols, now)
        self._last_ts: dict[str, int] = {}
        self._last_ns: dict[str, int] = {}
        self._silent: dict[str, Silence] = {}

    def heard(self, symbol: str, exchange_ts_ms: int, received_ns: int) -> Silence | None:
        """Record data for a symbol; returns the silence it ends, if any."""
        if symbol not in self._last_seen:
            return None
        self._last_seen[symbol] = self._clock()
        self._last_ts[symbol] = exchange_ts_ms
        self._last_ns[symbol] = received_ns
        return self._silent.pop(symbol, None)

    def check(self, connection_alive: bool) -> list[Silence]:
        """Symbols that just went silent; call periodically."""
        if not connection_alive:
            return []
        now = self._clock()
        found = []
        for symbol, seen in self._last_seen.items():
            if symbol not in self._silent and now - seen > self.threshold:
                silence = Silence(
                    symbol, self._last_ts.get(symbol), self._last_ns.get(symbol), time.time_ns()
                )
                self._silent[symbol] = silence
                found.append(silence)
        return found

    def reset(self) -> None:
        """A reconnect: the connection outage covers every symbol."""
        now = self._clock()
        self._silent.clear()
        for symbol in self._last_seen:
            self._last_seen[symbol] = now

    @property
    def silent_symbols(self) -> list[str]:
        return list(self._silent)
