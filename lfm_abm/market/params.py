"""Market parameters with documented defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

import numpy as np

from lfm_abm.errors import InputError
from lfm_abm.schema import Bool, Field, Float, Int, build, settings

#: MWh of emergency action: one number, or one per period.
Energy = TypeVar("Energy", float, np.ndarray)


@settings("market")
class MarketParams:
    """Parameters of the clearing LP.

    voll: value of lost load, EUR per MWh: what involuntary load shedding costs (the
        customers' loss). Unmet need is the DSO's emergency action, shedding and
        curtailment, in MWh.
    curtailment_price: what involuntary curtailment of generation costs the DSO, EUR per
        MWh: the compensation owed to the generator, about the energy's value to it (no
        load is lost). Default 100: near the top of PV's lost feed-in revenue in the
        generator's cost ranges (50-110); Regulation (EU) 2019/943 Art. 13(7) sets it at
        least at 90 % of the curtailed energy's net revenue including support, and
        German redispatch (EnWG section 13a) pays the lost revenue in full. Setting it to
        VOLL prices every emergency MWh as lost load.
    emergency_priority: when the DSO may use emergency action instead of offers.
        "least-cost" (default): the LP minimises procurement plus emergency cost, so an
        offer dearer than curtailment of the same effect loses to it. "market-first": an
        admitted offer is used before emergency action of the same effect per MW
        (Regulation (EU) 2019/943 Art. 13(3), non-market-based redispatch only when
        market-based resources are used up); the reported cost is the same, the choice
        dearer.
    dso_tools: the DSO's own tools, used before the market and emergency action: "oltc"
        moves the HV/MV on-load tap changers, one position per period, by the least-cost
        schedule of the DSO alone (`market.tap_schedule`); the market then clears the
        needs left at those taps. Empty (default): the taps stay where the grid has them.
    tap_step_cost: EUR per tap step moved: the changer's wear. Default 1: a tap changer's
        overhaul (tens of kEUR) is due after some 10^5 operations, well under 1 EUR per
        step, rounded up so that the schedule does not move taps for nothing.
    reservation_price: the highest bid price the DSO accepts, EUR/MWh or EUR/MVArh;
        offers above it are not admitted. None = VOLL (no bid dearer than shedding load).
    no_harm: every stage respects every network limit, also of services it does not buy
        (an element inside its limit stays inside, one outside may not move further out).
        False restores single-service rows, for sensitivity analysis only.
    energy_limits: bids of energy-limited devices respect their energy accounts (battery
        state of charge, deferred energy recovered in its window). False clears every
        period as if flexibility had no memory, for comparison only.
    cm_screen: a branch gets a CM constraint when its loading is at least this fraction of
        its target limit (near-limit branches can be pushed over by the flexibility bought).
    vc_screen: a bus gets a VC constraint when its voltage is within this many p.u. of the
        target band's edges, or outside the band.
    capability_cuts: sides of the polygon inscribed in each device's P-Q capability circle.
    branch_cuts: tangents bounding each screened branch's current phasor (odd; 1 = plain
        magnitude linearisation), spaced `branch_cut_step` degrees around its angle.
    min_coefficient: sensitivity coefficients smaller than this (MVA or p.u. per MW) are
        dropped from the LP; they are numerical dust of dense feeder sensitivities.
    relinearise: extra clearings of the AC residual at the post-award operating point
        (0 = the linear clearing is final).
    """

    voll: Annotated[Float, Field(gt=0)] = 1000.0
    curtailment_price: Annotated[Float, Field(gt=0)] = 100.0
    emergency_priority: Literal["least-cost", "market-first"] = "least-cost"
    reservation_price: Annotated[Float, Field(gt=0)] | None = None
    dso_tools: tuple[Literal["oltc"], ...] = ()
    tap_step_cost: Annotated[Float, Field(ge=0)] = 1.0
    no_harm: Bool = True
    energy_limits: Bool = True
    cm_screen: Annotated[Float, Field(gt=0, le=1)] = 0.8
    vc_screen: Annotated[Float, Field(ge=0, lt=0.2)] = 0.01
    capability_cuts: Annotated[Int, Field(ge=4, multiple_of=4)] = 16
    branch_cuts: Annotated[Int, Field(ge=1, le=99)] = 5
    branch_cut_step: Annotated[Float, Field(gt=0, le=45)] = 20.0
    min_coefficient: Annotated[Float, Field(ge=0, lt=1e-3)] = 1e-7
    relinearise: Annotated[Int, Field(ge=0, le=10)] = 0

    def __post_init__(self) -> None:
        if self.branch_cuts % 2 == 0:
            raise InputError(f"invalid value {self.branch_cuts!r}: must be odd",
                             field="market.branch_cuts", allowed=["an odd integer >= 1"])

    @property
    def max_bid_price(self) -> float:
        """The reservation price: the dearest bid admitted, EUR/MWh (VOLL by default)."""
        return self.voll if self.reservation_price is None else self.reservation_price

    @property
    def emergency_prices(self) -> dict[str, float]:
        """What each emergency action costs, EUR/MWh: the reported cost (`emergency.ACTIONS`)."""
        return {"curtail": self.curtailment_price, "shed": self.voll}

    def emergency_cost(self, mwh: Mapping[str, Energy]) -> Energy:
        """Cost of emergency action, EUR, from MWh per action (numbers, or arrays per period)."""
        prices = self.emergency_prices
        return sum(prices[action] * energy for action, energy in mwh.items())

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "market") -> MarketParams:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return build(cls, data, source)
