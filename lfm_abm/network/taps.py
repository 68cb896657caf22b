"""The DSO's on-load tap changers: which the grid has, and what one tap step does.

A tap changer is a group of HV/MV transformers with taps that feed one MV busbar
(parallel transformers, e.g. SimBench's two 40 MVA units joined by a closed
sectionaliser): they move together, since unequal taps on parallel units drive a
circulating current. Its range and step come from the net (`tap_min`, `tap_max`,
`tap_step_percent`); the day starts at the net's `tap_pos`.

What one step does is measured by AC power flows, not assumed: per period, the grid is
solved at the period's position +1 and -1 step (one-sided at the range's ends), and the
central difference gives the change per step of every bus voltage (p.u.) and of every
branch's complex current at the end the sensitivities use (kA for lines, % loading for
transformers). The tap then enters the clearing's rows like an injection at a bus of its
own (`TapEffect.as_injection`), so its rows are the market's rows: the same tangent
cuts of branch currents and the same voltage rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.network.operating_points import OperatingPoint, run_power_flow
from lfm_abm.network.scenarios import PeriodInjections
from lfm_abm.network.sensitivities import BranchPhasors, Sensitivities, branch_currents


@dataclass(frozen=True)
class TapChanger:
    """Transformers with taps that feed one MV busbar, moved as one."""

    trafos: tuple[int, ...]
    start: int  # position the day starts at
    low: int
    high: int
    step_percent: float

    @property
    def name(self) -> str:
        """Readable name, e.g. 'trafo 0+1'."""
        return "trafo " + "+".join(str(t) for t in self.trafos)


def ratio_taps(net: pp.pandapowerNet) -> np.ndarray:
    """Which transformers have a ratio tap changer pandapower applies (in place: typed).

    A tap range without `tap_changer_type` (SimBench's data predate pandapower 3's column,
    which otherwise ignores the taps) is taken as a ratio tap changer: at the neutral
    position it changes nothing. A net the DSO moves taps on needs this before its power
    flows.
    """
    trafo = net.trafo
    if not len(trafo) or "tap_pos" not in trafo:
        return np.zeros(len(trafo), dtype=bool)
    has_taps = (trafo.in_service.astype(bool) & trafo.tap_pos.notna()
                & (trafo.tap_max > trafo.tap_min) & (trafo.tap_step_percent > 0)).to_numpy()
    if "tap_changer_type" in trafo:
        untyped = has_taps & trafo.tap_changer_type.isna().to_numpy()
        net.trafo.loc[untyped, "tap_changer_type"] = "Ratio"
        has_taps &= (net.trafo.tap_changer_type == "Ratio").to_numpy()
    return has_taps


def tap_changers(net: pp.pandapowerNet) -> list[TapChanger]:
    """The grid's tap changers: in-service ratio tap changers (`ratio_taps`), by MV busbar.

    The net must hold a power flow (busbars joined by closed switches are one internal
    bus). Transformers grouped together must share range, step and position.
    """
    has_taps = ratio_taps(net)
    if not has_taps.any():
        return []
    trafo = net.trafo[has_taps]
    busbar = net._pd2ppc_lookups["bus"][trafo.lv_bus.to_numpy()]
    changers = []
    for internal in np.unique(busbar):
        group = trafo[busbar == internal]
        settings = group[["tap_pos", "tap_min", "tap_max", "tap_step_percent"]]
        if len(settings.drop_duplicates()) > 1:
            raise InputError(f"parallel transformers {list(group.index)} differ in their "
                             "tap settings; they cannot move as one", field="trafo",
                             allowed=["equal tap_pos, tap_min, tap_max, tap_step_percent"])
        first = settings.iloc[0]
        changers.append(TapChanger(tuple(int(t) for t in group.index), int(first.tap_pos),
                                   int(first.tap_min), int(first.tap_max),
                                   float(first.tap_step_percent)))
    return changers


def tap_positions(changers: list[TapChanger], steps: np.ndarray) -> pd.DataFrame:
    """Tap position of every transformer per period, from steps per changer (periods x changers)."""
    columns, values = [], []
    for k, changer in enumerate(changers):
        for trafo in changer.trafos:
            columns.append(trafo)
            values.append(changer.start + np.asarray(steps)[:, k])
    return pd.DataFrame(np.array(values, dtype=float).T.reshape(len(steps), len(columns)),
                        columns=pd.Index(columns))


def with_taps(injections: PeriodInjections, changers: list[TapChanger],
              steps: np.ndarray) -> PeriodInjections:
    """The same day with the changers moved by `steps` (periods x changers) from their start."""
    return replace(injections, taps=tap_positions(changers, steps))


@dataclass(frozen=True)
class TapEffect:
    """Change per tap step (up) of a changer in one period, measured by AC power flows."""

    vm_pu: pd.Series  # p.u. per step, by bus
    line: pd.Series  # complex kA per step, by line
    trafo: pd.Series  # complex % loading per step, by trafo

    def as_injection(self, point: OperatingPoint, column: int) -> OperatingPoint:
        """The point with the tap as one more injection column `column` (a bus id not in the grid).

        The clearing's rows read voltage and current changes per unit of each column of
        the sensitivities; a tap step is one more such column.
        """
        sens = point.sens
        assert sens is not None, "a tap's effect is added to a linearised point"

        def extend(frame: pd.DataFrame, change: pd.Series) -> pd.DataFrame:
            out = frame.copy()
            out[column] = change.reindex(frame.index).to_numpy()
            return out

        def phasors(old: BranchPhasors, change: pd.Series) -> BranchPhasors:
            return BranchPhasors(old.current, extend(old.d_dp, change),
                                 extend(old.d_dq, change * 0))

        line, trafo = phasors(sens.line_phasors, self.line), phasors(sens.trafo_phasors,
                                                                      self.trafo)
        extended = Sensitivities(
            dv_dp=extend(sens.dv_dp, self.vm_pu), dv_dq=extend(sens.dv_dq, self.vm_pu * 0),
            di_dp=line.magnitude_sensitivity("p"), di_dq=line.magnitude_sensitivity("q"),
            dt_dp=trafo.magnitude_sensitivity("p"), dt_dq=trafo.magnitude_sensitivity("q"),
            line_phasors=line, trafo_phasors=trafo)
        return replace(point, sens=extended)


def tap_effects(net: pp.pandapowerNet, injections: PeriodInjections,
                points: list[OperatingPoint], changer: TapChanger) -> list[TapEffect]:
    """The effect of one tap step of `changer` in every period, by AC power flows.

    Each period is measured around its own position (the day's taps if it has them, else
    the changer's start). Currents are differenced at the branch ends the period's own
    state reports (as its sensitivities do): the from-end and to-end currents point in
    opposite directions, so mixing ends would flip the sign. The net is left with every
    period's taps as the day has them and the last period solved there.
    """
    trafos = list(changer.trafos)
    effects = []
    for point in points:
        injections.apply(net, point.period)
        at = (changer.start if injections.taps is None
              else int(injections.taps.iloc[point.period][trafos[0]]))
        net.trafo.loc[trafos, "tap_pos"] = at
        run_power_flow(net, point.label)
        _, ends = branch_currents(net)  # the ends the period's own state reports
        up, down = min(at + 1, changer.high), max(at - 1, changer.low)
        states = []
        for position in (up, down):
            net.trafo.loc[trafos, "tap_pos"] = position
            run_power_flow(net, point.label)
            currents, _ = branch_currents(net, ends)
            states.append((net.res_bus.vm_pu.copy(), currents))
        net.trafo.loc[trafos, "tap_pos"] = at
        (vm_up, up_currents), (vm_down, down_currents) = states
        steps = up - down
        effects.append(TapEffect(
            (vm_up - vm_down).loc[point.vm_pu.index] / steps,
            (up_currents["line"] - down_currents["line"]) / steps,
            (up_currents["trafo"] - down_currents["trafo"]) / steps))
    if points:  # leave the net solved at the day's taps (its Ybus serves sensitivities)
        injections.apply(net, points[-1].period)
        run_power_flow(net, points[-1].label)
    return effects
