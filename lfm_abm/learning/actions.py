"""The action grid: markups, withheld shares and day-ahead positions learners choose among."""

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
#: A day-ahead position as a signed share of the provider's flexible P capacity
#: (injection convention: +1 sells its whole upward capacity, -1 buys its whole downward).
Position = Annotated[Float, Field(ge=-1, le=1)]


@settings("actions")
class ActionGrid:
    """The action set shared by all learners so that studies compare like with like.

    markups: relative markups over the provider's true cost (0.5 = bid 1.5 x cost).
    withhold: shares of capacity withheld from the market (0 = offer everything).
    positions: day-ahead positions, signed shares of the provider's flexible P capacity
        scheduled in a day-ahead market before the local one (`market.dayahead`): -1
        buys its whole downward capacity (consumes more, produces less), +1 sells its
        whole upward capacity. (0,), the default, is a market without a day-ahead stage.
    cap_action: one more price level after the markups, the DSO's reservation price
        itself (the most it admits), so that every provider can reach the cap whatever
        its cost: no markup grid does that for a Q cost of 2 EUR/MVArh and a cap of
        1000 (markup 499), and a grid whose top binds measures the grid, not the market.

    Action i is the i-th triple of `itertools.product(levels, withhold, positions)`,
    level-major, where `levels` are the markups followed by the cap level (markup `inf`)
    if `cap_action`. Every set contains 0 so the truthful action (no markup, nothing
    withheld, no day-ahead position) always exists: it is the benchmark every strategic
    outcome is measured against. All are tuples (a TOML list becomes one) so the grid
    stays hashable and immutable.
    """

    markups: Annotated[tuple[Markup, ...], Field(min_length=1)] = (
        0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    withhold: Annotated[tuple[Withheld, ...], Field(min_length=1)] = (0.0,)
    positions: Annotated[tuple[Position, ...], Field(min_length=1)] = (0.0,)
    cap_action: Bool = True

    def __post_init__(self) -> None:
        for name in ("markups", "withhold", "positions"):
            values = getattr(self, name)
            if 0.0 not in values or any(b <= a for a, b in itertools.pairwise(values)):
                raise InputError(
                    f"invalid value {list(values)}: must be strictly increasing and contain "
                    "0 (the truthful action)", field=field_name(self.SECTION, name),
                    allowed=[f"{describe(type(self), name)}, strictly increasing, with 0"])

    def __len__(self) -> int:
        return len(self.levels) * len(self.withhold) * len(self.positions)

    @property
    def levels(self) -> tuple[float, ...]:
        """The price levels: the markups, then `inf` (bid the reservation price) if any."""
        return (*self.markups, math.inf) if self.cap_action else self.markups

    def markup(self, action: int) -> float:
        """Markup over true cost of `action`; `inf` for the reservation-price action."""
        return self.levels[self.level(action)]

    def level(self, action: int) -> int:
        """The index of `action`'s price level: a higher one bids higher."""
        return self._split(action)[0]

    def at_top(self, action: int) -> bool:
        """True if `action` bids the grid's highest price level (the cap, or top markup)."""
        return self.level(action) == len(self.levels) - 1

    def withheld(self, action: int) -> float:
        """Share of capacity withheld by `action`."""
        return self.withhold[self._split(action)[1]]

    def position(self, action: int) -> float:
        """Day-ahead position of `action`, a signed share of the flexible P capacity."""
        return self.positions[self._split(action)[2]]

    def index(self, level: int, withhold: int, position: int) -> int:
        """The action of the `level`-th price level, `withhold`-th share, `position`-th position."""
        return (level * len(self.withhold) + withhold) * len(self.positions) + position

    @property
    def truthful_index(self) -> int:
        """The action with markup 0, nothing withheld and no day-ahead position."""
        return self.index(self.markups.index(0.0), self.withhold.index(0.0),
                          self.positions.index(0.0))

    def _split(self, action: int) -> tuple[int, int, int]:
        if not 0 <= action < len(self):
            raise IndexError(f"action {action} outside 0..{len(self) - 1}")
        rest, position = divmod(action, len(self.positions))
        level, withhold = divmod(rest, len(self.withhold))
        return level, withhold, position

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "actions") -> ActionGrid:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return build(cls, data, source)
