"""Distance to equilibrium of what learners learned and played: the market day as a game.

The players are the learners, one per (FSP, product family); a profile is one action
of the shared grid per player; a player's payoff is its profit when the day's market
is cleared with that profile's bids (same pricing rule, no AC validation: profits do
not depend on it). Each deviation is one warm re-solve of the same LP (only prices and
quantities change). Regret is distance to equilibrium, not market power: a pivotal
supplier already at its best bid has regret 0 however much it earns.

* `regret_table`: for one profile (the learners' greedy actions), each player's best
  gain from changing only its own action; the profile is an eps-Nash equilibrium with
  eps the largest gain.
* `played_regret_table`: for the strategies actually played, the empirical mixed
  strategies over a window (each round's recorded profile): each player's best *fixed*
  action against the others' recorded play, g_i = max_a mean_t [pi_i(a, s_-i,t) -
  pi_i(s_t)] over a sample of window rounds t, with the standard error of that mean
  (sampling error of the rounds sampled). The played profile is an eps-equilibrium in
  this sense (a coarse correlated equilibrium, Hannan 1957; Hart & Mas-Colell 2000)
  with eps the largest gain.

A player none of whose bids is accepted earns nothing, and raising its price keeps it
out of the solution (a column at zero whose cost rises stays optimal), so only its
deviations to lower price levels are cleared.

For small games (at most `SMALL_GAME` profiles) `small_game_benchmarks` enumerates the
pure Nash equilibria and the joint-profit optimum and gives Calvano et al.'s profit
gain Delta of the profile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lfm_abm.day import MarketDay
from lfm_abm.learning import ActionGrid
from lfm_abm.learning.base import random_argmax
from lfm_abm.learning.games import joint_optimum, played_regret, profit_gain, pure_nash
from lfm_abm.market.clearing import Market

#: Games up to this many profiles are enumerated for their equilibria (one clearing each).
SMALL_GAME = 1_000
REGRET_COLUMNS = ["fsp_id", "family", "profile", "action", "profit", "regret",
                  "regret_share", "regret_se"]


class DayGame:
    """Profits of the day's learners for any profile of their actions, by re-clearing."""

    def __init__(self, day: MarketDay, pricing: str, grid: ActionGrid,
                 engine: str = "highs") -> None:
        self.day = day
        self.grid = grid
        self.market = Market(day.scratch_case(), day.design, pricing, engine)
        self.markups = np.array([grid.markup(a) for a in range(len(grid))])
        self.withheld = np.array([grid.withheld(a) for a in range(len(grid))])

    @property
    def n_players(self) -> int:
        """Number of learners: (FSP, family) groups of the day's offer book."""
        return len(self.day.book.groups)

    def bids(self, profile: Sequence[int]) -> pd.DataFrame:
        """The day's bid table when every player bids its action of `profile`."""
        actions = np.asarray(profile, dtype=int)
        return self.day.book.bids(self.markups[actions], self.withheld[actions],
                                  self.day.case.params.max_bid_price)

    def outcome(self, profile: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Profit (EUR per round) and whether any bid is accepted, of every player."""
        book = self.day.book
        awards = self.market.clear(self.bids(profile), book.devices, ac_validate=False,
                                   trusted=True).awards
        awarded = awards.awarded.to_numpy()
        profit = book.outcome(awards.payment.to_numpy(), awarded)[2]
        return profit, book.by_group((awarded > 0).astype(float)) > 0

    def profits(self, profile: Sequence[int]) -> np.ndarray:
        """Profit of every player (EUR per round) when all bid `profile`."""
        return self.outcome(profile)[0]

    def deviation_profits(self, profile: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Profit at `profile`, and of every player for every action of its own (others fixed).

        Returns (profit per player, array players x actions). A player with no accepted
        bid earns nothing at a higher price level either, so those entries are 0 without
        a clearing.
        """
        profile = [int(a) for a in profile]
        base, accepted = self.outcome(profile)
        table = np.zeros((len(profile), len(self.grid)))
        level = np.array([self.grid.level(action) for action in range(len(self.grid))])
        for player, own in enumerate(profile):
            table[player, own] = base[player]
            for action in range(len(self.grid)):
                if action == own or (not accepted[player] and level[action] >= level[own]):
                    continue
                deviated = [*profile[:player], action, *profile[player + 1:]]
                table[player, action] = self.profits(deviated)[player]
        return base, table


def _table(game: DayGame, kind: str, actions: Sequence[int], profit: np.ndarray,
           gains: np.ndarray, se: np.ndarray) -> pd.DataFrame:
    best = profit + gains
    groups = game.day.book.groups
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(best > 0, gains / best, np.nan)
    return pd.DataFrame({"fsp_id": groups.fsp_id.to_numpy(), "family": groups.family.to_numpy(),
                         "profile": kind, "action": np.asarray(actions, dtype=int),
                         "profit": profit, "regret": gains, "regret_share": share,
                         "regret_se": se})[REGRET_COLUMNS]


def regret_table(game: DayGame, profile: Sequence[int]) -> pd.DataFrame:
    """Per player: its action, profit and best unilateral deviation gain (EUR).

    regret_share = gain / (profit + gain): the share of its best-response profit the
    player forgoes (0 at a best response; NaN when it can earn nothing either way).
    `profile` column "greedy"; regret_se 0 (one profile, no sampling).
    """
    profit, table = game.deviation_profits(profile)
    gains = np.maximum(table.max(axis=1) - profit, 0.0)
    return _table(game, "greedy", profile, profit, gains, np.zeros(len(profit)))


def played_regret_table(games: Sequence[DayGame], profiles: np.ndarray,
                        rng: np.random.Generator) -> pd.DataFrame:
    """Regret of the empirical mixed strategies of `profiles` (rounds x players), EUR.

    `games[t]` is the market day of round t (the same object for a repeated day). Per
    player: its most played action (ties at random), mean profit over the rounds
    (re-cleared, so by the same clearing rule as the deviations), regret = the best fixed
    action's mean gain over those rounds (>= 0), regret_se = the standard error of that
    mean over the rounds (NaN for one round). `profile` column "played".
    """
    profiles = np.asarray(profiles, dtype=int)
    outcomes = [game.deviation_profits(row) for game, row in zip(games, profiles, strict=True)]
    profit, regret, se = played_regret(np.array([base for base, _ in outcomes]),
                                       np.array([table for _, table in outcomes]))
    return _table(games[0], "played", modal_actions(profiles, rng), profit, regret, se)


def modal_actions(profiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each player's most played action over `profiles` (rounds x players), ties at random."""
    profiles = np.asarray(profiles, dtype=int)
    size = profiles.max(initial=0) + 1
    return np.array([random_argmax(np.bincount(column, minlength=size), rng)
                     for column in profiles.T], dtype=int)


def small_game_benchmarks(game: DayGame, profile: Sequence[int]) -> dict[str, float]:
    """Joint profits of the profile, the competitive Nash equilibrium and the optimum.

    With Calvano's Delta of the profile. Empty if the game is too large to enumerate or
    has no pure Nash equilibrium.
    """
    sizes = [len(game.grid)] * game.n_players
    if math.prod(sizes) > SMALL_GAME:
        return {}
    profits = functools.cache(game.profits)  # both enumerations visit every profile
    equilibria = pure_nash(sizes, profits)
    if not equilibria:
        return {}
    joint = float(profits(tuple(int(a) for a in profile)).sum())
    nash = float(profits(equilibria[0]).sum())
    best = float(profits(joint_optimum(sizes, profits)).sum())
    return {"profit_joint": joint, "profit_nash": nash, "profit_collusive": best,
            "profit_gain": profit_gain(joint, nash, best)}
