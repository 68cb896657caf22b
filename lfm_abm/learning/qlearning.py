"""Tabular Q-learning, for providers whose best bid depends on an observed market state."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated

import numpy as np

from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner, epsilon_greedy, epsilon_greedy_probabilities
from lfm_abm.schema import Field, Float, settings


class QLearning(Learner):
    """Epsilon-greedy tabular Q-learning over hashable states (None is a state too).

    Watkins & Dayan (1992), Q-learning, Machine Learning 8. After action a in state s
    earned r and led to s': Q[s, a] += alpha (r + discount max_a' Q[s', a'] - Q[s, a]).
    States never seen start with all values 0. FSPs pass their award share last round as
    the state (`learning.feedback.award_state`).
    """

    KIND = "q-learning"

    @settings("learner")
    class Params:
        """The parameters of Q-learning.

        alpha: learning rate, the weight of the newest reward.
        discount: weight of the next state's value. The default 0 treats the market as
            what it is, a repeated one-shot auction: a bid is settled in its own round and
            does not change what later rounds pay (other than through what rivals learn),
            so it is valued by its own reward in the state it was made in. A discount > 0
            also credits a bid with the value of the state it leads to (e.g. a full award).
        epsilon: probability of a uniformly random action instead of a best one.
        decay: epsilon is multiplied by this after every update (1 = constant exploration).
        """

        alpha: Annotated[Float, Field(gt=0, le=1)] = 0.1
        discount: Annotated[Float, Field(ge=0, lt=1)] = 0.0
        epsilon: Annotated[Float, Field(ge=0, le=1)] = 0.1
        decay: Annotated[Float, Field(gt=0, le=1)] = 1.0

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        self.table: dict[Hashable, np.ndarray] = {}

    def values(self, state: Hashable | None = None) -> np.ndarray:
        """Q-values of `state` (zeros if never updated there)."""
        values = self.table.get(state)
        return np.zeros(self.n_actions) if values is None else values

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """Explore with probability epsilon, else a best action in `state`."""
        return epsilon_greedy(self.values(state), self.epsilon, rng)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """One temporal-difference step; next_state None means the state did not change."""
        reward = self._reward(action, reward)
        following = state if next_state is None else next_state
        target = reward + self.discount * float(self.values(following).max())
        values = self.table.setdefault(state, np.zeros(self.n_actions))
        values[action] += self.alpha * (target - values[action])
        self.epsilon *= self.decay

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Epsilon spread uniformly, the rest over the best actions in `state`."""
        return epsilon_greedy_probabilities(self.values(state), self.epsilon)

    def greedy(self, state: Hashable | None = None) -> int:
        """The action of highest Q-value in `state` (lowest index among ties)."""
        return int(np.argmax(self.values(state)))
