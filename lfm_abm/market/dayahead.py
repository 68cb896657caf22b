"""A day-ahead stage before the local market: positions, settlement and the LFM's baseline.

Inc-dec gaming (Hirth & Schlecht 2018): a provider behind a constraint schedules more in
the zonal day-ahead market, knowing that the local market will pay it to undo that
schedule. Quantities are MW in the market's injection convention (+ = more injection
or less consumption) over a period of h hours; lambda is the zonal day-ahead price
(EUR/MWh), which every provider takes as given.

A provider's day-ahead position s (MW, relative to its forecast) is sold (s > 0) or
bought (s < 0) at lambda, and the energy it moves is worth u per MWh to the provider
itself: the value of consumption it adds, or minus the marginal cost of production it
adds (u_up for s > 0, u_down for s < 0):

    day-ahead profit = h (lambda s + u_up max(s, 0) + u_down max(-s, 0))

The "day-ahead truthful" position maximises that alone, over the provider's grid of
positions (`truthful_position`). The position moves the grid's operating point; the
local market clears on the point after the day-ahead market.

An award of x MW in direction d (+1 for P_up, -1 for P_down) first reverses the
provider's own position where that points the other way:

    r = min(x, max(0, -d s))      MW reversed; r h is the inc-dec volume

What the DSO pays for r depends on the baseline rule (`BASELINES`):

* "dayahead": the baseline is the schedule after the day-ahead market, so the whole
  award is paid, reversal included, and the DSO's order is corrected in the provider's
  balance (no imbalance). This is what inc-dec gaming exploits.
* "forecast": the baseline is the forecast fixed before the day-ahead market. The DSO
  pays only x - r (what moves the provider beyond its forecast). The reversal is the
  provider's own deviation from its day-ahead position, settled at the imbalance price:
  a long provider (d = +1) sells r at lambda - spread, a short one buys r at
  lambda + spread, so its imbalance cash is h r (d lambda - spread).

A provider's profit is then its day-ahead profit, plus what the DSO pays minus the
true cost of what it delivered, plus its imbalance cash. Unlike a bid in the local
market, a day-ahead position can lose money; a learner's reward is floored at zero
(`learning.feedback`), so the profit it learns from is shifted by the most the
provider's positions can lose by themselves (`loss_bound`): a fixed amount per
provider, which keeps the reward stationary and lets a learner tell a loss from
nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numpy.typing import ArrayLike

from lfm_abm.errors import InputError
from lfm_abm.schema import Bool, Field, Float, build, settings

#: Baseline rules of the local market: name -> what the DSO pays against.
BASELINES = {
    "dayahead": "the schedule after the day-ahead market: the whole award is paid",
    "forecast": "the forecast before the day-ahead market: reversing the provider's own "
                "day-ahead position is not paid but settled as its imbalance",
}
#: Direction of each P product in the injection convention.
DIRECTION = {"P_up": 1.0, "P_down": -1.0}


#: The default zonal day-ahead price, EUR/MWh, hour 0 to 23: a stylised summer weekday
#: of a central European bidding zone (mean 43): a night trough, a morning ramp, a midday
#: dip from solar and an evening peak. Edit `[dayahead] price` for another market.
DEFAULT_PRICE = (36.0, 34.0, 33.0, 32.0, 33.0, 36.0, 42.0, 48.0, 50.0, 47.0, 44.0, 41.0,
                 39.0, 38.0, 39.0, 42.0, 46.0, 52.0, 56.0, 55.0, 50.0, 45.0, 42.0, 38.0)
#: Asset kinds that may take day-ahead positions (`agents.positions`).
POSITION_KINDS = ("flexible_load", "storage", "generator", "pv")
Share = Annotated[Float, Field(ge=-1, le=1)]


@settings("dayahead")
class DayAheadParams:
    """A zonal day-ahead market before the local one, in which providers take positions.

    enabled: run the day-ahead stage every round (False: the local market clears on the
        forecast, as without this table).
    price: the zonal day-ahead price per hour of the day (24 values, EUR/MWh); providers
        take it as given (price takers: a distribution feeder does not move the zone).
    baseline: what the local market pays against (`BASELINES`).
    imbalance_spread: EUR/MWh between the day-ahead and the imbalance price, against the
        provider (it sells its surplus at price - spread, buys its shortfall at price +
        spread); used by the "forecast" baseline.
    block_hours: hours per block of the day; a provider learns one position per block.
    positions: the shares of its flexible P capacity a provider may schedule per block,
        signed as `market.dayahead` (+ sells, - buys); must contain 0.
    kinds: the asset kinds whose P flexibility may be scheduled (`POSITION_KINDS`). EV
        fleets and shiftable loads are not among them: their energy must come back in the
        same window, which a day-ahead position would have to schedule too.
    limitation: the DSO buys, before the day-ahead market, the right to hold every
        provider's position at zero in the periods where the forecast has a need of a
        service the design buys (a capacity-limitation contract, as the Dutch GOPACS
        and German grid operators use), and compensates what that costs the provider:
        the day-ahead profit its truthful positions lose (lost profit, as German
        redispatch compensation pays, EnWG section 13a).
    """

    enabled: Bool = False
    price: Annotated[tuple[Float, ...], Field(min_length=24, max_length=24)] = DEFAULT_PRICE
    baseline: Literal[tuple(BASELINES)] = "dayahead"  # type: ignore[valid-type]
    imbalance_spread: Annotated[Float, Field(ge=0)] = 10.0
    block_hours: Literal[1, 2, 3, 4, 6, 8, 12, 24] = 6
    positions: Annotated[tuple[Share, ...], Field(min_length=1)] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    kinds: tuple[Literal[POSITION_KINDS], ...] = (  # type: ignore[valid-type]
        "flexible_load", "storage", "generator")
    limitation: Bool = False

    def __post_init__(self) -> None:
        if 0.0 not in self.positions or list(self.positions) != sorted(set(self.positions)):
            raise InputError(f"invalid value {list(self.positions)}: must be strictly "
                             "increasing and contain 0 (no position)",
                             field="dayahead.positions",
                             allowed=["shares in [-1, 1], strictly increasing, with 0"])

    def block(self, hours: ArrayLike) -> np.ndarray:
        """The block of each period, from its hour of the day."""
        return np.asarray(hours, dtype=int) // self.block_hours

    @property
    def blocks(self) -> int:
        """Blocks in a day."""
        return 24 // self.block_hours

    def prices(self, hours: ArrayLike) -> np.ndarray:
        """The day-ahead price of each period, from its hour of the day."""
        return np.asarray(self.price)[np.asarray(hours, dtype=int)]

    @classmethod
    def from_dict(cls, data: dict, source: str = "dayahead") -> DayAheadParams:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return build(cls, data, source)


def check_baseline(name: str, source: str = "dayahead") -> str:
    """`name` if it is a baseline rule, else an input error that lists them."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline rule {name!r}", source=source,
                         field="dayahead.baseline", allowed=list(BASELINES))
    return name


def dayahead_profit(position: ArrayLike, price: ArrayLike, value_up: ArrayLike,
                    value_down: ArrayLike, hours: ArrayLike) -> np.ndarray:
    """EUR of each position: h (lambda s + u_up max(s, 0) + u_down max(-s, 0))."""
    s = np.asarray(position, dtype=float)
    return np.asarray(hours) * (np.asarray(price) * s + np.asarray(value_up) * np.maximum(s, 0)
                                + np.asarray(value_down) * np.maximum(-s, 0))


def loss_bound(price: ArrayLike, value_up: ArrayLike, value_down: ArrayLike,
               capacity_up: ArrayLike, capacity_down: ArrayLike, hours: ArrayLike) -> float:
    """The most a provider's day-ahead positions can lose by themselves, EUR (>= 0).

    Per period: selling loses max(0, -(lambda + u_up)) per MW up to capacity_up, buying
    loses max(0, lambda - u_down) per MW up to capacity_down; summed over periods.
    """
    price = np.asarray(price, dtype=float)
    loss = (np.maximum(-(price + np.asarray(value_up)), 0.0) * np.asarray(capacity_up)
            + np.maximum(price - np.asarray(value_down), 0.0) * np.asarray(capacity_down))
    return float(np.sum(np.asarray(hours) * loss))


def truthful_position(shares: ArrayLike, capacity_up: float, capacity_down: float,
                      price: float, value_up: float, value_down: float) -> float:
    """The position (MW) of the share grid with the highest day-ahead profit alone.

    A share q >= 0 sells q x capacity_up, a share q < 0 buys |q| x capacity_down. Ties go
    to the smaller position (no trade when the day-ahead market is indifferent).
    """
    q = np.asarray(shares, dtype=float)
    mw = np.where(q >= 0, q * capacity_up, q * capacity_down)
    profit = dayahead_profit(mw, price, value_up, value_down, 1.0)
    best = np.flatnonzero(profit >= profit.max() - 1e-9)
    return float(mw[best[np.argmin(np.abs(mw[best]))]])


def directions(product: ArrayLike) -> np.ndarray:
    """D of each product: +1 for P_up, -1 for P_down, 0 for Q (`DIRECTION`)."""
    return np.array([DIRECTION.get(p, 0.0) for p in np.asarray(product)])


def reversed_mw(product: ArrayLike, awarded: ArrayLike, position: ArrayLike) -> np.ndarray:
    """MW of each award that reverses its provider's own day-ahead position.

    r = min(x, max(0, -d s)) with d the direction of the award's product (`DIRECTION`;
    Q products reverse nothing) and s the position of the award's asset in its period.
    """
    awarded = np.asarray(awarded, dtype=float)
    return np.minimum(awarded, np.maximum(0.0, -directions(product)
                                          * np.asarray(position, dtype=float)))


def settle_baseline(rule: str, product: ArrayLike, awarded: ArrayLike, payment: ArrayLike,
                    reversed_part: ArrayLike, price: ArrayLike, spread: float,
                    hours: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """What the DSO pays for each award under `rule`, and the provider's imbalance cash.

    payment: the clearing's payment (EUR) for the whole award; reversed_part: its MW
    that reverse the provider's own position (`reversed_mw`); price: the day-ahead price
    of the award's period; spread: the imbalance price's distance from it (EUR/MWh).
    """
    check_baseline(rule)
    payment = np.asarray(payment, dtype=float)
    if rule == "dayahead":
        return payment, np.zeros_like(payment)
    awarded = np.asarray(awarded, dtype=float)
    r = np.asarray(reversed_part, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        paid = np.where(awarded > 0, payment * (awarded - r) / awarded, 0.0)
    imbalance = np.asarray(hours) * r * (directions(product) * np.asarray(price) - spread)
    return paid, imbalance
