"""Runs blocking database work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class DatabaseWorker:
    """One thread that performs every database write of a session.

    SQLite admits one writer at a time; funnelling all writers through one thread
    turns lock contention inside the process into a simple queue, and a slow disk
    delays only this thread, never the event loop (pings keep flowing).
    """

    def __init__(self, name: str = "db-writer") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    async def run(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("database worker is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def aclose(self) -> None:
        """Let queued work finish, then stop the thread, without blocking the loop."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._executor.shutdown, True)
