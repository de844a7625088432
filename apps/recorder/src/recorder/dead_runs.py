"""Runs that died without closing (SIGKILL, power cut), found in earlier sessions' folders.

A session that ends by itself rewrites its ``health.json`` with its final status. One whose
``health.json`` still says ``running`` while its pid is gone was killed; the ``runs`` row in
its own ``recorder.db`` is then still ``running``. ``abort_dead_sessions`` finds such folders
next to a new session's (the same outputs root: ``$RECORDER_OUTPUT_ROOT`` or ``./outputs``,
including multirun job folders; or, for a folder outside it, the folder's siblings) and marks
those runs ``aborted`` (``grid_db.RunRepository.abort_dead_runs``: runs of this host only).

Bounded: only the ``MAX_FOLDERS`` newest ``health.json`` files are read, a database is opened
only when its ``health.json`` says ``running`` with a dead pid, and nothing is written but the
one UPDATE of each dead run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from grid_db import RunRepository
from recorder.health_file import FILE_NAME as HEALTH_FILE_NAME
from recorder.health_file import read_health_file
from recorder.provenance import host_name, pid_alive

_log = logging.getLogger("recorder.session")

OUTPUT_ROOT_ENV = "RECORDER_OUTPUT_ROOT"
DEFAULT_OUTPUT_ROOT = "outputs"
#: at most this many earlier session folders are looked at, newest first
MAX_FOLDERS = 200
DATABASE_FILE = "recorder.db"


@dataclass(frozen=True, slots=True)
class AbortedRun:
    folder: Path
    run_id: str
    pid: int


def outputs_root() -> Path:
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or DEFAULT_OUTPUT_ROOT).resolve()


def earlier_session_folders(output_dir: Path) -> list[Path]:
    """Session folders near ``output_dir`` (not itself), newest ``MAX_FOLDERS`` first."""
    output_dir = output_dir.resolve()
    root = outputs_root()
    if output_dir.is_relative_to(root) and output_dir != root:
        patterns = [f"{'*/' * depth}{HEALTH_FILE_NAME}" for depth in (1, 2, 3)]
    else:
        root = output_dir.parent
        patterns = [f"*/{HEALTH_FILE_NAME}"]
    found: list[tuple[float, Path]] = []
    for pattern in patterns:
        for health in root.glob(pattern):
            folder = health.parent
            if folder == output_dir:
                continue
            try:
                found.append((health.stat().st_mtime, folder))
            except OSError:
                continue
    found.sort(reverse=True)
    _log.debug(
        "%d earlier session folder(s) under %s; looking at %d",
        len(found),
        root,
        min(len(found), MAX_FOLDERS),
    )
    return [folder for _, folder in found[:MAX_FOLDERS]]


def abort_dead_sessions(output_dir: Path, own_database: Path | None = None) -> list[AbortedRun]:
    """Mark ``aborted`` the runs of earlier sessions whose process died while recording."""
    aborted: list[AbortedRun] = []
    own = own_database.resolve() if own_database is not None else None
    for folder in earlier_session_folders(output_dir):
        health = read_health_file(folder / HEALTH_FILE_NAME)
        if health is None or health.get("status") != "running":
            continue
        pid = health.get("pid")
        if not isinstance(pid, int) or pid_alive(pid):
            continue
        database = folder / DATABASE_FILE
        if not database.is_file() or database.resolve() == own:
            continue
        aborted += _abort_in(folder, database)
    return aborted


def _abort_in(folder: Path, database: Path) -> list[AbortedRun]:
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 5})
    try:
        runs = RunRepository(engine).abort_dead_runs(host_name(), pid_alive)
    except SQLAlchemyError as exc:
        _log.warning("could not check %s for a dead run: %s", database, exc)
        return []
    finally:
        engine.dispose()
    return [AbortedRun(folder, run.id, run.pid) for run in runs]
