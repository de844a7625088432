"""Simulator configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


def _default_keys() -> dict[str, str]:
    return {"sim-key": "sim-secret"}


@dataclass(slots=True)
class SimulatorConfig:
    """Every knob of the simulator. Defaults give a realistic but light load."""

    host: str = "127.0.0.1"
    port: int = 8765  # 0 = ephemeral (tests)

    # --- market data -----------------------------------------------------------------
    trade_rate: float = 5.0  # mean trades/s per (category, symbol); 0 disables trades
    burst_max: int = 4  # at low rates a frame carries 1..burst_max trades
    max_frame_rate: float = 100.0  # frames/s cap per market; above it trades are batched
    ticker_interval_s: float = 0.1
    symbols: Sequence[tuple[str, str]] = ()  # markets started at start() (category, symbol)
    unknown_symbols: frozenset[str] = frozenset({"NOPEUSDT"})
    recent_trade_max: int = 1000  # REST recent-trade window (non-spot)
    recent_trade_max_spot: int = 60  # spot window, as on Bybit
    snapshot_before_ack: bool = True  # ticker/orderbook snapshot is sent before the ack
    max_args_per_request: int = 10  # public subscribe requests with more args are refused
    replay_file: str | None = None  # JSONL of captured frames to replay (see replay.py)

    # --- order books (orderbook.py) --------------------------------------------------
    # Bybit's push intervals (topics.BOOK_PUSH_MS) are multiplied by this: 1 = realistic
    # (10 ms for depth 1); e.g. 5 eases the CPU when many books are subscribed.
    book_interval_scale: float = 1.0
    book_update_rate: float = 100.0  # engine add/cancel/resize events/s per book (option: /5)
    book_depth1_resend_s: float = 3.0  # unchanged depth-1 snapshot re-sent (same u) after this
    book_truth_window_s: float = 300.0  # ground truth keeps each book stream this long...
    book_truth_max_frames: int = 200_000  # ...and at most about this many frames per stream

    # --- private account -------------------------------------------------------------
    api_keys: dict[str, str] = field(default_factory=_default_keys)
    private_rate: float = 0.5  # executions/s across the account; 0 disables
    private_symbols: Sequence[tuple[str, str]] = (("linear", "BTCUSDT"), ("linear", "ETHUSDT"))
    account_uid: int = 386825804

    # --- misc ------------------------------------------------------------------------
    seed: int | None = None
    # The server's clock minus the real one, for auth checks: a positive value makes
    # clients look behind (expired WS signatures, REST retCode 10002).
    clock_offset_ms: int = 0
    rest_timeout_hold_s: float = 30.0  # how long a "timeout" REST fault holds the request
    ws_send_queue_max: int = 50_000  # frames buffered per slow client before it is cut
    rest_rate_limit: int = 50  # value reported in X-Bapi-Limit (not enforced)
