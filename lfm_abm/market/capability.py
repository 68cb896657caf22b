"""Device capability rows: the P-Q circle of one unit shared by several bids.

For each device d and period with admitted bids naming it, with dP_d and dQ_d the signed
sums of its accepted P and Q bids, the circle (P0 + dP)^2 + (Q0 + dQ)^2 <= S^2 is
replaced by the regular K-gon inscribed in it (side normals at t_k = (2k+1) pi / K):

    cos(t_k) dP_d + sin(t_k) dQ_d <= max(S cos(pi/K), c_k) - c_k,
    c_k = cos(t_k) P0_d + sin(t_k) Q0_d                                 (MVA)

The max relaxes a side the present point already violates, so doing nothing is always
feasible; only sides the offered quantities could reach are kept.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lfm_abm.market.bids import PRODUCT_SIGN, is_active
from lfm_abm.market.network_rows import META_COLUMNS

#: Columns of a device table: present injection (P0, Q0) and rating S per period.
DEVICE_COLUMNS = ["device_id", "period", "p_mw", "q_mvar", "s_mva"]


def capability_rows(bids: pd.DataFrame, devices: pd.DataFrame, cuts: int,
                    quantity: np.ndarray
                    ) -> tuple[pd.DataFrame, tuple, np.ndarray, np.ndarray]:
    """Inscribed-polygon rows for devices whose admitted bids could reach their circle.

    Returns the rows' metadata, their entries as (row, bid column, coefficient) arrays
    with rows numbered from 0, and their lower (none) and upper bounds.
    """
    empty = (pd.DataFrame(columns=["period", *META_COLUMNS]),
             (np.zeros(0, int), np.zeros(0, int), np.zeros(0)), np.zeros(0), np.zeros(0))
    if devices.empty:
        return empty
    coupled = np.flatnonzero(bids.device_id.isin(set(devices.device_id)).to_numpy())
    if len(coupled) == 0:
        return empty
    members = bids.iloc[coupled]
    key = pd.MultiIndex.from_arrays([members.device_id, members.period])
    groups, group = np.unique(key.codes[0] * (key.levels[1].size + 1) + key.codes[1],
                              return_inverse=True)
    first = np.unique(group, return_index=True)[1]
    state = devices.set_index(["device_id", "period"]).loc[key[first],
                                                          ["p_mw", "q_mvar", "s_mva"]]
    p0, q0, s = (state[c].to_numpy(dtype=float) for c in ("p_mw", "q_mvar", "s_mva"))
    sign = members["product"].map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(members["product"])
    offered = quantity[coupled]
    metas, rows, cols, values, upper = [], [], [], [], []
    n_rows = 0
    for k in range(cuts):
        angle = (2 * k + 1) * math.pi / cuts
        coef = np.where(is_p, math.cos(angle), math.sin(angle)) * sign
        reach = np.bincount(group, np.clip(coef, 0, None) * offered, minlength=len(groups))
        current = math.cos(angle) * p0 + math.sin(angle) * q0
        rhs = np.maximum(s * math.cos(math.pi / cuts), current) - current
        binding = np.flatnonzero(reach > rhs + 1e-12)
        if len(binding) == 0:
            continue
        row_of_group = np.full(len(groups), -1)
        row_of_group[binding] = n_rows + np.arange(len(binding))
        take = row_of_group[group] >= 0
        rows.append(row_of_group[group[take]])
        cols.append(coupled[take])
        values.append(coef[take])
        upper.append(rhs[binding])
        metas.append(pd.DataFrame({
            "period": key[first[binding]].get_level_values(1).astype(int),
            "service": "CAP", "element": "device",
            "element_id": key[first[binding]].get_level_values(0).astype(str),
            "value": current[binding], "unit": "MVA", "bought": False, "fix": False,
            "cut": np.nan}))
        n_rows += len(binding)
    if not metas:
        return empty
    upper = np.concatenate(upper)
    return (pd.concat(metas, ignore_index=True),
            (np.concatenate(rows), np.concatenate(cols), np.concatenate(values)),
            np.full(len(upper), -np.inf), upper)
