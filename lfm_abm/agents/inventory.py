"""What the grid already has at each bus, per period: the physical base of FSP assets.

FSPs do not add generation or load to the grid: a PV inverter FSP controls a share of
the PV already connected at its bus, an EV fleet a share of the scenario's EV charging,
an aggregator shares of loads and generators (new batteries idle at zero are the one
exception). So the operating point, and the needs, do not depend on the population,
and no FSP can offer more flexibility than physically exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.market.clearing import MarketCase
from lfm_abm.network.connected import FLEX_TYPE, power_by_bus
from lfm_abm.network.scenarios import EV_LOAD_TYPE, of_type, reference, sgen_kinds
from lfm_abm.network.schedules import is_schedule


@dataclass(frozen=True)
class GridInventory:
    """Per-period MW by bus and kind (periods x buses), and per-bus ratings in MVA.

    power[kind]: injection-free magnitudes: generation output for pv/generator,
    consumption for load/ev (all >= 0, element scaling applied).
    rating[kind]: installed apparent power per bus for pv/generator (MVA).
    """

    power: dict[str, pd.DataFrame]
    rating: dict[str, pd.Series]

    def at(self, kind: str, bus: int) -> np.ndarray:
        """Per-period MW of `kind` at `bus` (zeros if there is none)."""
        frame = self.power[kind]
        if bus in frame.columns:
            return frame[bus].to_numpy()
        return np.zeros(len(frame))

    def rated(self, kind: str, bus: int) -> float:
        """Installed MVA of `kind` at `bus` (0 if none)."""
        return float(self.rating[kind].get(bus, 0.0))

    def buses_with(self, kind: str) -> list[int]:
        """Buses where `kind` is present in at least one period (or installed)."""
        frame = self.power[kind]
        present = frame.columns[(frame > 1e-9).any()].tolist()
        if kind in self.rating:
            present += self.rating[kind].index[self.rating[kind] > 1e-9].tolist()
        return sorted({int(b) for b in present})


def grid_inventory(case: MarketCase) -> GridInventory:
    """Group a market day's element set-points by bus and kind.

    Ratings grow with the scenario's growth factors (PV x pv_scale, wind x wind_scale):
    more PV output means more installed PV, so inverters keep their reactive headroom.
    "generator" is every non-PV static generator (output can be reduced);
    "dispatchable" is the part that can also be raised (not wind).
    """
    net, injections, scenario = case.net, case.injections, case.scenario
    sgen = net.sgen
    kinds = pd.Series(sgen_kinds(sgen), index=sgen.index)
    on = sgen.in_service & ~of_type(sgen, FLEX_TYPE)
    pv_mask = on & (kinds == "pv")
    gen_mask = on & (kinds != "pv")
    dispatchable_mask = on & (kinds == "other")
    sgen_p = injections.p_mw["sgen"]
    power = {"pv": power_by_bus(sgen_p, sgen, pv_mask),
             "generator": power_by_bus(sgen_p, sgen, gen_mask),
             "dispatchable": power_by_bus(sgen_p, sgen, dispatchable_mask)}
    load = net.load
    is_ev = of_type(load, EV_LOAD_TYPE)
    # A day-ahead schedule is the providers' own energy, not the forecast's load.
    power["load"] = power_by_bus(injections.p_mw["load"], load,
                                 load.in_service & ~is_ev & ~is_schedule(load))
    power["ev"] = power_by_bus(injections.p_mw["load"], load, load.in_service & is_ev)
    if "storage" in injections.p_mw and len(net.storage):
        # SimBench "storage" = PV home systems that only feed in (negative = generation).
        storage_pv = power_by_bus(-injections.p_mw["storage"], net.storage,
                                  net.storage.in_service)
        power["pv"] = power["pv"].add(storage_pv, fill_value=0.0)

    sn = sgen.sn_mva.fillna(0.0)
    growth = kinds.map({"pv": scenario.pv_scale, "wind": scenario.wind_scale, "other": 1.0})
    rated = sn.where(sn > 0, reference(net, "sgen").p_mw.abs()) * sgen.scaling * growth
    rating = {"pv": rated[pv_mask].groupby(sgen.bus[pv_mask]).sum(),
              "generator": rated[gen_mask].groupby(sgen.bus[gen_mask]).sum(),
              "dispatchable": rated[dispatchable_mask].groupby(
                  sgen.bus[dispatchable_mask]).sum()}
    if len(net.storage):
        st = net.storage[net.storage.in_service]
        rating["pv"] = rating["pv"].add(st.groupby("bus").sn_mva.sum() * scenario.pv_scale,
                                        fill_value=0.0)
    power = {kind: frame.fillna(0.0).clip(lower=0.0) for kind, frame in power.items()}
    return GridInventory(power, rating)
