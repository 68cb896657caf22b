"""The action grid: the markups (and withheld capacity shares) a learner chooses among."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Annotated

from lfm_abm.errors import InputError
from lfm_abm.schema import Bool, Field, Float, build, describe, field_name, settings

#: A markup over true cost: any finite number >= 0.
Markup = Annotated[Float, Field(ge=0)]
#: A share of capacity withheld: withholding all of it would be no offer at all.
Withheld = Annotated[Float, Field(ge=0, lt=1)]


@settings("actions")
class ActionGrid:
    """The action set shared by all learners so that studies compare like with like.

    markups: relative markups over the provider's true cost (0.5 = bid 1.5 x cost).
    withhold: shares of capacity withheld from the market (0 = offer everything).
    cap_action: one more price level after the markups, the DSO's reservation price
        itself (the most it admits), so that every provider can reach the cap whatever
        its cost: no markup grid does that for a Q cost of 2 EUR/MVArh and a cap of
        1000 (markup 499), and a grid whose top binds measures the grid, not the market.

    Action i is the i-th pair of `itertools.product(levels, withhold)`, level-major, where
    `levels` are the markups followed by the cap level (markup `inf`) if `cap_action`.
    Both sets contain 0 so the truthful action (no markup, nothing withheld) always exists:
    it is the benchmark every strategic outcome is measured against. Both are tuples (a
    TOML list becomes one) so the grid stays hashable and immutable.
    """

    markups: Annotated[tuple[Markup, ...], Field(min_length=1)] = (
        0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    withhold: Annotated[tuple[Withheld, ...], Field(min_length=1)] = (0.0,)
    cap_action: Bool = True

    def __post_init__(self) -> None:
        for name in ("markups", "withhold"):
            values = getattr(self, name)
            if 0.0 not in values or any(b <= a for a, b in itertools.pairwise(values)):
                raise InputError(
                    f"invalid value {list(values)}: must be strictly increasing and contain "
                    "0 (the truthful action)", field=field_name(self.SECTION, name),
                    allowed=[f"{describe(type(self), name)}, strictly increasing, with 0"])

    def __len__(self) -> int:
        return len(self.levels) * len(self.withhold)

    @property
    def levels(self) -> tuple[float, ...]:
        """The price levels: the markups, then `inf` (bid the reservation price) if any."""
        return (*self.markups, math.inf) if self.cap_action else self.markups

    def markup(self, action: int) -> float:
        """Markup over true cost of `action`; `inf` for the reservation-price action."""
        return self.levels[self._split(action)[0]]

    def at_top(self, action: int) -> bool:
        """True if `action` bids the grid's highest price level (the cap, or top markup)."""
        return self._split(action)[0] == len(self.levels) - 1

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
        return build(cls, data, source)
