"""Distance to equilibrium of a learned action profile: the market day as a game.

The players are the learners, one per (FSP, product family); a profile is one action
of the shared grid per player; a player's payoff is its profit when the day's market
is cleared with that profile's bids (same pricing rule, no AC validation: profits do
not depend on it). `regret_table` measures, for a profile (the run's learned one), each
player's best gain from changing only its own action: the profile is an eps-Nash
equilibrium with eps the largest gain. Each deviation is one warm re-solve of the same
LP (only prices and quantities change).

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
from lfm_abm.learning.games import deviation_gains, joint_optimum, profit_gain, pure_nash
from lfm_abm.market.clearing import Market

#: Games up to this many profiles are enumerated for their equilibria (one clearing each).
SMALL_GAME = 1_000
REGRET_COLUMNS = ["fsp_id", "family", "action", "profit", "regret", "regret_share"]


class DayGame:
    """Profits of the day's learners for any profile of their actions, by re-clearing."""

    def __init__(self, day: MarketDay, pricing: str, grid: ActionGrid,
                 engine: str = "highs") -> None:
        self.day = day
        self.grid = grid
        self.market = Market(day.case, day.design, pricing, engine)
        self.markups = np.array([grid.markup(a) for a in range(len(grid))])
        self.withheld = np.array([grid.withheld(a) for a in range(len(grid))])

    @property
    def n_players(self) -> int:
        """Number of learners: (FSP, family) groups of the day's offer book."""
        return len(self.day.book.groups)

    def profits(self, profile: Sequence[int]) -> np.ndarray:
        """Profit of every player (EUR per round) when all bid `profile`."""
        actions = np.asarray(profile, dtype=int)
        book = self.day.book
        bids = book.bids(self.markups[actions], self.withheld[actions])
        awards = self.market.clear(bids, book.devices, ac_validate=False, trusted=True).awards
        return book.outcome(awards.payment.to_numpy(), awards.awarded.to_numpy())[2]


def regret_table(game: DayGame, profile: Sequence[int]) -> pd.DataFrame:
    """Per player: its action, profit and best unilateral deviation gain (EUR).

    regret_share = gain / (profit + gain): the share of its best-response profit the
    player forgoes (0 at a best response; NaN when it can earn nothing either way).
    """
    profile = tuple(int(a) for a in profile)
    profit = game.profits(profile)
    gains = deviation_gains(profile, [len(game.grid)] * game.n_players, game.profits,
                            current=profit)
    best = profit + gains
    groups = game.day.book.groups
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(best > 0, gains / best, np.nan)
    return pd.DataFrame({"fsp_id": groups.fsp_id.to_numpy(), "family": groups.family.to_numpy(),
                         "action": profile, "profit": profit, "regret": gains,
                         "regret_share": share})[REGRET_COLUMNS]


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
