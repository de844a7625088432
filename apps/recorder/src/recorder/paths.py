"""Where the Hydra config groups live.

Hydra turns a *relative* ``config_path`` into ``pkg://<package>/...`` when the task function is
imported by a console script, so the ``recorder`` script must be given an absolute directory.
"""

import os
from pathlib import Path

CONFIG_DIR_ENV = "RECORDER_CONFIG_DIR"
_PRIMARY_CONFIG = "config.yaml"


def config_dir() -> Path:
    """Return the absolute directory holding ``config.yaml`` and its groups.

    Search order:

    1. ``$RECORDER_CONFIG_DIR``, if set (it must contain ``config.yaml``);
    2. ``recorder/conf`` inside the installed package (a wheel ships the repo's ``configs/`` there);
    3. the first ``configs/`` with a ``config.yaml`` in a parent of this file (the source checkout).

    Raises:
        FileNotFoundError: when none of them holds a ``config.yaml``.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not (path / _PRIMARY_CONFIG).is_file():
            raise FileNotFoundError(f"{CONFIG_DIR_ENV}={override}: no {_PRIMARY_CONFIG} in {path}")
        return path
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    if (packaged / _PRIMARY_CONFIG).is_file():
        return packaged
    for parent in here.parents:
        candidate = parent / "configs"
        if (candidate / _PRIMARY_CONFIG).is_file():
            return candidate
    raise FileNotFoundError(
        f"no recorder configs found: set {CONFIG_DIR_ENV}, or install the package with its "
        f"configs, or run from a checkout that has configs/{_PRIMARY_CONFIG}"
    )
