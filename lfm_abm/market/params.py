"""Market parameters with documented defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from lfm_abm.errors import InputError
from lfm_abm.schema import Bool, Field, Float, Int, build, settings


@settings("market")
class MarketParams:
    """Parameters of the clearing LP.

    voll: value of lost load, EUR per MWh: what the DSO's emergency action (involuntary
        curtailment of generation or shedding of load, in MW) costs. Unmet need is that
        emergency action.
    reservation_price: the highest bid price the DSO accepts, EUR/MWh or EUR/MVArh;
        offers above it are not admitted. None = VOLL (no bid dearer than emergency).
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
    reservation_price: Annotated[Float, Field(gt=0)] | None = None
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

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "market") -> MarketParams:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return build(cls, data, source)
