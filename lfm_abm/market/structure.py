"""Locational market structure: who can solve which need, and who is pivotal.

For a need (a congested branch or a bus outside the band, in one period) an offer's
*effective* capacity is what its full quantity would relieve: capacity x the
sensitivity of the need's quantity to the offer's bus and product, counted only in the
helpful direction (MVA of overload removed, or p.u. of voltage corrected). Summing per
provider gives each FSP's effective supply for the need. Then, per need:

* residual supply index RSI = (total effective supply - largest provider's) / need;
* a provider is pivotal when the need cannot be met without it (RSI < 1 for the
  largest), the sensitivity-weighted analogue of the pivotal-supplier test;
* the locational pivotal-supplier index (PSI) of a market is the share of needs that
  have a pivotal supplier. A need nobody can relieve (no supply) has RSI 0 and counts
  as pivotal too: the DSO has no competitive alternative there either.
Only products the design admits and services it buys count, so a design's PSI shows
how much market power its product set leaves to single FSPs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lfm_abm.market.bids import PRODUCT_SIGN, families, is_active
from lfm_abm.market.clearing import MarketCase
from lfm_abm.market.designs import Design

STRUCTURE_COLUMNS = ["period", "service", "element", "element_id", "need", "supply",
                     "largest_supplier", "largest_supply", "rsi", "pivotal"]


def _relief(case: MarketCase, need: pd.Series, offers: pd.DataFrame) -> np.ndarray:
    """Per-unit relief of `need` by each offer (>= 0), in the need's unit per MW/MVAr."""
    sens = case.points[int(need.period)].sens
    is_p = is_active(offers["product"])
    sign = offers["product"].map(PRODUCT_SIGN).to_numpy()
    if need.element == "bus":
        dp, dq = sens.dv_dp.loc[need.element_id], sens.dv_dq.loc[need.element_id]
        direction = -1.0 if need.value > need.limit else 1.0  # lower V if too high
    else:
        table = "line" if need.element == "line" else "trafo"
        dp = getattr(sens, "di_dp" if table == "line" else "dt_dp").loc[need.element_id]
        dq = getattr(sens, "di_dq" if table == "line" else "dt_dq").loc[need.element_id]
        branch = getattr(case.points[int(need.period)].branches, table).loc[need.element_id]
        to_mva = (math.sqrt(3) * branch.vn_kv if table == "line" else branch.sn_mva / 100.0)
        dp, dq = dp * to_mva, dq * to_mva
        direction = -1.0  # reduce loading
    per_unit = np.where(is_p, dp.reindex(offers.bus).to_numpy(),
                        dq.reindex(offers.bus).to_numpy()) * sign * direction
    return np.clip(np.nan_to_num(per_unit), 0.0, None)


def pivotal_suppliers(case: MarketCase, offers: pd.DataFrame, design: Design) -> pd.DataFrame:
    """One row per baseline need of the design's services: supply, RSI, pivotal or not.

    `offers` has provider_id, bus, period, product and capacity (MW/MVAr).
    """
    needs = case.baseline_needs
    needs = needs[needs.service.isin(design.services)]
    offers = offers[families(offers["product"]).isin(design.products)]
    rows = []
    for need in needs.itertuples(index=False):
        here = offers[offers.period == need.period]
        effective = _relief(case, need, here) * here.capacity.to_numpy()
        by_provider = pd.Series(effective, index=here.provider_id.to_numpy()).groupby(
            level=0).sum()
        supply = float(by_provider.sum())
        largest = by_provider.idxmax() if len(by_provider) and supply > 0 else ""
        largest_supply = float(by_provider.max()) if len(by_provider) else 0.0
        rsi = (supply - largest_supply) / need.need if need.need > 0 else math.inf
        rows.append((need.period, need.service, need.element, need.element_id, need.need,
                     supply, largest, largest_supply, rsi, rsi < 1.0))
    return pd.DataFrame(rows, columns=STRUCTURE_COLUMNS)
