"""The clearing LP, built once from operating points, bids and a design stage.

Variables: the accepted quantity x_b in [0, q_b] of every admitted bid, then
non-negative slacks for unmet needs. With injections dP_n = sum(P_up) - sum(P_down)
(same for Q) and sensitivities S from the baseline AC state:

    min  sum_b price_b h_t x_b + VOLL h_t (sum_l s_l + sum_n w_n (s_n^lo + s_n^hi))
    CM:  sum_b a_lb x_b - s_l <= limit_l - loading_l               (MVA)
    VC:  v_low - V_n <= sum_b a_nb x_b + s_n^lo - s_n^hi <= v_high - V_n   (p.u.)
    CAP: cos(t_k) dP_d + sin(t_k) dQ_d <= max(S_d cos(pi/K), c_k) - c_k,
         c_k = cos(t_k) P0_d + sin(t_k) Q0_d                        (MVA)

h_t is the period length in hours. w_n converts a voltage deviation to MW-equivalent:
the P injection at bus n that would fix it alone, w_n = 1 / max(|dV_n/dP_n|, 1e-4). CAP rows are
the sides of a K-gon inscribed in the device's capability circle, relaxed to contain
the present operating point so that doing nothing is always feasible; only sides that
the offered quantities could reach are kept. The LP is engine-agnostic: rows are
row_lower <= A x <= row_upper, columns 0 <= x <= col_upper.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lfm_abm.market.bids import PRODUCT_SIGN, families, is_active
from lfm_abm.market.designs import Stage
from lfm_abm.market.params import MarketParams
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.operating_points import OperatingPoint
from lfm_abm.network.sensitivities import mw_per_pu

SQRT3 = math.sqrt(3.0)
#: Floor on |dV/dP| when converting voltage need to MW-equivalent (p.u. per MW).
DEVICE_COLUMNS = ["device_id", "period", "p_mw", "q_mvar", "s_mva"]


@dataclass(frozen=True)
class PeriodRows:
    """The network rows of one period and their coefficients for every PQ bus.

    coef_p/coef_q: (rows x buses) change of the row's quantity (MVA or p.u.) per MW/MVAr
    injected at each bus. Bid coefficients and locational prices are read from them.
    """

    period: int
    hours: float
    rows: np.ndarray  # positions of these rows in the LP
    buses: pd.Index
    coef_p: np.ndarray
    coef_q: np.ndarray


@dataclass
class LinearProgram:
    """Engine-agnostic clearing LP plus the bookkeeping to read its solution back."""

    cost: np.ndarray  # EUR per unit of each column
    col_upper: np.ndarray
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    bid_index: np.ndarray  # position in the bid table of each bid column
    rows: pd.DataFrame  # per row: period, service, element, element_id, value, unit, mw_per_unit
    slack_row: np.ndarray  # LP row of each slack column
    periods: list[PeriodRows]
    signature: str  # identity of the bid slots: same signature -> same structure
    build_quantity: np.ndarray  # bid quantities the capability rows were selected for
    bid_hours: np.ndarray  # period length of each bid column
    table_signature: str = ""  # signature of the whole bid table the columns came from

    @functools.cached_property
    def is_capability_row(self) -> np.ndarray:
        """True for device capability rows (their duals are not locational)."""
        return (self.rows.service == "CAP").to_numpy()

    @functools.cached_property
    def bid_matrix_t(self) -> sp.csr_matrix:
        """Transpose of the bid columns (prices read the duals through it every round)."""
        return self.matrix[:, : self.n_bids].T.tocsr()

    @property
    def n_bids(self) -> int:
        """Number of bid columns (they come first)."""
        return len(self.bid_index)

    @property
    def n_cols(self) -> int:
        """Number of columns (bids then slacks)."""
        return len(self.cost)


def bid_signature(bids: pd.DataFrame) -> str:
    """What fixes the LP structure: which slots (bus, period, product, device) bid, in order."""
    digest = hashlib.sha1(bids.bus.to_numpy(dtype=np.int64).tobytes())
    digest.update(bids.period.to_numpy(dtype=np.int64).tobytes())
    for column in ("product", "device_id"):
        digest.update(pd.util.hash_array(bids[column].to_numpy(dtype=object)).tobytes())
    return digest.hexdigest()


def admitted(bids: pd.DataFrame, stage: Stage, buses: pd.Index, n_periods: int) -> np.ndarray:
    """Positions of bids that take part in a stage: admitted product, PQ bus, valid period."""
    ok = (families(bids["product"]).isin(stage.products) & bids.bus.isin(buses)
          & bids.period.between(0, n_periods - 1))
    return np.flatnonzero(ok.to_numpy())


def _take(frame: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """Rows of a frame by index label, as a numpy array (no pandas alignment cost)."""
    return frame.to_numpy()[frame.index.get_indexer(ids)]


def _block(service: str, element: str, ids: np.ndarray, value: np.ndarray, unit: str,
           mw_per_unit: float | np.ndarray, lower, upper, coef_p: np.ndarray,
           coef_q: np.ndarray, cut: float = np.nan) -> dict:
    """Rows of one kind: metadata columns, bounds and coefficients per PQ bus."""
    n = len(ids)
    return {"meta": {"service": np.full(n, service, dtype=object),
                     "element": np.full(n, element, dtype=object),
                     "element_id": ids.astype(str), "value": np.asarray(value, dtype=float),
                     "unit": np.full(n, unit, dtype=object),
                     "mw_per_unit": np.broadcast_to(mw_per_unit, n).astype(float),
                     "cut": np.full(n, cut)},
            "lower": np.broadcast_to(lower, n).astype(float),
            "upper": np.broadcast_to(upper, n).astype(float), "coef_p": coef_p,
            "coef_q": coef_q}


def _network_rows(op: OperatingPoint, stage: Stage, limits: NeedLimits,
                  params: MarketParams) -> list[dict]:
    """Screened CM and VC rows of one period as blocks (metadata, bounds, coefficients)."""
    sens = op.sens
    assert sens is not None, "operating points need sensitivities to build a market"
    blocks = []
    if "CM" in stage.services:
        offsets = np.deg2rad(params.branch_cut_step) * (
            np.arange(params.branch_cuts) - (params.branch_cuts - 1) / 2)
        line = op.branches.line
        screened = ((line.i_ka >= params.cm_screen * line.max_i_ka * limits.cm_margin)
                    & line.index.isin(sens.di_dp.index)).to_numpy()
        if screened.any():
            line = line[screened]
            blocks += _branch_cuts("line", line.index.to_numpy(), line.loading_percent,
                                   (line.max_i_ka * limits.cm_margin).to_numpy(),
                                   (SQRT3 * line.vn_kv).to_numpy(), sens.line_phasors, offsets)
        trafo = op.branches.trafo
        target = 100.0 * limits.cm_margin
        screened = ((trafo.loading_percent >= params.cm_screen * target)
                    & trafo.index.isin(sens.dt_dp.index)).to_numpy()
        if screened.any():
            trafo = trafo[screened]
            blocks += _branch_cuts("trafo", trafo.index.to_numpy(), trafo.loading_percent,
                                   np.full(len(trafo), target),
                                   (trafo.sn_mva / 100.0).to_numpy(), sens.trafo_phasors,
                                   offsets)
    if "VC" in stage.services:
        vm = op.vm_pu
        near = ((vm > limits.v_high - params.vc_screen) | (vm < limits.v_low + params.vc_screen)
                ) & vm.index.isin(sens.buses)
        if near.any():
            vm = vm[near]
            ids = vm.index.to_numpy()
            dv_dp = _take(sens.dv_dp, ids)
            weight = mw_per_pu(dv_dp[np.arange(len(ids)), sens.buses.get_indexer(ids)])
            blocks.append(_block("VC", "bus", ids, vm.to_numpy(), "p.u.", weight,
                                 limits.v_low - vm.to_numpy(), limits.v_high - vm.to_numpy(),
                                 dv_dp, _take(sens.dv_dq, ids)))
    return blocks


_META_COLUMNS = ["service", "element", "element_id", "value", "unit", "mw_per_unit", "cut"]


def _branch_cuts(element: str, ids: np.ndarray, loading: pd.Series, limit: np.ndarray,
                 to_mva: np.ndarray, phasors, offsets: np.ndarray) -> list[dict]:
    """Rows bounding |I0 + dI| <= limit by tangents at angles arg(I0) + offset.

    Each tangent Re(exp(-j phi) (I0 + dI)) <= limit is a valid bound because |I| is at
    least any projection of I; the tangent at arg(I0) alone is the usual magnitude
    linearisation, the others catch flexibility that rotates the current (Q for a line
    that carries mostly P). Rows are scaled to MVA; all cuts of a branch share one slack.
    """
    current = phasors.current.to_numpy()[phasors.current.index.get_indexer(ids)]
    d_p, d_q = _take(phasors.d_dp, ids), _take(phasors.d_dq, ids)
    blocks = []
    for offset in offsets:
        turn = np.exp(-1j * (np.angle(current) + offset))
        blocks.append(_block("CM", element, ids, loading.to_numpy(), "MVA", 1.0, -np.inf,
                             (limit - np.real(turn * current)) * to_mva,
                             np.real(turn[:, None] * d_p) * to_mva[:, None],
                             np.real(turn[:, None] * d_q) * to_mva[:, None],
                             cut=float(np.rad2deg(offset))))
    return blocks


def _capability_rows(bids: pd.DataFrame, devices: pd.DataFrame | None, cuts: int,
                     quantity: np.ndarray) -> tuple[pd.DataFrame, tuple, np.ndarray]:
    """Inscribed-polygon rows for devices whose admitted bids could reach their circle.

    Returns the rows' metadata, their entries as (row, bid column, coefficient) arrays
    with rows numbered from 0, and their upper bounds.
    """
    empty = (pd.DataFrame(columns=["period", *_META_COLUMNS]),
             (np.zeros(0, int), np.zeros(0, int), np.zeros(0)), np.zeros(0))
    coupled = np.flatnonzero((bids.device_id != "").to_numpy())
    if len(coupled) == 0 or devices is None or devices.empty:
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
            "value": current[binding], "unit": "MVA", "mw_per_unit": 0.0, "cut": np.nan}))
        n_rows += len(binding)
    if not metas:
        return empty
    return (pd.concat(metas, ignore_index=True),
            (np.concatenate(rows), np.concatenate(cols), np.concatenate(values)),
            np.concatenate(upper))


def build_lp(points: list[OperatingPoint], bids: pd.DataFrame, stage: Stage,
             limits: NeedLimits, params: MarketParams,
             devices: pd.DataFrame | None = None) -> LinearProgram:
    """Assemble the clearing LP of one stage for all periods at once.

    Periods are independent blocks (no bid couples two periods). `bids` must be
    validated; bids the stage does not admit simply get no column.
    """
    buses = points[0].sens.buses
    bid_index = admitted(bids, stage, buses, len(points))
    chosen = bids.iloc[bid_index].reset_index(drop=True)
    quantity = chosen.quantity.to_numpy()
    hours = np.array([op.hours for op in points])[chosen.period.to_numpy()]
    sign = chosen["product"].map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(chosen["product"])
    bus_position = pd.Series(np.arange(len(buses)), index=buses)

    row_meta: list[dict] = []
    lower, upper, periods = [], [], []
    triplets_r, triplets_c, triplets_v = [], [], []
    n_rows = 0
    empty = np.zeros((0, len(buses)))
    for op in points:
        blocks = _network_rows(op, stage, limits, params)
        cp = np.vstack([b["coef_p"] for b in blocks]) if blocks else empty
        cq = np.vstack([b["coef_q"] for b in blocks]) if blocks else empty
        positions = n_rows + np.arange(len(cp))
        periods.append(PeriodRows(op.period, op.hours, positions, buses, cp, cq))
        if blocks:
            for b in blocks:
                row_meta.append({"period": np.full(len(b["lower"]), op.period), **b["meta"]})
                lower.append(b["lower"])
                upper.append(b["upper"])
            cols = np.flatnonzero(chosen.period.to_numpy() == op.period)
            if len(cols):
                at = bus_position[chosen.bus.to_numpy()[cols]].to_numpy()
                block = np.where(is_p[cols][None, :], cp[:, at], cq[:, at]) * sign[cols]
                r, c = np.nonzero(np.abs(block) >= params.min_coefficient)
                triplets_r.append(positions[r])
                triplets_c.append(cols[c])
                triplets_v.append(block[r, c])
        n_rows += len(cp)

    cap_meta, (cap_r, cap_c, cap_v), cap_upper = _capability_rows(
        chosen, devices, params.capability_cuts, quantity)
    triplets_r.append(n_rows + cap_r)
    triplets_c.append(cap_c)
    triplets_v.append(cap_v)
    if len(cap_meta):
        row_meta.append({c: cap_meta[c].to_numpy() for c in cap_meta.columns})
        lower.append(np.full(len(cap_meta), -np.inf))
        upper.append(cap_upper)
    n_network = n_rows
    n_rows += len(cap_meta)

    columns = ["period", *_META_COLUMNS]
    rows = (pd.DataFrame({c: np.concatenate([m[c] for m in row_meta]) for c in columns})
            if row_meta else pd.DataFrame(columns=columns))
    rows["period"] = rows["period"].astype(int)
    row_lower = np.concatenate(lower) if lower else np.zeros(0)
    row_upper = np.concatenate(upper) if upper else np.zeros(0)

    # Slacks: one per congested branch (-1 on each of its cuts), two per VC row (+1 below
    # the band, -1 above it).
    network = rows.iloc[:n_network]
    cm = np.flatnonzero((network.service == "CM").to_numpy())
    vc = np.flatnonzero((network.service == "VC").to_numpy())
    branch_keys = network.iloc[cm][["period", "element", "element_id"]].astype(str).agg(
        "/".join, axis=1).to_numpy() if len(cm) else np.zeros(0, dtype=str)
    _, first, group = np.unique(branch_keys, return_index=True, return_inverse=True)
    n_bids = len(chosen)
    n_cm_slacks = len(first)
    slack_row = np.concatenate([cm[first], vc, vc]).astype(int)
    triplets_r += [cm, vc, vc]
    triplets_c += [n_bids + group,
                   n_bids + n_cm_slacks + np.arange(len(vc)),
                   n_bids + n_cm_slacks + len(vc) + np.arange(len(vc))]
    triplets_v += [-np.ones(len(cm)), np.ones(len(vc)), -np.ones(len(vc))]
    period_hours = np.array([points[t].hours for t in rows.period.to_numpy()[slack_row]])
    slack_cost = (params.voll * period_hours
                  * rows.mw_per_unit.to_numpy()[slack_row]) if len(slack_row) else np.zeros(0)

    matrix = sp.csc_matrix(
        (np.concatenate(triplets_v), (np.concatenate(triplets_r), np.concatenate(triplets_c))),
        shape=(n_rows, n_bids + len(slack_row)),
    )
    return LinearProgram(
        cost=np.concatenate([chosen.price.to_numpy() * hours, slack_cost]),
        col_upper=np.concatenate([quantity, np.full(len(slack_row), np.inf)]),
        matrix=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        bid_index=bid_index,
        rows=rows,
        slack_row=slack_row,
        periods=periods,
        signature=bid_signature(chosen),
        build_quantity=quantity.copy(),
        bid_hours=hours,
        table_signature=bid_signature(bids),
    )


def update_bids(lp: LinearProgram, bids: pd.DataFrame, stage: Stage,
                n_periods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(bid positions, costs, upper bounds) if `bids` fit the LP's structure, else None.

    The structure fits when the same slots bid in the same order and no quantity
    exceeds what the capability rows were selected for.
    """
    signature = bid_signature(bids)
    if signature != lp.table_signature:  # another bid table: check what is admitted
        index = admitted(bids, stage, lp.periods[0].buses, n_periods)
        if len(index) != lp.n_bids or bid_signature(bids.iloc[index]) != lp.signature:
            return None
        lp.table_signature, lp.bid_index = signature, index
    index = lp.bid_index
    quantity = bids.quantity.to_numpy()[index]
    if np.any(quantity > lp.build_quantity + 1e-12):
        return None
    return index, bids.price.to_numpy()[index] * lp.bid_hours, quantity
