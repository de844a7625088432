"""REST API (research section 6): market time, recent trades and the signed account reads.

Every reply is ``{"retCode":..,"retMsg":..,"result":{..},"retExtInfo":{},"time":<ms>}`` with
``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` and ``X-Bapi-Limit-Reset-Timestamp`` headers.
Parameter errors use retCode 10001; the texts are the simulator's own unless noted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bybit_sim.account import Account
from bybit_sim.auth import RestAuthError, verify_rest
from bybit_sim.codec import dumps, now_ms
from bybit_sim.config import SimulatorConfig
from bybit_sim.faults import Faults
from bybit_sim.instruments import CATEGORIES, parse_symbol
from bybit_sim.market import MarketHub
from bybit_sim.stats import SimStats
from bybit_sim.truth import GroundTruth, TruthTrade

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
# GET /v5/market/orderbook ``limit``: (max, default) per category (docs; research A)
_BOOK_LIMITS = {"spot": (200, 1), "linear": (500, 25), "inverse": (500, 25), "option": (25, 1)}
_WS_PATHS = ("/v5/public/", "/v5/private")


class ParamError(Exception):
    def __init__(self, message: str, code: int = 10001) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope(result: Any, ret_code: int = 0, ret_msg: str = "OK") -> dict[str, Any]:
    return {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": result,
        "retExtInfo": {},
        "time": now_ms(),
    }


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type="application/json")


def _html(status: int, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=text)


def _int_param(q: Any, name: str, default: int | None, lo: int, hi: int | None) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit():
        raise ParamError(f"params error: {name} invalid")
    value = int(raw)
    if value < lo:
        raise ParamError(f"params error: {name} invalid")
    return value if hi is None else min(value, hi)


def _category(q: Any, allowed: Iterable[str] = CATEGORIES) -> str:
    category = str(q.get("category", ""))
    if category not in allowed:
        raise ParamError("Illegal category")  # real Bybit text for a bad category
    return category


def _window(q: Any, now: int) -> tuple[int, int]:
    start = _int_param(q, "startTime", None, 0, None)
    end = _int_param(q, "endTime", None, 0, None)
    if start is None and end is None:
        return now - _SEVEN_DAYS_MS, now
    if start is None:
        assert end is not None
        return end - _SEVEN_DAYS_MS, end
    if end is None:
        return start, start + _SEVEN_DAYS_MS
    if end < start:
        raise ParamError("params error: startTime must be less than endTime")
    if end - start > _SEVEN_DAYS_MS:
        raise ParamError(
            "params error: the time range between startTime and endTime cannot exceed 7 days"
        )
    return start, end


def _matches(q: Any, row: dict[str, Any], params: Iterable[str]) -> bool:
    """Whether ``row`` passes the list filters of the query.

    ``params`` name query parameters that filter the field of the same name by equality;
    ``baseCoin`` filters by symbol prefix. An absent or empty parameter does not filter.
    """
    base = q.get("baseCoin")
    if base and not row["symbol"].startswith(base):
        return False
    return all(not q.get(p) or row[p] == q.get(p) for p in params)


def encode_cursor(time_ms: int, index: int) -> str:
    """Opaque cursor, URL-encoded like Bybit's (``"132766%3A2%2C132766%3A2"``)."""
    raw = f"{time_ms}:{index}"
    return quote(f"{raw},{raw}", safe="")


def decode_cursor(text: str) -> tuple[int, int]:
    """Parse a cursor as received in the (already percent-decoded) query."""
    first = text.split(",", 1)[0]
    t, sep, i = first.partition(":")
    if not sep or not t.isdigit() or not i.isdigit():
        raise ParamError("params error: cursor invalid")
    return int(t), int(i)


def paginate(
    rows: list[tuple[int, int, dict[str, Any]]], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str]:
    """Keyset pagination over rows sorted by (time desc, index desc).

    The cursor remembers the last row returned, so rows created between pages (which are
    newer, hence sort first) never shift later pages: every row is returned exactly once.
    """
    if cursor:
        key = decode_cursor(cursor)
        rows = [r for r in rows if (r[0], r[1]) < key]
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][0], page[-1][1]) if len(rows) > limit else ""
    return [r[2] for r in page], next_cursor


def _page_reply(
    q: Any, category: str, rows: list[tuple[int, int, dict[str, Any]]], limit: int
) -> web.Response:
    """One page of a cursor-paginated list, in the list endpoints' envelope."""
    page, cursor = paginate(rows, limit, q.get("cursor"))
    return _json(envelope({"nextPageCursor": cursor, "category": category, "list": page}))


def recent_trade_item(category: str, t: TruthTrade) -> dict[str, Any]:
    item: dict[str, Any] = {
        "execId": t.trade_id,
        "symbol": t.symbol,
        "price": t.price,
        "size": t.size,
        "side": t.side,
        "time": str(t.time_ms),
        "isBlockTrade": t.is_block_trade,
        "isRPITrade": t.is_rpi,
        "seq": str(t.seq),
    }
    if category == "option" and t.option_marks is not None:
        item["mP"], item["iP"], item["mIv"], item["iv"] = t.option_marks
    return item


@dataclass(eq=False)
class RestApi:
    cfg: SimulatorConfig
    hub: MarketHub
    account: Account
    truth: GroundTruth
    faults: Faults
    stats: SimStats
    stopping: asyncio.Event
    _window_second: int = field(default=0, init=False)
    _window_counts: Counter[str] = field(default_factory=Counter, init=False)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v5/market/time", self.market_time),
            web.get("/v5/market/recent-trade", self.recent_trade),
            web.get("/v5/market/orderbook", self.orderbook),
            web.get("/v5/execution/list", self._signed(self.execution_list)),
            web.get("/v5/order/history", self._signed(self.order_history)),
            web.get("/v5/order/realtime", self._signed(self.order_realtime)),
            web.get("/v5/position/list", self._signed(self.position_list)),
            web.get("/v5/account/wallet-balance", self._signed(self.wallet_balance)),
        ]

    # -- middleware: stats, injected faults, rate-limit headers ---------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v5/") or path.startswith(_WS_PATHS):
            return await handler(request)
        self.stats.rest_requests[path] += 1
        kind = self.faults.take_rest_fault()
        if kind is not None:
            log.info("REST fault %s on %s", kind, path)
            if kind == "timeout":
                try:
                    async with asyncio.timeout(self.cfg.rest_timeout_hold_s):
                        await self.stopping.wait()
                except TimeoutError:
                    pass
                if self.stopping.is_set():
                    return web.Response(status=503, text="Service Unavailable")
            else:
                return self._fault_response(kind, path)
        try:
            response = await handler(request)
        except ParamError as exc:
            response = _json(envelope({}, exc.code, exc.message))
        self._limit_headers(response, path)
        return response

    def _limit_headers(
        self, response: web.StreamResponse, path: str, *, limited: bool = False
    ) -> None:
        second = int(time.time())
        if second != self._window_second:
            self._window_second = second
            self._window_counts.clear()
        self._window_counts[path] += 1
        limit = self.cfg.rest_rate_limit
        remaining = 0 if limited else max(0, limit - self._window_counts[path])
        now = now_ms()
        response.headers["X-Bapi-Limit"] = str(limit)
        response.headers["X-Bapi-Limit-Status"] = str(remaining)
        response.headers["X-Bapi-Limit-Reset-Timestamp"] = str(now + 1000 if limited else now)

    def _fault_response(self, kind: str, path: str) -> web.Response:
        if kind == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if kind == "http502":
            return _html(
                502,
                "<html><head><title>502 Bad Gateway</title></head><body>"
                "<center><h1>502 Bad Gateway</h1></center></body></html>",
            )
        if kind == "http429":
            return web.Response(status=429, text="System level frequency protection. Please retry.")
        if kind == "http403":
            return _html(403, "<html><body><h1>403 Forbidden</h1>access too frequent</body></html>")
        if kind == "retcode10006":
            response = _json(envelope({}, 10006, "Too many visits!"))
            self._limit_headers(response, path, limited=True)
            return response
        response = _json(envelope({}, 10016, "Server error."))
        self._limit_headers(response, path)
        return response

    def _signed(
        self,
        handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
    ) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            raw_query = request.raw_path.partition("?")[2]
            result = verify_rest(
                request.headers, raw_query, self.cfg.api_keys, now_ms() + self.cfg.clock_offset_ms
            )
            if isinstance(result, RestAuthError):
                return _json(envelope({}, result.ret_code, result.ret_msg))
            return await handler(request, result)

        return wrapper

    # -- public -------------------------------------------------------------------------
    async def market_time(self, request: web.Request) -> web.StreamResponse:
        ns = time.time_ns()
        return _json(envelope({"timeSecond": str(ns // 10**9), "timeNano": str(ns)}))

    async def recent_trade(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        category = _category(q)
        symbol = q.get("symbol") or None
        is_spot = category == "spot"
        max_limit = (
            min(60, self.cfg.recent_trade_max_spot) if is_spot else self.cfg.recent_trade_max
        )
        limit = _int_param(q, "limit", 60 if is_spot else 500, 1, max_limit)
        assert limit is not None
        if category == "option":
            market_key = symbol.split("-", 1)[0] if symbol else q.get("baseCoin") or "BTC"
        else:
            if symbol is None:
                raise ParamError("params error: symbol is required")
            if parse_symbol(category, symbol, self.cfg.unknown_symbols) is None:
                raise ParamError("Not supported symbols")
            market_key = symbol
        market = self.hub.market(category, market_key)
        trades = market.trades_for(symbol) if market is not None else []
        cap = self.faults.recent_trade_cap
        if cap is not None:
            limit = min(limit, cap)
        newest = trades[::-1][:limit] if limit > 0 else []
        return _json(
            envelope(
                {"category": category, "list": [recent_trade_item(category, t) for t in newest]}
            )
        )

    async def orderbook(self, request: web.Request) -> web.StreamResponse:
        """``result``: ``{s, b, a, ts, u, seq, cts}``, the top ``limit`` levels per side.

        A ``limit`` out of the category's range is refused (retCode 10001), not clamped.
        """
        q = request.query
        category = _category(q)
        symbol = q.get("symbol") or None
        if symbol is None:
            raise ParamError("params error: symbol is required")
        max_limit, default = _BOOK_LIMITS[category]
        limit = _int_param(q, "limit", default, 1, None)
        assert limit is not None
        if limit > max_limit:
            raise ParamError("params error: limit invalid")
        if parse_symbol(category, symbol, self.cfg.unknown_symbols) is None:
            raise ParamError("Not supported symbols")
        result = self.hub.rest_book(category, symbol, limit)
        if result is None:
            raise ParamError("Not supported symbols")
        return _json(envelope(result))

    # -- signed -------------------------------------------------------------------------
    async def execution_list(self, request: web.Request, api_key: str) -> web.StreamResponse:
        q = request.query
        category = _category(q)
        limit = _int_param(q, "limit", 50, 1, 100)
        assert limit is not None
        order_id, link_id = q.get("orderId"), q.get("orderLinkId")
        start, end = _window(q, now_ms())
        rows: list[tuple[int, int, dict[str, Any]]] = []
        for index, e in enumerate(self.truth.executions_view()):
            if e["category"] != category:
                continue
            if order_id:
                if e["orderId"] != order_id:
                    continue
            elif link_id:
                if e["orderLinkId"] != link_id:
                    continue
            else:
                t = int(e["execTime"])
                if not start <= t <= end or not _matches(q, e, ("symbol", "execType")):
                    continue
            item = {k: v for k, v in e.items() if k != "category"}
            item["execFeeV2"] = ""
            rows.append((int(e["execTime"]), index, item))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return _page_reply(q, category, rows, limit)

    def _order_rows(
        self,
        q: Any,
        category: str,
        statuses: frozenset[str] | None,
    ) -> list[tuple[int, int, dict[str, Any]]]:
        rows: list[tuple[int, int, dict[str, Any]]] = []
        for index, oid in enumerate(self.account.order_ids):
            o = self.account.orders[oid]
            if o["category"] != category:
                continue
            if statuses is not None and o["orderStatus"] not in statuses:
                continue
            if not _matches(q, o, ("orderId", "orderLinkId", "symbol", "orderStatus")):
                continue
            item = {k: v for k, v in o.items() if k != "category"}
            rows.append((int(o["createdTime"]), index, item))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return rows

    async def order_history(self, request: web.Request, api_key: str) -> web.StreamResponse:
        q = request.query
        category = _category(q)
        limit = _int_param(q, "limit", 20, 1, 50)
        assert limit is not None
        start, end = _window(q, now_ms())
        order_filter = q.get("orderFilter")
        rows = (
            []
            if order_filter not in (None, "", "Order")
            else [r for r in self._order_rows(q, category, None) if start <= r[0] <= end]
        )
        return _page_reply(q, category, rows, limit)

    async def order_realtime(self, request: web.Request, api_key: str) -> web.StreamResponse:
        q = request.query
        category = _category(q)
        limit = _int_param(q, "limit", 20, 1, 50)
        assert limit is not None
        open_only = q.get("openOnly", "0")
        if open_only == "0":
            rows = self._order_rows(
                q, category, frozenset({"New", "PartiallyFilled", "Untriggered"})
            )
        else:
            rows = self._order_rows(
                q,
                category,
                frozenset(
                    {"Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected", "Deactivated"}
                ),
            )[:500]
        return _page_reply(q, category, rows, limit)

    async def position_list(self, request: web.Request, api_key: str) -> web.StreamResponse:
        q = request.query
        category = _category(q, ("linear", "inverse", "option"))
        _int_param(q, "limit", 20, 1, 200)
        symbol = q.get("symbol")
        specs = [s for s in self.account.specs if s.category == category]
        if symbol:
            spec = self.account.spec_for(category, symbol) or parse_symbol(
                category, symbol, self.cfg.unknown_symbols
            )
            if spec is None:
                raise ParamError("params error: symbol invalid")
            specs = [spec]
        items = []
        for spec in specs:
            item = self.account.position_item(spec)
            item.pop("category", None)
            item = {("avgPrice" if k == "entryPrice" else k): v for k, v in item.items()}
            items.append(item)
        return _json(envelope({"list": items, "nextPageCursor": "", "category": category}))

    async def wallet_balance(self, request: web.Request, api_key: str) -> web.StreamResponse:
        q = request.query
        if q.get("accountType") != "UNIFIED":
            raise ParamError("accountType only support UNIFIED.")
        wallet = self.account.wallet_item()
        coins = q.get("coin")
        if coins:
            wanted = set(coins.split(","))
            wallet["coin"] = [c for c in wallet["coin"] if c["coin"] in wanted]
        return _json(envelope({"list": [wallet]}))
