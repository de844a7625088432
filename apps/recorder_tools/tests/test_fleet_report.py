"""``recorder-report`` on one database written by a fleet: sessions of several recorder hosts.

The database is built row by row, as three recorders would have written it: ``r1`` and ``r2``
record BTCUSDT and ETHUSDT (redundantly), ``r3`` records SOLUSDT. ``r1`` lost its link for a
while; REST could refill only the end of that window (``partial``). The end-to-end version,
with real hosts, is ``apps/recorder/tests/test_fleet.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from recorder_tools.report import build_report
from recorder_tools.report.findings import NO_HOLES_IN_UNION
from recorder_tools.report.model import Report
from recorder_tools.report.tables import print_report
from recorder_tools.schema import GAPS, PUBLIC_TRADES, RUNS, TICKER_SNAPSHOTS
from testkit import by_run_ref, recorder_sqlite

T0 = 1_700_000_000_000
END = T0 + 60_000
NOW = END + 5_000
RUNS_OF = {
    "r1": "a1000000-0000-4000-8000-000000000001",
    "r2": "a2000000-0000-4000-8000-000000000002",
    "r3": "a3000000-0000-4000-8000-000000000003",
}
SYMBOLS_OF = {"r1": ["BTCUSDT", "ETHUSDT"], "r2": ["BTCUSDT", "ETHUSDT"], "r3": ["SOLUSDT"]}
#: r1's outage: start, end, and where REST's history began (still missing: [start, from])
CUT = (T0 + 20_000, T0 + 30_000, T0 + 28_000)
#: what r1's recorder noted on its run
R1_ERROR = "2 gap(s) REST could not fill (2 partial, 0 unfillable): data may be missing there"


class FleetDb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = recorder_sqlite(path)

    def insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            if "run_ref" in table.c:
                rows = by_run_ref(conn, rows)
            conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)

    def run(
        self,
        host: str,
        status: str = "completed",
        ended: int | None = END,
        error: str | None = None,
    ) -> None:
        config = {"category": "linear", "symbols": SYMBOLS_OF[host]}
        self.insert(
            RUNS,
            [
                {
                    "id": RUNS_OF[host],
                    "status": status,
                    "started_at_ms": T0 - 1_000,
                    "ended_at_ms": ended,
                    "config_json": json.dumps(config),
                    "host": host,
                    "pid": 4242,
                    "software_version": "0.1.0",
                    "output_dir": f"/srv/outputs/{host}-session",
                    "error": error,
                }
            ],
        )

    def recorded(
        self, host: str, start: int, end: int, skip: tuple[int, int] | None = None
    ) -> None:
        """A trade and a ticker per symbol every 500 ms in [start, end], except in ``skip``."""
        trades, tickers = [], []
        for symbol in SYMBOLS_OF[host]:
            for at in range(start, end + 1, 500):
                if skip is not None and skip[0] < at < skip[1]:
                    continue
                tickers.append(
                    {
                        "category": "linear",
                        "symbol": symbol,
                        "exchange_ts_ms": at,
                        "received_ts_ms": at + 3,
                        "frame_type": "snapshot",
                        "data": "{}",
                        "run_id": RUNS_OF[host],
                    }
                )
                trades.append(
                    {
                        "category": "linear",
                        "symbol": symbol,
                        "trade_id": f"{symbol}-{at}",
                        "trade_time_ms": at,
                        "side": "Buy",
                        "price": "1.5",
                        "size": "2",
                        "is_block_trade": False,
                        "exchange_ts_ms": at,
                        "received_ts_ms": at + 3,
                        "source": "ws",
                        "run_id": RUNS_OF[host],
                    }
                )
        self.insert(TICKER_SNAPSHOTS, tickers)
        self.insert(PUBLIC_TRADES, trades)

    def gap(
        self, host: str, symbol: str, window: tuple[int, int, int], stream: str = "publicTrade"
    ) -> None:
        start, end, recovered_from = window
        trades = stream == "publicTrade"  # ticker gaps are unfillable: no history
        self.insert(
            GAPS,
            [
                {
                    "run_id": RUNS_OF[host],
                    "stream": stream,
                    "category": "linear",
                    "symbol": symbol,
                    "start_ts_ms": start,
                    "end_ts_ms": end,
                    "cause": "pong_timeout",
                    "fill_status": "partial" if trades else "unfillable",
                    "rows_recovered": 4 if trades else 0,
                    "recovered_from_ts_ms": recovered_from if trades else None,
                    "detected_at_ms": start + 1_500,
                    "resolved_at_ms": end + 500,
                }
            ],
        )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetDb]:
    db = FleetDb(tmp_path / "fleet" / "recorder.db")
    db.run("r1", error=R1_ERROR)
    for host in ("r2", "r3"):
        db.run(host)
    # r2 and r3 first (they stored their trades first), then r1 around its cut
    db.recorded("r2", T0, END)
    db.recorded("r3", T0, END)
    db.recorded("r1", T0, END, skip=(CUT[0], CUT[2]))
    for symbol in SYMBOLS_OF["r1"]:
        db.gap("r1", symbol, CUT)
    yield db
    db.engine.dispose()


def report_of(db: FleetDb) -> Report:
    return build_report(db.path, now_ms=NOW)


def test_every_host_is_listed_with_its_health_from_the_database(fleet: FleetDb) -> None:
    report = report_of(fleet)
    hosts = {h.host: h for h in report.hosts}
    assert set(hosts) == {"r1", "r2", "r3"}
    assert {s.host for s in report.sessions} == {"r1", "r2", "r3"}
    for name, host in hosts.items():
        assert (host.sessions, host.running, host.ended, host.state) == (1, 0, 1, "ended")
        assert host.statuses == {"completed": 1}
        assert host.symbols == SYMBOLS_OF[name]
        assert host.last_row_ms == END + 3
        assert host.last_row_age_s == (NOW - END - 3) / 1000
    r1 = hosts["r1"]
    assert (r1.trade_gaps, r1.unfilled_trade_gaps, r1.covered_trade_gaps) == (2, 2, 2)
    assert (r1.missing_trade_gaps, r1.missing_s) == (0, 0.0)
    assert (r1.outages, r1.reconnects, r1.pong_timeouts) == (1, 1, 1)
    assert r1.trade_rows == 0  # r2 stored every trade first: the key kept one row each
    assert hosts["r2"].trade_rows == 2 * 121
    assert (hosts["r2"].outages, hosts["r2"].trade_gaps) == (0, 0)


def test_a_gap_another_host_recorded_is_covered_and_no_hole_is_reported(
    fleet: FleetDb,
) -> None:
    fleet.gap("r1", "BTCUSDT", CUT, stream="tickers")
    report = report_of(fleet)
    (tickers,) = [h for h in report.holes if h.stream == "tickers"]
    assert (tickers.fill_status, tickers.covered, tickers.covered_by_hosts) == (
        "unfillable",
        True,
        ["r2"],
    )
    gaps = [h for h in report.holes if h.kind == "gap" and h.stream == "publicTrade"]
    assert {(h.host, h.symbol, h.fill_status) for h in gaps} == {
        ("r1", "BTCUSDT", "partial"),
        ("r1", "ETHUSDT", "partial"),
    }
    for hole in gaps:
        # the row stays r1's own truth ...
        assert (hole.missing_from_ms, hole.missing_until_ms) == (CUT[0], CUT[2])
        # ... and the union says nothing is missing there
        assert hole.covered
        assert hole.uncovered == []
        assert hole.covered_by_runs == [RUNS_OF["r2"]]
        assert hole.covered_by_hosts == ["r2"]
    assert [(c.symbol, c.start_ms, c.end_ms, c.hosts) for c in report.coverage] == [
        ("BTCUSDT", T0 + 3, END + 3, ["r1", "r2"]),
        ("ETHUSDT", T0 + 3, END + 3, ["r1", "r2"]),
        ("SOLUSDT", T0 + 3, END + 3, ["r3"]),
    ]
    assert all(d.holes == 0 for d in report.days)
    assert report.findings[0] == (
        "3 recorder hosts: r1 (1 session(s), ended), r2 (1 session(s), ended), "
        "r3 (1 session(s), ended)"
    )
    assert any(
        line.startswith("2 trade gap(s) REST could not fill were recorded by another session")
        and "r1 BTCUSDT by r2" in line
        for line in report.findings
    )
    assert not any(line.startswith("trades may be missing") for line in report.findings)
    # r1's own note stays, with what the union makes of it
    assert f"fleet@a1000000: completed, but {R1_ERROR} (every one of them was recorded by r2)" in (
        report.findings
    )
    assert report.findings[-1] == NO_HOLES_IN_UNION


def test_a_window_every_recorder_missed_is_a_hole(fleet: FleetDb) -> None:
    """r2 also lost BTCUSDT for part of r1's window: that part is missing from the union."""
    fleet.gap("r2", "BTCUSDT", (T0 + 24_000, T0 + 26_000, T0 + 25_000))
    report = report_of(fleet)
    btc = next(h for h in report.holes if h.host == "r1" and h.symbol == "BTCUSDT")
    assert not btc.covered
    assert btc.uncovered == [(T0 + 24_000, T0 + 25_000)]
    assert btc.covered_by_hosts == ["r2"]  # the rest of the window
    r2_gap = next(h for h in report.holes if h.host == "r2")
    assert r2_gap.uncovered == [(T0 + 24_000, T0 + 25_000)]  # r1 was cut off then too
    eth = next(h for h in report.holes if h.host == "r1" and h.symbol == "ETHUSDT")
    assert eth.covered
    hosts = {h.host: h for h in report.hosts}
    assert (hosts["r1"].covered_trade_gaps, hosts["r1"].missing_trade_gaps) == (1, 1)
    assert hosts["r1"].missing_s == 1.0
    assert "trades may be missing in 2 trade gap(s) REST could not fill" in report.findings
    assert NO_HOLES_IN_UNION not in report.findings
    assert f"fleet@a1000000: completed, but {R1_ERROR}" in report.findings
    btc_cover = [(c.start_ms, c.end_ms) for c in report.coverage if c.symbol == "BTCUSDT"]
    assert btc_cover == [(T0 + 3, T0 + 24_000), (T0 + 25_000, END + 3)]


def test_a_running_host_that_stopped_writing_is_quiet(fleet: FleetDb, tmp_path: Path) -> None:
    db = FleetDb(tmp_path / "other" / "recorder.db")
    db.run("r3", status="running", ended=None)
    db.recorded("r3", T0, END)
    report = build_report(db.path, now_ms=END + 120_000)
    (host,) = report.hosts
    assert (host.host, host.state, host.running) == ("r3", "quiet", 1)
    assert any(
        line.startswith("host r3: a session is running but wrote no row for 120s")
        for line in report.findings
    )
    db.engine.dispose()
    assert report_of(fleet).hosts[2].state == "ended"


def test_the_text_report_shows_hosts_and_the_union(fleet: FleetDb) -> None:
    from rich.console import Console

    console = Console(width=250, record=True, color_system=None)
    print_report(report_of(fleet), console)
    text = console.export_text()
    assert "Recorder hosts (from the database" in text
    assert "covered by r2" in text
    assert "recorded by" in text
    assert "r1,r2" in text
