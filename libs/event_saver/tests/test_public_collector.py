"""PublicCollector: gap windows start where the lost connection left off."""

from __future__ import annotations

from bybit_adapter import Outage
from event_saver import PublicOutage
from event_saver.public_collector import PublicCollector


def trade_frame(symbol: str, trade_id: str, t: int) -> dict[str, object]:
    return {
        "topic": f"publicTrade.{symbol}",
        "type": "snapshot",
        "ts": t + 1,
        "data": [{"T": t, "s": symbol, "S": "Sell", "v": "2", "p": "10.0", "i": trade_id}],
    }


def outage(last_ts: int, first_ts: int) -> Outage:
    return Outage("public.linear", "linear", "disconnect", last_ts, 1, 2, first_ts, 3, 1)


def collector(outages: list[PublicOutage]) -> PublicCollector:
    return PublicCollector(
        "ws://unused/{category}",
        ["BTCUSDT", "ETHUSDT"],
        category="linear",
        on_trades=lambda trades: None,
        on_ticker=lambda ticker: None,
        on_outage=outages.append,
        on_rejected=lambda frame: None,
    )


def test_trades_on_the_new_connection_do_not_move_the_gap_start() -> None:
    # Found by the soak: the first frame of the new connection arrived before the
    # outage was reported and used to become the window start, hiding the hole.
    outages: list[PublicOutage] = []
    c = collector(outages)
    c._on_message(trade_frame("BTCUSDT", "a", 1_000), 1)
    c._on_message(trade_frame("ETHUSDT", "b", 1_100), 1)
    c._connection_lost("disconnect")
    c._on_message(trade_frame("BTCUSDT", "c", 1_500), 2)  # new connection
    c._outage(outage(1_101, 1_501))
    (reported,) = outages
    assert reported.window_start_ms == {"BTCUSDT": 1_000, "ETHUSDT": 1_100}
    assert reported.end_ms == 1_501


def test_a_symbol_without_trades_starts_before_the_last_frame() -> None:
    outages: list[PublicOutage] = []
    c = collector(outages)
    c._on_message(trade_frame("BTCUSDT", "a", 10_000), 1)
    c._connection_lost("disconnect")
    c._outage(outage(12_000, 13_000))
    assert outages[0].window_start_ms == {"BTCUSDT": 10_000, "ETHUSDT": 7_000}
