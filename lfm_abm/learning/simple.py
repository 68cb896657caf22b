"""Non-learning benchmarks: truthful bidding, a fixed markup and uniform random play."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Annotated, Literal

import numpy as np

from lfm_abm.errors import InputError
from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner
from lfm_abm.schema import Field, Float, settings


class Fixed(Learner):
    """Always the same action: the benchmarks strategic learners are compared with."""

    action: int

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """The fixed action; draws nothing from `rng`."""
        return self.action

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Nothing to learn."""

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """All mass on the fixed action."""
        p = np.zeros(self.n_actions)
        p[self.action] = 1.0
        return p

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """The fixed action alone is preferred."""
        return self.probabilities(state)


class Truthful(Fixed):
    """Bids true cost and offers all capacity (the grid's truthful action).

    The competitive benchmark: what the market would pay if nobody exercised market power.
    Takes no parameters.
    """

    KIND = "truthful"

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        self.action = grid.truthful_index


class FixedMarkup(Fixed):
    """Always bids the same markup over true cost and withholds the same capacity share.

    It takes no day-ahead position.
    """

    KIND = "fixed-markup"

    @settings("learner")
    class Params:
        """The action, as values on the grid (the learner checks they are on it).

        markup: relative markup over true cost, one of the grid's markups; or "cap" for
            the grid's reservation-price action.
        withhold: share of capacity withheld; must be one of the grid's withhold values.
        """

        markup: Annotated[Float, Field(ge=0)] | Literal["cap"]
        withhold: Annotated[Float, Field(ge=0, lt=1)] = 0.0

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        markup = _position("markup", math.inf if self.markup == "cap" else self.markup,
                           grid.levels)
        withhold = _position("withhold", self.withhold, grid.withhold)
        self.action = grid.index(markup, withhold, grid.positions.index(0.0))


def _position(name: str, value: float, values: tuple[float, ...]) -> int:
    """Index of `value` among the grid's values; a value off the grid is an input error."""
    for index, candidate in enumerate(values):
        if math.isclose(value, candidate, rel_tol=1e-9, abs_tol=1e-12):
            return index
    raise InputError(f"{value:g} is not on the action grid", field=f"learner.{name}",
                     allowed=[f"{v:g}" if math.isfinite(v) else "cap" for v in values])


class UniformRandom(Learner):
    """Every action with the same probability, every round: the no-learning reference.

    What a study's learned outcome is compared with: play that ignores rewards but
    covers the same actions. Learned minus random is what learning did.
    """

    KIND = "random"

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """A uniform draw from the grid."""
        return int(rng.integers(self.n_actions))

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Nothing to learn."""

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Uniform."""
        return np.full(self.n_actions, 1.0 / self.n_actions)

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """No action is preferred: `greedy` is a uniform draw too."""
        return np.zeros(self.n_actions)
