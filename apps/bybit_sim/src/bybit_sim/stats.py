"""Counters the tests read through ``sim.stats``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SimStats:
    ws_connections_accepted: int = 0
    ws_connections_refused: int = 0
    ws_connections_dropped: int = 0
    ws_upgrades_black_holed: int = 0  # upgrade requests held unanswered (black_hole)
    ws_requests_delayed: int = 0  # subscribe/auth requests delayed (slow_ack)
    subscribe_requests: list[list[str]] = field(default_factory=list)
    pings_received: int = 0
    auth_attempts: int = 0
    auth_failures: int = 0
    malformed_frames_sent: int = 0
    rest_requests: Counter[str] = field(default_factory=Counter)
    rest_faults_injected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ws_connections_accepted": self.ws_connections_accepted,
            "ws_connections_refused": self.ws_connections_refused,
            "ws_connections_dropped": self.ws_connections_dropped,
            "ws_upgrades_black_holed": self.ws_upgrades_black_holed,
            "ws_requests_delayed": self.ws_requests_delayed,
            "subscribe_requests": [list(a) for a in self.subscribe_requests],
            "pings_received": self.pings_received,
            "auth_attempts": self.auth_attempts,
            "auth_failures": self.auth_failures,
            "malformed_frames_sent": self.malformed_frames_sent,
            "rest_requests": dict(self.rest_requests),
            "rest_faults_injected": self.rest_faults_injected,
        }
