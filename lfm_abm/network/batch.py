"""All periods of a day in one AC power flow: one grid copy per period, side by side.

On 100-bus grids a pandapower power flow costs ~6 ms, almost all of it fixed overhead
(sparse-matrix bookkeeping per Newton step), not arithmetic. Periods are independent,
so a net holding one copy of the grid per period (each with its own slack) solves them
all in one Newton-Raphson run of about the same overhead: 12 periods of a 122-bus grid
take ~13 ms instead of ~75 ms. Only the flexibility injections change between runs, so
pandapower's `recycle` reuses the internal model. Results are exact AC solutions, the
same as per-period runs (tested to 1e-8).
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Sequence

import numpy as np
import pandapower as pp
import pandapower.toolbox as tb
import pandas as pd

from lfm_abm.network.operating_points import (
    BranchState,
    OperatingPoint,
    line_ratings,
    run_power_flow,
    trafo_ratings,
)
from lfm_abm.network.scenarios import ELEMENTS, PeriodInjections
from lfm_abm.network.sensitivities import F_BUS, T_BUS, internal_branch_rows

#: Element tables copied into the batch; a grid using any other element falls back to
#: one power flow per period.
PF_TABLES = ("bus", "line", "trafo", "load", "sgen", "storage", "ext_grid", "gen", "switch",
             "shunt", "impedance", "ward")


class BatchMismatch(RuntimeError):
    """The merged net's internal buses do not map onto the grid's (unsupported element)."""


RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}


def supports_batching(net: pp.pandapowerNet) -> bool:
    """True if every element with rows in the net is one the batch copies."""
    used = {element for element in tb.pp_elements() if element in net and len(net[element])}
    return used <= set(PF_TABLES) | {"measurement"}


class PeriodBatch:
    """A merged net with one copy of the grid per period, for fast repeated AC runs.

    It does not hold on to the grid it was built from: a copy is a batch of its own.
    """

    def __init__(self, net: pp.pandapowerNet, injections: PeriodInjections,
                 periods: Sequence[int], flex_elements: pd.Series, hours: float) -> None:
        self.periods = list(periods)
        self.labels = [injections.labels[t] for t in self.periods]
        self.hours = hours
        copies = []
        for copy_index, period in enumerate(self.periods):
            part = pp.create_empty_network(sn_mva=net.sn_mva, f_hz=net.f_hz)
            for table in PF_TABLES:
                if table in net and len(net[table]):
                    part[table] = net[table].copy()
            injections.apply(part, period)
            for table in ("bus", "line", "trafo", *ELEMENTS):
                part[table]["lfm_copy"] = copy_index
                part[table]["lfm_id"] = part[table].index
            copies.append(part)
        merged = copies[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for part in copies[1:]:
                merged = tb.merge_nets(merged, part, validate=False)
        self.net = merged
        flex = merged.sgen[merged.sgen.lfm_id.isin(flex_elements.to_numpy())]
        order = pd.Series(np.arange(len(flex_elements)), index=flex_elements.to_numpy())
        flex = flex.assign(slot=order[flex.lfm_id].to_numpy()).sort_values(["lfm_copy", "slot"])
        self._flex_rows = flex.index  # copy-major, then flex_elements order
        self._layout = [self._copy_layout(k) for k in range(len(self.periods))]
        run_power_flow(merged, "all periods")
        self._voltage_order = [self._internal_order(net, k) for k in range(len(self.periods))]

    def _internal_order(self, template: pp.pandapowerNet, copy_index: int) -> np.ndarray:
        """Internal bus of the merged net for each internal bus of the template net.

        Every copy has the template's topology, so its internal buses are the
        template's up to a permutation: pandapower buses map through the bus lookups,
        auxiliary buses (open switches) through the branch ends they terminate.
        """
        merged = self.net
        ours = template._ppc["internal"]
        theirs = merged._ppc["internal"]
        order = np.full(ours["Ybus"].shape[0], -1)
        buses = merged.bus[merged.bus.lfm_copy == copy_index]
        ours_at = template._pd2ppc_lookups["bus"][buses.lfm_id.to_numpy()]
        theirs_at = merged._pd2ppc_lookups["bus"][buses.index.to_numpy()]
        valid = ours_at < len(order)
        order[ours_at[valid]] = theirs_at[valid]
        for element in ("line", "trafo"):
            ids, rows = internal_branch_rows(template, element)
            big_ids, big_rows = internal_branch_rows(merged, element)
            table = merged[element].loc[big_ids]
            mine = (table.lfm_copy == copy_index).to_numpy()
            row_of = pd.Series(big_rows[mine], index=table.lfm_id.to_numpy()[mine])
            theirs_rows = row_of.loc[ids].to_numpy()
            for end in (F_BUS, T_BUS):
                order[ours["branch"][rows, end].real.astype(int)] = (
                    theirs["branch"][theirs_rows, end].real.astype(int))
        if (order < 0).any():
            raise BatchMismatch("batch copy does not match the grid's internal buses")
        return order

    def _copy_layout(self, copy_index: int) -> dict:
        """Row positions and static columns of one copy, so `run` only slices arrays."""
        net = self.net
        bus = (net.bus.lfm_copy.to_numpy() == copy_index) & net.bus.in_service.to_numpy()
        line = (net.line.lfm_copy.to_numpy() == copy_index) & net.line.in_service.to_numpy()
        trafo = (net.trafo.lfm_copy.to_numpy() == copy_index) & net.trafo.in_service.to_numpy()
        lines, trafos = net.line[line], net.trafo[trafo]
        return {
            "bus": np.flatnonzero(bus), "bus_ids": pd.Index(net.bus.lfm_id[bus].to_numpy()),
            "line": np.flatnonzero(line), "line_ids": pd.Index(lines.lfm_id.to_numpy()),
            "trafo": np.flatnonzero(trafo), "trafo_ids": pd.Index(trafos.lfm_id.to_numpy()),
            **line_ratings(lines, net.bus), **trafo_ratings(trafos),
        }

    def set_periods(self, injections: PeriodInjections, periods: Sequence[int]) -> None:
        """Put other periods' loads and generation into the copies (e.g. another day's).

        The next `run` solves them with the same internal model (pandapower's recycle
        picks up new P and Q), which is what makes a scan of a whole year fast.
        """
        if len(periods) != len(self.periods):
            raise ValueError(f"{len(periods)} periods for a batch of {len(self.periods)}")
        if injections.taps is not None:  # recycling keeps the transformers as built
            raise ValueError("set_periods cannot move taps: build a batch at those taps")
        for element in ELEMENTS:
            if element not in injections.p_mw or not len(injections.p_mw[element].columns):
                continue
            table = self.net[element]
            rows = table.index[table.lfm_copy.notna().to_numpy()]
            at = table.loc[rows]
            columns = injections.p_mw[element].columns.get_indexer(at.lfm_id.to_numpy())
            copies = at.lfm_copy.to_numpy(dtype=int)
            chosen = np.asarray(periods)[copies]
            known = columns >= 0
            p = injections.p_mw[element].to_numpy()[chosen[known], columns[known]]
            q = injections.q_mvar[element].to_numpy()[chosen[known], columns[known]]
            table.loc[rows[known], "p_mw"] = p
            table.loc[rows[known], "q_mvar"] = q
        self.periods = list(periods)
        self.labels = [injections.labels[t] for t in self.periods]

    def run(self, dp: np.ndarray, dq: np.ndarray) -> list[OperatingPoint]:
        """AC states of all batch periods; dp/dq are (periods x flex buses) MW / MVAr.

        Each state keeps its voltages in the template grid's internal bus order, so it
        can be linearised on the template's Jacobian structure later
        (`sensitivities(template, voltages=...)`).
        """
        net = self.net
        net.sgen.loc[self._flex_rows, "p_mw"] = dp.ravel()
        net.sgen.loc[self._flex_rows, "q_mvar"] = dq.ravel()
        run_power_flow(net, "all periods", recycle=RECYCLE)
        vm = net.res_bus.vm_pu.to_numpy()
        i_ka = net.res_line.i_ka.to_numpy()
        line_pct = net.res_line.loading_percent.to_numpy()
        trafo_pct = net.res_trafo.loading_percent.to_numpy()
        voltages = net._ppc["internal"]["V"]
        points = []
        for copy_index, (period, label, at) in enumerate(zip(self.periods, self.labels,
                                                             self._layout, strict=True)):
            own_voltages = voltages[self._voltage_order[copy_index]]
            lines = pd.DataFrame({"i_ka": i_ka[at["line"]], "max_i_ka": at["max_i_ka"],
                                  "loading_percent": line_pct[at["line"]],
                                  "vn_kv": at["vn_kv"]}, index=at["line_ids"])
            trafos = pd.DataFrame({"loading_percent": trafo_pct[at["trafo"]],
                                   "sn_mva": at["sn_mva"], "vn_hv_kv": at["vn_hv_kv"]},
                                  index=at["trafo_ids"])
            points.append(OperatingPoint(
                period=period, label=label, hours=self.hours,
                vm_pu=pd.Series(vm[at["bus"]], index=at["bus_ids"]),
                branches=BranchState(lines, trafos), voltages=own_voltages))
        return points


class BatchStore:
    """Batches built once per market day and handed to each run as a copy.

    Building a batch merges one net per period (~1.9 s for 12 periods of a 122-bus
    grid); a deep copy costs ~20 ms. Every run gets a copy of the same unrun batch, so
    runs in one process compute with identical data and never share a net.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[int, ...], PeriodBatch] = {}

    def batch(self, net: pp.pandapowerNet, injections: PeriodInjections,
              periods: Sequence[int], flex_elements: pd.Series, hours: float) -> PeriodBatch:
        """A private copy of the batch for `periods` (built from `net` on first request)."""
        key = tuple(periods)
        with self._lock:
            if key not in self._built:
                self._built[key] = PeriodBatch(net, injections, key, flex_elements, hours)
            return copy.deepcopy(self._built[key])
