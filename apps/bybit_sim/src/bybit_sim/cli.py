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


def _symbols(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        category, sep, symbol = item.partition(":")
        if not sep or category not in CATEGORIES or not symbol:
            raise argparse.ArgumentTypeError(
                f"bad symbol {item!r}; expected CATEGORY:SYMBOL, e.g. linear:BTCUSDT"
            )
        out.append((category, symbol))
    return tuple(out)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


#: the options that are not ``SimulatorConfig`` fields
_NOT_CONFIG = ("api_key", "api_secret", "log_level")


def build_parser() -> argparse.ArgumentParser:
    """The options of the simulator; each but ``_NOT_CONFIG`` is the ``SimulatorConfig`` field
    of its ``dest``, and one not given is left out (SUPPRESS), so the config's default holds."""
    p = argparse.ArgumentParser(
        prog="bybit-sim",
        description="Local Bybit V5 simulator",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--host")
    p.add_argument("--port", type=int, help="0 picks a free port")
    p.add_argument("--trade-rate", type=float, help="trades/s per symbol")
    p.add_argument(
        "--ticker-interval",
        dest="ticker_interval_s",
        metavar="TICKER_INTERVAL",
        type=float,
        help="seconds",
    )
    p.add_argument(
        "--symbols", type=_symbols, help="markets to start at once: linear:BTCUSDT,spot:ETHUSDT"
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="API key (repeatable, paired with --api-secret)",
    )
    p.add_argument("--api-secret", action="append", default=[])
    p.add_argument("--private-rate", type=float, help="executions/s")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--clock-offset-ms",
        type=int,
        help="server clock ahead of the real one, for auth checks (simulates client clock skew)",
    )
    p.add_argument(
        "--replay",
        dest="replay_file",
        metavar="REPLAY",
        help="JSONL file of captured frames to replay",
    )
    p.add_argument(
        "--book-interval-scale",
        type=_positive,
        help="multiply Bybit's order-book push intervals (1 = realistic, 10 ms for depth 1; "
        "e.g. 5 to spare CPU)",
    )
    p.add_argument(
        "--book-update-rate",
        type=float,
        help="order-book add/cancel/resize events per second per book",
    )
    p.add_argument(
        "--rest-timeout-hold",
        dest="rest_timeout_hold_s",
        metavar="REST_TIMEOUT_HOLD",
        type=float,
        help="seconds a 'timeout' REST fault holds a request",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    if len(args.api_key) != len(args.api_secret):
        raise SystemExit("bybit-sim: --api-key and --api-secret must be given in pairs")
    given = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    cfg = SimulatorConfig(**given)
    if args.api_key:
        cfg.api_keys = dict(zip(args.api_key, args.api_secret, strict=True))
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
