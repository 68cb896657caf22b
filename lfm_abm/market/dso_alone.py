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
from lfm_abm.network.taps import TapChanger, TapEffect, tap_changers, tap_effects

#: Unresolvable need (MVA or p.u.) and cost (EUR) differences below these are no difference.
UNRESOLVED_EPS = 1e-6
COST_EPS = 1e-6


@dataclass(frozen=True)
class Counterfactual:
    """MWh of emergency action and EUR of the day without a market, per DSO option."""

    no_market_mwh: float
    no_market_cost: float
    dso_alone_mwh: float
    dso_alone_cost: float  # tap moves + emergency action at the tapped AC state
    tap_moves: float  # steps the DSO alone's schedule moves its tap changers (NaN: unknown)


@dataclass(frozen=True)
class MeasuredTaps:
    """The grid's tap changers and the effect of one step of each, per period.

    Physics only: it does not depend on the market's parameters, so a study measures it
    once per day and schedules the taps per parameter set.
    """

    changers: list[TapChanger]
    effects: list[list[TapEffect]]  # [changer][period]


def measure_taps(case: MarketCase) -> MeasuredTaps:
    """Tap changers and their effects on `case`'s day, by power flows on a copy of the net.

    The shared net is left untouched.
    """
    net = copy.deepcopy(case.net)
    changers = tap_changers(net)
    return MeasuredTaps(changers, [tap_effects(net, case.injections, case.points, changer)
                                   for changer in changers])


def least_cost_taps(case: MarketCase, measured: MeasuredTaps | None = None
                    ) -> TapSchedule | None:
    """The DSO alone's tap schedule on `case`'s day (None: the grid has no tap changer)."""
    measured = measured or measure_taps(case)
    if not measured.changers:
        return None
    return schedule_taps(case.points, measured.effects, measured.changers, case.limits,
                         case.params, case.emergency)


def counterfactual(plain: MarketCase, tapped: MarketCase | None) -> Counterfactual:
    """The day's two counterfactuals: `plain` at the grid's taps, `tapped` at the DSO's.

    `tapped` None: the DSO alone could not be determined (NaN, never a made-up number).
    """
    no_market = (plain.baseline_emergency.emergency_mwh, plain.baseline_emergency_cost)
    if tapped is None:
        return Counterfactual(*no_market, *(float("nan"),) * 3)
    return Counterfactual(*no_market, tapped.baseline_emergency.emergency_mwh,
                          tapped.baseline_emergency_cost + tapped.tap_cost, tapped.tap_moves)


def taps_pay(plain: MarketCase, tapped: MarketCase) -> bool:
    """Whether the DSO's taps leave it better off, measured in AC (not in the linear MIP).

    Better: no more need left unresolvable in any service, and either less of it or a
    lower cost (tap wear + emergency action). The schedule is chosen on a linear model; a
    DSO keeps its taps only where they pay on the AC state.
    """
    def unresolved(case: MarketCase) -> dict[str, float]:
        left = case.baseline_emergency.unresolved
        return {service: float(left.need[left.service == service].sum())
                for service in ("CM", "VC")}

    before, after = unresolved(plain), unresolved(tapped)
    if any(after[k] > before[k] + UNRESOLVED_EPS for k in before):
        return False
    less = any(after[k] < before[k] - UNRESOLVED_EPS for k in before)
    cheaper = (tapped.baseline_emergency_cost + tapped.tap_cost
               < plain.baseline_emergency_cost - COST_EPS)
    return less or cheaper
