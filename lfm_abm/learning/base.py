"""The interface every bidding learner implements, and how learners declare parameters.

Each learner class lists its parameters once, in `PARAMETERS`, with defaults and allowed
values: validation, error messages and documentation all read that one table.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lfm_abm.errors import InputError
from lfm_abm.learning.actions import ActionGrid


@dataclass(frozen=True)
class Real:
    """A real-valued parameter in an interval; `default` None makes it required."""

    default: float | None
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    @property
    def allowed(self) -> list[str]:
        """The allowed range in words, for error messages and docs."""
        if self.low == -math.inf and self.high == math.inf:
            return ["any finite number"]
        if self.high == math.inf:
            return [f"a number {'>' if self.low_open else '>='} {self.low:g}"]
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return [f"a number in {left}{self.low:g}, {self.high:g}{right}"]

    def parse(self, value: object) -> float | None:
        """The value as a float, or None if it is not allowed."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        if not math.isfinite(number):
            return None
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return number if above and below else None


@dataclass(frozen=True)
class Choice:
    """A parameter taking one of a few names."""

    default: str
    options: tuple[str, ...]

    @property
    def allowed(self) -> list[str]:
        """The allowed names."""
        return list(self.options)

    def parse(self, value: object) -> str | None:
        """The value, or None if it is not one of the options."""
        return value if isinstance(value, str) and value in self.options else None


Parameter = Real | Choice


class Learner(ABC):
    """A bidding strategy that learns which action of an `ActionGrid` pays.

    All randomness comes from the `rng` passed to `choose`, the model's seeded generator,
    so that one seed gives one run. Instances hold only plain data so they pickle across
    process boundaries. `state` is ignored by stateless learners.
    """

    KIND: ClassVar[str]
    PARAMETERS: ClassVar[dict[str, Parameter]] = {}

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        self.n_actions = len(grid)
        for name, value in self.resolve(params).items():
            setattr(self, name, value)

    @classmethod
    def resolve(cls, params: Mapping[str, object]) -> dict[str, object]:
        """Validated parameters with defaults filled in; InputError names the bad one."""
        for name in params:
            if name not in cls.PARAMETERS:
                raise InputError(f"unknown parameter {name!r} for learner {cls.KIND!r}",
                                 field=f"learner.{name}", allowed=list(cls.PARAMETERS))
        values: dict[str, object] = {}
        for name, parameter in cls.PARAMETERS.items():
            if name not in params and parameter.default is None:
                raise InputError(f"learner {cls.KIND!r} needs parameter {name!r}",
                                 field=f"learner.{name}", allowed=parameter.allowed)
            raw = params.get(name, parameter.default)
            value = parameter.parse(raw)
            if value is None:
                raise InputError(f"invalid value {raw!r}", field=f"learner.{name}",
                                 allowed=parameter.allowed)
            values[name] = value
        return values

    def choose(self, rng: np.random.Generator, state: Hashable | None = None) -> int:
        """Pick an action index by sampling the current choice distribution."""
        return sample(self.probabilities(state), rng)

    @abstractmethod
    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Learn from the reward in [0, 1] that `action` earned in `state`."""

    @abstractmethod
    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """The distribution `choose` samples from (the action-entropy KPI reads it)."""

    @abstractmethod
    def greedy(self, state: Hashable | None = None) -> int:
        """The action currently believed best."""

    def _reward(self, action: int, reward: float) -> float:
        """Check the action and clip the reward to [0, 1]: callers normalise profits."""
        if not 0 <= action < self.n_actions:
            raise IndexError(f"action {action} outside 0..{self.n_actions - 1}")
        if math.isnan(reward):
            raise ValueError("reward is NaN")
        return min(max(float(reward), 0.0), 1.0)


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
