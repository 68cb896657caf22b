"""Mesa agents: flexibility service providers and the DSO, and populations from TOML.

FSP types: PV inverters, EV fleets, DER aggregators.
"""

from lfm_abm.agents.dso import DSO
from lfm_abm.agents.fsp import FSP, DERAggregator, EVFleet, PVInverter
from lfm_abm.agents.population import FSPSpec, Population, load_population

__all__ = ["DSO", "FSP", "DERAggregator", "EVFleet", "FSPSpec", "PVInverter", "Population",
           "load_population"]
