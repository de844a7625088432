"""Optional sampling of ticker states: at most one per ``min_interval_ms`` per symbol.

Bybit pushes a linear ticker every 100 ms (spot: 50 ms). A user who does not need every push
sets ``min_interval_ms`` (``PipelineConfig.ticker_min_interval_ms``, the recorder's
``tickers.min_interval_ms``). A state of one (category, symbol) is kept when its exchange time
(``exchange_ts_ms``) lies at least ``min_interval_ms`` from that of the last state *kept* for
the symbol; every other state is dropped and counted in ``sampled_out``.

Only timing is given up, never a field: the stream's ``TickerDecoder`` merges every delta
before a state gets here (sampling is never done in the adapter), so the typed fields of each
state are complete and the next kept one carries their latest values. The fields without a
column (``Ticker.data``, as each frame sent them) of the states dropped are carried into the
next kept state's ``data``, so merging ``data`` forward over the stored rows still gives
every one of them.

The rules, and why:

* The first state of a symbol is kept.
* A snapshot (a resubscribe after a reconnect; on spot, every push) follows the same rule as a
  delta. So any two consecutive rows of a symbol are at least ``min_interval_ms`` apart, with
  no exception, and a reconnect does not shift the sampling grid. Nothing is hidden by it: the
  next kept row holds everything the snapshot held, and the outage itself is a ``gaps`` row.
* Exchange time that steps back by ``min_interval_ms`` or more (a new feed's clock) keeps the
  state and restarts the symbol's clock, so a clock step never silences a symbol; a smaller
  step back is "too soon" like any other.
* Hence the staleness bound: at any moment the newest stored state of a symbol is less than
  ``min_interval_ms`` (exchange time) older than the newest one received, except across a
  clock step back. The states received in the last interval before the session stops may
  therefore not be stored.

``min_interval_ms`` 0 keeps every state; the pipeline then installs no sampler at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from bybit_records import Category, Ticker


class TickerSampler:
    """Keeps at most one ticker state per ``min_interval_ms`` of exchange time per symbol."""

    def __init__(self, min_interval_ms: int) -> None:
        if min_interval_ms < 0:
            raise ValueError(f"min_interval_ms must be >= 0, got {min_interval_ms}")
        self.min_interval_ms = min_interval_ms
        #: states dropped so far (every symbol)
        self.sampled_out = 0
        self._last_kept: dict[tuple[Category, str], int] = {}
        #: per symbol: the ``data`` fields of the states dropped since its last kept one
        self._carried: dict[tuple[Category, str], dict[str, Any]] = {}

    def keep(self, ticker: Ticker) -> bool:
        """Whether to store ``ticker`` (see ``sample``)."""
        return bool(self.sample([ticker]))

    def sample(self, tickers: Sequence[Ticker]) -> list[Ticker]:
        """The states of ``tickers`` to store, in order; each kept state becomes its
        symbol's last kept one, and carries the ``data`` of the states dropped before it."""
        kept = []
        for ticker in tickers:
            key = (ticker.category, ticker.symbol)
            at = ticker.exchange_ts_ms
            last = self._last_kept.get(key)
            if last is None or abs(at - last) >= self.min_interval_ms:
                self._last_kept[key] = at
                carried = self._carried.pop(key, None)
                if carried:
                    ticker = msgspec.structs.replace(ticker, data={**carried, **ticker.data})
                kept.append(ticker)
            else:
                self.sampled_out += 1
                if ticker.data:
                    self._carried[key] = {**self._carried.get(key, {}), **ticker.data}
        return kept
