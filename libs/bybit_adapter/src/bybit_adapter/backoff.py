"""Reconnect pacing: jittered exponential backoff and a connection-rate cap."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable


class Backoff:
    """Capped exponential backoff with full jitter.

    ``next_delay()`` grows the ceiling after each call; ``reset()`` brings it back
    to ``initial``. The owner resets only once a new connection has proven
    healthy, so a connect-then-die loop keeps backing off.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        factor: float = 2.0,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._ceiling = initial
        self._rng = rng

    @property
    def ceiling(self) -> float:
        return self._ceiling

    def next_delay(self) -> float:
        delay = self._rng(self._ceiling / 2, self._ceiling)
        self._ceiling = min(self._maximum, self._ceiling * self._factor)
        return delay

    def reset(self) -> None:
        self._ceiling = self._initial


class ConnectionRateLimiter:
    """Token bucket on new connections.

    Bybit allows 500 new connections per 5 minutes per domain and bans bursts at
    the CDN; this keeps one client far below that even when every connection
    dies right after its first frame.
    """

    def __init__(
        self,
        max_per_window: int = 100,
        window_seconds: float = 300.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = max_per_window / window_seconds
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def delay_needed(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    async def acquire(self) -> None:
        # One owner per limiter, so after sleeping the token is there.
        wait = self.delay_needed()
        if wait > 0:
            await asyncio.sleep(wait)
            self._refill()
        self._tokens -= 1
