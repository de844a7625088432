"""What produced a dataset: software version, git commit, host."""

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


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this code runs from, with ``-dirty`` if modified."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    suffix = "-dirty" if dirty.stdout.strip() else ""
    return commit.stdout.strip() + suffix


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
