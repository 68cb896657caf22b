"""The DSO agent: clears the market and AC-validates the awards."""

from __future__ import annotations

import mesa
import pandas as pd

from lfm_abm.agents.base import Agent
from lfm_abm.market.clearing import ClearingResult, Market, MarketCase
from lfm_abm.market.designs import Design
from lfm_abm.market.devices import Devices


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
        self._markets: dict[str, Market] = {}

    def market(self, day: str, case: MarketCase) -> Market:
        """The (reused) market for a day."""
        if day not in self._markets:
            self._markets[day] = Market(case, self.design, self.pricing, self.engine)
        return self._markets[day]

    def clear(self, day: str, case: MarketCase, bids: pd.DataFrame,
              devices: Devices) -> ClearingResult:
        """Clear the round (no AC validation: see `validate`)."""
        return self.market(day, case).clear(bids, devices, ac_validate=False, trusted=True)

    def validate(self, day: str, result: ClearingResult) -> ClearingResult:
        """AC-validate the round's awards."""
        return self._markets[day].validate(result)
