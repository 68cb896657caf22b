"""The action grid: the markups (and withheld capacity shares) a learner chooses among."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from lfm_abm.errors import InputError, from_table


@dataclass(frozen=True)
class ActionGrid:
    """The action set shared by all learners so that studies compare like with like.

    markups: relative markups over the provider's true cost (0.5 = bid 1.5 x cost).
    withhold: shares of capacity withheld from the market (0 = offer everything).

    Action i is the i-th pair of `itertools.product(markups, withhold)`, markup-major.
    Both sets contain 0 so the truthful action (no markup, nothing withheld) always exists:
    it is the benchmark every strategic outcome is measured against.
    """

    markups: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    withhold: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        markups = _numbers("markups", self.markups)
        withhold = _numbers("withhold", self.withhold)
        _check_axis("markups", markups, math.inf, "finite numbers >= 0")
        _check_axis("withhold", withhold, 1.0, "numbers in [0, 1)")
        # Lists from TOML become tuples so the grid stays hashable and immutable.
        object.__setattr__(self, "markups", markups)
        object.__setattr__(self, "withhold", withhold)

    def __len__(self) -> int:
        return len(self.markups) * len(self.withhold)

    def markup(self, action: int) -> float:
        """Markup over true cost of `action`."""
        return self.markups[self._split(action)[0]]

    def withheld(self, action: int) -> float:
        """Share of capacity withheld by `action`."""
        return self.withhold[self._split(action)[1]]

    @property
    def truthful_index(self) -> int:
        """The action with markup 0 and nothing withheld."""
        return self.markups.index(0.0) * len(self.withhold) + self.withhold.index(0.0)

    def _split(self, action: int) -> tuple[int, int]:
        if not 0 <= action < len(self):
            raise IndexError(f"action {action} outside 0..{len(self) - 1}")
        return divmod(action, len(self.withhold))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "actions") -> ActionGrid:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return from_table(cls, data, source, "actions")


def _numbers(name: str, values: object) -> tuple[float, ...]:
    """The values as a tuple of floats; anything but a list of numbers is an input error."""
    field = f"actions.{name}"
    if not isinstance(values, list | tuple):
        raise InputError(f"expected a list of numbers, got {values!r}", field=field,
                         allowed=["a list of numbers"])
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"expected a number, got {value!r}", field=field,
                             allowed=["numbers"])
    return tuple(float(value) for value in values)


def _check_axis(name: str, values: tuple[float, ...], upper: float, what: str) -> None:
    """Non-empty, in [0, upper), strictly increasing and containing 0."""
    field = f"actions.{name}"
    if not values:
        raise InputError("must not be empty", field=field, allowed=[f"a list of {what}"])
    bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v < upper)]
    if bad:
        raise InputError(f"invalid value {bad[0]!r}", field=field, allowed=[what])
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise InputError(f"values {list(values)} are not strictly increasing", field=field,
                         allowed=[f"strictly increasing {what}"])
    if 0.0 not in values:
        raise InputError("must contain 0 (the truthful action)", field=field,
                         allowed=[f"a list of {what} containing 0"])
