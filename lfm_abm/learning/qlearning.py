"""Tabular Q-learning, for providers whose best bid depends on an observed market state."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Literal

import numpy as np

from lfm_abm.errors import InputError
from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner, epsilon_greedy, epsilon_greedy_probabilities
from lfm_abm.schema import Field, Float, settings


class QLearning(Learner):
    """Epsilon-greedy tabular Q-learning over hashable states (None is a state too).

    Watkins & Dayan (1992), Q-learning, Machine Learning 8. After action a in state s
    earned r and led to s': Q[s, a] += alpha (r + discount max_a' Q[s', a'] - Q[s, a]).
    States never seen start at `initial_value`. What a state is (`observe`): the
    learner's own award share last round (`learning.feedback.award_state`), or every
    player's action last round, the one-period memory of Calvano et al. (2020).
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
        decay: epsilon is multiplied by this after every update (1 = constant exploration;
            exp(-beta) gives Calvano et al.'s epsilon_t = exp(-beta t)).
        initial_value: Q of every action in an unseen state, in reward units; or one
            value per action (e.g. the discounted payoff against uniform rivals).
        observe: "award" (own award share last round: nothing, part, all) or "profile"
            (every player's action last round; only for small games, the table grows
            with the number of players' joint actions).
        """

        alpha: Annotated[Float, Field(gt=0, le=1)] = 0.1
        discount: Annotated[Float, Field(ge=0, lt=1)] = 0.0
        epsilon: Annotated[Float, Field(ge=0, le=1)] = 0.1
        decay: Annotated[Float, Field(gt=0, le=1)] = 1.0
        initial_value: Float | tuple[Float, ...] = 0.0
        observe: Literal["award", "profile"] = "award"

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        initial = np.asarray(self.initial_value, dtype=float)
        if initial.ndim == 0:
            initial = np.full(self.n_actions, float(initial))
        elif len(initial) != self.n_actions:
            raise InputError(f"{len(initial)} initial values for {self.n_actions} actions",
                             field="learner.initial_value",
                             allowed=[f"a number, or {self.n_actions} numbers (one per action)"])
        self.initial = initial
        self.table: dict[Hashable, np.ndarray] = {}

    def values(self, state: Hashable | None = None) -> np.ndarray:
        """Q-values of `state` (the initial values if never updated there)."""
        values = self.table.get(state)
        return self.initial if values is None else values

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """Explore with probability epsilon, else a best action in `state`."""
        return epsilon_greedy(self.values(state), self.epsilon, rng)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """One temporal-difference step; next_state None means the state did not change."""
        reward = self._reward(action, reward)
        following = state if next_state is None else next_state
        target = reward + self.discount * float(self.values(following).max())
        values = self.table.get(state)
        if values is None:
            values = self.table[state] = self.initial.copy()
        values[action] += self.alpha * (target - values[action])
        self.epsilon *= self.decay

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Epsilon spread uniformly, the rest over the best actions in `state`."""
        return epsilon_greedy_probabilities(self.values(state), self.epsilon)

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """Q-values in `state`: the greedy action has the highest."""
        return self.values(state)
