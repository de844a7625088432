"""One row of the report per session (``runs`` row), and its connection events."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from recorder.provenance import host_name, pid_alive
from recorder_tools.report.contents import DatabaseContents
from recorder_tools.report.model import (
    PUBLIC_STREAMS,
    RECONNECT_CAUSES,
    ConnectionEvents,
    SessionFacts,
)
from recorder_tools.schema import FILL_FILLED, NEVER_REFILLED, RUN_RUNNING, RunRow


def _saved_config(config_json: str) -> dict[str, Any]:
    """A run's saved configuration; empty when it cannot be read."""
    try:
        config = json.loads(config_json)
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def _config_summary(config: dict[str, Any]) -> tuple[str | None, list[str], str | None]:
    """(category, symbols, network host) from a run's saved configuration."""
    category = config.get("category")
    symbols = [str(s) for s in config.get("symbols") or []]
    network = config.get("network") or {}
    url = (
        network.get("public_ws_url") or network.get("rest_url")
        if isinstance(network, dict)
        else None
    )
    host = urlsplit(str(url)).netloc or None if url else None
    return (str(category) if category else None), symbols, host


def ticker_min_interval_ms(config: dict[str, Any]) -> int:
    """A run's ``tickers.min_interval_ms``; 0 (every push) for a run recorded before the
    setting existed, which kept every push."""
    tickers = config.get("tickers")
    value = tickers.get("min_interval_ms") if isinstance(tickers, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tickers_kept(min_interval_ms: int) -> str:
    """What a session kept of the ticker pushes, in words."""
    if min_interval_ms <= 0:
        return "every push"
    return f"sampled, at most one per {min_interval_ms} ms per symbol"


def session_facts(db: DatabaseContents, run: RunRow, now_ms: int) -> SessionFacts:
    config = _saved_config(run.config_json)
    category, symbols, host = _config_summary(config)
    min_interval_ms = ticker_min_interval_ms(config)
    trades = {k: v for k, v in db.trades.items() if k[0] == run.id}
    tickers = {k: v for k, v in db.tickers.items() if k[0] == run.id}
    symbols = list(dict.fromkeys([*symbols, *(k[2] for k in trades), *(k[2] for k in tickers)]))
    rows = [*trades.values(), *tickers.values()]
    # Rows, not the run's start and end, bound what was recorded: a session that could not
    # connect, or ended while reconnecting, writes no gap row for that time. (ended_at_ms of
    # an aborted run is when the abort was noticed, not when the process died.)
    recorded_from = min((r[1] for r in rows), default=None)
    recorded_until = max((r[2] for r in rows), default=None)
    process_gone = False
    if run.status == RUN_RUNNING:
        alive = run.host == host_name() and pid_alive(run.pid)
        process_gone = run.host == host_name() and not alive
        if alive and recorded_until is not None:
            recorded_until = now_ms
    end_for_duration = run.ended_at_ms
    if end_for_duration is None:
        end_for_duration = now_ms if not process_gone else recorded_until or run.started_at_ms
    return SessionFacts(
        folder=session_label(db, run),
        database=db.source.location,
        run_id=run.id,
        status=run.status,
        process_gone=process_gone,
        started_at_ms=run.started_at_ms,
        ended_at_ms=run.ended_at_ms,
        recorded_from_ms=recorded_from,
        recorded_until_ms=recorded_until,
        duration_s=(end_for_duration - run.started_at_ms) / 1000,
        category=category,
        symbols=symbols,
        network_host=host,
        trades=sum(v[0] for v in trades.values()),
        ticker_rows=sum(v[0] for v in tickers.values()),
        error=run.error,
        host=run.host,
        last_row_ms=max((r[2] for r in rows), default=None),
        ticker_min_interval_ms=min_interval_ms,
        tickers_kept=tickers_kept(min_interval_ms),
    )


def session_label(db: DatabaseContents, run: RunRow) -> str:
    """How a session is named: its folder for a SQLite file; for a server database, which
    holds many sessions of many hosts, ``host/folder name`` (the run's ``output_dir`` on that
    host), or ``host/run id`` when the run has no folder."""
    if db.source.path is not None:
        return db.source.label
    name = PurePath(run.output_dir).name if run.output_dir else ""
    return f"{run.host or '?'}/{name or run.id[:8]}"


def connection_events(db: DatabaseContents, run: RunRow, folder: str) -> ConnectionEvents:
    gaps = [g for g in db.gaps if g.run_id == run.id]

    def outages(*causes: str) -> int:
        # one outage writes a gap row per stream and symbol, all detected at the same moment
        return len(
            {(g.stream in PUBLIC_STREAMS, g.detected_at_ms) for g in gaps if g.cause in causes}
        )

    return ConnectionEvents(
        folder=folder,
        run_id=run.id,
        reconnects=outages(*RECONNECT_CAUSES),
        disconnects=outages("disconnect"),
        stalls=outages("stall"),
        pong_timeouts=outages("pong_timeout"),
        silences=len({(g.symbol, g.detected_at_ms) for g in gaps if g.cause == "silence"}),
        auth_failures=outages("auth"),
        rejected_frames=db.rejected.get(run.id, 0),
        gaps=len(gaps),
        unfilled_gaps=sum(
            1 for g in gaps if g.stream not in NEVER_REFILLED and g.fill_status != FILL_FILLED
        ),
        outages=len(
            {(g.stream in PUBLIC_STREAMS, g.detected_at_ms) for g in gaps if g.cause != "silence"}
        )
        + len({(g.symbol, g.detected_at_ms) for g in gaps if g.cause == "silence"}),
    )
