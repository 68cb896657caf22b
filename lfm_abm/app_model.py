"""The model behind the app (`app.py`) and what one of its rounds shows.

Kept apart from the Solara page so that every number the page draws is computed, and
tested, without a browser: the grid's state in a period (loading per branch, voltage per
bus, the needs, the awards at their buses), the offers of one need's local market, and
the round's awards with their settlement.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import pandas as pd

from lfm_abm.agents.defaults import generated_population, population_for
from lfm_abm.errors import InputError
from lfm_abm.learning import LEARNERS, ActionGrid, make_learner
from lfm_abm.market.designs import SINGLE_DESIGNS
from lfm_abm.market.pricing import PRICING_RULES
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.grids import BUILT_IN
from lfm_abm.network.operating_points import OperatingPoint
from lfm_abm.results.network_data import branch_ends, network_data
from lfm_abm.results.plots import need_offers

OWN_POPULATION = "grid's own"  # the shipped file where there is one, else generated
GENERATED = "generated"
OWN_LEARNERS = "each FSP's own"  # as the population file declares


def _learners_without_parameters() -> tuple[str, ...]:
    """Learners a menu can build from their kind alone (fixed-markup needs its markup)."""
    kinds = []
    for kind in LEARNERS:
        try:
            make_learner({"kind": kind}, ActionGrid())
        except InputError:
            continue
        kinds.append(kind)
    return tuple(kinds)


#: The page's menus: every value is a run the model can build.
CHOICES: dict[str, tuple[str, ...]] = {
    "grid": tuple(BUILT_IN),
    "population": (OWN_POPULATION, GENERATED),
    "design": (*SINGLE_DESIGNS, "CM_P>VC_Q"),
    "pricing": tuple(PRICING_RULES),
    "learner": (OWN_LEARNERS, *_learners_without_parameters()),
}
#: What the page starts with: the small grid's joint P and Q market.
DEFAULTS = {"grid": "cigre-mv", "population": OWN_POPULATION, "design": "CMVC_PQ",
            "pricing": "pay-as-bid", "learner": OWN_LEARNERS}
AWARD_COLUMNS = ["provider_id", "fsp_type", "bus", "period", "product", "awarded", "price",
                 "cost", "price_paid", "payment", "profit"]


class AppModel(LFMModel):
    """One run built from the page's menus, AC-validated every round (the map shows AC).

    Keyword arguments with defaults only: Mesa's page rebuilds the model from them when
    the user resets it.
    """

    def __init__(self, grid: str = DEFAULTS["grid"], population: str = DEFAULTS["population"],
                 design: str = DEFAULTS["design"], pricing: str = DEFAULTS["pricing"],
                 learner: str = DEFAULTS["learner"], seed: int = 0) -> None:
        chosen = {"grid": grid, "population": population, "design": design,
                  "pricing": pricing, "learner": learner}
        for name, value in chosen.items():
            if value not in CHOICES[name]:
                raise InputError(f"unknown {name} {value!r}", source="app", field=name,
                                 allowed=list(CHOICES[name]))
        people = (population_for(grid) if population == OWN_POPULATION
                  else generated_population(grid))
        override = None if learner == OWN_LEARNERS else {"kind": learner}
        super().__init__(ModelSettings(grid=grid, population=people, design=design,
                                       pricing=pricing, learner=override), seed=int(seed))
        self.choices = {**chosen, "seed": int(seed)}
        case = self.day(self.days[0]).case
        self.network = network_data(case.net, case)
        self.branch_ends = branch_ends(case.net)
        self._stepping = threading.Lock()

    def step(self) -> None:
        """One round; rounds of one model never overlap (Step, Play and Run N share it)."""
        with self._stepping:
            super().step()

    def prepare(self) -> None:
        """The first round's one-off work, ahead of it: the truthful benchmark.

        It takes seconds (a clearing and an AC validation of every offer at cost), which
        would otherwise make the first Step hang without a word. It runs on a copy of
        the day (`MarketDay.benchmark`), so the rounds are the same with or without it.
        """
        with self._stepping:
            self.day(self.days[0]).benchmark(self.settings.pricing)

    def history(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rounds and agents records so far (not `records`: no end-of-run tables)."""
        frames = self.sink.frames()
        return frames.get("rounds", pd.DataFrame()), frames.get("agents", pd.DataFrame())

    @property
    def needs(self) -> pd.DataFrame:
        """The needs the design buys (baseline of the first day), one row per need."""
        needs = self.network.needs
        return needs[needs.service.isin(self.design.services)]


class GridState(NamedTuple):
    """The grid in one period, as the map draws it.

    buses: bus, x, y, vm_pu; branches: element, element_id, x, y, x_to, y_to,
    loading_percent; needs: the design's needs of the period (as `AppModel.needs`);
    awards: bus, x, y, product, awarded (MW or MVAr, summed per bus and product);
    after_awards: True if the state is the AC power flow with the latest round's awards
    (False: the baseline, before any round).
    """

    period: int
    label: str
    buses: pd.DataFrame
    branches: pd.DataFrame
    needs: pd.DataFrame
    awards: pd.DataFrame
    after_awards: bool


def _point(model: AppModel, period: int) -> tuple[OperatingPoint, bool]:
    """The AC state after the latest round's awards where validated, else the baseline."""
    result = model.latest_result
    if result is not None and result.validation is not None:
        return result.validation.points[period], True
    return model.day(model.days[0]).case.points[period], False


def grid_state(model: AppModel, period: int) -> GridState:
    """Loading, voltages, needs and the latest round's awards in `period`."""
    point, after = _point(model, period)
    position = model.network.buses.set_index("bus")[["x", "y"]]
    loading = pd.concat([point.branches.line.loading_percent.rename_axis("element_id")
                         .reset_index().assign(element="line"),
                         point.branches.trafo.loading_percent.rename_axis("element_id")
                         .reset_index().assign(element="trafo")], ignore_index=True)
    branches = (model.branch_ends.merge(loading, on=["element", "element_id"])
                .join(position, on="from_bus").join(position, on="to_bus", rsuffix="_to"))
    buses = position.join(point.vm_pu.rename("vm_pu")).rename_axis("bus").reset_index()
    latest = model.offers_of("last")
    awards = pd.DataFrame(columns=["bus", "product", "awarded"])
    if len(latest):
        won = latest[(latest.period == period) & (latest.awarded > 0)]
        awards = won.groupby(["bus", "product"], as_index=False).awarded.sum()
    needs = model.needs
    return GridState(period, point.label, buses, branches, needs[needs.period == period],
                     awards.join(position, on="bus"), after)


def need_market(model: AppModel, need_id: int) -> pd.DataFrame:
    """The latest round's offers that relieve need `need_id`, with their relief per unit."""
    offers = model.offers_of("last")
    if not len(offers):
        return offers
    joined = need_offers(offers, model.network)
    return joined[joined.need_id == need_id]


def round_awards(model: AppModel) -> pd.DataFrame:
    """The latest round's awarded bids, dearest payment first, with each bid's profit.

    profit = payment - true cost x awarded x hours (EUR), so the column sums to the
    round's FSP profit and `payment` to the DSO's procurement cost.
    """
    offers = model.offers_of("last")
    if not len(offers):
        return pd.DataFrame(columns=AWARD_COLUMNS)
    won = offers[offers.awarded > 0]
    won = won.assign(profit=won.payment - won.cost * won.awarded * won.hours)
    return won[AWARD_COLUMNS].sort_values("payment", ascending=False, kind="stable"
                                          ).reset_index(drop=True)

