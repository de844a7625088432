"""Signature checks for the private WebSocket and signed REST endpoints.

WS:   hex(HMAC_SHA256(secret, "GET/realtime" + str(expires)))  (research section 4)
REST: hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + raw_query_string))
      with timestamp in [server - recv_window, server + 1000)   (research section 6.7)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Texts of real failures (research section 4): "Params Error" for an expired ``expires``.
WS_PARAMS_ERROR = "Params Error"
# UNVERIFIED: research has no captured frame for a wrong key or a wrong signature on the
# private stream; these texts are this simulator's choice.
WS_INVALID_KEY = "Invalid apikey"
WS_BAD_SIGNATURE = "Signature verification failed"


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ws_signature(secret: str, expires: int | str) -> str:
    return sign(secret, f"GET/realtime{expires}")


def rest_signature(secret: str, timestamp: str, api_key: str, recv_window: str, query: str) -> str:
    return sign(secret, f"{timestamp}{api_key}{recv_window}{query}")


@dataclass(frozen=True, slots=True)
class WsAuthResult:
    ok: bool
    ret_msg: str
    api_key: str | None = None


def verify_ws_auth(args: Any, api_keys: Mapping[str, str], now: int) -> WsAuthResult:
    """Check ``{"op":"auth","args":[key, expires, signature]}``."""
    if not isinstance(args, Sequence) or isinstance(args, str) or len(args) != 3:
        return WsAuthResult(False, WS_PARAMS_ERROR)
    key, expires, signature = args
    if not isinstance(key, str) or not isinstance(signature, str):
        return WsAuthResult(False, WS_PARAMS_ERROR)
    if isinstance(expires, bool) or not isinstance(expires, int | str):
        return WsAuthResult(False, WS_PARAMS_ERROR)
    expires_text = str(expires)
    if not expires_text.isdigit() or int(expires_text) <= now:
        return WsAuthResult(False, WS_PARAMS_ERROR)
    secret = api_keys.get(key)
    if secret is None:
        return WsAuthResult(False, WS_INVALID_KEY)
    if not hmac.compare_digest(ws_signature(secret, expires_text), signature.lower()):
        return WsAuthResult(False, WS_BAD_SIGNATURE)
    return WsAuthResult(True, "", key)


@dataclass(frozen=True, slots=True)
class RestAuthError:
    ret_code: int
    ret_msg: str


def verify_rest(
    headers: Mapping[str, str], raw_query: str, api_keys: Mapping[str, str], now: int
) -> str | RestAuthError:
    """Return the API key of a correctly signed request, or the Bybit error to reply with.

    Order of checks: key (10003), timestamp window (10002), signature (10004).
    """
    key = headers.get("X-BAPI-API-KEY", "")
    secret = api_keys.get(key) if key else None
    if secret is None:
        return RestAuthError(10003, "API key is invalid.")
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    recv_window = headers.get("X-BAPI-RECV-WINDOW", "5000")
    window = int(recv_window) if recv_window.isdigit() else 5000
    if not timestamp.isdigit() or not now - window <= int(timestamp) < now + 1000:
        return RestAuthError(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{now}],recv_window[{recv_window}]",
        )
    expected = rest_signature(secret, timestamp, key, recv_window, raw_query)
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "").lower()):
        return RestAuthError(
            10004, f"error sign! origin_string[{timestamp}{key}{recv_window}{raw_query}]"
        )
    return key
