"""Pure pieces of the adapter: backoff, rate cap, topics and subscriptions, query
encoding, signatures, auth classification, redaction of what Bybit echoes."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

import pytest

from bybit_adapter import (
    AuthFailure,
    Backoff,
    BybitApiError,
    BybitAuthError,
    BybitHttpError,
    ConnectionRateLimiter,
    WebSocketSettings,
    redact_server_text,
)
from bybit_adapter.private_stream import classify_auth_failure
from bybit_adapter.rest import SEVEN_DAYS_MS, encode_query, time_windows
from bybit_adapter.signing import rest_signature, websocket_auth_signature
from bybit_adapter.subscriptions import (
    MAX_TOPICS_PER_REQUEST,
    Subscriptions,
    chunk_topics,
    public_topics,
    symbol_of,
    topic_named_in_error,
)


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=1, maximum=8, rng=lambda low, high: high)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1
    jittered = Backoff(initial=4, maximum=60)
    assert all(2 <= jittered.next_delay() <= 4 for _ in range(1))


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


def test_settings_reject_nonsense_and_tick_follows_the_tightest_bound() -> None:
    with pytest.raises(ValueError, match="open_timeout"):
        WebSocketSettings(open_timeout=0)
    with pytest.raises(ValueError, match="silence_timeout"):
        WebSocketSettings(silence_timeout=-1)
    assert WebSocketSettings().tick == 0.5
    assert WebSocketSettings(ping_interval=0.3, pong_timeout=0.5).tick == pytest.approx(0.06)


# ---- topics and subscriptions ---------------------------------------------------------


def test_topics_are_built_and_chunked_by_ten() -> None:
    topics = public_topics([f"S{i}USDT" for i in range(12)])
    assert topics[:2] == ["publicTrade.S0USDT", "tickers.S0USDT"]
    chunks = list(chunk_topics(topics))
    assert [len(c) for c in chunks] == [10, 10, 4]
    assert [t for c in chunks for t in c] == topics
    assert public_topics(["X"], tickers=False) == ["publicTrade.X"]
    assert symbol_of("orderbook.50.BTCUSDT") == "BTCUSDT"
    with pytest.raises(ValueError, match="positive"):
        list(chunk_topics(topics, 0))


def test_topic_named_in_bybit_errors() -> None:
    msg = "error:handler not found,topic:orderbook.50.NOPEUSDT"
    assert topic_named_in_error(msg) == "orderbook.50.NOPEUSDT"
    assert topic_named_in_error("args size >10") is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def subscriptions(topics: list[str], clock: Clock | None = None) -> tuple[Subscriptions, list]:
    refused: list[tuple[str, str]] = []
    subs = Subscriptions(topics, lambda t, m: refused.append((t, m)), clock=clock or Clock())
    return subs, refused


def test_requests_hold_at_most_ten_topics_and_unique_req_ids() -> None:
    topics = public_topics([f"S{i}USDT" for i in range(13)])  # 26 topics
    subs, _ = subscriptions(topics + topics[:3])  # duplicates are asked for once
    first = subs.connection_opened()
    second = subs.connection_opened()  # the next connection asks again, with new ids
    for requests in (first, second):
        assert all(r["op"] == "subscribe" for r in requests)
        assert all(len(r["args"]) <= MAX_TOPICS_PER_REQUEST for r in requests)
        assert [t for r in requests for t in r["args"]] == topics
    req_ids = [r["req_id"] for r in first + second]
    assert len(set(req_ids)) == len(req_ids)


def test_acks_settle_requests_and_late_ones_are_overdue() -> None:
    clock = Clock()
    subs, refused = subscriptions(public_topics(["A", "B", "C", "D", "E", "F"]), clock)
    one, two = subs.connection_opened()
    assert not subs.complete
    clock.now += 0.9
    assert subs.overdue(1.0) == []
    assert subs.reply({"op": "subscribe", "req_id": one["req_id"], "success": True}) == []
    clock.now += 0.2
    assert subs.overdue(1.0) == two["args"]  # only the unanswered request
    subs.reply({"op": "subscribe", "req_id": two["req_id"], "success": True})
    assert subs.complete
    assert subs.confirmed == set(one["args"] + two["args"])
    assert refused == []


def test_data_before_the_ack_settles_the_request() -> None:
    subs, _ = subscriptions(["publicTrade.BTCUSDT", "tickers.BTCUSDT"])
    (request,) = subs.connection_opened()
    subs.data_for("tickers.BTCUSDT")  # the snapshot Bybit sends before the ack
    assert not subs.complete
    subs.data_for("publicTrade.BTCUSDT")
    assert subs.complete
    assert subs.confirmed == {"publicTrade.BTCUSDT", "tickers.BTCUSDT"}
    # the ack arriving afterwards changes nothing
    assert subs.reply({"op": "subscribe", "req_id": request["req_id"], "success": True}) == []
    assert subs.complete


def test_a_refused_topic_is_reported_once_and_never_asked_for_again() -> None:
    topics = ["publicTrade.BTCUSDT", "publicTrade.NOPEUSDT", "tickers.BTCUSDT"]
    subs, refused = subscriptions(topics)
    (request,) = subs.connection_opened()
    retry = subs.reply(
        {
            "op": "subscribe",
            "req_id": request["req_id"],
            "success": False,
            "ret_msg": "error:handler not found,topic:publicTrade.NOPEUSDT",
        }
    )
    assert refused == [
        ("publicTrade.NOPEUSDT", "error:handler not found,topic:publicTrade.NOPEUSDT")
    ]
    # the other topics of the request are asked for again, in a request of their own
    (again,) = retry
    assert again["args"] == ["publicTrade.BTCUSDT", "tickers.BTCUSDT"]
    assert again["req_id"] != request["req_id"]
    # Bybit answers that they are already subscribed: that is a success
    subs.reply(
        {
            "op": "subscribe",
            "req_id": again["req_id"],
            "success": False,
            "ret_msg": "error:already subscribed,topic:publicTrade.BTCUSDT",
        }
    )
    assert subs.complete
    assert subs.refused == {
        "publicTrade.NOPEUSDT": "error:handler not found,topic:publicTrade.NOPEUSDT"
    }
    assert subs.topics == ["publicTrade.BTCUSDT", "tickers.BTCUSDT"]
    # later connections leave it out, and it is not reported again
    (next_request,) = subs.connection_opened()
    assert "publicTrade.NOPEUSDT" not in next_request["args"]
    assert len(refused) == 1


def test_a_book_is_asked_for_again_only_on_topics_of_its_own() -> None:
    topics = ["orderbook.50.BTCUSDT", "orderbook.50.NOPEUSDT"]
    subs, _ = subscriptions(topics)
    (request,) = subs.connection_opened()
    subs.reply(
        {
            "op": "subscribe",
            "req_id": request["req_id"],
            "success": False,
            "ret_msg": "error:handler not found,topic:orderbook.50.NOPEUSDT",
        }
    )
    unsubscribe, subscribe = subs.resubscribe("orderbook.50.BTCUSDT")
    assert (unsubscribe["op"], unsubscribe["args"]) == ("unsubscribe", ["orderbook.50.BTCUSDT"])
    assert (subscribe["op"], subscribe["args"]) == ("subscribe", ["orderbook.50.BTCUSDT"])
    # a stray frame's topic, or a refused one, is never added by a resubscribe
    assert subs.resubscribe("orderbook.200.BTCUSDT") == []
    assert subs.resubscribe("orderbook.50.NOPEUSDT") == []


def test_a_refusal_naming_no_topic_refuses_the_whole_request() -> None:
    subs, refused = subscriptions(["publicTrade.A", "publicTrade.B"])
    (request,) = subs.connection_opened()
    assert (
        subs.reply(
            {"op": "subscribe", "req_id": request["req_id"], "success": False, "ret_msg": "nope"}
        )
        == []
    )
    assert [t for t, _ in refused] == ["publicTrade.A", "publicTrade.B"]
    assert subs.topics == []


def test_option_command_replies_confirm_and_refuse_by_topic() -> None:
    subs, refused = subscriptions(["publicTrade.BTC", "tickers.NOPE"])
    subs.connection_opened()
    subs.reply(
        {
            "type": "COMMAND_RESP",
            "success": True,
            "data": {"successTopics": ["publicTrade.BTC"], "failTopics": ["tickers.NOPE"]},
        }
    )
    assert subs.complete
    assert subs.confirmed == {"publicTrade.BTC"}
    assert [t for t, _ in refused] == ["tickers.NOPE"]


# ---- REST helpers and signatures --------------------------------------------------------


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
    assert classify_auth_failure("Params Error") is AuthFailure.EXPIRED
    assert classify_auth_failure("request expired") is AuthFailure.EXPIRED
    assert classify_auth_failure("Invalid apikey") is AuthFailure.INVALID_KEY
    assert classify_auth_failure("Signature verification failed") is AuthFailure.INVALID_KEY


# ---- what Bybit echoes of a signed request never leaves the adapter -------------------

ECHO = "error sign! origin_string[1700000000000KEY5000category=linear]"


def test_redact_server_text_removes_the_signed_string() -> None:
    assert redact_server_text(ECHO) == "error sign! origin_string[<redacted>]"
    # cut off before its closing bracket (a body truncated at 200 characters)
    assert "KEY" not in redact_server_text("error sign! origin_string[1700000000000KEY50")
    assert redact_server_text("Too many visits!") == "Too many visits!"


@pytest.mark.parametrize(
    "make",
    [
        lambda: BybitApiError("/v5/account/wallet-balance", 10004, ECHO),
        lambda: BybitHttpError("/v5/position/list", 401, ECHO),
        lambda: BybitAuthError(AuthFailure.INVALID_KEY.value, ECHO),
    ],
    ids=["api", "http", "auth"],
)
def test_errors_never_carry_the_echoed_key(make: Any) -> None:
    error = make()
    assert "KEY" not in str(error)
    assert "KEY" not in repr(error)
    assert all("KEY" not in str(v) for v in vars(error).values())
