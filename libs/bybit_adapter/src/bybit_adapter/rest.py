"""Async Bybit V5 REST client for reconciliation reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from bybit_adapter.backoff import Backoff
from bybit_adapter.decoders import PrivateDecoder, TradeDecoder
from bybit_adapter.errors import (
    BybitApiError,
    BybitHttpError,
    BybitRestError,
    BybitTransportError,
    FrameRejected,
)
from bybit_adapter.lifecycle import StartStop
from bybit_adapter.settings import RestSettings
from bybit_adapter.signing import rest_signature
from bybit_records import Category, Execution, Order, Position, Record, Trade, Wallet

R = TypeVar("R", bound=Record)
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
_RETRYABLE_HTTP = {429, 500, 502, 503, 504}
_RETRY_WIDER_WINDOW = 10002
_RETRY_RATE_LIMIT = 10006
_RETRY_SERVER_ERROR = 10016

_log = logging.getLogger("bybit_adapter.rest")


def time_windows(start_ms: int, end_ms: int, span_ms: int = SEVEN_DAYS_MS) -> list[tuple[int, int]]:
    """Split [start, end] into windows Bybit accepts (at most 7 days each)."""
    if end_ms < start_ms:
        return []
    windows = []
    cursor = start_ms
    while cursor <= end_ms:
        upper = min(end_ms, cursor + span_ms - 1)
        windows.append((cursor, upper))
        cursor = upper + 1
    return windows


class BybitRestClient(StartStop):
    """Public and signed GETs with Bybit's retry rules.

    Retries transport errors, HTTP 429/5xx, retCode 10002 (with a wider recv
    window), 10006 (until the reset timestamp) and 10016, within
    ``settings.max_retries``. HTTP 403 is Bybit's IP ban: every call fails fast
    for ``settings.ban_pause`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        settings: RestSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings or RestSettings()
        self._api_key = api_key
        self._api_secret = api_secret
        self._session = session
        self._owns_session = session is None
        self._clock_ms = clock_ms
        self._recv_window = self.settings.recv_window_ms
        self._banned_until = 0.0
        self._private = PrivateDecoder()
        self.requests_sent = 0
        self.retries = 0

    @property
    def has_credentials(self) -> bool:
        return bool(self._api_key and self._api_secret)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.timeout, sock_connect=self.settings.connect_timeout
                )
            )

    async def stop(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ---- endpoints ------------------------------------------------------------

    async def server_time_ms(self) -> int:
        result = await self.get("/v5/market/time", {})
        return int(result["timeNano"]) // 1_000_000

    async def recent_trades(self, category: Category, symbol: str, limit: int) -> list[Trade]:
        """The newest ``limit`` trades (Bybit caps at 1000, 60 on spot), newest first."""
        result, response_ms = await self._get_with_time(
            "/v5/market/recent-trade",
            {"category": category.value, "symbol": symbol, "limit": limit},
        )
        items = result.get("list") or []
        try:
            return TradeDecoder(category).rest(items, response_ms, time.time_ns())
        except FrameRejected as exc:
            raise BybitRestError(f"recent-trade reply unusable: {exc.reason}") from None

    async def executions(
        self, category: Category, start_ms: int, end_ms: int, symbol: str | None = None
    ) -> list[Execution]:
        """Every execution in [start, end], paging 7-day windows and cursors."""
        items = await self._paged(
            "/v5/execution/list", category, start_ms, end_ms, symbol, limit=100
        )
        return self._records(Execution, items, category)

    async def order_history(
        self, category: Category, start_ms: int, end_ms: int, symbol: str | None = None
    ) -> list[Order]:
        items = await self._paged("/v5/order/history", category, start_ms, end_ms, symbol, limit=50)
        return self._records(Order, items, category)

    async def open_orders(
        self, category: Category, settle_coin: str | None = "USDT"
    ) -> list[Order]:
        params: dict[str, Any] = {"category": category.value}
        if settle_coin and category in (Category.LINEAR, Category.INVERSE):
            params["settleCoin"] = settle_coin
        items = await self._cursor_pages("/v5/order/realtime", params, limit=50)
        return self._records(Order, items, category)

    async def positions(
        self, category: Category, settle_coin: str | None = "USDT"
    ) -> list[Position]:
        params: dict[str, Any] = {"category": category.value}
        if settle_coin:
            params["settleCoin"] = settle_coin
        items = await self._cursor_pages("/v5/position/list", params, limit=200)
        return self._records(Position, items, category)

    async def wallet_balance(self, account_type: str = "UNIFIED") -> list[Wallet]:
        result = await self.get(
            "/v5/account/wallet-balance", {"accountType": account_type}, signed=True
        )
        return self._records(Wallet, result.get("list") or [], None)

    def _records(self, record: type[R], items: list[Any], category: Category | None) -> list[R]:
        try:
            return self._private.rest(record, items, category, time.time_ns())
        except FrameRejected as exc:
            raise BybitRestError(f"{record.__name__} reply unusable: {exc.reason}") from None

    # ---- paging -----------------------------------------------------------------

    async def _paged(
        self,
        path: str,
        category: Category,
        start_ms: int,
        end_ms: int,
        symbol: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for lower, upper in time_windows(start_ms, end_ms):
            params: dict[str, Any] = {"category": category.value}
            if symbol:
                params["symbol"] = symbol
            params.update(startTime=lower, endTime=upper)
            items.extend(await self._cursor_pages(path, params, limit))
        return items

    async def _cursor_pages(
        self, path: str, params: dict[str, Any], limit: int
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        seen: set[str] = set()
        while True:
            page_params = {**params, "limit": limit}
            if cursor:
                page_params["cursor"] = cursor
            result = await self.get(path, page_params, signed=True)
            page = result.get("list") or []
            items.extend(page)
            cursor = result.get("nextPageCursor") or ""
            if not cursor or not page:
                return items
            if cursor in seen:  # a server that loops its cursor must not loop us
                raise BybitRestError(f"{path}: cursor {cursor!r} repeated")
            seen.add(cursor)

    # ---- transport --------------------------------------------------------------

    async def get(self, path: str, params: dict[str, Any], signed: bool = False) -> dict[str, Any]:
        result, _ = await self._get_with_time(path, params, signed)
        return result

    async def _get_with_time(
        self, path: str, params: dict[str, Any], signed: bool = False
    ) -> tuple[dict[str, Any], int]:
        if signed and not self.has_credentials:
            raise BybitRestError(f"{path} needs API credentials")
        if self._session is None:
            raise BybitRestError("REST client not started")
        remaining_ban = self._banned_until - time.monotonic()
        if remaining_ban > 0:
            raise BybitRestError(f"{path}: REST paused {remaining_ban:.0f}s more after HTTP 403")
        query = encode_query(params)
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(path, query, signed)
            except _Retry as retry:
                if attempt > self.settings.max_retries:
                    raise retry.error from None
                self.retries += 1
                delay = retry.wait if retry.wait is not None else backoff.next_delay()
                _log.warning(
                    "REST %s: %s; retry %d/%d in %.1fs",
                    path,
                    retry.error,
                    attempt,
                    self.settings.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _once(self, path: str, query: str, signed: bool) -> tuple[dict[str, Any], int]:
        assert self._session is not None
        headers = self._auth_headers(query) if signed else {}
        url = URL(
            f"{self.base_url}{path}?{query}" if query else f"{self.base_url}{path}", encoded=True
        )
        self.requests_sent += 1
        try:
            timeout = aiohttp.ClientTimeout(
                total=self.settings.timeout, sock_connect=self.settings.connect_timeout
            )
            async with self._session.get(url, headers=headers, timeout=timeout) as response:
                body = await response.read()
                status = response.status
                reset_header = response.headers.get("X-Bapi-Limit-Reset-Timestamp")
        except TimeoutError:
            raise _Retry(
                BybitTransportError(f"{path}: no reply within {self.settings.timeout}s")
            ) from None
        except aiohttp.ClientError as exc:
            raise _Retry(BybitTransportError(f"{path}: {type(exc).__name__}: {exc}")) from None
        if status == 403:
            self._banned_until = time.monotonic() + self.settings.ban_pause
            _log.error(
                "REST %s: HTTP 403 (IP rate limit or region block); pausing REST for %.0fs",
                path,
                self.settings.ban_pause,
            )
            raise BybitHttpError(path, status, body.decode("utf-8", "replace"))
        if status != 200:
            error = BybitHttpError(path, status, body.decode("utf-8", "replace"))
            if status in _RETRYABLE_HTTP:
                raise _Retry(error)
            raise error
        try:
            reply = msgspec.json.decode(body)
            ret_code = int(reply["retCode"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            raise _Retry(BybitTransportError(f"{path}: malformed reply {body[:200]!r}")) from None
        if ret_code != 0:
            self._raise_for_ret_code(path, ret_code, str(reply.get("retMsg", "")), reset_header)
        result = reply.get("result") or {}
        response_ms = reply.get("time")
        return result, int(response_ms) if isinstance(response_ms, int) else self._clock_ms()

    def _raise_for_ret_code(
        self, path: str, ret_code: int, ret_msg: str, reset_header: str | None
    ) -> None:
        error = BybitApiError(path, ret_code, ret_msg)
        if ret_code == _RETRY_WIDER_WINDOW:
            self._recv_window += self.settings.recv_window_step_ms
            raise _Retry(error, wait=0.0)
        if ret_code == _RETRY_RATE_LIMIT:
            wait = None
            if reset_header and reset_header.isdigit():
                wait = max(0.0, (int(reset_header) - self._clock_ms()) / 1000)
                wait = min(wait, self.settings.max_rate_limit_wait)
            raise _Retry(error, wait=wait)
        if ret_code == _RETRY_SERVER_ERROR:
            raise _Retry(error)
        raise error

    def _auth_headers(self, query: str) -> dict[str, str]:
        assert self._api_key is not None
        assert self._api_secret is not None
        timestamp = self._clock_ms()
        return {
            "X-BAPI-API-KEY": self._api_key,
            "X-BAPI-TIMESTAMP": str(timestamp),
            "X-BAPI-RECV-WINDOW": str(self._recv_window),
            "X-BAPI-SIGN": rest_signature(
                self._api_secret, timestamp, self._api_key, self._recv_window, query
            ),
            "X-BAPI-SIGN-TYPE": "2",
        }


class _Retry(Exception):
    def __init__(self, error: BybitRestError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def encode_query(params: dict[str, Any]) -> str:
    """The query string to send and sign.

    Bybit's ``nextPageCursor`` arrives already URL-encoded and must be sent and
    signed exactly as received; other values are percent-encoded.
    """
    parts = []
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key}={text if key == 'cursor' else quote(text, safe='')}")
    return "&".join(parts)
