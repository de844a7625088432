"""Pipeline stage: the per-frame cost of decoding ``publicTrade`` frames into records.

Three parsers get the same frame texts, in this one process, timed as the best of a few
runs over all the frames:

* ``decoder``: ours, frame text in, ``Trade`` records out (``TradeDecoder.fast``, or the
  generic ``TradeDecoder.frame`` for a frame the fast path declines). This is the
  like-for-like peer of cryptofeed's handler.
* ``read loop``: ours as the WebSocket read loop runs it per frame
  (``PublicStream._frame``): the above plus the stream's bookkeeping (stats, the outage
  tracker's clocks and last trade per symbol, the subscriptions), up to the hand-over to
  the sink (here a counting one).
* ``cryptofeed``: ``cryptofeed.exchanges.Bybit.message_handler`` (its JSON decoding, routing,
  ``Trade`` objects with ``Decimal`` price and size, and the TRADES callback, here counting).

Run as a script (``run.py`` does, in an environment with the optional ``bench`` dependency
group) it prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import msgspec
from bench_frames import firehose_like_trades, realistic_frames, trade_frames

from bybit_adapter import Outage, PublicStream, TradeDecoder
from bybit_records import Category, Record, RejectedFrame

Parser = Callable[[str], None]


class PipelineError(RuntimeError):
    """A parser lost or invented trades: its timing would be meaningless."""


@dataclass
class StageResult:
    frame_size: str  # trades per frame: "1024", or "1-4" for the simulator's quiet mix
    frames: int
    trades: int
    decoder_s: float
    read_loop_s: float
    peer_s: float | None

    def us_per_frame(self, seconds: float) -> float:
        return seconds / self.frames * 1e6

    def trades_per_second(self, seconds: float) -> float:
        return self.trades / seconds

    @property
    def speedup(self) -> float | None:
        """How many times faster our decoder is than cryptofeed's handler."""
        return None if self.peer_s is None else self.peer_s / self.decoder_s


@dataclass
class PipelineResult:
    stages: list[StageResult]
    peer_version: str | None
    peer_note: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PipelineResult:
        data = json.loads(text)
        return cls(
            [StageResult(**stage) for stage in data["stages"]],
            data["peer_version"],
            data["peer_note"],
        )


def decoder_parser(category: Category = Category.LINEAR) -> tuple[Parser, Callable[[], int]]:
    """Frame text to ``Trade`` records, as the stream's two paths do it."""
    count = [0]
    decode = msgspec.json.Decoder().decode
    decoder = TradeDecoder(category)
    fast, generic = decoder.fast, decoder.frame
    clock = time.time_ns

    def parse(raw: str) -> None:
        records = fast(raw, clock())
        if records is not None:
            count[0] += len(records)
        else:
            count[0] += len(generic(decode(raw), clock()))

    return parse, lambda: count[0]


class CountingSink:
    """A ``StreamSink`` that counts the records it is given and refuses no frame."""

    def __init__(self) -> None:
        self.count = 0

    def records(self, records: Sequence[Record]) -> None:
        self.count += len(records)

    def outage(self, outage: Outage) -> None:
        raise PipelineError(f"outage reported: {outage.cause}")

    def rejected(self, frame: RejectedFrame) -> None:
        raise PipelineError(f"frame rejected: {frame.reason}")

    @property
    def ready(self) -> bool:
        return True

    async def wait_ready(self) -> None:
        return None


def read_loop_parser(category: Category = Category.LINEAR) -> tuple[Parser, Callable[[], int]]:
    """A ``PublicStream`` (never connected) fed each frame as its read loop feeds it."""
    sink = CountingSink()
    stream = PublicStream("ws://127.0.0.1:9/v5/public/{category}", category, ["BTCUSDT"], sink)
    # The steady state of a connection: its first data frame has already told the
    # connector that it is healthy (which needs a connector, i.e. a started stream).
    stream._healthy = True
    handle = stream._frame  # the read loop's per-frame entry point (``read_frames``)
    clock = time.time_ns

    def parse(raw: str) -> None:
        handle(raw, clock())

    return parse, lambda: sink.count


def cryptofeed_parser() -> tuple[Parser, Callable[[], int]] | str:
    """cryptofeed's Bybit ``message_handler`` with a counting TRADES callback, or why not."""
    try:
        from cryptofeed.defines import BYBIT, TRADES
        from cryptofeed.exchanges import Bybit
        from cryptofeed.symbols import Symbols
    except Exception as exc:  # not installed (the optional ``bench`` group) or broken
        return f"cryptofeed not importable ({type(exc).__name__}: {exc})"
    # The symbol map normally comes from Bybit's REST API at start; give it directly.
    Symbols.set(BYBIT, {"BTC-USDT-PERP": "BTCUSDT"}, {"instrument_type": {}})
    count = [0]

    async def on_trade(_trade: Any, _receipt_timestamp: float) -> None:
        count[0] += 1

    feed = Bybit(symbols=["BTC-USDT-PERP"], channels=[TRADES], callbacks={TRADES: on_trade})

    class Connection:  # what message_handler reads of its AsyncConnection
        address = "wss://stream.bybit.com/v5/public/linear"
        uuid = "bench"

    conn = Connection()
    handler = feed.message_handler
    loop = asyncio.new_event_loop()

    def parse(raw: str) -> None:
        # One coroutine per frame, as cryptofeed's connection loop awaits it. It never
        # suspends (the callback does not), so send() runs it to the end without the
        # event loop's scheduling, which only flatters cryptofeed.
        coroutine = handler(raw, conn, time.time())
        try:
            coroutine.send(None)
        except StopIteration:
            return
        loop.run_until_complete(coroutine)  # only if a future version suspends

    return parse, lambda: count[0]


def cryptofeed_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("cryptofeed")
    except Exception:
        return None


def best_of(repeats: int, parse: Parser, frames: list[str]) -> float:
    """The fastest of ``repeats`` passes over ``frames`` (the least disturbed one)."""
    best = float("inf")
    gc.collect()
    for _ in range(repeats):
        started = time.perf_counter()
        for raw in frames:
            parse(raw)
        best = min(best, time.perf_counter() - started)
    return best


def timed(
    name: str, make: tuple[Parser, Callable[[], int]], frames: list[str], trades: int, repeats: int
) -> float:
    parse, delivered = make
    before = delivered()
    seconds = best_of(repeats, parse, frames)
    if delivered() - before != trades * repeats:
        raise PipelineError(f"{name} delivered {delivered() - before} of {trades * repeats}")
    return seconds


def pipeline(trades_total: int, sizes: tuple[str, ...], repeats: int) -> PipelineResult:
    """Each frame size in ``sizes``: a number of trades per frame, or ``mix``."""
    trades = firehose_like_trades(trades_total)
    peer = cryptofeed_parser()
    stages = []
    for size in sizes:
        if size == "mix":
            label, frames, count = "1-4", realistic_frames(trades), len(trades)
        else:
            per_frame = int(size)
            count = trades_total - trades_total % per_frame
            label, frames = size, trade_frames(trades[:count], per_frame)
        decoder = timed("decoder", decoder_parser(), frames, count, repeats)
        read_loop = timed("read loop", read_loop_parser(), frames, count, repeats)
        peer_s = (
            None if isinstance(peer, str) else timed("cryptofeed", peer, frames, count, repeats)
        )
        stages.append(StageResult(label, len(frames), count, decoder, read_loop, peer_s))
    return PipelineResult(
        stages,
        None if isinstance(peer, str) else cryptofeed_version(),
        peer if isinstance(peer, str) else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=102_400)
    parser.add_argument(
        "--sizes", default="1,mix,100,1024", help="trades per frame; mix: 1 to 4 as quiet"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes.split(","))
    sys.stdout.write(pipeline(args.trades, sizes, args.repeats).to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
