"""Clearing in stages: a design's plan, and the one function that clears a stage.

A plan lists, per stage, what it buys (services, product families) and from which
operating point it is cleared: the first stage at the baseline AC point, every later
stage at the AC point after all awards so far. Every stage respects every network limit
(no-harm rows). Re-linearisation (`MarketParams.relinearise`) appends stages that buy
all the design's services with all its products at the post-award point; they stop as
soon as that point has no need of those services.

`clear_stage` builds (or warm-updates) the stage's LP, solves it and settles it; it is
what `Market.clear` runs for each planned stage and what the golden tests call directly.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Hashable
from dataclasses import dataclass, replace

import pandas as pd

from lfm_abm.market.bids import empty_bids
from lfm_abm.market.designs import ALL_SERVICES, Design, Stage
from lfm_abm.market.devices import Devices
from lfm_abm.market.emergency import EMERGENCY_META, EmergencyCapacity
from lfm_abm.market.engines import ENGINES, LPSolution
from lfm_abm.market.formulation import LinearProgram, branch_cuts_for, build_lp, update_bids
from lfm_abm.market.network_rows import ElementKey
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import settle
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.operating_points import OperatingPoint

#: Rounds of tangent cuts added to one solve before its answer is accepted.
MAX_CUT_ROUNDS = 10
#: Emergency action alone: every service, no bids (unmet need after AC validation).
EMERGENCY_ONLY = Stage(ALL_SERVICES, frozenset())
UNRESOLVED_COLUMNS = ["period", "service", "element", "element_id", "need", "unit"]
#: Emergency action taken: one row per column in use, with its MW.
EMERGENCY_COLUMNS = [*EMERGENCY_META, "mw"]


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a plan: what it buys and where it is linearised."""

    stage: Stage
    at_baseline: bool  # cleared at the baseline AC point (else after the awards so far)
    relinearisation: bool  # an extra clearing of the AC residual, not a design stage


def stage_plan(design: Design, relinearise: int) -> list[PlannedStage]:
    """The stages of a design followed by up to `relinearise` re-linearisation stages."""
    plan = [PlannedStage(stage, index == 0, False) for index, stage in enumerate(design.stages)]
    union = Stage(design.services, design.products)
    return plan + [PlannedStage(union, False, True)] * relinearise


@dataclass
class StageResult:
    """A solved and settled stage.

    settled: per admitted bid (LP column order, index = position in the bid table):
    awarded MW, payment and uplift EUR, price_paid and locational_price EUR/MWh.
    emergency: the DSO's emergency action used (MW per bus, action and period).
    unresolved: need left after full emergency action, in the row's unit (MVA or p.u.).
    """

    lp: LinearProgram
    solution: LPSolution
    settled: pd.DataFrame
    emergency: pd.DataFrame
    unresolved: pd.DataFrame
    rebuilt: bool

    @functools.cached_property
    def emergency_mwh(self) -> float:
        """Unmet need: MWh of emergency action the stage needed."""
        used = self.emergency
        return float((used.mw.to_numpy() * used.hours.to_numpy()).sum()) if len(used) else 0.0


class StageSolver:
    """An LP engine that keeps its LP between calls.

    A later call with the same `key` and the same bid slots only changes prices and
    quantities in place and re-solves warm. `keep=False` drops the engine's copy of the
    LP once it is solved (a one-off clearing of a long bid file).
    """

    def __init__(self, engine: str = "highs", keep: bool = True) -> None:
        self._name = engine
        self._keep = keep
        self._engine = ENGINES[engine]()
        self._lp: LinearProgram | None = None
        self._key: Hashable = None

    def solve(self, points: list[OperatingPoint], bids: pd.DataFrame, stage: Stage,
              limits: NeedLimits, params: MarketParams, devices: Devices | None,
              emergency: EmergencyCapacity | None, fix: Collection[ElementKey] | None,
              key: Hashable = None) -> tuple[LinearProgram, LPSolution, bool]:
        """Solve, reusing the previous LP when `key` (not None) and the bid slots match."""
        update = None
        if key is not None and self._lp is not None and key == self._key:
            update = update_bids(self._lp, bids, stage, params)
        if update is None:
            self._lp = build_lp(points, bids, stage, limits, params, devices, emergency, fix)
            self._key = key
            self._engine.load(self._lp)
        else:
            index, cost, upper = update
            self._lp.bid_index = index
            self._engine.update(cost, upper)
        solution = self._engine.solve()
        iterations, seconds = solution.iterations, solution.seconds
        for _ in range(MAX_CUT_ROUNDS):
            cuts = branch_cuts_for(self._lp, solution.x, params.min_coefficient)
            if cuts is None:
                break
            self._engine.add_rows(cuts)
            solution = self._engine.solve()
            iterations += solution.iterations
            seconds += solution.seconds
        solution = replace(solution, iterations=iterations, seconds=seconds)
        lp = self._lp
        if not self._keep:
            self._engine, self._lp, self._key = ENGINES[self._name](), None, None
        return lp, solution, update is None


def clear_stage(points: list[OperatingPoint], bids: pd.DataFrame, stage: Stage,
                limits: NeedLimits, params: MarketParams, *,
                devices: Devices | None = None,
                emergency: EmergencyCapacity | None = None, pricing: str = "pay-as-bid",
                solver: StageSolver | None = None, key: Hashable = None,
                fix: Collection[ElementKey] | None = None) -> StageResult:
    """Clear one stage on `points`: build or update the LP, solve it, settle the bids.

    `bids` must be validated. `solver` keeps the LP across calls (warm re-solves when
    `key` repeats); without one a fresh HiGHS instance is used.
    """
    solver = solver or StageSolver()
    lp, solution, rebuilt = solver.solve(points, bids, stage, limits, params, devices,
                                         emergency, fix, key)
    # Every bid admitted (its positions are then 0..n-1): no copy of the table.
    chosen = bids if len(lp.bid_index) == len(bids) else bids.iloc[lp.bid_index]
    settled = settle(lp, solution, chosen, lp.bid_hours, pricing, params.max_bid_price)
    return StageResult(lp, solution, settled, _emergency_used(lp, solution),
                       _unresolved(lp, solution), rebuilt)


def clear_emergency_only(points: list[OperatingPoint], limits: NeedLimits,
                         params: MarketParams, emergency: EmergencyCapacity,
                         solver: StageSolver | None = None,
                         fix: Collection[ElementKey] | None = None) -> StageResult:
    """The least-cost emergency action that fixes every need of `points` (no market).

    `fix` restricts the needs to fix; every other element is held (no-harm).
    """
    return clear_stage(points, empty_bids(), EMERGENCY_ONLY, limits, params, emergency=emergency,
                       solver=solver, fix=fix)


#: What a stage returns when it takes no emergency action or leaves no need: shared, so
#: never modify them (a learning round mostly has neither, and a frame costs ~0.2 ms).
NO_EMERGENCY = pd.DataFrame({c: pd.Series(dtype=float) for c in EMERGENCY_COLUMNS})
NO_UNRESOLVED = pd.DataFrame({c: pd.Series(dtype=float) for c in UNRESOLVED_COLUMNS})


def _emergency_used(lp: LinearProgram, solution: LPSolution) -> pd.DataFrame:
    mw = solution.x[lp.emergency_columns]
    used = mw > 1e-9
    if not used.any():
        return NO_EMERGENCY
    return lp.emergency[used].assign(mw=mw[used])[EMERGENCY_COLUMNS].reset_index(drop=True)


def _unresolved(lp: LinearProgram, solution: LPSolution) -> pd.DataFrame:
    slack = solution.x[lp.slack_columns]
    left = slack > 1e-9
    if not left.any():
        return NO_UNRESOLVED
    rows = lp.rows.iloc[lp.slack_row[left]].reset_index(drop=True)
    return rows.assign(need=slack[left])[UNRESOLVED_COLUMNS]
