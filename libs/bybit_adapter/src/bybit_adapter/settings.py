"""Connection settings; every timeout is finite and in seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """Heartbeat, watchdog and reconnect pacing of one WebSocket client."""

    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    # No data frame for this long on a subscribed connection means it is stalled.
    # None disables the watchdog (quiet private streams are normal).
    stall_timeout: float | None = 30.0
    connect_timeout: float = 10.0
    close_timeout: float = 1.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_connects_per_window: int = 100
    connect_window: float = 300.0
    connect_burst: int = 10
    # Private auth failures wait at least this long: a wrong key must never spin.
    auth_retry_min: float = 10.0
    # expires = now + this; a few seconds tolerates modest clock skew.
    auth_expires_ms: int = 10_000

    def __post_init__(self) -> None:
        positive = {
            "ping_interval": self.ping_interval,
            "pong_timeout": self.pong_timeout,
            "connect_timeout": self.connect_timeout,
            "close_timeout": self.close_timeout,
            "backoff_initial": self.backoff_initial,
            "backoff_max": self.backoff_max,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.stall_timeout is not None and self.stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be positive or None, got {self.stall_timeout}")


@dataclass(frozen=True, slots=True)
class RestSettings:
    """Timeouts and retry budget of the REST client."""

    timeout: float = 10.0
    recv_window_ms: int = 5000
    recv_window_step_ms: int = 2500
    max_retries: int = 4
    retry_initial: float = 0.5
    retry_max: float = 8.0
    # HTTP 403 is Bybit's IP ban: stop every call for this long.
    ban_pause: float = 600.0
    # A 10006 reset further away than this is not waited for inside one call.
    max_rate_limit_wait: float = 30.0
