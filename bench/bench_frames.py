"""Trades and ``publicTrade`` frames made by the simulator's own code, for in-process stages.

The flat-out scenario's firehose makes its trades the same way (``SymbolMarket.make_trades``
in frames of up to 1,024), so the limit and the pipeline stage see trades and frames of
the same shape as the recorder gets over the socket.
"""

from __future__ import annotations

from bybit_sim import GroundTruth, SimulatorConfig, TruthTrade
from bybit_sim.market import MarketHub, SymbolMarket

SYMBOL = "BTCUSDT"


def _market(seed: int, symbol: str) -> SymbolMarket:
    market = MarketHub(SimulatorConfig(seed=seed), GroundTruth()).ensure_market("linear", symbol)
    assert isinstance(market, SymbolMarket)
    return market


def firehose_like_trades(n: int, seed: int = 1, symbol: str = SYMBOL) -> list[TruthTrade]:
    """``n`` linear trades as the firehose makes them (bursts of up to 1,024)."""
    market = _market(seed, symbol)
    ts = 1_790_000_000_000
    out: list[TruthTrade] = []
    while len(out) < n:
        out.extend(market.make_trades(min(1024, n - len(out)), ts))
        ts += 10
    return out


def trade_frames(trades: list[TruthTrade], per_frame: int, seed: int = 1) -> list[str]:
    """``publicTrade`` frames of ``per_frame`` trades each, encoded as the simulator sends."""
    market = _market(seed, trades[0].symbol)
    return [
        market.encode_trade_frame(trades[i : i + per_frame], trades[i].time_ms).decode()
        for i in range(0, len(trades), per_frame)
    ]


def realistic_frames(trades: list[TruthTrade], seed: int = 1) -> list[str]:
    """Frames sized as the simulator sizes them at typical rates (1 to 4 trades, mean 2)."""
    market = _market(seed, trades[0].symbol)
    frames = []
    start = 0
    while start < len(trades):
        size = market._burst_size()  # the simulator's own law for a quiet market
        chunk = trades[start : start + size]
        frames.append(market.encode_trade_frame(chunk, chunk[0].time_ms).decode())
        start += size
    return frames
