"""The benchmark's table: figures, targets, the machine, and docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from bench_pipeline import PipelineResult
from bench_scenarios import FlatOutResult, LimitResult, RealisticResult

#: the targets of the issue, checked against every run's figures
FLAT_OUT_RATIO = 0.60
PARSE_SPEEDUP = 2.0
CPU_SHARE = 0.05
RSS_MB = 150.0
P99_MARGIN_MS = 100.0


@dataclass
class Run:
    smoke: bool
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    cpu_before: Any = field(default_factory=psutil.cpu_times)
    #: share of the machine's CPU time the hypervisor took (steal) during the run
    steal: float | None = None
    seconds: float = 0.0
    limit: LimitResult | None = None
    flat_out: FlatOutResult | None = None
    realistic: list[RealisticResult] = field(default_factory=list)
    pipeline: PipelineResult | None = None


def _package(name: str) -> str:
    try:
        return version(name)
    except Exception:
        return "-"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else "")
    except Exception:
        return "unknown"


def finish(run: Run, seconds: float) -> None:
    """Note the run's length and how much CPU time the hypervisor took meanwhile."""
    run.seconds = seconds
    before, after = run.cpu_before, psutil.cpu_times()
    total = sum(after) - sum(before)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    run.steal = steal / total if total > 0 else None


def machine(run: Run) -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in run.load_before)
    steal = "" if run.steal is None else f"; CPU steal during the run: {run.steal:.1%}"
    return [
        f"- **When**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(run.started))}, "
        f"{run.seconds:.0f} s for the whole run; git {_git_commit()}",
        f"- **Machine**: {os.cpu_count()} x {_cpu_model()}, {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; load average before the run: {load}{steal}",
        f"- **Software**: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"msgspec {_package('msgspec')}, aiohttp {_package('aiohttp')}, "
        f"SQLAlchemy {_package('sqlalchemy')}",
    ]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _cpu_share(r: RealisticResult) -> str:
    user, system = r.details.get("cpu_user_s"), r.details.get("cpu_system_s")
    if user is None or system is None:
        return f"{r.cpu_share:.1%}"
    return f"{r.cpu_share:.1%} ({user / r.seconds:.1%} + {system / r.seconds:.1%})"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def summary_rows(run: Run) -> list[tuple[str, str, str, str, str]]:
    """(scenario, measure, result, target, met) for the summary table."""
    rows: list[tuple[str, str, str, str, str]] = []
    limit, flat = run.limit, run.flat_out
    if limit is not None:
        tried = ", ".join(f"{b:,}: {_n(r)}" for b, r in sorted(limit.by_batch.items()))
        rows.append(
            (
                "**Limit**: plain sqlite3",
                f"rows/s committed, best batch size (tried {tried})",
                f"{_n(limit.rows_per_second)} rows/s (batches of {limit.batch:,})",
                "",
                "",
            )
        )
    if flat is not None:
        name = f"**Recorder, flat out**: {flat.trades:,} trades, frames of {flat.batch:,}"
        if limit is not None:
            ratio = flat.trades_per_second / limit.rows_per_second
            rows.append(
                (
                    name,
                    "committed trades/s (first arrival to last commit)",
                    f"{_n(flat.trades_per_second)} = **{ratio:.0%}** of the limit",
                    f"≥ {FLAT_OUT_RATIO:.0%} of the limit",
                    _yes(ratio >= FLAT_OUT_RATIO),
                )
            )
            name = ""
        else:
            rows.append((name, "committed trades/s", _n(flat.trades_per_second), "", ""))
            name = ""
        rows.append(
            (name, "CPU per 1,000 trades (all threads)", f"{flat.cpu_ms_per_1000:.1f} ms", "", "")
        )
        rows.append(
            (
                "",
                "peak RSS",
                f"{flat.peak_rss_mb:.0f} MB",
                f"< {RSS_MB:.0f} MB",
                _yes(flat.peak_rss_mb < RSS_MB),
            )
        )
        rows.append(
            (
                "",
                "trades stored / printed by the simulator",
                f"{flat.stored:,} / {flat.truth:,}",
                "none dropped",
                _yes(flat.stored == flat.truth == flat.trades),
            )
        )
    for r in run.realistic:
        budget = r.flush_interval * 1000 + P99_MARGIN_MS
        lat = r.latency_ms
        p99 = lat.get("p99")
        rows.append(
            (
                f"**Recorder, realistic**: {r.symbols} symbols, `writer={r.writer}`",
                "CPU share of one core (user + system)",
                _cpu_share(r),
                f"< {CPU_SHARE:.0%}",
                _yes(r.cpu_share < CPU_SHARE),
            )
        )
        rows.append(
            (
                "",
                f"arrival → commit p50 / p99 / max ({lat.get('n', 0):,} rows)",
                f"{_ms(lat.get('p50'))} / {_ms(p99)} / {_ms(lat.get('max'))} ms",
                f"p99 < {budget:,.0f} ms",
                _yes(p99 is not None and p99 < budget),
            )
        )
        rows.append(
            (
                "",
                "peak RSS",
                f"{r.peak_rss_mb:.0f} MB",
                f"< {RSS_MB:.0f} MB",
                _yes(r.peak_rss_mb < RSS_MB),
            )
        )
        rows.append(
            (
                "",
                "trades and tickers stored, all printed ones",
                f"{r.trades:,} trades, {r.tickers:,} tickers",
                "none dropped",
                "yes",  # realistic() raises on any loss
            )
        )
    pipe = run.pipeline
    if pipe is not None:
        first = True
        for stage in pipe.stages:
            ours = stage.trades_per_second(stage.normalizer_s)
            if stage.peer_s is None:
                result = f"{_n(ours)} trades/s (cryptofeed: not run)"
                target, met = f"≥ {PARSE_SPEEDUP:.0f}x cryptofeed", "n/a"
            else:
                speedup = stage.peer_s / stage.normalizer_s
                peer = stage.trades_per_second(stage.peer_s)
                result = f"{_n(ours)} vs {_n(peer)} trades/s = **{speedup:.1f}x**"
                target, met = f"≥ {PARSE_SPEEDUP:.0f}x cryptofeed", _yes(speedup >= PARSE_SPEEDUP)
            rows.append(
                (
                    "**Parse + normalize**, ours vs cryptofeed" if first else "",
                    _frame_label(stage.frame_size),
                    result,
                    target,
                    met,
                )
            )
            first = False
    return rows


def _frame_label(size: str) -> str:
    if size == "1":
        return "frames of 1 trade"
    if size == "1-4":
        return "frames of 1-4 trades (quiet market, mean 2)"
    return f"frames of {int(size):,} trades" + (" (burst)" if int(size) >= 1000 else "")


def markdown_table(headers: list[str], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def pipeline_rows(pipe: PipelineResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in pipe.stages:
        peer = (
            ("-", "-", "-")
            if s.peer_s is None
            else (
                f"{s.us_per_frame(s.peer_s):,.2f}",
                _n(s.trades_per_second(s.peer_s)),
                f"{s.peer_s / s.normalizer_s:.2f}x",
            )
        )
        rows.append(
            (
                s.frame_size,
                f"{s.frames:,}",
                f"{s.us_per_frame(s.normalizer_s):,.2f}",
                _n(s.trades_per_second(s.normalizer_s)),
                f"{s.us_per_frame(s.read_loop_s):,.2f}",
                _n(s.trades_per_second(s.read_loop_s)),
                *peer,
            )
        )
    return rows


def tables(run: Run) -> list[str]:
    lines = markdown_table(["Scenario", "Measure", "Result", "Target", "Met"], summary_rows(run))
    if run.pipeline is not None:
        peer = run.pipeline.peer_version
        lines += [
            "",
            "Pipeline stages, per frame (best of several passes over the same frames, one process; "
            + (f"cryptofeed {peer}" if peer else f"cryptofeed not run: {run.pipeline.peer_note}")
            + "):",
            "",
        ]
        lines += markdown_table(
            [
                "Trades/frame",
                "Frames",
                "Normalizer µs/frame",
                "trades/s",
                "Read loop µs/frame",
                "trades/s",
                "cryptofeed µs/frame",
                "trades/s",
                "Normalizer vs cryptofeed",
            ],
            pipeline_rows(run.pipeline),
        )
    return lines


def missed(run: Run) -> list[str]:
    """The targets this run missed (by the summary's Met column)."""
    return [f"{r[0] or ''} {r[1]}: {r[2]}".strip() for r in summary_rows(run) if r[4] == "**no**"]


def document(run: Run, method: str) -> str:
    title = "# Benchmarks" + (" (smoke run: tiny sizes, figures meaningless)" if run.smoke else "")
    parts = [
        title,
        "",
        "Written by `make bench` (`bench/run.py`); every figure below comes from the same run.",
        "",
        *machine(run),
        "",
        *tables(run),
        "",
        method.strip(),
        "",
    ]
    return "\n".join(parts)
