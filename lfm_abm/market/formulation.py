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
the P injection at bus n that would fix it alone, w_n = 1 / |dV_n/dP_n|. CAP rows are
the sides of a K-gon inscribed in the device's capability circle, relaxed to contain
the present operating point so that doing nothing is always feasible; only sides that
the offered quantities could reach are kept. The LP is engine-agnostic: rows are
row_lower <= A x <= row_upper, columns 0 <= x <= col_upper.
"""

from __future__ import annotations

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

SQRT3 = math.sqrt(3.0)
#: Floor on |dV/dP| when converting voltage need to MW-equivalent (p.u. per MW).
MIN_VOLTAGE_SENSITIVITY = 1e-4
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
    signature: tuple  # identity of the bid slots: same signature -> same structure
    build_quantity: np.ndarray  # bid quantities the capability rows were selected for

    @property
    def n_bids(self) -> int:
        """Number of bid columns (they come first)."""
        return len(self.bid_index)

    @property
    def n_cols(self) -> int:
        """Number of columns (bids then slacks)."""
        return len(self.cost)


def bid_signature(bids: pd.DataFrame) -> tuple:
    """What fixes the LP structure: which slots (bus, period, product, device) bid, in order."""
    return (
        tuple(bids.bus.to_numpy().tolist()),
        tuple(bids.period.to_numpy().tolist()),
        tuple(bids["product"].to_numpy().tolist()),
        tuple(bids.device_id.to_numpy().tolist()),
    )


def admitted(bids: pd.DataFrame, stage: Stage, buses: pd.Index, n_periods: int) -> np.ndarray:
    """Positions of bids that take part in a stage: admitted product, PQ bus, valid period."""
    ok = (families(bids["product"]).isin(stage.products) & bids.bus.isin(buses)
          & bids.period.between(0, n_periods - 1))
    return np.flatnonzero(ok.to_numpy())


def _network_rows(op: OperatingPoint, stage: Stage, limits: NeedLimits,
                  params: MarketParams) -> tuple[pd.DataFrame, np.ndarray, np.ndarray,
                                                 np.ndarray, np.ndarray]:
    """Screened CM and VC rows of one period: metadata, bounds, coefficient blocks."""
    sens = op.sens
    assert sens is not None, "operating points need sensitivities to build a market"
    metas, lowers, uppers, coef_p, coef_q = [], [], [], [], []

    def add(meta: pd.DataFrame, lower, upper, cp, cq) -> None:
        if len(meta):
            metas.append(meta)
            lowers.append(np.broadcast_to(lower, len(meta)).astype(float))
            uppers.append(np.broadcast_to(upper, len(meta)).astype(float))
            coef_p.append(cp)
            coef_q.append(cq)

    if "CM" in stage.services:
        offsets = np.deg2rad(params.branch_cut_step) * (
            np.arange(params.branch_cuts) - (params.branch_cuts - 1) / 2)
        line = op.branches.line.loc[op.branches.line.index.intersection(sens.di_dp.index)]
        line = line[line.i_ka >= params.cm_screen * line.max_i_ka * limits.cm_margin]
        for args in _branch_cuts("line", line.index, line.loading_percent,
                                 (line.max_i_ka * limits.cm_margin).to_numpy(),
                                 (SQRT3 * line.vn_kv).to_numpy(), sens.line_phasors, offsets):
            add(*args)
        trafo = op.branches.trafo.loc[op.branches.trafo.index.intersection(sens.dt_dp.index)]
        target = 100.0 * limits.cm_margin
        trafo = trafo[trafo.loading_percent >= params.cm_screen * target]
        for args in _branch_cuts("trafo", trafo.index, trafo.loading_percent,
                                 np.full(len(trafo), target), (trafo.sn_mva / 100.0).to_numpy(),
                                 sens.trafo_phasors, offsets):
            add(*args)
    if "VC" in stage.services:
        vm = op.vm_pu.loc[op.vm_pu.index.intersection(sens.buses)]
        near = (vm > limits.v_high - params.vc_screen) | (vm < limits.v_low + params.vc_screen)
        vm = vm[near]
        self_sens = np.abs(np.diag(sens.dv_dp.loc[vm.index, vm.index].to_numpy()))
        weight = 1.0 / np.maximum(self_sens, MIN_VOLTAGE_SENSITIVITY)
        add(_meta("VC", "bus", vm.index, vm, "p.u.", weight),
            (limits.v_low - vm).to_numpy(), (limits.v_high - vm).to_numpy(),
            sens.dv_dp.loc[vm.index].to_numpy(), sens.dv_dq.loc[vm.index].to_numpy())
    if not metas:
        empty = np.zeros((0, len(sens.buses)))
        return pd.DataFrame(columns=_META_COLUMNS), np.zeros(0), np.zeros(0), empty, empty
    return (pd.concat(metas, ignore_index=True), np.concatenate(lowers),
            np.concatenate(uppers), np.vstack(coef_p), np.vstack(coef_q))


_META_COLUMNS = ["service", "element", "element_id", "value", "unit", "mw_per_unit"]


def _branch_cuts(element: str, ids: pd.Index, loading: pd.Series, limit: np.ndarray,
                 to_mva: np.ndarray, phasors, offsets: np.ndarray):
    """Rows bounding |I0 + dI| <= limit by tangents at angles arg(I0) + offset.

    Each tangent Re(exp(-j phi) (I0 + dI)) <= limit is a valid bound because |I| is at
    least any projection of I; the tangent at arg(I0) alone is the usual magnitude
    linearisation, the others catch flexibility that rotates the current (Q for a line
    that carries mostly P). Rows are scaled to MVA; all cuts of a branch share one slack.
    """
    if len(ids) == 0:
        return
    current = phasors.current.loc[ids].to_numpy()
    d_p = phasors.d_dp.loc[ids].to_numpy()
    d_q = phasors.d_dq.loc[ids].to_numpy()
    for offset in offsets:
        turn = np.exp(-1j * (np.angle(current) + offset))
        meta = _meta("CM", element, ids, loading, "MVA", 1.0)
        meta["cut"] = float(np.rad2deg(offset))
        yield (meta, -np.inf, (limit - np.real(turn * current)) * to_mva,
               np.real(turn[:, None] * d_p) * to_mva[:, None],
               np.real(turn[:, None] * d_q) * to_mva[:, None])


def _meta(service: str, element: str, ids: pd.Index, value: pd.Series, unit: str,
          mw_per_unit: float | np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "service": service, "element": element, "element_id": ids.astype(str),
        "value": np.asarray(value, dtype=float), "unit": unit,
        "mw_per_unit": np.broadcast_to(mw_per_unit, len(ids)).astype(float),
    })


def _capability_rows(bids: pd.DataFrame, devices: pd.DataFrame | None, cuts: int,
                     quantity: np.ndarray) -> tuple[pd.DataFrame, list, np.ndarray]:
    """Inscribed-polygon rows for devices whose admitted bids could reach their circle."""
    coupled = np.flatnonzero((bids.device_id != "").to_numpy())
    if len(coupled) == 0 or devices is None or devices.empty:
        return pd.DataFrame(columns=["period", *_META_COLUMNS]), [], np.zeros(0)
    state = devices.set_index(["device_id", "period"])
    angles = (2 * np.arange(cuts) + 1) * np.pi / cuts
    cos, sin = np.cos(angles), np.sin(angles)
    sign = bids["product"].map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(bids["product"])
    metas, entries, upper = [], [], []
    groups = bids.iloc[coupled].groupby(["device_id", "period"], sort=True).indices
    for (device, period), local in groups.items():
        members = coupled[local]
        p0, q0, s = state.loc[(device, period), ["p_mw", "q_mvar", "s_mva"]]
        current = cos * p0 + sin * q0
        rhs = np.maximum(s * math.cos(math.pi / cuts), current) - current
        coef = np.where(is_p[members][None, :], cos[:, None], sin[:, None]) * sign[members]
        reach = np.clip(coef, 0, None) @ quantity[members]
        for k in np.flatnonzero(reach > rhs + 1e-12):
            metas.append((int(period), "CAP", "device", str(device), float(current[k]),
                          "MVA", 0.0))
            entries.append((members, coef[k]))
            upper.append(rhs[k])
    meta = pd.DataFrame(metas, columns=["period", *_META_COLUMNS])
    return meta, entries, np.asarray(upper, dtype=float)


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
    hours = np.array([points[t].hours for t in chosen.period])
    sign = chosen["product"].map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(chosen["product"])
    bus_position = pd.Series(np.arange(len(buses)), index=buses)

    row_meta, lower, upper, periods = [], [], [], []
    triplets_r, triplets_c, triplets_v = [], [], []
    n_rows = 0
    for op in points:
        meta, lo, hi, cp, cq = _network_rows(op, stage, limits, params)
        positions = n_rows + np.arange(len(meta))
        periods.append(PeriodRows(op.period, op.hours, positions, buses, cp, cq))
        if len(meta):
            meta.insert(0, "period", op.period)
            row_meta.append(meta)
            lower.append(lo)
            upper.append(hi)
            cols = np.flatnonzero(chosen.period.to_numpy() == op.period)
            if len(cols):
                at = bus_position[chosen.bus.to_numpy()[cols]].to_numpy()
                block = np.where(is_p[cols][None, :], cp[:, at], cq[:, at]) * sign[cols]
                r, c = np.nonzero(np.abs(block) >= params.min_coefficient)
                triplets_r.append(positions[r])
                triplets_c.append(cols[c])
                triplets_v.append(block[r, c])
        n_rows += len(meta)

    cap_meta, cap_entries, cap_upper = _capability_rows(chosen, devices,
                                                        params.capability_cuts, quantity)
    for k, (members, coef) in enumerate(cap_entries):
        triplets_r.append(np.full(len(members), n_rows + k))
        triplets_c.append(members)
        triplets_v.append(coef)
    if len(cap_meta):
        row_meta.append(cap_meta)
        lower.append(np.full(len(cap_meta), -np.inf))
        upper.append(cap_upper)
    n_network = n_rows
    n_rows += len(cap_meta)

    rows = (pd.concat(row_meta, ignore_index=True) if row_meta
            else pd.DataFrame(columns=["period", *_META_COLUMNS]))
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
    )


def update_bids(lp: LinearProgram, bids: pd.DataFrame, stage: Stage,
                n_periods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(bid positions, costs, upper bounds) if `bids` fit the LP's structure, else None.

    The structure fits when the same slots bid in the same order and no quantity
    exceeds what the capability rows were selected for.
    """
    index = admitted(bids, stage, lp.periods[0].buses, n_periods)
    chosen = bids.iloc[index]
    if len(index) != lp.n_bids or bid_signature(chosen) != lp.signature:
        return None
    quantity = chosen.quantity.to_numpy()
    if np.any(quantity > lp.build_quantity + 1e-12):
        return None
    hours = np.array([lp.periods[t].hours for t in chosen.period])
    return index, chosen.price.to_numpy() * hours, quantity
