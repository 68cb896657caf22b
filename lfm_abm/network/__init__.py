"""Grids, scenarios, baseline operating points, grid needs and AC sensitivities."""

from lfm_abm.network.grids import BUILT_IN, load_grid
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import OperatingPoint, operating_points, run_power_flow
from lfm_abm.network.scenarios import Scenario, period_injections
from lfm_abm.network.sensitivities import Sensitivities, sensitivities

__all__ = [
    "BUILT_IN",
    "NeedLimits",
    "OperatingPoint",
    "Scenario",
    "Sensitivities",
    "find_needs",
    "load_grid",
    "operating_points",
    "period_injections",
    "run_power_flow",
    "sensitivities",
]
