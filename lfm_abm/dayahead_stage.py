"""The day-ahead stage of a run: positions to a moved market day, and what each round settles.

Every round with `[dayahead] enabled`, the providers' positions (a share per block,
`agents.positions`) become a schedule per asset; the day the local market clears on is
the forecast day moved by that schedule (`MarketCase.with_schedule`: AC points,
sensitivities and needs after the day-ahead market), with offers that start from the
schedule and may first undo it (`agents.assets`). Moved days are built once per
schedule and kept (positions on a coarse grid repeat once learners settle).

Settlement follows `market.dayahead`: an award of x MW against a position s reverses
r = min(x, max(0, -d s)) of it, whatever offer row the LP took it from, so the true cost
of the award is the reversal's cost on r and the normal cost beyond; the baseline rule
says what the DSO pays for r and what the provider settles as imbalance.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.agents.book import OfferBook
from lfm_abm.agents.dso import MOVED_MARK
from lfm_abm.agents.population import Population
from lfm_abm.agents.positions import PositionBook, position_assets
from lfm_abm.day import MarketDay, offers_day
from lfm_abm.market.dayahead import DayAheadParams, directions, settle_baseline
from lfm_abm.market.dso_alone import counterfactual

#: Moved market days a run keeps (each holds a net and its AC points).
MAX_MOVED_DAYS = 64
#: Schedules closer than this (MW) are the same day.
SCHEDULE_RESOLUTION = 1e-6


@dataclass(frozen=True)
class Settlement:
    """One round's money and energy, per offer row (arrays aligned with the book).

    paid: what the DSO pays (EUR); cost: the provider's true cost of the award (EUR);
    imbalance: the provider's imbalance cash (EUR); reversed: MW that undo its own
    position; balance: what the DSO's correction of the provider's balance costs it at
    the day-ahead price (EUR): energy it supplies for a P_down award, minus energy it
    gets from a P_up award, except a reversal the provider settles itself ("forecast").
    """

    paid: np.ndarray
    cost: np.ndarray
    imbalance: np.ndarray
    reversed: np.ndarray
    balance: np.ndarray


class DayAheadStage:
    """A run's day-ahead market: its position book and the days its schedules make."""

    def __init__(self, positions: PositionBook, population: Population,
                 batched: bool = True) -> None:
        self.positions = positions
        self.batched = batched  # False: one power flow per period (the benchmark's baseline)
        self.params = positions.params
        self.population = population
        self._moved: OrderedDict[tuple, MarketDay] = OrderedDict()
        self._serial = itertools.count(1)
        self._bounds: dict[str, np.ndarray] = {}
        self._limitation: dict[str, float] = {}
        self._unmoved: dict = {}  # offers of assets without a position (`build_book`)

    @classmethod
    def on(cls, params: DayAheadParams, population: Population, forecast: MarketDay,
           batched: bool = True) -> DayAheadStage:
        """The stage for `population` on the forecast day's grid and periods."""
        scenario = forecast.case.scenario
        hours = np.asarray(scenario.hours)
        assets = position_assets(population.fsps, forecast.inventory, hours, params.kinds)
        return cls(PositionBook(tuple(assets), params, hours, float(scenario.period_hours)),
                   population, batched)

    @property
    def providers(self) -> list[str]:
        """FSPs that take positions."""
        return self.positions.providers

    def held(self, forecast: MarketDay) -> np.ndarray | None:
        """Periods where a capacity limitation holds positions at zero (None: nowhere).

        The periods with a need on the forecast of a service the design buys: those the
        DSO publishes before any day-ahead market.
        """
        if not self.params.limitation:
            return None
        return np.isin(np.arange(len(self.positions.hours)), forecast.periods)

    def schedule(self, shares: Mapping[str, np.ndarray],
                 forecast: MarketDay) -> dict[str, np.ndarray]:
        """MW per period of every position asset (device id) on the forecast's day."""
        return self.positions.schedule(shares, self.held(forecast))

    def limitation_cost(self, forecast: MarketDay) -> float:
        """What the DSO pays for the day's capacity limitation (EUR): providers' lost profit.

        Each provider is paid its truthful day-ahead profit minus the best it can make
        with its positions held in the limited periods (0 without a limitation).
        """
        held = self.held(forecast)
        if held is None:
            return 0.0
        if forecast.name not in self._limitation:
            self._limitation[forecast.name] = sum(
                self.positions.truthful_profit(fsp) - self.positions.truthful_profit(fsp, held)
                for fsp in self.providers)
        return self._limitation[forecast.name]

    def day(self, forecast: MarketDay, schedule: Mapping[str, np.ndarray]) -> MarketDay:
        """The market day after the day-ahead market: `forecast` moved by `schedule`."""
        if not any(np.any(np.abs(mw) > SCHEDULE_RESOLUTION) for mw in schedule.values()):
            return forecast
        key = (forecast.name, tuple(np.round(np.concatenate(list(schedule.values()))
                                             / SCHEDULE_RESOLUTION).astype(np.int64)))
        if key not in self._moved:
            self._moved[key] = self._moved_day(forecast, schedule)
            while len(self._moved) > MAX_MOVED_DAYS:
                self._moved.popitem(last=False)
        self._moved.move_to_end(key)
        return self._moved[key]

    def _moved_day(self, forecast: MarketDay, schedule: Mapping[str, np.ndarray]) -> MarketDay:
        """Solve the moved day and build its offers, with its no-market counterfactual.

        The moved points are solved by the run's own AC evaluator of the forecast day
        (`MarketCase.with_schedule`, batched): its batch of the day is built once. The DSO
        alone stays NaN: a run with a day-ahead stage does not use the DSO's taps
        (`model.ModelSettings` refuses them).
        """
        case = forecast.case.with_schedule(self.positions.by_bus(schedule), self.batched)
        case.counterfactual = counterfactual(case, None)  # a fresh case: ours to complete
        moving = {device: mw for device, mw in schedule.items()
                  if np.any(np.abs(mw) > SCHEDULE_RESOLUTION)}
        day = offers_day(case, self.population, forecast.design, forecast.inventory,
                         forecast.name, moving, self._unmoved)
        day.template = case
        day.key = f"{forecast.market_key}{MOVED_MARK} {next(self._serial)}"
        return day

    def settle(self, book: OfferBook, awards: pd.DataFrame,
               schedule: Mapping[str, np.ndarray]) -> Settlement:
        """What each award is paid and costs, and the imbalance it leaves (`Settlement`)."""
        offers = book.offers
        awarded = awards.awarded.to_numpy(dtype=float)
        payment = awards.payment.to_numpy(dtype=float)
        period = offers.period.to_numpy(dtype=int)
        product = offers["product"].to_numpy()
        zero = np.zeros(len(self.positions.hours))
        position = np.array([schedule.get(device, zero)[t] for device, t in zip(
            offers.device_id.to_numpy(), period, strict=True)]) if len(offers) else zero[:0]
        key = pd.MultiIndex.from_arrays([offers.device_id, offers.period, offers["product"]])
        codes, _ = pd.factorize(key)

        def per_key(values: np.ndarray) -> np.ndarray:
            return np.bincount(codes, weights=values)[codes] if len(codes) else values

        undone = np.minimum(per_key(awarded), np.maximum(0.0, -directions(product) * position))
        reverses = offers.reverses.to_numpy(dtype=bool)
        cost = offers.cost.to_numpy(dtype=float)

        # The reversal row counts first, the normal row (one per key) takes the rest.
        on_reversal = np.where(reverses, np.minimum(awarded, undone), 0.0)
        reversed_mw = np.where(reverses, on_reversal,
                               np.minimum(awarded, undone - per_key(on_reversal)))
        reversal_cost = per_key(np.where(reverses, cost, 0.0))
        true_cost = book.hours * (reversal_cost * reversed_mw
                                  + np.where(reverses, 0.0, cost) * (awarded - reversed_mw))
        price = self.positions.price[period]
        paid, imbalance = settle_baseline(
            self.params.baseline, product, awarded, payment, reversed_mw, price,
            self.params.imbalance_spread, book.hours)
        corrected = awarded - (reversed_mw if self.params.baseline == "forecast" else 0.0)
        balance = -directions(product) * price * corrected * book.hours
        return Settlement(paid, true_cost, imbalance, reversed_mw, balance)

    def bounds(self, fsp_id: str) -> np.ndarray:
        """The reward shift of each of `fsp_id`'s block learners (`PositionBook.loss_bound`)."""
        if fsp_id not in self._bounds:
            settles = self.params.baseline == "forecast"
            block = self.positions.block
            self._bounds[fsp_id] = np.array([
                self.positions.loss_bound(fsp_id, np.flatnonzero(block == b), settles)
                for b in range(self.params.blocks)])
        return self._bounds[fsp_id]

    def by_block(self, per_period: np.ndarray) -> np.ndarray:
        """Sum a per-period array within each block of the day."""
        return np.bincount(self.positions.block, weights=per_period,
                           minlength=self.params.blocks)

    def period_profits(self, book: OfferBook, settlement: Settlement,
                       schedule: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each provider's profit per period: day-ahead, local market and imbalance, EUR."""
        profit = self.positions.profit(schedule)
        offers = book.offers
        local = settlement.paid - settlement.cost + settlement.imbalance
        n = len(self.positions.hours)
        for fsp_id in profit:
            mine = (offers.provider_id == fsp_id).to_numpy()
            profit[fsp_id] = profit[fsp_id] + np.bincount(
                offers.period.to_numpy(dtype=int)[mine], weights=local[mine], minlength=n)
        return profit

    def round_figures(self, forecast: MarketDay, day: MarketDay, book: OfferBook,
                      settlement: Settlement, schedule: Mapping[str, np.ndarray]
                      ) -> dict[str, float]:
        """The round's day-ahead KPIs (`results.registry`): volumes, profits, created need."""
        h = self.positions.period_hours
        before = forecast.case.counterfactual
        after = day.case.counterfactual
        assert before is not None and after is not None
        local = settlement.paid - settlement.cost
        limitation = self.limitation_cost(forecast)
        return {
            "dso_cost": float(settlement.paid.sum()) + limitation,
            "limitation_cost": limitation,
            "dayahead_mwh": h * float(sum(np.abs(mw).sum() for mw in schedule.values())),
            "inc_dec_mwh": float((settlement.reversed * book.hours).sum()),
            "dayahead_profit": float(sum(p.sum() for p in
                                         self.positions.profit(schedule).values())),
            "local_profit": float(local.sum()),
            "imbalance_cash": float(settlement.imbalance.sum()),
            "balance_cost": float(settlement.balance.sum()),
            "unmet_need_no_market_forecast": before.no_market_mwh,
            "need_created": after.no_market_mwh - before.no_market_mwh,
        }
