"""Hand-made operating points with round-number sensitivities for golden LP tests.

One line (id 0) whose loading is expressed so that 1 kA = 1 MVA (vn = 1/sqrt(3) kV),
and buses 1 and 2 (PQ). Sensitivities are given directly, so the LP can be solved on
paper.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lfm_abm.market.emergency import EmergencyCapacity
from lfm_abm.network.operating_points import BranchState, OperatingPoint
from lfm_abm.network.sensitivities import BranchPhasors, Sensitivities

BUSES = pd.Index([1, 2])


def make_point(period, vm, dv_dp, dv_dq, line_mva, line_limit, dline_dp, dline_dq,
               hours=1.0, line_angle=None) -> OperatingPoint:
    """An operating point with buses 1..n (all PQ) and lines 0..L-1; 1 kA = 1 MVA.

    `line_angle` (radians) rotates each line's current phasor; its sensitivities are
    given in-phase (real) unless complex arrays are passed.
    """
    vm = np.asarray(vm, dtype=float)
    buses = pd.Index(np.arange(1, len(vm) + 1))
    lines = pd.Index(np.arange(len(line_mva)))
    line_mva = np.asarray(line_mva, dtype=float)
    line_limit = np.broadcast_to(np.asarray(line_limit, dtype=float), line_mva.shape)
    line = pd.DataFrame({"i_ka": line_mva, "max_i_ka": line_limit,
                         "loading_percent": 100 * line_mva / line_limit,
                         "vn_kv": 1 / math.sqrt(3)}, index=lines)
    trafo = pd.DataFrame(columns=["loading_percent", "sn_mva", "vn_hv_kv"], dtype=float)
    angle = np.zeros(len(lines)) if line_angle is None else np.asarray(line_angle)

    def frame(values, index, dtype=float):
        return pd.DataFrame(np.asarray(values, dtype=dtype).reshape(len(index), len(buses)),
                            index=index, columns=buses)

    phasors = BranchPhasors(pd.Series(line_mva * np.exp(1j * angle), index=lines),
                            frame(dline_dp, lines, complex), frame(dline_dq, lines, complex))
    empty = pd.DataFrame(np.zeros((0, len(buses))), columns=buses)
    sens = Sensitivities(
        dv_dp=frame(dv_dp, buses), dv_dq=frame(dv_dq, buses),
        di_dp=phasors.magnitude_sensitivity("p"), di_dq=phasors.magnitude_sensitivity("q"),
        dt_dp=empty, dt_dq=empty, line_phasors=phasors,
        trafo_phasors=BranchPhasors(pd.Series([], dtype=complex), empty.astype(complex),
                                    empty.astype(complex)),
    )
    return OperatingPoint(period, f"t{period}", hours, pd.Series(vm, index=buses),
                          BranchState(line, trafo), sens)


def toy_point(period=0, *, line_mva=5.0, line_limit=10.0, dline_dp=(0.0, 0.0),
              dline_dq=(0.0, 0.0), vm=(1.0, 1.0), dv_dp=((0.01, 0.0), (0.0, 0.01)),
              dv_dq=((0.0, 0.0), (0.0, 0.0)), hours=1.0) -> OperatingPoint:
    """Two PQ buses (1, 2) and one line (0); sensitivities per MW injected."""
    return make_point(period, vm, dv_dp, dv_dq, [line_mva], line_limit, [dline_dp],
                      [dline_dq], hours)


def bids_frame(rows: list[tuple]) -> pd.DataFrame:
    """Bids from (bid_id, bus, period, product, quantity, price[, device_id]) tuples."""
    records = []
    for row in rows:
        bid_id, bus, period, product, quantity, price, *device = row
        records.append({"bid_id": bid_id, "provider_id": bid_id, "bus": bus, "period": period,
                        "product": product, "quantity": quantity, "price": price,
                        "device_id": device[0] if device else ""})
    return pd.DataFrame(records)


def emergency_at(generation: dict[int, float], load: dict[int, float] | None = None,
                 periods: int = 1) -> EmergencyCapacity:
    """Emergency capacity: MW of generation (and load) at buses, the same every period."""
    def frame(values: dict[int, float]) -> pd.DataFrame:
        return pd.DataFrame({bus: [mw] * periods for bus, mw in values.items()},
                            index=range(periods), dtype=float)

    return EmergencyCapacity(frame(generation), frame(load or {}))


def assert_accounts_kept(awards: pd.DataFrame, accounts: pd.DataFrame) -> None:
    """Recompute every energy account from the awards, period by period, and check it.

    Independent of the LP's rows: a battery's state of charge
    SOC_t = SOC_0 + sum h (eta_c P_down - P_up / eta_d) stays in [0, E] and ends at least
    at its final target; deferred energy (P_up - P_down, summed) never goes negative
    and is zero at the end of the window.
    """
    tolerance = 1e-6
    for device, account in accounts.groupby("device_id"):
        account = account.sort_values("order")
        mine = awards[(awards.device_id == device) & awards["product"].isin(["P_up", "P_down"])]
        state = float(account.initial_mwh.iloc[0])
        for row in account.itertuples():
            here = mine[mine.period == row.period]
            down = float((here.awarded * here.hours)[here["product"] == "P_down"].sum())
            up = float((here.awarded * here.hours)[here["product"] == "P_up"].sum())
            if row.kind == "storage":
                state += row.charge_efficiency * down - up / row.discharge_efficiency
                assert -tolerance <= state <= row.capacity_mwh + tolerance, (device, row.period)
            else:
                state += down - up  # minus the energy still deferred
                assert state <= tolerance, (device, row.period)
        last = account.iloc[-1]
        assert state >= last.initial_mwh + last.lower_mwh - tolerance, device
        if last.kind == "shift":
            assert abs(state) <= tolerance, device
