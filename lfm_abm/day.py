"""A market day: what stays fixed while the agents bid, round after round, on one day.

The grid's baseline AC day (a `MarketCase`), what is connected at each bus (the FSPs'
inventory), the periods the DSO publishes (those with a baseline need of a service the
design buys) and the offer book of every FSP for those periods. One function builds it,
so the simulation, the linearisation report and a study's upfront checks agree on
which periods get bids and which offers exist.
"""

from __future__ import annotations

import copy
import functools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lfm_abm.agents.book import OfferBook, build_book
from lfm_abm.agents.inventory import GridInventory, grid_inventory
from lfm_abm.agents.population import (
    Population,
    check_against,
    check_costs_below_reservation,
)
from lfm_abm.errors import InputError, PowerFlowError
from lfm_abm.market.clearing import Market, MarketCase
from lfm_abm.market.concentration import NeedMarkets
from lfm_abm.market.designs import Design
from lfm_abm.market.dso_alone import (
    MeasuredTaps,
    counterfactual,
    least_cost_taps,
    measure_taps,
    taps_pay,
)
from lfm_abm.market.engines import SolverError
from lfm_abm.market.params import MarketParams
from lfm_abm.market.structure import pivotal_suppliers
from lfm_abm.market.tap_schedule import TapSchedule
from lfm_abm.network.ac_validation import ACEvaluator
from lfm_abm.network.grids import load_grid
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario

_BUILDING = threading.Lock()


def shared_case(grid: str, scenario: Scenario, day: str | None, limits: NeedLimits,
                params: MarketParams, ac_reuse: bool = True) -> MarketCase:
    """A market case built once per process (runs of a study share its baseline).

    Runs in threads of one process ask for the same day at once: the lock makes one of
    them build it while the others wait, instead of each building (and racing on) it.
    Never mutate the result or its net: take a `private_case` of it.
    """
    with _BUILDING:
        return _priced_case(grid, scenario, day, limits, params, ac_reuse)


@functools.lru_cache(maxsize=64)
def _priced_case(grid: str, scenario: Scenario, day: str | None, limits: NeedLimits,
                 params: MarketParams, ac_reuse: bool) -> MarketCase:
    """The day's case under these market parameters (VOLL, prices, the DSO's tools, ...).

    The baseline power flows and sensitivities do not depend on the prices: every
    parameter set shares the network's case (a sweep of VOLL builds the day once, not per
    value). The DSO's tap schedule does, so the tapped day is built per schedule. Both
    counterfactuals (no market, DSO alone) are attached whatever tools the design uses.
    """
    plain = _network_case(grid, scenario, day, limits, ac_reuse).with_params(params)
    case = with_dso_tools(plain, lambda taps: _tapped_case(
        grid, scenario, day, limits, ac_reuse, taps).with_params(params),
        _measured_taps(grid, scenario, day, limits, ac_reuse))
    case.baseline_emergency  # computed once, carried into every private case  # noqa: B018
    return case


def with_dso_tools(plain: MarketCase,
                   tapped: Callable[[TapSchedule], MarketCase] | None = None,
                   measured: MeasuredTaps | None = None) -> MarketCase:
    """The day the design clears on (tapped if it uses "oltc"), with both counterfactuals.

    `plain` is the day at the grid's taps; `tapped` builds the day at a tap schedule
    (default: `MarketCase.with_taps`) and `measured` holds the taps' effects (default:
    measured here); a study passes its cached ones.
    """
    wanted = "oltc" in plain.params.dso_tools
    try:
        taps = least_cost_taps(plain, measured)
        at_taps = plain if taps is None else (tapped or plain.with_taps)(taps)
    except (PowerFlowError, SolverError, InputError) as error:
        if wanted:
            raise
        warnings.warn(f"the DSO alone is unknown (NaN): its tap schedule failed: {error}",
                      stacklevel=2)
        at_taps = None
    if at_taps is not None and at_taps is not plain and not taps_pay(plain, at_taps):
        at_taps = plain  # in AC the taps do not pay: the DSO keeps the grid's
    chosen = at_taps if wanted and at_taps is not None else plain
    case = copy.copy(chosen)  # keeps what the case has computed (its emergency action)
    case.counterfactual = counterfactual(plain, at_taps)
    return case


@functools.lru_cache(maxsize=16)
def _network_case(grid: str, scenario: Scenario, day: str | None, limits: NeedLimits,
                  ac_reuse: bool) -> MarketCase:
    return MarketCase.build(load_grid(grid), scenario, day, limits, MarketParams(), ac_reuse)


@functools.lru_cache(maxsize=16)
def _measured_taps(grid: str, scenario: Scenario, day: str | None, limits: NeedLimits,
                   ac_reuse: bool) -> MeasuredTaps:
    return measure_taps(_network_case(grid, scenario, day, limits, ac_reuse))


@functools.lru_cache(maxsize=16)
def _tapped_case(grid: str, scenario: Scenario, day: str | None, limits: NeedLimits,
                 ac_reuse: bool, taps: TapSchedule) -> MarketCase:
    return _network_case(grid, scenario, day, limits, ac_reuse).with_taps(taps)


def private_case(case: MarketCase, ac_reuse: bool = True) -> MarketCase:
    """The same day with a pandapower net, AC evaluator and AC cache of the run's own.

    AC validation writes set-points into its net and reruns power flows on it, and the
    sensitivities of a validated state read the net's solver data: runs in threads of
    one process would race on a shared net (wrong records, or a crash). The baseline
    (operating points, sensitivities, needs, the emergency action without a market) is
    read-only and stays shared, as does the day's store of batched nets; a copy of the
    net costs ~15 ms on a 122-bus grid.
    """
    net = copy.deepcopy(case.net)
    private = copy.copy(case)  # keeps what the shared case has computed (cached properties)
    private.net = net
    private.evaluator = ACEvaluator(net, case.injections, case.points, case.limits, ac_reuse,
                                    batches=case.evaluator.batches)
    return private


def published_periods(case: MarketCase, design: Design) -> np.ndarray:
    """Periods with a baseline need of a service the design buys: FSPs bid there."""
    needs = case.baseline_needs
    wanted = needs[needs.service.isin(design.services)]
    return np.array(sorted(wanted.period.unique()), dtype=int)


@dataclass
class MarketDay:
    """A market day with everything the agents need: case, inventory, offer book."""

    name: str
    case: MarketCase
    design: Design
    inventory: GridInventory
    book: OfferBook
    periods: np.ndarray
    benchmarks: dict[str, dict[str, float]] = field(default_factory=dict)  # by pricing
    #: The untouched case every run's private case is copied from (`for_run`).
    template: MarketCase | None = field(default=None, repr=False)
    #: What the DSO keys its warm market by: the name, or a moved day's own key.
    key: str = ""

    @property
    def market_key(self) -> str:
        """The DSO's key for this day's market (its LP stays warm across rounds)."""
        return self.key or self.name

    def benchmark(self, pricing: str) -> dict[str, float]:
        """Headline numbers of the truthful benchmark (every offer at true cost, in full).

        Cleared and AC-validated once per pricing rule; copies of the day for other runs
        (`for_run`) share the result.
        """
        if pricing not in self.benchmarks:
            # Not on the run's own case: whichever run computes it first would otherwise
            # start its AC work from other states than the runs after it.
            market = Market(self.scratch_case(), self.design, pricing)
            result = market.clear(self.book.truthful_bids(), self.book.devices, trusted=True)
            self.benchmarks[pricing] = result.summary(self.case.params)
        return self.benchmarks[pricing]

    def scratch_case(self) -> MarketCase:
        """A fresh copy of the day's untouched case, for clearings outside the run's rounds.

        The truthful benchmark, regret and pivotal tests clear the day again; on the run's
        own case their power flows (between a sequential design's stages) would leave
        warm states and cached AC points behind, and the rounds after them would differ
        by 1e-10, enough to change a tie and a learning path.
        """
        return private_case(self.template or self.case)

    def for_run(self, ac_reuse: bool = True) -> MarketDay:
        """The same day for one run: its own case (net, AC evaluator), the rest shared.

        The offer book, the structure, the need markets and the benchmarks computed so
        far are read-only and shared with every other run of the day.
        """
        day = copy.copy(self)
        day.template = self.template or self.case
        day.case = private_case(day.template, ac_reuse)
        return day

    @functools.cached_property
    def structure(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Pivotal suppliers under truthful offers: per period, and per supplier and period.

        The competitive benchmark's structure (`market.structure`), cleared pay-as-bid so
        costs are true costs.
        """
        periods, suppliers = pivotal_suppliers(
            Market(self.case, self.design), self.book.truthful_bids(), self.book.devices,
            self.periods)
        return periods.assign(day=self.name), suppliers.assign(day=self.name)

    @functools.cached_property
    def markets(self) -> NeedMarkets:
        """The locational market of every published need (for per-need HHI)."""
        needs = self.case.baseline_needs
        return NeedMarkets(self.case, needs[needs.service.isin(self.design.services)],
                           self.book.offers)


def market_day(case: MarketCase, population: Population, design: Design,
               name: str | None = None) -> MarketDay:
    """Check the population against the day's grid and build its offer book.

    Raises `InputError` when an asset's bus lacks what it claims or a true cost is not
    below the reservation price.
    """
    if case.counterfactual is None:  # built outside a study: the DSO's tools come first
        case = with_dso_tools(case)
    inventory = grid_inventory(case)
    check_against(population, inventory, list(case.buses))
    check_costs_below_reservation(population, case.params.max_bid_price)
    return offers_day(case, population, design, inventory, name)


def offers_day(case: MarketCase, population: Population, design: Design,
               inventory: GridInventory, name: str | None = None,
               positions: Mapping[str, np.ndarray] | None = None,
               unmoved: dict | None = None) -> MarketDay:
    """The market day of a checked population: published periods and the offer book.

    positions, unmoved: day-ahead schedules by device id (MW per period) the offers
    start from, and a cache of the other assets' offers (`agents.book.build_book`); a
    day moved by them keeps the forecast's inventory, which the schedules are not part
    of (`network.schedules`).
    """
    periods = published_periods(case, design)
    book = build_book(population.fsps, inventory, np.asarray(case.scenario.hours), periods,
                      case.scenario.period_hours, design.products, positions, unmoved)
    return MarketDay(str(name or "synthetic"), case, design, inventory, book, periods)


_DAYS: OrderedDict[tuple, MarketDay] = OrderedDict()
#: Market days kept per process (a study varies grid, day, population and design).
MAX_SHARED_DAYS = 32


def shared_day(grid: str, scenario: Scenario, name: str | None, limits: NeedLimits,
               params: MarketParams, population: Population, design: Design,
               ac_reuse: bool = True) -> MarketDay:
    """The market day built once per process for every run that shares it.

    Start-up of a run is then a copy of the net (`MarketDay.for_run`), not the book,
    the pivotal test and the need markets again (~2.5 s on simbench-semiurb). Never
    use its case for AC runs: take `for_run`.
    """
    case = shared_case(grid, scenario, name, limits, params, ac_reuse)
    key = (grid, scenario, name, limits, params, ac_reuse, repr(population), design)
    with _BUILDING:
        if key not in _DAYS:
            # Built on a private copy (sequential designs run AC power flows for the
            # pivotal test), then pointed at the untouched shared case that runs copy.
            day = market_day(private_case(case, ac_reuse), population, design, name)
            day.structure, day.markets  # computed once, before any copy  # noqa: B018
            day.case = case
            _DAYS[key] = day
            while len(_DAYS) > MAX_SHARED_DAYS:
                _DAYS.popitem(last=False)
        _DAYS.move_to_end(key)
        return _DAYS[key]


def forget_days() -> None:
    """Empty this process's market cases and days, as a fresh worker process has none."""
    with _BUILDING:
        _DAYS.clear()
        _priced_case.cache_clear()
        _tapped_case.cache_clear()
        _measured_taps.cache_clear()
        _network_case.cache_clear()
