"""Helpers shared by the tests of every workspace member."""

from __future__ import annotations

import asyncio
import itertools
import json as _json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bybit_adapter import TradeEvent

_ids = itertools.count(1)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def make_trade(symbol: str = "BTCUSDT", trade_id: str | None = None, **kw: object) -> TradeEvent:
    n = next(_ids)
    fields: dict[str, object] = {
        "category": "linear",
        "symbol": symbol,
        "trade_id": trade_id or f"id-{n}",
        "trade_time_ms": 1_700_000_000_000 + n,
        "side": "Buy",
        "price": "28560.50",
        "size": "0.001",
        "tick_direction": "PlusTick",
        "is_block_trade": False,
        "is_rpi": False,
        "seq": n,
        "exchange_ts_ms": 1_700_000_000_000 + n,
        "received_ns": time.time_ns(),
    }
    fields.update(kw)
    return TradeEvent(**fields)  # type: ignore[arg-type]


# ---- end-to-end helpers: real console scripts as subprocesses ----------------


def script(name: str) -> str:
    """A console script of this environment (next to the interpreter)."""
    return str(Path(sys.executable).with_name(name))


def wait_sync(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class SimProcess:
    """``bybit-sim`` on a free port, as a subprocess."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [script("bybit-sim"), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"listening on (http://[\d.]+:(\d+))", line)
            if match:
                self.rest_url = match.group(1)
                self.port = int(match.group(2))
                break
            if not line and self.proc.poll() is not None:
                break
        else:
            self.stop()
            raise AssertionError(f"bybit-sim did not start: {line!r}")
        if not hasattr(self, "port"):
            raise AssertionError(f"bybit-sim did not start: {line!r}")

    def network_overrides(self) -> list[str]:
        base = f"ws://127.0.0.1:{self.port}"
        return [
            "network=local",
            f"network.rest_url={self.rest_url}",
            f"network.public_ws_url='{base}/v5/public/{{category}}'",
            f"network.private_ws_url={base}/v5/private",
        ]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.rest_url + path, timeout=10) as reply:
            return _json.loads(reply.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.rest_url + path,
            data=_json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return _json.loads(reply.read())

    def truth_trades(self, symbol: str, category: str = "linear") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            f"/sim/ground-truth/trades?category={category}&symbol={symbol}"
        )
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def db_count(db: Path, sql: str) -> int:
    """A count from a session DB, 0 while it does not exist yet."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return list(conn.execute(sql).fetchall())
