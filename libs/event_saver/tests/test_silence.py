"""Per-symbol silence becomes a `silence` gap (gap_threshold_seconds)."""

from __future__ import annotations

from event_saver import PublicOutage, RejectedFrame
from event_saver.public_collector import PublicCollector
from event_saver.silence import SilenceMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_symbol_quiet_past_the_threshold_is_silent_until_heard_again() -> None:
    clock = Clock()
    monitor = SilenceMonitor(["BTCUSDT", "ETHUSDT"], 5.0, clock)
    monitor.heard("BTCUSDT", 1000, 1)
    clock.now = 4.0
    monitor.heard("ETHUSDT", 5000, 2)
    assert monitor.check(connection_alive=True) == []
    clock.now = 5.5
    (silence,) = monitor.check(connection_alive=True)
    assert (silence.symbol, silence.last_exchange_ts_ms) == ("BTCUSDT", 1000)
    assert monitor.check(connection_alive=True) == []  # reported once
    ended = monitor.heard("BTCUSDT", 7000, 3)
    assert ended == silence
    assert monitor.silent_symbols == []


def test_no_silence_while_the_connection_is_down_and_reset_on_reconnect() -> None:
    clock = Clock()
    monitor = SilenceMonitor(["BTCUSDT"], 5.0, clock)
    clock.now = 10
    assert monitor.check(connection_alive=False) == []
    monitor.reset()
    clock.now = 14
    assert monitor.check(connection_alive=True) == []


def trade_frame(symbol: str, trade_id: str, t: int) -> dict[str, object]:
    return {
        "topic": f"publicTrade.{symbol}",
        "type": "snapshot",
        "ts": t + 1,
        "data": [
            {"T": t, "s": symbol, "S": "Buy", "v": "1", "p": "100.5", "i": trade_id, "BT": False}
        ],
    }


def test_collector_reports_a_silence_outage_for_that_symbol_only() -> None:
    outages: list[PublicOutage] = []
    rejected: list[RejectedFrame] = []
    collector = PublicCollector(
        "ws://unused/{category}",
        ["BTCUSDT", "ETHUSDT"],
        category="linear",
        on_trades=lambda trades: None,
        on_ticker=lambda ticker: None,
        on_outage=outages.append,
        on_rejected=rejected.append,
        silence_threshold=5.0,
    )
    clock = Clock()
    assert collector.silence is not None
    collector.silence = SilenceMonitor(["BTCUSDT", "ETHUSDT"], 5.0, clock)
    collector._on_message(trade_frame("BTCUSDT", "a", 1_000), 1)
    collector._on_message(trade_frame("ETHUSDT", "b", 1_500), 2)
    clock.now = 6
    collector._on_message(trade_frame("ETHUSDT", "c", 6_000), 3)
    assert [s.symbol for s in collector.silence.check(True)] == ["BTCUSDT"]
    collector._on_message(trade_frame("BTCUSDT", "d", 9_000), 4)
    (outage,) = outages
    assert outage.outage.cause == "silence"
    assert outage.window_start_ms == {"BTCUSDT": 1_000}
    assert outage.end_ms == 9_001
    assert rejected == []


def test_spot_has_no_silence_monitor() -> None:
    collector = PublicCollector(
        "ws://unused/{category}",
        ["BTCUSDT"],
        category="spot",
        on_trades=lambda trades: None,
        on_ticker=lambda ticker: None,
        on_outage=lambda outage: None,
        on_rejected=lambda frame: None,
        silence_threshold=5.0,
    )
    assert collector.silence is None
