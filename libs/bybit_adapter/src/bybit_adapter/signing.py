"""Bybit V5 request signatures (HMAC-SHA256, lowercase hex)."""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def websocket_auth_signature(secret: str, expires_ms: int) -> str:
    """Signature of the private-stream ``auth`` op: ``GET/realtime{expires}``."""
    return hmac_sha256_hex(secret, f"GET/realtime{expires_ms}")


def rest_signature(
    secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str
) -> str:
    """Signature of a REST call; ``payload`` is the query string exactly as sent."""
    return hmac_sha256_hex(secret, f"{timestamp_ms}{api_key}{recv_window_ms}{payload}")
