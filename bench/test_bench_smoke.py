"""``make bench`` at tiny sizes: every scenario runs, checks its counts and fills the table.

The figures of such a run mean nothing; the point is that the benchmark cannot rot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bench_report
import pytest
import run

pytestmark = pytest.mark.bench


def test_every_scenario_runs_at_tiny_sizes_and_writes_the_table(tmp_path: Path) -> None:
    args = argparse.Namespace(
        smoke=True,
        trades=None,
        seconds=None,
        profile=None,
        no_peer=True,
        trade_rate=10.0,
    )
    report = run.run(args)

    assert report.limit is not None
    assert report.limit.rows_per_second > 0
    flat = report.flat_out
    assert flat is not None
    assert flat.stored == flat.truth == flat.trades == run.SMOKE.trades
    assert flat.trades_per_second > 0
    assert flat.cpu_seconds > 0
    assert flat.peak_rss_mb > 0
    assert [r.writer for r in report.realistic] == ["default", "low_latency"]
    for realistic in report.realistic:
        assert realistic.trades > 0
        assert realistic.tickers > 0
        assert realistic.latency_ms["n"]
        assert 0 < realistic.cpu_share < 2
    assert report.pipeline is not None
    assert [s.frame_size for s in report.pipeline.stages] == ["1", "1-4", "100", "1024"]
    assert all(s.normalizer_s > 0 and s.read_loop_s > 0 for s in report.pipeline.stages)

    document = bench_report.document(report, (Path(run.__file__).parent / "method.md").read_text())
    output = tmp_path / "benchmarks.md"
    output.write_text(document)
    text = output.read_text()
    for heading in ("**Limit**", "**Recorder, flat out**", "**Recorder, realistic**"):
        assert heading in text
    assert "Parse + normalize" in text
    assert "Machine" in text
    assert "writer=low_latency" in text
