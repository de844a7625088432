"""TickerSampler: at most one ticker state per ``min_interval_ms`` of exchange time per symbol.

The states are made by the adapter's own ``TickerDecoder`` from Bybit-shaped frames, so they
are what the router really gets: complete states, each delta merged into the last one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bybit_adapter.decoders import TickerDecoder
from bybit_records import Category, Ticker
from event_saver import TickerSampler

T0 = 1_700_000_000_000
#: arrival is not what counts: every state "arrives" at the same moment
RECEIVED_NS = 1_800_000_000_000_000_000


class Feed:
    """Ticker frames of linear symbols, decoded like the stream decodes them."""

    def __init__(self, category: Category = Category.LINEAR) -> None:
        self.decoder = TickerDecoder(category)
        self.cs = 0

    def frame(self, kind: str, symbol: str, at: int, **fields: str) -> Ticker:
        self.cs += 1
        message = {
            "topic": f"tickers.{symbol}",
            "type": kind,
            "data": {"symbol": symbol, **fields},
            "cs": self.cs,
            "ts": at,
        }
        return self.decoder.frame(message, RECEIVED_NS)

    def snapshot(self, symbol: str, at: int, **fields: str) -> Ticker:
        base = {"lastPrice": "100", "markPrice": "100", "fundingRate": "0.0001"}
        return self.frame("snapshot", symbol, at, **{**base, **fields})

    def delta(self, symbol: str, at: int, **fields: str) -> Ticker:
        return self.frame("delta", symbol, at, **fields)


def kept_times(sampler: TickerSampler, states: Sequence[Ticker]) -> list[int]:
    return [t.exchange_ts_ms for t in sampler.sample(states)]


def test_the_first_state_of_a_symbol_is_kept() -> None:
    feed, sampler = Feed(), TickerSampler(60_000)
    assert sampler.keep(feed.snapshot("BTCUSDT", T0))
    assert not sampler.keep(feed.delta("BTCUSDT", T0 + 100, lastPrice="101"))
    assert sampler.sampled_out == 1


def test_a_state_is_kept_once_the_interval_passed_since_the_last_kept_one() -> None:
    feed, sampler = Feed(), TickerSampler(1000)
    states = [feed.snapshot("BTCUSDT", T0)]
    # irregular pushes: the clock runs from the last KEPT state, not from a grid
    for offset in (150, 950, 999, 1000, 1100, 1999, 2100, 2999, 3000, 3100):
        states.append(feed.delta("BTCUSDT", T0 + offset, lastPrice=str(offset)))
    assert kept_times(sampler, states) == [T0, T0 + 1000, T0 + 2100, T0 + 3100]
    assert sampler.sampled_out == len(states) - 4


def test_symbols_are_sampled_independently() -> None:
    feed, sampler = Feed(), TickerSampler(500)
    states = [feed.snapshot("BTCUSDT", T0), feed.snapshot("ETHUSDT", T0 + 30)]
    for step in range(1, 11):  # both push every 100 ms, ETHUSDT 30 ms behind BTCUSDT
        states.append(feed.delta("BTCUSDT", T0 + 100 * step, lastPrice=str(step)))
        states.append(feed.delta("ETHUSDT", T0 + 30 + 100 * step, lastPrice=str(step)))
    kept = sampler.sample(states)
    assert [(t.symbol, t.exchange_ts_ms - T0) for t in kept] == [
        ("BTCUSDT", 0),
        ("ETHUSDT", 30),
        ("BTCUSDT", 500),
        ("ETHUSDT", 530),
        ("BTCUSDT", 1000),
        ("ETHUSDT", 1030),
    ]


def test_the_same_symbol_of_another_category_has_its_own_clock() -> None:
    sampler = TickerSampler(1000)
    linear, inverse = Feed(Category.LINEAR), Feed(Category.INVERSE)
    assert sampler.keep(linear.snapshot("BTCUSD", T0))
    assert sampler.keep(inverse.snapshot("BTCUSD", T0 + 10))


def test_exchange_time_counts_not_arrival() -> None:
    """A burst delivered at once (after a stall of the socket) is thinned by its exchange
    stamps: the kept states are still one per interval of the exchange's time."""
    feed, sampler = Feed(), TickerSampler(300)
    states = [feed.snapshot("BTCUSDT", T0)]
    states += [feed.delta("BTCUSDT", T0 + 100 * i, lastPrice=str(i)) for i in range(1, 10)]
    assert {t.received_ts_ms for t in states} == {RECEIVED_NS // 1_000_000}
    assert kept_times(sampler, states) == [T0, T0 + 300, T0 + 600, T0 + 900]


def test_a_dropped_delta_loses_no_field_the_next_kept_state_carries_it() -> None:
    feed, sampler = Feed(), TickerSampler(1000)
    first = feed.snapshot("BTCUSDT", T0)
    dropped = [
        feed.delta("BTCUSDT", T0 + 100, fundingRate="0.0002"),  # only in a dropped delta
        feed.delta("BTCUSDT", T0 + 200, lastPrice="101"),
    ]
    kept = feed.delta("BTCUSDT", T0 + 1000, markPrice="102")
    assert sampler.sample([first, *dropped, kept]) == [first, kept]
    assert (kept.funding_rate, kept.last_price, kept.mark_price) == ("0.0002", "101", "102")


def test_the_fields_without_a_column_of_dropped_states_go_to_the_next_kept_one() -> None:
    """``data`` holds what each frame sent of the fields without a column: those of the
    dropped states are carried into the next kept state, the newest value winning."""
    feed, sampler = Feed(), TickerSampler(1000)
    first = feed.snapshot("BTCUSDT", T0)
    dropped = [
        feed.delta("BTCUSDT", T0 + 100, tickDirection="MinusTick", basisRate="0.1"),
        feed.delta("BTCUSDT", T0 + 200, tickDirection="PlusTick"),
    ]
    kept = feed.delta("BTCUSDT", T0 + 1000, markPrice="102", prevPrice1h="99")
    (_, stored) = sampler.sample([first, *dropped, kept])
    assert stored.data == {"tickDirection": "PlusTick", "basisRate": "0.1", "prevPrice1h": "99"}
    assert stored.mark_price == "102"
    # nothing is carried twice
    later = feed.delta("BTCUSDT", T0 + 2000, lastPrice="103")
    assert sampler.sample([later]) == [later]


def test_a_snapshot_after_a_resubscribe_follows_the_same_rule() -> None:
    """A reconnect within the interval: its snapshot is dropped like a delta (so rows stay
    min_interval_ms apart, and spot, which only sends snapshots, is sampled too); the next kept
    state holds what the snapshot brought. After a longer outage the snapshot is kept."""
    feed, sampler = Feed(), TickerSampler(1000)
    assert sampler.keep(feed.snapshot("BTCUSDT", T0))
    feed.decoder.reset()  # the stream reconnected: fresh snapshots follow
    resubscribed = feed.snapshot("BTCUSDT", T0 + 400, lastPrice="105", openInterest="7")
    assert not sampler.keep(resubscribed)
    later = feed.delta("BTCUSDT", T0 + 1000, markPrice="104")
    assert sampler.keep(later)
    assert (later.last_price, later.open_interest, later.mark_price) == ("105", "7", "104")
    feed.decoder.reset()  # an outage longer than the interval
    after_outage = feed.snapshot("BTCUSDT", T0 + 30_000)
    assert sampler.keep(after_outage)
    assert sampler.sampled_out == 1


def test_spot_snapshots_are_sampled() -> None:
    feed, sampler = Feed(Category.SPOT), TickerSampler(200)
    states = [feed.snapshot("BTCUSDT", T0 + 50 * i, lastPrice=str(i)) for i in range(9)]
    assert kept_times(sampler, states) == [T0, T0 + 200, T0 + 400]


def test_exchange_time_stepping_back_restarts_the_clock() -> None:
    """A step back of a whole interval (a new feed's clock) cannot silence the symbol; a small
    one is "too soon" like any state within the interval."""
    feed, sampler = Feed(), TickerSampler(1000)
    assert sampler.keep(feed.snapshot("BTCUSDT", T0 + 10_000))
    assert not sampler.keep(feed.delta("BTCUSDT", T0 + 9_500, lastPrice="1"))
    assert sampler.keep(feed.delta("BTCUSDT", T0 + 9_000, lastPrice="2"))
    assert not sampler.keep(feed.delta("BTCUSDT", T0 + 9_900, lastPrice="3"))
    assert sampler.keep(feed.delta("BTCUSDT", T0 + 10_000, lastPrice="4"))


def test_zero_keeps_every_state() -> None:
    feed, sampler = Feed(), TickerSampler(0)
    states = [feed.snapshot("BTCUSDT", T0)]
    states += [feed.delta("BTCUSDT", T0 + i // 3, lastPrice=str(i)) for i in range(1, 10)]
    assert sampler.sample(states) == states
    assert sampler.sampled_out == 0


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval_ms must be >= 0"):
        TickerSampler(-1)
