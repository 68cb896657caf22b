"""Market parameters with documented defaults."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lfm_abm.errors import InputError, from_table


@dataclass(frozen=True)
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

    voll: float = 1000.0
    reservation_price: float | None = None
    no_harm: bool = True
    energy_limits: bool = True
    cm_screen: float = 0.8
    vc_screen: float = 0.01
    capability_cuts: int = 16
    branch_cuts: int = 5
    branch_cut_step: float = 20.0
    min_coefficient: float = 1e-7
    relinearise: int = 0

    def __post_init__(self) -> None:
        for name in ("no_harm", "energy_limits"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"invalid value {getattr(self, name)!r}",
                                 field=f"market.{name}", allowed=["true", "false"])
        checks = {
            "voll": lambda v: v > 0,
            "cm_screen": lambda v: 0 < v <= 1,
            "vc_screen": lambda v: 0 <= v < 0.2,
            "capability_cuts": lambda v: v >= 4 and v % 4 == 0,
            "branch_cuts": lambda v: v >= 1 and v % 2 == 1,
            "branch_cut_step": lambda v: 0 < v <= 45,
            "min_coefficient": lambda v: 0 <= v < 1e-3,
            "relinearise": lambda v: 0 <= v <= 10,
        }
        if self.reservation_price is not None:
            checks["reservation_price"] = lambda v: v > 0
        for name, ok in checks.items():
            _check(name, getattr(self, name), ok)

    @property
    def max_bid_price(self) -> float:
        """The reservation price: the dearest bid admitted, EUR/MWh (VOLL by default)."""
        return self.voll if self.reservation_price is None else self.reservation_price

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "market") -> MarketParams:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return from_table(cls, data, source, "market")


def _check(name: str, value: object, ok: Callable[[float], bool]) -> None:
    """A finite number passing `ok`, else InputError naming the field and its range."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not ok(value)):
        raise InputError(f"invalid value {value!r}", field=f"market.{name}",
                         allowed=[_RANGES[name]])


_RANGES = {
    "voll": "> 0 EUR/MWh",
    "reservation_price": "> 0 EUR/MWh (default: voll)",
    "cm_screen": "in (0, 1]",
    "vc_screen": "in [0, 0.2) p.u.",
    "capability_cuts": "a multiple of 4, at least 4",
    "branch_cuts": "an odd integer >= 1",
    "branch_cut_step": "in (0, 45] degrees",
    "min_coefficient": "in [0, 1e-3)",
    "relinearise": "an integer 0..10",
}
