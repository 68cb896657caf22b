"""What a day costs the DSO without a market: the counterfactual every design is judged by.

Two of them, both measured on AC operating points:

* **no market**: emergency action alone (curtailment and shedding, `emergency.py`) at the
  grid's own tap positions;
* **DSO alone**: the DSO's own tools first (the least-cost tap schedule,
  `tap_schedule.py`), then the emergency action the AC state at those taps still needs.
  Its cost is the tap moves plus that emergency action. A grid without tap changers has
  DSO alone = no market.

A design with `dso_tools = ["oltc"]` clears on the tapped day, so its market buys only
what the taps cannot fix; its total cost includes the tap moves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lfm_abm.market.clearing import MarketCase
from lfm_abm.market.tap_schedule import TapSchedule, schedule_taps
from lfm_abm.network.taps import tap_changers, tap_effects


@dataclass(frozen=True)
class Counterfactual:
    """MWh of emergency action and EUR of the day without a market, per DSO option."""

    no_market_mwh: float
    no_market_cost: float
    dso_alone_mwh: float
    dso_alone_cost: float  # tap moves + emergency action at the tapped AC state
    tap_moves: int  # steps the DSO alone's schedule moves its tap changers


def least_cost_taps(case: MarketCase) -> TapSchedule | None:
    """The DSO alone's tap schedule on `case`'s day (None: the grid has no tap changer).

    Measured on a copy of the net: the finite-difference power flows leave the shared
    net untouched.
    """
    net = copy.deepcopy(case.net)
    changers = tap_changers(net)
    if not changers:
        return None
    effects = [tap_effects(net, case.injections, case.points, changer) for changer in changers]
    return schedule_taps(case.points, effects, changers, case.limits, case.params,
                         case.emergency)


def counterfactual(plain: MarketCase, tapped: MarketCase) -> Counterfactual:
    """The day's two counterfactuals: `plain` at the grid's taps, `tapped` at the DSO's."""
    return Counterfactual(plain.baseline_emergency.emergency_mwh, plain.baseline_emergency_cost,
                          tapped.baseline_emergency.emergency_mwh,
                          tapped.baseline_emergency_cost + tapped.tap_cost,
                          tapped.taps.moves if tapped.taps is not None else 0)
