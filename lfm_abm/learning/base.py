"""The interface every bidding learner implements, and how learners declare parameters.

Each learner class declares its parameters once, as a nested `Params` settings dataclass
(`lfm_abm.schema`) with defaults and allowed ranges: validation and error messages read
that one declaration, as they do for every other setting.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import asdict
from typing import ClassVar

import numpy as np

from lfm_abm.learning.actions import ActionGrid
from lfm_abm.schema import settings


@settings("learner")
class NoParams:
    """The parameters of a learner that takes none."""


class Learner(ABC):
    """A bidding strategy that learns which action of an `ActionGrid` pays.

    All randomness comes from the `rng` passed to `choose`, the model's seeded generator,
    so that one seed gives one run. Instances hold only plain data so they pickle across
    process boundaries. `state` is ignored by stateless learners. The fields of `Params`
    become plain attributes of the instance: the update rules read them every round.
    """

    KIND: ClassVar[str]
    Params: ClassVar[type] = NoParams

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        self.n_actions = len(grid)
        # Params validates (an InputError names the bad parameter) and fills in defaults.
        for name, value in asdict(self.Params(**params)).items():
            setattr(self, name, value)

    #: What the learner's state is (`learning.feedback.next_state`): "award", the
    #: bucketed award share of its own last round, or "profile", every player's action
    #: in the last round (one-period memory). Learners without states ignore it.
    observe: str = "award"

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """Pick an action index by sampling the current choice distribution."""
        return sample(self.probabilities(state), rng)

    @abstractmethod
    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Learn from the reward (>= 0, in units of the reward scale) `action` earned."""

    @abstractmethod
    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """The distribution `choose` samples from (the action-entropy KPI reads it)."""

    def greedy(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """The action currently believed best; ties broken uniformly at random.

        A tie resolved by index would favour action 0, the truthful bid, and make a
        learner that has learnt nothing look competitive.
        """
        return random_argmax(self.preferences(state), rng)

    @abstractmethod
    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """What `greedy` maximises (propensities, value estimates, weights)."""

    def _reward(self, action: int, reward: float) -> float:
        """Check the action and floor the reward at 0 (a loss teaches as nothing earned)."""
        if not 0 <= action < self.n_actions:
            raise IndexError(f"action {action} outside 0..{self.n_actions - 1}")
        if not math.isfinite(reward):
            raise ValueError(f"reward is {reward}")
        return max(float(reward), 0.0)


def sample(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """Draw an index from a distribution with one uniform draw of `rng`."""
    cumulative = np.cumsum(probabilities)
    index = np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
    # Rounding can put the draw on the last edge; it belongs to the last action.
    return int(min(index, len(cumulative) - 1))


def random_argmax(values: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the largest value, ties broken uniformly at random so no action is favoured."""
    best = np.flatnonzero(values == values.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def epsilon_greedy(values: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability epsilon a uniform action, otherwise a best one."""
    if rng.random() < epsilon:
        return int(rng.integers(values.size))
    return random_argmax(values, rng)


def epsilon_greedy_probabilities(values: np.ndarray, epsilon: float) -> np.ndarray:
    """The distribution `epsilon_greedy` samples from."""
    best = values == values.max()
    return np.full(values.size, epsilon / values.size) + best * ((1.0 - epsilon) / best.sum())
