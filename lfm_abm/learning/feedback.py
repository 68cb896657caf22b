"""What a learner is told after a round: a stationary reward and the market state it saw.

Reward. A provider's profit is measured in a unit of its own, fixed for the run: the
true cost of one period of its full offer (every offer of the first market day at full
capacity, summed, divided by the number of periods it offers in):

    scale = sum over its offers of cost x quantity x hours / periods offered   (EUR)
    reward = max(profit / scale, 0)

A provider that sells its whole offer in k periods at markup m earns reward m x k: an
ordinary competitive profit (markup 0.1-0.5 in a period or two) is a reward of 0.1-1,
on the order of the learners' initial values, so learning starts in the first rounds.
The scale reads only the provider's own costs and capacities, never the reservation
price or VOLL, so the same profit is the same reward whatever the cap or VOLL: a VOLL
sweep does not change how fast agents learn. It is fixed (not the best profit so far),
so an action earns the same reward in every round of a repeated day, as UCB1's
confidence bounds and Roth-Erev's propensities assume. Losses floor at 0.

State. Q-learning conditions on the share of its offered energy the market accepted last
round, in three buckets: 0 nothing, 1 part of it, 2 all of it (at least 99 %); or, with
`observe = "profile"`, on every player's action last round. It starts in state 0.

FSP agents and the game harness (`learning.games`) both learn through `learn_round`, so
a validation game trains learners exactly as the model does.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from lfm_abm.learning.base import Learner

#: State before the first round: nothing awarded yet.
INITIAL_STATE = 0
#: Award shares below this count as nothing: LP round-off, not an award.
NOTHING = 1e-6
#: Award shares at or above this count as everything offered.
ALL = 0.99


def reward_scale(cost: ArrayLike, quantity: ArrayLike, hours: ArrayLike,
                 periods: ArrayLike) -> float:
    """The true cost of one period of a provider's full offer (EUR): the reward unit.

    Arrays are per offer: true cost (EUR/MWh or EUR/MVArh), quantity (MW or MVAr),
    period length (h) and the period the offer is for. 0 for a provider without offers.
    """
    cost, quantity, hours = (np.asarray(a, dtype=float) for a in (cost, quantity, hours))
    n_periods = len(np.unique(np.asarray(periods)))
    return float(np.sum(cost * quantity * hours) / n_periods) if n_periods else 0.0


def stationary_reward(profit: float, scale: float) -> float:
    """Profit in units of the fixed `scale`, floored at 0; 0 if the scale is 0.

    A scale of 0 means the provider offers nothing at a cost (or nothing at all), so
    every action is worth the same to it.
    """
    if not (math.isfinite(scale) and scale >= 0.0):
        raise ValueError(f"reward scale must be a finite number >= 0, got {scale!r}")
    if scale == 0.0:
        return 0.0
    return max(float(profit) / scale, 0.0)


def award_state(share: float) -> int:
    """Bucket of the awarded share of offered energy: 0 nothing, 1 part, 2 all (>= 99 %)."""
    if share < NOTHING:
        return 0
    return 2 if share >= ALL else 1


def next_state(learner: Learner, share: float, profile: Sequence[int]) -> Hashable:
    """The state `learner` observes after a round: its award bucket, or the whole profile."""
    return tuple(int(a) for a in profile) if learner.observe == "profile" else award_state(share)


def learn_round(learner: Learner, action: int, state: Hashable, profit: float, scale: float,
                share: float, profile: Sequence[int] = ()) -> tuple[float, Hashable]:
    """Update `learner` with one round's outcome; returns the reward and the next state.

    `profile` is every player's action this round (for learners that observe it).
    """
    reward = stationary_reward(profit, scale)
    following = next_state(learner, share, profile)
    learner.update(action, reward, state, following)
    return reward, following
