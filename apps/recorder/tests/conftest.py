"""Fixtures of the recorder app's tests: a session config pointed at the in-process simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorder.config import RecorderConfig, compose_config
from testkit import FAST_OVERRIDES

MakeConfig = Callable[..., RecorderConfig]


@pytest.fixture
def make_config(sim: Any, tmp_path: Path) -> MakeConfig:
    """``make_config(*overrides)``: the packaged config, recording BTCUSDT and ETHUSDT from
    the simulator with the fast test timings, and the overrides on top."""

    def make(*overrides: str) -> RecorderConfig:
        return compose_config(
            [
                "symbols=btc_eth",
                f"network.rest_url={sim.rest_url}",
                f"network.public_ws_url='{sim.public_ws_url}'",
                f"network.private_ws_url={sim.private_ws_url}",
                *FAST_OVERRIDES,
                "flush_interval=0.2",
                *overrides,
            ],
            output_dir=tmp_path,
        )

    return make
