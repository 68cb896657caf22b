"""AC validation: apply flexibility to the grid, rerun the power flow, compare with the LP.

Flexibility is applied as net injection changes per bus through one dedicated static
generator per bus ("lfm flex", scaling 1), so element scaling and the grid's own
elements stay untouched. Periods without any flexibility keep their baseline state and
cost no power flow; results are cached by (period, injections) so that a round whose
awards did not change costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import PowerFlowError
from lfm_abm.network.batch import BatchMismatch, BatchStore, PeriodBatch, supports_batching
from lfm_abm.network.connected import FLEX_TYPE
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import OperatingPoint, run_power_flow, snapshot
from lfm_abm.network.scenarios import PeriodInjections, of_type
from lfm_abm.network.sensitivities import sensitivities

FLEX_COLUMNS = ["period", "bus", "dp_mw", "dq_mvar"]
#: Injection changes below this (MW/MVAr) are treated as no change.
FLEX_EPS = 1e-9


@dataclass
class ValidationReport:
    """AC outcome of a set of flexibility injections over all periods.

    needs: needs after the awards, with `kind` = residual (the element already had
    that need in the baseline) or collateral (new, caused by the awards).
    linearisation (computed on first use): per period with flexibility, the largest
    |predicted - AC| voltage (p.u.) and loading (percentage points) over all buses
    and branches.
    """

    points: list[OperatingPoint]
    needs: pd.DataFrame
    power_flows: int
    flex: pd.DataFrame
    base_points: list[OperatingPoint]

    @functools.cached_property
    def linearisation(self) -> pd.DataFrame:
        """Largest |predicted - AC| voltage and loading per period with flexibility."""
        return linearisation_error(self.base_points, self.flex, self.points)


class ACEvaluator:
    """Re-runs AC power flows for flexibility injections on top of the baseline periods.

    reuse=False turns off the cache and the batching (one full pandapower power flow per
    period and call), the plain reference the benchmark compares against. Evaluators of
    one market day (one per run) pass the same `batches`, so the day's batch is built once.
    """

    def __init__(self, net: pp.pandapowerNet, injections: PeriodInjections,
                 base_points: list[OperatingPoint], limits: NeedLimits,
                 reuse: bool = True, cache_size: int = 256,
                 batches: BatchStore | None = None) -> None:
        self.net = net
        self.injections = injections
        self.base_points = base_points
        self.limits = limits
        self.base_needs = find_needs(base_points, limits)
        self._flex = self._ensure_flex_elements()
        self._slot = pd.Index(self._flex.index)
        self._cache: OrderedDict[tuple, OperatingPoint] = OrderedDict()
        self._cache_size = cache_size if reuse else 0
        self._batching = reuse and supports_batching(net)
        self._batch: PeriodBatch | None = None
        self.batches = batches or BatchStore()
        self.reuse = reuse
        self._models: dict[tuple, dict] = {}  # pandapower's internal model per tap state
        self.power_flows = 0  # AC period solutions computed (cache misses)
        self.batch_runs = 0  # batched power-flow runs among them

    def _ensure_flex_elements(self) -> pd.Series:
        net = self.net
        existing = net.sgen.index[of_type(net.sgen, FLEX_TYPE)]
        if len(existing):
            return pd.Series(existing, index=net.sgen.loc[existing, "bus"].to_numpy())
        buses = self.base_points[0].sens.buses if self.base_points[0].sens is not None \
            else net.bus.index
        ids = [pp.create_sgen(net, bus=int(b), p_mw=0.0, q_mvar=0.0, name=f"lfm flex {b}",
                              type=FLEX_TYPE) for b in buses]
        return pd.Series(ids, index=buses)

    def _dense(self, flex: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Injection changes as (periods x flex buses) arrays, dust below FLEX_EPS zeroed."""
        shape = (len(self.base_points), len(self._flex))
        dp, dq = np.zeros(shape), np.zeros(shape)
        if len(flex):
            slot = self._slot.get_indexer(flex.bus.to_numpy())
            if (slot < 0).any():
                raise ValueError(f"injection at bus {flex.bus.to_numpy()[slot < 0][0]}, "
                                 "which is not a PQ bus of the grid")
            period = flex.period.to_numpy().astype(int)
            np.add.at(dp, (period, slot), flex.dp_mw.to_numpy(dtype=float))
            np.add.at(dq, (period, slot), flex.dq_mvar.to_numpy(dtype=float))
        dp[np.abs(dp) <= FLEX_EPS] = 0.0
        dq[np.abs(dq) <= FLEX_EPS] = 0.0
        return dp, dq

    @staticmethod
    def _key(period: int, dp: np.ndarray, dq: np.ndarray, with_sensitivities: bool) -> tuple:
        return (period, with_sensitivities, np.round(dp, 12).tobytes(),
                np.round(dq, 12).tobytes())

    def _remember(self, key: tuple, point: OperatingPoint) -> None:
        if self._cache_size == 0:
            return
        self._cache[key] = point
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _state(self, period: int, dp: np.ndarray, dq: np.ndarray) -> OperatingPoint:
        """AC state of one period with per-flex-bus injection changes (cached)."""
        base = self.base_points[period]
        if not dp.any() and not dq.any():
            return base
        key = self._key(period, dp, dq, False)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        net = self.net
        self.injections.apply(net, period)
        elements = self._flex.to_numpy()
        net.sgen.loc[elements, "p_mw"] = dp
        net.sgen.loc[elements, "q_mvar"] = dq
        try:
            run_power_flow(net, base.label)
            self.power_flows += 1
            point = snapshot(net, period, base.label, base.hours)
        except PowerFlowError:
            # Leave the shared net converged (its Jacobian data serve batched
            # sensitivities): re-solve the period's baseline, then report the failure.
            net.sgen.loc[elements, ["p_mw", "q_mvar"]] = 0.0
            run_power_flow(net, base.label)
            raise
        finally:
            net.sgen.loc[elements, ["p_mw", "q_mvar"]] = 0.0
        self._remember(key, point)
        return point

    def evaluate(self, flex: pd.DataFrame) -> list[OperatingPoint]:
        """AC state of every period under the injection changes in `flex` (FLEX_COLUMNS).

        The periods that need a new power flow are solved together in one batched run
        (see `batch.py`); a divergence is then traced to its period by solving the
        periods one by one, so the error names it. Sensitivities are added on demand by
        `linearised`.
        """
        dp, dq = self._dense(flex)
        if self._batching:
            todo = [t for t in range(len(dp)) if (dp[t].any() or dq[t].any())
                    and self._key(t, dp[t], dq[t], False) not in self._cache]
            if len(todo) >= 2:
                # On divergence fall through: per-period runs name the failing period.
                with contextlib.suppress(PowerFlowError):
                    self._run_batch(todo, dp, dq)
        return [self._state(t, dp[t], dq[t]) for t in range(len(dp))]

    def linearised(self, flex: pd.DataFrame, points: list[OperatingPoint],
                   periods: Iterable[int] | None = None) -> list[OperatingPoint]:
        """The AC states `evaluate(flex)` returned, with sensitivities in `periods` (all).

        Sensitivities come from each state's stored voltages on the grid's Jacobian
        structure, so no power flow is re-run; they are cached like the states.
        """
        dp, dq = self._dense(flex)
        out = list(points)
        for t in range(len(points)) if periods is None else sorted(set(periods)):
            if out[t].sens is not None:
                continue
            key = self._key(t, dp[t], dq[t], True)
            point = self._cache.get(key)
            if point is None:
                point = replace(out[t], sens=sensitivities(
                    self.net, voltages=out[t].voltages, internal=self._model(t)))
                self._remember(key, point)
            out[t] = point
        return out

    def _model(self, period: int) -> dict | None:
        """The internal model (Ybus, ...) of pandapower at the period's tap positions.

        None where the day keeps the grid's taps: every power flow then shares one Ybus.
        With taps moved per period the net's last run may hold another period's taps, so
        one run per tap state is kept (a day has a handful).
        """
        key = self.injections.tap_key(period)
        if not key:
            return None
        if key not in self._models:
            self.injections.apply(self.net, period)
            run_power_flow(self.net, self.base_points[period].label)
            self._models[key] = self.net._ppc["internal"]
        return self._models[key]

    def _run_batch(self, periods: list[int], dp: np.ndarray, dq: np.ndarray) -> None:
        if self._batch is None:
            # Every period of the day in one batch, built once: a batch grown period by
            # period as bids reach new hours (batteries recharging, EVs shifting) is rebuilt
            # each time (~2-4 s), and its power flows converge jointly, so a period's
            # result would depend on which others the batch happened to hold.
            wanted = list(range(len(self.base_points)))
            try:
                self._batch = self.batches.batch(self.net, self.injections, wanted,
                                                 self._flex, self.base_points[0].hours)
            except BatchMismatch:
                self._batching = False  # an element type the batch cannot map: go singly
                return
        batch = self._batch
        rows = np.asarray(batch.periods)
        todo = np.isin(rows, periods)
        points = batch.run(np.where(todo[:, None], dp[rows], 0.0),
                           np.where(todo[:, None], dq[rows], 0.0))
        self.power_flows += len(periods)
        self.batch_runs += 1
        for row, period in enumerate(batch.periods):
            if todo[row]:
                self._remember(self._key(period, dp[period], dq[period], False), points[row])

    def validate(self, flex: pd.DataFrame,
                 linearised_at: tuple[list[OperatingPoint], pd.DataFrame] | None = None
                 ) -> ValidationReport:
        """Residual and collateral needs and linearisation error of these injections.

        `linearised_at` = (points, injections) of the last linear clearing when it was
        not made at the baseline (re-linearisation, later stages of sequential designs):
        the linearisation error then compares that clearing's own prediction with AC.
        """
        before = self.power_flows
        points = self.evaluate(flex)
        needs = find_needs(points, self.limits)
        # The limit tells over- from undervoltage: a bus pushed from one into the other
        # has a new (collateral) need, not a residual one.
        base = self.base_needs
        baseline = set(zip(base.period, base.service, base.element, base.element_id,
                           base.limit.round(9), strict=True))
        keys = zip(needs.period, needs.service, needs.element, needs.element_id,
                   needs.limit.round(9), strict=True)
        needs["kind"] = ["residual" if key in baseline else "collateral" for key in keys]
        base, increment = linearised_at or (self.base_points, flex)
        return ValidationReport(points, needs, self.power_flows - before, increment, base)


def linearisation_error(base_points: list[OperatingPoint], flex: pd.DataFrame,
                        points: list[OperatingPoint]) -> pd.DataFrame:
    """Largest |predicted - AC| of voltage and branch loading, per period with flex."""
    rows = []
    for period, group in flex.groupby("period"):
        base, after = base_points[int(period)], points[int(period)]
        if after is base:
            continue
        vm, line_pct, trafo_pct = predict(base, group)
        line = after.branches.line.loading_percent
        trafo = after.branches.trafo.loading_percent
        branch_error = np.concatenate([
            np.abs(line_pct - line.loc[line_pct.index]).to_numpy(),
            np.abs(trafo_pct - trafo.loc[trafo_pct.index]).to_numpy()])
        rows.append({
            "period": int(period),
            "vm_error_pu": float(np.abs(vm - after.vm_pu.loc[vm.index]).max()),
            "loading_error_pct": float(branch_error.max(initial=0.0)),
        })
    return pd.DataFrame(rows, columns=["period", "vm_error_pu", "loading_error_pct"])


def predict(base: OperatingPoint, flex: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Linear prediction of |V| (p.u.) and line/trafo loading (%) after injections."""
    sens = base.sens
    dp = flex.groupby("bus").dp_mw.sum().reindex(sens.buses, fill_value=0.0).to_numpy()
    dq = flex.groupby("bus").dq_mvar.sum().reindex(sens.buses, fill_value=0.0).to_numpy()
    vm = base.vm_pu.loc[sens.dv_dp.index] + sens.dv_dp.to_numpy() @ dp + sens.dv_dq.to_numpy() @ dq

    def magnitude(phasors) -> pd.Series:  # |I0 + dI| with the complex linearisation
        change = phasors.d_dp.to_numpy() @ dp + phasors.d_dq.to_numpy() @ dq
        return (phasors.current + change).abs()

    line = base.branches.line.loc[sens.di_dp.index]
    line_pct = 100.0 * magnitude(sens.line_phasors) / line.max_i_ka
    trafo_pct = magnitude(sens.trafo_phasors)
    return vm, line_pct, trafo_pct
