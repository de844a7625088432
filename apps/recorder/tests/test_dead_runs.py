"""Runs of killed sessions in their own per-session databases: found and marked ``aborted``.

The end-to-end case (a real recorder SIGKILLed, the next one marks its run) is in
``test_faults.py``; here the search itself: where it looks, what it skips, and its bound.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grid_db import DatabaseFactory, DatabaseSettings, RunRepository, RunStatus
from recorder import dead_runs
from recorder.dead_runs import abort_dead_sessions, earlier_session_folders
from recorder.provenance import host_name

DEAD_PID = 2**22 + 4321  # above Linux's pid_max default: never a live process


def session(folder: Path, status: str = "running", pid: int = DEAD_PID, host: str = "") -> str:
    """A session folder as a recorder leaves it: health.json and recorder.db with one run."""
    folder.mkdir(parents=True)
    (folder / "health.json").write_text(json.dumps({"status": status, "pid": pid}))
    db = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{folder}/recorder.db"))
    try:
        db.create_tables()
        run = RunRepository(db.engine).create_run(
            config_json="{}", host=host or host_name(), pid=pid, software_version="x"
        )
        if status != "running":
            RunRepository(db.engine).finish_run(run.id, RunStatus(status))
    finally:
        db.dispose()
    return run.id


def status_in(folder: Path) -> str:
    db = DatabaseFactory(DatabaseSettings(url=f"sqlite:///{folder}/recorder.db"))
    try:
        (run,) = RunRepository(db.engine).list()
        return run.status
    finally:
        db.dispose()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECORDER_OUTPUT_ROOT", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def test_dead_runs_under_the_outputs_root_are_aborted(root: Path) -> None:
    dead = root / "2026-11-23" / "23-59-00-000000_btc"
    dead_job = root / "2026-11-24" / "08-00-00-000000_multirun" / "1_eth"
    finished = root / "2026-11-24" / "08-30-00-000000_btc"
    alive = root / "2026-11-24" / "08-40-00-000000_btc"
    elsewhere = root / "2026-11-24" / "08-50-00-000000_btc"
    dead_id = session(dead)
    job_id = session(dead_job)
    session(finished, status="completed")
    session(alive, pid=os.getpid())
    session(elsewhere, host="another-host")  # a pid means nothing on another host
    me = root / "2026-11-24" / "09-00-00-000000_btc"
    me.mkdir(parents=True)

    aborted = abort_dead_sessions(me)

    assert sorted((a.folder, a.run_id) for a in aborted) == sorted(
        [(dead, dead_id), (dead_job, job_id)]
    )
    assert status_in(dead) == status_in(dead_job) == "aborted"
    assert status_in(finished) == "completed"
    assert status_in(alive) == status_in(elsewhere) == "running"
    assert abort_dead_sessions(me) == []  # nothing left to do


def test_a_folder_outside_the_root_looks_at_its_siblings_only(root: Path, tmp_path: Path) -> None:
    sibling = tmp_path / "runs" / "first"
    nested = tmp_path / "runs" / "deeper" / "old"
    session(sibling)
    session(nested)
    me = tmp_path / "runs" / "second"
    me.mkdir(parents=True)
    assert [a.folder for a in abort_dead_sessions(me)] == [sibling]
    assert status_in(nested) == "running"


def test_its_own_database_is_skipped(root: Path) -> None:
    shared = root / "2026-11-24" / "08-00-00-000000_btc"
    session(shared)
    me = root / "2026-11-24" / "09-00-00-000000_btc"
    me.mkdir(parents=True)
    assert abort_dead_sessions(me, own_database=shared / "recorder.db") == []


def test_the_search_is_bounded_to_the_newest_folders(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_runs, "MAX_FOLDERS", 3)
    folders = []
    for minute in range(5):
        folder = root / "2026-11-24" / f"08-0{minute}-00-000000_btc"
        folder.mkdir(parents=True)
        health = folder / "health.json"
        health.write_text("{}")
        os.utime(health, (1_000_000 + minute, 1_000_000 + minute))
        folders.append(folder)
    me = root / "2026-11-24" / "09-00-00-000000_btc"
    me.mkdir()
    assert earlier_session_folders(me) == folders[::-1][:3]


def test_an_unreadable_database_is_skipped_with_a_warning(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = root / "2026-11-24" / "08-00-00-000000_btc"
    broken.mkdir(parents=True)
    (broken / "health.json").write_text(json.dumps({"status": "running", "pid": DEAD_PID}))
    (broken / "recorder.db").write_text("not a database")
    me = root / "2026-11-24" / "09-00-00-000000_btc"
    me.mkdir()
    assert abort_dead_sessions(me) == []
    assert any("could not check" in m for m in caplog.messages)
