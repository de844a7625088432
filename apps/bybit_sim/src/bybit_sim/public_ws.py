"""Public streams ``/v5/public/{category}``: subscribe/unsubscribe/ping with per-category shapes.

Reply shapes (research sections 2-3):

* spot ack:   ``{"success":true,"ret_msg":"subscribe","conn_id":..,["req_id":..,]"op":"subscribe"}``
  (no ``req_id`` key when none was sent); spot unsubscribe as observed:
  ``{"success":true,"ret_msg":"unsubscribe",["req_id":..,]"op":"unsubscribe"}``.
* linear/inverse ack: ``{"success":true,"ret_msg":"","conn_id":..,"req_id":<echo or "">,"op":..}``.
* option ack: ``{"success":..,"conn_id":..,"data":{"failTopics":[..],"successTopics":[..]},
  "type":"COMMAND_RESP"}``.
* pong: spot/linear/inverse ``{"success":true,"ret_msg":"pong","conn_id":..,"req_id":..,
  "op":"ping"}`` (spot omits ``req_id`` when none was sent; linear/inverse echo ``""``);
  option ``{"args":["<ms>"],"op":"pong"}``.

Partial failures (simulator choice; real Bybit answers one ack per request and its exact
behaviour for mixed requests is not documented): the single ack has ``success:false`` and
its ``ret_msg`` carries one ``error:...,topic:<t>`` entry per bad topic, joined by ``"; "``
(exactly the real text when one topic is bad); the good topics of the same request ARE
subscribed and stream data. Unsubscribing a topic that is not subscribed fails with
``error:not subscribed,topic:<t>`` (unverified text). More than ``max_args_per_request``
args refuses the whole request with ``args size >10``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bybit_sim.codec import dumps, now_ms
from bybit_sim.connection import WsConnection
from bybit_sim.instruments import CATEGORIES
from bybit_sim.market import MarketHub
from bybit_sim.topics import PublicTopic, parse_public_topic
from bybit_sim.ws_common import StreamCommands, update_topics

log = logging.getLogger(__name__)


@dataclass(eq=False)
class PublicWs(StreamCommands):
    hub: MarketHub

    async def handle(self, request: web.Request) -> web.StreamResponse:
        category = request.match_info["category"]
        if category not in CATEGORIES:
            raise web.HTTPNotFound()
        return await self.server.serve(
            request,
            kind="public",
            category=category,
            on_command=self._on_command,
            on_bad_json=self._on_bad_json,
            on_close=self.hub.forget,
        )

    # -- replies ------------------------------------------------------------------------
    def _reply(
        self, conn: WsConnection, op: str, req_id: Any, success: bool, ret_msg: str
    ) -> dict[str, Any]:
        """Generic command reply (acks, errors, pongs) in the category's shape."""
        out: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id}
        if conn.category in ("linear", "inverse"):
            out["req_id"] = "" if req_id is None else req_id
        elif req_id is not None:
            out["req_id"] = req_id
        out["op"] = op
        return out

    def _sub_ack(
        self, conn: WsConnection, op: str, req_id: Any, ok: list[str], errors: list[tuple[str, str]]
    ) -> dict[str, Any]:
        if conn.category == "option":
            return {
                "success": not errors,
                "conn_id": conn.conn_id,
                "data": {"failTopics": [t for t, _ in errors], "successTopics": ok},
                "type": "COMMAND_RESP",
            }
        if errors:
            return self._reply(conn, op, req_id, False, "; ".join(e for _, e in errors))
        if conn.category == "spot":
            if op == "unsubscribe":
                out: dict[str, Any] = {"success": True, "ret_msg": "unsubscribe"}
                if req_id is not None:
                    out["req_id"] = req_id
                out["op"] = "unsubscribe"
                return out
            return self._reply(conn, op, req_id, True, "subscribe")
        return self._reply(conn, op, req_id, True, "")

    # -- commands -----------------------------------------------------------------------
    def _on_command(self, conn: WsConnection, obj: Any, op: str) -> None:
        req_id = obj.get("req_id")
        if op == "ping":
            if conn.category == "option":
                self._send(conn, {"args": [str(now_ms())], "op": "pong"})
            else:
                self._send(conn, self._reply(conn, "ping", req_id, True, "pong"))
        elif op in ("subscribe", "unsubscribe"):
            self._on_subscription(conn, op, req_id, obj.get("args"))
        else:
            self._send(conn, self._reply(conn, op, req_id, False, "error:invalid op"))

    def _on_subscription(self, conn: WsConnection, op: str, req_id: Any, args: Any) -> None:
        names = self._subscription_args(conn, op, req_id, args)
        if names is None:
            return
        if len(names) > self.cfg.max_args_per_request:
            msg = f"args size >{self.cfg.max_args_per_request}"
            if conn.category == "option":
                ack = self._sub_ack(conn, op, req_id, [], [(a, msg) for a in names])
                ack["ret_msg"] = msg
                self._send(conn, ack)
            else:
                self._send(conn, self._reply(conn, op, req_id, False, msg))
            return
        snapshots: list[tuple[bytes, str]] = []

        def subscribed(name: str, topic: PublicTopic) -> None:
            snapshots.extend((f, name) for f in self.hub.subscribe(conn, conn.category, topic))

        ok, errors = update_topics(
            conn,
            op,
            names,
            lambda name: parse_public_topic(conn.category, name, self.cfg.unknown_symbols),
            on_subscribed=subscribed,
            on_unsubscribed=lambda name: self.hub.unsubscribe(conn, conn.category, name),
        )
        ack_frame = dumps(self._sub_ack(conn, op, req_id, ok, errors))
        if self.cfg.snapshot_before_ack:
            for frame, name in snapshots:
                conn.send(frame, name)
            conn.send(ack_frame)
        else:
            conn.send(ack_frame)
            for frame, name in snapshots:
                conn.send(frame, name)
