"""PrivateWebSocketClient: auth, subscribe after the ack, re-auth on reconnect."""

from __future__ import annotations

import time
from typing import Any

from bybit_adapter import BybitAuthError, Outage, PrivateWebSocketClient, WebSocketSettings
from bybit_sim import BybitSimulator
from testkit import wait_until

FAST = WebSocketSettings(
    ping_interval=0.3,
    pong_timeout=0.5,
    stall_timeout=None,
    backoff_initial=0.05,
    backoff_max=0.3,
    auth_retry_min=0.5,
)


def client_for(
    sim: BybitSimulator,
    key: str,
    secret: str,
    messages: list[dict[str, Any]],
    errors: list[BybitAuthError],
    outages: list[Outage] | None = None,
    **kw: Any,
) -> PrivateWebSocketClient:
    return PrivateWebSocketClient(
        sim.private_ws_url,
        key,
        secret,
        on_message=lambda m, ns: messages.append(m),
        on_auth_error=errors.append,
        on_outage=(outages.append if outages is not None else None),
        settings=FAST,
        **kw,
    )


async def test_auth_then_subscribe_then_private_events_flow(sim: BybitSimulator) -> None:
    messages: list[dict[str, Any]] = []
    errors: list[BybitAuthError] = []
    client = client_for(sim, "sim-key", "sim-secret", messages, errors)
    await client.start()
    try:
        await wait_until(lambda: client.authenticated)
        await wait_until(
            lambda: {"execution", "order"} <= {m["topic"] for m in messages}, timeout=15
        )
        assert errors == []
        assert sim.stats.auth_failures == 0
    finally:
        await client.stop()


async def test_wrong_key_fails_clearly_and_backs_off(sim: BybitSimulator) -> None:
    messages: list[dict[str, Any]] = []
    errors: list[BybitAuthError] = []
    client = client_for(sim, "wrong-key", "sim-secret", messages, errors)
    await client.start()
    try:
        await wait_until(lambda: len(errors) >= 2, timeout=10)
        assert errors[0].kind == "invalid_key"
        assert "sim-secret" not in str(errors[0])
        assert not client.authenticated
        # at least auth_retry_min between attempts: no spin
        started = time.monotonic()
        count = len(errors)
        await wait_until(lambda: len(errors) > count, timeout=10)
        assert time.monotonic() - started >= 0.4
        assert messages == []
    finally:
        await client.stop()


async def test_expired_signature_is_reported_as_expired(sim: BybitSimulator) -> None:
    errors: list[BybitAuthError] = []
    skewed = lambda: time.time_ns() // 1_000_000 - 60_000  # noqa: E731 - a clock 60 s behind
    client = client_for(sim, "sim-key", "sim-secret", [], errors, clock_ms=skewed)
    await client.start()
    try:
        await wait_until(lambda: len(errors) >= 1)
        assert errors[0].kind == "expired"
    finally:
        await client.stop()


async def test_reauthenticates_after_a_drop_and_reports_the_outage(sim: BybitSimulator) -> None:
    messages: list[dict[str, Any]] = []
    errors: list[BybitAuthError] = []
    outages: list[Outage] = []
    client = client_for(sim, "sim-key", "sim-secret", messages, errors, outages)
    await client.start()
    try:
        await wait_until(lambda: client.authenticated)
        attempts = sim.stats.auth_attempts
        sim.faults.drop_connections()
        await wait_until(lambda: len(outages) == 1)
        assert sim.stats.auth_attempts == attempts + 1
        assert client.authenticated
        assert outages[0].stream == "private"
    finally:
        await client.stop()
