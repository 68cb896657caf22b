"""Controls for learning tests: a learner that ignores its reward, and uniform play.

A test that a learner learns must fail for a learner that learns nothing: these are
the two ways of learning nothing, kept beside every learning test.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from lfm_abm.learning import ActionGrid, Learner, make_learner

#: What a reward-blind learner is told every action earned (reward units).
BLIND_REWARD = 0.5


class RewardBlind(Learner):
    """A registry learner told the same reward whatever it earned: it learns nothing.

    It chooses and updates as the learner it wraps, so it settles as that learner would
    (Roth-Erev and Q-learning lock into whatever they played early), only not on what
    pays; epsilon-greedy, UCB1 and EXP3 so told stay near uniform. Anything else (such
    as Q-learning's `values`) is the wrapped learner's.
    """

    KIND = "reward-blind"

    def __init__(self, inner: Learner, reward: float = BLIND_REWARD) -> None:
        self.inner, self.reward = inner, reward
        self.n_actions = inner.n_actions
        self.observe = inner.observe

    def __getattr__(self, name: str) -> object:
        if name == "inner":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        return self.inner.choose(rng, state)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        self.inner.update(action, self.reward, state, next_state)

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        return self.inner.probabilities(state)

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        return self.inner.preferences(state)


def control(spec: dict, grid: ActionGrid, kind: str) -> Learner:
    """The learner a test runs: "learner" (the spec's), "blind" or "random" (controls)."""
    if kind == "learner":
        return make_learner(spec, grid)
    if kind == "blind":
        return RewardBlind(make_learner(spec, grid))
    if kind == "random":
        return make_learner({"kind": "random"}, grid)
    raise ValueError(f"unknown kind {kind!r}")
