"""What a learner is told after a round: a stationary reward and the market state it saw.

Reward. A provider's profit is divided by a scale fixed for the whole run, the most it
could earn in one round (every offer accepted in full at the reservation price c_max):

    scale = sum over its offers of (c_max - cost) x quantity x hours      (EUR)
    reward = clip(profit / scale, 0, 1)

A fixed scale keeps the reward of an action the same from round to round, as UCB1's
confidence bounds and Roth-Erev's propensities assume; dividing by the best profit so
far instead rescaled every later reward whenever a new best appeared. Losses clip to 0;
locational prices are capped at c_max, so only a make-whole uplift could reach 1.

State. Q-learning conditions on the share of its offered energy the market accepted last
round, in three buckets: 0 nothing, 1 part of it, 2 all of it (at least 99 %). It is the
one market observation a provider has besides its profit; it starts in state 0.

FSP agents and the game harness (`learning.games`) both learn through `learn_round`, so
a validation game trains learners exactly as the model does.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

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
                 reservation: float) -> float:
    """The most a set of offers can earn in one round (EUR): all accepted at `reservation`.

    Arrays are per offer: true cost (EUR/MWh or EUR/MVArh), quantity (MW or MVAr) and
    period length (h). Offers dearer than the reservation price earn nothing.
    """
    cost, quantity, hours = (np.asarray(a, dtype=float) for a in (cost, quantity, hours))
    return float(np.sum(np.maximum(reservation - cost, 0.0) * quantity * hours))


def stationary_reward(profit: float, scale: float) -> float:
    """Profit as a share of the fixed `scale`, clipped to [0, 1]; 0 if the scale is 0.

    A scale of 0 means the provider has nothing it could sell at a profit, so it never
    earns and every action is worth the same.
    """
    if not (math.isfinite(scale) and scale >= 0.0):
        raise ValueError(f"reward scale must be a finite number >= 0, got {scale!r}")
    if scale == 0.0:
        return 0.0
    return min(max(float(profit) / scale, 0.0), 1.0)


def award_state(share: float) -> int:
    """Bucket of the awarded share of offered energy: 0 nothing, 1 part, 2 all (>= 99 %)."""
    if share < NOTHING:
        return 0
    return 2 if share >= ALL else 1


def learn_round(learner: Learner, action: int, state: Hashable, profit: float, scale: float,
                share: float) -> tuple[float, int]:
    """Update `learner` with one round's outcome; returns the reward and the next state."""
    reward = stationary_reward(profit, scale)
    next_state = award_state(share)
    learner.update(action, reward, state, next_state)
    return reward, next_state
