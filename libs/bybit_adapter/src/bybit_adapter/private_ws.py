"""The private WebSocket client: auth, then execution/order/position/wallet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from bybit_adapter.connection import (
    InvalidFrameHandler,
    LossCause,
    MessageHandler,
    OutageHandler,
    ReadGate,
    ReconnectingWebSocket,
)
from bybit_adapter.errors import BybitAuthError
from bybit_adapter.settings import WebSocketSettings
from bybit_adapter.signing import websocket_auth_signature
from bybit_adapter.topics import PRIVATE_TOPICS, chunk_topics

AuthErrorHandler = Callable[[BybitAuthError], None]


def classify_auth_failure(ret_msg: str) -> str:
    """``expired`` for Bybit's expiry complaints, ``invalid_key`` otherwise."""
    text = ret_msg.lower()
    if "params error" in text or "expire" in text:
        return "expired"
    return "invalid_key"


class PrivateWebSocketClient(ReconnectingWebSocket):
    """Authenticates on every (re)connect and subscribes only after the auth ack.

    The key and secret are read at the signing call only and never logged. An
    auth failure is reported once per attempt as a ``BybitAuthError`` and the
    client waits at least ``settings.auth_retry_min`` before trying again.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        on_message: MessageHandler,
        topics: Sequence[str] = PRIVATE_TOPICS,
        on_outage: OutageHandler | None = None,
        on_invalid: InvalidFrameHandler | None = None,
        on_auth_error: AuthErrorHandler | None = None,
        settings: WebSocketSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        logger: logging.Logger | None = None,
        read_gate: ReadGate | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        base = settings or WebSocketSettings(stall_timeout=None)
        super().__init__(
            url,
            stream="private",
            category=None,
            on_message=on_message,
            on_outage=on_outage,
            on_invalid=on_invalid,
            settings=base,
            session=session,
            logger=logger,
            read_gate=read_gate,
        )
        self._api_key = api_key
        self._api_secret = api_secret
        self._topics = list(dict.fromkeys(topics))
        self._on_auth_error = on_auth_error
        self._clock_ms = clock_ms
        self._auth_req: str | None = None
        self._authenticated = False
        self._pending: set[str] = set()
        self.auth_failures = 0
        self.last_auth_error: BybitAuthError | None = None

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    def _wants_stall_watch(self) -> bool:
        # Private streams are legitimately silent for hours; pongs prove liveness.
        return False

    def _recovery_complete(self) -> bool:
        return self._authenticated and not self._pending

    async def _on_open(self) -> None:
        self._authenticated = False
        self._pending.clear()
        expires = self._clock_ms() + self.settings.auth_expires_ms
        self._auth_req = self.next_req_id("auth")
        await self.send_json(
            {
                "req_id": self._auth_req,
                "op": "auth",
                "args": [
                    self._api_key,
                    expires,
                    websocket_auth_signature(self._api_secret, expires),
                ],
            }
        )

    def _handle_control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "auth":
            self._auth_reply(message)
        elif op == "subscribe":
            req_id = message.get("req_id")
            if isinstance(req_id, str):
                self._pending.discard(req_id)
            else:
                self._pending.clear()
            if message.get("success") is not True:
                self._log.error("private: subscribe refused: %s", message.get("ret_msg"))
            if not self._pending:
                self.mark_healthy()
        elif message.get("success") is False:
            self._log.warning("private: server error: %s", message.get("ret_msg"))

    def _auth_reply(self, message: dict[str, Any]) -> None:
        # Judge by `success`: the private stream has no retCode on auth replies.
        if message.get("success") is True:
            self._authenticated = True
            self._log.info("private: authenticated")
            self.spawn(self._subscribe())
            return
        ret_msg = str(message.get("ret_msg", ""))
        error = BybitAuthError(classify_auth_failure(ret_msg), ret_msg)
        self.auth_failures += 1
        self.last_auth_error = error
        hint = (
            "check the clock (NTP) and that expires is in the future"
            if error.kind == "expired"
            else "check BYBIT_API_KEY/BYBIT_API_SECRET and that the key belongs to this network"
        )
        self._log.error("private: %s; %s", error, hint)
        if self._on_auth_error is not None:
            try:
                self._on_auth_error(error)
            except Exception:
                self._log.exception("private: auth-error handler failed")
        self.fail_connection(LossCause.AUTH, min_delay=self.settings.auth_retry_min)

    async def _subscribe(self) -> None:
        for chunk in chunk_topics(self._topics):
            req_id = self.next_req_id("sub")
            self._pending.add(req_id)
            await self.send_json({"req_id": req_id, "op": "subscribe", "args": chunk})
