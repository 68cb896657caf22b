"""Baseline AC operating points: one converged power flow per scenario period."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import PowerFlowError
from lfm_abm.network.scenarios import PeriodInjections, Scenario, period_injections
from lfm_abm.network.sensitivities import Sensitivities, sensitivities


def run_power_flow(net: pp.pandapowerNet, label: str = "", **options: object) -> None:
    """Run pandapower's Newton-Raphson AC power flow; non-convergence names grid and period.

    Loads are treated as constant power (`voltage_depend_loads=False`) so that the
    Jacobian sensitivities describe exactly the model that is solved.
    """
    kwargs: dict[str, object] = {"numba": False, "voltage_depend_loads": False,
                                 "calculate_voltage_angles": True, "init": "auto"}
    kwargs.update(options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(net, **kwargs)
    except pp.LoadflowNotConverged as exc:
        where = f" in period {label}" if label else ""
        grid = net.get("lfm_grid")  # built-in name or JSON file (`grids.load_grid`)
        prefix = f"{grid}: " if grid else ""
        raise PowerFlowError(f"{prefix}AC power flow did not converge{where}") from exc


@dataclass(frozen=True)
class BranchState:
    """Loading of lines and 2-winding transformers at an operating point."""

    line: pd.DataFrame  # i_ka, max_i_ka (effective: df x parallel), loading_percent, vn_kv
    trafo: pd.DataFrame  # loading_percent, sn_mva (effective rating: sn x df x parallel), vn_hv_kv


@dataclass(frozen=True)
class OperatingPoint:
    """A converged AC state for one period: voltages, branch loadings, optional sensitivities."""

    period: int
    label: str
    hours: float
    vm_pu: pd.Series
    branches: BranchState
    sens: Sensitivities | None = None
    #: Complex bus voltages in the grid's internal order: enough to linearise later.
    voltages: np.ndarray | None = field(default=None, repr=False, compare=False)


def line_ratings(lines: pd.DataFrame, buses: pd.DataFrame) -> dict[str, np.ndarray]:
    """Effective thermal limit (max_i_ka x df x parallel, kA) and nominal kV of lines."""
    return {"max_i_ka": (lines.max_i_ka * lines.df * lines.parallel).to_numpy(),
            "vn_kv": buses.vn_kv.reindex(lines.from_bus).to_numpy()}


def trafo_ratings(trafos: pd.DataFrame) -> dict[str, np.ndarray]:
    """Effective rating (sn_mva x df x parallel, as pandapower's loading) and HV kV."""
    return {"sn_mva": (trafos.sn_mva * trafos.df * trafos.parallel).to_numpy(),
            "vn_hv_kv": trafos.vn_hv_kv.to_numpy()}


def branch_state(net: pp.pandapowerNet) -> BranchState:
    """Snapshot line and trafo loading after a power flow (out-of-service rows dropped)."""
    line = pd.DataFrame({"i_ka": net.res_line.i_ka.to_numpy(),
                         "loading_percent": net.res_line.loading_percent.to_numpy(),
                         **line_ratings(net.line, net.bus)},
                        index=net.line.index)[net.line.in_service.to_numpy()]
    trafo = pd.DataFrame({"loading_percent": net.res_trafo.loading_percent.to_numpy(),
                          **trafo_ratings(net.trafo)},
                         index=net.trafo.index)[net.trafo.in_service.to_numpy()]
    return BranchState(line, trafo)


def snapshot(net: pp.pandapowerNet, period: int, label: str, hours: float,
             with_sensitivities: bool = False) -> OperatingPoint:
    """Capture the net's current power-flow results as an OperatingPoint."""
    vm = net.res_bus.vm_pu[net.bus.in_service]
    return OperatingPoint(
        period=period,
        label=label,
        hours=hours,
        vm_pu=vm.astype(float),
        branches=branch_state(net),
        sens=sensitivities(net) if with_sensitivities else None,
        voltages=net._ppc["internal"]["V"].copy(),
    )


def operating_points(
    net: pp.pandapowerNet,
    scenario: Scenario,
    day: str | None = None,
    with_sensitivities: bool = False,
    injections: PeriodInjections | None = None,
) -> Iterator[OperatingPoint]:
    """Yield the converged baseline AC state of every period of one scenario day.

    The net is left in the state of the last period. Raises `PowerFlowError` naming
    the period if a power flow does not converge.
    """
    injections = injections or period_injections(net, scenario, day)
    for period, label in enumerate(injections.labels):
        injections.apply(net, period)
        run_power_flow(net, label)
        yield snapshot(net, period, label, scenario.period_hours, with_sensitivities)
