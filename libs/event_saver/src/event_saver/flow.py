"""Back-pressure between writers and the connections that feed them."""

from __future__ import annotations

import asyncio


class FlowGate:
    """Open while every writer has room; readers wait on it before the next frame.

    Closing the gate stops reading from the socket instead of growing memory:
    if the stall lasts, the connection is replaced and the lost interval is
    reconciled and recorded as a gap.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._holders: set[str] = set()
        self.pauses = 0

    @property
    def is_open(self) -> bool:
        return not self._holders

    def is_held_by(self, holder: str) -> bool:
        return holder in self._holders

    def hold(self, holder: str) -> None:
        if holder not in self._holders:
            self._holders.add(holder)
            self._open.clear()
            self.pauses += 1

    def release(self, holder: str) -> None:
        self._holders.discard(holder)
        if not self._holders:
            self._open.set()

    async def wait_open(self) -> None:
        await self._open.wait()
