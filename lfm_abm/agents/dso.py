"""The DSO agent: clears the market and AC-validates the awards."""

from __future__ import annotations

from collections import OrderedDict

import mesa
import pandas as pd

from lfm_abm.agents.base import Agent
from lfm_abm.market.clearing import ClearingResult, Market, MarketCase
from lfm_abm.market.designs import Design
from lfm_abm.market.devices import Devices

#: Days moved by a day-ahead stage whose markets a DSO keeps warm (each schedule is a
#: day of its own); the scenario's days are all kept.
MAX_MOVED_MARKETS = 64
#: What a moved day's key carries after its name (`dayahead_stage`).
MOVED_MARK = "|dayahead"


class DSO(Agent):
    """Buys flexibility for one design and pricing rule on each market day it is given.

    The truthful benchmark is the market day's (`MarketDay.benchmark`), cleared with a
    market instance of its own, so it never disturbs the warm start of this one.
    """

    def __init__(self, model: mesa.Model, design: Design, pricing: str,
                 engine: str = "highs") -> None:
        super().__init__(model)
        self.design = design
        self.pricing = pricing
        self.engine = engine
        self._markets: OrderedDict[str, Market] = OrderedDict()

    def market(self, day: str, case: MarketCase) -> Market:
        """The (reused) market for a day; moved days beyond MAX_MOVED_MARKETS go, oldest first."""
        if day not in self._markets:
            self._markets[day] = Market(case, self.design, self.pricing, self.engine)
            moved = [key for key in self._markets if MOVED_MARK in key]
            for key in moved[:max(0, len(moved) - MAX_MOVED_MARKETS)]:
                del self._markets[key]
        self._markets.move_to_end(day)
        return self._markets[day]

    def clear(self, day: str, case: MarketCase, bids: pd.DataFrame,
              devices: Devices) -> ClearingResult:
        """Clear the round (no AC validation: see `validate`)."""
        return self.market(day, case).clear(bids, devices, ac_validate=False, trusted=True)

    def validate(self, day: str, result: ClearingResult) -> ClearingResult:
        """AC-validate the round's awards."""
        return self._markets[day].validate(result)
