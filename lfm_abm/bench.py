"""Benchmarks: the project's engine against a naive baseline, and how cost scales.

`compare` runs the same rounds (same population, seed, design CMVC_PQ) twice in one
process: with the engine (HiGHS LP built once and re-solved warm, AC validation batched
over periods, cached, every `ac_every` rounds) and with a naive baseline (the LP
rebuilt in cvxpy every round, every period's AC power flow run from scratch every
round). Learning never uses AC results, so both runs make the same decisions; the
benchmark checks that their DSO costs agree.

`market_power_cost` measures the market-power instruments that re-clear the market
many times (pivotal suppliers: once without each supplier; regret: once per learner and
alternative action), with warm HiGHS re-solves against the LP rebuilt in cvxpy.

`moved_day_cost` measures a day-ahead stage's moved days (`dayahead_stage`): the same
random schedules solved with the run's batched AC evaluator and with one power flow per
period, and checks that both give the same needs.

`energy_rows_cost` measures what the energy accounts (rows coupling the periods of
batteries, EV fleets and shiftable loads) add to the engine's warm re-solves: the same
sequence of bid tables cleared with and without them.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lfm_abm.agents.defaults import population_for
from lfm_abm.agents.population import Population
from lfm_abm.day import market_day, shared_case
from lfm_abm.dayahead_stage import DayAheadStage
from lfm_abm.equilibrium import DayGame, regret_table
from lfm_abm.learning import ActionGrid
from lfm_abm.market.clearing import Market
from lfm_abm.market.dayahead import DayAheadParams
from lfm_abm.market.designs import parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.market.structure import pivotal_suppliers
from lfm_abm.model import STAGES, LFMModel, ModelSettings
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits


@dataclass(frozen=True)
class Measured:
    """Per-stage seconds per round and totals of one timed run."""

    stages: dict[str, float]
    rounds_per_second: float
    power_flows: int
    validated: int
    peak_mb: float
    costs: pd.Series
    setup_seconds: float


def timed_run(settings: ModelSettings, rounds: int, seed: int = 0) -> Measured:
    """Run 1 untimed round (setup, cold LP), then `rounds` timed rounds."""
    start = time.perf_counter()
    model = LFMModel(settings, seed)
    model.step()
    setup = time.perf_counter() - start
    evaluator = model.day(model.days[0]).case.evaluator
    flows_before = evaluator.power_flows
    model.timings = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    for _ in range(rounds):
        model.step()
    elapsed = time.perf_counter() - start
    records = model.records()["rounds"].iloc[1:]
    return Measured(
        stages={k: v / rounds for k, v in model.timings.items()},
        rounds_per_second=rounds / elapsed,
        power_flows=evaluator.power_flows - flows_before,
        validated=int(records.ac_validated.sum()),
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        costs=records.dso_cost.reset_index(drop=True),
        setup_seconds=setup,
    )


def engine_and_naive(grid: str, design: str, rounds: int, ac_every: int,
                     population: Population | None = None, naive_rounds: int | None = None,
                     seed: int = 0, **settings: object) -> tuple[Measured, Measured]:
    """The same rounds timed with the engine and with the naive baseline.

    naive_rounds (default: rounds) times only the first rounds of the baseline, where
    it is too slow to run them all; its rounds/s is then that of those rounds.
    """
    population = population or population_for(grid)
    fast = ModelSettings(grid=grid, population=population, design=design, ac_every=ac_every,
                         **settings)
    return (timed_run(fast, rounds, seed),
            timed_run(naive_settings(fast), naive_rounds or rounds, seed))


def naive_settings(settings: ModelSettings) -> ModelSettings:
    """The same run on the naive baseline.

    The LP is rebuilt in cvxpy for every solve and every period's AC power flow is run
    from scratch, every round.
    """
    return replace(settings, ac_every=1, engine="cvxpy", ac_reuse=False)


def compare(grid: str, rounds: int, ac_every: int, seed: int = 0
            ) -> tuple[str, Measured, Measured]:
    """Engine vs naive on the same rounds of CMVC_PQ: a printable table and both runs."""
    population = population_for(grid)
    engine, naive = engine_and_naive(grid, "CMVC_PQ", rounds, ac_every, population,
                                     seed=seed)
    total_engine = sum(engine.stages.values())
    total_naive = sum(naive.stages.values())
    speedup = total_naive / total_engine
    scenario = default_scenario(load_grid(grid))
    agree = float((engine.costs - naive.costs).abs().max())
    rows = [(f"{stage} (ms/round)", engine.stages[stage] * 1e3, naive.stages[stage] * 1e3)
            for stage in STAGES]
    rows += [("total (ms/round)", total_engine * 1e3, total_naive * 1e3),
             ("rounds/s", engine.rounds_per_second, naive.rounds_per_second),
             ("AC period power flows run", engine.power_flows, naive.power_flows),
             ("rounds AC-validated", engine.validated, naive.validated),
             ("setup incl. first round (s)", engine.setup_seconds, naive.setup_seconds),
             ("peak memory so far (MB)", engine.peak_mb, naive.peak_mb)]
    lines = [
        f"benchmark: {grid}, {len(population)} FSPs, design CMVC_PQ, seed {seed}, "
        f"{rounds} timed rounds, {scenario.n_periods} periods per round",
        f"engine: HiGHS LP built once, warm re-solves; AC validation batched over periods, "
        f"cached, every {ac_every} round(s)",
        "naive:  cvxpy LP rebuilt every round; every period's AC power flow from scratch, "
        "every round",
        f"{'':32s}{'engine':>12s}{'naive':>12s}",
        *[f"{name:32s}{a:12.1f}{b:12.1f}" for name, a, b in rows],
        f"same rounds: largest DSO cost difference {agree:.2e} EUR",
        f"speedup vs naive: {speedup:.1f}x",
    ]
    return "\n".join(lines), engine, naive


def energy_rows_cost(grid: str, designs: tuple[str, ...], rounds: int, seed: int = 0
                     ) -> pd.DataFrame:
    """Warm re-solve time per round with and without the energy rows, same bids.

    Each round draws a markup per (FSP, family) from the action grid's range and clears
    the bid table warm (no AC validation) in both markets; times are HiGHS solve
    seconds (cutting-plane re-solves included), median over the rounds.
    """
    population = population_for(grid)
    scenario = default_scenario(load_grid(grid))
    rows = []
    for design in designs:
        timings = {}
        for limits in (True, False):
            params = replace(MarketParams(), energy_limits=limits)
            case = shared_case(grid, scenario, None, NeedLimits(), params)
            day = market_day(case, population, parse_design(design))
            market = Market(case, design)
            market.clear(day.book.truthful_bids(), day.book.devices, ac_validate=False,
                         trusted=True)  # cold solve, not timed
            rng = np.random.default_rng(seed)
            groups = len(day.book.groups)
            seconds = []
            for _ in range(rounds):
                bids = day.book.bids(rng.uniform(0.0, 2.0, groups), np.zeros(groups))
                result = market.clear(bids, day.book.devices, ac_validate=False, trusted=True)
                seconds.append(result.stats["solve_seconds"])
            energy_rows = int((result.stages[0][1].lp.rows.service == "ENERGY").sum())
            timings[limits] = (float(np.median(seconds)) * 1e3, energy_rows,
                               result.stats["lp_rows"])
        (with_ms, n_energy, n_rows), (without_ms, _, _) = timings[True], timings[False]
        rows.append({"design": design, "lp_rows": n_rows, "energy_rows": n_energy,
                     "solve_ms_with": with_ms, "solve_ms_without": without_ms,
                     "ratio": with_ms / without_ms})
    return pd.DataFrame(rows)


def moved_day_cost(grid: str, days: int, seed: int = 0) -> pd.DataFrame:
    """Seconds per moved day, batched against one power flow per period, same schedules.

    Each of `days` schedules draws a share per provider and block from the default
    grid of shares; both stages start from their own copy of the forecast day. The
    largest difference of the moved days' published needs must be round-off.
    """
    population = population_for(grid)
    params = DayAheadParams(enabled=True)
    model = LFMModel(ModelSettings(grid=grid, population=population, design="CMVC_PQ",
                                   dayahead=params), seed)
    forecast = model.day(model.days[0])
    rng = np.random.default_rng(seed)
    providers = DayAheadStage.on(params, population, forecast).providers
    profiles = [{fsp: rng.choice(params.positions, params.blocks) for fsp in providers}
                for _ in range(days)]
    rows, needs = [], {}
    for batched in (True, False):
        stage = DayAheadStage.on(params, population, forecast.for_run(), batched)
        day = forecast.for_run()
        start = time.perf_counter()
        moved = [stage.day(day, stage.schedule(shares, day)) for shares in profiles]
        seconds = (time.perf_counter() - start) / days
        needs[batched] = pd.concat([m.case.baseline_needs.need for m in moved])
        rows.append({"moved days": "batched evaluator" if batched else "power flow per period",
                     "seconds per day": seconds})
    table = pd.DataFrame(rows)
    table["ratio to per period"] = table["seconds per day"] / table["seconds per day"].iloc[1]
    table["largest need difference"] = float((needs[True] - needs[False]).abs().max())
    return table


def scale(rounds: int, fsp_counts: tuple[int, ...], grids: tuple[str, ...],
          ac_every: int = 10) -> pd.DataFrame:
    """Time per round for populations of different size on grids of different size."""
    rows = []
    for grid in grids:
        for count in fsp_counts:
            population = population_for(grid, fsps=count)
            settings = ModelSettings(grid=grid, population=population, design="CMVC_PQ",
                                     ac_every=ac_every)
            measured = timed_run(settings, rounds)
            net = load_grid(grid)
            rows.append({"grid": grid, "buses": len(net.bus), "fsps": len(population),
                         "ms_per_round": 1e3 / measured.rounds_per_second,
                         "clearing_ms": measured.stages["clearing"] * 1e3,
                         "ac_ms": measured.stages["ac_validation"] * 1e3,
                         "rounds_per_s": measured.rounds_per_second})
    return pd.DataFrame(rows)


def market_power_cost(grid: str, designs: tuple[str, ...], samples: int = 10) -> pd.DataFrame:
    """Seconds of the pivotal-supplier test and of the regret of one profile per design.

    Both run in full with the engine (warm re-solves of one LP). The baseline re-clears
    with the LP rebuilt in cvxpy: the whole pivotal test, and `samples` regret profiles
    (their mean time per clearing, times the number of clearings, estimates the rest).
    """
    population = population_for(grid)
    scenario = default_scenario(load_grid(grid))
    case = shared_case(grid, scenario, None, NeedLimits(), MarketParams())
    rows = []
    for design in designs:
        day = market_day(case, population, parse_design(design))
        bids, devices = day.book.truthful_bids(), day.book.devices
        timings = {}
        for engine in ("highs", "cvxpy"):
            start = time.perf_counter()
            pivotal_suppliers(Market(case, design, engine=engine), bids, devices, day.periods)
            timings[engine] = time.perf_counter() - start
        grid_of_actions = ActionGrid()
        truthful = [grid_of_actions.truthful_index] * len(day.book.groups)
        start = time.perf_counter()
        regret_table(DayGame(day, "pay-as-bid", grid_of_actions), truthful)
        regret_seconds = time.perf_counter() - start
        clears = 1 + len(truthful) * (len(grid_of_actions) - 1)
        naive = DayGame(day, "pay-as-bid", grid_of_actions, engine="cvxpy")
        start = time.perf_counter()
        for action in range(samples):
            naive.profits([action % len(grid_of_actions), *truthful[1:]])
        per_clear = (time.perf_counter() - start) / samples
        rows.append({"design": design, "suppliers": bids.provider_id.nunique(),
                     "pivotal_s": timings["highs"], "pivotal_s_naive": timings["cvxpy"],
                     "pivotal_speedup": timings["cvxpy"] / timings["highs"],
                     "regret_clears": clears, "regret_s": regret_seconds,
                     "regret_s_naive": per_clear * clears,
                     "regret_speedup": per_clear * clears / regret_seconds})
    return pd.DataFrame(rows)
