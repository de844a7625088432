"""The private stream: auth, then executions, orders, positions and the wallet.

Read top to bottom, this module is the path of every private frame: a connection is
opened (``Connector``), authenticated (the reply must come within ``ack_timeout``),
subscribed, and then every frame is a data frame (decoded into records for the sink),
a pong, or a reply. Private streams are quiet by nature, so silence is not an outage
here; pongs prove the connection alive. Every loss is an outage, reported once the new
connection is authenticated and subscribed, for the REST refill of the window.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from bybit_adapter.decoders import PrivateDecoder
from bybit_adapter.errors import BybitAuthError, FrameRejected
from bybit_adapter.keepalive import ConnectionLost
from bybit_adapter.outages import OutageTracker
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.signing import websocket_auth_signature
from bybit_adapter.sink import StreamSink
from bybit_adapter.stream import Stream
from bybit_adapter.subscriptions import PRIVATE_TOPICS, Subscriptions, next_req_id
from bybit_adapter.transport import Socket, send_json
from bybit_records import OutageCause


class AuthFailure(enum.StrEnum):
    #: the signature's expiry was judged in the past: usually clock skew
    EXPIRED = "expired"
    #: a wrong key or secret, or a key of another network
    INVALID_KEY = "invalid_key"


def classify_auth_failure(ret_msg: str) -> AuthFailure:
    text = ret_msg.lower()
    if "params error" in text or "expire" in text:
        return AuthFailure.EXPIRED
    return AuthFailure.INVALID_KEY


class PrivateStream(Stream):
    """The account's private topics, kept flowing into ``sink``.

    The key and secret are read at the signing call only and never logged. A refused
    auth is counted (``auth_failures``, ``last_auth_error``) and the next attempt waits
    at least ``settings.auth_retry_min``: a wrong key must never spin.
    """

    name = "private"

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        sink: StreamSink,
        *,
        settings: WebSocketSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        topics: Sequence[str] = PRIVATE_TOPICS,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(
            url,
            sink,
            settings or WebSocketSettings(silence_timeout=None, stall_timeout=None),
            session,
            OutageTracker(self.name, None, silence_seconds=None),
        )
        self.auth_failures = 0
        #: auth requests the server accepted (0 at the end: nothing private was recorded)
        self.auth_successes = 0
        self.last_auth_error: BybitAuthError | None = None
        self.authenticated = False
        self._api_key = api_key
        self._api_secret = api_secret
        self._clock_ms = clock_ms
        self._subscriptions = Subscriptions(topics, self._refused)
        self._decoder = PrivateDecoder()
        self._auth_sent_at: float | None = None

    # ---- connections ------------------------------------------------------------

    async def _serve(self, ws: Socket) -> ConnectionLost:
        self.authenticated = False
        self._subscriptions.reset()
        expires = self._clock_ms() + self.settings.auth_expires_ms
        signature = websocket_auth_signature(self._api_secret, expires)
        try:
            await send_json(
                ws,
                {
                    "req_id": next_req_id("auth"),
                    "op": "auth",
                    "args": [self._api_key, expires, signature],
                },
            )
        except (aiohttp.ClientError, ConnectionError) as exc:
            return ConnectionLost(OutageCause.DISCONNECT, f"lost while authenticating: {exc}")
        self._auth_sent_at = time.monotonic()
        return await self._read_until_lost(ws)

    def _unanswered(self) -> list[str]:
        sent = self._auth_sent_at
        if sent is not None and time.monotonic() - sent >= self.settings.ack_timeout:
            return ["auth"]
        return self._subscriptions.overdue(self.settings.ack_timeout)

    def _frame(self, raw: str | bytes, received_ns: int) -> None:
        self.stats.frames += 1
        message = self._decoded(raw, received_ns)
        if message is None:
            return
        if "topic" in message:
            self._data(message, raw, received_ns)
        elif message.get("op") == "pong" or message.get("ret_msg") == "pong":
            self._pong()
        elif message.get("op") == "auth":
            self._auth_reply(message)
        elif message.get("op") == "subscribe":
            for refused in self._subscriptions.reply(message):
                self._outbox.append(refused)
            self._resolve()
        elif message.get("success") is False:
            self._log.warning("private: server error: %.300s", message.get("ret_msg"))

    def _data(self, message: dict[str, Any], raw: str | bytes, received_ns: int) -> None:
        try:
            records = self._decoder.frame(message, received_ns)
        except FrameRejected as exc:
            self._reject(raw, exc.reason, received_ns)
            return
        self.stats.data_frames += 1
        self.stats.last_data_received_ns = received_ns
        topic = message.get("topic")
        if isinstance(topic, str):
            self._subscriptions.data_for(topic)
        if records:
            try:
                self._sink.records(records)
            except Exception:
                self.stats.handler_errors += 1
                self._log.exception("private: the sink refused records")

    def _auth_reply(self, message: dict[str, Any]) -> None:
        self._auth_sent_at = None
        # Judge by `success`: the private stream has no retCode on auth replies.
        if message.get("success") is True:
            self.authenticated = True
            self.auth_successes += 1
            self._log.info("private: authenticated")
            self._outbox.extend(self._subscriptions.connection_opened())
            return
        ret_msg = str(message.get("ret_msg", ""))
        failure = classify_auth_failure(ret_msg)
        error = BybitAuthError(failure.value, ret_msg)
        self.auth_failures += 1
        self.last_auth_error = error
        hint = (
            "check the clock (NTP) and that expires is in the future"
            if failure is AuthFailure.EXPIRED
            else "check the API key pair and that the key belongs to this network"
        )
        self._log.error("private: %s; %s", error, hint)
        assert self._connector is not None
        self._connector.delay_next(self.settings.auth_retry_min)
        raise ConnectionLost(OutageCause.AUTH, str(error))

    def _resolve(self) -> None:
        if not (self.authenticated and self._subscriptions.complete):
            return
        assert self._connector is not None
        self._connector.healthy()
        outage = self.tracker.resolve_without_data()
        if outage is not None:
            self._report(outage)

    def _refused(self, topic: str, ret_msg: str) -> None:
        self._log.error("private: subscribe to %s refused: %s", topic, ret_msg)
