"""An external check of the registry's Q-learner: Calvano et al.'s algorithmic collusion.

Calvano, Calzolari, Denicolò & Pastorello (2020), Artificial intelligence, algorithmic
pricing, and collusion, American Economic Review 110(10), 3267-3297. Their baseline, which
this module replays with two `QLearning` learners built by `make_learner`:

* Game: a logit Bertrand duopoly. Firm i at price p_i sells
  q_i = exp((a - p_i)/mu) / (sum_j exp((a - p_j)/mu) + exp(a0/mu)) and earns
  pi_i = (p_i - c) q_i, with a = 2, a0 = 0, mu = 0.25, c = 1.
* Benchmarks: the one-shot Bertrand-Nash price p_N solves the symmetric first-order
  condition p - c = mu / (1 - q(p, p)) (1.4729); the monopoly price p_M maximises the
  joint profit at equal prices (1.9249). pi_N and pi_M are the per-firm profits there
  (0.2229, 0.3375).
* Actions: m = 15 prices equally spaced on [p_N - xi (p_M - p_N), p_M + xi (p_M - p_N)],
  xi = 0.1. Action k of the `ActionGrid` is the k-th price.
* States: one-period memory, both firms' actions last period (225 states); the first
  state is drawn at random.
* Learning: Q-learning with discount delta = 0.95, learning rate alpha = 0.15, and
  exploration epsilon_t = exp(-beta t), beta = 4e-6 (the learner's epsilon starts at 1 and
  is multiplied by exp(-beta) after every update). Rewards are the raw profits.
  Q_0(s, a) = sum_b pi(a, b) / ((1 - delta) m), the discounted profit against a rival
  that randomises uniformly, in every state.
* Convergence: a session stops once neither firm's greedy strategy (argmax of Q in every
  state) has changed for `stable` = 100,000 consecutive periods, or at `max_periods` (the
  paper's cap is 10^9; every baseline session of the paper converges well before).
* Outcome: from the last state both firms play their greedy strategies, without
  exploration or learning, until the state path cycles. The session's profit is the
  per-firm profit averaged over the two firms and the periods of that limit cycle, and its
  profit gain is Delta = (pi - pi_N) / (pi_M - pi_N) (`games.profit_gain`): 0 at the
  competitive outcome, 1 at full collusion. The paper reports an average Delta of about
  0.85 over 1000 sessions.

What it checks: that the project's learner, fed raw profits and the profile state, learns
what a published Q-learner learns in a game whose answer is known. A learner that ignored
its reward would drift with its initial values and show no such gain (tests/test_calvano).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from scipy import optimize

from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner
from lfm_abm.learning.games import profit_gain
from lfm_abm.learning.registry import make_learner
from lfm_abm.schema import MAX_COUNT, Field, Float, Int, settings

#: Demand and cost of the baseline (Calvano et al. 2020, section II).
A, A0, MU, COST = 2.0, 0.0, 0.25, 1.0
#: Number of prices and how far the grid reaches beyond [p_N, p_M].
M, XI = 15, 0.1
#: The average profit gain the paper reports for the baseline (1000 sessions).
PAPER_DELTA = 0.85

Count = Annotated[Int, Field(ge=1, le=MAX_COUNT)]


@settings("calvano")
class Study:
    """One profit-gain study: the baseline's learning parameters, and how much to run.

    sessions: independent sessions, seeds first_seed, first_seed + 1, ...
    workers: processes the sessions run on (1 = in this process).
    max_periods: periods after which a session stops unconverged (the paper: 10^9).
    stable: periods without a change of either greedy strategy that count as converged.
    alpha, delta, beta: learning rate, discount, exploration decay (epsilon = e^(-beta t)).
    """

    sessions: Count = 100
    workers: Count = 1
    max_periods: Annotated[Int, Field(ge=1, le=10**10)] = 10_000_000
    stable: Count = 100_000
    alpha: Annotated[Float, Field(gt=0, le=1)] = 0.15
    delta: Annotated[Float, Field(ge=0, lt=1)] = 0.95
    beta: Annotated[Float, Field(gt=0, lt=1)] = 4e-6
    first_seed: Annotated[Int, Field(ge=0)] = 0


@dataclass(frozen=True)
class Benchmarks:
    """Competitive (Bertrand-Nash) and collusive (monopoly) prices and per-firm profits."""

    p_nash: float
    p_monopoly: float
    pi_nash: float
    pi_monopoly: float


def demand(own: np.ndarray | float, rival: np.ndarray | float) -> np.ndarray:
    """Logit demand of a firm at price `own` when its rival charges `rival`."""
    own_weight = np.exp((A - np.asarray(own, dtype=float)) / MU)
    rival_weight = np.exp((A - np.asarray(rival, dtype=float)) / MU)
    return own_weight / (own_weight + rival_weight + math.exp(A0 / MU))


def profit(own: np.ndarray | float, rival: np.ndarray | float) -> np.ndarray:
    """A firm's profit (p - c) q at prices `own` and `rival`."""
    return (np.asarray(own, dtype=float) - COST) * demand(own, rival)


@functools.cache
def benchmarks() -> Benchmarks:
    """p_N from the symmetric first-order condition, p_M from the joint profit at p1 = p2.

    The first-order condition of firm i, q_i - (p_i - c) q_i (1 - q_i) / mu = 0, reads
    p - c = mu / (1 - q(p, p)) at a symmetric equilibrium; its left side rises and its
    right side falls in p, so the root in (c, c + 10 mu) is the only one.
    """
    p_nash = optimize.brentq(lambda p: p - COST - MU / (1.0 - float(demand(p, p))),
                             COST, COST + 10 * MU, xtol=1e-14)
    joint = optimize.minimize_scalar(lambda p: -float(profit(p, p)), bounds=(COST, A + 2.0),
                                     method="bounded", options={"xatol": 1e-12})
    p_monopoly = float(joint.x)
    return Benchmarks(float(p_nash), p_monopoly, float(profit(p_nash, p_nash)),
                      float(profit(p_monopoly, p_monopoly)))


def price_grid(m: int = M, xi: float = XI) -> np.ndarray:
    """The m prices equally spaced on [p_N - xi (p_M - p_N), p_M + xi (p_M - p_N)]."""
    b = benchmarks()
    spread = b.p_monopoly - b.p_nash
    return np.linspace(b.p_nash - xi * spread, b.p_monopoly + xi * spread, m)


def profit_table(prices: np.ndarray | None = None) -> np.ndarray:
    """profits[a, b]: profit of a firm playing action a against a rival playing b."""
    prices = price_grid() if prices is None else np.asarray(prices, dtype=float)
    return profit(prices[:, None], prices[None, :])


def initial_q(delta: float = 0.95, profits: np.ndarray | None = None) -> np.ndarray:
    """Q_0(a) = sum_b pi(a, b) / ((1 - delta) m): the value of a against a uniform rival."""
    profits = profit_table() if profits is None else profits
    return profits.sum(axis=1) / ((1.0 - delta) * profits.shape[1])


def learner_spec(alpha: float, delta: float, beta: float, q0: np.ndarray) -> dict:
    """The registry table of one Calvano Q-learner."""
    return {"kind": "q-learning", "alpha": alpha, "discount": delta, "epsilon": 1.0,
            "decay": math.exp(-beta), "initial_value": tuple(float(v) for v in q0),
            "observe": "profile"}


def run_session(seed: int, *, alpha: float = 0.15, delta: float = 0.95, beta: float = 4e-6,
                stable: int = 100_000, max_periods: int = 10_000_000,
                wrap: Callable[[Learner], Learner] | None = None) -> dict:
    """Train two registry Q-learners until their strategies settle; the limit-cycle outcome.

    Returns seed, periods played, converged (False: stopped at `max_periods`), the limit
    cycle's length and prices per firm, the per-firm profit over the cycle, its profit
    gain `delta_gain`, and the seconds the session took. `wrap` replaces each learner by
    what it returns, which must also offer `values(state)` as `QLearning` does (tests use
    it for controls that ignore their reward).
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    prices = price_grid()
    table = profit_table(prices)
    grid = ActionGrid(markups=tuple(float(k) for k in range(M)), cap_action=False)
    spec = learner_spec(alpha, delta, beta, initial_q(delta, table))
    first, second = (make_learner(spec, grid) for _ in range(2))
    if wrap is not None:
        first, second = wrap(first), wrap(second)
    profits = table.tolist()  # list lookups are faster than numpy scalars in the loop
    start_action = int(np.argmax(initial_q(delta, table)))
    greedy = [[start_action] * M for _ in range(M)], [[start_action] * M for _ in range(M)]
    state = (int(rng.integers(M)), int(rng.integers(M)))
    periods, state, converged = _learn(first, second, profits, greedy, state, rng, stable,
                                       max_periods)
    cycle = _limit_cycle(greedy, state)
    per_firm = float(np.mean([(profits[a][b] + profits[b][a]) / 2 for a, b in cycle]))
    bench = benchmarks()
    return {"seed": seed, "periods": periods, "converged": converged,
            "cycle_length": len(cycle),
            "prices_1": tuple(round(float(prices[a]), 4) for a, _ in cycle),
            "prices_2": tuple(round(float(prices[b]), 4) for _, b in cycle),
            "profit": per_firm,
            "delta_gain": profit_gain(per_firm, bench.pi_nash, bench.pi_monopoly),
            "seconds": time.perf_counter() - start}


def _learn(first: Learner, second: Learner, profits: list[list[float]],
           greedy: tuple[list[list[int]], list[list[int]]], state: tuple[int, int],
           rng: np.random.Generator, stable: int,
           max_periods: int) -> tuple[int, tuple[int, int], bool]:
    """The learning loop: periods played, last state, converged; keeps `greedy` current.

    Only Q[s] changes in a period, so a strategy changes only if the argmax of the
    updated row does. Kept lean: it runs about a million times per session.
    """
    choose_1, choose_2 = first.choose, second.choose
    update_1, update_2 = first.update, second.update
    values_1, values_2 = first.values, second.values
    greedy_1, greedy_2 = greedy
    unchanged = 0
    for period in range(1, max_periods + 1):
        own, rival = choose_1(rng, state), choose_2(rng, state)
        following = (own, rival)
        update_1(own, profits[own][rival], state, following)
        update_2(rival, profits[rival][own], state, following)
        best_1, best_2 = int(values_1(state).argmax()), int(values_2(state).argmax())
        row_1, row_2 = greedy_1[state[0]], greedy_2[state[0]]
        if best_1 != row_1[state[1]] or best_2 != row_2[state[1]]:
            row_1[state[1]], row_2[state[1]] = best_1, best_2
            unchanged = 0
        else:
            unchanged += 1
        state = following
        if unchanged >= stable:
            return period, state, True
    return max_periods, state, False


def _limit_cycle(greedy: tuple[list[list[int]], list[list[int]]],
                 state: tuple[int, int]) -> list[tuple[int, int]]:
    """The profiles of the cycle that greedy play from `state` enters (states repeat)."""
    seen: dict[tuple[int, int], int] = {}
    path: list[tuple[int, int]] = []
    while state not in seen:
        seen[state] = len(path)
        path.append(state)
        state = (greedy[0][state[0]][state[1]], greedy[1][state[0]][state[1]])
    return path[seen[state]:]


@dataclass(frozen=True)
class Summary:
    """A study's headline: mean profit gain with its 95 % CI beside the paper's 0.85."""

    sessions: int
    mean_delta: float
    ci95: float
    converged_share: float
    mean_periods: float
    seconds: float
    seconds_per_session: float
    paper_delta: float = PAPER_DELTA

    def table(self) -> str:
        """A short text table for the command line."""
        rows = [("profit gain Delta (mean ± 95 % CI)",
                 f"{self.mean_delta:.3f} ± {self.ci95:.3f}", f"~{self.paper_delta:.2f}"),
                ("sessions", f"{self.sessions}", "1000"),
                ("converged", f"{self.converged_share:.0%}", "100%"),
                ("mean periods to convergence (converged sessions)",
                 f"{self.mean_periods:,.0f}", ""),
                ("time (s), per session (s)",
                 f"{self.seconds:,.0f}, {self.seconds_per_session:,.1f}", "")]
        width = max(len(r[0]) for r in rows)
        lines = [f"{'':{width}}  {'measured':>16}  {'paper':>6}"]
        lines += [f"{name:{width}}  {value:>16}  {paper:>6}" for name, value, paper in rows]
        return "\n".join(lines)


def profit_gain_study(sessions: int, workers: int = 1, *, progress: bool = False,
                      **params: object) -> tuple[pd.DataFrame, Summary]:
    """Run `sessions` independent sessions; one row per session, and their summary.

    `params` are the other fields of `Study` (max_periods, stable, alpha, delta, beta,
    first_seed); bad values raise an `InputError` naming the field. With workers > 1 the
    sessions run in spawned processes (`lfm_abm.workers.process_pool`), which die with
    this one. `progress` shows a tqdm bar of sessions done with its ETA.
    """
    from tqdm import tqdm

    from lfm_abm.results.kpis import mean_and_ci

    study = Study(sessions=sessions, workers=workers, **params)
    keywords = {k: v for k, v in asdict(study).items()
                if k not in ("sessions", "workers", "first_seed")}
    seeds = range(study.first_seed, study.first_seed + study.sessions)
    start = time.perf_counter()
    bar = tqdm(total=study.sessions, unit="session", disable=not progress,
               dynamic_ncols=True, desc="Calvano baseline")
    try:
        rows = list(_sessions(seeds, study.workers, keywords, bar.update))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(rows).sort_values("seed", ignore_index=True)
    mean, ci = mean_and_ci(frame["delta_gain"].to_numpy(dtype=float))
    summary = Summary(sessions=len(frame), mean_delta=mean, ci95=ci,
                      converged_share=float(frame["converged"].mean()),
                      mean_periods=float(frame["periods"][frame["converged"]].mean()),
                      seconds=seconds,
                      seconds_per_session=float(frame["seconds"].mean()))
    return frame, summary


def _sessions(seeds: range, workers: int, keywords: dict,
              done: Callable[[int], object]):
    """Yield each session's row as it ends, in this process or on a process pool."""
    if workers <= 1 or len(seeds) <= 1:
        for seed in seeds:
            yield run_session(seed, **keywords)
            done(1)
        return
    from concurrent.futures import as_completed

    from lfm_abm.workers import process_pool, sigint_blocked, stop_pool

    pool = process_pool(min(workers, len(seeds)))
    try:
        with sigint_blocked():  # workers start now: a Ctrl-C waits until they ignore it
            futures = [pool.submit(run_session, seed, **keywords) for seed in seeds]
        for future in as_completed(futures):
            yield future.result()
            done(1)
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()
