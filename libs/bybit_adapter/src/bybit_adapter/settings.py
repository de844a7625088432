"""Connection settings; every wait is finite and in seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """Bounds, heartbeat, outage detection and reconnect pacing of one stream."""

    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    #: No data frame for this long opens an outage (for the whole connection, or for
    #: one symbol while the others flow). None: no detection from the data (private
    #: streams are quiet by nature; pongs prove them alive).
    silence_timeout: float | None = 5.0
    #: No data frame for this long: the connection is replaced. None: never for silence.
    stall_timeout: float | None = 10.0
    #: TCP connect (with TLS) to the server.
    connect_timeout: float = 10.0
    #: The whole opening handshake: TCP, TLS and the WebSocket upgrade.
    open_timeout: float = 10.0
    #: A subscribe or auth request without its reply (and without data) for this long
    #: ends the connection.
    ack_timeout: float = 10.0
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
            "open_timeout": self.open_timeout,
            "ack_timeout": self.ack_timeout,
            "close_timeout": self.close_timeout,
            "backoff_initial": self.backoff_initial,
            "backoff_max": self.backoff_max,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name, optional in (
            ("silence_timeout", self.silence_timeout),
            ("stall_timeout", self.stall_timeout),
        ):
            if optional is not None and optional <= 0:
                raise ValueError(f"{name} must be positive or None, got {optional}")

    @property
    def tick(self) -> float:
        """How often the keepalive task looks at the clock."""
        bounds = [self.ping_interval, self.pong_timeout, self.ack_timeout]
        bounds += [t for t in (self.silence_timeout, self.stall_timeout) if t is not None]
        return max(0.02, min(0.5, min(bounds) / 5))


@dataclass(frozen=True, slots=True)
class RestSettings:
    """Timeouts and retry budget of the REST client."""

    timeout: float = 10.0
    #: TCP connect (with TLS) to the server, within ``timeout``
    connect_timeout: float = 5.0
    recv_window_ms: int = 5000
    recv_window_step_ms: int = 2500
    max_retries: int = 4
    retry_initial: float = 0.5
    retry_max: float = 8.0
    # HTTP 403 is Bybit's IP ban: stop every call for this long.
    ban_pause: float = 600.0
    # A 10006 reset further away than this is not waited for inside one call.
    max_rate_limit_wait: float = 30.0
