"""What the adapter's tests share: fast timings, captured frames and documented REST rows,
a recording sink, a timed session.

Test modules import these with ``from .conftest import ...`` (pytest's importlib mode
keeps the tests directory off ``sys.path``). The simulator comes from the root
conftest's ``sim`` fixture; a lib test never imports ``bybit_sim`` itself, so it is
typed ``Any`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_adapter import Outage, RestSettings
from bybit_records import Category, Record, RejectedFrame, Ticker, Trade
from testkit import FAST_STREAM

#: Every bound scaled down so that a fault is found and healed within a second or two:
#: silence (1.0) < stall (2.0); open and ack bounds (1.0) shorter than the faults.
FAST = dataclasses.replace(
    FAST_STREAM,
    ping_interval=0.3,
    pong_timeout=0.5,
    silence_timeout=1.0,
    stall_timeout=2.0,
    ack_timeout=1.0,
    auth_retry_min=0.5,
)
#: The private stream: quiet by nature, so no silence or stall detection (its default).
FAST_PRIVATE = dataclasses.replace(FAST, silence_timeout=None, stall_timeout=None)
FAST_REST = RestSettings(timeout=1.0, max_retries=3, retry_initial=0.05, retry_max=0.2, ban_pause=5)
#: A receive time for decoder tests (its milliseconds land in ``received_ts_ms``).
RECEIVED_NS = 1_700_000_000_123_456_789
RECEIVED_MS = RECEIVED_NS // 1_000_000

#: Recent-trade rows as Bybit's V5 documentation shows the REST endpoint returning them.
REST_TRADES: list[dict[str, Any]] = [
    {
        "execId": "2100000000007764263",
        "symbol": "BTCUSDT",
        "price": "16618.49",
        "size": "0.00012",
        "side": "Buy",
        "time": "1672052955758",
        "isBlockTrade": False,
        "isRPITrade": False,
        "seq": "47386728960",
    },
    {
        "execId": "bf3a6c2e-9e3a-5a8e-8b0c-2f1bdd0d0e2f",
        "symbol": "BTCUSDT",
        "price": "16618.5",
        "size": "1.5",
        "side": "Sell",
        "time": "1672052955759",
        "isBlockTrade": True,
    },
]

#: Real mainnet frames, one JSON frame a line (fixtures/captured/README.md).
CAPTURED = Path(__file__).parent / "fixtures" / "captured"
#: The inverse contracts of the linear/inverse capture; its other symbols are linear.
INVERSE_SYMBOLS = {"BTCUSD", "BTCUSDU23", "XRPUSD"}


def captured(name: str) -> list[dict[str, Any]]:
    """The frames of the capture ``name``, in file order."""
    lines = (CAPTURED / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def captured_category(name: str, frame: dict[str, Any]) -> Category:
    """The category of a frame of the capture ``name``: the file's, or (linear/inverse
    capture) its symbol's."""
    if "_option_" in name:
        return Category.OPTION
    if "_spot_" in name:
        return Category.SPOT
    symbol = frame["topic"].rsplit(".", 1)[-1]
    return Category.INVERSE if symbol in INVERSE_SYMBOLS else Category.LINEAR


def all_captured() -> list[tuple[Category, dict[str, Any]]]:
    """Every captured frame with its category, file by file in name order."""
    return [
        (captured_category(path.name, frame), frame)
        for path in sorted(CAPTURED.glob("*.jsonl"))
        for frame in captured(path.name)
    ]


class RecordingSink:
    """A ``StreamSink`` that keeps everything it is handed, in arrival order.

    ``block()`` makes ``ready`` False until ``unblock()``: back-pressure as a full
    writer would apply it. ``fail_records`` makes ``records()`` raise (a broken sink).
    """

    def __init__(self, fail_records: bool = False) -> None:
        self.received: list[Record] = []
        self.outages: list[Outage] = []
        self.rejections: list[RejectedFrame] = []
        #: ("records", [Record]) / ("outage", Outage) / ("rejected", RejectedFrame)
        self.log: list[tuple[str, Any]] = []
        self.fail_records = fail_records
        self._room: asyncio.Event | None = None
        self.waits = 0

    # ---- StreamSink -------------------------------------------------------------------

    def records(self, records: Sequence[Record]) -> None:
        if self.fail_records:
            raise RuntimeError("the sink failed")
        self.received.extend(records)
        self.log.append(("records", list(records)))

    def outage(self, outage: Outage) -> None:
        self.outages.append(outage)
        self.log.append(("outage", outage))

    def rejected(self, frame: RejectedFrame) -> None:
        self.rejections.append(frame)
        self.log.append(("rejected", frame))

    @property
    def ready(self) -> bool:
        return self._room is None or self._room.is_set()

    async def wait_ready(self) -> None:
        if self._room is not None:
            self.waits += 1
            await self._room.wait()

    # ---- control and views ------------------------------------------------------------

    def block(self) -> None:
        self._room = asyncio.Event()

    def unblock(self) -> None:
        if self._room is not None:
            self._room.set()

    def trades(self, symbol: str | None = None) -> list[Trade]:
        return [r for r in self.received if isinstance(r, Trade) and symbol in (None, r.symbol)]

    def tickers(self) -> list[Ticker]:
        return [r for r in self.received if isinstance(r, Ticker)]

    def of_type(self, kind: type[Record]) -> list[Any]:
        return [r for r in self.received if isinstance(r, kind)]


@dataclass(slots=True)
class Handshake:
    """One ``ws_connect`` call: when it started and ended, and how."""

    started: float
    ended: float | None = None
    outcome: str = "pending"  # "open", "cancelled" (the open_timeout), or an error name

    @property
    def seconds(self) -> float:
        assert self.ended is not None
        return self.ended - self.started


class TimedSession:
    """An ``aiohttp.ClientSession`` stand-in that times every WebSocket handshake.

    Passed as a stream's ``session``: the stream only calls ``ws_connect`` on it.
    """

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession()
        self.handshakes: list[Handshake] = []

    async def ws_connect(self, url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        handshake = Handshake(time.monotonic())
        self.handshakes.append(handshake)
        try:
            ws = await self.session.ws_connect(url, **kwargs)
        except asyncio.CancelledError:
            handshake.outcome = "cancelled"
            raise
        except Exception as exc:
            handshake.outcome = type(exc).__name__
            raise
        finally:
            handshake.ended = time.monotonic()
        handshake.outcome = "open"
        return ws

    async def aclose(self) -> None:
        await self.session.close()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def timed_session() -> AsyncIterator[TimedSession]:
    async with contextlib.aclosing(TimedSession()) as session:
        yield session


@pytest.fixture
async def make_sim(sim: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await make_sim(private_rate=20.0)``: another simulator configured like ``sim``
    but for the keywords given, on its own port; stopped at teardown. (Built from the
    ``sim`` fixture's class and config, so that no test imports the simulator.)"""
    async with contextlib.AsyncExitStack() as started:

        async def make(**overrides: Any) -> Any:
            config = dataclasses.replace(sim.config, port=0, **overrides)
            return await started.enter_async_context(type(sim)(config))

        yield make


@pytest.fixture
async def busy_sim(make_sim: Callable[..., Awaitable[Any]]) -> Any:
    """A simulator whose account trades 20 times a second (``sim``'s: 0.5/s), so tests
    that need a few executions do not wait seconds for them."""
    return await make_sim(private_rate=20.0)
