"""Test/control endpoints under ``/sim/`` (for a simulator run as a subprocess).

* ``GET  /sim/health``
* ``GET  /sim/stats``
* ``GET  /sim/ground-truth/trades?category=&symbol=``  -> JSON list of trades
* ``GET  /sim/ground-truth/trade-count?category=&symbol=`` -> ``{"trades": n}``
* ``GET  /sim/ground-truth/executions``                -> JSON list of executions
* ``GET  /sim/ground-truth/book?category=&symbol=&depth=[&ts=]`` -> ``{"u","b","a"}``: the
  ``orderbook.{depth}.{symbol}`` book after its last frame with ``ts <=`` the given ms (default
  now); 404 when none is kept
* ``GET  /sim/ground-truth/book-updates?category=&symbol=&depth=`` -> JSON list of
  ``{"ts","u","seq","cts","type"}``, the kept frames of that stream, oldest first
* ``POST /sim/faults/<name>`` with a JSON body mirroring the Python API:
  ``drop_connections {}``, ``refuse_connections {"seconds"}``, ``stall {"seconds"}``,
  ``pause {"seconds"[,"pongs": bool]}``, ``mute {"symbol","seconds"[,"category": str|null]}``,
  ``black_hole {"seconds"}``, ``slow_ack {"seconds"[,"count": int|null]}``,
  ``malformed_frames {"n"}``, ``rest_errors {"kind","count"}``,
  ``recent_trade_limit {"n": int|null}``, ``book_skip_update {"symbol","depth"[,"category"]}``,
  ``book_restart {"symbol"[,"category"]}``, ``book_crossed_delta {"symbol","depth"[,"category"]}``,
  ``book_stale_resend {"symbol"[,"category"]}``, ``clear {}`` (dashes are accepted for underscores).
  The reply is ``{"ok": true, "result": <the Python return value>}``; bad parameters give 400.
* ``POST /sim/markets`` ``{"category","symbol"}``: start generating a market now.
* ``POST /sim/firehose`` ``{"category","symbol","trades","batch"[,"wait_subscriber_s"]}``: start
  pushing ``trades`` pre-generated trades in frames of ``batch`` as fast as the subscribers
  drain them (202; 409 while one runs). ``GET /sim/firehose``: its progress
  (``state``: generating, pushing, done or failed; ``trades_sent``, ``push_seconds``, ...).
* ``POST /sim/book-firehose`` ``{"category","symbol","updates"[,"depth","events",
  "wait_subscriber_s"]}``: once ``orderbook.{depth}.{symbol}`` (depth 200 by default) has a
  subscriber, generate ``updates`` updates of that stream (a snapshot, then deltas; ``events``:
  mean engine events per update) and push them, one per frame, as fast as the subscribers
  drain them (202; 409 while one runs). ``GET /sim/book-firehose``: its progress (``state``:
  waiting, generating, pushing, done or failed; ``first_u``, ``last_u``, ``levels``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from bybit_sim.codec import dumps, loads, now_ms

if TYPE_CHECKING:
    from bybit_sim.firehose import BookFirehose, Firehose
    from bybit_sim.server import BybitSimulator


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {value!r}")


def _int(value: Any, name: str) -> int:
    """An integer parameter: a JSON integer or a string of digits (not a bool)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return value


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type="application/json")


class ControlApi:
    def __init__(self, sim: BybitSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sim/health", self.health),
            web.get("/sim/stats", self.stats),
            web.get("/sim/ground-truth/trades", self.truth_trades),
            web.get("/sim/ground-truth/trade-count", self.truth_trade_count),
            web.get("/sim/ground-truth/executions", self.truth_executions),
            web.get("/sim/ground-truth/book", self.truth_book),
            web.get("/sim/ground-truth/book-updates", self.truth_book_updates),
            web.post("/sim/faults/{name}", self.fault),
            web.post("/sim/markets", self.start_market),
            web.post("/sim/firehose", self.start_firehose),
            web.get("/sim/firehose", self.firehose_status),
            web.post("/sim/book-firehose", self.start_book_firehose),
            web.get("/sim/book-firehose", self.book_firehose_status),
        ]

    async def health(self, request: web.Request) -> web.Response:
        return _json(
            {
                "status": "ok",
                "port": self.sim.port,
                "markets": [[m.category, m.key] for m in self.sim.hub.markets()],
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        out = self.sim.stats.to_dict()
        out["faults"] = self.sim.faults.status()
        return _json(out)

    async def truth_trades(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        symbol = request.query.get("symbol", "")
        if not category or not symbol:
            return _json({"error": "category and symbol are required"}, 400)
        trades = self.sim.ground_truth.trades(category, symbol)
        return _json([t.to_dict() for t in trades])

    async def truth_trade_count(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        symbol = request.query.get("symbol", "")
        if not category or not symbol:
            return _json({"error": "category and symbol are required"}, 400)
        return _json({"trades": self.sim.ground_truth.trade_count(category, symbol)})

    async def truth_executions(self, request: web.Request) -> web.Response:
        return _json(self.sim.ground_truth.executions())

    def _book_query(self, request: web.Request) -> tuple[str, str, int]:
        q = request.query
        category, symbol = q.get("category", ""), q.get("symbol", "")
        if not category or not symbol:
            raise ValueError("category, symbol and depth are required")
        return category, symbol, _int(q.get("depth", ""), "depth")

    async def truth_book(self, request: web.Request) -> web.Response:
        try:
            category, symbol, depth = self._book_query(request)
            raw_ts = request.query.get("ts")
            ts = now_ms() if raw_ts is None else _int(raw_ts, "ts")
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        book = self.sim.ground_truth.book_at(category, symbol, depth, ts)
        if book is None:
            return _json({"error": "no book kept for that stream and instant"}, 404)
        return _json({"u": book.u, "b": book.bids, "a": book.asks})

    async def truth_book_updates(self, request: web.Request) -> web.Response:
        try:
            category, symbol, depth = self._book_query(request)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        updates = self.sim.ground_truth.book_updates(category, symbol, depth)
        return _json([u.to_dict() for u in updates])

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        body = loads(raw)
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body

    async def fault(self, request: web.Request) -> web.Response:
        name = request.match_info["name"].replace("-", "_")
        try:
            body = await self._body(request)
            faults = self.sim.faults
            actions: dict[str, Callable[[], Any]] = {
                "drop_connections": faults.drop_connections,
                "refuse_connections": lambda: faults.refuse_connections(float(body["seconds"])),
                "stall": lambda: faults.stall(float(body["seconds"])),
                "pause": lambda: faults.pause(body["seconds"], body.get("pongs", False)),
                "mute": lambda: faults.mute(
                    str(body["symbol"]), body["seconds"], _opt_str(body.get("category"))
                ),
                "black_hole": lambda: faults.black_hole(body["seconds"]),
                "slow_ack": lambda: faults.slow_ack(body["seconds"], body.get("count")),
                "malformed_frames": lambda: faults.malformed_frames(int(body.get("n", 1))),
                "rest_errors": lambda: faults.rest_errors(
                    str(body["kind"]), int(body.get("count", 1))
                ),
                "recent_trade_limit": lambda: faults.recent_trade_limit(
                    None if body.get("n") is None else int(body["n"])
                ),
                "book_skip_update": lambda: faults.book_skip_update(
                    str(body["symbol"]),
                    _int(body["depth"], "depth"),
                    _opt_str(body.get("category")),
                ),
                "book_restart": lambda: faults.book_restart(
                    str(body["symbol"]), _opt_str(body.get("category"))
                ),
                "book_crossed_delta": lambda: faults.book_crossed_delta(
                    str(body["symbol"]),
                    _int(body["depth"], "depth"),
                    _opt_str(body.get("category")),
                ),
                "book_stale_resend": lambda: faults.book_stale_resend(
                    str(body["symbol"]), _opt_str(body.get("category"))
                ),
                "clear": faults.clear,
            }
            action = actions.get(name)
            if action is None:
                return _json({"ok": False, "error": f"unknown fault {name!r}"}, 404)
            result = action()
        except (KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
            return _json({"ok": False, "error": f"bad parameters: {exc}"}, 400)
        return _json({"ok": True, "result": result})

    async def start_market(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            category, symbol = str(body["category"]), str(body["symbol"])
        except (KeyError, ValueError, msgspec.DecodeError) as exc:
            return _json({"ok": False, "error": f"bad parameters: {exc}"}, 400)
        if not self.sim.start_market(category, symbol):
            return _json({"ok": False, "error": "unknown market"}, 404)
        return _json({"ok": True})

    async def _start_job(
        self,
        request: web.Request,
        job: Firehose | BookFirehose,
        start: Callable[[dict[str, Any]], object],
    ) -> web.Response:
        """Start ``job`` with the request's body: 202, 409 while it runs, 400 if refused."""
        if job.status.running:
            return _json({"ok": False, "error": "a firehose of that kind is already running"}, 409)
        try:
            start(await self._body(request))
        except (KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
            return _json({"ok": False, "error": f"bad parameters: {exc}"}, 400)
        return _json({"ok": True, "status": job.status.to_dict()}, 202)

    async def start_firehose(self, request: web.Request) -> web.Response:
        firehose = self.sim.firehose
        return await self._start_job(
            request,
            firehose,
            lambda body: firehose.start(
                str(body["category"]),
                str(body["symbol"]),
                int(body["trades"]),
                int(body.get("batch", 1024)),
                float(body.get("wait_subscriber_s", 10.0)),
            ),
        )

    async def firehose_status(self, request: web.Request) -> web.Response:
        return _json(self.sim.firehose.status.to_dict())

    async def start_book_firehose(self, request: web.Request) -> web.Response:
        books = self.sim.firehose.books
        return await self._start_job(
            request,
            books,
            lambda body: books.start(
                str(body["category"]),
                str(body["symbol"]),
                _int(body["updates"], "updates"),
                _int(body.get("depth", 200), "depth"),
                None if body.get("events") is None else float(body["events"]),
                float(body.get("wait_subscriber_s", 10.0)),
            ),
        )

    async def book_firehose_status(self, request: web.Request) -> web.Response:
        return _json(self.sim.firehose.books.status.to_dict())
