"""AC sensitivities from the converged Newton-Raphson Jacobian.

Units and signs: every sensitivity is per MW (or MVAr) of net **injection** at a bus
(generation up or load down is +1). Voltage sensitivities are in p.u. of |V|, line
sensitivities in kA of current magnitude at the line end that carries more current,
transformer sensitivities in percent of loading (pandapower's current-based loading,
the more loaded side).

Derivation: with the power-flow mismatch F(x) = S_calc(V) - S_inj = 0 in the unknowns
x = (angle at PV+PQ buses, |V| at PQ buses), a small injection change dS gives
J dx = dS. Solving J against unit injections gives dx per p.u. power; dividing by
`baseMVA` (= net.sn_mva) gives per MW. Branch current sensitivities follow from
I_f = Y_f V: dI_f = Y_f dV with dV_i = V_i (j dtheta_i + d|V_i| / |V_i|) and
d|I_f| = Re(conj(I_f) dI_f) / |I_f|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd
import scipy.sparse as sp
from pandapower.pypower.dSbus_dV import dSbus_dV
from scipy.sparse.linalg import splu

from lfm_abm.errors import InputError

SQRT3 = float(np.sqrt(3.0))
BASE_KV = 9  # pypower bus column with the base voltage in kV
F_BUS, T_BUS = 0, 1  # pypower branch columns


@dataclass(frozen=True)
class BranchPhasors:
    """Complex branch current at its more loaded end and its change per MW/MVAr injected.

    Units: kA for lines, percent of rating for trafos. The magnitude sensitivity is
    Re(conj(I) dI) / |I|; the complex form lets the market bound |I| with several
    linear cuts instead of one tangent, which matters when flexibility rotates I.
    """

    current: pd.Series  # complex
    d_dp: pd.DataFrame  # complex, per MW
    d_dq: pd.DataFrame  # complex, per MVAr

    def magnitude_sensitivity(self, kind: str) -> pd.DataFrame:
        """d|I|/d(injection) of kind 'p' or 'q' (real, same units as the current)."""
        d = self.d_dp if kind == "p" else self.d_dq
        current = self.current.to_numpy()
        magnitude = np.abs(current)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(magnitude > 0, np.conj(current) / magnitude, 0.0)
        return pd.DataFrame(np.real(unit[:, None] * d.to_numpy()), index=d.index,
                            columns=d.columns)


@dataclass(frozen=True)
class Sensitivities:
    """Linear response of voltages and branch loadings to bus injections (per MW/MVAr).

    Columns of every frame are pandapower bus ids of PQ buses (where an injection can
    change the state); rows are pandapower bus, line or trafo ids.
    """

    dv_dp: pd.DataFrame  # p.u. |V| per MW injected
    dv_dq: pd.DataFrame  # p.u. |V| per MVAr injected
    di_dp: pd.DataFrame  # kA of line current per MW injected
    di_dq: pd.DataFrame  # kA of line current per MVAr injected
    dt_dp: pd.DataFrame  # percent trafo loading per MW injected
    dt_dq: pd.DataFrame  # percent trafo loading per MVAr injected
    line_phasors: BranchPhasors  # complex line current (kA) and its sensitivities
    trafo_phasors: BranchPhasors  # complex trafo loading (percent) and its sensitivities

    @property
    def buses(self) -> pd.Index:
        """Pandapower bus ids with an injection column."""
        return self.dv_dp.columns


def internal_branch_rows(net: pp.pandapowerNet, element: str) -> tuple[pd.Index, np.ndarray]:
    """Pandapower ids of in-service branches of `element` and their internal ppc rows."""
    lookup = net._pd2ppc_lookups["branch"]
    if element not in lookup or len(net[element]) == 0:
        return pd.Index([], dtype=int), np.zeros(0, dtype=int)
    start, end = lookup[element]
    branch_is = net._ppc["internal"]["branch_is"]
    internal_of_ppc = np.cumsum(branch_is) - 1
    rows = np.arange(start, end)
    keep = branch_is[rows] & net[element].in_service.to_numpy()
    return net[element].index[keep], internal_of_ppc[rows[keep]]


def _require_converged_nr(net: pp.pandapowerNet) -> dict:
    ppc = getattr(net, "_ppc", None)
    if not ppc or "internal" not in ppc or "Ybus" not in ppc["internal"]:
        raise InputError("run an AC power flow (pandapower runpp) on the net first",
                         field="net")
    if not ppc.get("success", False) or not net.get("converged", False):
        raise InputError("the last power flow did not converge", field="net")
    return ppc["internal"]


def sensitivities(net: pp.pandapowerNet, buses: list[int] | None = None,
                  voltages: np.ndarray | None = None,
                  internal: dict | None = None) -> Sensitivities:
    """Sensitivities of |V|, line current and trafo loading to P and Q injections.

    `net` must hold a converged Newton-Raphson power flow. `buses` restricts the
    injection columns to these pandapower buses (only those columns are solved, with
    one sparse LU of the Jacobian); by default all PQ buses are computed. Buses merged
    by closed bus-bus switches share one internal bus and get identical columns.
    `voltages` (complex, in the net's internal bus order) linearises at another state of
    the same grid, e.g. one solved in a batch: the Jacobian depends only on Ybus and V.
    `internal` (pandapower's internal model of a converged run of the same topology)
    replaces the net's last one: another tap position changes Ybus, not the topology.
    """
    internal = internal or _require_converged_nr(net)
    Ybus = internal["Ybus"]
    V = internal["V"] if voltages is None else voltages
    pv, pq = internal["pv"], internal["pq"]
    base_mva = float(internal["baseMVA"])
    pvpq = np.r_[pv, pq]
    n_ang, n_mag = len(pvpq), len(pq)

    bus_lookup = net._pd2ppc_lookups["bus"]
    in_service = net.bus.index[net.bus.in_service.to_numpy()]
    internal_of_bus = pd.Series(bus_lookup[in_service.to_numpy()], index=in_service)
    n_internal = Ybus.shape[0]
    internal_of_bus = internal_of_bus[internal_of_bus < n_internal]
    pq_position = pd.Series(np.arange(n_mag), index=pq)
    pvpq_position = pd.Series(np.arange(n_ang), index=pvpq)

    candidates = internal_of_bus[internal_of_bus.isin(pq)]
    if buses is not None:
        unknown = sorted(set(buses) - set(candidates.index))
        if unknown:
            raise InputError(f"bus {unknown[0]} is not an in-service PQ bus", field="buses",
                             allowed=list(candidates.index))
        candidates = candidates.loc[list(buses)]
    columns = candidates.index

    # Right-hand sides: one unit P and one unit Q injection per selected internal bus.
    targets = np.unique(candidates.to_numpy())
    col_of_target = pd.Series(np.arange(len(targets)), index=targets)
    k = len(targets)
    rhs = np.zeros((n_ang + n_mag, 2 * k))
    rhs[pvpq_position[targets].to_numpy(), np.arange(k)] = 1.0
    rhs[n_ang + pq_position[targets].to_numpy(), k + np.arange(k)] = 1.0

    dS_dVm, dS_dVa = dSbus_dV(Ybus, V)
    J = sp.bmat(
        [
            [dS_dVa[pvpq][:, pvpq].real, dS_dVm[pvpq][:, pq].real],
            [dS_dVa[pq][:, pvpq].imag, dS_dVm[pq][:, pq].imag],
        ],
        format="csc",
    )
    x = splu(J).solve(rhs) / base_mva  # state change per MW / MVAr

    d_ang = np.zeros((n_internal, 2 * k))
    d_mag = np.zeros((n_internal, 2 * k))
    d_ang[pvpq] = x[:n_ang]
    d_mag[pq] = x[n_ang:]
    Vm = np.abs(V)
    dV = V[:, None] * (1j * d_ang + d_mag / Vm[:, None])  # complex voltage change

    target_cols = col_of_target[candidates.to_numpy()].to_numpy()

    def frame(block: np.ndarray, index: pd.Index, quantity: int) -> pd.DataFrame:
        cols = target_cols + quantity * k
        return pd.DataFrame(block[:, cols], index=index, columns=columns)

    v_rows = internal_of_bus.to_numpy()
    dv = d_mag[v_rows]

    (line_ids, line_rows, *line_scale), (trafo_ids, trafo_rows, *trafo_scale) = (
        _branch_scales(net, internal, element) for element in ("line", "trafo"))
    line = _loaded_end_currents(internal, line_rows, V, dV, *line_scale)
    tr = _loaded_end_currents(internal, trafo_rows, V, dV, *trafo_scale)

    def phasors(currents: tuple[np.ndarray, ...], ids: pd.Index) -> BranchPhasors:
        current, d_current, _ = currents
        return BranchPhasors(pd.Series(current, index=ids), frame(d_current, ids, 0),
                             frame(d_current, ids, 1))

    line_phasors, trafo_phasors = phasors(line, line_ids), phasors(tr, trafo_ids)
    return Sensitivities(
        dv_dp=frame(dv, internal_of_bus.index, 0),
        dv_dq=frame(dv, internal_of_bus.index, 1),
        di_dp=line_phasors.magnitude_sensitivity("p"),
        di_dq=line_phasors.magnitude_sensitivity("q"),
        dt_dp=trafo_phasors.magnitude_sensitivity("p"),
        dt_dq=trafo_phasors.magnitude_sensitivity("q"),
        line_phasors=line_phasors,
        trafo_phasors=trafo_phasors,
    )


def _branch_scales(net: pp.pandapowerNet, internal: dict, element: str
                   ) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """In-service branch ids, internal rows, and the p.u. current's scale at each end.

    Lines: kA = p.u. current x baseMVA / (sqrt(3) x base kV), the same at both ends.
    Trafos: percent loading = kA x rated kV of that side x sqrt(3) / rating x 100.
    """
    ids, rows = internal_branch_rows(net, element)
    base_mva = float(internal["baseMVA"])
    branch, bus = internal["branch"], internal["bus"]

    def base_kv(end: int) -> np.ndarray:
        return bus[branch[rows, end].real.astype(int), BASE_KV]

    if element == "line":
        scale = base_mva / (SQRT3 * base_kv(F_BUS))
        return ids, rows, scale, scale
    trafo = net.trafo.loc[ids]
    rating = (trafo.sn_mva * trafo.df * trafo.parallel).to_numpy()
    return (ids, rows, base_mva * trafo.vn_hv_kv.to_numpy() / base_kv(F_BUS) / rating * 100,
            base_mva * trafo.vn_lv_kv.to_numpy() / base_kv(T_BUS) / rating * 100)


def branch_currents(net: pp.pandapowerNet, ends: dict[str, np.ndarray] | None = None
                    ) -> tuple[dict[str, pd.Series], dict[str, np.ndarray]]:
    """Complex current of every line (kA) and trafo (% loading) after the net's last run.

    At the more loaded end, as `sensitivities` reports it, or at the `ends` returned by an
    earlier call (True = from end), so that two states of one grid can be differenced.
    """
    internal = _require_converged_nr(net)
    currents, chosen = {}, {}
    for element in ("line", "trafo"):
        ids, rows, *scale = _branch_scales(net, internal, element)
        current, _, chosen[element] = _loaded_end_currents(
            internal, rows, internal["V"], np.zeros((len(internal["V"]), 0)), *scale,
            from_end=None if ends is None else ends[element])
        currents[element] = pd.Series(current, index=ids)
    return currents, chosen


def _loaded_end_currents(internal: dict, rows: np.ndarray, V: np.ndarray, dV: np.ndarray,
                         from_scale: np.ndarray, to_scale: np.ndarray,
                         from_end: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex current at the more loaded end of each branch and its change per injection.

    `from_scale`/`to_scale` convert p.u. current at each end to the reported unit (kA
    for lines, percent loading for trafos); the end with the larger scaled magnitude is
    the one pandapower reports, so that end is returned, in its scaled unit, unless
    `from_end` chooses the ends. The third array says which end was used.
    """
    if len(rows) == 0:
        return (np.zeros(0, dtype=complex), np.zeros((0, dV.shape[1]), dtype=complex),
                np.zeros(0, dtype=bool))
    Yf, Yt = internal["Yf"][rows], internal["Yt"][rows]
    If, It = Yf @ V, Yt @ V
    if from_end is None:
        from_end = np.abs(If) * from_scale >= np.abs(It) * to_scale
    scale = np.where(from_end, from_scale, to_scale)
    current = np.where(from_end, If, It) * scale
    d_current = np.where(from_end[:, None], Yf @ dV, Yt @ dV) * scale[:, None]
    return current, d_current, from_end
