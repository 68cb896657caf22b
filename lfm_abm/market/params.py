"""Market parameters with documented defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from lfm_abm.errors import InputError, from_table


@dataclass(frozen=True)
class MarketParams:
    """Parameters of the clearing LP.

    voll: value of lost load, EUR per MWh of unmet need (MVA for congestion, MW-equivalent
        for voltage: the P injection at the bus that would fix the deviation on its own).
        It is also the market's price cap: no bid above it is admitted.
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
    cm_screen: float = 0.8
    vc_screen: float = 0.01
    capability_cuts: int = 16
    branch_cuts: int = 5
    branch_cut_step: float = 20.0
    min_coefficient: float = 1e-7
    relinearise: int = 0

    def __post_init__(self) -> None:
        checks = {
            "voll": self.voll > 0,
            "cm_screen": 0 < self.cm_screen <= 1,
            "vc_screen": 0 <= self.vc_screen < 0.2,
            "capability_cuts": self.capability_cuts >= 4 and self.capability_cuts % 4 == 0,
            "branch_cuts": self.branch_cuts >= 1 and self.branch_cuts % 2 == 1,
            "branch_cut_step": 0 < self.branch_cut_step <= 45,
            "min_coefficient": 0 <= self.min_coefficient < 1e-3,
            "relinearise": 0 <= self.relinearise <= 10,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or not ok:
                raise InputError(f"invalid value {value!r}", field=f"market.{name}",
                                 allowed=[_RANGES[name]])

    @property
    def price_cap(self) -> float:
        """Highest admissible bid price, EUR/MWh (= VOLL)."""
        return self.voll

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "market") -> MarketParams:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return from_table(cls, data, source, "market")


_RANGES = {
    "voll": "> 0 EUR/MWh",
    "cm_screen": "in (0, 1]",
    "vc_screen": "in [0, 0.2) p.u.",
    "capability_cuts": "a multiple of 4, at least 4",
    "branch_cuts": "an odd integer >= 1",
    "branch_cut_step": "in (0, 45] degrees",
    "min_coefficient": "in [0, 1e-3)",
    "relinearise": "an integer 0..10",
}
