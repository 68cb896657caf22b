"""The Mesa model: one step is one market round.

Each round the DSO publishes the periods with needs, every FSP picks its markups (and
withheld shares) and submits bids, the DSO clears the market with the design's LP and
the pricing rule, pays the winners, AC-validates the awards (every `ac_every` rounds),
and every FSP learns from its profit = payment - true activation cost. The operating
point either stays fixed (a repeated game on one day) or a day is drawn each round from
the scenario's days (stochastic days). All randomness comes from the model's seeded
generator, so a seed reproduces a run exactly.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

import mesa
import numpy as np
import pandas as pd

from lfm_abm.agents.book import OfferBook
from lfm_abm.agents.dso import DSO
from lfm_abm.agents.fsp import AGENT_CLASSES, FSP
from lfm_abm.agents.population import Population, load_population
from lfm_abm.day import MarketDay, shared_day
from lfm_abm.dayahead_stage import DayAheadStage, Settlement
from lfm_abm.equilibrium import (
    REGRET_COLUMNS,
    DayGame,
    modal_actions,
    played_regret_table,
    regret_table,
    small_game_benchmarks,
)
from lfm_abm.errors import InputError, PowerFlowError
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.market.clearing import ClearingResult, Market, MarketCase
from lfm_abm.market.dayahead import DayAheadParams
from lfm_abm.market.designs import parse_design
from lfm_abm.market.engines import ENGINES, SolverError
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import check_pricing
from lfm_abm.market.structure import pivotal_suppliers
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario
from lfm_abm.records import TABLES, RecordSink, write_frames
from lfm_abm.schema import Bool, Field, InstanceOf, Int, Text, settings

STAGES = ("dayahead", "bidding", "clearing", "settlement", "ac_validation", "learning",
          "records")

#: The truthful benchmark of a day moved by day-ahead positions: not cleared (a moved day
#: is rarely seen twice); the day-ahead-truthful reference run is its benchmark.
MOVED_BENCHMARK = {"procurement_cost": float("nan"), "unmet_need_after_ac": float("nan")}
#: An award paid at least this share of the reservation price counts as at the cap.
AT_CAP = 0.95
#: Rounds of played profiles a run keeps for its window's played regret and learned
#: offers (a longer window uses its last PROFILE_MEMORY rounds): flat memory in long runs.
PROFILE_MEMORY = 1000


def _empty_tables() -> dict[str, pd.DataFrame]:
    """The streamed tables as they are before any row (fresh: callers may modify them)."""
    return {"rounds": pd.DataFrame(), "agents": pd.DataFrame(), "awards": pd.DataFrame(),
            "regret": pd.DataFrame(columns=[*REGRET_COLUMNS, "round"])}


@settings("settings")
class ModelSettings:
    """Everything that defines a run except the seed and the number of rounds.

    learner: if given, overrides every FSP's own learner (e.g. to compare learners on
    one population). ac_every: AC-validate every k-th round, starting with the first;
    rounds in between report NaN after-AC needs (never a silent zero). resample_days:
    draw a day per round from `scenario.days` instead of repeating the first.
    engine and ac_reuse exist for the benchmark: "cvxpy" rebuilds the LP in cvxpy every
    round, ac_reuse=False runs every AC power flow from scratch.
    """

    grid: Text
    population: InstanceOf[Population]
    design: Text
    pricing: Text = "pay-as-bid"
    scenario: InstanceOf[Scenario] | None = None
    limits: InstanceOf[NeedLimits] = field(default_factory=NeedLimits)
    market: InstanceOf[MarketParams] = field(default_factory=MarketParams)
    actions: InstanceOf[ActionGrid] = field(default_factory=ActionGrid)
    dayahead: InstanceOf[DayAheadParams] = field(default_factory=DayAheadParams)
    learner: Mapping[str, object] | None = None
    resample_days: Bool = False
    ac_every: Annotated[Int, Field(ge=1)] = 1
    engine: Literal[tuple(ENGINES)] = "highs"  # type: ignore[valid-type]
    ac_reuse: Bool = True

    def __post_init__(self) -> None:
        parse_design(self.design, "settings.design")
        check_pricing(self.pricing, "settings")
        if self.learner is not None:
            make_learner(self.learner, self.actions, source="learner override")
        if self.dayahead.enabled and self.resample_days:
            raise InputError("a day-ahead stage learns positions on one day; drawing a day "
                             "per round is not supported with it", field="resample_days",
                             allowed=["false (with [dayahead] enabled)"])
        if self.dayahead.enabled and "oltc" in self.market.dso_tools:
            raise InputError("the DSO's taps on a day moved by day-ahead schedules are not "
                             "modelled yet", field="market.dso_tools",
                             allowed=["[] (with [dayahead] enabled)"])
        if self.actions.positions != (0.0,):
            raise InputError(
                f"day-ahead positions {list(self.actions.positions)} in the action grid: a "
                "run learns them per block beside the markups (`[dayahead] positions`); "
                "the joint grid is for the hand-solved game of `market.dayahead`",
                field="actions.positions", allowed=["[0.0]"])


class LFMModel(mesa.Model):
    """Repeated local flexibility market with learning FSPs and a clearing DSO.

    spool: a folder to stream the records to while the run goes (`records.RecordSink`),
    so a long run keeps flat memory; `save_records` completes the tables there. Without
    it the records stay in memory, as for a short run. tags: constant columns every file
    of the run gets (a study's run id, design, seed, ...), so the files describe themselves.
    """

    def __init__(self, settings: ModelSettings, seed: int = 0,
                 spool: str | Path | None = None,
                 tags: Mapping[str, object] | None = None) -> None:
        super().__init__(seed=seed)
        self.settings = settings
        self.population_source = settings.population.source
        self.design = parse_design(settings.design)
        self.scenario = settings.scenario or default_scenario(load_grid(settings.grid))
        self.days = self.scenario.days or (None,)
        self.dso = DSO(self, self.design, settings.pricing, settings.engine)
        self.fsps: list[FSP] = [
            AGENT_CLASSES[spec.type](self, spec, settings.actions,
                                     dict(settings.learner) if settings.learner else None,
                                     self.design.products)
            for spec in settings.population.fsps
        ]
        self._days: dict[str | None, MarketDay] = {}
        first = self.day(self.days[0])
        for fsp in self.fsps:
            fsp.set_reward_scales(first.book)
        self.groups = first.book.groups
        self.dayahead: DayAheadStage | None = None
        if settings.dayahead.enabled:
            self.dayahead = DayAheadStage.on(settings.dayahead, settings.population, first)
            for fsp in self.fsps:
                if fsp.fsp_id in self.dayahead.providers:
                    fsp.enter_dayahead(settings.dayahead.positions, settings.dayahead.blocks,
                                       functools.partial(self.dayahead.positions.truthful_shares,
                                                         fsp.fsp_id))
        self._group_index = {key: i for i, key in enumerate(
            zip(self.groups.fsp_id, self.groups.family, strict=True))}
        self._agent_of = {fsp.fsp_id: fsp for fsp in self.fsps}
        self.round = 0
        self.rounds_cleared = 0  # rounds whose clearing succeeded (a run needs at least one)
        self.timings = dict.fromkeys(STAGES, 0.0)
        # rounds, agents, awards and regret records, streamed to `spool` if given
        self.sink = RecordSink(spool, tags=tags)
        self._last_agents: list[dict] = []  # the latest learning round (learned profile)
        # (market day, every group's action) of the latest rounds: what was played
        self._played: deque[tuple[MarketDay, np.ndarray]] = deque(maxlen=PROFILE_MEMORY)
        self._games: dict[str, DayGame] = {}  # re-clearing oracles by day (regret)
        self._learned_structure: tuple[pd.DataFrame, pd.DataFrame] | None = None
        # every offer of the first and the latest round, tabled on demand (supply stacks)
        self.offer_rounds: dict[str, tuple[int, MarketDay, pd.DataFrame]] = {}
        self.latest_result: ClearingResult | None = None  # of the latest cleared round

    def day(self, name: str | None) -> MarketDay:
        """The market day `name`, built on first use (with an AC cache of this run's own)."""
        if name not in self._days:
            s = self.settings
            self._days[name] = shared_day(s.grid, self.scenario, name, s.limits, s.market,
                                          s.population, self.design, s.ac_reuse
                                          ).for_run(s.ac_reuse)
        return self._days[name]

    def _next_day(self) -> MarketDay:
        if self.settings.resample_days and len(self.days) > 1:
            return self.day(self.days[int(self.rng.integers(len(self.days)))])
        return self.day(self.days[0])

    def _tick(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[stage] += now - start
        return now

    def step(self) -> None:
        """One market round."""
        self.round += 1
        forecast = self._next_day()
        start = time.perf_counter()
        schedule: dict[str, np.ndarray] = {}
        day = forecast
        if self.dayahead is not None:
            schedule = self.dayahead.schedule({fsp.fsp_id: fsp.choose_positions()
                                               for fsp in self.fsps
                                               if fsp.position_grid is not None}, forecast)
            try:
                day = self.dayahead.day(forecast, schedule)
            except (SolverError, PowerFlowError) as exc:
                self._failed(forecast, exc)
                return
        start = self._tick("dayahead", start)
        book, case = day.book, day.case
        markup = np.zeros(len(self.groups))
        withheld = np.zeros(len(self.groups))
        actions = np.full(len(self.groups), -1)
        for fsp in self.fsps:  # fixed order: draws and bid slots identical for a seed
            for family, action in fsp.choose().items():
                i = self._group_index[(fsp.fsp_id, family)]
                actions[i] = action
                markup[i] = self.settings.actions.markup(action)
                withheld[i] = self.settings.actions.withheld(action)
        bids = book.bids(markup, withheld, case.params.max_bid_price)
        capped = np.isinf(markup)
        if capped.any():  # the reservation-price action: record the markup it means
            markup[capped] = book.effective_markups(bids)[capped]
        start = self._tick("bidding", start)

        status = "ok"
        try:
            result = self.dso.clear(day.market_key, case, bids, book.devices)
            start = self._tick("clearing", start)
            benchmark = (day.benchmark(self.settings.pricing) if day is forecast
                         else MOVED_BENCHMARK)
            validate = (self.round - 1) % self.settings.ac_every == 0
            if validate:
                self.dso.validate(day.market_key, result)
            start = self._tick("ac_validation", start)
        except (SolverError, PowerFlowError) as exc:
            self._failed(day, exc)
            return

        awards = result.awards
        settlement = None
        if self.dayahead is None:
            revenue, cost, margin = book.outcome(awards.payment.to_numpy(),
                                                 awards.awarded.to_numpy())
        else:
            settlement = self.dayahead.settle(book, awards, schedule)
            revenue, cost, margin = book.settled(settlement.paid, settlement.cost)
        offered = book.by_group(awards.quantity.to_numpy() * book.hours)
        awarded = book.by_group(awards.awarded.to_numpy() * book.hours)
        start = self._tick("settlement", start)

        rows = []
        for i, (fsp_id, family) in enumerate(zip(self.groups.fsp_id, self.groups.family,
                                                 strict=True)):
            share = awarded[i] / offered[i] if offered[i] > 0 else 0.0
            reward, greedy, entropy = self._agent_of[fsp_id].learn(family, margin[i], share,
                                                                   actions)
            rows.append({
                "round": self.round, "fsp_id": fsp_id,
                "fsp_type": self._agent_of[fsp_id].spec.type, "family": family,
                "action": int(actions[i]), "markup": markup[i], "withheld": withheld[i],
                "offered": offered[i], "awarded": awarded[i], "payment": revenue[i],
                "true_cost": cost[i], "profit": margin[i], "reward": reward,
                "greedy": greedy, "entropy": entropy,
            })
        extra = {}
        if self.dayahead is not None and settlement is not None:
            extra = self._learn_positions(forecast, day, book, settlement, schedule)
        start = self._tick("learning", start)
        self.sink.add_rows("agents", rows)
        self._last_agents = rows
        self._played.append((forecast, actions))
        self._record_round(day, result, benchmark, status, extra)
        self.sink.end_round()
        self._tick("records", start)

    def _failed(self, day: MarketDay, exc: Exception) -> None:
        """Record a round whose day could not be solved or cleared (nothing is learned)."""
        self.sink.add_rows("rounds", [{"round": self.round, "day": day.name,
                                       "status": f"failed: {type(exc).__name__}: {exc}"}])
        self.sink.end_round()

    def _learn_positions(self, forecast: MarketDay, day: MarketDay, book: OfferBook,
                         settlement: Settlement, schedule: Mapping[str, np.ndarray]
                         ) -> dict[str, float]:
        """Every position learner learns its block's profit; the round's day-ahead figures."""
        stage = self.dayahead
        assert stage is not None
        profit = stage.period_profits(book, settlement, schedule)
        for fsp in self.fsps:
            if fsp.position_learners:
                fsp.learn_positions(stage.by_block(profit[fsp.fsp_id]),
                                    stage.bounds(fsp.fsp_id))
        return stage.round_figures(forecast, day, book, settlement, schedule)

    def _record_round(self, day: MarketDay, result: ClearingResult, benchmark: dict,
                      status: str, dayahead: Mapping[str, float]) -> None:
        summary = result.summary(day.case.params)
        truthful = benchmark["procurement_cost"]
        awards = result.awards
        energy = awards.awarded.to_numpy() * awards.hours.to_numpy()
        at_cap = awards.price_paid.to_numpy() >= AT_CAP * day.case.params.max_bid_price
        record = {"round": self.round, "day": day.name, "status": status,
                  "dso_cost": summary["procurement_cost"], "truthful_cost": truthful,
                  "cost_ratio": summary["procurement_cost"] / truthful if truthful > 0
                  else float("nan"),
                  "truthful_unmet_need_after_ac": benchmark["unmet_need_after_ac"],
                  "ac_validated": result.validation is not None,
                  "lp_rebuilt": bool(result.stats["rebuilt"]),
                  "lp_iterations": result.stats["iterations"],
                  "solve_seconds": result.stats["solve_seconds"],
                  "hhi": day.markets.hhi(awards.awarded.to_numpy()),
                  "share_at_cap": (float(energy[at_cap].sum() / energy.sum()) if energy.sum() > 0
                                   else float("nan")),
                  **_counterfactual_record(day.case)}
        record.update({k: v for k, v in summary.items() if k != "procurement_cost"})
        record.update(dayahead)
        self.sink.add_rows("rounds", [record])
        won = np.flatnonzero(awards.awarded.to_numpy() > 0)  # dozens of the offers
        self.sink.add_columns("awards", {
            **{column: awards[column].to_numpy()[won] for column in awards.columns},
            "round": np.full(len(won), self.round)})
        self.rounds_cleared += 1
        self.offer_rounds.setdefault("first", (self.round, day, awards))
        self.offer_rounds["last"] = (self.round, day, awards)
        self.latest_result = result

    def offers_of(self, which: str = "last") -> pd.DataFrame:
        """Every offer of the `which` ("first" or "last") cleared round with its outcome.

        The bid columns and the outcome (awarded, payment, ...) plus the offer's true
        `cost`, full `capacity` and the FSP's `fsp_type`; empty before the first round.
        """
        if which not in self.offer_rounds:
            return pd.DataFrame()
        number, day, awards = self.offer_rounds[which]
        kind = {fsp.fsp_id: fsp.spec.type for fsp in self.fsps}
        return awards.assign(round=number, cost=day.book.offers["cost"].to_numpy(),
                             capacity=day.book.offers["capacity"].to_numpy(),
                             fsp_type=awards.provider_id.map(kind))

    def _offers(self) -> pd.DataFrame:
        """Every offer of the first and the latest round with true cost, type and outcome."""
        rounds = {self.offer_rounds[which][0]: which for which in self.offer_rounds}
        return pd.concat([self.offers_of(which) for which in rounds.values()],
                         ignore_index=True) if rounds else pd.DataFrame()

    def _game(self, day: MarketDay) -> DayGame:
        """The re-clearing oracle of `day` (one LP per day, warm across calls)."""
        if day.name not in self._games:
            self._games[day.name] = DayGame(day, self.settings.pricing, self.settings.actions,
                                            self.settings.engine)
        return self._games[day.name]

    def _recent(self, window: int | None) -> list[tuple[MarketDay, np.ndarray]]:
        """(day, profile) of the last `window` rounds played (all kept, if None)."""
        played = list(self._played)
        return played[-window:] if window else played

    def equilibrium(self, window: int | None = None, sample: int = 0) -> pd.DataFrame:
        """Regret of the learned profile and of the played strategies; kept for `records`.

        The learned profile is each learner's greedy action after the latest round, on
        the first day (`equilibrium.regret_table`, rows with profile "greedy"); Calvano's
        profit gain is added as columns when the game is small enough to enumerate. With
        `sample` > 0, also the regret of the empirical mixed strategies played in the last
        `window` rounds, from `sample` of them evenly spaced (`played_regret_table`, rows
        "played"). Call it at the end of a run, or every k rounds for a curve.
        """
        game = self._game(self.day(self.days[0]))
        profile = ([record["greedy"] for record in self._last_agents] if self._last_agents
                   else [self.settings.actions.truthful_index] * len(self.groups))
        tables = [regret_table(game, profile).assign(**small_game_benchmarks(game, profile))]
        recent = self._recent(window)
        if sample and recent:
            picks = np.unique(np.linspace(0, len(recent) - 1, min(sample, len(recent)))
                              .round().astype(int))
            tables.append(played_regret_table([self._game(recent[i][0]) for i in picks],
                                              np.array([recent[i][1] for i in picks]),
                                              self.rng))
        table = pd.concat(tables, ignore_index=True).assign(round=self.round)
        self.sink.add_frame("regret", table)
        return table

    def learned_structure(self, window: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Pivotal suppliers at the offers learners played most in the last `window` rounds.

        The same test as the day's truthful structure (`market.structure`, pay-as-bid, so
        a supplier's absence is priced at the other offers' bids) on the first day, with
        every learner bidding its modal action (ties at random); rows get offers =
        "learned" in the structure and suppliers tables.
        """
        recent = self._recent(window)
        if not recent:
            raise RuntimeError("no round played yet: nothing learned to test")
        first = self.day(self.days[0])
        bids = self._game(first).bids(modal_actions(np.array([p for _, p in recent]),
                                                    self.rng))
        periods, suppliers = pivotal_suppliers(Market(first.scratch_case(), first.design), bids,
                                               first.book.devices, first.periods)
        self._learned_structure = (periods.assign(day=first.name, offers="learned"),
                                   suppliers.assign(day=first.name, offers="learned"))
        return self._learned_structure

    def _tables_at_end(self) -> dict[str, pd.DataFrame]:
        """The tables not streamed: known only at the end, and small."""
        structure = [(periods.assign(offers="truthful"), suppliers.assign(offers="truthful"))
                     for periods, suppliers in (day.structure for day in self._days.values())]
        if self._learned_structure is not None:
            structure.append(self._learned_structure)
        return {"offers": self._offers(),
                "structure": pd.concat([s[0] for s in structure], ignore_index=True),
                "suppliers": pd.concat([s[1] for s in structure], ignore_index=True)}

    def records(self) -> dict[str, pd.DataFrame]:
        """Tidy tables of the run so far (read back from the spool folder if streaming).

        rounds (one row per round), agents (per round, FSP and product family), awards
        (every awarded bid), offers (every offer of the first and the latest round, with
        its true `cost`, `capacity` and `fsp_type`), structure (per period with needs:
        scarcity and pivotal suppliers, for each day used), suppliers (per supplier and
        period: what its absence costs) and regret (per learner and measured round, once
        `equilibrium` has run).
        """
        tables = {**_empty_tables(), **self.sink.frames(), **self._tables_at_end()}
        return {name: tables[name] for name in TABLES}

    def save_records(self) -> dict[str, Path]:
        """Write every table of the run into its spool folder as `<table>.parquet`.

        Call once, at the end of the run: the streamed tables are completed from their
        parts, the others written whole. Returns the files by table.
        """
        files = self.sink.close()
        rest = {**_empty_tables(), **self._tables_at_end()}
        files.update(write_frames(self.sink.folder,
                                  {name: rest[name] for name in TABLES if name not in files},
                                  self.sink.tags))
        return {name: files[name] for name in TABLES}


def simulate(grid: str, population: str | Path | Population, design: str, rounds: int,
             seed: int, pricing: str = "pay-as-bid", spool: str | Path | None = None,
             **settings: object) -> pd.DataFrame:
    """Run `rounds` market rounds and return the per-round records as a DataFrame.

    Columns include round, dso_cost, truthful_cost, unmet_need_before and
    unmet_need_after_ac (MWh of the DSO's emergency action). spool: a folder to stream
    the records to during the run (long runs; see LFMModel). Extra keyword arguments go
    to ModelSettings.
    """
    if not isinstance(population, Population):
        population = load_population(population)
    model = LFMModel(ModelSettings(grid=grid, population=population, design=design,
                                   pricing=pricing, **settings), seed=seed, spool=spool)
    for _ in range(rounds):
        model.step()
    return model.records()["rounds"]


def _counterfactual_record(case: MarketCase) -> dict[str, float]:
    """The day without a market (emergency alone; the DSO's taps first), and this design's taps."""
    alone = case.counterfactual
    assert alone is not None, "market days carry their counterfactuals (`day.market_day`)"
    return {"unmet_need_no_market": alone.no_market_mwh, "cost_no_market": alone.no_market_cost,
            "unmet_need_dso_alone": alone.dso_alone_mwh, "cost_dso_alone": alone.dso_alone_cost,
            "tap_moves_dso_alone": alone.tap_moves,
            "tap_moves": case.tap_moves, "tap_cost": case.tap_cost}
