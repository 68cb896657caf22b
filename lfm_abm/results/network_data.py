"""The grid as the plots need it: coordinates, line ends, the day's needs and their relief.

Built once per study from the first market day and saved with the results (`store`),
so plots and maps never load a grid or compute a sensitivity.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lfm_abm.market.bids import PRODUCTS
from lfm_abm.market.clearing import MarketCase
from lfm_abm.market.concentration import relief_per_unit
from lfm_abm.results.store import NetworkData


def _coordinates(net) -> pd.DataFrame:
    """Bus id, name and x, y from pandapower's GeoJSON column (NaN where absent)."""
    geo = net.bus.geo if "geo" in net.bus else pd.Series(None, index=net.bus.index)
    points = geo.map(lambda text: json.loads(text)["coordinates"] if isinstance(text, str)
                     else [np.nan, np.nan])
    return pd.DataFrame({"bus": net.bus.index, "name": net.bus.name.astype(str).to_numpy(),
                         "x": [p[0] for p in points], "y": [p[1] for p in points]})


def branch_ends(net) -> pd.DataFrame:
    """Element (line or trafo), element_id, from_bus, to_bus of every branch (trafo: HV, LV)."""
    return pd.concat([
        pd.DataFrame({"element": "line", "element_id": net.line.index,
                      "from_bus": net.line.from_bus.to_numpy(),
                      "to_bus": net.line.to_bus.to_numpy()}),
        pd.DataFrame({"element": "trafo", "element_id": net.trafo.index,
                      "from_bus": net.trafo.hv_bus.to_numpy(),
                      "to_bus": net.trafo.lv_bus.to_numpy()}),
    ], ignore_index=True)


def _need_ends(net, needs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """From and to bus of every need's element (a bus need: the bus twice)."""
    ends = needs[["element", "element_id"]].merge(branch_ends(net), how="left",
                                                  on=["element", "element_id"])
    bus = (needs.element == "bus").to_numpy()
    element = needs.element_id.to_numpy()
    return (np.where(bus, element, ends.from_bus.to_numpy()).astype(int),
            np.where(bus, element, ends.to_bus.to_numpy()).astype(int))


def network_data(net, case: MarketCase) -> NetworkData:
    """Buses, lines, the baseline needs of `case` and each need's relief per bus and product."""
    needs = case.baseline_needs.reset_index(drop=True)
    start, end = _need_ends(net, needs)
    table = pd.DataFrame({"need_id": np.arange(len(needs)), "period": needs.period,
                          "service": needs.service, "element": needs.element,
                          "element_id": needs.element_id, "from_bus": start, "to_bus": end,
                          "need": needs.need, "unit": needs.unit})
    slots = pd.DataFrame([(bus, product) for bus in case.buses for product in PRODUCTS],
                         columns=["bus", "product"])
    relief = []
    for i, need in enumerate(needs.itertuples(index=False)):
        per_unit = relief_per_unit(case, need, slots)
        keep = per_unit > 0
        relief.append(slots[keep].assign(need_id=i, relief=per_unit[keep]))
    relief_table = (pd.concat(relief, ignore_index=True) if relief
                    else pd.DataFrame(columns=["bus", "product", "need_id", "relief"]))
    lines = pd.DataFrame({"from_bus": net.line.from_bus.to_numpy(),
                          "to_bus": net.line.to_bus.to_numpy()})
    return NetworkData(_coordinates(net), lines, table,
                       relief_table[["need_id", "bus", "product", "relief"]])
