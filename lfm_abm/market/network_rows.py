"""Network rows of one period: limits a stage buys back, and limits it may not harm.

Every screened element (a branch loaded near its limit, a bus near the voltage band's
edges) gets rows in every stage, whatever the stage buys; the rows differ in their
bound:

* **bought** (the element's service is bought by the stage and, when the caller names
  the elements to fix, the element is one of them): the bound is the limit itself. An
  element already outside its limit must come back (its rows get an `unresolvable`
  slack); one inside must stay inside.
* **held** (no-harm, every other element): an element inside its limit must stay inside;
  one outside may not move further out, so its bound is relaxed to its present value.

Doing nothing therefore satisfies every held row, and the LP stays feasible. With
`MarketParams.no_harm = False` services a stage does not buy get no rows at all (the
single-service market of the earlier literature, for sensitivity analysis).

Branch rows bound the current phasor (line kA, transformer % loading at the more
loaded end) by tangents at angles arg(I0) + offset, scaled to MVA by kappa:

    kappa Re(e^{-j a_c} dI) <= kappa (Ibar - |I0| cos(offset_c)),
    Ibar = limit (bought or inside) or max(limit, |I0|) (held)

Tangents at fixed offsets form a polygon around the limit circle whose vertices lie
outside it (by 1/cos(step/2)); `BranchSet.cut` adds a tangent at any angle, so the
clearing can cut off a solution whose predicted current still exceeds the bound (see
`formulation.add_branch_cuts`).

Voltage rows are ranged (p.u.):

    lo - V0 <= dV <= hi - V0,  [lo, hi] = [v_low, v_high] (bought or inside),
                               [min(v_low, V0), max(v_high, V0)] (held)
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.market.designs import Stage
from lfm_abm.market.params import MarketParams
from lfm_abm.network.needs import NEED_EPS, NeedLimits
from lfm_abm.network.operating_points import OperatingPoint

SQRT3 = math.sqrt(3.0)
#: Row metadata columns (besides `period`), one value per LP row.
META_COLUMNS = ["service", "element", "element_id", "value", "unit", "bought", "fix", "cut"]
#: An element to fix: (period, element kind, pandapower id), e.g. (3, "line", 12).
ElementKey = tuple[int, str, int]


def take(frame: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """Rows of a frame by index label, as a numpy array (no pandas alignment cost)."""
    return frame.to_numpy()[frame.index.get_indexer(ids)]


def block(service: str, element: str, ids: np.ndarray, value: np.ndarray, unit: str,
          lower, upper, coef_p: np.ndarray, coef_q: np.ndarray, bought: np.ndarray,
          fix: np.ndarray, cut: float = np.nan) -> dict:
    """Rows of one kind: metadata columns, bounds and coefficients per PQ bus.

    `bought`: the stage buys the element's service; `fix`: the element is outside its
    limit and must come back (its rows carry the unresolvable slack).
    """
    n = len(ids)
    return {"meta": {"service": np.full(n, service, dtype=object),
                     "element": np.full(n, element, dtype=object),
                     "element_id": ids.astype(str), "value": np.asarray(value, dtype=float),
                     "unit": np.full(n, unit, dtype=object), "bought": bought, "fix": fix,
                     "cut": np.full(n, cut)},
            "lower": np.broadcast_to(lower, n).astype(float),
            "upper": np.broadcast_to(upper, n).astype(float), "coef_p": coef_p,
            "coef_q": coef_q}


def _bought(op: OperatingPoint, element: str, ids: np.ndarray, service_bought: bool,
            fix: Collection[ElementKey] | None) -> np.ndarray:
    """Which elements the stage must bring within their limits."""
    if not service_bought:
        return np.zeros(len(ids), dtype=bool)
    if fix is None:
        return np.ones(len(ids), dtype=bool)
    return np.array([(op.period, element, int(i)) in fix for i in ids], dtype=bool)


@dataclass(frozen=True)
class BranchSet:
    """Screened branches of one kind in one period: what a tangent cut needs.

    Currents in the branch's own unit (kA for lines, % for trafos); `to_mva` converts.
    """

    element: str
    ids: np.ndarray
    loading: np.ndarray  # % at the operating point (row metadata)
    current: np.ndarray  # complex I0
    d_p: np.ndarray  # complex dI per MW injected at each PQ bus (branches x buses)
    d_q: np.ndarray  # complex dI per MVAr
    bound: np.ndarray  # Ibar: the limit, or max(limit, |I0|) where held
    to_mva: np.ndarray
    bought: np.ndarray
    fix: np.ndarray

    def predicted(self, dp: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Complex current after injection changes dp, dq (per PQ bus) in the linear model."""
        return self.current + self.d_p @ dp + self.d_q @ dq

    def cut(self, at: np.ndarray, angle: np.ndarray, offset: float = np.nan) -> dict:
        """Tangent rows Re(e^{-j angle} (I0 + dI)) <= Ibar of branches `at`, in MVA."""
        turn = np.exp(-1j * angle)
        scale = self.to_mva[at]
        return block("CM", self.element, self.ids[at], self.loading[at], "MVA", -np.inf,
                     (self.bound[at] - np.real(turn * self.current[at])) * scale,
                     np.real(turn[:, None] * self.d_p[at]) * scale[:, None],
                     np.real(turn[:, None] * self.d_q[at]) * scale[:, None], self.bought[at],
                     self.fix[at], cut=offset)


def network_rows(op: OperatingPoint, stage: Stage, limits: NeedLimits, params: MarketParams,
                 fix: Collection[ElementKey] | None = None
                 ) -> tuple[list[dict], list[BranchSet]]:
    """Screened CM and VC rows of one period as blocks, and the screened branches.

    `fix` restricts the bought elements to these keys (default: every element of a
    bought service); the others are held.
    """
    sens = op.sens
    assert sens is not None, "operating points need sensitivities to build a market"
    branches: list[BranchSet] = []
    if "CM" in stage.services or params.no_harm:
        bought = "CM" in stage.services
        line = op.branches.line
        screened = ((line.i_ka >= params.cm_screen * line.max_i_ka * limits.cm_margin)
                    & line.index.isin(sens.di_dp.index)).to_numpy()
        if screened.any():
            line = line[screened]
            ids = line.index.to_numpy()
            branches.append(_branch_set("line", ids, line.loading_percent.to_numpy(),
                                        (line.max_i_ka * limits.cm_margin).to_numpy(),
                                        (SQRT3 * line.vn_kv).to_numpy(), sens.line_phasors,
                                        _bought(op, "line", ids, bought, fix)))
        trafo = op.branches.trafo
        target = 100.0 * limits.cm_margin
        screened = ((trafo.loading_percent >= params.cm_screen * target)
                    & trafo.index.isin(sens.dt_dp.index)).to_numpy()
        if screened.any():
            trafo = trafo[screened]
            ids = trafo.index.to_numpy()
            branches.append(_branch_set("trafo", ids, trafo.loading_percent.to_numpy(),
                                        np.full(len(trafo), target),
                                        (trafo.sn_mva / 100.0).to_numpy(), sens.trafo_phasors,
                                        _bought(op, "trafo", ids, bought, fix)))
    offsets = np.deg2rad(params.branch_cut_step) * (
        np.arange(params.branch_cuts) - (params.branch_cuts - 1) / 2)
    everyone = [np.arange(len(b.ids)) for b in branches]
    blocks = [b.cut(at, np.angle(b.current) + offset, float(np.rad2deg(offset)))
              for offset in offsets for b, at in zip(branches, everyone, strict=True)]
    if "VC" in stage.services or params.no_harm:
        vm = op.vm_pu
        near = ((vm > limits.v_high - params.vc_screen) | (vm < limits.v_low + params.vc_screen)
                ) & vm.index.isin(sens.buses)
        if near.any():
            vm = vm[near]
            ids = vm.index.to_numpy()
            v0 = vm.to_numpy()
            bought = _bought(op, "bus", ids, "VC" in stage.services, fix)
            lower = np.where(bought, limits.v_low, np.minimum(limits.v_low, v0)) - v0
            upper = np.where(bought, limits.v_high, np.maximum(limits.v_high, v0)) - v0
            outside = (v0 > limits.v_high + NEED_EPS) | (v0 < limits.v_low - NEED_EPS)
            blocks.append(block("VC", "bus", ids, v0, "p.u.", lower, upper,
                                take(sens.dv_dp, ids), take(sens.dv_dq, ids), bought,
                                bought & outside))
    return blocks, branches


def _branch_set(element: str, ids: np.ndarray, loading: np.ndarray, limit: np.ndarray,
                to_mva: np.ndarray, phasors, bought: np.ndarray) -> BranchSet:
    """Screened branches with their bound: the limit if bought, else no worse than now.

    Each tangent Re(exp(-j phi) (I0 + dI)) <= Ibar is a valid bound because |I| is at
    least any projection of I; the tangent at arg(I0) alone is the usual magnitude
    linearisation, the others catch flexibility that rotates the current (Q for a line
    that carries mostly P). All cuts of a branch share one slack.
    """
    current = phasors.current.to_numpy()[phasors.current.index.get_indexer(ids)]
    magnitude = np.abs(current)
    outside = magnitude > limit + NEED_EPS / to_mva
    return BranchSet(element, ids, loading, current, take(phasors.d_dp, ids),
                     take(phasors.d_dq, ids), np.where(bought, limit, np.maximum(limit, magnitude)),
                     to_mva, bought, bought & outside)
