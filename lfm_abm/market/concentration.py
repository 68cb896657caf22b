"""Concentration per locational market: the Herfindahl-Hirschman index of each need.

A need (a congested branch or a bus outside its band, in one period) defines its own
market: the bids with non-zero relief for it, i.e. whose full quantity would change the
need's quantity in the helpful direction at the baseline sensitivities (MVA of overload
removed per MW, or p.u. of voltage corrected). Each round the relief the accepted bids
deliver to a need is split by FSP; the need's HHI is the sum of squared shares x 10 000
(Herfindahl 1950, Hirschman 1945; 10 000 = one FSP delivers it all). A round's figure
is the mean over needs weighted by the share of each need the accepted bids relieve
(dimensionless, so CM needs in MVA and VC needs in p.u. average together); a need
nobody relieved does not count. Pooling periods, buses or products
system-wide, as a single HHI does, would hide that every need is a small market.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lfm_abm.market.bids import PRODUCT_SIGN, is_active
from lfm_abm.market.clearing import MarketCase


def relief_per_unit(case: MarketCase, need: NamedTuple, offers: pd.DataFrame) -> np.ndarray:
    """Per-unit relief of `need` by each offer (>= 0), in the need's unit per MW/MVAr."""
    point = case.points[int(need.period)]
    sens = point.sens
    is_p = is_active(offers["product"])
    sign = offers["product"].map(PRODUCT_SIGN).to_numpy()
    if need.element == "bus":
        dp, dq = sens.dv_dp.loc[need.element_id], sens.dv_dq.loc[need.element_id]
        direction = -1.0 if need.value > need.limit else 1.0  # lower V if too high
    else:
        line = need.element == "line"
        dp = (sens.di_dp if line else sens.dt_dp).loc[need.element_id]
        dq = (sens.di_dq if line else sens.dt_dq).loc[need.element_id]
        branch = getattr(point.branches, need.element).loc[need.element_id]
        to_mva = math.sqrt(3) * branch.vn_kv if line else branch.sn_mva / 100.0
        dp, dq = dp * to_mva, dq * to_mva
        direction = -1.0  # reduce loading
    per_unit = np.where(is_p, dp.reindex(offers.bus).to_numpy(),
                        dq.reindex(offers.bus).to_numpy()) * sign * direction
    return np.clip(np.nan_to_num(per_unit), 0.0, None)


class NeedMarkets:
    """The locational markets of a day's needs over a fixed table of offers.

    Built once per day (the offer book keeps its order): each round's HHI sums the
    relief of the awarded offers per need and provider (one bincount).
    """

    def __init__(self, case: MarketCase, needs: pd.DataFrame, offers: pd.DataFrame) -> None:
        rows, cols, values = [], [], []
        period = offers.period.to_numpy()
        for i, need in enumerate(needs.itertuples(index=False)):
            here = np.flatnonzero(period == need.period)
            relief = relief_per_unit(case, need, offers.iloc[here])
            keep = relief > 0
            rows.append(np.full(keep.sum(), i))
            cols.append(here[keep])
            values.append(relief[keep] / need.need)  # share of the need per MW
        shape = (len(needs), len(offers))
        self.relief = (sp.csr_matrix((np.concatenate(values), (np.concatenate(rows),
                                                                np.concatenate(cols))), shape=shape)
                       if rows else sp.csr_matrix(shape))
        codes, providers = pd.factorize(offers.provider_id)
        self.n_providers = len(providers)
        # per relief entry: its need, and the (need, provider) cell it adds to
        need_of = np.repeat(np.arange(shape[0]), np.diff(self.relief.indptr))
        self._cell = need_of * self.n_providers + codes[self.relief.indices]

    def hhi(self, awarded: np.ndarray) -> float:
        """Mean HHI (0-10 000) over needs, weighted by the share of each need relieved.

        `awarded` is MW per offer; NaN if no need was relieved.
        """
        n_needs = self.relief.shape[0]
        by_provider = np.bincount(self._cell, self.relief.data * awarded[self.relief.indices],
                                  minlength=n_needs * self.n_providers
                                  ).reshape(n_needs, self.n_providers)
        total = by_provider.sum(axis=1)
        relieved = total > 0
        if not relieved.any():
            return float("nan")
        shares = by_provider[relieved] / total[relieved, None]
        return float(np.average((shares ** 2).sum(axis=1) * 10_000, weights=total[relieved]))
