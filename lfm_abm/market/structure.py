"""Network-aware pivotal suppliers: re-clear the market without each supplier.

A supplier is pivotal in a period when the DSO cannot do as well there without it: the
market cleared without the supplier's offers (every other offer unchanged, the same LP,
the same network and device rows) sheds more load in that period, or costs more than
`COST_THRESHOLD` more (procurement plus emergency action priced by kind: curtailment at
its compensation, shedding at VOLL). More curtailment alone counts through its cost: a
supplier the DSO can replace by curtailing at a modest compensation cannot raise its
price far, so it is not pivotal for that; under the market-first priority the DSO may
not replace offers by emergency action, so any more of it makes the supplier pivotal.
This is the pivotal-supplier test market monitors apply to a load pocket (e.g. the
three-pivotal-supplier test of PJM; Newbery's locational market power), made network-
aware by the clearing itself: the LP knows which offers relieve which needs, through the
sensitivities, the capability circles and the energy accounts, so supply that cannot
reach a need, or Q beyond an inverter's circle, does not count.

A period's market is all the design's needs of that period, cleared jointly (one MW can
relieve several needs, and the LP couples them). Scarcity is kept apart: a period in
which even all offers, each used before any emergency action (the market-first
priority), leave unmet need lacks supply, whoever is present; a supplier is pivotal
there only if its absence makes it worse. Under least-cost the DSO may also choose
curtailment over dearer offers: that is a price, not a lack of supply. The
pivotal-supplier index PSI is the share of the periods with needs that have at least one
pivotal supplier.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lfm_abm.market.clearing import ClearingResult, Market
from lfm_abm.market.devices import Devices
from lfm_abm.market.emergency import ACTIONS
from lfm_abm.market.params import MarketParams

#: Cost increase, as a share of the period's cost with every supplier, above which a
#: supplier's absence makes it pivotal even if the need is still met.
COST_THRESHOLD = 0.10
#: Unmet need below this (MWh) is numerical noise of the LP, not a shortfall.
UNMET_TOLERANCE = 1e-6

PERIOD_COLUMNS = ["period", "unmet_mwh", "cost", "scarce", "pivotal_suppliers", "pivotal"]
SUPPLIER_COLUMNS = ["provider_id", "period", "unmet_increase_mwh", "cost_increase",
                    "pivotal"]


def period_outcome(result: ClearingResult, params: MarketParams, periods: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per period of `periods`: unmet need and load shed (MWh), and cost (EUR).

    Cost = payments + curtailment x its compensation + shedding x VOLL.
    """
    position = {int(t): i for i, t in enumerate(periods)}
    mwh = {action: np.zeros(len(periods)) for action in ACTIONS}
    for stage in result.design_stages:
        used = stage.emergency
        for (t, action), energy in (used.mw * used.hours).groupby(
                [used.period, used.action]).sum().items():
            if int(t) in position:
                mwh[action][position[int(t)]] += energy
    awards = result.awards
    paid = awards.payment.groupby(awards.period).sum()
    cost = paid.reindex(periods, fill_value=0.0).to_numpy() + params.emergency_cost(mwh)
    return mwh["curtail"] + mwh["shed"], mwh["shed"], cost


def pivotal_suppliers(market: Market, bids: pd.DataFrame, devices: Devices,
                      periods: np.ndarray, threshold: float = COST_THRESHOLD
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per period (PERIOD_COLUMNS) and per supplier and period (SUPPLIER_COLUMNS).

    `bids` are the offers to test (truthful offers for the day's structure, or learned
    ones), `periods` the periods with needs. Each supplier's absence is one more
    clearing of the same LP with its quantities set to zero (a warm re-solve).
    """
    params = market.case.params
    periods = np.asarray(periods, dtype=int)
    base = market.clear(bids, devices, ac_validate=False, trusted=True)
    unmet, shed, cost = period_outcome(base, params, periods)
    short = unmet if params.emergency_priority == "market-first" else period_outcome(
        _market_first(market).clear(bids, devices, ac_validate=False, trusted=True), params,
        periods)[0]
    rows = []
    quantity = bids.quantity.to_numpy()
    for provider in pd.unique(bids.provider_id):
        without = bids.assign(quantity=np.where(bids.provider_id == provider, 0.0, quantity))
        result = market.clear(without, devices, ac_validate=False, trusted=True)
        unmet_i, shed_i, cost_i = period_outcome(result, params, periods)
        more_unmet = unmet_i - unmet
        dearer = cost_i - cost
        # market-first: emergency action is no substitute for offers, so any more of it
        # (not only shed load) makes the supplier pivotal
        more = (more_unmet if params.emergency_priority == "market-first"
                else shed_i - shed)
        pivotal = (more > UNMET_TOLERANCE) | (dearer > threshold * np.maximum(cost, 1e-9))
        rows.append(pd.DataFrame({"provider_id": provider, "period": periods,
                                  "unmet_increase_mwh": np.maximum(more_unmet, 0.0),
                                  "cost_increase": dearer, "pivotal": pivotal}))
    suppliers = (pd.concat(rows, ignore_index=True) if rows
                 else pd.DataFrame(columns=SUPPLIER_COLUMNS))
    count = suppliers.groupby("period").pivotal.sum().reindex(periods, fill_value=0)
    table = pd.DataFrame({"period": periods, "unmet_mwh": unmet, "cost": cost,
                          "scarce": short > UNMET_TOLERANCE,
                          "pivotal_suppliers": count.to_numpy().astype(int),
                          "pivotal": count.to_numpy() > 0})
    return table, suppliers[SUPPLIER_COLUMNS]


def _market_first(market: Market) -> Market:
    """The same market with every admitted offer used before emergency action."""
    params = dataclasses.replace(market.case.params, emergency_priority="market-first")
    return Market(market.case.with_params(params), market.design, market.pricing, warm=False)
