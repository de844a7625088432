"""Pure pieces of the adapter: backoff, rate cap, topics, query encoding, signatures."""

from __future__ import annotations

import itertools

import pytest

from bybit_adapter import Backoff, ConnectionRateLimiter
from bybit_adapter.private_ws import classify_auth_failure
from bybit_adapter.rest import SEVEN_DAYS_MS, encode_query, time_windows
from bybit_adapter.signing import rest_signature, websocket_auth_signature
from bybit_adapter.topics import chunk_topics, public_topics, topic_named_in_error


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=1, maximum=8, rng=lambda low, high: high)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1
    jittered = Backoff(initial=4, maximum=60)
    delays = [jittered.next_delay() for _ in range(1)]
    assert 2 <= delays[0] <= 4


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0)


def test_rate_limiter_allows_a_burst_then_paces() -> None:
    now = [0.0]
    limiter = ConnectionRateLimiter(
        max_per_window=60, window_seconds=60, burst=3, clock=lambda: now[0]
    )
    for _ in range(3):
        assert limiter.delay_needed() == 0
        limiter._tokens -= 1
    assert limiter.delay_needed() == pytest.approx(1.0)
    now[0] += 0.5
    assert limiter.delay_needed() == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.delay_needed() == 0


def test_topics_are_built_and_chunked_by_ten() -> None:
    topics = public_topics([f"S{i}USDT" for i in range(12)])
    assert topics[:2] == ["publicTrade.S0USDT", "tickers.S0USDT"]
    chunks = list(chunk_topics(topics))
    assert [len(c) for c in chunks] == [10, 10, 4]
    assert [t for c in chunks for t in c] == topics


def test_topic_named_in_bybit_errors() -> None:
    msg = "error:handler not found,topic:orderbook.50.NOPEUSDT"
    assert topic_named_in_error(msg) == "orderbook.50.NOPEUSDT"
    assert topic_named_in_error("args size >10") is None


def test_query_encoding_keeps_cursor_verbatim() -> None:
    query = encode_query({"category": "linear", "limit": 100, "cursor": "132766%3A2%2C132766%3A2"})
    assert query == "category=linear&limit=100&cursor=132766%3A2%2C132766%3A2"
    assert encode_query({"symbol": "A B", "flag": True}) == "symbol=A%20B&flag=true"


def test_time_windows_never_exceed_seven_days_and_cover_everything() -> None:
    windows = time_windows(0, 3 * SEVEN_DAYS_MS)
    assert all(hi - lo < SEVEN_DAYS_MS for lo, hi in windows)
    assert windows[0][0] == 0
    assert windows[-1][1] == 3 * SEVEN_DAYS_MS
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(windows))
    assert time_windows(10, 5) == []


def test_signatures_match_bybit_examples() -> None:
    # The string-to-sign layout is Bybit's documented one; the value is HMAC-SHA256 hex.
    import hashlib
    import hmac

    expected = hmac.new(
        b"secret",
        b"1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C",
        hashlib.sha256,
    ).hexdigest()
    assert (
        rest_signature(
            "secret",
            1658384314791,
            "XXXXXXXXXX",
            5000,
            "category=option&symbol=BTC-29JUL22-25000-C",
        )
        == expected
    )
    ws = hmac.new(b"secret", b"GET/realtime1662350400000", hashlib.sha256).hexdigest()
    assert websocket_auth_signature("secret", 1662350400000) == ws


def test_auth_failures_are_classified() -> None:
    assert classify_auth_failure("Params Error") == "expired"
    assert classify_auth_failure("Invalid apikey") == "invalid_key"
