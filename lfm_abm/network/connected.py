"""What is connected at each bus in each period, from the scenario's element set-points.

Two users: the DSO's emergency action (it can curtail at most the generation present at
a bus and shed at most the load there) and the FSP inventory (an FSP sells a share of
what is there). Both sum element set-points per bus with element `scaling` applied.
"""

from __future__ import annotations

import pandapower as pp
import pandas as pd

from lfm_abm.network.scenarios import PeriodInjections, of_type
from lfm_abm.network.schedules import is_schedule

#: pandapower sgen `type` of the market's own flexibility injections (not real units).
FLEX_TYPE = "lfm_flex"


def power_by_bus(frame: pd.DataFrame, table: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    """Sum a (periods x elements) frame per bus, scaled, over the elements where `keep`."""
    columns = frame.columns[keep.reindex(frame.columns, fill_value=False).to_numpy()]
    if len(columns) == 0:
        return pd.DataFrame(index=frame.index)
    values = frame[columns] * table.loc[columns, "scaling"].to_numpy()
    return values.T.groupby(table.loc[columns, "bus"].to_numpy()).sum().T


def connected_power(net: pp.pandapowerNet, injections: PeriodInjections
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(generation, load) in MW, each periods x buses, both >= 0.

    Generation: in-service static generators (the market's own injections excluded),
    storage feeding in and day-ahead schedules that inject (`network.schedules`); load:
    in-service loads (EV charging and schedules that consume included) and storage
    charging. Each element counts with its own sign clipped at zero.
    """
    parts_gen, parts_load = [], []
    if "sgen" in injections.p_mw and len(net.sgen):
        sgen = net.sgen
        real = sgen.in_service & ~of_type(sgen, FLEX_TYPE)
        parts_gen.append(power_by_bus(injections.p_mw["sgen"].clip(lower=0.0), sgen, real))
    if "load" in injections.p_mw and len(net.load):
        parts_load.append(power_by_bus(injections.p_mw["load"].clip(lower=0.0), net.load,
                                       net.load.in_service))
        # A day-ahead schedule that injects is generation the DSO can curtail.
        parts_gen.append(power_by_bus((-injections.p_mw["load"]).clip(lower=0.0), net.load,
                                      net.load.in_service & is_schedule(net.load)))
    if "storage" in injections.p_mw and len(net.storage):
        p = injections.p_mw["storage"]
        on = net.storage.in_service
        parts_gen.append(power_by_bus((-p).clip(lower=0.0), net.storage, on))
        parts_load.append(power_by_bus(p.clip(lower=0.0), net.storage, on))

    def total(parts: list[pd.DataFrame]) -> pd.DataFrame:
        out = pd.DataFrame(0.0, index=range(len(injections.labels)), columns=pd.Index([]))
        for part in parts:
            out = out.add(part.set_axis(out.index), fill_value=0.0)
        return out.fillna(0.0)

    return total(parts_gen), total(parts_load)
