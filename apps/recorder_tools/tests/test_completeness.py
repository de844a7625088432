"""The completeness checker (``recorder_tools.check`` / ``recorder-check``)."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bybit_sim import BybitSimulator
from recorder_tools.check import (
    CompletenessError,
    TruthTrade,
    check_completeness,
    is_archive_source,
    load_truth,
    symbols_in_db,
)
from recorder_tools.schema import GAPS, PUBLIC_TRADES, RUNS
from testkit import by_run_ref, recorder_sqlite

T0 = 1_700_000_000_000
RUN_A = "00000000-0000-4000-8000-00000000000a"
RUN_B = "00000000-0000-4000-8000-00000000000b"
CHECK = Path(sys.executable).with_name("recorder-check")


# ---- helpers --------------------------------------------------------------------------


def truth(n: int, symbol: str = "BTCUSDT", *, step: int = 10) -> list[TruthTrade]:
    """``n`` trades at T0, T0+step, ...; ids ``<symbol>-<i>``."""
    return [
        TruthTrade(
            category="linear",
            symbol=symbol,
            trade_id=f"{symbol}-{i}",
            time_ms=T0 + i * step,
            price=f"2856{i % 10}.50",
            size="0.001",
            side="Buy" if i % 2 else "Sell",
        )
        for i in range(n)
    ]


def trade_row(t: TruthTrade, run_id: str | None = RUN_A, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "category": t.category,
        "symbol": t.symbol,
        "trade_id": t.trade_id,
        "trade_time_ms": t.time_ms,
        "side": t.side,
        "price": t.price,
        "size": t.size,
        "tick_direction": "PlusTick",
        "is_block_trade": False,
        "is_rpi": None,
        "seq": None,
        "exchange_ts_ms": t.time_ms + 2,
        "received_ts_ms": t.time_ms + 5,
        "source": "ws",
        "run_id": run_id,
    }
    row.update(changes)
    return row


def run_row(run_id: str, started: int, ended: int | None, symbols: list[str]) -> dict[str, Any]:
    return {
        "id": run_id,
        "status": "completed" if ended is not None else "running",
        "started_at_ms": started,
        "ended_at_ms": ended,
        "config_json": json.dumps({"category": "linear", "symbols": symbols}),
        "host": "test-host",
        "pid": 1,
        "software_version": "0.1.0",
    }


def gap_row(
    start: int,
    end: int,
    fill_status: str,
    recovered_from: int | None = None,
    symbol: str = "BTCUSDT",
    stream: str = "publicTrade",
) -> dict[str, Any]:
    return {
        "run_id": RUN_A,
        "stream": stream,
        "category": "linear",
        "symbol": symbol,
        "start_ts_ms": start,
        "end_ts_ms": end,
        "cause": "disconnect",
        "fill_status": fill_status,
        "rows_recovered": 0,
        "recovered_from_ts_ms": recovered_from,
        "detail": None,
        "detected_at_ms": end + 100,
        "resolved_at_ms": end + 200,
    }


class SessionDb:
    """A recorder database in tmp_path: grid_db's schema, rows written by column name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = recorder_sqlite(path)
        self.runs([run_row(RUN_A, T0 - 1000, T0 + 100_000, ["BTCUSDT"])])

    def runs(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(RUNS.insert(), rows)

    def trades(self, rows: list[dict[str, Any]]) -> int:
        """Stores ``rows`` as the recorder does (a trade already stored is skipped); how many."""
        with self.engine.begin() as conn:
            return conn.execute(
                sqlite_insert(PUBLIC_TRADES).on_conflict_do_nothing(), by_run_ref(conn, rows)
            ).rowcount

    def gaps(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(GAPS.insert(), rows)

    def store(self, trades: list[TruthTrade], run_id: str = RUN_A) -> None:
        assert self.trades([trade_row(t, run_id) for t in trades]) == len(trades)


@pytest.fixture
def session_db(tmp_path: Path) -> Iterator[SessionDb]:
    db = SessionDb(tmp_path / "session" / "recorder.db")
    yield db
    db.engine.dispose()


def write_jsonl(path: Path, trades: list[TruthTrade]) -> Path:
    path.write_text(
        "".join(json.dumps(dataclasses.asdict(t)) + "\n" for t in trades),
        encoding="utf-8",
    )
    return path


def archive_line(t: TruthTrade, *, price: str | None = None, size: str | None = None) -> str:
    seconds = f"{t.time_ms // 1000}.{t.time_ms % 1000:03d}4"  # archive: seconds, 4 decimals
    return (
        f"{seconds},{t.symbol},{t.side},{size or t.size},{price or t.price},PlusTick,"
        f"{t.trade_id},2856050000,0.001,28.5605\n"
    )


ARCHIVE_HEADER = (
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
    "foreignNotional\n"
)


def write_archive(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(ARCHIVE_HEADER + "".join(lines))
    return path


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), *args], capture_output=True, text=True, timeout=60, check=False
    )


# ---- the check ------------------------------------------------------------------------


def test_all_present_is_ok(session_db: SessionDb) -> None:
    trades = truth(20)
    session_db.store(trades)
    report = check_completeness(session_db.path, trades)
    assert report.ok
    btc = report.symbol("BTCUSDT")
    assert btc.counts() == {
        "expected": 20,
        "present": 20,
        "missing_excused": 0,
        "violations": 0,
        "duplicates": 0,
        "mismatches": 0,
        "unexpected": 0,
        "stored_rows": 20,
        "covered_by_other_runs": 0,
    }
    assert "OK" in report.format_text()
    assert report.to_dict()["ok"] is True
    json.dumps(report.to_dict())  # JSON-ready


def test_a_session_folder_is_accepted(session_db: SessionDb) -> None:
    trades = truth(5)
    session_db.store(trades)
    assert check_completeness(session_db.path.parent, trades).ok


def test_a_missing_trade_outside_gaps_is_a_violation(session_db: SessionDb) -> None:
    trades = truth(10)
    session_db.store([t for t in trades if t.trade_id != "BTCUSDT-4"])
    report = check_completeness(session_db.path, trades)
    assert not report.ok
    btc = report.symbol("BTCUSDT")
    assert [(m.trade_id, m.time_ms, m.gap_id) for m in btc.violations] == [
        ("BTCUSDT-4", T0 + 40, None)
    ]
    assert (btc.present, btc.missing_excused) == (9, 0)
    text_out = report.format_text()
    assert "FAILED" in text_out
    assert f"trade_id=BTCUSDT-4 time_ms={T0 + 40}" in text_out


def test_a_missing_trade_inside_a_partial_gap_is_excused_up_to_recovered_from(
    session_db: SessionDb,
) -> None:
    trades = truth(10)  # T0, T0+10, ..., T0+90
    lost = {"BTCUSDT-3", "BTCUSDT-4", "BTCUSDT-5", "BTCUSDT-6"}
    session_db.store([t for t in trades if t.trade_id not in lost])
    # Still missing: [T0+30, T0+50], both ends included; REST covered (T0+50, T0+80].
    session_db.gaps([gap_row(T0 + 30, T0 + 80, "partial", recovered_from=T0 + 50)])
    report = check_completeness(session_db.path, trades)
    btc = report.symbol("BTCUSDT")
    assert sorted(m.trade_id for m in btc.excused) == ["BTCUSDT-3", "BTCUSDT-4", "BTCUSDT-5"]
    assert {m.gap_fill_status for m in btc.excused} == {"partial"}
    assert all(m.gap_id is not None for m in btc.excused)
    # T0+60 is after recovered_from: REST should have brought it back.
    assert [(m.trade_id, m.time_ms) for m in btc.violations] == [("BTCUSDT-6", T0 + 60)]
    assert not report.ok


def test_a_partial_gap_alone_excuses_its_inclusive_bounds(session_db: SessionDb) -> None:
    trades = truth(10)
    lost = {"BTCUSDT-3", "BTCUSDT-5"}  # exactly at start_ts_ms and at recovered_from_ts_ms
    session_db.store([t for t in trades if t.trade_id not in lost])
    session_db.gaps([gap_row(T0 + 30, T0 + 80, "partial", recovered_from=T0 + 50)])
    report = check_completeness(session_db.path, trades)
    assert report.ok
    assert report.symbol("BTCUSDT").missing_excused == 2


def test_an_unfillable_gap_excuses_its_whole_window(session_db: SessionDb) -> None:
    trades = truth(10)
    lost = {"BTCUSDT-2", "BTCUSDT-5", "BTCUSDT-7"}
    session_db.store([t for t in trades if t.trade_id not in lost])
    session_db.gaps([gap_row(T0 + 20, T0 + 70, "unfillable")])
    report = check_completeness(session_db.path, trades)
    assert report.ok
    btc = report.symbol("BTCUSDT")
    assert btc.missing_excused == 3
    assert {m.gap_fill_status for m in btc.excused} == {"unfillable"}


@pytest.mark.parametrize(
    "gap",
    [
        gap_row(T0, T0 + 90, "filled"),  # filled: nothing may be missing
        gap_row(T0, T0 + 90, "unfillable", symbol="ETHUSDT"),  # another symbol
        gap_row(T0, T0 + 90, "unfillable", stream="tickers"),  # another stream
        gap_row(T0, T0 + 39, "unfillable"),  # ends before the trade
    ],
    ids=["filled", "other-symbol", "other-stream", "too-early"],
)
def test_gaps_that_do_not_excuse(session_db: SessionDb, gap: dict[str, Any]) -> None:
    trades = truth(10)
    session_db.store([t for t in trades if t.trade_id != "BTCUSDT-4"])
    session_db.gaps([gap])
    report = check_completeness(session_db.path, trades)
    assert [m.trade_id for m in report.symbol("BTCUSDT").violations] == ["BTCUSDT-4"]


def test_value_mismatches_are_reported(session_db: SessionDb) -> None:
    trades = truth(6)
    rows = [trade_row(t) for t in trades]
    rows[1]["price"] = "28561.5"  # "28561.50" in the truth: a different string
    rows[2]["size"] = "0.002"
    rows[3]["side"] = "Sell" if trades[3].side == "Buy" else "Buy"
    rows[4]["trade_time_ms"] = trades[4].time_ms + 1
    session_db.trades(rows)
    report = check_completeness(session_db.path, trades)
    assert not report.ok
    btc = report.symbol("BTCUSDT")
    assert btc.present == 6
    assert sorted((m.trade_id, m.field, m.expected, m.stored) for m in btc.mismatches) == [
        ("BTCUSDT-1", "price", "28561.50", "28561.5"),
        ("BTCUSDT-2", "size", "0.001", "0.002"),
        ("BTCUSDT-3", "side", trades[3].side, rows[3]["side"]),
        ("BTCUSDT-4", "trade_time_ms", trades[4].time_ms, trades[4].time_ms + 1),
    ]
    assert "mismatch: 4" in report.format_text()


def test_decimal_comparison_for_archive_truth(session_db: SessionDb) -> None:
    trades = truth(3)
    rows = [trade_row(t) for t in trades]
    rows[0]["price"] = "28560.5"  # same value as "28560.50"
    rows[1]["size"] = "0.00100"
    rows[2]["trade_time_ms"] = trades[2].time_ms + 1  # within the archive tolerance
    session_db.trades(rows)
    assert not check_completeness(session_db.path, trades).ok
    report = check_completeness(session_db.path, trades, exact_strings=False, time_tolerance_ms=1)
    assert report.ok
    assert report.exact_strings is False
    assert "decimal values" in report.format_text()
    rows_wrong = trade_row(truth(4)[3], price="1")
    session_db.trades([rows_wrong])
    report = check_completeness(session_db.path, truth(4), exact_strings=False, time_tolerance_ms=1)
    assert [m.field for m in report.symbol("BTCUSDT").mismatches] == ["price"]


def test_the_same_trade_seen_by_two_runs_is_one_row(session_db: SessionDb) -> None:
    session_db.runs([run_row(RUN_B, T0 - 500, T0 + 100_000, ["BTCUSDT"])])
    trades = truth(5)
    session_db.store(trades, RUN_A)
    assert session_db.trades([trade_row(t, RUN_B) for t in trades]) == 0  # unique key
    report = check_completeness(session_db.path, trades, run_id=RUN_B)
    assert report.ok
    assert report.symbol("BTCUSDT").duplicates == []
    assert report.symbol("BTCUSDT").present == 5


def test_duplicate_rows_are_reported(session_db: SessionDb) -> None:
    """A database whose table lost its unique key (e.g. copied by hand) is still checked."""
    with session_db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE pt_copy AS SELECT * FROM public_trades"))
        conn.execute(text("DROP TABLE public_trades"))
        conn.execute(text("ALTER TABLE pt_copy RENAME TO public_trades"))
    trades = truth(4)
    rows = [trade_row(t) for t in trades] + [trade_row(trades[2], RUN_B)]
    with session_db.engine.begin() as conn:
        conn.execute(PUBLIC_TRADES.insert(), by_run_ref(conn, rows))
    report = check_completeness(session_db.path, trades)
    assert not report.ok
    (duplicate,) = report.symbol("BTCUSDT").duplicates
    assert (duplicate.trade_id, duplicate.rows) == ("BTCUSDT-2", 2)
    assert sorted(map(str, duplicate.run_ids)) == [RUN_A, RUN_B]


def test_unexpected_rows_are_listed_but_do_not_fail(session_db: SessionDb) -> None:
    trades = truth(5)
    session_db.store(trades)
    session_db.trades([trade_row(trades[2], trade_id="not-in-truth")])
    report = check_completeness(session_db.path, trades)
    assert report.ok
    assert report.symbol("BTCUSDT").unexpected == ["not-in-truth"]


# ---- a fleet: several runs (recorders on several hosts) in one database --------------


def test_a_trade_one_run_missed_and_another_stored_is_covered(session_db: SessionDb) -> None:
    """Redundant recorders: A's partial gap leaves T0+5000..T0+10000 unrecovered, B stored
    every trade of it; the union is complete, and the trades B stored there are counted."""
    session_db.runs([run_row(RUN_B, T0 - 500, T0 + 100_000, ["BTCUSDT"])])
    trades = truth(20, step=1000)
    session_db.store([t for t in trades if not 6 <= int(t.trade_id.split("-")[1]) <= 9], RUN_A)
    session_db.gaps([gap_row(T0 + 5000, T0 + 12000, "partial", recovered_from=T0 + 10000)])
    assert session_db.trades([trade_row(t, RUN_B) for t in trades]) == 4  # the rest: A's rows
    report = check_completeness(session_db.path, trades)
    assert report.ok, report.format_text()
    btc = report.symbol("BTCUSDT")
    assert (btc.present, btc.missing_excused) == (20, 0)
    # T0+6000..T0+9000; T0+5000 and T0+10000 lie on the window's ends but A stored them
    assert btc.covered_by_other_runs == 4
    assert report.totals()["covered_by_other_runs"] == 4
    assert "covered_by_other_runs=4" in report.format_text()


def test_a_gap_does_not_excuse_a_trade_another_run_recorded_without_a_gap(
    session_db: SessionDb,
) -> None:
    """A missed T0+6000..T0+9000 (its gap says so), but B was recording then without a gap:
    B should have stored them, so they are violations; once B's own gap covers them too,
    every recorder missed them and they are excused."""
    session_db.runs([run_row(RUN_B, T0 - 500, T0 + 100_000, ["BTCUSDT"])])
    trades = truth(20, step=1000)
    lost = {f"BTCUSDT-{i}" for i in range(6, 10)}
    session_db.store([t for t in trades if t.trade_id not in lost], RUN_B)  # B saw them first
    session_db.gaps([gap_row(T0 + 5000, T0 + 12000, "partial", recovered_from=T0 + 10000)])
    report = check_completeness(session_db.path, trades)
    btc = report.symbol("BTCUSDT")
    assert sorted(m.trade_id for m in btc.violations) == sorted(lost)
    assert btc.missing_excused == 0
    assert any("another run recorded the symbol without a gap" in n for n in btc.notes)
    assert not report.ok
    session_db.gaps([{**gap_row(T0 + 5500, T0 + 9500, "unfillable"), "run_id": RUN_B}])
    both = check_completeness(session_db.path, trades)
    assert both.ok, both.format_text()
    assert both.symbol("BTCUSDT").missing_excused == 4


# ---- the window -----------------------------------------------------------------------


def test_the_default_window_is_first_to_last_stored_trade(session_db: SessionDb) -> None:
    trades = truth(10)  # T0 .. T0+90
    session_db.store(trades[2:8])  # T0+20 .. T0+70
    report = check_completeness(session_db.path, trades)
    btc = report.symbol("BTCUSDT")
    assert (btc.window.since_ms, btc.window.until_ms) == (T0 + 20, T0 + 70)
    assert btc.window.source == "trades"
    assert btc.expected == 6
    assert report.ok
    assert f"{T0 + 20}..{T0 + 70}" in report.format_text()


def test_an_explicit_window_overrides_the_defaults(session_db: SessionDb) -> None:
    trades = truth(10)
    session_db.store(trades[2:8])
    report = check_completeness(session_db.path, trades, since_ms=T0, until_ms=T0 + 90)
    btc = report.symbol("BTCUSDT")
    assert btc.window.source == "explicit"
    assert sorted(m.trade_id for m in btc.violations) == [
        "BTCUSDT-0",
        "BTCUSDT-1",
        "BTCUSDT-8",
        "BTCUSDT-9",
    ]
    only_since = check_completeness(session_db.path, trades, since_ms=T0 + 10)
    window = only_since.symbol("BTCUSDT").window
    assert (window.since_ms, window.until_ms, window.source) == (
        T0 + 10,
        T0 + 70,
        "explicit+trades",
    )


def test_a_symbol_without_stored_trades_uses_the_runs_window(session_db: SessionDb) -> None:
    btc, eth = truth(5), truth(6, "ETHUSDT")
    session_db.store(btc)
    late = TruthTrade("linear", "ETHUSDT", "eth-late", T0 + 500_000, "1", "1", "Buy")
    report = check_completeness(session_db.path, [*btc, *eth, late])
    eth_report = report.symbol("ETHUSDT")
    assert (eth_report.window.since_ms, eth_report.window.until_ms) == (T0 - 1000, T0 + 100_000)
    assert eth_report.window.source == "runs"
    assert len(eth_report.violations) == 6  # all of them, but not the one after the run
    assert report.symbol("BTCUSDT").ok
    assert not report.ok
    session_db.gaps([gap_row(T0 - 1000, T0 + 100_000, "unfillable", symbol="ETHUSDT")])
    assert check_completeness(session_db.path, [*btc, *eth]).ok


def test_only_symbols_in_the_truth_are_checked(session_db: SessionDb) -> None:
    session_db.store(truth(3, "ETHUSDT"))
    btc = truth(3)
    session_db.store(btc)
    report = check_completeness(session_db.path, btc)
    assert [(r.category, r.symbol) for r in report.symbols] == [("linear", "BTCUSDT")]


def test_run_id_narrows_the_default_window(session_db: SessionDb) -> None:
    session_db.runs([run_row(RUN_B, T0 + 200, T0 + 100_000, ["BTCUSDT"])])
    trades = truth(10)
    session_db.store(trades[:3], RUN_A)
    session_db.store(trades[5:], RUN_B)
    whole = check_completeness(session_db.path, trades)
    assert len(whole.symbol("BTCUSDT").violations) == 2
    report_b = check_completeness(session_db.path, trades, run_id=RUN_B)
    assert report_b.ok
    assert report_b.symbol("BTCUSDT").window.since_ms == T0 + 50


# ---- truth sources --------------------------------------------------------------------


def test_jsonl_truth(tmp_path: Path, session_db: SessionDb) -> None:
    trades = [*truth(3), *truth(2, "ETHUSDT")]
    path = write_jsonl(tmp_path / "truth.jsonl", trades)
    assert load_truth(str(path)) == trades
    assert load_truth(str(path), symbols=["ETHUSDT"]) == trades[3:]
    # bybit-sim's ground-truth items: extra keys, and the category may be left out.
    sim_item = {
        "symbol": "BTCUSDT",
        "trade_id": "x-1",
        "time_ms": T0,
        "side": "Buy",
        "price": "1.0",
        "size": "2",
        "tick_direction": "PlusTick",
        "is_block_trade": False,
        "seq": 5,
    }
    path.write_text(json.dumps(sim_item) + "\n\n", encoding="utf-8")
    assert load_truth(str(path), category="inverse") == [
        TruthTrade("inverse", "BTCUSDT", "x-1", T0, "1.0", "2", "Buy")
    ]
    path.write_text('{"symbol": "BTCUSDT"}\n', encoding="utf-8")
    with pytest.raises(CompletenessError, match=r"truth.jsonl:1: 'time_ms'"):
        load_truth(str(path))
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(CompletenessError, match="not a JSON object"):
        load_truth(str(path))


def test_archive_csv_gz_truth(tmp_path: Path) -> None:
    trades = truth(3)
    path = write_archive(
        tmp_path / "BTCUSDT2023-11-14.csv.gz",
        [archive_line(t, price=t.price.rstrip("0")) for t in trades],
    )
    assert is_archive_source(str(path))
    loaded = load_truth(str(path), category="linear")
    assert [(t.trade_id, t.symbol, t.side, t.size) for t in loaded] == [
        (t.trade_id, t.symbol, t.side, t.size) for t in trades
    ]
    assert [t.price for t in loaded] == [t.price.rstrip("0") for t in trades]  # as in the file
    # "1700000000.0004" seconds -> round(1700000000000.4) ms
    assert [t.time_ms for t in loaded] == [t.time_ms for t in trades]
    plain = tmp_path / "plain.csv"
    plain.write_text("\ufeff" + ARCHIVE_HEADER + archive_line(trades[0]), encoding="utf-8")
    assert load_truth(str(plain))[0].trade_id == trades[0].trade_id


def test_unreadable_archives_are_refused_in_one_line(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,timestamp,price,volume,side\n1,1,2,3,buy\n", encoding="utf-8")
    with pytest.raises(CompletenessError, match="not a Bybit trading-history archive"):
        load_truth(str(wrong))
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"this is not gzip")
    with pytest.raises(CompletenessError, match="cannot read"):
        load_truth(str(broken))
    bad_row = write_archive(tmp_path / "bad.csv.gz", ["x,BTCUSDT,Buy,1,2,PlusTick,id,1,1,1\n"])
    with pytest.raises(CompletenessError, match="bad timestamp"):
        load_truth(str(bad_row))
    with pytest.raises(CompletenessError, match="does not exist"):
        load_truth(str(tmp_path / "absent.csv.gz"))


def test_simulator_source_needs_symbols_and_a_reachable_server() -> None:
    with pytest.raises(CompletenessError, match="symbols are required"):
        load_truth("http://127.0.0.1:9")
    with pytest.raises(CompletenessError, match="unreachable"):
        load_truth("http://127.0.0.1:9", symbols=["BTCUSDT"])


def test_symbols_in_db_include_configured_symbols(session_db: SessionDb) -> None:
    session_db.runs([run_row(RUN_B, T0, None, ["BTCUSDT", "SOLUSDT"])])
    session_db.store(truth(2, "ETHUSDT"))
    assert symbols_in_db(session_db.path, "linear") == ["ETHUSDT", "BTCUSDT", "SOLUSDT"]
    assert symbols_in_db(session_db.path, "spot") == []


def test_a_missing_or_foreign_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompletenessError, match="no recorder database"):
        check_completeness(tmp_path / "absent.db", truth(1))
    assert not (tmp_path / "absent.db").exists()  # never created
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    with pytest.raises(CompletenessError, match="not a recorder database"):
        check_completeness(other, truth(1))


# ---- the console script ---------------------------------------------------------------


def test_cli_exit_codes_and_json(tmp_path: Path, session_db: SessionDb) -> None:
    trades = truth(10)
    session_db.store(trades)
    good = write_jsonl(tmp_path / "good.jsonl", trades)
    result = run_check(str(session_db.path.parent), "--truth", str(good))
    assert result.returncode == 0, result.stderr
    assert "linear BTCUSDT: OK" in result.stdout

    extra = TruthTrade("linear", "BTCUSDT", "lost-1", T0 + 45, "1", "1", "Buy")
    bad = write_jsonl(tmp_path / "bad.jsonl", [*trades, extra])
    result = run_check(str(session_db.path), "--truth", str(bad), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    (btc,) = report["symbols"]
    assert btc["violations"] == [
        {"trade_id": "lost-1", "time_ms": T0 + 45, "gap_id": None, "gap_fill_status": None}
    ]
    assert (btc["expected"], btc["present"], btc["window"]["source"]) == (11, 10, "trades")

    result = run_check(
        str(session_db.path),
        "--truth",
        str(bad),
        "--since",
        str(T0 + 50),
        "--until",
        str(T0 + 90),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_archive_truth(tmp_path: Path, session_db: SessionDb) -> None:
    trades = truth(4)
    session_db.store(trades)
    archive = write_archive(
        tmp_path / "BTCUSDT2023-11-14.csv.gz",
        [archive_line(t, price=t.price.rstrip("0"), size=t.size + "00") for t in trades],
    )
    result = run_check(str(session_db.path), "--truth", str(archive), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["exact_strings"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing_db}", "--truth", "{truth}"], "no recorder database"),
        (["{db}", "--truth", "{missing_truth}"], "does not exist"),
        (["{db}", "--truth", "http://127.0.0.1:9"], "unreachable"),
        (["{db}", "--truth", "{bad_csv}"], "cannot read"),
        (["{db}"], "--truth"),
        (["{db}", "--truth", "{truth}", "--since", "x"], "invalid int value"),
    ],
    ids=["missing-db", "missing-truth", "unreachable-sim", "bad-csv", "no-truth", "bad-since"],
)
def test_cli_usage_errors_exit_2_with_one_line(
    tmp_path: Path, session_db: SessionDb, args: list[str], message: str
) -> None:
    session_db.store(truth(2))
    bad_csv = tmp_path / "bad.csv.gz"
    bad_csv.write_bytes(b"not gzip at all")
    names = {
        "missing_db": str(tmp_path / "nope"),
        "db": str(session_db.path),
        "truth": str(write_jsonl(tmp_path / "t.jsonl", truth(2))),
        "missing_truth": str(tmp_path / "absent.jsonl"),
        "bad_csv": str(bad_csv),
    }
    result = run_check(*(a.format(**names) for a in args))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- against the simulator ------------------------------------------------------------


async def test_a_recorded_session_is_complete_against_the_simulator(
    sim: BybitSimulator, tmp_path: Path, record_with_an_outage: Any
) -> None:
    await record_with_an_outage(sim, tmp_path)
    symbols = ["BTCUSDT", "ETHUSDT"]
    truth_trades = await asyncio.to_thread(load_truth, sim.rest_url, symbols=symbols)
    assert {t.symbol for t in truth_trades} == set(symbols)
    report = await asyncio.to_thread(check_completeness, tmp_path, truth_trades)
    assert report.ok, report.format_text()
    assert [r.symbol for r in report.symbols] == symbols
    for symbol_report in report.symbols:
        assert symbol_report.window.source == "trades"
        assert symbol_report.present == symbol_report.expected > 0
    database = create_engine(f"sqlite:///{tmp_path / 'recorder.db'}")
    with database.connect() as conn:
        gaps = conn.execute(select(GAPS).where(GAPS.c.stream == "publicTrade")).all()
        rest_rows = conn.scalar(
            select(func.count()).select_from(PUBLIC_TRADES).where(PUBLIC_TRADES.c.source == "rest")
        )
    # The outage was real, and every trade printed during it came back over REST.
    assert {g.symbol for g in gaps} == set(symbols)
    assert {g.fill_status for g in gaps} == {"filled"}
    assert rest_rows == sum(g.rows_recovered for g in gaps)
    # The console script asks the simulator for the symbols found in the database.
    result = await asyncio.to_thread(run_check, str(tmp_path), "--truth", sim.rest_url, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [s["symbol"] for s in json.loads(result.stdout)["symbols"]] == symbols
    # Negative control: one trade lost from the middle is caught.
    eth = sorted((t for t in truth_trades if t.symbol == "ETHUSDT"), key=lambda t: t.time_ms)
    victim = eth[len(eth) // 2]
    with database.begin() as conn:
        conn.execute(
            delete(PUBLIC_TRADES).where(
                PUBLIC_TRADES.c.symbol == "ETHUSDT", PUBLIC_TRADES.c.trade_id == victim.trade_id
            )
        )
    database.dispose()
    report = await asyncio.to_thread(check_completeness, tmp_path, truth_trades)
    assert [(m.trade_id, m.time_ms) for m in report.symbol("ETHUSDT").violations] == [
        (victim.trade_id, victim.time_ms)
    ]
