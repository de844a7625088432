"""Ground truth: every trade and execution the simulator ever generated, in order."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TruthTrade:
    """One generated public trade exactly as it was published (strings as on the wire)."""

    category: str
    symbol: str
    trade_id: str
    time_ms: int
    side: str
    price: str
    size: str
    tick_direction: str | None  # ``L``; None on spot where Bybit omits it
    is_block_trade: bool
    seq: int
    is_rpi: bool = False
    option_marks: tuple[str, str, str, str] | None = None  # option mP, iP, mIv, iv

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Waiter:
    category: str  # "" waits for executions
    symbol: str
    n: int
    future: asyncio.Future[None]


class GroundTruth:
    """Append-only record of generated data with async waiting helpers.

    Trades are stored per (category, market key). The market key is the symbol, except for
    options where public trades are keyed by base coin (``publicTrade.BTC``); asking for an
    option contract symbol filters the base coin's list.
    """

    def __init__(self) -> None:
        self._trades: dict[tuple[str, str], list[TruthTrade]] = {}
        self._executions: list[dict[str, Any]] = []
        self._waiters: list[_Waiter] = []

    # -- writers ------------------------------------------------------------------------
    def add_trades(self, category: str, key: str, trades: list[TruthTrade]) -> None:
        self._trades.setdefault((category, key), []).extend(trades)
        if self._waiters:
            self._wake(category)

    def add_execution(self, item: dict[str, Any]) -> None:
        self._executions.append(item)
        if self._waiters:
            self._wake("")

    # -- readers ------------------------------------------------------------------------
    def trades(self, category: str, symbol: str) -> list[TruthTrade]:
        """Every trade generated for (category, symbol), oldest first."""
        found = self._trades.get((category, symbol))
        if found is not None:
            return list(found)
        if category == "option" and "-" in symbol:
            base = symbol.split("-", 1)[0]
            return [t for t in self._trades.get((category, base), ()) if t.symbol == symbol]
        return []

    def trade_count(self, category: str, symbol: str) -> int:
        found = self._trades.get((category, symbol))
        if found is not None:
            return len(found)
        return len(self.trades(category, symbol))

    def markets(self) -> list[tuple[str, str]]:
        return sorted(self._trades)

    def executions(self) -> list[dict[str, Any]]:
        """Every private execution generated (WS ``execution`` items, with ``category``)."""
        return copy.deepcopy(self._executions)

    def execution_count(self) -> int:
        return len(self._executions)

    def executions_view(self) -> list[dict[str, Any]]:
        """The live list (no copy) for internal readers such as REST; do not mutate."""
        return self._executions

    # -- waiting ------------------------------------------------------------------------
    async def wait_for_trades(
        self,
        category: str,
        symbol: str,
        n: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[TruthTrade]:
        """Wait until at least ``n`` trades exist for (category, symbol); TimeoutError else."""
        await self._wait(_Waiter(category, symbol, n, _future()), timeout)
        return self.trades(category, symbol)

    async def wait_for_executions(
        self,
        n: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until at least ``n`` executions exist; TimeoutError else."""
        await self._wait(_Waiter("", "", n, _future()), timeout)
        return self.executions()

    def _count(self, waiter: _Waiter) -> int:
        if not waiter.category:
            return len(self._executions)
        return self.trade_count(waiter.category, waiter.symbol)

    async def _wait(self, waiter: _Waiter, timeout: float) -> None:  # noqa: ASYNC109
        if self._count(waiter) >= waiter.n:
            return
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self, category: str) -> None:
        for waiter in list(self._waiters):
            if waiter.category != category or waiter.future.done():
                continue
            if self._count(waiter) >= waiter.n:
                waiter.future.set_result(None)
                self._waiters.remove(waiter)


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()
