"""``bybit-sim`` console script."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from bybit_sim.config import SimulatorConfig
from bybit_sim.instruments import CATEGORIES
from bybit_sim.server import BybitSimulator

log = logging.getLogger("bybit_sim.cli")


def _symbols(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        category, sep, symbol = item.partition(":")
        if not sep or category not in CATEGORIES or not symbol:
            raise argparse.ArgumentTypeError(
                f"bad symbol {item!r}; expected CATEGORY:SYMBOL, e.g. linear:BTCUSDT"
            )
        out.append((category, symbol))
    return out


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bybit-sim", description="Local Bybit V5 simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--trade-rate", type=float, default=5.0, help="trades/s per symbol")
    p.add_argument("--ticker-interval", type=float, default=0.1, help="seconds")
    p.add_argument(
        "--symbols",
        type=_symbols,
        default=[],
        help="markets to start at once: linear:BTCUSDT,spot:ETHUSDT",
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="API key (repeatable, paired with --api-secret)",
    )
    p.add_argument("--api-secret", action="append", default=None)
    p.add_argument("--private-rate", type=float, default=0.5, help="executions/s")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--clock-offset-ms",
        type=int,
        default=0,
        help="server clock ahead of the real one, for auth checks (simulates client clock skew)",
    )
    p.add_argument("--replay", default=None, help="JSONL file of captured frames to replay")
    p.add_argument(
        "--book-interval-scale",
        type=_positive,
        default=1.0,
        help="multiply Bybit's order-book push intervals (1 = realistic, 10 ms for depth 1; "
        "e.g. 5 to spare CPU)",
    )
    p.add_argument(
        "--book-update-rate",
        type=float,
        default=100.0,
        help="order-book add/cancel/resize events per second per book",
    )
    p.add_argument(
        "--rest-timeout-hold",
        type=float,
        default=30.0,
        help="seconds a 'timeout' REST fault holds a request",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    keys = args.api_key or []
    secrets = args.api_secret or []
    if len(keys) != len(secrets):
        raise SystemExit("bybit-sim: --api-key and --api-secret must be given in pairs")
    cfg = SimulatorConfig(
        host=args.host,
        port=args.port,
        trade_rate=args.trade_rate,
        ticker_interval_s=args.ticker_interval,
        symbols=tuple(args.symbols),
        private_rate=args.private_rate,
        seed=args.seed,
        clock_offset_ms=args.clock_offset_ms,
        replay_file=args.replay,
        book_interval_scale=args.book_interval_scale,
        book_update_rate=args.book_update_rate,
        rest_timeout_hold_s=args.rest_timeout_hold,
    )
    if keys:
        cfg.api_keys = dict(zip(keys, secrets, strict=True))
    return cfg


async def _serve(cfg: SimulatorConfig) -> None:
    sim = BybitSimulator(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    try:
        ws = sim.public_ws_url
        sys.stdout.write(f"bybit-sim listening on {sim.rest_url} (ws {ws})\n")
        sys.stdout.flush()
        await stop.wait()
        log.info("signal received, shutting down")
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(config_from_args(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
