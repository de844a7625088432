"""Private stream ``/v5/private``: auth, ping, subscribe/unsubscribe to account topics.

Shapes (research sections 2-4):

* auth ok:   ``{"success":true,"ret_msg":"","op":"auth","conn_id":..[,"req_id":..]}``
* auth fail: ``{"success":false,"ret_msg":"Params Error"|..,"op":"auth","conn_id":..}``
* pong:      ``{"req_id":..,"op":"pong","args":["<ms>"],"conn_id":..}`` (``req_id`` only if sent)
* subscribe before auth: ``{"success":false,"ret_msg":"Request not authorized","op":"subscribe",
  "conn_id":..}``; ok: ``{"success":true,"ret_msg":"","op":"subscribe","conn_id":..}``.

Re-sending auth on an authenticated socket answers success again (unverified choice).
An unknown private topic fails with ``error:handler not found,topic:<t>`` (the public text;
unverified for the private stream); good topics of the same request are subscribed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bybit_sim.auth import verify_ws_auth
from bybit_sim.codec import now_ms
from bybit_sim.connection import WsConnection
from bybit_sim.topics import parse_private_topic
from bybit_sim.ws_common import StreamCommands, update_topics

log = logging.getLogger(__name__)


@dataclass(eq=False)
class PrivateWs(StreamCommands):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await self.server.serve(
            request,
            kind="private",
            category="private",
            on_command=self._on_command,
            on_bad_json=self._on_bad_json,
            on_close=lambda conn: None,
        )

    def _reply(
        self, conn: WsConnection, op: str, req_id: Any, success: bool, ret_msg: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "success": success,
            "ret_msg": ret_msg,
            "op": op,
            "conn_id": conn.conn_id,
        }
        if req_id is not None:
            out["req_id"] = req_id
        return out

    def _on_command(self, conn: WsConnection, obj: Any, op: str) -> None:
        req_id = obj.get("req_id")
        if op == "ping":
            pong: dict[str, Any] = {}
            if req_id is not None:
                pong["req_id"] = req_id
            pong.update(op="pong", args=[str(now_ms())], conn_id=conn.conn_id)
            self._send(conn, pong)
        elif op == "auth":
            self._on_auth(conn, req_id, obj.get("args"))
        elif op in ("subscribe", "unsubscribe"):
            self._on_subscription(conn, op, req_id, obj.get("args"))
        else:
            self._send(conn, self._reply(conn, op, req_id, False, "error:invalid op"))

    def _on_auth(self, conn: WsConnection, req_id: Any, args: Any) -> None:
        self.stats.auth_attempts += 1
        result = verify_ws_auth(args, self.cfg.api_keys, now_ms() + self.cfg.clock_offset_ms)
        if result.ok:
            conn.api_key = result.api_key
        else:
            self.stats.auth_failures += 1
            log.info("private auth failed on %s: %s", conn.conn_id, result.ret_msg)
        self._send(conn, self._reply(conn, "auth", req_id, result.ok, result.ret_msg))

    def _on_subscription(self, conn: WsConnection, op: str, req_id: Any, args: Any) -> None:
        names = self._subscription_args(conn, op, req_id, args)
        if names is None:
            return
        if conn.api_key is None:
            self._send(conn, self._reply(conn, op, req_id, False, "Request not authorized"))
            return
        _, errors = update_topics(conn, op, names, parse_private_topic)
        ret_msg = "; ".join(e for _, e in errors)
        self._send(conn, self._reply(conn, op, req_id, not errors, ret_msg))
