"""What produced a dataset: software version, git commit (and uncommitted changes), host."""

from __future__ import annotations

import os
import socket
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@lru_cache(maxsize=1)
def software_version() -> str:
    try:
        return version("recorder")
    except PackageNotFoundError:
        return "unknown"


#: a diff of uncommitted changes larger than this is not saved with a session
MAX_DIFF_BYTES = 5_000_000


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    here = Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def git_revision() -> tuple[str, bool] | None:
    """(commit, whether tracked files differ from it) of the checkout this code runs from;
    None outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None or commit.returncode != 0:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit.stdout.strip(), bool(dirty is not None and dirty.stdout.strip())


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, with ``-dirty`` if modified."""
    revision = git_revision()
    if revision is None:
        return None
    commit, dirty = revision
    return commit + ("-dirty" if dirty else "")


def git_diff() -> str | None:
    """The uncommitted changes to tracked files (``git diff HEAD --binary``), for
    ``git apply``; None when clean, outside a checkout, or larger than ``MAX_DIFF_BYTES``."""
    revision = git_revision()
    if revision is None or not revision[1]:
        return None
    diff = _git("diff", "HEAD", "--binary")
    if diff is None or diff.returncode != 0 or len(diff.stdout) > MAX_DIFF_BYTES:
        return None
    return diff.stdout


def host_name() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
