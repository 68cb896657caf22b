"""The DSO's emergency action: involuntary curtailment of generation and load shedding.

Unmet need is measured as this action, in MW (MWh over a period), the same way in the
market's LP and after AC validation. At every PQ bus n and period t where a stage must
fix a need, the LP has two emergency columns, each priced by what it is:

    curtail_{n,t} in [0, G_{n,t}]   an injection decrease (like P_down), at curtailment_price
    shed_{n,t}    in [0, L_{n,t}]   an injection increase (like P_up), at VOLL

with G and L the generation and load connected at the bus in that period. Curtailed
generation is compensated at about its value; shed load is lost to its customers.
`objective_prices` says how they enter the objective under the emergency priority. They
enter every network row of the period through the bus's P sensitivities, so emergency
action also respects the no-harm rows. A need that full emergency action cannot fix is
left to the unresolvable slack (see `formulation.py`).

The DSO carries out the emergency action a stage plans (it is part of the injections
applied in the AC validation and seen by later stages). After a stage, the capacity is
reduced by the net injection changes at the bus: a net decrease is assumed to have
curtailed generation there first, a net increase to have shed load first (conservative:
the DSO never counts the same MW twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.market.params import MarketParams
from lfm_abm.network.ac_validation import FLEX_COLUMNS

#: Emergency capacities below this (MW) get no column.
MIN_EMERGENCY_MW = 1e-6
ACTIONS = ("curtail", "shed")
#: Columns describing each emergency column of an LP (`LinearProgram.emergency`).
EMERGENCY_META = ["period", "bus", "action", "hours"]
#: +1 where the action raises net injection, -1 where it lowers it.
ACTION_SIGN = {"curtail": -1.0, "shed": 1.0}
#: Emergency action costs its price x (1 + MARKET_FIRST) in the objective: an offer at the
#: same price and effect wins the tie (market-based before non-market-based action).
MARKET_FIRST = 1e-6


def objective_prices(params: MarketParams) -> dict[str, float]:
    """EUR/MWh each emergency action carries in the LP's objective.

    least-cost: its own price (the cost every KPI reports), a hair above for ties.
    market-first: every price scaled up by one factor so that the cheapest emergency
    action costs the reservation price: an admitted offer (priced at most that) is cheaper
    per MW than any emergency action, while the actions keep their price ratio, so the
    emergency action chosen where no offer helps is the least-cost one. The priority is
    per MW: an offer far less effective than curtailment can still lose to it.
    """
    prices = params.emergency_prices
    scale = 1.0
    if params.emergency_priority == "market-first":
        scale = max(1.0, params.max_bid_price / min(prices.values()))
    return {action: price * scale * (1.0 + MARKET_FIRST) for action, price in prices.items()}


def split_by_action(used: list[pd.DataFrame]) -> dict[str, float]:
    """MWh of each emergency action (`ACTIONS`) in tables of action used (mw, hours, action)."""
    out = dict.fromkeys(ACTIONS, 0.0)
    for table in used:
        if len(table):
            mwh = table.mw.to_numpy(dtype=float) * table.hours.to_numpy(dtype=float)
            action = table.action.to_numpy()
            for name in ACTIONS:
                out[name] += float(mwh[action == name].sum())
    return out


@dataclass(frozen=True)
class EmergencyCapacity:
    """Generation the DSO can curtail and load it can shed, MW, each periods x buses.

    Both tables are put on the same periods and buses (missing entries are 0 MW).
    """

    generation: pd.DataFrame
    load: pd.DataFrame

    def __post_init__(self) -> None:
        periods = self.generation.index.union(self.load.index)
        buses = self.generation.columns.union(self.load.columns)
        for name in ("generation", "load"):
            object.__setattr__(self, name, getattr(self, name).reindex(
                index=periods, columns=buses, fill_value=0.0))

    def at(self, period: int, buses: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """(curtailable generation, sheddable load) at `buses` in `period`, MW."""
        def row(frame: pd.DataFrame) -> np.ndarray:
            if period not in frame.index:
                return np.zeros(len(buses))
            return frame.loc[period].reindex(buses, fill_value=0.0).to_numpy(dtype=float)

        return row(self.generation), row(self.load)

    def after(self, flex: pd.DataFrame) -> EmergencyCapacity:
        """Capacity left after net injection changes (period, bus, dp_mw) were carried out."""
        if flex.empty:
            return self
        dp = np.zeros(self.generation.shape)
        rows = self.generation.index.get_indexer(flex.period.to_numpy())
        cols = self.generation.columns.get_indexer(flex.bus.to_numpy())
        known = (rows >= 0) & (cols >= 0)
        np.add.at(dp, (rows[known], cols[known]), flex.dp_mw.to_numpy(dtype=float)[known])
        # In numpy: the same frames' arithmetic costs ~13 ms per call on 24 x 116.
        left = (np.maximum(self.generation.to_numpy() - np.clip(-dp, 0.0, None), 0.0),
                np.maximum(self.load.to_numpy() - np.clip(dp, 0.0, None), 0.0))
        return EmergencyCapacity(*(pd.DataFrame(values, index=self.generation.index,
                                                columns=self.generation.columns)
                                   for values in left))


def emergency_injections(used: pd.DataFrame) -> pd.DataFrame:
    """Net injection changes (period, bus, dp_mw, dq_mvar) of emergency action taken."""
    if not len(used):  # the usual round: no frame arithmetic
        return pd.DataFrame(columns=FLEX_COLUMNS)
    sign = used.action.map(ACTION_SIGN).to_numpy(dtype=float)
    return pd.DataFrame({"period": used.period.to_numpy(dtype=int),
                         "bus": used.bus.to_numpy(dtype=int),
                         "dp_mw": sign * used.mw.to_numpy(dtype=float),
                         "dq_mvar": np.zeros(len(used))})


def emergency_columns(period: int, hours: float, buses: pd.Index, coef_p: np.ndarray,
                      capacity: EmergencyCapacity, min_coefficient: float
                      ) -> tuple[pd.DataFrame, np.ndarray, tuple[np.ndarray, ...]]:
    """Emergency columns of one period: metadata, upper bounds and (row, col, value).

    `coef_p` are the period's network rows per MW injected at each bus in `buses`; rows
    and columns are numbered from 0 within the period's block.
    """
    generation, load = capacity.at(period, buses)
    metas, upper, rows, cols, values = [], [], [], [], []
    n_cols = 0
    for action, bound in zip(ACTIONS, (generation, load), strict=True):
        at = np.flatnonzero(bound > MIN_EMERGENCY_MW)
        if len(at) == 0:
            continue
        block = ACTION_SIGN[action] * coef_p[:, at]
        r, c = np.nonzero(np.abs(block) >= min_coefficient)
        rows.append(r)
        cols.append(n_cols + c)
        values.append(block[r, c])
        upper.append(bound[at])
        metas.append(pd.DataFrame({"period": period, "bus": buses[at].astype(int),
                                   "action": action, "hours": hours}))
        n_cols += len(at)
    if not metas:
        empty = np.zeros(0)
        return (pd.DataFrame(columns=EMERGENCY_META), empty,
                (empty.astype(int), empty.astype(int), empty))
    return (pd.concat(metas, ignore_index=True), np.concatenate(upper),
            (np.concatenate(rows), np.concatenate(cols), np.concatenate(values)))
