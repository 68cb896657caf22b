"""The market the DSO clears: one design on one market day, round after round.

`MarketCase` holds what is fixed for a day (grid, baseline AC states with
sensitivities, limits, parameters, the AC evaluator). `Market.clear` takes a bid table
and returns awards, payments, prices, unmet needs and the AC validation. For a joint
design the LP is built once per set of bid slots and later rounds only update prices
and quantities in place (warm HiGHS re-solves). Sequential designs clear each stage on
the AC operating point left by the stages before it; re-linearisation clears the AC
residual again at the post-award point.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.bids import PRODUCT_SIGN, PRODUCTS, families, is_active, validate_bids
from lfm_abm.market.designs import Design, Stage, parse_design
from lfm_abm.market.devices import validate_devices
from lfm_abm.market.engines import ENGINES, LPSolution
from lfm_abm.market.formulation import DEVICE_COLUMNS, LinearProgram, build_lp, update_bids
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import check_pricing, locational_prices, settle
from lfm_abm.network.ac_validation import (
    FLEX_COLUMNS,
    ACEvaluator,
    ValidationReport,
    mw_equivalent,
    voltage_weights,
)
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import OperatingPoint, operating_points
from lfm_abm.network.scenarios import PeriodInjections, Scenario, period_injections


@dataclass
class MarketCase:
    """A market day: the grid, its baseline periods with sensitivities, limits, parameters."""

    net: pp.pandapowerNet
    scenario: Scenario
    injections: PeriodInjections
    points: list[OperatingPoint]
    limits: NeedLimits
    params: MarketParams
    evaluator: ACEvaluator = field(repr=False)

    @classmethod
    def build(cls, grid: str | pp.pandapowerNet, scenario: Scenario | None = None,
              day: str | None = None, limits: NeedLimits | None = None,
              params: MarketParams | None = None, ac_reuse: bool = True) -> MarketCase:
        """Load the grid (name, JSON path or net), run the baseline day, compute sensitivities.

        ac_reuse=False makes AC validation run every power flow from scratch (benchmark).
        """
        net = load_grid(grid) if isinstance(grid, str) else grid
        scenario = scenario or default_scenario(net)
        limits = limits or NeedLimits()
        injections = period_injections(net, scenario, day)
        points = list(operating_points(net, scenario, day, with_sensitivities=True,
                                       injections=injections))
        evaluator = ACEvaluator(net, injections, points, limits, reuse=ac_reuse)
        return cls(net, scenario, injections, points, limits, params or MarketParams(),
                   evaluator)

    @property
    def buses(self) -> pd.Index:
        """Buses where injections can be bid (PQ buses)."""
        return self.points[0].sens.buses

    @functools.cached_property
    def period_hours(self) -> np.ndarray:
        """Length of every period in hours, indexable by period."""
        return np.array([op.hours for op in self.points])

    @property
    def n_periods(self) -> int:
        """Number of periods of the market day."""
        return len(self.points)

    @property
    def baseline_needs(self) -> pd.DataFrame:
        """Needs of the baseline day (before any flexibility)."""
        return self.evaluator.base_needs

    @property
    def voltage_weights(self) -> pd.DataFrame:
        """MW-equivalent per p.u. of voltage need per bus and period."""
        if not hasattr(self, "_weights"):
            self._weights = voltage_weights(self.points)
        return self._weights

    def mw_equivalent(self, needs: pd.DataFrame) -> pd.Series:
        """Needs converted to MW-equivalent (CM in MVA, VC via the bus weight)."""
        return mw_equivalent(needs, self.voltage_weights)


@dataclass
class ClearingResult:
    """Outcome of one clearing: awards and payments, prices, unmet needs, AC validation."""

    design: str
    pricing: str
    awards: pd.DataFrame  # bid columns + awarded, payment, price_paid, value_*, stage
    unmet_linear: pd.DataFrame  # LP slacks: the needs the market itself left unmet
    solved: list[tuple[LinearProgram, LPSolution]]  # per stage, for prices on demand
    linearised_at: tuple[list[OperatingPoint], pd.DataFrame] | None  # last linear clearing
    flex: pd.DataFrame  # period, bus, dp_mw, dq_mvar
    validation: ValidationReport | None
    unmet_after_ac: pd.DataFrame  # AC needs after the awards, with need_mw_eq
    stats: dict

    @functools.cached_property
    def prices(self) -> pd.DataFrame:
        """Locational marginal prices: stage, period, bus, product, price (EUR/MWh).

        Computed on first use: a learning round does not need them.
        """
        return pd.concat([locational_prices(lp, solution).assign(stage=stage)
                          for stage, (lp, solution) in enumerate(self.solved)],
                         ignore_index=True)

    @property
    def procurement_cost(self) -> float:
        """Sum of payments to FSPs, EUR (= DSO procurement cost)."""
        return float(self.awards.payment.sum())

    @property
    def cost_at_bid_prices(self) -> float:
        """Sum of price x awarded energy, EUR (equals procurement cost under pay-as-bid)."""
        a = self.awards
        return float((a.price * a.awarded * a.hours).sum())

    def volumes(self) -> dict[str, float]:
        """Awarded energy per product, MWh or MVArh."""
        energy = self.awards.awarded.to_numpy() * self.awards.hours.to_numpy()
        products = self.awards["product"].to_numpy()
        return {product: float(energy[products == product].sum()) for product in PRODUCTS}

    def summary(self, voll: float) -> dict[str, float]:
        """Headline numbers: cost, volumes, unmet need before and after AC validation.

        Unmet need is in MW-equivalent summed over periods; after-AC figures are NaN
        when the round was not AC-validated (unknown is not zero).
        """
        out = {
            "procurement_cost": self.procurement_cost,
            "cost_at_bid_prices": self.cost_at_bid_prices,
            "unmet_need_before": float(self.unmet_linear.need_mw_eq.sum()),
        }
        ac = self.unmet_after_ac
        checked = self.validation is not None

        def after(values: pd.Series) -> float:
            return float(values.sum()) if checked else float("nan")

        out["unmet_need_after_ac"] = after(ac.need_mw_eq)
        out["unmet_cm_after_ac_mva"] = after(ac.need[ac.service == "CM"])
        out["unmet_vc_after_ac_pu"] = after(ac.need[ac.service == "VC"])
        out["collateral_after_ac"] = after(ac.need_mw_eq[ac.kind == "collateral"])
        out["unmet_cost_after_ac"] = voll * after(ac.need_mw_eq * ac.hours)
        out.update({f"volume_{k}": v for k, v in self.volumes().items()})
        return out


def flex_injections(bids: pd.DataFrame, awarded: np.ndarray) -> pd.DataFrame:
    """Net injection change per (period, bus) implied by awarded quantities."""
    won = np.flatnonzero(awarded > 0)
    if len(won) == 0:
        return pd.DataFrame(columns=FLEX_COLUMNS)
    products = bids["product"].iloc[won]
    signed = awarded[won] * products.map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(products)
    key = np.stack([bids.period.to_numpy()[won], bids.bus.to_numpy()[won]], axis=1)
    slots, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel()
    return pd.DataFrame({
        "period": slots[:, 0], "bus": slots[:, 1],
        "dp_mw": np.bincount(group, np.where(is_p, signed, 0.0), minlength=len(slots)),
        "dq_mvar": np.bincount(group, np.where(is_p, 0.0, signed), minlength=len(slots))})


def shift_devices(devices: pd.DataFrame | None, bids: pd.DataFrame,
                  awarded: np.ndarray) -> pd.DataFrame | None:
    """Device operating points moved by their awarded P and Q bids."""
    if devices is None or devices.empty or not awarded.any():
        return devices
    flex = bids.assign(delta=awarded * bids["product"].map(PRODUCT_SIGN).to_numpy(),
                       family=families(bids["product"]))
    flex = flex[(flex.device_id != "") & (awarded > 0)]
    if flex.empty:
        return devices
    moved = flex.pivot_table(index=["device_id", "period"], columns="family", values="delta",
                             aggfunc="sum", fill_value=0.0)
    out = devices.set_index(["device_id", "period"])
    for family, column in (("P", "p_mw"), ("Q", "q_mvar")):
        if family in moved:
            out[column] = out[column].add(moved[family], fill_value=0.0)
    return out.reset_index()[DEVICE_COLUMNS]


class Market:
    """Clears one design with one pricing rule on a market day, reusing the LP across rounds."""

    def __init__(self, case: MarketCase, design: Design | str, pricing: str = "pay-as-bid",
                 engine: str = "highs") -> None:
        self.case = case
        self.design = parse_design(design) if isinstance(design, str) else design
        self.pricing = check_pricing(pricing)
        self._engine_cls = ENGINES[engine]
        self._first = self._engine_cls()  # first stage, baseline point: reused across rounds
        self._later = self._engine_cls()  # later stages and re-linearisation: rebuilt
        self._first_lp: LinearProgram | None = None
        self._devices_key: object = None

    def _solve_first(self, bids: pd.DataFrame, devices: pd.DataFrame | None,
                     stats: dict) -> tuple[LinearProgram, LPSolution]:
        stage = self.design.stages[0]
        update = None
        if self._first_lp is not None and self._devices_key == _devices_key(devices):
            update = update_bids(self._first_lp, bids, stage, self.case.n_periods)
        if update is None:
            self._first_lp = build_lp(self.case.points, bids, stage, self.case.limits,
                                      self.case.params, devices)
            self._devices_key = _devices_key(devices)
            self._first.load(self._first_lp)
            stats["rebuilt"] = True
        else:
            index, cost, upper = update
            self._first_lp.bid_index = index
            self._first.update(cost, upper)
            stats["rebuilt"] = False
        return self._first_lp, self._first.solve()

    def _solve_later(self, points: list[OperatingPoint], bids: pd.DataFrame, stage: Stage,
                     devices: pd.DataFrame | None) -> tuple[LinearProgram, LPSolution]:
        lp = build_lp(points, bids, stage, self.case.limits, self.case.params, devices)
        self._later.load(lp)
        return lp, self._later.solve()

    def clear(self, bids: pd.DataFrame, devices: pd.DataFrame | None = None,
              validate: bool = True, check: bool = True) -> ClearingResult:
        """Clear a round: awards, payments, prices, unmet needs and (optionally) AC validation.

        `devices` (device_id, period, p_mw, q_mvar, s_mva) gives each device's present
        injection and apparent-power rating for the capability constraints of bids that
        name it. `check=False` skips bid validation for bids built by trusted code.
        """
        case = self.case
        if check:
            bids = validate_bids(bids, buses=case.buses, n_periods=case.n_periods,
                                 price_cap=case.params.price_cap)
            if devices is None and (bids.device_id != "").any():
                raise InputError("bids name devices but no device table was given",
                                 field="device_id")
            if devices is not None:
                devices = validate_devices(devices, bids)
        bids = bids.reset_index(drop=True)
        hours_all = case.period_hours[bids.period.to_numpy()]
        awarded = np.zeros(len(bids))
        payment = np.zeros(len(bids))
        values = np.full((len(bids), 2), np.nan)
        stage_of = np.full(len(bids), -1)
        unmet, solved = [], []
        stats = {"iterations": 0, "solve_seconds": 0.0, "lp_rows": 0, "lp_cols": 0,
                 "warm": False, "rebuilt": True, "stages": 0}
        points = case.points
        stages = list(self.design.stages)
        union = Stage(self.design.services,
                      frozenset().union(*(s.products for s in self.design.stages)))
        step = 0
        while True:
            if step < len(stages):
                stage = stages[step]
            elif step < len(stages) + case.params.relinearise:
                stage = union
            else:
                break
            if step > 0:
                points = case.evaluator.evaluate(flex_injections(bids, awarded),
                                                 with_sensitivities=True)
                if step >= len(stages) and not _has_need(points, union, case.limits):
                    break
            remaining = bids if step == 0 else bids.assign(
                quantity=np.maximum(bids.quantity.to_numpy() - awarded, 0.0))
            moved = shift_devices(devices, bids, awarded)
            if step == 0:
                lp, solution = self._solve_first(remaining, moved, stats)
                stats["warm"] = solution.warm
                stats["lp_rows"], stats["lp_cols"] = lp.matrix.shape
            else:
                lp, solution = self._solve_later(points, remaining, stage, moved)
            stats["iterations"] += solution.iterations
            stats["solve_seconds"] += solution.seconds
            stats["stages"] += 1
            chosen = remaining.iloc[lp.bid_index]
            settled = settle(lp, solution, chosen, hours_all[lp.bid_index], self.pricing)
            index = lp.bid_index
            gained = settled.awarded.to_numpy()
            awarded[index] += gained
            payment[index] += settled.payment.to_numpy()
            first_award = (gained > 0) & (stage_of[index] < 0)
            stage_of[index[first_award]] = step
            # A bid's recorded values are those of the stage that first awarded it (the
            # stage that paid it), else of the first stage that admitted it.
            take = np.isnan(values[index, 0]) | first_award
            values[index[take]] = settled[["value_locational",
                                           "value_capability"]].to_numpy()[take]
            if step < len(stages):
                unmet.append(_slack_needs(lp, solution, step))
            solved.append((lp, solution))
            last_stage = (points, chosen, settled.awarded.to_numpy())
            step += 1

        energy = awarded * hours_all
        awards = pd.DataFrame({
            **{column: bids[column].to_numpy() for column in bids.columns},
            "hours": hours_all, "awarded": awarded, "payment": payment,
            "price_paid": np.divide(payment, energy, out=np.full(len(bids), np.nan),
                                    where=energy > 0),
            "value_locational": values[:, 0], "value_capability": values[:, 1],
            "stage": stage_of})
        result = ClearingResult(
            design=self.design.name,
            pricing=self.pricing,
            awards=awards,
            unmet_linear=pd.concat(unmet, ignore_index=True) if unmet else _slack_frame(),
            solved=solved,
            linearised_at=(last_stage[0], flex_injections(*last_stage[1:])) if step > 1
            else None,
            flex=flex_injections(bids, awarded),
            validation=None,
            unmet_after_ac=_AFTER_EMPTY,
            stats=stats,
        )
        return self.validate(result) if validate else result

    def validate(self, result: ClearingResult) -> ClearingResult:
        """Run the AC validation of a clearing's awards and fill in the needs after it."""
        case = self.case
        result.validation = case.evaluator.validate(result.flex, result.linearised_at)
        needs = result.validation.needs
        result.unmet_after_ac = _AFTER_EMPTY
        if len(needs):
            result.unmet_after_ac = needs.assign(
                need_mw_eq=case.mw_equivalent(needs),
                hours=[case.points[t].hours for t in needs.period])
        return result


_AFTER_EMPTY = pd.DataFrame(columns=["period", "service", "need", "need_mw_eq", "kind", "hours"])


def _devices_key(devices: pd.DataFrame | None) -> object:
    """Content key of a device table (the LP's capability rows depend on it)."""
    if devices is None or devices.empty:
        return None
    return hashlib.sha1(devices[["p_mw", "q_mvar", "s_mva"]].to_numpy().tobytes()
                        + "|".join(devices.device_id).encode()).hexdigest()


def _has_need(points: list[OperatingPoint], stage: Stage, limits: NeedLimits) -> bool:
    needs = find_needs(points, limits)
    return bool(needs.service.isin(stage.services).any())


SLACK_COLUMNS = ["stage", "period", "service", "element", "element_id", "need", "unit",
                 "need_mw_eq"]


_NO_SLACK = pd.DataFrame({c: pd.Series(dtype=float) for c in SLACK_COLUMNS})


def _slack_frame() -> pd.DataFrame:
    return _NO_SLACK  # shared and never modified: concatenation copies


def _slack_needs(lp: LinearProgram, solution: LPSolution, stage: int) -> pd.DataFrame:
    """Unmet needs the LP itself reports (slack values), in native units and MW-eq."""
    slack = solution.x[lp.n_bids:]
    if not (slack > 1e-9).any():
        return _slack_frame()
    rows = lp.rows.iloc[lp.slack_row].reset_index(drop=True)
    frame = rows.assign(need=slack, stage=stage, need_mw_eq=slack * rows.mw_per_unit.to_numpy())
    frame = frame[frame.need > 1e-9]
    if frame.empty:
        return _slack_frame()
    return frame.groupby(["stage", "period", "service", "element", "element_id", "unit"],
                         as_index=False)[["need", "need_mw_eq"]].sum()[_slack_frame().columns]
