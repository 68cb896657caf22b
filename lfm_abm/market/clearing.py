"""The market the DSO clears: one design on one market day, round after round.

`MarketCase` holds what is fixed for a day (grid, baseline AC states with
sensitivities, limits, parameters, emergency capacity, the AC evaluator).
`Market.clear` runs the design's stage plan (`stages.py`): the first stage at the
baseline AC point, later stages and re-linearisation at the AC point after the awards
so far, each with the remaining quantities and the devices moved by their awards. The
first stage's LP is built once per set of bid slots; later rounds only update prices
and quantities in place (warm HiGHS re-solves).

The DSO carries out the emergency action its stages plan (curtailment at its
compensation and load shedding at VOLL, where bids do not suffice or cost more).
`Market.validate` applies the awards and that action in an AC power flow and adds the
least-cost corrective emergency action that fixes the AC state, linearised there: unmet
need after AC = planned + corrective emergency action, in MWh, the same measure as in
the LP.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.bids import (
    ACTIVE_PRODUCTS,
    PRODUCT_SIGN,
    PRODUCTS,
    families,
    same_slots,
    slot_arrays,
    validate_bids,
)
from lfm_abm.market.designs import Design, parse_design
from lfm_abm.market.devices import NO_DEVICES, Devices
from lfm_abm.market.emergency import EmergencyCapacity, emergency_injections, split_by_action
from lfm_abm.market.energy import account_rows, bid_states, energy_kpis
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import check_pricing, locational_prices
from lfm_abm.market.stages import (
    NO_EMERGENCY,
    NO_UNRESOLVED,
    PlannedStage,
    StageResult,
    StageSolver,
    clear_emergency_only,
    clear_stage,
    stage_plan,
)
from lfm_abm.network.ac_validation import FLEX_COLUMNS, ACEvaluator, ValidationReport
from lfm_abm.network.connected import connected_power
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import OperatingPoint, operating_points
from lfm_abm.network.scenarios import PeriodInjections, Scenario, period_injections
from lfm_abm.network.schedules import add_schedule
from lfm_abm.network.taps import ratio_taps, with_taps

if TYPE_CHECKING:
    from lfm_abm.market.dso_alone import Counterfactual
    from lfm_abm.market.tap_schedule import TapSchedule


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
    emergency: EmergencyCapacity = field(repr=False)
    #: The DSO's tap schedule the day's points are solved at (None: the grid's taps).
    taps: TapSchedule | None = None
    #: What the day costs the DSO without a market (`dso_alone.counterfactual`).
    counterfactual: Counterfactual | None = field(default=None, repr=False)

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
        generation, load = connected_power(net, injections)
        evaluator = ACEvaluator(net, injections, points, limits, reuse=ac_reuse)
        return cls(net, scenario, injections, points, limits, params or MarketParams(),
                   evaluator, EmergencyCapacity(generation, load))

    def with_params(self, params: MarketParams) -> MarketCase:
        """The same day under other market parameters: net, points and AC evaluator shared.

        What depends on the parameters (the emergency action without a market) is
        recomputed for the new case, never carried over.
        """
        return self if params == self.params else replace(self, params=params)

    def with_taps(self, taps: TapSchedule) -> MarketCase:
        """The same day with the tap changers moved per period: AC points solved anew."""
        net = copy.deepcopy(self.net)
        ratio_taps(net)
        return self._solved(net, with_taps(self.injections, list(taps.changers), taps.array),
                            taps=taps)

    def with_schedule(self, schedule: pd.DataFrame, batched: bool = False) -> MarketCase:
        """The same day after a day-ahead market: AC points solved with the schedule.

        schedule: MW injected per period and bus (`network.schedules`). The emergency
        capacity counts the scheduled energy; what depends on the point (needs, the
        counterfactuals) is computed anew. batched: solve the moved points as this day's
        AC evaluator solves awards (all periods in one batched power flow, sensitivities
        from the stored voltages) instead of one power flow per period: the same AC
        states (tested to 1e-8), some ten times faster on a moved day of simbench-semiurb.
        The evaluator's cache and warm start then hold the moved states: use it on a
        run's own case (`day.private_case`), never on a shared one.
        """
        net = copy.deepcopy(self.net)
        injections = add_schedule(net, self.injections, schedule)
        emergency = EmergencyCapacity(*connected_power(net, injections))
        if not batched:
            return self._solved(net, injections, emergency=emergency)
        periods, buses = schedule.shape
        flex = pd.DataFrame({"period": np.repeat(np.arange(periods), buses),
                             "bus": np.tile(schedule.columns.to_numpy(), periods),
                             "dp_mw": schedule.to_numpy(dtype=float).ravel(), "dq_mvar": 0.0})
        points = self.evaluator.linearised(flex, self.evaluator.evaluate(flex))
        evaluator = ACEvaluator(net, injections, points, self.limits, self.evaluator.reuse)
        return replace(self, net=net, injections=injections, points=points,
                       evaluator=evaluator, counterfactual=None, emergency=emergency)

    def _solved(self, net: pp.pandapowerNet, injections: PeriodInjections,
                **changes: object) -> MarketCase:
        """This day on its own `net` at other set-points, solved anew.

        AC points, sensitivities and the AC evaluator are computed again; the
        counterfactual is left to be computed for the new day.
        """
        points = list(operating_points(net, self.scenario, with_sensitivities=True,
                                       injections=injections))
        evaluator = ACEvaluator(net, injections, points, self.limits, self.evaluator.reuse)
        return replace(self, net=net, injections=injections, points=points,
                       evaluator=evaluator, counterfactual=None, **changes)

    @property
    def tap_moves(self) -> int:
        """Tap steps the DSO moves on this day (0 when it keeps the grid's taps)."""
        return 0 if self.taps is None else self.taps.moves

    @property
    def tap_cost(self) -> float:
        """EUR the DSO's tap moves cost on this day."""
        return self.tap_moves * self.params.tap_step_cost

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

    @functools.cached_property
    def baseline_emergency(self) -> StageResult:
        """The emergency action that would fix the baseline day without a market."""
        return clear_emergency_only(self.points, self.limits, self.params, self.emergency)

    @functools.cached_property
    def baseline_emergency_cost(self) -> float:
        """What that emergency action costs, EUR: the DSO alone, without a market."""
        return self.params.emergency_cost(split_by_action([self.baseline_emergency.emergency]))


@dataclass(frozen=True)
class AfterAC:
    """Corrective emergency action on the AC state after awards and planned action.

    corrective_mwh: MWh of the least-cost emergency action that fixes every AC need;
    collateral_mwh: the part the needs created by the market add (corrective action for
    all needs minus that for the residual needs alone); unresolved: need even full
    emergency action leaves (MVA or p.u.).
    """

    corrective_mwh: float
    collateral_mwh: float
    emergency: pd.DataFrame
    unresolved: pd.DataFrame


#: What clearing adds to each bid (`clear --out`); energy devices also get soc/deferred_mwh.
AWARD_COLUMNS = ("hours", "awarded", "payment", "uplift", "price_paid", "locational_price",
                 "stage")


@dataclass
class ClearingResult:
    """Outcome of one clearing: awards and payments, prices, unmet needs, AC validation."""

    design: str
    pricing: str
    # awards: bid columns + hours, awarded, payment, price_paid, uplift, locational_price,
    # stage, and the energy state of the bid's device after its period (soc/deferred_mwh)
    awards: pd.DataFrame
    stages: list[tuple[PlannedStage, StageResult]]  # in the order they were cleared
    linearised_at: tuple[list[OperatingPoint], pd.DataFrame] | None  # last linear clearing
    flex: pd.DataFrame  # period, bus, dp_mw, dq_mvar of the awards and planned emergency
    validation: ValidationReport | None
    after_ac: AfterAC | None
    stats: dict
    energy: pd.DataFrame  # energy accounts of the devices bids named (ENERGY_COLUMNS)

    @functools.cached_property
    def prices(self) -> pd.DataFrame:
        """Locational prices: stage, period, bus, product, price (EUR/MWh, uncapped).

        Computed on first use: a learning round does not need them.
        """
        return pd.concat([locational_prices(result.lp, result.solution).assign(stage=stage)
                          for stage, (_, result) in enumerate(self.stages)],
                         ignore_index=True)

    @property
    def design_stages(self) -> list[StageResult]:
        """The design's own stages (re-linearisation clearings left out)."""
        return [result for planned, result in self.stages if not planned.relinearisation]

    @property
    def procurement_cost(self) -> float:
        """Sum of payments to FSPs, EUR (= DSO procurement cost)."""
        return float(self.awards.payment.sum())

    @property
    def cost_at_bid_prices(self) -> float:
        """Sum of price x awarded energy, EUR (equals procurement cost under pay-as-bid)."""
        a = self.awards
        return float((a.price.to_numpy() * a.awarded.to_numpy() * a.hours.to_numpy()).sum())

    def volumes(self) -> dict[str, float]:
        """Awarded energy per product, MWh or MVArh."""
        energy = self.awards.awarded.to_numpy() * self.awards.hours.to_numpy()
        products = self.awards["product"].to_numpy()
        return {product: float(energy[products == product].sum()) for product in PRODUCTS}

    def summary(self, params: MarketParams) -> dict[str, float]:
        """Headline numbers: cost, volumes, unmet need before and after AC validation.

        Unmet need is MWh of the DSO's emergency action, split into curtailment and
        shedding, each priced by `params`; violations are in their own units (MVA, p.u.).
        After-AC figures are NaN when the round was not AC-validated (unknown is not zero).
        """
        unresolved = [r.unresolved for r in self.design_stages]
        out = {
            "procurement_cost": self.procurement_cost,
            "cost_at_bid_prices": self.cost_at_bid_prices,
            "offers_above_reservation": float(self.stats["above_reservation"]),
            "unmet_need_before": sum(r.emergency_mwh for r in self.design_stages),
            **_by_service(unresolved, "unresolvable_{}_before"),
        }
        checked = self.validation is not None and self.after_ac is not None
        needs = self.validation.needs if checked else None
        after = self.after_ac
        taken = split_by_action([result.emergency for _, result in self.stages]
                                + [after.emergency if checked else NO_EMERGENCY])
        cost = {action: price * taken[action]
                for action, price in params.emergency_prices.items()}
        unknown = 1.0 if checked else np.nan
        out.update({
            "unmet_need_after_ac": sum(taken.values()) * unknown,
            "curtailed_after_ac": taken["curtail"] * unknown,
            "shed_after_ac": taken["shed"] * unknown,
            "corrective_after_ac": after.corrective_mwh if checked else np.nan,
            "collateral_after_ac": after.collateral_mwh if checked else np.nan,
            "curtailment_cost_after_ac": cost["curtail"] * unknown,
            "shedding_cost_after_ac": cost["shed"] * unknown,
            "unmet_cost_after_ac": sum(cost.values()) * unknown,
            **_by_service(None if needs is None else [needs], "violation_{}_after_ac"),
            **_by_service(None if needs is None else [needs[needs.kind == "collateral"]],
                          "collateral_{}_after_ac"),
            **_by_service([after.unresolved] if checked else None,
                          "unresolvable_{}_after_ac"),
        })
        out.update({f"volume_{k}": v for k, v in self.volumes().items()})
        out.update(energy_kpis(self.energy, self.awards))
        return out


def _by_service(needs: list[pd.DataFrame] | None, name: str) -> dict[str, float]:
    """Sum of `need` per service over tables of needs: CM in MVA, VC in p.u. (NaN if unknown)."""
    parts = [table for table in needs or () if len(table)]
    need = np.concatenate([t.need.to_numpy(dtype=float) for t in parts]) if parts else None
    service = np.concatenate([t.service.to_numpy() for t in parts]) if parts else None
    out = {}
    for key, unit in (("CM", "mva"), ("VC", "pu")):
        total = (float("nan") if needs is None else 0.0 if need is None
                 else float(need[service == key].sum()))
        out[f"{name.format(key.lower())}_{unit}"] = total
    return out


def flex_injections(bids: pd.DataFrame, awarded: np.ndarray) -> pd.DataFrame:
    """Net injection change per (period, bus) implied by awarded quantities."""
    won = np.flatnonzero(awarded > 0)
    if len(won) == 0:
        return pd.DataFrame(columns=FLEX_COLUMNS)
    # Only the awarded bids (dozens among thousands of offers): plain lookups beat pandas.
    products = bids["product"].to_numpy()[won]
    signed = awarded[won] * np.array([PRODUCT_SIGN[p] for p in products])
    is_p = np.array([p in ACTIVE_PRODUCTS for p in products], dtype=bool)
    period = bids.period.to_numpy()[won].astype(np.int64)
    bus = bids.bus.to_numpy()[won].astype(np.int64)
    slots, group = np.unique(period * (bus.max() + 1) + bus, return_inverse=True)
    member = np.zeros(len(slots), dtype=np.int64)
    member[group] = np.arange(len(group))  # a bid of each slot
    return pd.DataFrame({
        "period": period[member], "bus": bus[member],
        "dp_mw": np.bincount(group, np.where(is_p, signed, 0.0), minlength=len(slots)),
        "dq_mvar": np.bincount(group, np.where(is_p, 0.0, signed), minlength=len(slots))})


def combine_flex(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Sum injection-change tables (FLEX_COLUMNS) per period and bus."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=FLEX_COLUMNS)
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True).groupby(["period", "bus"], as_index=False)[
        ["dp_mw", "dq_mvar"]].sum()


class Market:
    """Clears one design with one pricing rule on a market day, reusing the LP across rounds."""

    def __init__(self, case: MarketCase, design: Design | str, pricing: str = "pay-as-bid",
                 engine: str = "highs", warm: bool = True) -> None:
        """A market on `case`; `warm=False` frees each bid LP's solver once it is solved.

        Rounds re-solve warm in the kept solver; a one-off clearing of a long bid file
        does not need it (HiGHS holds ~0.4 GB per million bids).
        """
        self.case = case
        self.design = parse_design(design) if isinstance(design, str) else design
        self.pricing = check_pricing(pricing)
        self.plan = stage_plan(self.design, case.params.relinearise)
        # first stage, baseline point: reused across rounds
        self._first = StageSolver(engine, keep=warm)
        self._later = StageSolver(engine, keep=warm)  # later stages and re-linearisation
        self._after = StageSolver(engine)  # emergency action after AC validation
        self._facts: _SlotFacts | None = None  # of the latest bid slots

    def clear(self, bids: pd.DataFrame, devices: Devices | None = None, *,
              ac_validate: bool = True, trusted: bool = False) -> ClearingResult:
        """Clear a round: awards, payments, prices, unmet need and (optionally) AC validation.

        `devices` describes the units bids name: their P-Q capability and energy
        accounts (`market.devices`). `trusted=True` skips input validation for bids and
        devices built by the simulator.
        """
        case = self.case
        if not trusted:
            bids = validate_bids(bids, buses=case.buses, n_periods=case.n_periods)
            check_device_ids(bids, devices)
            if devices is not None:
                devices = devices.validated(bids)
        devices = devices or NO_DEVICES
        if not bids.index.equals(pd.RangeIndex(len(bids))):  # a copy costs ~0.1 s per 1M bids
            bids = bids.reset_index(drop=True)
        tally = _Tally(bids, case.period_hours)
        stages: list[tuple[PlannedStage, StageResult]] = []
        facts = self._slot_facts(bids, devices)
        stats = {"iterations": 0, "solve_seconds": 0.0, "stages": 0,
                 "above_reservation": int((facts.admitted & (bids.price.to_numpy()
                                                             > case.params.max_bid_price)).sum())}
        last_points = case.points
        for index, planned in enumerate(self.plan):
            if planned.at_baseline:
                points, active, capacity = case.points, case.points, case.emergency
                remaining = bids
            else:
                flex = tally.flex()
                states = case.evaluator.evaluate(flex)
                needs = find_needs(states, case.limits)
                needed = set(needs.period[needs.service.isin(planned.stage.services)])
                if planned.relinearisation and not needed:
                    break
                # Only periods where something can move or something must: the others
                # would give the LP rows without columns (and cost sensitivities).
                remaining = tally.remaining()
                movable = (remaining.quantity > 0) & families(remaining["product"]).isin(
                    planned.stage.products)
                periods = sorted(needed | set(remaining.period[movable]))
                if not periods:
                    continue
                points = case.evaluator.linearised(flex, states, periods)
                active = [points[t] for t in periods]
                capacity = case.emergency.after(flex)
            result = clear_stage(
                active, remaining, planned.stage, case.limits,
                case.params, devices=devices.after(bids, tally.awarded, tally.hours),
                emergency=capacity, pricing=self.pricing,
                solver=self._first if index == 0 else self._later,
                key=("baseline", devices.key) if index == 0 else
                _later_key(index, devices, tally.awarded, flex, periods))
            tally.add(index, result)
            stages.append((planned, result))
            stats["iterations"] += result.solution.iterations
            stats["solve_seconds"] += result.solution.seconds
            stats["stages"] += 1
            last_points = points
        first = stages[0][1]
        stats.update(lp_rows=first.lp.matrix.shape[0], lp_cols=first.lp.matrix.shape[1],
                     warm=first.solution.warm, rebuilt=first.rebuilt)
        awards = tally.frame(bid_states(devices.energy, bids, tally.awarded, tally.hours,
                                        facts.account_rows))
        result = ClearingResult(
            design=self.design.name, pricing=self.pricing, awards=awards,
            stages=stages, linearised_at=_last_linearisation(bids, stages, last_points),
            flex=tally.flex(), validation=None, after_ac=None, stats=stats,
            energy=devices.energy)
        return self.validate(result) if ac_validate else result

    def _slot_facts(self, bids: pd.DataFrame, devices: Devices) -> _SlotFacts:
        """What the bids' slots alone fix, kept while rounds bid in the same slots."""
        kept = self._facts
        if kept is None or kept.devices != devices.key or not same_slots(bids, kept.slots):
            kept = _SlotFacts(slot_arrays(bids), devices.key,
                              families(bids["product"]).isin(self.design.products).to_numpy(),
                              account_rows(devices.energy, bids))
            self._facts = kept
        return kept

    def validate(self, result: ClearingResult) -> ClearingResult:
        """AC-validate a clearing's awards and measure the unmet need on the AC state."""
        report = self.case.evaluator.validate(result.flex, result.linearised_at)
        result.validation = report
        result.after_ac = self._emergency_after(result.flex, report)
        return result

    def _emergency_after(self, flex: pd.DataFrame, report: ValidationReport) -> AfterAC:
        """Least-cost emergency action fixing the AC needs (and the residual ones alone)."""
        case, needs = self.case, report.needs
        if needs.empty:
            return AfterAC(0.0, 0.0, NO_EMERGENCY, NO_UNRESOLVED)
        periods = sorted(int(t) for t in needs.period.unique())
        points = case.evaluator.linearised(flex, report.points, periods)
        subset = [points[t] for t in periods]
        capacity = case.emergency.after(flex)
        total = clear_emergency_only(subset, case.limits, case.params, capacity, self._after)
        residual = needs[needs.kind == "residual"]
        collateral = 0.0
        if (needs.kind == "collateral").any():
            keys = set(zip(residual.period.astype(int), residual.element,
                           residual.element_id.astype(int), strict=True))
            alone = clear_emergency_only(subset, case.limits, case.params, capacity,
                                         self._after, fix=keys).emergency_mwh if keys else 0.0
            collateral = max(total.emergency_mwh - alone, 0.0)
        return AfterAC(total.emergency_mwh, collateral, total.emergency, total.unresolved)


def _last_linearisation(bids: pd.DataFrame, stages: list[tuple[PlannedStage, StageResult]],
                        points: list[OperatingPoint]
                        ) -> tuple[list[OperatingPoint], pd.DataFrame] | None:
    """Where the last linear clearing was made, and its own injections, if not at baseline."""
    if len(stages) < 2:
        return None
    last = stages[-1][1]
    return points, combine_flex([flex_injections(bids.iloc[last.lp.bid_index],
                                                 last.settled.awarded.to_numpy()),
                                 emergency_injections(last.emergency)])


def check_device_ids(bids: pd.DataFrame, devices: Devices | None) -> None:
    """Bids that name devices need a device table (else their coupling would be lost)."""
    if devices is None and (bids.device_id != "").any():
        raise InputError("bids name devices but no device table (capability or energy) was "
                         "given; leave device_id empty to couple nothing", field="device_id")


#: Awards (MW) equal to this many decimals leave a later stage's LP as it is.
KEY_DECIMALS = 9


def _later_key(index: int, devices: Devices, awarded: np.ndarray, flex: pd.DataFrame,
               periods: list[int]) -> tuple:
    """What fixes a later stage's LP: the awards so far and the emergency action.

    They fix its AC point, the remaining quantities and the devices' moved rows; with the
    same key only prices differ, so the LP is re-solved warm (a repeated round, or a
    deviation that moves no earlier award). Rounded to KEY_DECIMALS: re-solves of one
    LP may differ in the last bits of the same awards.
    """
    digest = hashlib.sha1((np.round(awarded, KEY_DECIMALS) + 0.0).tobytes())  # no -0.0
    digest.update((np.round(flex[["period", "bus", "dp_mw", "dq_mvar"]].to_numpy(dtype=float),
                            KEY_DECIMALS) + 0.0).tobytes())
    return ("later", index, devices.key, tuple(periods), digest.hexdigest())


@dataclass(frozen=True)
class _SlotFacts:
    """Per bid, what its slot fixes: the design admits its family; its energy-account row."""

    slots: tuple[np.ndarray, ...]
    devices: str  # the key of the devices the account rows were found for
    admitted: np.ndarray
    account_rows: np.ndarray


class _Tally:
    """Awards and payments of a clearing, accumulated over its stages, per bid."""

    def __init__(self, bids: pd.DataFrame, period_hours: np.ndarray) -> None:
        self.bids = bids
        self.hours = period_hours[bids.period.to_numpy()]
        self.awarded = np.zeros(len(bids))
        self.payment = np.zeros(len(bids))
        self.uplift = np.zeros(len(bids))
        self.price = np.full(len(bids), np.nan)
        self.stage_of = np.full(len(bids), -1)
        self.emergency: list[pd.DataFrame] = []  # planned emergency action per stage

    def add(self, stage: int, result: StageResult) -> None:
        """Add a stage's awards and payments.

        A bid's recorded locational price is that of the stage that first awarded it,
        else of the first stage that admitted it; payments and uplifts add over stages.
        """
        index = result.lp.bid_index
        gained = result.settled.awarded.to_numpy()
        if len(result.emergency):
            self.emergency.append(result.emergency)
        self.awarded[index] += gained
        self.payment[index] += result.settled.payment.to_numpy()
        self.uplift[index] += result.settled.uplift.to_numpy()
        first_award = (gained > 0) & (self.stage_of[index] < 0)
        self.stage_of[index[first_award]] = stage
        take = np.isnan(self.price[index]) | first_award
        self.price[index[take]] = result.settled.locational_price.to_numpy()[take]

    def remaining(self) -> pd.DataFrame:
        """The bids with what is left of their quantities."""
        return self.bids.assign(quantity=np.maximum(self.bids.quantity.to_numpy()
                                                    - self.awarded, 0.0))

    def flex(self) -> pd.DataFrame:
        """Net injection changes of all awards and planned emergency action so far."""
        awards = flex_injections(self.bids, self.awarded)
        if not self.emergency:
            return awards
        return combine_flex([awards, *(emergency_injections(e) for e in self.emergency)])

    def frame(self, more: dict[str, np.ndarray]) -> pd.DataFrame:
        """Bid columns plus hours, awarded, payment, price paid, uplift, price, stage, `more`."""
        energy = self.awarded * self.hours
        return pd.DataFrame({
            **{column: self.bids[column].to_numpy() for column in self.bids.columns},
            "hours": self.hours, "awarded": self.awarded, "payment": self.payment,
            "price_paid": np.divide(self.payment, energy, out=np.full(len(energy), np.nan),
                                    where=energy > 0),
            "uplift": self.uplift, "locational_price": self.price, "stage": self.stage_of,
            **more})

