"""Stateless bandit learners: epsilon-greedy, UCB1 and EXP3.

They treat every round as a pull of a multi-armed bandit: no market state, just which
action has paid. EXP3 makes no stationarity assumption, so it is the one to use when the
other providers learn too.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Annotated

import numpy as np

from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import (
    Learner,
    epsilon_greedy,
    epsilon_greedy_probabilities,
    random_argmax,
)
from lfm_abm.schema import Field, Float, settings


class EpsilonGreedy(Learner):
    """Sample-average action values, exploring uniformly with probability epsilon.

    Sutton & Barto (2018), Reinforcement Learning: An Introduction, section 2.2.
    """

    KIND = "epsilon-greedy"

    @settings("learner")
    class Params:
        """The parameters of epsilon-greedy.

        epsilon: probability of a uniformly random action instead of a best one.
        decay: epsilon is multiplied by this after every update (1 = constant exploration).
        initial_value: value of untried actions (above 1 = optimistic, forces early
            exploration).
        """

        epsilon: Annotated[Float, Field(ge=0, le=1)] = 0.1
        decay: Annotated[Float, Field(gt=0, le=1)] = 1.0
        initial_value: Float = 0.0

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        self.estimates = np.full(self.n_actions, self.initial_value)
        self.counts = np.zeros(self.n_actions, dtype=np.int64)

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """Explore with probability epsilon, else a best action (random among ties)."""
        return epsilon_greedy(self.estimates, self.epsilon, rng)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Move the action's value to the running mean of its rewards; decay epsilon."""
        reward = self._reward(action, reward)
        self.counts[action] += 1
        self.estimates[action] += (reward - self.estimates[action]) / self.counts[action]
        self.epsilon *= self.decay

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Epsilon spread uniformly, the rest over the best actions."""
        return epsilon_greedy_probabilities(self.estimates, self.epsilon)

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """Mean rewards: the greedy action has the highest."""
        return self.estimates


class UCB1(Learner):
    """Optimism under uncertainty: the action with the highest upper confidence bound.

    Auer, Cesa-Bianchi & Fischer (2002), Finite-time analysis of the multiarmed bandit
    problem, Machine Learning 47. Index of action a after t plays, n_a of them of a:
    mean_a + sqrt(exploration * ln t / n_a).
    """

    KIND = "ucb1"

    @settings("learner")
    class Params:
        """exploration: c in the index; 2 is the paper's UCB1, smaller values explore less."""

        exploration: Annotated[Float, Field(gt=0)] = 2.0

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        self.sums = np.zeros(self.n_actions)
        self.counts = np.zeros(self.n_actions, dtype=np.int64)

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """An untried action (in random order), then the highest index."""
        untried = np.flatnonzero(self.counts == 0)
        if untried.size:
            return int(rng.choice(untried))
        return random_argmax(self._index(), rng)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Add the reward to the action's tally."""
        self.sums[action] += self._reward(action, reward)
        self.counts[action] += 1

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Uniform over the actions `choose` may pick: untried ones, else those of top index."""
        untried = self.counts == 0
        candidates = untried if untried.any() else self._index() == self._index().max()
        return candidates / candidates.sum()

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """Mean rewards of tried actions (untried: -inf; none tried: all equal)."""
        means = np.full(self.n_actions, -np.inf)
        tried = self.counts > 0
        means[tried] = self.sums[tried] / self.counts[tried]
        return means

    def _index(self) -> np.ndarray:
        """Upper confidence bounds; only called once every action is tried."""
        bonus = np.sqrt(self.exploration * math.log(self.counts.sum()) / self.counts)
        return self.sums / self.counts + bonus


class EXP3(Learner):
    """Exponential weights for adversarial bandits, robust to co-learning opponents.

    Auer, Cesa-Bianchi, Freund & Schapire (2002), The nonstochastic multiarmed bandit
    problem, SIAM J. Comput. 32(1). p = (1 - gamma) w / sum(w) + gamma / K; the chosen
    action's weight grows by exp(gamma * r / (p_a K)), an unbiased importance-weighted
    estimate of every action's reward.
    """

    KIND = "exp3"

    @settings("learner")
    class Params:
        """gamma: both the share of uniform exploration and the learning rate."""

        gamma: Annotated[Float, Field(gt=0, le=1)] = 0.1

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        # Log-weights, shifted so the largest is 0: weights never overflow.
        self.log_weights = np.zeros(self.n_actions)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Importance-weighted exponential update of the chosen action."""
        reward = self._reward(action, reward)
        chance = self.probabilities()[action]
        self.log_weights[action] += self.gamma * reward / (chance * self.n_actions)
        self.log_weights -= self.log_weights.max()

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Normalised weights mixed with a uniform share gamma."""
        weights = np.exp(self.log_weights)
        return (1.0 - self.gamma) * weights / weights.sum() + self.gamma / self.n_actions

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """Log-weights: the greedy action has the largest."""
        return self.log_weights
