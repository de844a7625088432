"""Logging that cannot flood: the first few lines per window, then a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledLog:
    def __init__(
        self,
        logger: logging.Logger,
        per_window: int = 5,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._per_window = per_window
        self._window = window_seconds
        self._clock = clock
        self._window_start = clock()
        self._emitted = 0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= self._window:
            if self._suppressed:
                self._log.warning(
                    "%d similar messages suppressed in the last %.0fs",
                    self._suppressed,
                    self._window,
                )
            self._window_start = now
            self._emitted = 0
            self._suppressed = 0
        if self._emitted < self._per_window:
            self._emitted += 1
            self._log.warning(msg, *args)
        else:
            self._suppressed += 1
