"""A local Bybit V5 simulator speaking the real WebSocket and REST protocol."""

from bybit_sim.config import SimulatorConfig
from bybit_sim.faults import REST_FAULT_KINDS, Faults
from bybit_sim.server import BybitSimulator
from bybit_sim.stats import SimStats
from bybit_sim.truth import GroundTruth, TruthTrade

__all__ = [
    "REST_FAULT_KINDS",
    "BybitSimulator",
    "Faults",
    "GroundTruth",
    "SimStats",
    "SimulatorConfig",
    "TruthTrade",
]
