"""``OutageTracker`` on fake clocks: which outage, which cause, which windows.

The tracker is pure: the monotonic clock (silence) and the wall clock (report times)
are injected, and the stream's calls are made by hand in the order the stream makes
them (``trades()`` before ``data()`` for a trade frame).
"""

from __future__ import annotations

from bybit_adapter import Outage, OutageTracker, SymbolWindow
from bybit_adapter.outages import IN_FLIGHT_MARGIN_MS
from bybit_records import Category, OutageCause
from testkit import FakeClock, make_trade

from .conftest import RECEIVED_NS

EXCHANGE_MS = 1_700_000_000_000


def tracker(clocks: FakeClock, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> OutageTracker:
    return OutageTracker(
        "public.linear",
        Category.LINEAR,
        symbols,
        silence_seconds=1.0,
        monotonic=clocks.monotonic,
        wall_ns=clocks.wall_ns,
    )


def trade_frame(t: OutageTracker, clocks: FakeClock, symbol: str, at_ms: int) -> Outage | None:
    """What the stream does with one trade frame of one trade."""
    trade = make_trade(
        symbol,
        f"{symbol}-{at_ms}",
        trade_time_ms=at_ms,
        exchange_ts_ms=at_ms + 2,
        received_ts_ms=at_ms + 5,
    )
    return t.data(symbol, at_ms + 2, clocks.wall_ns(), [trade])


def ticker_frame(t: OutageTracker, clocks: FakeClock, symbol: str, ts_ms: int) -> Outage | None:
    return t.data(symbol, ts_ms, clocks.wall_ns())


def test_nothing_is_open_while_data_flows() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    for n in range(20):
        clocks.advance(0.3)
        assert trade_frame(t, clocks, ("BTCUSDT", "ETHUSDT")[n % 2], EXCHANGE_MS + n) is None
        assert t.check() == []
    assert not t.is_open
    assert t.stop() == []
    assert t.outages_reported == 0


def test_a_connection_silence_is_a_pause_resolved_when_data_flows_again() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 100)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 200)
    last_received = clocks.wall_ns()
    clocks.advance(0.99)
    assert t.check() == []
    clocks.advance(0.02)
    assert t.check() == ["*"]
    detected = clocks.wall_ns()
    assert t.is_open
    assert t.check() == []  # opened once
    clocks.advance(0.5)
    t.attempt()  # (no reconnect happens in a pause; counted if one did)
    # data again, on the same socket: the first trade after the silence closes it
    assert trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 1700) is None
    outage = t.resolve(subscriptions_complete=True)
    assert outage is not None
    assert not t.is_open
    assert outage.cause is OutageCause.PAUSE
    assert (outage.stream, outage.category) == ("public.linear", Category.LINEAR)
    assert outage.last_received_ns == last_received
    assert outage.last_exchange_ts_ms == EXCHANGE_MS + 202
    assert outage.detected_ns == detected
    assert outage.recovered_ns == clocks.wall_ns()
    assert outage.first_exchange_ts_ms == outage.end_ms == EXCHANGE_MS + 1702
    assert outage.reconnect_attempts == 1
    assert not outage.unrecovered
    assert outage.symbols == {
        "BTCUSDT": SymbolWindow(EXCHANGE_MS + 100, None),  # no BTC trade yet
        "ETHUSDT": SymbolWindow(EXCHANGE_MS + 200, EXCHANGE_MS + 1700),
    }
    assert abs(outage.detection_seconds - 1.01) < 1e-6
    assert abs(outage.duration_seconds - 1.51) < 1e-6
    assert t.outages_reported == 1


def test_a_pause_ends_only_once_every_subscription_is_live() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS)
    clocks.advance(1.0)
    t.check()
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1000)
    assert t.resolve(subscriptions_complete=False) is None
    assert t.is_open
    assert t.resolve(subscriptions_complete=True) is not None


def test_after_a_pause_the_other_symbols_are_not_silent_at_once() -> None:
    """When a pause ends on the first frame of one symbol, the others (silent for as
    long as the whole connection) are covered by the pause: their silence clock starts
    again at the end of it, not at their last frame before it."""
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS)
    clocks.advance(1.5)
    assert t.check() == ["*"]
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1500)
    assert t.resolve(subscriptions_complete=True) is not None
    clocks.advance(0.05)
    assert t.check() == []  # ETHUSDT's first frame after the pause is 50 ms late
    clocks.advance(0.5)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1800)  # BTCUSDT flows on
    assert t.check() == []
    clocks.advance(0.5)
    assert t.check() == ["ETHUSDT"]  # then a silence of its own, a threshold later


def test_silence_then_stall_replaces_the_cause_and_keeps_the_windows() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 10)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 20)
    clocks.advance(1.0)
    assert t.check() == ["*"]
    detected = clocks.wall_ns()
    clocks.advance(1.0)
    assert t.silent_for() == 2.0
    t.lost(OutageCause.STALL)  # the stream replaced the connection
    t.lost(OutageCause.DISCONNECT)  # its close does not rename the outage again
    t.attempt()
    t.connected()
    assert t.silent_for() == 0.0
    assert t.check() == []  # an open outage is not opened again
    # a new connection: data, but the subscribe replies are not all in yet
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 3000)
    assert t.resolve(subscriptions_complete=False) is None
    outage = t.resolve(subscriptions_complete=True)
    assert outage is not None
    assert outage.cause is OutageCause.STALL
    assert outage.detected_ns == detected
    assert outage.reconnect_attempts == 1
    assert outage.first_exchange_ts_ms == EXCHANGE_MS + 3002
    assert outage.symbols == {
        "BTCUSDT": SymbolWindow(EXCHANGE_MS + 10, EXCHANGE_MS + 3000),
        "ETHUSDT": SymbolWindow(EXCHANGE_MS + 20, None),
    }


def test_a_lost_socket_ends_only_with_data_from_the_new_one() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS)
    t.lost(OutageCause.DISCONNECT)
    t.attempt()
    t.attempt()
    assert t.resolve(subscriptions_complete=True) is None  # no data yet
    t.connected()
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 500)
    outage = t.resolve(subscriptions_complete=True)
    assert outage is not None
    assert (outage.cause, outage.reconnect_attempts) == (OutageCause.DISCONNECT, 2)


def test_one_silent_symbol_is_a_silence_of_its_own() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 2)
    for n in range(1, 11):  # BTCUSDT keeps trading, ETHUSDT goes quiet
        clocks.advance(0.125)
        trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 100 * n)
        expected = ["ETHUSDT"] if n == 8 else []  # after 8 x 0.125 s = the threshold
        assert t.check() == expected, n
    assert not t.is_open  # the connection is fine
    clocks.advance(0.3)
    # a BTCUSDT trade does not end ETHUSDT's silence; its own first frame does
    assert trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1400) is None
    outage = trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 1450)
    assert outage is not None
    assert outage.cause is OutageCause.SILENCE
    assert outage.symbols == {"ETHUSDT": SymbolWindow(EXCHANGE_MS + 2, EXCHANGE_MS + 1450)}
    assert outage.first_exchange_ts_ms == EXCHANGE_MS + 1452
    assert outage.reconnect_attempts == 0


def test_a_symbol_silence_merged_into_a_stream_outage_keeps_its_earlier_start() -> None:
    """ETHUSDT never traded: its silence starts at the fallback of its time; when the
    whole connection then goes quiet, the stream outage takes ETHUSDT over with that
    earlier start (not the later fallback), and there is one outage, not two."""
    clocks = FakeClock()
    t = tracker(clocks)
    for n in range(8):
        clocks.advance(0.125)
        trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 100 * n)
        silent = t.check()
    assert silent == ["ETHUSDT"]  # after 8 x 0.125 s = the threshold
    eth_start = EXCHANGE_MS + 700 + 2 - IN_FLIGHT_MARGIN_MS  # last frame's ts - margin
    for n in range(8, 30):  # BTCUSDT moves the fallback on
        clocks.advance(0.125)
        trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 100 * n)
        assert t.check() == []
    clocks.advance(1.0)
    assert t.check() == ["*"]
    t.lost(OutageCause.STALL)
    t.connected()
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 9000)
    assert trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 9001) is None  # no silence left
    outage = t.resolve(subscriptions_complete=True)
    assert outage is not None
    assert outage.cause is OutageCause.STALL
    assert outage.symbols == {
        "BTCUSDT": SymbolWindow(EXCHANGE_MS + 2900, EXCHANGE_MS + 9000),
        "ETHUSDT": SymbolWindow(eth_start, EXCHANGE_MS + 9001),
    }
    assert t.outages_reported == 1
    assert t.stop() == []


def test_hold_and_release_exclude_back_pressure_from_the_silence() -> None:
    clocks = FakeClock()
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS)
    clocks.advance(0.5)
    t.hold()  # the sink is full: the socket is not read
    clocks.advance(30.0)
    assert t.silent_for() == 0.5
    assert t.check() == []
    t.hold()  # a second hold does not move the start
    t.release()
    assert t.silent_for() == 0.5
    clocks.advance(0.4)
    assert t.check() == []  # 0.9 s of real silence
    clocks.advance(0.1)
    assert t.check() == ["*"]
    t.release()  # without a hold: nothing happens
    outage_free = tracker(clocks)
    assert outage_free.silent_for() == 0.0


def test_stop_reports_what_is_still_open_as_unrecovered() -> None:
    clocks = FakeClock()
    t = tracker(clocks, ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + 1)
    trade_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 2)
    trade_frame(t, clocks, "SOLUSDT", EXCHANGE_MS + 3)
    for _ in range(9):
        clocks.advance(0.125)
        t.data("BTCUSDT", EXCHANGE_MS + 5, clocks.wall_ns())
        t.data("SOLUSDT", EXCHANGE_MS + 5, clocks.wall_ns())
        t.check()
    clocks.advance(0.5)
    (silence,) = t.stop()
    assert silence.unrecovered
    assert silence.cause is OutageCause.SILENCE
    assert silence.symbols == {"ETHUSDT": SymbolWindow(EXCHANGE_MS + 2, None)}
    assert silence.first_exchange_ts_ms is None
    assert silence.end_ms == clocks.wall_ns() // 1_000_000  # the stop time, for the refill
    # a lost socket, still down when the stream stops
    t.lost(OutageCause.DISCONNECT)
    t.attempt()
    (down,) = t.stop()
    assert down.unrecovered
    assert (down.cause, down.reconnect_attempts) == (OutageCause.DISCONNECT, 1)
    assert set(down.symbols) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert t.stop() == []  # reported once


def test_a_symbol_without_a_trade_starts_at_a_safe_fallback() -> None:
    clocks = FakeClock()
    # no data frame at all yet: the window starts when the tracker did
    t = tracker(clocks)
    started_ms = clocks.wall_ns() // 1_000_000
    clocks.advance(2.0)
    t.lost(OutageCause.DISCONNECT)
    (outage,) = t.stop()
    assert outage.symbols == {
        "BTCUSDT": SymbolWindow(started_ms, None),
        "ETHUSDT": SymbolWindow(started_ms, None),
    }
    assert outage.last_received_ns is None
    assert outage.start_ns == outage.detected_ns
    # frames (tickers), but no trade of ETHUSDT: a margin before the last frame's time
    t = tracker(clocks)
    trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS)
    ticker_frame(t, clocks, "ETHUSDT", EXCHANGE_MS + 700)
    t.lost(OutageCause.PONG_TIMEOUT)
    (outage,) = t.stop()
    assert outage.symbols == {
        "BTCUSDT": SymbolWindow(EXCHANGE_MS, None),
        "ETHUSDT": SymbolWindow(EXCHANGE_MS + 700 - IN_FLIGHT_MARGIN_MS, None),
    }


def test_a_forgotten_symbol_is_never_silent() -> None:
    clocks = FakeClock()
    t = tracker(clocks, ("BTCUSDT", "NOPEUSDT"))
    t.forget("NOPEUSDT")  # its topics were refused
    for n in range(30):
        clocks.advance(0.1)
        trade_frame(t, clocks, "BTCUSDT", EXCHANGE_MS + n)
        assert t.check() == []


def test_the_private_stream_has_no_silence_and_resolves_without_data() -> None:
    clocks = FakeClock()
    t = OutageTracker(
        "private", None, silence_seconds=None, monotonic=clocks.monotonic, wall_ns=clocks.wall_ns
    )
    clocks.advance(100.0)
    assert t.check() == []
    assert t.resolve_without_data() is None
    t.lost(OutageCause.ACK_TIMEOUT)
    t.attempt()
    t.connected()
    clocks.advance(0.2)
    outage = t.resolve_without_data()  # authenticated and subscribed again
    assert outage is not None
    assert (outage.stream, outage.category, outage.cause) == (
        "private",
        None,
        OutageCause.ACK_TIMEOUT,
    )
    assert outage.symbols == {}
    assert outage.end_ms == outage.recovered_ns // 1_000_000


def test_data_without_a_symbol_keeps_the_connection_alive_not_the_symbols() -> None:
    """A rejected data frame shows the connection alive (the stream passes no symbol),
    but says nothing of any symbol."""
    clocks = FakeClock()
    t = tracker(clocks)
    clocks.advance(0.75)
    assert t.data(None, None, RECEIVED_NS) is None
    clocks.advance(0.5)
    assert t.silent_for() == 0.5
    assert t.check() == ["BTCUSDT", "ETHUSDT"]
    assert not t.is_open
